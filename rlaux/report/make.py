"""The whole report: collect and score the runs, aggregate, plot, write the tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlaux import scores as score_lib
from rlaux.report.markdown import fmt, markdown_report, write_tables
from rlaux.report.plots import colors_for, plot_aggregates, plot_profile, plot_sample_efficiency, plot_task_curves
from rlaux.report.runs import ReportError, canonical_task, collect_runs, read_reference
from rlaux.report.scoring import (
    CURVE_REPS,
    aggregate_metrics,
    assign_scores,
    curve_grid,
    curve_matrices,
    score_matrices,
    score_name,
)


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
    colors = colors_for(algorithms)
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
            cells = ", ".join(f"{n} {fmt(v[0])} [{fmt(v[1])}, {fmt(v[2])}]" for n, v in table[a].items())
            print(f"rlaux: {a}: {cells}")
        for n in notes:
            print(f"rlaux: note: {n}")
        print(f"rlaux: wrote {out_dir / 'report.md'} and {len(images)} plots in {out_dir}")
    return result
