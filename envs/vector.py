"""Vectorised environments (sync or async) with NEXT_STEP autoreset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
from gymnasium.vector import AutoresetMode

from envs.config import EnvConfig
from envs.factory import make_env
from envs.resolve import resolve_env_config

#: Start method for async workers. "spawn" rather than fork: forking a process that already
#: holds an EGL/OpenGL context (AsyncVectorEnv builds one env in the parent to read the
#: spaces) or torch's thread pools is unsafe. Workers inherit MUJOCO_GL / PYOPENGL_PLATFORM.
ASYNC_CONTEXT = "spawn"


@dataclass(frozen=True)
class EnvFactory:
    """Picklable zero-argument env constructor (for AsyncVectorEnv subprocesses)."""

    cfg: EnvConfig
    seed: int
    mode: str = "train"

    def __call__(self) -> gym.Env:
        return make_env(self.cfg, self.seed, self.mode)


def make_vector_env(cfg: Any, num_envs: int, seed: int, mode: str = "train") -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``make_env(cfg, seed + i, mode)`` in a Sync or Async vector env.

    Autoreset mode is NEXT_STEP: the step that ends an episode returns its final observation
    (and ``info["episode"]`` / ``info["_episode"]``); the next step resets that env, ignoring
    its action, and returns the reset observation with reward 0 and no termination.
    """
    cfg = resolve_env_config(cfg)
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs={num_envs!r} is invalid; expected an integer >= 1")
    fns = [EnvFactory(cfg, seed + i, mode) for i in range(num_envs)]
    if cfg.vectorization == "async":
        return gym.vector.AsyncVectorEnv(fns, context=ASYNC_CONTEXT, autoreset_mode=AutoresetMode.NEXT_STEP)
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.NEXT_STEP)
