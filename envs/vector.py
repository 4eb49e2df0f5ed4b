"""Vectorised environments (sync, async, or ale-py's C++ vector env for Atari) with NEXT_STEP autoreset."""

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


#: Vectorizations whose env state is not in this process, so a checkpoint cannot hold it.
UNSAVED_STATE = {
    "async": "the envs live in subprocesses",
    "ale": "ale-py's C++ emulators cannot be saved",
}


def resume_warning(cfg: Any) -> str | None:
    """The one-line warning for resuming a run whose envs cannot be restored exactly (None if they can)."""
    cfg = resolve_env_config(cfg)
    reason = UNSAVED_STATE.get(cfg.vectorization)
    if reason is None:
        return None
    return (f"env.vectorization={cfg.vectorization}: {reason}; the resumed run starts new episodes "
            "from a fresh reset (use env.vectorization=sync for an exact resume)")


@dataclass(frozen=True)
class EnvFactory:
    """Picklable zero-argument env constructor (for AsyncVectorEnv subprocesses)."""

    cfg: EnvConfig
    seed: int
    mode: str = "train"

    def __call__(self) -> gym.Env:
        return make_env(self.cfg, self.seed, self.mode)


def make_vector_env(cfg: Any, num_envs: int, seed: int, mode: str = "train") -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``make_env(cfg, seed + i, mode)`` in a Sync or Async vector env, or
    for ``vectorization="ale"`` the same Atari games in ale-py's ``AtariVectorEnv``
    (:mod:`envs.ale_vector`; its games are seeded ``seed + i`` at the first ``reset()`` called
    without a seed).

    Autoreset mode is NEXT_STEP: the step that ends an episode returns its final observation
    (and ``info["episode"]`` / ``info["_episode"]``); the next step resets that env, ignoring
    its action, and returns the reset observation with reward 0 and no termination.
    """
    cfg = resolve_env_config(cfg)
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs={num_envs!r} is invalid; expected an integer >= 1")
    if cfg.vectorization == "ale":
        from envs.ale_vector import make_ale_vector_env

        return make_ale_vector_env(cfg, num_envs, seed, mode)
    fns = [EnvFactory(cfg, seed + i, mode) for i in range(num_envs)]
    if cfg.vectorization == "async":
        return gym.vector.AsyncVectorEnv(fns, context=ASYNC_CONTEXT, autoreset_mode=AutoresetMode.NEXT_STEP)
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.NEXT_STEP)
