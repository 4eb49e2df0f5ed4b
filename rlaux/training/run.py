"""What every training loop shares: seeding, device, envs, agent, logging, evaluation,
checkpoints and graceful stops.

A loop (``off_policy.py``, ``on_policy.py``) owns the stepping; :class:`TrainingRun` owns
everything around it. Counters: ``step`` counts agent steps (valid transitions summed over
envs), ``frame = step * action_repeat``.
"""

from __future__ import annotations

import copy
import json
import math
import pickle
import platform
import random
import signal
import time
import warnings
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import cloudpickle
import gymnasium as gym
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import envs
from agents import Agent, agent_class
from envs import EnvError, EnvErrorGuard
from rlaux.checkpoint import (
    CheckpointError,
    CheckpointWarning,
    list_checkpoints,
    load_latest_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from rlaux.config import RESUMABLE_OVERRIDES, ConfigError, config_hash
from rlaux.logger import Logger, to_float
from rlaux.objectives.base import IncompatibleObjectiveError
from rlaux.training.evaluation import episode_stats, evaluate, random_policy
from rlaux.validation import validate_config

PACKAGES = ("rlaux", "torch", "numpy", "gymnasium", "ale-py", "dm-control", "mujoco", "stable-baselines3", "hydra-core",
            "omegaconf", "wandb")


class NonFiniteLossError(RuntimeError):
    """A loss, metric or parameter became NaN/Inf (with ``on_nan=stop``)."""


#: Errors that end a started run with one clear message (the run folder is kept, with a
#: ``summary.json`` saying ``"failed": true``): a NaN/Inf, or an env raising in reset/step.
RUN_FAILURES = (NonFiniteLossError, EnvError)


def non_finite_names(metrics: Mapping[str, Any]) -> list[str]:
    """Names of the metrics that are NaN/Inf (one host sync for all tensor metrics)."""
    tensors = {k: v for k, v in metrics.items() if isinstance(v, torch.Tensor)}
    bad = [k for k, v in metrics.items() if not isinstance(v, torch.Tensor) and not math.isfinite(float(v))]
    if tensors:
        flags = torch.stack([v.detach().isfinite().all() for v in tensors.values()]).cpu()
        if not bool(flags.all()):
            bad += [k for k, ok in zip(tensors, flags.tolist()) if not ok]
    return bad


def non_finite_parameters(module: torch.nn.Module) -> list[str]:
    """Names of the parameters/buffers of ``module`` holding NaN/Inf (one host sync)."""
    named = [(k, v) for k, v in module.state_dict().items() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    if not named:
        return []
    flags = torch.stack([v.isfinite().all() for _, v in named]).cpu()
    return [] if bool(flags.all()) else [k for (k, _), ok in zip(named, flags.tolist()) if not ok]


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


def validate_run_config(cfg: DictConfig) -> list[str]:
    """Check the config's values before anything is built (see :mod:`rlaux.validation`);
    returns warnings."""
    return validate_config(cfg)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): data}


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any], limit: int = 5) -> list[str]:
    """``key: saved -> current`` for keys (other than those a resume may change) that differ."""
    a, b = _flatten(dict(saved)), _flatten(dict(current))
    skip = (*RESUMABLE_OVERRIDES, "resume", "hydra", "agent.anneal_steps")
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and not k.startswith(skip))
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys[:limit]]


