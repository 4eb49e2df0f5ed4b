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

Modules: :mod:`~rlaux.report.runs` (discovery, labels, curves), :mod:`~rlaux.report.scoring`
(scores, rliable aggregates, curve grids), :mod:`~rlaux.report.plots`,
:mod:`~rlaux.report.markdown` (tables and ``report.md``), :mod:`~rlaux.report.make` (all of it)
and :mod:`~rlaux.report.cli`.
"""

from rlaux.report.cli import KEYS, main
from rlaux.report.make import make_report
from rlaux.report.runs import (
    ReportError,
    RunRecord,
    algorithm_label,
    canonical_task,
    collect_runs,
    find_run_dirs,
    load_run,
    read_reference,
    task_label,
)
from rlaux.report.scoring import aggregate_metrics, score_matrices

__all__ = ["KEYS", "ReportError", "RunRecord", "aggregate_metrics", "algorithm_label", "canonical_task", "collect_runs",
           "find_run_dirs", "load_run", "main", "make_report", "read_reference", "score_matrices", "task_label"]
