"""docs/ADD_AN_OBJECTIVE.md, step by step: the objective in its first code block, saved as one
new file in rlaux/objectives/, trains through the real command line.

The file goes into a copy of the ``rlaux`` package (first on the subprocess's PYTHONPATH), so
that the checkout, which other processes may be importing, never holds the extra module."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "ADD_AN_OBJECTIVE.md"
NAME = "guide_next_latent_test"


def guide_objective_source(name: str) -> str:
    """The guide's first Python block, with the objective renamed to ``name``."""
    source = re.search(r"```python\n(.*?)```", GUIDE.read_text(), re.DOTALL).group(1)
    assert source.count('name = "next_latent"') == 1
    return source.replace('name = "next_latent"', f'name = "{name}"')


def test_one_new_file_is_all_a_new_objective_needs(tmp_path: Path) -> None:
    package_copy = tmp_path / "src"
    shutil.copytree(ROOT / "rlaux", package_copy / "rlaux", ignore=shutil.ignore_patterns("__pycache__"))
    (package_copy / "rlaux" / "objectives" / f"{NAME}.py").write_text(guide_objective_source(NAME))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package_copy), str(ROOT)]),
           "PYTHONDONTWRITEBYTECODE": "1", "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "rlaux.train", "agent=sac", f"aux={NAME}", "env=Pendulum-v1", "steps=600",
         "agent.learning_starts=200", "agent.batch_size=32", "log_every=200", "logger=csv", "progress=false", "threads=1",
         "eval_episodes=1", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with (run_dir / "train.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert json.loads((run_dir / "summary.json").read_text())["step"] >= 600
    losses = [float(r[f"aux/{NAME}/loss"]) for r in rows if r.get(f"aux/{NAME}/loss")]
    assert losses and all(math.isfinite(v) for v in losses), rows[-1]
    assert any(r.get(f"aux/{NAME}/target_norm") for r in rows)
