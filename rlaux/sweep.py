"""Sweep members: what running a Hydra multirun again does with each member's folder.

``python -m rlaux.train -m seed=0,1 aux=none,tcrl hydra.sweep.dir=sweeps/grid`` puts every
member in ``<hydra.sweep.dir>/<override_dirname>`` (``aux=tcrl,seed=1``): the folder name
depends only on the member's overrides, so the same command with the same sweep folder
finds the members of an earlier run of it. Each member then does one of three things
(:func:`plan_member`):

* ``finished``: its ``summary.json`` says it ran to ``steps`` without interruption; it is
  skipped (after checking that its saved config is the one the command asks for);
* ``resume``: it has a checkpoint but did not finish (killed, preempted, stopped by a
  signal, failed after a checkpoint); it continues from its newest checkpoint;
* ``fresh``: nothing usable is there; it starts from scratch, after removing the logs a
  failed attempt may have left (so no CSV row is written twice).

The launcher (basic, joblib, Ray, submitit) does not matter: the decision is taken inside
the member's own job, on the machine that runs it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rlaux.checkpoint import list_checkpoints
from rlaux.config import ConfigError, config_hash
from rlaux.run_files import config_differences

FINISHED = "finished"
RESUME = "resume"
FRESH = "fresh"

# What a failed attempt without a checkpoint may have left, removed before a fresh start.
_PARTIAL_OUTPUTS = ("summary.json", "train.csv", "eval.csv", "wandb_id.txt", "tb")


class SweepMemberError(RuntimeError):
    """A sweep member could not run (bad config, or a folder holding another config).

    Raised instead of exiting so that the launcher marks only this member as failed and
    the other members of the sweep go on.
    """


@dataclass(frozen=True)
class MemberPlan:
    """What a sweep member does with its folder: ``state`` is finished, resume or fresh."""

    state: str
    run_dir: Path
    detail: str = ""


def is_multirun() -> bool:
    """True inside a job that Hydra launched as part of a multirun (``-m``)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``summary.json``, or None when it is missing or unreadable."""
    path = Path(run_dir) / "summary.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_finished(run_dir: Path, steps: int | None = None) -> bool:
    """True when ``run_dir`` holds a run that ended normally (at ``steps`` or later, if given)."""
    summary = read_summary(run_dir)
    if summary is None or summary.get("interrupted") is not False:
        return False
    return steps is None or int(summary.get("step", 0)) >= int(steps)


def _check_same_config(cfg: DictConfig, run_dir: Path) -> None:
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return
    saved = OmegaConf.load(saved_path)
    assert isinstance(saved, DictConfig)
    if config_hash(saved) != config_hash(cfg):
        diffs = config_differences(saved, cfg) or ["(values that only the hash shows)"]
        raise ConfigError(
            f"sweep member folder {run_dir} holds a finished run of another config (folder -> command): "
            f"{'; '.join(diffs)}. "
            "Use another hydra.sweep.dir, or delete that folder to run the member again.")


def plan_member(cfg: DictConfig, run_dir: Path) -> MemberPlan:
    """Decide whether the member in ``run_dir`` is finished, resumes or starts fresh."""
    run_dir = Path(run_dir)
    if is_finished(run_dir, int(cfg.steps)):
        _check_same_config(cfg, run_dir)
        return MemberPlan(FINISHED, run_dir, "summary.json says it finished")
    found = list_checkpoints(run_dir / "checkpoints")
    if found:
        return MemberPlan(RESUME, run_dir, f"newest checkpoint {found[-1].name}")
    return MemberPlan(FRESH, run_dir)


def clear_partial_outputs(run_dir: Path) -> list[str]:
    """Remove what a failed attempt without a checkpoint left in ``run_dir``; return the names removed."""
    removed = []
    for name in _PARTIAL_OUTPUTS:
        path = Path(run_dir) / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(name)
    return removed


def prepare_member(cfg: DictConfig, run_dir: Path) -> tuple[MemberPlan, DictConfig]:
    """Plan the member and return the config to train with (``resume`` set when it resumes).

    Prints one line saying what the member does. A finished member's config is returned
    unchanged; the caller skips it.
    """
    plan = plan_member(cfg, run_dir)
    if plan.state == FINISHED:
        print(f"rlaux: sweep member {run_dir} already finished ({plan.detail}); skipping it", flush=True)
    elif plan.state == RESUME:
        cfg = cfg.copy()
        cfg.resume = str(run_dir)
        print(f"rlaux: sweep member {run_dir} did not finish; resuming it from its {plan.detail}", flush=True)
    else:
        removed = clear_partial_outputs(run_dir)
        if removed:
            print(f"rlaux: sweep member {run_dir} left no checkpoint; starting it again "
                  f"(removed {', '.join(removed)})", flush=True)
    return plan, cfg
