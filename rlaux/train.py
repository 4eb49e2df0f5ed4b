"""Training entry point.

Command line (Hydra overrides)::

    python -m rlaux.train                                  # the embedded default: PPO on CartPole-v1
    python -m rlaux.train agent=ddpg aux=tcrl env=cartpole-swingup steps=50000
    python -m rlaux.train agent=ppo aux=[tcrl,predictive] env=dog-run agent.lr=1e-4 seed=3
    python -m rlaux.train resume=runs/2026-11-22/12-00-00_ppo_CartPole-v1_s1 steps=200000

Python::

    from rlaux.train import train
    summary = train(["agent=dqn", "env=CartPole-v1", "steps=30000"], run_dir="runs/dqn")
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rlaux import sweep
from rlaux.checkpoint import CheckpointError
from rlaux.config import CONFIG_DIR, RESUMABLE_OVERRIDES, ConfigError, compose, expand_recipe, register_configs, slug
from rlaux.kvargs import USER_ERRORS, error_message
from rlaux.training.health import RUN_FAILURES
from rlaux.training.runner import run_training
from rlaux.validation import check_override_keys


def _complete_run_keys(saved: DictConfig, current: DictConfig, saved_path: Path) -> None:
    """Give ``saved`` (a run's config.yaml) the run-level keys it lacks (written by an older
    rlaux, or edited): a key a resume may change takes today's default, with a warning naming
    it; any other missing key is a :class:`CheckpointError` naming it. (The ``agent``, ``env``
    and ``aux`` nodes are read through their typed configs, which fill their own defaults.)"""
    if "recipe" not in saved:  # written before recipes existed: it ran without one
        saved["recipe"] = None
    missing = [k for k in current if k not in saved]
    fixed = [k for k in missing if k not in RESUMABLE_OVERRIDES]
    if fixed:
        raise CheckpointError(f"{saved_path} has no {', '.join(fixed)} (written by an older rlaux, or edited); put the "
                              "missing keys back with the values the run was trained with, then resume again")
    for key in missing:
        saved[key] = current[key]
    if missing:
        defaults = ", ".join(f"{k}={current[k]}" for k in missing)
        print(f"rlaux: warning: {saved_path} has no {', '.join(missing)}; resuming with today's defaults "
              f"({defaults})", file=sys.stderr)


def _resume_config(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """The resumed run's own config, with the few keys a resume may change applied."""
    run_dir = Path(str(cfg.resume))
    saved_path = run_dir / "config.yaml"
    if not saved_path.exists():
        raise CheckpointError(f"resume={cfg.resume}: {saved_path} not found; is this an rlaux run folder?")
    saved = OmegaConf.load(saved_path)
    assert isinstance(saved, DictConfig)
    _complete_run_keys(saved, cfg, saved_path)
    for item in overrides:
        key = item.lstrip("+~").split("=", 1)[0]
        if key == "resume" or key.startswith("hydra"):
            continue
        if key not in RESUMABLE_OVERRIDES:
            raise ConfigError(f"{key}= cannot change when resuming (the run keeps its own config); "
                              f"keys a resume may change: {', '.join(RESUMABLE_OVERRIDES)}")
        if key == "steps" and saved.agent.get("anneal_steps") == saved.steps:
            saved.agent.anneal_steps = cfg.steps  # the learning-rate schedule follows the new length
        OmegaConf.update(saved, key, cfg[key], merge=False)
    saved.resume = str(run_dir)
    return saved  # type: ignore[return-value]


def default_run_dir(cfg: DictConfig) -> Path:
    """runs/<date>/<time>_<agent>_<env>_s<seed> (what ``hydra.run.dir`` gives on the CLI)."""
    import datetime

    now = datetime.datetime.now()
    return Path("runs") / now.strftime("%Y-%m-%d") / f"{now:%H-%M-%S}_{cfg.agent.name}_{slug(cfg.env.name)}_s{cfg.seed}"


