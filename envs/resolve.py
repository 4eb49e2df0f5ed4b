"""Fill in and validate an :class:`EnvConfig` (kind from the name, None defaults, value checks)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from envs.config import EnvConfig
from envs.registration import parse_gym_id
from envs.registry import env_kind, parse_dmc_name

OBS_CHOICES = ("state", "pixels")
VECTORIZATION_CHOICES = ("sync", "async", "ale")
PROTOCOL_CHOICES = ("v5", "100k")
DEFAULT_ACTION_REPEAT = {"dmc": 2, "atari": 4, "gym": 1}


def to_env_config(cfg: Any) -> EnvConfig:
    """Accept an EnvConfig, an OmegaConf DictConfig or a plain mapping with EnvConfig's keys."""
    if isinstance(cfg, EnvConfig):
        return dataclasses.replace(cfg)
    if not isinstance(cfg, Mapping):
        try:  # OmegaConf DictConfig (also a structured config of EnvConfig)
            from omegaconf import DictConfig, OmegaConf

            if isinstance(cfg, DictConfig):
                cfg = OmegaConf.to_container(cfg, resolve=True)
        except ImportError:  # pragma: no cover
            pass
    if not isinstance(cfg, Mapping):
        raise TypeError(f"env config must be an EnvConfig, DictConfig or dict, got {type(cfg).__name__}")
    fields = {f.name for f in dataclasses.fields(EnvConfig)}
    unknown = sorted(set(cfg) - fields)
    if unknown:
        raise ValueError(f"Unknown env config field(s) {unknown}; valid fields: {sorted(fields)}")
    return EnvConfig(**dict(cfg))


def _check_choice(field: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"env.{field}={value!r} is invalid; choose one of {list(choices)}")


def _check_int(field: str, value: Any, minimum: int = 1, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"env.{field}={value!r} is invalid; expected an integer >= {minimum}")


def resolve_env_config(cfg: Any) -> EnvConfig:
    """Return a validated copy of ``cfg`` with ``kind`` set and every None default resolved.

    A registered id (``rlaux/cheetah-run-v0``, ``rlaux/cheetah-run-pixels-v0``) becomes its DMC
    name (``cheetah-run``), and a ``-pixels`` id sets ``obs="pixels"``.
    Defaults: action_repeat 2 (DMC) / 4 (Atari frame skip) / 1 (Gymnasium); frame_stack 3 (DMC
    pixels) / 4 (Atari) / 1 otherwise; camera 2 for quadruped, else 0. Atari observations are
    always pixels. Raises ValueError (UnknownEnvError for names) naming the bad field and value.
    """
    cfg = to_env_config(cfg)
    registered = parse_gym_id(cfg.name) if isinstance(cfg.name, str) else None
    if registered is not None:
        cfg.name = registered[0]
        if registered[1] == "pixels":
            cfg.obs = "pixels"
    kind = env_kind(cfg.name)
    cfg.kind = kind
    _check_choice("obs", cfg.obs, OBS_CHOICES)
    if kind == "atari":
        cfg.obs = "pixels"
    elif kind == "gym" and cfg.obs == "pixels":
        raise ValueError(
            f"env.obs='pixels' is only supported for DeepMind Control tasks (and Atari, always "
            f"pixels); {cfg.name!r} is a Gymnasium id: use env.obs='state'"
        )
    _check_choice("vectorization", cfg.vectorization, VECTORIZATION_CHOICES)
    if cfg.vectorization == "ale" and kind != "atari":
        others = [v for v in VECTORIZATION_CHOICES if v != "ale"]
        raise ValueError(f"env.vectorization='ale' is only for Atari (ALE/<Game>-v5); {cfg.name!r} is not Atari: "
                         f"choose one of {others}")
    if cfg.vectorization == "ale" and cfg.max_episode_steps is not None:
        raise ValueError("env.max_episode_steps is not supported with env.vectorization='ale' "
                         "(ale-py caps games at 108k frames); use env.vectorization='sync'")
    _check_choice("protocol", cfg.protocol, PROTOCOL_CHOICES)
    _check_int("num_envs", cfg.num_envs, optional=True)
    _check_int("action_repeat", cfg.action_repeat, optional=True)
    _check_int("frame_stack", cfg.frame_stack, optional=True)
    _check_int("image_size", cfg.image_size)
    _check_int("camera", cfg.camera, minimum=0, optional=True)
    _check_int("max_episode_steps", cfg.max_episode_steps, optional=True)
    _check_int("noop_max", cfg.noop_max, minimum=0)
    for field in ("terminal_on_life_loss", "clip_rewards"):
        if not isinstance(getattr(cfg, field), bool):
            raise ValueError(f"env.{field}={getattr(cfg, field)!r} is invalid; expected true or false")

    if cfg.action_repeat is None:
        cfg.action_repeat = DEFAULT_ACTION_REPEAT[kind]
    if cfg.frame_stack is None:
        cfg.frame_stack = 4 if kind == "atari" else 3 if (kind == "dmc" and cfg.obs == "pixels") else 1
    if cfg.camera is None:
        cfg.camera = 2 if kind == "dmc" and parse_dmc_name(cfg.name)[0] == "quadruped" else 0
    return cfg
