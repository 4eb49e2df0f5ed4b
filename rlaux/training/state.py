"""A run's checkpoint: what :meth:`TrainingRun.save` writes and what a resumed run puts back.

The payload (see :mod:`rlaux.checkpoint` for the file): the config and its hash, the counters
and schedule thresholds, the agent and its optimisers, the global RNG states, the latest
update's metrics, the episodes not logged yet, the train env pickled (when it can be) and the
loop's own ``state_dict()``.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle
import gymnasium as gym
import torch
from omegaconf import OmegaConf

import envs
from rlaux.checkpoint import CheckpointError, rng_state, save_checkpoint, set_rng_state
from rlaux.config import config_hash

if TYPE_CHECKING:
    from rlaux.training.run import TrainingRun


def env_snapshot(env: gym.vector.VectorEnv, name: str) -> bytes | None:
    """The train env pickled, for an exact resume: sync vector envs of picklable envs
    (Gymnasium ids, DMC with its physics state, Atari with its emulator state); None for
    async envs (their state lives in subprocesses): those resume from a fresh reset, as do
    envs that cannot be pickled (with a warning, which Python shows once per message)."""
    if not isinstance(env.unwrapped, gym.vector.SyncVectorEnv):
        return None
    try:  # cloudpickle: also the local functions of wrappers like gymnasium's RescaleAction
        return cloudpickle.dumps(env)
    except Exception as exc:
        warnings.warn(f"env {name!r} cannot be saved in checkpoints ({type(exc).__name__}: {exc}); "
                      "a resumed run starts new episodes", RuntimeWarning, stacklevel=3)
        return None


def save_run_state(run: TrainingRun) -> Path:
    """Write ``run``'s checkpoint (keeping ``keep_checkpoints`` files); returns its path."""
    cfg = run.cfg
    payload: dict[str, Any] = {
        "config_hash": config_hash(cfg),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "counters": {"step": run.step, "episodes": run.episodes, "updates": run.updates,
                     "next_log": run.next_log, "next_eval": run.next_eval, "next_ckpt": run.next_ckpt,
                     "nan_skipped": run.nan.skipped, "last_eval": dict(run.last_eval),
                     "last_eval_step": run.last_eval_step},
        "random_return": run.random_return,
        "agent": run.agent.state_dict(),
        "optimizers": {k: opt.state_dict() for k, opt in run.agent.optimizers().items()},
        "rng": rng_state(),
        "loop": run.loop.state_dict() if run.loop is not None else {},
        "metrics": {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in run.last_metrics.items()},
        "env": env_snapshot(run.env, run.env_cfg.name),
        "pending_episodes": (list(run.episode_returns), list(run.episode_lengths)),
    }
    return save_checkpoint(run.checkpoint_dir, run.step, payload, keep=int(cfg.keep_checkpoints))


def restore_run_state(run: TrainingRun, ckpt: Mapping[str, Any]) -> None:
    """Load ``ckpt`` into ``run``: agent, optimisers, counters, metrics, pending episodes, the
    train env (when it was saved), the loop's state and, last, the RNG states."""
    try:
        run.agent.load_state_dict(ckpt["agent"])
        for name, opt in run.agent.optimizers().items():
            opt.load_state_dict(ckpt["optimizers"][name])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {ckpt['path']} does not fit this agent: {exc}") from None
    run.restore_counters(ckpt)
    run.restored_metrics = {k: v.to(run.device) if isinstance(v, torch.Tensor) else v
                            for k, v in ckpt.get("metrics", {}).items()}
    run.nan.good_metrics = dict(run.restored_metrics)
    run.episode_returns, run.episode_lengths = (list(x) for x in ckpt.get("pending_episodes", ([], [])))
    env_restored = ckpt.get("env") is not None
    if env_restored:
        run.replace_env(pickle.loads(ckpt["env"]))
    elif (reason := envs.resume_warning(run.env_cfg)) is not None:
        run._warn(f"rlaux: warning: {reason}")
    if run.loop is not None:
        run.loop.load_state_dict(ckpt.get("loop", {}), env_restored)
    set_rng_state(ckpt["rng"])
