"""``make_env``: one fully wrapped environment of any kind from an env config."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from envs.config import EnvConfig
from envs.resolve import resolve_env_config
from envs.wrappers import ConcatFrames, SeedOnFirstReset

MODES = ("train", "eval")


def check_mode(mode: str) -> None:
    """Raise ValueError unless ``mode`` is one of :data:`MODES`."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is invalid; choose one of {list(MODES)}")


def _stack(env: gym.Env, frame_stack: int, pixels: bool) -> gym.Env:
    """Stack ``frame_stack`` observations, concatenated along the first (channel) axis."""
    if frame_stack == 1 and not pixels:
        return env
    return ConcatFrames(gym.wrappers.FrameStackObservation(env, frame_stack))


def make_dmc_env(cfg: EnvConfig, seed: int | None, render_mode: str | None = None) -> gym.Env:
    """A resolved DMC config's env: the task (its random state from ``seed``; None: from the
    first ``reset(seed=...)``), [TimeLimit], episode statistics, frame stacking (pixels)."""
    from envs.dmc import DMCEnv
    from envs.registry import parse_dmc_name

    domain, task = parse_dmc_name(cfg.name)
    env: gym.Env = DMCEnv(
        domain,
        task,
        seed=seed,
        obs=cfg.obs,
        action_repeat=cfg.action_repeat,
        image_size=cfg.image_size,
        camera=cfg.camera,
        render_mode=render_mode,
    )
    if cfg.max_episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, cfg.max_episode_steps)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    return _stack(env, cfg.frame_stack, pixels=cfg.obs == "pixels")


def _make_gym(cfg: EnvConfig) -> gym.Env:
    from envs.gym_envs import make_gym_env

    env = gym.wrappers.RecordEpisodeStatistics(make_gym_env(cfg))
    return _stack(env, cfg.frame_stack, pixels=False)


def make_env(cfg: Any, seed: int, mode: str = "train") -> gym.Env:
    """Build one fully wrapped env.

    Args:
        cfg: EnvConfig, DictConfig or dict (resolved here with :func:`resolve_env_config`).
        seed: seeds the task / the first ``reset()`` called without a seed, and the spaces.
        mode: "train" or "eval"; "eval" turns off Atari life-loss terminals and reward clipping.

    Every env reports ``info["episode"] = {"r", "l", "t"}`` at the end of an episode: the raw
    return (before reward clipping; the whole game's for Atari) and the length in agent steps.
    """
    check_mode(mode)
    cfg = resolve_env_config(cfg)
    if cfg.kind == "dmc":
        env = make_dmc_env(cfg, seed)
    elif cfg.kind == "atari":
        from envs.atari import make_atari_env

        env = make_atari_env(cfg, mode)
    else:
        env = _make_gym(cfg)
    return SeedOnFirstReset(env, seed)
