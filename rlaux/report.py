"""Aggregate many runs (algorithms x tasks x seeds) into the numbers and plots papers report.

Command line::

    python -m rlaux.report runs=multirun/2026-11-22/12-00-00 out=report
    python -m rlaux.report runs=sweeps/dmc runs=sweeps/dmc_tcrl normalize=auto budget=500000 \\
        reference=/path/to/tcrl_reported_returns.csv reference_label="TCRL (reported)"

``runs`` are run folders or folders of run folders (Hydra multirun folders, any depth): every
folder holding ``config.yaml`` and ``eval.csv`` is a run. From its config a run gets its
*algorithm* (default: ``agent.name`` plus its aux objectives, ``ppo+tcrl``; ``algorithm=``
lists other config keys, e.g. ``algorithm=agent.name,aux,agent.lr``), its *task* (the env
name, with ``(pixels)`` for DMC pixels and ``(100k)`` for the Atari-100k protocol) and its seed.

Scores: a run's score is its last evaluation (mean return over the run's eval episodes) at or
before ``budget`` env frames (default: its last evaluation), normalised per task as
:mod:`rlaux.scores` says (Atari: human-normalised; DMC: /1000; other envs: raw returns).

Outputs in ``out``:

* ``report.md``: IQM, mean, median and optimality gap per algorithm with 95% stratified-bootstrap
  confidence intervals (rliable: ``library.get_interval_estimates``), a per-task table and notes;
* ``aggregate_metrics.png`` (rliable ``plot_interval_estimates``), ``performance_profile.png``
  (``create_performance_profile`` / ``plot_performance_profiles``), ``sample_efficiency.png``
  (IQM of the normalised score against env frames, ``plot_sample_efficiency_curve``) and
  ``task_curves.png`` (mean return ± std over seeds per task, with the ``reference`` curves, a
  CSV of ``task, env_steps, mean_return[, std_return]``, overlaid; ``env_steps`` are env frames);
* ``scores.csv`` (one row per run) and ``aggregates.csv``.

Curves are compared on a common grid of ``points`` frames between the latest first evaluation
and the earliest last evaluation of all runs, each run's evaluations linearly interpolated.
"""

from __future__ import annotations

import contextlib
import csv
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from rlaux import scores as score_lib
from rlaux.kvargs import Key, UsageError, run_cli

KEYS: dict[str, Key] = {
    "runs": Key(list, help="run folders or folders of run folders (repeat the key, or runs=[a,b])"),
    "out": Key(str, "report", "output folder"),
    "budget": Key(int, help="score each run at its last evaluation at or before this many env frames"),
    "normalize": Key(str, "auto", "auto (Atari: human-normalised, DMC: /1000, others raw) | none",
                     choices=score_lib.NORMALIZATIONS),
    "algorithm": Key(str, "agent.name,aux", "comma-separated config keys that name an algorithm"),
    "suite": Key(str, help=f"keep only the tasks of this suite ({', '.join(score_lib.SUITE_NAMES)})"),
    "reference": Key(str, help="CSV of reference curves (task, env_steps, mean_return[, std_return]) to overlay"),
    "reference_label": Key(str, help="legend label of the reference curves (default: the file name)"),
    "reps": Key(int, 50_000, "bootstrap repetitions of the confidence intervals (curves and profiles: at most 2000)"),
    "points": Key(int, 20, "points of the sample-efficiency grid"),
    "gap_threshold": Key(float, help="optimality-gap threshold gamma (default 1 for normalised scores; "
                                      "with raw scores the gap is reported only when this is given)"),
    "seed": Key(int, 0, "random state of the bootstrap"),
    "title": Key(str, help="title of the plots"),
    "include_failed": Key(bool, False, "also use runs whose summary.json says they failed"),
}

METRICS = ("IQM", "Mean", "Median", "Optimality gap")
CURVE_REPS = 2000


class ReportError(ValueError):
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


# --------------------------------------------------------------------------- discovery
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


def _get(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=None)
    if isinstance(value, DictConfig):
        return "+".join(sorted(str(k) for k in value)) or "none"
    return value


def algorithm_label(cfg: DictConfig, keys: Sequence[str] = ("agent.name", "aux")) -> str:
    """``ppo``, ``ppo+tcrl``, ``ppo+predictive+tcrl`` (agent + aux), or the values of other
    ``keys`` joined: ``dqn lr=0.001``."""
    parts: list[str] = []
    for key in keys:
        value = _get(cfg, key)
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
        import json

        info = json.loads(probe.read_text())
        source = "random encoder" if info.get("encoder") == "random" else str(info.get("source_algorithm"))
        algorithm = f"probe[{info.get('probe_agent', cfg.agent.name)}] of {source}"
    return RunRecord(path=path, algorithm=algorithm, task=task_label(cfg),
                     env_name=str(cfg.env.name), kind=str(cfg.env.get("kind", "gym")), seed=int(cfg.get("seed", 0)),
                     frames=frames, returns=returns)


def _failed(path: Path) -> bool:
    import json

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


# --------------------------------------------------------------------------- scores
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


