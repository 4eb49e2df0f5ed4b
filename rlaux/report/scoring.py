"""Scores of runs and their aggregates: a normalised score per run, (runs x tasks) matrices
per algorithm, rliable's IQM/mean/median/optimality gap with stratified-bootstrap intervals,
and the curves on a common grid of frames."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from rlaux import scores as score_lib
from rlaux.report.runs import ReportError, RunRecord

METRICS = ("IQM", "Mean", "Median", "Optimality gap")
CURVE_REPS = 2000


def assign_scores(records: list[RunRecord], budget: int | None, normalize: str, notes: list[str]) -> list[RunRecord]:
    """Set each record's ``score`` (normalised return at ``budget`` or at its end); drop (with
    a note) runs with no evaluation within the budget."""
    kept = []
    for r in records:
        idx = np.flatnonzero(r.frames <= budget) if budget is not None else np.arange(len(r.frames))
        if len(idx) == 0:
            notes.append(f"skipped {r.path}: no evaluation at or before budget={budget} frames")
            continue
        i = int(idx[-1])
        r.score_frame = int(r.frames[i])
        r.extra["return"] = float(r.returns[i])
        r.score = normalize_return(r, float(r.returns[i]), normalize)
        kept.append(r)
    if not kept:
        raise ReportError(f"no run has an evaluation at or before budget={budget} frames")
    by_task: dict[str, list[int]] = {}
    for r in kept:
        by_task.setdefault(r.task, []).append(r.score_frame)
    for task, frames in by_task.items():
        if min(frames) < 0.95 * max(frames):
            notes.append(f"{task}: runs are scored at different points ({min(frames)} to {max(frames)} frames); "
                         "give budget=FRAMES to compare them at the same budget")
    return kept


def normalize_return(record: RunRecord, value: float | np.ndarray, normalize: str) -> Any:
    """Normalise a return (or an array of returns) of ``record``'s task."""
    try:
        if isinstance(value, np.ndarray):
            return np.array([score_lib.normalize(record.env_name, record.kind, float(v), normalize) for v in value])
        return score_lib.normalize(record.env_name, record.kind, value, normalize)
    except KeyError as exc:
        raise ReportError(exc.args[0]) from None


def score_name(records: Sequence[RunRecord], normalize: str) -> str:
    names = sorted({score_lib.normalizer_name(r.kind, normalize) for r in records})
    if len(names) > 1:
        return "score (" + ", ".join(names) + ")"
    return names[0]


def score_matrices(
    records: Sequence[RunRecord], notes: list[str],
) -> tuple[dict[str, np.ndarray], list[str], dict[str, list[list[RunRecord]]]]:
    """Per algorithm a (runs x tasks) matrix of scores over the tasks every algorithm ran.

    Tasks missing for some algorithm are left out of the aggregate (with a note); an
    algorithm with unequal seed counts across tasks keeps the lowest seeds of each task, as
    many as its smallest task has (rliable needs a rectangular matrix)."""
    algorithms = sorted({r.algorithm for r in records})
    tasks_by_alg = {a: {r.task for r in records if r.algorithm == a} for a in algorithms}
    common = sorted(set.intersection(*tasks_by_alg.values()))
    if not common:
        raise ReportError("no task was run by every algorithm: "
                          + "; ".join(f"{a}: {', '.join(sorted(t))}" for a, t in tasks_by_alg.items()))
    for a, tasks in tasks_by_alg.items():
        left_out = sorted(tasks - set(common))
        if left_out:
            notes.append(f"{a}: tasks {', '.join(left_out)} are not run by every algorithm and are left out of the aggregates")
    matrices: dict[str, np.ndarray] = {}
    used: dict[str, list[list[RunRecord]]] = {}
    for a in algorithms:
        per_task = [sorted((r for r in records if r.algorithm == a and r.task == t), key=lambda r: (r.seed, str(r.path)))
                    for t in common]
        n = min(len(rs) for rs in per_task)
        for t, rs in zip(common, per_task):
            seeds = [r.seed for r in rs]
            if len(set(seeds)) < len(seeds):
                notes.append(f"{a} on {t}: seeds {seeds} repeat (several folders per seed); each folder counts as a run")
            if len(rs) > n:
                notes.append(f"{a} on {t}: {len(rs)} runs, using the first {n} by seed (the fewest any task has) "
                             f"and leaving out {', '.join(str(r.path) for r in rs[n:])}")
        used[a] = [rs[:n] for rs in per_task]
        matrices[a] = np.array([[rs[i].score for rs in per_task] for i in range(n)], dtype=np.float64)
        if n < 3:
            notes.append(f"{a}: {n} run(s) per task; bootstrap intervals from so few runs are not meaningful")
    return matrices, common, used


def metric_functions(gap_threshold: float | None) -> tuple[list[str], Callable[[np.ndarray], np.ndarray]]:
    """The metric names and one function (runs x tasks) -> their values, with rliable's
    aggregates: IQM, mean, median and (when ``gap_threshold`` is set) optimality gap."""
    from rliable import metrics

    names = list(METRICS[:3]) + (["Optimality gap"] if gap_threshold is not None else [])

    def aggregate(x: np.ndarray) -> np.ndarray:
        values = [metrics.aggregate_iqm(x), metrics.aggregate_mean(x), metrics.aggregate_median(x)]
        if gap_threshold is not None:
            values.append(metrics.aggregate_optimality_gap(x, gap_threshold))
        return np.array(values)

    return names, aggregate


@contextlib.contextmanager
def seeded_numpy(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG for the block and restore its state afterwards. rliable's
    stratified bootstrap draws its resampling indices from the global RNG (its
    ``random_state`` argument does not reach ``update_indices``), so this is what makes the
    intervals reproducible."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def aggregate_metrics(matrices: dict[str, np.ndarray], gap_threshold: float | None = 1.0, reps: int = 50_000,
                      seed: int = 0) -> tuple[list[str], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(metric names, point estimates {alg: [m]}, 95% intervals {alg: [2, m]}) from rliable's
    ``get_interval_estimates`` (stratified bootstrap over runs within tasks, percentile
    intervals), reproducible for a given ``seed``."""
    from rliable import library

    names, func = metric_functions(gap_threshold)
    with seeded_numpy(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # arch: "random_state is deprecated"
        points, intervals = library.get_interval_estimates(matrices, func, reps=int(reps), confidence_interval_size=0.95)
    return names, points, intervals


def curve_grid(records: Sequence[RunRecord], points: int) -> np.ndarray | None:
    """``points`` frames spanning the range every run covers (None when there is none)."""
    lo = max(float(r.frames[0]) for r in records)
    hi = min(float(r.frames[-1]) for r in records)
    if hi <= lo or points < 2:
        return None
    return np.linspace(lo, hi, int(points))


def curve_matrices(used: dict[str, list[list[RunRecord]]], grid: np.ndarray, normalize: str) -> dict[str, np.ndarray]:
    """{alg: (runs x tasks x points)} normalised scores interpolated on ``grid``."""
    out = {}
    for a, per_task in used.items():
        n = len(per_task[0])
        arr = np.empty((n, len(per_task), len(grid)))
        for j, rs in enumerate(per_task):
            for i, r in enumerate(rs):
                arr[i, j] = normalize_return(r, np.interp(grid, r.frames, r.returns), normalize)
        out[a] = arr
    return out
