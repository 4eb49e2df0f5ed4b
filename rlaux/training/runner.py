"""One training run from start (or resume) to its summary: what ``rlaux.train`` and
``rlaux.probe`` run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rlaux.training.health import RUN_FAILURES
from rlaux.training.loop import Loop
from rlaux.training.off_policy import OffPolicyLoop
from rlaux.training.on_policy import OnPolicyLoop
from rlaux.training.run import TrainingRun
from rlaux.training.signals import StopFlag


def make_loop(run: TrainingRun) -> Loop:
    """An :class:`OnPolicyLoop` or :class:`OffPolicyLoop` for ``run``'s agent, attached to
    ``run`` (so a resumed run has restored it, with the replay capacity it was saved with)."""
    if run.agent.on_policy:
        loop: Loop = OnPolicyLoop(run)
    else:
        saved = run.checkpoint.get("loop", {}) if run.checkpoint is not None else {}
        loop = OffPolicyLoop(run, OffPolicyLoop.saved_capacity(saved))
    run.attach(loop)
    return loop


def run_training(cfg: DictConfig, run_dir: Path,
                 make_run: Callable[[DictConfig, Path], TrainingRun] | None = None) -> dict[str, Any]:
    """Train (or resume) one run in ``run_dir``; return its summary (also saved as summary.json).

    ``make_run(cfg, run_dir)`` builds the :class:`TrainingRun` (default: the class itself; the
    linear probe of :mod:`rlaux.probe` passes a subclass that loads a frozen encoder)."""
    with StopFlag() as stop:
        run = (make_run or TrainingRun)(cfg, run_dir)
        try:
            logger = run.start_logger()
            if run.checkpoint is None:
                logger.message(f"rlaux: run folder {run_dir}")
                random_return = run.evaluate_random_policy()
                logger.message(f"rlaux: random policy return {random_return:.1f} over {cfg.eval_episodes} episodes")
            else:
                logger.message(f"rlaux: resuming {run_dir} from {run.checkpoint['path']}")
            make_loop(run).train(stop)
            if stop:
                path = run.save()
                logger.message(f"rlaux: stopped by signal {stop.signum} at step {run.step}; checkpoint {path}\n"
                               f"rlaux: continue with: python -m rlaux.train resume={run_dir}")
                summary = {"interrupted": True, "step": run.step, "checkpoint": str(path), "signal": stop.signum}
            else:
                result = run.last_eval if run.last_eval_step == run.step else run.run_eval()
                path = run.save()
                summary = {
                    "interrupted": False,
                    "step": run.step,
                    "frame": run.frame,
                    "eval_return": result["return"],
                    "eval_return_std": result["return_std"],
                    "random_return": run.random_return,
                    "checkpoint": str(path),
                    "run_dir": str(run_dir),
                }
                logger.message(
                    f"rlaux: final eval return {result['return']:.1f} ± {result['return_std']:.1f} over "
                    f"{int(result['episodes'])} episodes (random policy: {run.random_return:.1f}) at step {run.step} "
                    f"({run.frame} env frames); run folder {run_dir}")
            (Path(run_dir) / "summary.json").write_text(json.dumps(summary, indent=2))
            return summary
        except RUN_FAILURES as exc:  # NaN/Inf or an env error mid-run: say where, mark the folder failed
            run.record_failure(exc)
            raise
        finally:
            run.close()
