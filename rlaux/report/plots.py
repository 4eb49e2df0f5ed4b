"""The report's plots (rliable's interval estimates, performance profiles and sample-efficiency
curves; per-task return curves), drawn with matplotlib's Agg backend."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlaux.report.runs import RunRecord
from rlaux.report.scoring import curve_grid, seeded_numpy


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def colors_for(algorithms: Sequence[str]) -> dict[str, Any]:
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
