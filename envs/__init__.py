"""Environment factories: Gymnasium ids, DeepMind Control (state or pixels), Atari, vectorisation.

Importing this package imports neither dm_control nor ale_py; they load on first use. It sets
``MUJOCO_GL=egl`` (Linux, when unset) so that any later dm_control import renders headless, and
registers the DMC tasks with Gymnasium as ``rlaux/<domain>-<task>[-pixels]-v0``
(:mod:`envs.registration`).
"""

from envs.rendering import ensure_gl_env as _ensure_gl_env

_ensure_gl_env()

from envs.config import EnvConfig  # noqa: E402
from envs.factory import make_env  # noqa: E402
from envs.guard import EnvError, EnvErrorGuard  # noqa: E402
from envs.registration import register_dmc_envs  # noqa: E402
from envs.registry import UnknownEnvError, env_kind, list_env_names, parse_dmc_name  # noqa: E402
from envs.resolve import resolve_env_config  # noqa: E402
from envs.vector import EnvFactory, make_vector_env, resume_warning  # noqa: E402

register_dmc_envs()

__all__ = [
    "EnvConfig",
    "EnvError",
    "EnvErrorGuard",
    "EnvFactory",
    "UnknownEnvError",
    "env_kind",
    "list_env_names",
    "make_env",
    "make_vector_env",
    "parse_dmc_name",
    "resolve_env_config",
    "resume_warning",
]
