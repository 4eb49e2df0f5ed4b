"""The Hydra config tree: registration of the ``env`` and ``aux`` groups, checks of the
command line before Hydra sees it, and composition for Python callers.

* ``agent``: YAML files in ``configs/agent/`` (one per agent).
* ``env``: any environment name (``dog-run``, ``ALE/Pong-v5``, ``CartPole-v1``) becomes an
  :class:`envs.config.EnvConfig` node, registered on demand for the names the command
  line asks for (there are too many Gymnasium ids to list them all up front).
* ``aux``: one typed dataclass per objective, registered from Python (no folder may be
  called ``aux`` on Windows); several at once with ``aux=[tcrl,predictive]``; ``aux=none``
  selects no objective. Each lands under ``cfg.aux.<name>``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

import configs as _configs_pkg

CONFIG_DIR = str(Path(_configs_pkg.__file__).resolve().parent)

# Keys a resumed run may change; every other key must match the checkpoint's config.
RESUMABLE_OVERRIDES = (
    "steps", "device", "logger", "progress", "eval_every", "eval_episodes", "log_every",
    "checkpoint_every", "keep_checkpoints", "save_replay", "max_replay_save_gb", "threads", "on_nan",
    "matmul_precision",
)


class ConfigError(ValueError):
    """A user mistake on the command line or in a config value."""


def slug(text: Any) -> str:
    """A file-name-safe version of ``text`` (``ALE/Pong-v5`` -> ``ALE-Pong-v5``)."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", str(text)).strip("-")


def _run_dir(resume: Any, default: str) -> str:
    return str(resume) if resume not in (None, "", "None", "null") else default


def register_resolvers() -> None:
    for name, fn in (("rlaux_slug", slug), ("rlaux_run_dir", _run_dir)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def agent_names() -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / "agent").glob("*.yaml"))


def aux_names() -> list[str]:
    import rlaux.objectives  # noqa: F401
    from rlaux.objectives import OBJECTIVES

    return sorted(OBJECTIVES)


def _unknown(kind: str, value: str, choices: Sequence[str], extra: str = "") -> ConfigError:
    close = difflib.get_close_matches(value, choices, n=3)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    listing = extra or f"Valid choices: {', '.join(choices)}."
    return ConfigError(f"Unknown {kind}={value!r}.{hint} {listing}")


def _override_values(overrides: Iterable[str], key: str) -> list[str]:
    """Values given to ``key=`` on the command line (sweeps ``a,b`` and lists ``[a,b]`` split)."""
    values: list[str] = []
    for item in overrides:
        item = item.lstrip("+~")
        if not item.startswith(key + "="):
            continue
        raw = item.split("=", 1)[1].strip()
        raw = re.sub(r"^(choice|glob)\((.*)\)$", r"\2", raw)
        values += [v.strip().strip("'\"") for v in re.split(r"[,\[\]]", raw) if v.strip()]
    return values


def register_configs(overrides: Sequence[str] = ()) -> None:
    """Register the ``env`` and ``aux`` groups for the names ``overrides`` mention, after
    checking every agent/env/aux name (raising :class:`ConfigError` with the choices)."""
    import envs
    from envs.config import EnvConfig
    from rlaux.objectives.base import OBJECTIVES

    register_resolvers()
    for name in _override_values(overrides, "agent"):
        if name not in agent_names():
            raise _unknown("agent", name, agent_names())
    aux_choices = aux_names()
    for name in _override_values(overrides, "aux"):
        if name != "none" and name not in aux_choices:
            raise _unknown("aux", name, ["none", *aux_choices])
    cs = ConfigStore.instance()
    cs.store(group="aux", name="none", node={}, package="aux")
    for name, cls in OBJECTIVES.items():
        cs.store(group="aux", name=name, node={name: cls.config_class}, package="aux")
    env_names = {"CartPole-v1", *_override_values(overrides, "env")}
    for name in env_names:
        try:
            kind = envs.env_kind(name)
        except envs.UnknownEnvError as exc:
            raise ConfigError(str(exc)) from None
        group, _, option = ("env/" + name).rpartition("/")
        cs.store(group=group, name=option, node=EnvConfig(name=name, kind=kind))


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose the training config as ``python -m rlaux.train *overrides`` would."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_configs(overrides)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return hydra_compose(config_name="train", overrides=list(overrides))


def config_hash(cfg: DictConfig) -> str:
    """Hash of everything in ``cfg`` that a resumed run may not change."""
    data = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(data, dict)
    for key in (*RESUMABLE_OVERRIDES, "resume", "hydra"):
        data.pop(key, None)
    data.get("agent", {}).pop("anneal_steps", None)  # follows `steps`, which a resume may change
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
