"""Two runs at once vs one alone (issue 15 item 1): does ``threads=auto`` keep parallel runs fast?

Run (on an otherwise idle machine): ``python benchmarks/parallel_runs.py [--seconds 60]``

Each contestant is ``python -m rlaux.train agent=sac env=Pendulum-v1 agent.encoder.kind=flat
agent.learning_starts=500`` with a step budget it cannot reach, stopped with SIGTERM after
``--seconds`` of wall time (the run checkpoints and writes ``summary.json`` with the agent step it
reached). Cases, one after the other:

* ``alone``: one run with ``threads=1``;
* ``pair``: two runs started together with ``threads=auto`` (each should take half the cores).

Printed: the steps each run reached and each pair member's ratio to ``alone`` (issue 15's
acceptance: >= 0.8). ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` are removed from the runs'
environment: ``auto`` reads them as a launcher's limit.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_ARGS = ["agent=sac", "env=Pendulum-v1", "agent.encoder.kind=flat", "agent.learning_starts=500",
            "steps=10000000", "logger=csv", "progress=false", "eval_every=0", "checkpoint_every=0",
            "save_replay=false"]
LIMIT_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def start_run(run_dir: Path, threads: str, seed: int) -> subprocess.Popen:
    """Start one training run writing to ``run_dir``."""
    env = {k: v for k, v in os.environ.items() if k not in LIMIT_VARIABLES}
    cmd = [sys.executable, "-m", "rlaux.train", *RUN_ARGS, f"threads={threads}", f"seed={seed}",
           f"hydra.run.dir={run_dir}"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def steps_reached(run_dir: Path) -> int:
    """The agent step a stopped run reached (``summary.json``; else its last train.csv row)."""
    summary = run_dir / "summary.json"
    if summary.exists():
        return int(json.loads(summary.read_text())["step"])
    rows = (run_dir / "train.csv").read_text().splitlines()
    header = rows[0].split(",")
    return int(float(rows[-1].split(",")[header.index("step")])) if len(rows) > 1 else 0


def run_case(folder: Path, threads: str, count: int, seconds: float) -> list[int]:
    """Start ``count`` runs together, stop them after ``seconds``; return their steps."""
    dirs = [folder / f"{threads}_{i}" for i in range(count)]
    procs = [start_run(d, threads, seed=i + 1) for i, d in enumerate(dirs)]
    time.sleep(seconds)
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc, run_dir in zip(procs, dirs):
        _, err = proc.communicate(timeout=300)
        if not (run_dir / "summary.json").exists() and not (run_dir / "train.csv").exists():
            raise RuntimeError(f"run in {run_dir} wrote nothing (exit {proc.returncode}):\n{err[-2000:]}")
    return [steps_reached(d) for d in dirs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="wall seconds per case")
    args = parser.parse_args()
    print(f"cores: {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()}, "
          f"{args.seconds:.0f} s per case: {' '.join(RUN_ARGS[:4])}")
    with tempfile.TemporaryDirectory(prefix="rlaux-parallel-") as tmp:
        (alone,) = run_case(Path(tmp), "1", 1, args.seconds)
        pair = run_case(Path(tmp), "auto", 2, args.seconds)
    print(f"alone, threads=1:       {alone:>8,d} steps")
    for i, steps in enumerate(pair):
        print(f"pair run {i}, threads=auto: {steps:>8,d} steps  ratio to alone {steps / max(alone, 1):.2f}")


if __name__ == "__main__":
    main()