def train(overrides: Sequence[str] = (), run_dir: str | Path | None = None) -> dict[str, Any]:
    """Compose the config from ``overrides`` (as on the command line) and train.

    ``run_dir`` defaults to the resume folder when ``resume=`` is given, else a new
    ``runs/...`` folder. Returns the run summary (``eval_return``, ``random_return``, ...).
    """
    cfg = compose(overrides)
    if cfg.resume:
        cfg = _resume_config(cfg, overrides)
        run_dir = Path(str(cfg.resume))
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(cfg)
    return run_training(cfg, run_dir)


def _report_user_error(exc: BaseException) -> None:
    print(f"rlaux: error: {exc}", file=sys.stderr)


# Libraries whose INFO lines Hydra's logging setup would print (dm_control's renderer choice when a
# checkpointed DMC env is unpickled on resume); their warnings and errors still show.
QUIET_LOGGERS = ("absl", "OpenGL.acceleratesupport")


def _hydra_task(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = list(hydra_cfg.overrides.task)
    fresh = not cfg.resume and not (run_dir / "checkpoints").exists()
    multirun = sweep.is_multirun()
    try:
        if cfg.resume:
            cfg = _resume_config(cfg, overrides)
        elif multirun:  # a sweep run again: skip finished members, resume interrupted ones (rlaux/sweep.py)
            plan, cfg = sweep.prepare_member(cfg, run_dir)
            if plan.state == sweep.FINISHED:
                return
        summary = run_training(cfg, run_dir)
    except USER_ERRORS as exc:
        message = error_message(exc)
        _report_user_error(message)
        if fresh:
            _remove_partial_run_dir(run_dir)
        if multirun:  # fail this member only; the launcher goes on with the others
            raise sweep.SweepMemberError(f"sweep member {run_dir}: {message}") from None
        sys.exit(2)
    except KeyboardInterrupt:  # a second Ctrl-C while the first one's checkpoint was being written
        if multirun:
            raise
        print(f"rlaux: stopped at once (second Ctrl-C); checkpoints are written atomically, so the newest "
              f"complete one is intact: python -m rlaux.train resume={run_dir}", file=sys.stderr)
        sys.exit(130)
    except RUN_FAILURES as exc:  # a started run failed (NaN/Inf, env error): folder kept, summary.json says so
        if os.environ.get("RLAUX_TRACEBACK"):
            raise
        _report_user_error(exc)
        if multirun:
            raise sweep.SweepMemberError(f"sweep member {run_dir}: {exc}") from None
        sys.exit(1)
    if summary.get("interrupted"):
        sys.exit(128 + int(summary.get("signal") or 2))


def _remove_partial_run_dir(run_dir: Path) -> None:
    """Delete a run folder that a failed start left without any checkpoint."""
    if run_dir.exists() and not any((run_dir / "checkpoints").glob("*.pt")):
        shutil.rmtree(run_dir, ignore_errors=True)
        parent = run_dir.parent
        if parent.exists() and not any(parent.iterdir()):
            parent.rmdir()


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m rlaux.train [overrides]``: check names first, then hand over to Hydra."""
    import hydra

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        plain = [a for a in args if not a.startswith("-")]
        args = expand_recipe(plain)[: -len(plain) or None] + args  # recipe=tcrl: agent=ddpg aux=tcrl first
        register_configs([a for a in args if not a.startswith("-")])
        check_override_keys(args)  # misspelled keys, with suggestions (rlaux/validation.py)
        for item in args:
            if item.startswith("resume="):
                folder = Path(item.split("=", 1)[1])
                if not (folder / "config.yaml").is_file():
                    raise ConfigError(f"resume={folder}: not an rlaux run folder (no {folder / 'config.yaml'})")
    except USER_ERRORS as exc:
        _report_user_error(error_message(exc))
        sys.exit(2)
    sys.argv = [sys.argv[0], *args]
    hydra.main(config_path=CONFIG_DIR, config_name="train", version_base="1.3")(_hydra_task)()


if __name__ == "__main__":
    main()