class StopFlag:
    """Turns SIGINT/SIGTERM into a flag the loop polls, so it can checkpoint and exit."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
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
        self.warnings = validate_run_config(cfg)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.device = resolve_device(str(cfg.device))
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        torch.set_float32_matmul_precision(str(cfg.matmul_precision))
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
        with warnings.catch_warnings(record=True) as caught:  # skipped unreadable checkpoints: said by the logger
            warnings.simplefilter("always", CheckpointWarning)
            self.checkpoint = load_latest_checkpoint(self.checkpoint_dir) if cfg.resume else None
        for w in caught:
            if issubclass(w.category, CheckpointWarning):
                self.warnings.append(str(w.message))
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if cfg.resume and self.checkpoint is None:
            raise CheckpointError(f"resume={cfg.resume}: no readable checkpoint in {self.checkpoint_dir}")
        if self.checkpoint is not None and self.checkpoint.get("config_hash") != config_hash(cfg):
            raise CheckpointError(self._mismatch_message())

        self.env = self._make_train_env()
        self.agent = self._make_agent()
        self.eval_env: gym.vector.VectorEnv | None = None

        self.step = 0
        self.episodes = 0
        self.updates = 0
        self.nan_skipped = 0
        self.random_return: float | None = None
        self.last_eval: dict[str, float] = {}
        self.last_eval_step = -1
        self.loop_state: dict[str, Any] = {}
        self.replay: Any = None
        self._episode_returns: list[float] = []
        self._episode_lengths: list[int] = []
        self._next_log = self._next_eval = self._next_ckpt = 0
        self._last_metrics: Mapping[str, Any] = {}
        self._good_metrics: dict[str, torch.Tensor] = {}
        #: the latest update's metrics at the checkpoint: a resumed loop logs them until its next update
        self.restored_metrics: dict[str, torch.Tensor] = {}
        if self.checkpoint is not None:
            self._restore_counters(self.checkpoint)  # before the logger starts: it truncates the CSVs there
        self._t_last = time.perf_counter()
        self._step_last = self.step
        if self.checkpoint is None:
            self._write_run_files()
        self.logger: Logger | None = None

    def _mismatch_message(self) -> str:
        ckpt = self.checkpoint
        assert ckpt is not None
        text = (f"checkpoint {ckpt['path']} was written by a different config than this run's "
                f"({self.run_dir / 'config.yaml'})")
        if isinstance(ckpt.get("config"), dict):
            diffs = config_differences(ckpt["config"], OmegaConf.to_container(self.cfg, resolve=True))  # type: ignore[arg-type]
            if diffs:
                text += "; differing keys: " + "; ".join(diffs)
        return (text + ". It belongs to another run, or config.yaml was edited: resume the run that wrote it, or "
                "move that checkpoint out of the folder. On resume only these keys may change: "
                + ", ".join(RESUMABLE_OVERRIDES))

    # ----------------------------------------------------------------- building
    def _make_vector_env(self, num_envs: int, seed: int, mode: str) -> gym.vector.VectorEnv:
        """A vector env whose reset/step errors come out as one clear :class:`EnvError`."""
        try:
            env = envs.make_vector_env(self.env_cfg, num_envs, seed=seed, mode=mode)
        except (ConfigError, EnvError):
            raise
        except Exception as exc:  # the env's constructor raised: a start-up error, named as such
            from envs.guard import describe_env_exception

            raise ConfigError(describe_env_exception(exc, self.env_cfg.name, "__init__", mode)
                              + "; check the env's name and options") from exc
        return EnvErrorGuard(env, self.env_cfg.name, role=mode)

    def _make_train_env(self) -> gym.vector.VectorEnv:
        return self._make_vector_env(self.num_envs, int(self.cfg.seed), "train")

    def _make_agent(self) -> Agent:
        cls = self.agent_cls
        try:
            cls.check_action_space(self.env.single_action_space)
        except ValueError as exc:
            raise ConfigError(f"agent={cls.name} cannot run env={self.env_cfg.name}: {exc}") from None
        try:
            agent = cls(self.cfg.agent, self.env.single_observation_space, self.env.single_action_space, self.cfg.aux,
                        self.device)
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
        for text in self.warnings:
            self.logger.message(f"rlaux: warning: {text}")
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
        self._last_metrics = metrics or {}
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
        if self.cfg.on_nan == "skip":
            row["nan_skipped"] = self.nan_skipped
        if self._episode_returns:
            row["episode_return"] = float(np.mean(self._episode_returns))
            row["episode_length"] = float(np.mean(self._episode_lengths))
            self.logger.latest_return = row["episode_return"]
        self._episode_returns.clear()
        self._episode_lengths.clear()
        self.check_finite(metrics)
        values = {k: to_float(v) for k, v in metrics.items()}
        row.update(values)
        self.logger.log("train", self.step, self.frame, row)
        postfix = {"sps": fps}
        if self.logger.latest_return is not None:
            postfix["return"] = self.logger.latest_return
        if "return" in self.last_eval:
            postfix["eval"] = self.last_eval["return"]
        self.logger.progress(self.step, **postfix)

    def checkpoint_path_str(self) -> str:
        found = list_checkpoints(self.checkpoint_dir)
        return str(found[-1]) if found else "none yet"

    # ----------------------------------------------------------------- NaN/Inf
    def check_finite(self, metrics: Mapping[str, Any] | None = None) -> None:
        """Raise :class:`NonFiniteLossError` naming the step, the NaN/Inf metrics (or
        parameters) and the last good checkpoint. Runs at every log row and before every
        checkpoint, so no checkpoint ever holds NaN/Inf parameters."""
        bad = non_finite_names(metrics or {})
        params = non_finite_parameters(self.agent)
        if not bad and not params:
            return
        what = f"loss/metric {', '.join(bad)}" if bad else ""
        if params:
            shown = ", ".join(params[:3]) + (f" (+{len(params) - 3} more)" if len(params) > 3 else "")
            what += ("; " if what else "") + f"parameters {shown}"
        raise NonFiniteLossError(
            f"NaN/Inf in {what} at step {self.step} (update {self.updates}; checked every log_every={self.cfg.log_every} "
            f"steps); last good checkpoint: {self.checkpoint_path_str()}. Lower the learning rate (agent.lr), clip "
            "gradients (agent.max_grad_norm) or check the env's observations and rewards; on_nan=skip drops such "
            "updates instead of stopping.")

    def apply_update(self, update: Callable[..., dict[str, torch.Tensor]], *args: Any) -> dict[str, torch.Tensor]:
        """Run ``update(*args)`` (one agent update) under the ``on_nan`` policy.

        ``stop``: run it as is (NaN/Inf is caught at the next log row or checkpoint).
        ``skip``: snapshot the agent's parameters and optimiser states, run the update, and if
        any returned metric or any parameter is NaN/Inf, put the snapshot back (the update is
        not applied), count it in ``nan_skipped`` (logged in train.csv) and say so; returns
        the last good metrics then.
        """
        if self.cfg.on_nan != "skip":
            return update(*args)
        params = {k: v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)
                  for k, v in self.agent.state_dict().items()}
        optims = {k: copy.deepcopy(opt.state_dict()) for k, opt in self.agent.optimizers().items()}
        metrics = update(*args)
        bad = non_finite_names(metrics)
        bad_params = non_finite_parameters(self.agent)
        if not bad and not bad_params:
            self._good_metrics = dict(metrics)
            return metrics
        self.agent.load_state_dict(params)
        for k, opt in self.agent.optimizers().items():
            opt.load_state_dict(optims[k])
        self.nan_skipped += 1
        n = self.nan_skipped
        if n <= 5 or n & (n - 1) == 0:  # the first few, then at powers of two
            what = ", ".join(bad) if bad else f"parameters {', '.join(bad_params[:3])}"
            text = (f"rlaux: warning: NaN/Inf in {what} at step {self.step} (update {self.updates}); update skipped "
                    f"(on_nan=skip; {n} skipped so far)")
            if self.logger is not None:
                self.logger.message(text)
            else:
                warnings.warn(text, RuntimeWarning, stacklevel=2)
        return self._good_metrics

    # ----------------------------------------------------------------- evaluation
    def _eval_env(self) -> gym.vector.VectorEnv:
        if self.eval_env is None:
            n = min(int(self.cfg.eval_episodes), 10)
            self.eval_env = self._make_vector_env(n, int(self.cfg.seed) + 100_000, "eval")
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
        """The train env pickled, for an exact resume: sync vector envs of picklable envs
        (Gymnasium ids, DMC with its physics state, Atari with its emulator state); None for
        async envs (their state lives in subprocesses): those resume from a fresh reset."""
        if not isinstance(self.env.unwrapped, gym.vector.SyncVectorEnv):
            return None
        try:  # cloudpickle: also the local functions of wrappers like gymnasium's RescaleAction
            return cloudpickle.dumps(self.env)
        except Exception as exc:
            if not getattr(self, "_warned_env_pickle", False):
                self._warned_env_pickle = True
                warnings.warn(f"env {self.env_cfg.name!r} cannot be saved in checkpoints ({type(exc).__name__}: {exc}); "
                              "a resumed run starts new episodes", RuntimeWarning, stacklevel=2)
            return None

    def save(self) -> Path:
        """Write a checkpoint of the whole run state (refusing NaN/Inf parameters)."""
        cfg = self.cfg
        self.check_finite(self._last_metrics if cfg.on_nan != "skip" else None)
        payload: dict[str, Any] = {
            "config_hash": config_hash(cfg),
            "config": OmegaConf.to_container(cfg, resolve=True),
            "counters": {"step": self.step, "episodes": self.episodes, "updates": self.updates,
                         "next_log": self._next_log, "next_eval": self._next_eval, "next_ckpt": self._next_ckpt,
                         "nan_skipped": self.nan_skipped, "last_eval": dict(self.last_eval),
                         "last_eval_step": self.last_eval_step},
            "random_return": self.random_return,
            "agent": self.agent.state_dict(),
            "optimizers": {k: opt.state_dict() for k, opt in self.agent.optimizers().items()},
            "rng": rng_state(),
            "loop": dict(self.loop_state),
            "metrics": {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in self._last_metrics.items()},
            "env": self._env_snapshot(),
            "pending_episodes": (list(self._episode_returns), list(self._episode_lengths)),
        }
        if self.replay is not None and cfg.save_replay:
            if self.replay.nbytes <= float(cfg.max_replay_save_gb) * 2**30:
                payload["replay"] = self.replay.state_dict()
            else:
                warnings.warn(f"replay ({self.replay.nbytes / 2**30:.1f} GB) is larger than max_replay_save_gb; not saved",
                              stacklevel=2)
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
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {ckpt['path']} does not fit this agent: {exc}") from None
        self._restore_counters(ckpt)
        self.restored_metrics = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v
                                 for k, v in ckpt.get("metrics", {}).items()}
        self._good_metrics = dict(self.restored_metrics)
        self._episode_returns, self._episode_lengths = (list(x) for x in ckpt.get("pending_episodes", ([], [])))
        if self.replay is not None and "replay" in ckpt:
            self.replay.load_state_dict(ckpt["replay"])
        if ckpt.get("env") is not None:
            env = pickle.loads(ckpt["env"])
            if not isinstance(env, EnvErrorGuard):  # written before envs were guarded
                env = EnvErrorGuard(env, self.env_cfg.name, role="train")
            self.env.close()
            self.env = env
        set_rng_state(ckpt["rng"])
        return dict(ckpt.get("loop", {}))

    def _restore_counters(self, ckpt: Mapping[str, Any]) -> None:
        c = ckpt["counters"]
        self.step, self.episodes, self.updates = c["step"], c["episodes"], c["updates"]
        self._next_log, self._next_eval, self._next_ckpt = c["next_log"], c["next_eval"], c["next_ckpt"]
        self.nan_skipped = int(c.get("nan_skipped", 0))
        self.last_eval, self.last_eval_step = dict(c.get("last_eval", {})), int(c.get("last_eval_step", -1))
        self._step_last = self.step
        self.random_return = ckpt.get("random_return")

    def record_failure(self, exc: BaseException) -> None:
        """Add where the run stopped to a :data:`RUN_FAILURES` error's message, and write
        ``summary.json`` with ``"failed": true`` so the folder says what happened."""
        text = str(exc.args[0]) if exc.args else str(exc)
        found = list_checkpoints(self.checkpoint_dir)
        if isinstance(exc, EnvError):
            text += f"; at agent step {self.step}; last checkpoint: {found[-1] if found else 'none yet'}"
            if found:
                text += f". Once the env is fixed, continue with: python -m rlaux.train resume={self.run_dir}"
        exc.args = (text, *exc.args[1:])
        # No "interrupted" key: tools that look for a finished run ("interrupted": false) skip it.
        summary = {"failed": True, "error": text, "step": self.step,
                   "checkpoint": str(found[-1]) if found else None, "run_dir": str(self.run_dir)}
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))

    def close(self) -> None:
        for env in (self.env, self.eval_env):
            if env is not None:
                env.close()
        if self.logger is not None:
            self.logger.close()

