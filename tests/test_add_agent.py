"""docs/ADD_AN_AGENT.md, step by step: its two files, written into a copy of the source tree,
train through the real command line with the guide's own command.

The files go into a copy of the packages (first on the subprocess's PYTHONPATH), so that the
checkout, which other processes may be importing, never holds the extra agent."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "ADD_AN_AGENT.md"
PACKAGES = ("agents", "configs", "envs", "rlaux")


def guide_files() -> dict[str, str]:
    """{path: text} of every code block the guide introduces with its file path (`path`:)."""
    blocks = re.findall(r"^`([\w/.]+)`:\n\n```\w*\n(.*?)^```", GUIDE.read_text(), re.DOTALL | re.MULTILINE)
    return dict(blocks)


def guide_command() -> list[str]:
    """The guide's training command, as arguments of ``python -m rlaux.train``."""
    command = re.search(r"```bash\n(python -m rlaux.train .*?)\n```", GUIDE.read_text(), re.DOTALL).group(1)
    args = shlex.split(command.replace("\\\n", " "))
    assert args[:3] == ["python", "-m", "rlaux.train"]
    return args[3:]


def cli(args: list[str], src: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1", "WANDB_MODE": "offline",
           "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", "rlaux.train", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_its_module_and_its_preset_are_all_a_new_agent_needs(tmp_path: Path) -> None:
    files = guide_files()
    assert sorted(files) == ["agents/simple_ac.py", "configs/agent/simple_ac.yaml"]
    src = tmp_path / "src"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    for path, text in files.items():
        assert not (src / path).exists(), path
        (src / path).write_text(text)

    run_dir = tmp_path / "run"
    watch = ["logger=csv", "progress=false", "threads=1", "log_every=200", "eval_every=0", "eval_episodes=1",
             f"hydra.run.dir={run_dir}"]
    result = cli([*guide_command(), *watch], src, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["step"] >= 600
    with (run_dir / "train.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("critic_loss")]
    assert rows, "no update was logged"
    for key in ("critic_loss", "actor_loss", "aux/tcrl/loss"):
        assert all(math.isfinite(float(r[key])) for r in rows), (key, rows[-1])

    refused = cli(["agent=simple_ac", "env=CartPole-v1", "steps=10", *watch[:-1]], src, tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-3000:]
    assert "agent=simple_ac needs a continuous (Box) action space" in refused.stderr
    assert "use agent=dqn or ppo" in refused.stderr
