"""``python -m rlaux.report``: the command line of :func:`rlaux.report.make.make_report`."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from rlaux import scores as score_lib
from rlaux.kvargs import Key, run_cli
from rlaux.report.make import make_report

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


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m rlaux.report runs=DIR [runs=DIR ...] [key=value ...]``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # seaborn/pandas chatter inside rliable's plots
        run_cli("rlaux.report", KEYS, argv, lambda v: make_report(**v), required=[("runs",)])


if __name__ == "__main__":
    main()
