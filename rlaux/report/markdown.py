"""The report's tables: ``scores.csv``, ``aggregates.csv`` and the Markdown of ``report.md``."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlaux.report.runs import RunRecord


def fmt(x: float) -> str:
    """A number with three significant digits (no exponent from 1000 on)."""
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


def write_tables(out: Path, records: Sequence[RunRecord], names: list[str], points: dict[str, np.ndarray],
                 intervals: dict[str, np.ndarray], matrices: dict[str, np.ndarray], tasks: list[str]) -> None:
    with open(out / "scores.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["algorithm", "task", "env", "seed", "frame", "return", "score", "run_dir"])
        for r in sorted(records, key=lambda r: (r.algorithm, r.task, r.seed)):
            w.writerow([r.algorithm, r.task, r.env_name, r.seed, r.score_frame, r.extra["return"], f"{r.score:.6g}", r.path])
    with open(out / "aggregates.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["algorithm", "metric", "estimate", "ci_low", "ci_high", "runs_per_task", "tasks"])
        for a in points:
            for k, name in enumerate(names):
                w.writerow([a, name, points[a][k], intervals[a][0, k], intervals[a][1, k], matrices[a].shape[0], len(tasks)])


def markdown_report(names: list[str], points: dict[str, np.ndarray], intervals: dict[str, np.ndarray],
                    matrices: dict[str, np.ndarray], tasks: list[str], records: Sequence[RunRecord], images: list[Path],
                    notes: list[str], settings: dict[str, Any]) -> str:
    """The Markdown of ``report.md``."""
    lines = [f"# {settings.get('title') or 'rlaux report'}", ""]
    lines += [f"Score: **{settings['score_name']}** of each run's "
              + (f"last evaluation at or before {settings['budget']} env frames" if settings["budget"] is not None
                 else "last evaluation")
              + f"; {len(tasks)} task(s) in the aggregates: {', '.join(tasks)}.", "",
              f"Aggregates over runs x tasks with 95% stratified-bootstrap confidence intervals "
              f"(rliable, {settings['reps']} repetitions). Lower optimality gap is better.", ""]
    lines.append("| Algorithm | Runs/task | " + " | ".join(names) + " |")
    lines.append("|---|---|" + "---|" * len(names))
    for a in points:
        cells = [f"{fmt(points[a][k])} [{fmt(intervals[a][0, k])}, {fmt(intervals[a][1, k])}]" for k in range(len(names))]
        lines.append(f"| {a} | {matrices[a].shape[0]} | " + " | ".join(cells) + " |")
    lines += ["", "Per task: mean ± std over runs of the raw return (score in brackets).", ""]
    algorithms = list(points)
    all_tasks = sorted({r.task for r in records})
    lines.append("| Task | " + " | ".join(algorithms) + " |")
    lines.append("|---|" + "---|" * len(algorithms))
    for t in all_tasks:
        cells = []
        for a in algorithms:
            rs = [r for r in records if r.task == t and r.algorithm == a]
            if not rs:
                cells.append("–")
                continue
            ret = np.array([r.extra["return"] for r in rs])
            sc = np.array([r.score for r in rs])
            cells.append(f"{fmt(ret.mean())} ± {fmt(ret.std())} ({fmt(sc.mean())}, n={len(rs)})")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    lines.append("")
    for img in images:
        lines += [f"![{img.stem}]({img.name})", ""]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    lines += ["## Runs", "", f"{len(records)} run folders:", ""]
    lines += [f"- `{r.path}`: {r.algorithm}, {r.task}, seed {r.seed}, scored at {r.score_frame} frames"
              for r in sorted(records, key=lambda r: (r.algorithm, r.task, r.seed))]
    return "\n".join(lines) + "\n"
