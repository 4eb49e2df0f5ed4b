"""What every training loop shares: seeding, device, envs, agent, logging, evaluation,
checkpoints and graceful stops.

A loop (``off_policy.py``, ``on_policy.py``) owns the stepping; :class:`TrainingRun` owns
everything around it. Counters: ``step`` counts agent steps (valid transitions summed over
envs), ``frame = step * action_repeat``.
"""

from __future__ import annotations

import json
import math
import pickle
import platform
import random
import signal
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import envs
from agents import Agent, agent_class
from rlaux.checkpoint import CheckpointError, load_latest_checkpoint, rng_state, save_checkpoint, set_rng_state
from rlaux.config import ConfigError, config_hash
from rlaux.logger import Logger, to_float
from rlaux.objectives.base import IncompatibleObjectiveError
from rlaux.training.evaluation import episode_stats, evaluate, random_policy

PACKAGES = ("rlaux", "torch", "numpy", "gymnasium", "ale-py", "dm-control", "mujoco", "stable-baselines3", "hydra-core", "omegaconf", "wandb")


class NonFiniteLossError(RuntimeError):
    """A loss or metric became NaN/Inf."""


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
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def validate_run_config(cfg: DictConfig) -> None:
    """Top-level values, checked before anything is built."""
    checks = {
        "steps": cfg.steps >= 1,
        "eval_every": cfg.eval_every >= 0,
        "eval_episodes": cfg.eval_episodes >= 1,
        "log_every": cfg.log_every >= 1,
        "checkpoint_every": cfg.checkpoint_every >= 0,
        "keep_checkpoints": cfg.keep_checkpoints >= 1,
    }
    for key, ok in checks.items():
        if not ok:
            raise ConfigError(f"{key}={cfg[key]} is out of range (must be >= {0 if key in ('eval_every', 'checkpoint_every') else 1})")
    if cfg.on_nan not in ("stop",):
        raise ConfigError(f"on_nan={cfg.on_nan!r} is not a valid choice; valid choices: stop")


