"""The command line as a user runs it: the embedded defaults, run folders, resume, and
clear errors for bad input (no traceback, non-zero exit, no half-written run folder)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", "rlaux.train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(
    "args, expected",
    [
        (["agent=ppx"], ["Unknown agent='ppx'", "ppo", "dqn"]),
        (["aux=tcrll"], ["Unknown aux='tcrll'", "Did you mean tcrl"]),
        (["env=dog-rn"], ["dog-rn", "dog-run"]),
        (["agent.lr=-1"], ["agent.lr"]),
        (["agent.lrr=0.1"], ["lrr"]),
        (["steps=0"], ["steps=0"]),
        (["device=tpu"], ["device='tpu'"]),
        (["agent=dqn", "env=Pendulum-v1"], ["discrete"]),
        (["resume=does/not/exist"], ["does/not/exist"]),
        (["aux=[tcrl,tcrl]"], ["aux lists ['tcrl'] more than once"]),  # the SB3 bridge's rule and message
        (["agent.detach_encoder=true"], ["renamed agent.detach_rl", "agent.detach_rl=..."]),
    ],
)
def test_bad_input_gets_one_clear_error(tmp_path: Path, args: list[str], expected: list[str]) -> None:
    result = cli(*args, "logger=none", cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    for text in expected:
        assert text in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(p for p in runs.rglob("*") if p.is_file()), list(runs.rglob("*"))


def test_run_folder_and_resume(tmp_path: Path) -> None:
    base = ["agent=ppo", "env=CartPole-v1", "logger=csv", "progress=false", "eval_every=1024",
            "eval_episodes=2", "log_every=512", "checkpoint_every=1024", "agent.num_steps=64", "env.num_envs=4"]
    first = cli(*base, "steps=2048", "hydra.run.dir=run", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    run = tmp_path / "run"
    for name in ("config.yaml", "versions.json", "train.csv", "eval.csv", "summary.json"):
        assert (run / name).exists(), name
    assert list((run / "checkpoints").glob("step_*.pt"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["step"] >= 2048 and "random_return" in summary
    train_rows = rows(run / "train.csv")
    assert {"step", "frame", "episode_return"} <= set(train_rows[0])
    second = cli("resume=run", "steps=4096", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    steps = [int(r["step"]) for r in rows(run / "train.csv")]
    assert steps == sorted(steps) and len(steps) == len(set(steps)), steps
    assert steps[-1] >= 4096
    assert json.loads((run / "summary.json").read_text())["step"] >= 4096


def test_ppo_warns_when_the_aux_horizon_is_longer_than_the_rollout(tmp_path: Path) -> None:
    """Windows cut at the rollout end are valid by the WindowBatch mask contract, so the run
    trains, but says that no window has all of the horizon's steps."""
    result = cli("agent=ppo", "env=CartPole-v1", "aux=tcrl", "aux.tcrl.horizon=5", "agent.num_steps=2",
                 "env.num_envs=2", "agent.aux.batch_size=8", "steps=16", "logger=csv", "progress=false",
                 "threads=1", "eval_every=0", "eval_episodes=1", "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "aux horizon 5 is longer than the rollout (agent.num_steps=2)" in result.stderr, result.stderr
    assert "no window has all 5 steps (at most 2 are valid" in result.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["step"] >= 16