# --------------------------------------------------------------------------- curves
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


# --------------------------------------------------------------------------- plots
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(algorithms: Sequence[str]) -> dict[str, Any]:
    import seaborn as sns

    palette = sns.color_palette("colorblind", max(len(algorithms), 1))
    return dict(zip(algorithms, palette))


def plot_aggregates(path: Path, names: list[str], points: dict[str, np.ndarray], intervals: dict[str, np.ndarray],
                    algorithms: list[str], colors: dict[str, Any], xlabel: str, title: str | None) -> Path:
    from rliable import plot_utils

    plt = _pyplot()
    fig, _ = plot_utils.plot_interval_estimates(points, intervals, metric_names=names, algorithms=algorithms,
                                                colors=colors, xlabel=xlabel, xlabel_y_coordinate=-0.3,
                                                subfigure_width=3.4, row_height=0.6)
    if title:
        fig.suptitle(title, y=1.0 + 0.45 / fig.get_figheight())  # above the metric names
    fig.savefig(path, bbox_inches="tight", dpi=120)
    plt.close(fig)
    return path


def plot_profile(path: Path, matrices: dict[str, np.ndarray], colors: dict[str, Any], xlabel: str, reps: int,
                 seed: int, title: str | None) -> Path:
    from rliable import library, plot_utils

    plt = _pyplot()
    allv = np.concatenate([m.ravel() for m in matrices.values()])
    lo, hi = min(0.0, float(allv.min())), float(allv.max())
    if hi <= lo:
        hi = lo + 1.0
    taus = np.linspace(lo, hi + 0.02 * (hi - lo), 101)
    with seeded_numpy(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        profiles, cis = library.create_performance_profile(matrices, taus, reps=int(reps))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot_utils.plot_performance_profiles(profiles, taus, performance_profile_cis=cis, colors=colors, ax=ax,
                                         xlabel=rf"{xlabel} ($\tau$)", labelsize="large", ticklabelsize="medium")
    ax.legend(loc="upper right", fontsize="medium")
    if title:
        ax.set_title(title)
    fig.savefig(path, bbox_inches="tight", dpi=120)
    plt.close(fig)
    return path


def plot_sample_efficiency(path: Path, grid: np.ndarray, curves: dict[str, np.ndarray], colors: dict[str, Any],
                           ylabel: str, reps: int, seed: int, title: str | None) -> Path:
    from rliable import library, metrics, plot_utils

    plt = _pyplot()

    def iqm_per_point(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x[..., k]) for k in range(x.shape[-1])])

    with seeded_numpy(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        points, intervals = library.get_interval_estimates(curves, iqm_per_point, reps=int(reps))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot_utils.plot_sample_efficiency_curve(grid, points, intervals, algorithms=list(curves), colors=colors, ax=ax,
                                            xlabel="env frames", ylabel=f"IQM {ylabel}", labelsize="large",
                                            ticklabelsize="medium")
    ax.legend(loc="lower right", fontsize="medium")
    if title:
        ax.set_title(title)
    fig.savefig(path, bbox_inches="tight", dpi=120)
    plt.close(fig)
    return path


def plot_task_curves(path: Path, records: Sequence[RunRecord], algorithms: list[str], colors: dict[str, Any],
                     reference: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] | None,
                     reference_label: str, points: int, title: str | None) -> Path:
    """One panel per task: mean raw return ± std over runs per algorithm, plus reference curves."""
    plt = _pyplot()
    tasks = sorted({r.task for r in records})
    cols = min(3, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    for ax, task in zip(axes.ravel(), tasks):
        for a in algorithms:
            rs = [r for r in records if r.task == task and r.algorithm == a]
            if not rs:
                continue
            grid = curve_grid(rs, max(points, 2)) if len(rs) > 1 else None
            if grid is None:
                grid = rs[0].frames.astype(float)
            ys = np.array([np.interp(grid, r.frames, r.returns) for r in rs])
            mean, std = ys.mean(0), ys.std(0)
            ax.plot(grid, mean, color=colors[a], label=f"{a} ({len(rs)} runs)", lw=2)
            ax.fill_between(grid, mean - std, mean + std, color=colors[a], alpha=0.2)
        ref_key = task.split(" (")[0]
        if reference is not None and ref_key in reference:
            x, y, s = reference[ref_key]
            ax.plot(x, y, "k--o", ms=4, lw=1.5, label=reference_label)
            if s is not None:
                ax.fill_between(x, y - s, y + s, color="k", alpha=0.1)
        ax.set_title(task)
        ax.set_xlabel("env frames")
        ax.set_ylabel("eval return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes.ravel()[len(tasks):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- report
def _fmt(x: float) -> str:
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
        cells = [f"{_fmt(points[a][k])} [{_fmt(intervals[a][0, k])}, {_fmt(intervals[a][1, k])}]" for k in range(len(names))]
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
            cells.append(f"{_fmt(ret.mean())} ± {_fmt(ret.std())} ({_fmt(sc.mean())}, n={len(rs)})")
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


def make_report(
    runs: Sequence[str | Path],
    out: str | Path = "report",
    budget: int | None = None,
    normalize: str = "auto",
    algorithm: str = "agent.name,aux",
    suite: str | None = None,
    reference: str | Path | None = None,
    reference_label: str | None = None,
    reps: int = 50_000,
    points: int = 20,
    gap_threshold: float | None = None,
    seed: int = 0,
    title: str | None = None,
    include_failed: bool = False,
    verbose: bool = True,
) -> dict[str, Any]:
    """Build the report (see the module docstring); returns the paths written, the metric
    table and the notes. Raises :class:`ReportError` for unusable input."""
    if not runs:
        raise ReportError("give runs=DIR (a run folder or a folder of run folders)")
    if reps < 1 or points < 2:
        raise ReportError(f"reps={reps} must be >= 1 and points={points} >= 2")
    notes: list[str] = []
    keys = [k.strip() for k in algorithm.split(",") if k.strip()]
    records = collect_runs(runs, keys, include_failed, notes)
    if suite is not None:
        try:
            wanted = {canonical_task(name) for name in score_lib.suite(suite)}
        except ValueError as exc:
            raise ReportError(str(exc)) from None
        records = [r for r in records if r.task.split(" (")[0] in wanted]
        if not records:
            raise ReportError(f"no run is on a task of suite={suite}")
        missing = sorted(wanted - {r.task.split(' (')[0] for r in records})
        if missing:
            notes.append(f"suite {suite}: no runs on {', '.join(missing)}")
    records = assign_scores(records, budget, normalize, notes)
    normalised = normalize != "none" and all(r.kind in ("atari", "dmc") for r in records)
    if gap_threshold is None and normalised:
        gap_threshold = 1.0
    if gap_threshold is None:
        notes.append("optimality gap left out: scores are raw returns; give gap_threshold=TARGET (e.g. 500 for CartPole-v1)")
    kinds = {score_lib.normalizer_name(r.kind, normalize) for r in records}
    if len({r.task for r in records}) > 1 and "raw return" in kinds:
        notes.append("raw returns of different tasks are aggregated together: their scales differ")
    matrices, tasks, used = score_matrices(records, notes)
    names, point_est, intervals = aggregate_metrics(matrices, gap_threshold, reps, seed)
    algorithms = list(matrices)
    colors = _colors(algorithms)
    name = score_name(records, normalize)

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = [plot_aggregates(out_dir / "aggregate_metrics.png", names, point_est, intervals, algorithms, colors, name, title),
              plot_profile(out_dir / "performance_profile.png", matrices, colors, name, min(reps, CURVE_REPS), seed, title)]
    grid = curve_grid([r for rs in used.values() for t in rs for r in t], points)
    if grid is not None:
        curves = curve_matrices(used, grid, normalize)
        images.append(plot_sample_efficiency(out_dir / "sample_efficiency.png", grid, curves, colors, name,
                                             min(reps, CURVE_REPS), seed, title))
    else:
        notes.append("no sample-efficiency curve: the runs' evaluations share no range of frames")
    ref = read_reference(reference) if reference is not None else None
    if ref is not None:
        label = reference_label or Path(reference).stem  # type: ignore[arg-type]
        overlaid = sorted({r.task.split(" (")[0] for r in records} & set(ref))
        notes.append(f"reference curves ({label}, {reference}) overlaid on: {', '.join(overlaid) or 'no task'}")
    else:
        label = ""
    images.append(plot_task_curves(out_dir / "task_curves.png", records, algorithms, colors, ref, label, points, title))
    write_tables(out_dir, records, names, point_est, intervals, matrices, tasks)
    settings = {"title": title, "score_name": name, "budget": budget, "reps": reps}
    md = markdown_report(names, point_est, intervals, matrices, tasks, records, images, notes, settings)
    (out_dir / "report.md").write_text(md)
    table = {a: {n: (float(point_est[a][k]), float(intervals[a][0, k]), float(intervals[a][1, k]))
                 for k, n in enumerate(names)} for a in algorithms}
    result = {"out": str(out_dir), "report": str(out_dir / "report.md"), "images": [str(p) for p in images],
              "table": table, "tasks": tasks, "runs": len(records), "notes": notes}
    if verbose:
        print(f"rlaux: {len(records)} runs, {len(algorithms)} algorithm(s), {len(tasks)} task(s) in the aggregates")
        for a in algorithms:
            cells = ", ".join(f"{n} {_fmt(v[0])} [{_fmt(v[1])}, {_fmt(v[2])}]" for n, v in table[a].items())
            print(f"rlaux: {a}: {cells}")
        for n in notes:
            print(f"rlaux: note: {n}")
        print(f"rlaux: wrote {out_dir / 'report.md'} and {len(images)} plots in {out_dir}")
    return result


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m rlaux.report runs=DIR [runs=DIR ...] [key=value ...]``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # seaborn/pandas chatter inside rliable's plots
        run_cli("rlaux.report", KEYS, argv, lambda v: make_report(**v), required=[("runs",)],
                user_errors=(ReportError, UsageError))


if __name__ == "__main__":
    main()
