"""What every training loop shares: seeding, device, envs, agent, logging, evaluation,
checkpoints and the failure summary.

A loop (:mod:`rlaux.training.off_policy`, :mod:`rlaux.training.on_policy`) owns the stepping
and its own state; :class:`TrainingRun` owns everything around it, and the counters: ``step``
counts agent steps (valid transitions summed over envs), ``frame = step * action_repeat``.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import envs
from agents import Agent, agent_class
from envs import EnvError
from rlaux.checkpoint import CheckpointError, CheckpointWarning, list_checkpoints, load_latest_checkpoint
from rlaux.compile import CompiledUpdate
from rlaux.config import RESUMABLE_OVERRIDES, ConfigError, config_hash
from rlaux.logger import Logger, to_float
from rlaux.run_files import build_agent, config_differences, matches_older_config, write_run_files
from rlaux.threads import configure_threads
from rlaux.training.build import make_guarded_vector_env, resolve_device, seed_everything
from rlaux.training.evaluation import EVAL_SEED_OFFSET, episode_stats, eval_num_envs, evaluate, random_policy
from rlaux.training.health import NanPolicy, non_finite_description, stop_error
from rlaux.training.state import restore_run_state, save_run_state
from rlaux.validation import validate_config

if TYPE_CHECKING:
    from rlaux.training.loop import Loop


#: seconds between two looks at how many rlaux runs share this run's cores (``threads=auto``)
THREADS_REFRESH_S = 1.0


class TrainingRun:
    """Everything around a training loop for one run folder."""

    def __init__(self, cfg: DictConfig, run_dir: Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.warnings = validate_config(cfg)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.device = resolve_device(str(cfg.device))
        self._set_threads()
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
        self.checkpoint = self._find_checkpoint() if cfg.resume else None

        self.env = self._make_vector_env(self.num_envs, int(cfg.seed), "train")
        self.agent = self._make_agent()
        self.eval_env: gym.vector.VectorEnv | None = None
        #: the loop being run (:meth:`attach`): a checkpoint holds its state
        self.loop: Loop | None = None

        self.step = 0
        self.episodes = 0
        self.updates = 0
        self.nan = NanPolicy(self.agent, str(cfg.on_nan), self._where, self._warn)
        #: the agent's update the loops run (through :meth:`apply_update`): compiled with ``compile=true``
        self.update_step = self._make_update_step()
        self.random_return: float | None = None
        self.last_eval: dict[str, float] = {}
        self.last_eval_step = -1
        self.episode_returns: list[float] = []
        self.episode_lengths: list[int] = []
        self.next_log = self.next_eval = self.next_ckpt = 0
        self.last_metrics: Mapping[str, Any] = {}
        #: the latest update's metrics at the checkpoint: a resumed loop logs them until its next update
        self.restored_metrics: dict[str, torch.Tensor] = {}
        if self.checkpoint is not None:
            self.restore_counters(self.checkpoint)  # before the logger starts: it truncates the CSVs there
        self._t_last = time.perf_counter()
        self._step_last = self.step
        if self.checkpoint is None:
            write_run_files(cfg, self.run_dir)
        self.logger: Logger | None = None

    def _set_threads(self) -> None:
        """Give torch ``cfg.threads`` CPU threads: ``auto`` = this run's share of its cores
        (:mod:`rlaux.threads`, refreshed as other runs start and stop), N = exactly N, null =
        torch's default."""
        self.threads = configure_threads(self.cfg.threads)
        self._threads_checked = time.monotonic()

    def _refresh_threads(self) -> None:
        """``threads=auto``: take this run's current share of the cores (at most once a second)."""
        if self.threads is not None and time.monotonic() - self._threads_checked >= THREADS_REFRESH_S:
            self.threads.refresh()
            self._threads_checked = time.monotonic()

    def _find_checkpoint(self) -> dict[str, Any]:
        """The newest readable checkpoint of the run being resumed (skipped unreadable ones become
        warnings the logger prints); raises :class:`CheckpointError` for none or another config's."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CheckpointWarning)
            checkpoint = load_latest_checkpoint(self.checkpoint_dir)
        for w in caught:
            if issubclass(w.category, CheckpointWarning):
                self.warnings.append(str(w.message))
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if checkpoint is None:
            raise CheckpointError(f"resume={self.cfg.resume}: no readable checkpoint in {self.checkpoint_dir}")
        if checkpoint.get("config_hash") != config_hash(self.cfg) and not (
                isinstance(checkpoint.get("config"), dict) and matches_older_config(checkpoint["config"], self.cfg)):
            raise CheckpointError(self._mismatch_message(checkpoint))
        return checkpoint

    def _mismatch_message(self, ckpt: Mapping[str, Any]) -> str:
        text = (f"checkpoint {ckpt['path']} was written by a different config than this run's "
                f"({self.run_dir / 'config.yaml'})")
        if isinstance(ckpt.get("config"), dict):
            diffs = config_differences(ckpt["config"], self.cfg)
            if diffs:
                text += "; differing keys: " + "; ".join(diffs)
        return (text + ". It belongs to another run, or config.yaml was edited: resume the run that wrote it, or "
                "move that checkpoint out of the folder. On resume only these keys may change: "
                + ", ".join(RESUMABLE_OVERRIDES))

    # ----------------------------------------------------------------- building
    def _make_vector_env(self, num_envs: int, seed: int, mode: str) -> gym.vector.VectorEnv:
        return make_guarded_vector_env(self.env_cfg, num_envs, seed, mode)

    def _make_agent(self) -> Agent:
        return build_agent(self.cfg, self.env.single_observation_space, self.env.single_action_space, self.device)

    def _make_update_step(self) -> Callable[..., dict[str, torch.Tensor]]:
        """``agent.update``, or with ``compile=true`` its :class:`~rlaux.compile.CompiledUpdate`
        (the agent module itself is not wrapped: its ``state_dict`` keys stay the same)."""
        if not self.cfg.get("compile", False):
            return self.agent.update
        return CompiledUpdate(self.agent.update, self.device, str(self.cfg.get("compile_mode", "auto")), self._warn)

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

    def attach(self, loop: Loop) -> None:
        """Run ``loop`` in this run: its state goes into every checkpoint, and a resumed run
        restores it now, with everything else the checkpoint holds."""
        self.loop = loop
        if self.checkpoint is not None:
            restore_run_state(self, self.checkpoint)

    # ----------------------------------------------------------------- counters
    @property
    def frame(self) -> int:
        return self.step * self.action_repeat

    def count_steps(self, steps: int) -> None:
        """Add the valid transitions of one vector step."""
        self.step += steps

    def count_updates(self, updates: int) -> None:
        """Add ``updates`` agent updates (done, or skipped by a schedule)."""
        self.updates += updates

    def record_episodes(self, info: dict) -> None:
        """Collect episode returns/lengths reported by the train env's statistics wrapper."""
        for _, ret, length in episode_stats(info):
            self.episodes += 1
            self.episode_returns.append(ret)
            self.episode_lengths.append(length)

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
        self.last_metrics = metrics or {}
        self._refresh_threads()
        if self._crossed("next_log", int(cfg.log_every)):
            self.log_train(metrics or {})
        if self._crossed("next_eval", int(cfg.eval_every)) and self.step > 0:
            self.run_eval()
        if can_checkpoint and self._crossed("next_ckpt", int(cfg.checkpoint_every)) and self.step > 0:
            self.save()

    def log_train(self, metrics: Mapping[str, torch.Tensor]) -> None:
        assert self.logger is not None
        now = time.perf_counter()
        fps = (self.step - self._step_last) / max(now - self._t_last, 1e-9)
        self._t_last, self._step_last = now, self.step
        row: dict[str, Any] = {"episodes": self.episodes, "updates": self.updates, "steps_per_second": fps}
        if self.cfg.on_nan == "skip":
            row["nan_skipped"] = self.nan.skipped
        if self.episode_returns:
            row["episode_return"] = float(np.mean(self.episode_returns))
            row["episode_length"] = float(np.mean(self.episode_lengths))
            self.logger.latest_return = row["episode_return"]
        self.episode_returns.clear()
        self.episode_lengths.clear()
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
    def _where(self) -> str:
        return f"step {self.step} (update {self.updates})"

    def _warn(self, text: str) -> None:
        """Show ``text`` through the logger (a line above the progress bar), or as a warning before it starts."""
        if self.logger is not None:
            self.logger.message(text)
        else:
            warnings.warn(text, RuntimeWarning, stacklevel=3)

    def check_finite(self, metrics: Mapping[str, Any] | None = None) -> None:
        """Raise :class:`~rlaux.training.health.NonFiniteLossError` naming the step, the NaN/Inf
        metrics (or parameters) and the last good checkpoint. Runs at every log row and before
        every checkpoint, so no checkpoint ever holds NaN/Inf parameters."""
        what = non_finite_description(metrics or {}, self.agent)
        if what is not None:
            raise stop_error(what, self._where(), int(self.cfg.log_every), self.checkpoint_path_str())

    def apply_update(self, update: Callable[..., dict[str, torch.Tensor]], *args: Any) -> dict[str, torch.Tensor]:
        """Run ``update(*args)`` (one agent update) under the ``on_nan`` policy
        (:meth:`~rlaux.training.health.NanPolicy.apply`)."""
        return self.nan.apply(update, *args)

    # ----------------------------------------------------------------- evaluation
    def _eval_env(self) -> gym.vector.VectorEnv:
        if self.eval_env is None:
            n = eval_num_envs(int(self.cfg.eval_episodes))
            self.eval_env = self._make_vector_env(n, int(self.cfg.seed) + EVAL_SEED_OFFSET, "eval")
        return self.eval_env

    def run_eval(self) -> dict[str, float]:
        """Evaluate the greedy/deterministic policy and log a row to eval.csv."""
        assert self.logger is not None
        self.agent.eval()
        result = evaluate(lambda o: self.agent.act(o, self.step, eval_mode=True), self._eval_env(),
                          int(self.cfg.eval_episodes), seed=int(self.cfg.seed) + EVAL_SEED_OFFSET, device=self.device)
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
                          seed=int(self.cfg.seed) + EVAL_SEED_OFFSET, device=torch.device("cpu"))
        self.random_return = result["return"]
        return self.random_return

    # ----------------------------------------------------------------- checkpoints
    def save(self) -> Path:
        """Write a checkpoint of the whole run state, the loop's included (refusing NaN/Inf parameters)."""
        self.check_finite(self.last_metrics if not self.nan.skip else None)
        return save_run_state(self)

    def restore_counters(self, ckpt: Mapping[str, Any]) -> None:
        """Put back the counters, schedule thresholds and last evaluation of ``ckpt``."""
        c = ckpt["counters"]
        self.step, self.episodes, self.updates = c["step"], c["episodes"], c["updates"]
        self.next_log, self.next_eval, self.next_ckpt = c["next_log"], c["next_eval"], c["next_ckpt"]
        self.nan.skipped = int(c.get("nan_skipped", 0))
        self.last_eval, self.last_eval_step = dict(c.get("last_eval", {})), int(c.get("last_eval_step", -1))
        self._step_last = self.step
        self.random_return = ckpt.get("random_return")

    def replace_env(self, env: gym.vector.VectorEnv) -> None:
        """Swap the train env for ``env`` (a restored snapshot), closing the current one."""
        self.env.close()
        self.env = env

    def record_failure(self, exc: BaseException) -> None:
        """Add where the run stopped to a :data:`~rlaux.training.health.RUN_FAILURES` error's
        message, and write ``summary.json`` with ``"failed": true`` so the folder says what happened."""
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
        if self.threads is not None:
            self.threads.close()
        for env in (self.env, self.eval_env):
            if env is not None:
                env.close()
        if self.logger is not None:
            self.logger.close()
