"""A run folder as the tools read it: ``config.yaml`` and ``versions.json`` (written when a run
starts), its newest readable checkpoint with the config that built it, the agent rebuilt from
them, and how a folder's config differs from another one."""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from omegaconf import DictConfig, OmegaConf

from agents import Agent, agent_class
from rlaux.checkpoint import CheckpointError, load_checkpoint, load_latest_checkpoint
from rlaux.config import COMPARISON_SKIPS, ConfigError
from rlaux.objectives.base import IncompatibleObjectiveError

#: The packages whose versions ``versions.json`` records.
PACKAGES = ("rlaux", "torch", "numpy", "gymnasium", "ale-py", "dm-control", "mujoco", "stable-baselines3", "hydra-core",
            "omegaconf", "wandb")


def package_versions() -> dict[str, str]:
    """{package: installed version} of python and :data:`PACKAGES`."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_run_files(cfg: DictConfig, run_dir: Path) -> None:
    """Write a new run's ``config.yaml`` (resolved) and ``versions.json``."""
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (run_dir / "versions.json").write_text(json.dumps(package_versions(), indent=2))


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict as {dotted key: leaf value} (an empty dict has no leaves)."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


def config_differences(saved: Mapping[str, Any] | DictConfig, current: Mapping[str, Any] | DictConfig,
                       limit: int = 5) -> list[str]:
    """``key: saved -> current`` for the first ``limit`` dotted keys whose values differ,
    leaving out the :data:`COMPARISON_SKIPS` and the keys under them."""
    a, b = (_flatten(OmegaConf.to_container(c, resolve=True) if isinstance(c, DictConfig) else dict(c))
            for c in (saved, current))

    def compared(key: str) -> bool:
        return not any(key == skip or key.startswith(skip + ".") for skip in COMPARISON_SKIPS)

    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and compared(k))
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys[:limit]]


#: config keys an older rlaux wrote under another name: {old dotted key: today's}
RENAMED_KEYS = {"agent.detach_encoder": "agent.detach_rl"}


def matches_older_config(saved: Mapping[str, Any], current: Mapping[str, Any] | DictConfig) -> bool:
    """True when every key of ``saved`` (a checkpoint's config, maybe written by an older rlaux)
    has the same value in ``current`` (under its new name if it was renamed), leaving out the
    :data:`COMPARISON_SKIPS`. Keys that only ``current`` has are keys added since (a resume fills
    them with their defaults), so they do not count as differences."""
    a = _flatten(dict(saved))
    b = _flatten(OmegaConf.to_container(current, resolve=True) if isinstance(current, DictConfig) else dict(current))
    for key, value in a.items():
        if any(key == skip or key.startswith(skip + ".") for skip in COMPARISON_SKIPS):
            continue
        missing = object()
        now = b.get(RENAMED_KEYS.get(key, key), b.get(key, missing))  # the old name, when config.yaml still has it
        if now is missing or now != value:
            return False
    return True


def build_agent(cfg: DictConfig, obs_space: gym.Space, action_space: gym.Space, device: torch.device,
                state: dict[str, Any] | None = None) -> Agent:
    """The run's agent (``cfg.agent``, ``cfg.aux``) for these spaces on ``device``, with
    ``state`` (an ``agent.state_dict()``) loaded when given.

    Raises :class:`ConfigError` (an agent that cannot run these spaces, a bad agent value),
    :class:`IncompatibleObjectiveError` and :class:`CheckpointError` (a state of another agent)."""
    cls = agent_class(str(cfg.agent.name))
    try:
        cls.check_action_space(action_space)
    except ValueError as exc:
        raise ConfigError(f"agent={cls.name} cannot run env={cfg.env.name}: {exc}") from None
    try:
        agent = cls(cfg.agent, obs_space, action_space, cfg.aux, device)
    except IncompatibleObjectiveError:
        raise
    except ValueError as exc:  # agents validate their config values with ValueError
        raise ConfigError(str(exc)) from None
    agent = agent.to(device)
    if state is not None:
        try:
            agent.load_state_dict(state)
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"the checkpoint does not fit agent={cls.name} on env={cfg.env.name}: {exc}") from None
    return agent


@dataclass
class LoadedCheckpoint:
    """A checkpoint with the run config that built it."""

    cfg: DictConfig
    run_dir: Path
    path: Path
    data: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.data.get("counters", {}).get("step", self.data.get("step", 0)))


def load_run_checkpoint(run: str | Path | None = None, checkpoint: str | Path | None = None) -> LoadedCheckpoint:
    """The checkpoint file ``checkpoint`` (or ``run``'s newest readable one) and its run config
    (the folder's ``config.yaml``, else the config stored in the checkpoint).

    Raises :class:`CheckpointError` (missing folder/file/config, unreadable checkpoint).
    """
    if run is None and checkpoint is None:
        raise CheckpointError("give run=RUN_DIR or checkpoint=FILE")
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise CheckpointError(f"checkpoint={path}: no such file")
        data = load_checkpoint(path)
        run_dir = Path(run) if run is not None else (path.parent.parent if path.parent.name == "checkpoints" else path.parent)
    else:
        run_dir = Path(run)  # type: ignore[arg-type]
        if not run_dir.is_dir():
            raise CheckpointError(f"run={run_dir}: no such folder")
        found = load_latest_checkpoint(run_dir / "checkpoints")
        if found is None:
            raise CheckpointError(f"run={run_dir}: no readable checkpoint in {run_dir / 'checkpoints'}")
        path, data = Path(found.pop("path")), found
    config_path = run_dir / "config.yaml"
    if config_path.is_file():
        cfg = OmegaConf.load(config_path)
    elif isinstance(data.get("config"), dict):
        cfg = OmegaConf.create(data["config"])
    else:
        raise CheckpointError(f"{config_path} not found and checkpoint {path} holds no config; is {run_dir} an rlaux run folder?")
    assert isinstance(cfg, DictConfig)
    return LoadedCheckpoint(cfg=cfg, run_dir=run_dir, path=path, data=data)