class StopFlag:
    """Turns SIGINT/SIGTERM into a flag the loop polls, so it can checkpoint and exit."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __bool__(self) -> bool:
        return self.signum is not None


class TrainingRun:
    """Everything around a training loop for one run folder."""

    def __init__(self, cfg: DictConfig, run_dir: Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        validate_run_config(cfg)
        self.device = resolve_device(str(cfg.device))
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        seed_everything(int(cfg.seed))

        try:
            self.env_cfg = envs.resolve_env_config(cfg.env)
        except ValueError as exc:  # UnknownEnvError and out-of-range env values
            raise ConfigError(str(exc)) from None
        self.agent_cls = agent_class(str(cfg.agent.name))
        num_envs = cfg.env.num_envs if cfg.env.num_envs is not None else cfg.agent.num_envs
        self.num_envs = int(num_envs)
        if self.num_envs < 1:
            raise ConfigError(f"env.num_envs={self.num_envs} must be >= 1")
        self.action_repeat = int(self.env_cfg.action_repeat)

        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.checkpoint = load_latest_checkpoint(self.checkpoint_dir) if cfg.resume else None
        if cfg.resume and self.checkpoint is None:
            raise CheckpointError(f"resume={cfg.resume}: no readable checkpoint in {self.checkpoint_dir}")
        if self.checkpoint is not None and self.checkpoint.get("config_hash") != config_hash(cfg):
            raise CheckpointError(
                f"checkpoint {self.checkpoint['path']} was written by a different config than {self.run_dir}/config.yaml; "
                "resume with the run's own config (only these keys may change: steps, device, logger, ...)")

        self.env = self._make_train_env()
        self.agent = self._make_agent()
        self.eval_env: gym.vector.VectorEnv | None = None

        self.step = 0
        self.episodes = 0
        self.updates = 0
        self.random_return: float | None = None
        self.last_eval: dict[str, float] = {}
        self.last_eval_step = -1
        self.loop_state: dict[str, Any] = {}
        self.replay: Any = None
        self._episode_returns: list[float] = []
        self._episode_lengths: list[int] = []
        self._next_log = self._next_eval = self._next_ckpt = 0
        self._t_last = time.perf_counter()
        self._step_last = 0
        if self.checkpoint is None:
            self._write_run_files()
        self.logger: Logger | None = None

    # ----------------------------------------------------------------- building
    def _make_train_env(self) -> gym.vector.VectorEnv:
        return envs.make_vector_env(self.env_cfg, self.num_envs, seed=int(self.cfg.seed), mode="train")

    def _make_agent(self) -> Agent:
        cls = self.agent_cls
        try:
            cls.check_action_space(self.env.single_action_space)
        except ValueError as exc:
            raise ConfigError(f"agent={cls.name} cannot run env={self.env_cfg.name}: {exc}") from None
        try:
            agent = cls(self.cfg.agent, self.env.single_observation_space, self.env.single_action_space, self.cfg.aux, self.device)
        except IncompatibleObjectiveError:
            raise
        except ValueError as exc:  # agents validate their config values with ValueError
            raise ConfigError(str(exc)) from None
        return agent.to(self.device)

    def _write_run_files(self) -> None:
        (self.run_dir / "config.yaml").write_text(OmegaConf.to_yaml(self.cfg, resolve=True))
        (self.run_dir / "versions.json").write_text(json.dumps(package_versions(), indent=2))

    def start_logger(self) -> Logger:
        cfg = self.cfg
        self.logger = Logger(
            self.run_dir,
            backend=str(cfg.logger),
            config=OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
            total_steps=int(cfg.steps),
            start_step=self.step,
            progress=bool(cfg.progress) and cfg.logger != "none",
            run_name=self.run_dir.name,
        )
        return self.logger

    # ----------------------------------------------------------------- counters
    @property
    def frame(self) -> int:
        return self.step * self.action_repeat

    def record_episodes(self, info: dict) -> None:
        """Collect episode returns/lengths reported by the train env's statistics wrapper."""
        for _, ret, length in episode_stats(info):
            self.episodes += 1
            self._episode_returns.append(ret)
            self._episode_lengths.append(length)

    def _crossed(self, attr: str, every: int) -> bool:
        """True (and advance the threshold) once ``step`` passed the next multiple of ``every``."""
        if every <= 0 or self.step < getattr(self, attr):
            return False
        setattr(self, attr, (self.step // every + 1) * every)
        return True

    # ----------------------------------------------------------------- periodic work
    def after_step(self, metrics: Mapping[str, torch.Tensor] | None, can_checkpoint: bool = True) -> None:
        """Logging, evaluation and checkpoints due at the current step."""
        cfg = self.cfg
        assert self.logger is not None
        if self._crossed("_next_log", int(cfg.log_every)):
            self.log_train(metrics or {})
        if self._crossed("_next_eval", int(cfg.eval_every)) and self.step > 0:
            self.run_eval()
        if can_checkpoint and self._crossed("_next_ckpt", int(cfg.checkpoint_every)) and self.step > 0:
            self.save()

    def log_train(self, metrics: Mapping[str, torch.Tensor]) -> None:
        assert self.logger is not None
        now = time.perf_counter()
        fps = (self.step - self._step_last) / max(now - self._t_last, 1e-9)
        self._t_last, self._step_last = now, self.step
        row: dict[str, Any] = {"episodes": self.episodes, "updates": self.updates, "steps_per_second": fps}
        if self._episode_returns:
            row["episode_return"] = float(np.mean(self._episode_returns))
            row["episode_length"] = float(np.mean(self._episode_lengths))
            self.logger.latest_return = row["episode_return"]
        self._episode_returns.clear()
        self._episode_lengths.clear()
        values = {k: to_float(v) for k, v in metrics.items()}
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            last = self.checkpoint_path_str()
            raise NonFiniteLossError(
                f"non-finite value in {', '.join(bad)} at step {self.step} (update {self.updates}); "
                f"last good checkpoint: {last}. Try a lower learning rate or check the inputs.")
        row.update(values)
        self.logger.log("train", self.step, self.frame, row)
        postfix = {"sps": fps}
        if self.logger.latest_return is not None:
            postfix["return"] = self.logger.latest_return
        if "return" in self.last_eval:
            postfix["eval"] = self.last_eval["return"]
        self.logger.progress(self.step, **postfix)

    def checkpoint_path_str(self) -> str:
        from rlaux.checkpoint import list_checkpoints

        found = list_checkpoints(self.checkpoint_dir)
        return str(found[-1]) if found else "none yet"

    def _eval_env(self) -> gym.vector.VectorEnv:
        if self.eval_env is None:
            n = min(int(self.cfg.eval_episodes), 10)
            self.eval_env = envs.make_vector_env(self.env_cfg, n, seed=int(self.cfg.seed) + 100_000, mode="eval")
        return self.eval_env

    def run_eval(self) -> dict[str, float]:
        """Evaluate the greedy/deterministic policy and log a row to eval.csv."""
        assert self.logger is not None
        self.agent.eval()
        result = evaluate(lambda o: self.agent.act(o, self.step, eval_mode=True), self._eval_env(),
                          int(self.cfg.eval_episodes), seed=int(self.cfg.seed) + 100_000, device=self.device)
        self.agent.train()
        if self.random_return is not None:
            result["random_return"] = self.random_return
        self.last_eval, self.last_eval_step = result, self.step
        self.logger.log("eval", self.step, self.frame, result)
        self.logger.progress(self.step, eval=result["return"])
        return result

    def evaluate_random_policy(self) -> float:
        """Return of the uniform-random policy (the baseline printed beside the agent's)."""
        env = self._eval_env()
        gen = torch.Generator().manual_seed(int(self.cfg.seed))
        result = evaluate(random_policy(env.single_action_space, env.num_envs, gen), env, int(self.cfg.eval_episodes),
                          seed=int(self.cfg.seed) + 100_000, device=torch.device("cpu"))
        self.random_return = result["return"]
        return self.random_return

    # ----------------------------------------------------------------- checkpoints
    def _env_snapshot(self) -> bytes | None:
        """The train env pickled (sync vector envs of picklable envs), for an exact resume."""
        if not isinstance(self.env, gym.vector.SyncVectorEnv):
            return None
        try:
            return pickle.dumps(self.env)
        except Exception:
            return None

    def save(self) -> Path:
        """Write a checkpoint of the whole run state."""
        cfg = self.cfg
        payload: dict[str, Any] = {
            "config_hash": config_hash(cfg),
            "counters": {"step": self.step, "episodes": self.episodes, "updates": self.updates,
                         "next_log": self._next_log, "next_eval": self._next_eval, "next_ckpt": self._next_ckpt},
            "random_return": self.random_return,
            "agent": self.agent.state_dict(),
            "optimizers": {k: opt.state_dict() for k, opt in self.agent.optimizers().items()},
            "rng": rng_state(),
            "loop": dict(self.loop_state),
            "env": self._env_snapshot(),
            "pending_episodes": (list(self._episode_returns), list(self._episode_lengths)),
        }
        if self.replay is not None and cfg.save_replay:
            if self.replay.nbytes <= float(cfg.max_replay_save_gb) * 2**30:
                payload["replay"] = self.replay.state_dict()
            else:
                warnings.warn(f"replay ({self.replay.nbytes / 2**30:.1f} GB) is larger than max_replay_save_gb; not saved")
        return save_checkpoint(self.checkpoint_dir, self.step, payload, keep=int(cfg.keep_checkpoints))

    def restore(self) -> dict[str, Any]:
        """Load the checkpoint found at start-up into agent, optimisers, counters, RNGs and
        (when saved) the replay; return the loop state. Call after the replay exists."""
        ckpt = self.checkpoint
        assert ckpt is not None
        try:
            self.agent.load_state_dict(ckpt["agent"])
            for name, opt in self.agent.optimizers().items():
                opt.load_state_dict(ckpt["optimizers"][name])
        except (RuntimeError, KeyError) as exc:
            raise CheckpointError(f"checkpoint {ckpt['path']} does not fit this agent: {exc}") from None
        c = ckpt["counters"]
        self.step, self.episodes, self.updates = c["step"], c["episodes"], c["updates"]
        self._next_log, self._next_eval, self._next_ckpt = c["next_log"], c["next_eval"], c["next_ckpt"]
        self._step_last = self.step
        self.random_return = ckpt.get("random_return")
        self._episode_returns, self._episode_lengths = (list(x) for x in ckpt.get("pending_episodes", ([], [])))
        if self.replay is not None and "replay" in ckpt:
            self.replay.load_state_dict(ckpt["replay"])
        if ckpt.get("env") is not None:
            self.env.close()
            self.env = pickle.loads(ckpt["env"])
        set_rng_state(ckpt["rng"])
        return dict(ckpt.get("loop", {}))

    def close(self) -> None:
        for env in (self.env, self.eval_env):
            if env is not None:
                env.close()
        if self.logger is not None:
            self.logger.close()

