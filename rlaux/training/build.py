"""What a run is built from: its device, seeds and vector envs."""

from __future__ import annotations

import random

import gymnasium as gym
import numpy as np
import torch

import envs
from envs import EnvConfig, EnvError, EnvErrorGuard
from envs.guard import describe_env_exception
from rlaux.config import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; otherwise ``torch.device(name)``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device={name!r} is not a valid device; valid choices: auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} was asked for but no CUDA GPU is available; use device=cpu or device=auto")
    return device


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_guarded_vector_env(env_cfg: EnvConfig, num_envs: int, seed: int, mode: str) -> gym.vector.VectorEnv:
    """A vector env whose reset/step errors come out as one clear :class:`EnvError`; an env
    whose constructor raises is a :class:`ConfigError` (a start-up error)."""
    try:
        env = envs.make_vector_env(env_cfg, num_envs, seed=seed, mode=mode)
    except (ConfigError, EnvError):
        raise
    except Exception as exc:
        raise ConfigError(describe_env_exception(exc, env_cfg.name, "__init__", mode)
                          + "; check the env's name and options") from exc
    return EnvErrorGuard(env, env_cfg.name, role=mode)
