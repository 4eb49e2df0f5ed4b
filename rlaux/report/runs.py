"""Run folders as the report sees them: discovery, the algorithm and task labels, evaluation
curves, the records the scores are computed from, and reference curves to overlay."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from rlaux.errors import UserError


class ReportError(UserError, ValueError):
    """Bad input to the report (no runs found, nothing comparable, bad reference file, ...)."""


@dataclass
class RunRecord:
    """One run folder: who/what/which seed, and its evaluation curve."""

    path: Path
    algorithm: str
    task: str
    env_name: str
    kind: str
    seed: int
    frames: np.ndarray
    returns: np.ndarray
    score: float = math.nan
    score_frame: int = -1
    extra: dict[str, Any] = field(default_factory=dict)


def find_run_dirs(roots: Iterable[str | Path]) -> list[Path]:
    """Every folder under ``roots`` (the roots included) that holds ``config.yaml`` and
    ``eval.csv``, sorted, without duplicates. Raises :class:`ReportError` for a missing root."""
    found: dict[Path, None] = {}
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise ReportError(f"runs={root}: no such folder")
        for config in sorted(root.rglob("config.yaml")):
            folder = config.parent
            if (folder / "eval.csv").is_file() and "checkpoints" not in folder.parts:
                found[folder.resolve()] = None
    return sorted(found)


def algorithm_label(cfg: DictConfig, keys: Sequence[str] = ("agent.name", "aux")) -> str:
    """``ppo``, ``ppo+tcrl``, ``ppo+predictive+tcrl`` (agent + aux), or the values of other
    ``keys`` joined: ``dqn lr=0.001``."""
    parts: list[str] = []
    for key in keys:
        value = OmegaConf.select(cfg, key, default=None)
        if isinstance(value, DictConfig):  # a node (aux): the names it holds
            value = "+".join(sorted(str(k) for k in value)) or "none"
        if key == "agent.name":
            parts.append(str(value))
        elif key == "aux":
            if value not in (None, "none", ""):
                parts[-1:] = [f"{parts[-1]}+{value}" if parts else str(value)]
        else:
            parts.append(f"{key.split('.')[-1]}={value}")
    return " ".join(parts)


def canonical_task(name: str, kind: str | None = None) -> str:
    """DMC tasks as ``domain-task`` in the suite's own spelling (``cup-catch`` and
    ``finger-turn-easy`` -> ``ball_in_cup-catch``, ``finger-turn_easy``); other names as given."""
    if kind not in (None, "dmc") or "/" in name or ":" in name:
        return name
    try:
        from envs import parse_dmc_name

        domain, task = parse_dmc_name(name)
    except Exception:  # not a DMC name
        return name
    return f"{domain}-{task}"


def task_label(cfg: DictConfig) -> str:
    """The env name (canonical for DMC), with ``(pixels)`` / ``(100k)`` for those variants."""
    env = cfg.env
    kind = str(env.get("kind", "gym"))
    label = canonical_task(str(env.name), kind)
    if kind == "dmc" and env.get("obs") == "pixels":
        label += " (pixels)"
    if kind == "atari" and env.get("protocol") == "100k":
        label += " (100k)"
    return label


def read_eval_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(env frames, mean returns) of an ``eval.csv``, sorted by frame, last row per frame kept."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return np.zeros(0), np.zeros(0)
    x_key = "frame" if "frame" in rows[0] else "step"
    if "return" not in rows[0]:
        raise ReportError(f"{path} has no 'return' column (columns: {', '.join(rows[0])})")
    curve: dict[int, float] = {}
    for row in rows:
        try:
            curve[int(float(row[x_key]))] = float(row["return"])
        except (TypeError, ValueError):
            continue
    frames = np.array(sorted(curve), dtype=np.int64)
    return frames, np.array([curve[int(x)] for x in frames], dtype=np.float64)


def load_run(path: Path, algorithm_keys: Sequence[str] = ("agent.name", "aux")) -> RunRecord:
    """A :class:`RunRecord` from a run folder's ``config.yaml`` and ``eval.csv``."""
    cfg = OmegaConf.load(path / "config.yaml")
    assert isinstance(cfg, DictConfig)
    frames, returns = read_eval_csv(path / "eval.csv")
    algorithm = algorithm_label(cfg, algorithm_keys)
    probe = path / "probe.json"
    if probe.is_file():  # a linear probe (rlaux.probe): named by its agent and the encoder it probes
        info = json.loads(probe.read_text())
        source = "random encoder" if info.get("encoder") == "random" else str(info.get("source_algorithm"))
        algorithm = f"probe[{info.get('probe_agent', cfg.agent.name)}] of {source}"
    return RunRecord(path=path, algorithm=algorithm, task=task_label(cfg),
                     env_name=str(cfg.env.name), kind=str(cfg.env.get("kind", "gym")), seed=int(cfg.get("seed", 0)),
                     frames=frames, returns=returns)


def _failed(path: Path) -> bool:
    """True when the run's ``summary.json`` says it failed."""
    summary = path / "summary.json"
    if not summary.is_file():
        return False
    try:
        return bool(json.loads(summary.read_text()).get("failed"))
    except (OSError, ValueError):
        return False


def collect_runs(roots: Iterable[str | Path], algorithm_keys: Sequence[str] = ("agent.name", "aux"),
                 include_failed: bool = False, notes: list[str] | None = None) -> list[RunRecord]:
    """Load every run under ``roots`` (see :func:`find_run_dirs`), skipping (with a note)
    runs with no evaluation yet and runs marked failed."""
    notes = notes if notes is not None else []
    records = []
    for path in find_run_dirs(roots):
        if not include_failed and _failed(path):
            notes.append(f"skipped {path}: its summary.json says the run failed (include_failed=true uses it)")
            continue
        record = load_run(path, algorithm_keys)
        if len(record.frames) == 0:
            notes.append(f"skipped {path}: eval.csv has no rows yet")
            continue
        records.append(record)
    if not records:
        raise ReportError(f"no run folders (config.yaml + eval.csv with rows) under {', '.join(map(str, roots))}")
    return records


def read_reference(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """{canonical task: (env frames, mean return, std or None)} from a reference CSV with
    columns ``task``, ``env_steps`` (or ``frame``), ``mean_return`` (or ``return``) and
    optionally ``std_return``."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"reference={path}: no such file")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ReportError(f"reference={path} is empty")
    cols = set(rows[0])
    x_key = next((k for k in ("env_steps", "frame", "frames") if k in cols), None)
    y_key = next((k for k in ("mean_return", "return") if k in cols), None)
    if "task" not in cols or x_key is None or y_key is None:
        raise ReportError(f"reference={path} needs columns task, env_steps (or frame) and mean_return; it has {', '.join(cols)}")
    grouped: dict[str, list[tuple[float, float, float]]] = {}
    for row in rows:
        std = float(row["std_return"]) if row.get("std_return") not in (None, "") else math.nan
        grouped.setdefault(canonical_task(row["task"]), []).append((float(row[x_key]), float(row[y_key]), std))
    out = {}
    for task, vals in grouped.items():
        vals.sort()
        arr = np.array(vals)
        std = arr[:, 2] if not np.isnan(arr[:, 2]).all() else None
        out[task] = (arr[:, 0], arr[:, 1], std)
    return out
