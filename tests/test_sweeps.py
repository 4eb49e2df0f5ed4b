"""Sweeps: a Hydra multirun on a local Ray cluster (one folder per member, the report over
the sweep folder), a member killed mid-run and the sweep run again (only that member runs,
from its checkpoint), the member plans of rlaux/sweep.py, and the launchers the README names.

The Ray sweep runs once per module (`ray_sweep`): 2 seeds x aux=none,tcrl with PPO on
CartPole-v1, a few hundred steps each. The member seed=1 aux=tcrl is killed (SIGKILL, as
a preemption would) right after its first checkpoint by a Hydra callback defined here;
the same command is then run again.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

GRID = ["seed=0,1", "aux=none,tcrl"]
SMALL = ["steps=512", "eval_every=256", "eval_episodes=2", "checkpoint_every=256", "log_every=128",
         "agent.num_steps=32", "env.num_envs=4", "agent.update_epochs=2", "logger=csv", "progress=false"]
# A Ray cluster started by the command itself, 2 CPUs (one member per CPU); no retries, so a
# killed member fails the sweep instead of being resumed by Ray at once.
RAY = ["hydra/launcher=ray", "hydra.launcher.ray.init.address=local", "+hydra.launcher.ray.init.num_cpus=2",
       "+hydra.launcher.ray.init.include_dashboard=false", "+hydra.launcher.ray.remote.max_retries=0"]
MEMBERS = {(0, "none"), (0, "tcrl"), (1, "none"), (1, "tcrl")}
KILLED = (1, "tcrl")  # the last member launched: the driver sees its failure after the others finished


class KillAfterFirstCheckpoint(Callback):
    """Hydra callback (tests only): the member with ``seed`` and ``aux`` kills its own process
    with SIGKILL right after writing its first checkpoint, once (``marker`` records it)."""

    def __init__(self, seed: int, aux: str, marker: str) -> None:
        self.seed, self.aux, self.marker = int(seed), str(aux), Path(marker)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if self.marker.exists() or int(config.seed) != self.seed or self.aux not in config.aux:
            return
        import rlaux.training.state as state_module

        save = state_module.save_checkpoint
        marker = self.marker

        def save_then_die(*args: Any, **kw: Any) -> Path:
            path = save(*args, **kw)
            marker.write_text(str(path))
            os.kill(os.getpid(), signal.SIGKILL)
            return path

        state_module.save_checkpoint = save_then_die


# Ray's raylet gives its dashboard agent a fixed 15 s to start (not configurable in ray 2.60); on a
# machine loaded by other jobs that can run out before any member starts. Such a start is tried again.
RAY_START_FAILED = "The current node timed out during startup"


def train_cli(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]), "WANDB_MODE": "offline",
           "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1", "RAY_DEDUP_LOGS": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    for _ in range(3):
        result = subprocess.run([sys.executable, "-m", "rlaux.train", *args], cwd=cwd, env=env,
                                capture_output=True, text=True, timeout=timeout)
        if RAY_START_FAILED not in result.stderr:
            break
    return result


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def members(sweep_dir: Path) -> dict[tuple[int, str], Path]:
    """Member folders of a sweep, keyed by (seed, aux) read from each folder's config.yaml."""
    from omegaconf import OmegaConf

    found: dict[tuple[int, str], Path] = {}
    for config in sweep_dir.rglob("config.yaml"):
        cfg = OmegaConf.load(config)
        key = (int(cfg.seed), ",".join(cfg.aux) or "none")
        assert key not in found, f"two folders for {key}: {found.get(key)} and {config.parent}"
        found[key] = config.parent
    return found


def snapshot(run_dir: Path) -> dict[str, int]:
    """mtime (ns) of every file in a run folder (Hydra's own job log left out)."""
    return {str(p.relative_to(run_dir)): p.stat().st_mtime_ns for p in run_dir.rglob("*")
            if p.is_file() and p.suffix != ".log"}


@pytest.fixture(scope="module")
def ray_sweep(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="needs the ray extra: pip install -e '.[ray]'")
    pytest.importorskip("ray", reason="needs the ray extra: pip install -e '.[ray]'")
    work = tmp_path_factory.mktemp("sweep")
    sweep_dir = work / "sweeps" / "grid"
    kill = ["+hydra.callbacks.kill._target_=test_sweeps.KillAfterFirstCheckpoint",
            f"+hydra.callbacks.kill.seed={KILLED[0]}", f"+hydra.callbacks.kill.aux={KILLED[1]}",
            f"+hydra.callbacks.kill.marker={work / 'killed.txt'}"]
    command = ["-m", *GRID, *SMALL, f"hydra.sweep.dir={sweep_dir}", *RAY, *kill]

    first = train_cli(*command, cwd=work)
    after_first = members(sweep_dir)
    state = {
        "first": first,
        "killed_marker": (work / "killed.txt").exists(),
        "after_first": {k: {"finished": (d / "summary.json").exists(), "files": snapshot(d),
                            "checkpoints": sorted(p.name for p in (d / "checkpoints").glob("step_*.pt")),
                            "train_rows": rows(d / "train.csv") if (d / "train.csv").exists() else []}
                        for k, d in after_first.items()},
    }
    second = train_cli(*command, cwd=work)  # the very same command, run again
    state.update(second=second, sweep_dir=sweep_dir, work=work, members=members(sweep_dir))
    return state


@pytest.mark.slow
def test_ray_sweep_runs_every_member_in_its_own_folder(ray_sweep: dict[str, Any]) -> None:
    second = ray_sweep["second"]
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    found = ray_sweep["members"]
    assert set(found) == MEMBERS, found
    assert len(set(found.values())) == len(MEMBERS)
    for (seed, aux), run_dir in found.items():
        assert run_dir.parent == ray_sweep["sweep_dir"]
        assert f"seed={seed}" in run_dir.name and f"aux={aux}" in run_dir.name, run_dir.name
        assert "logger=" not in run_dir.name and "progress=" not in run_dir.name
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["interrupted"] is False and summary["step"] >= 512, summary
        evals = rows(run_dir / "eval.csv")
        assert len(evals) >= 2 and int(evals[-1]["step"]) >= 512, evals
        assert list((run_dir / "checkpoints").glob("step_*.pt"))
        train_steps = [int(r["step"]) for r in rows(run_dir / "train.csv")]
        assert train_steps == sorted(set(train_steps)), train_steps
    assert (ray_sweep["sweep_dir"] / "multirun.yaml").exists()


@pytest.mark.slow
def test_killed_member_is_the_only_one_run_again(ray_sweep: dict[str, Any]) -> None:
    first, second = ray_sweep["first"], ray_sweep["second"]
    before = ray_sweep["after_first"]
    # First run: the killed member failed the sweep; the three others finished.
    assert ray_sweep["killed_marker"], first.stdout[-3000:] + first.stderr[-3000:]
    assert first.returncode != 0
    assert set(before) == MEMBERS, before
    assert {k for k, v in before.items() if v["finished"]} == MEMBERS - {KILLED}
    killed_before = before[KILLED]
    assert killed_before["checkpoints"], "the killed member had written a checkpoint"
    assert "summary.json" not in killed_before["files"]

    # Second run: finished members untouched, the killed one resumed from its checkpoint and finished.
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    out = second.stdout + second.stderr
    after = ray_sweep["members"]
    for key in MEMBERS - {KILLED}:
        assert snapshot(after[key]) == before[key]["files"], f"{key} was run again"
        assert f"sweep member {after[key]} already finished" in out
    killed_dir = after[KILLED]
    assert f"sweep member {killed_dir} did not finish; resuming it" in out
    assert out.count("rlaux: random policy return") == 0, "no member started from scratch"
    summary = json.loads((killed_dir / "summary.json").read_text())
    assert summary["interrupted"] is False and summary["step"] >= 512
    train_rows = rows(killed_dir / "train.csv")
    steps = [int(r["step"]) for r in train_rows]
    assert steps == sorted(set(steps)) and steps[-1] >= 512, steps
    # The rows logged up to the checkpoint are kept as they were (a resume, not a fresh start;
    # columns that appeared later are added to them, empty).
    kept = [r for r in killed_before["train_rows"] if int(r["step"]) <= int(killed_before["checkpoints"][-1][5:15])]
    assert kept, killed_before["train_rows"]
    assert [{k: row[k] for k in old} for row, old in zip(train_rows, kept)] == kept


@pytest.mark.slow
def test_report_aggregates_the_whole_sweep(ray_sweep: dict[str, Any], tmp_path: Path) -> None:
    """`python -m rlaux.report runs=<sweep folder>` finds the four members and compares the objectives."""
    assert ray_sweep["second"].returncode == 0
    out = tmp_path / "report"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "rlaux.report", f"runs={ray_sweep['sweep_dir']}", f"out={out}",
                             "reps=200"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    scores = rows(out / "scores.csv")
    assert len(scores) == len(MEMBERS), scores
    assert sorted((r["algorithm"], int(r["seed"])) for r in scores) == [
        ("ppo", 0), ("ppo", 1), ("ppo+tcrl", 0), ("ppo+tcrl", 1)], scores
    assert {Path(r["run_dir"]).resolve() for r in scores} == {d.resolve() for d in ray_sweep["members"].values()}
    aggregates = rows(out / "aggregates.csv")
    assert {r["algorithm"] for r in aggregates} == {"ppo", "ppo+tcrl"}
    assert all(int(r["runs_per_task"]) == 2 for r in aggregates), aggregates
    assert (out / "report.md").is_file() and list(out.glob("*.png"))


# --------------------------------------------------------------------------- member plans
@pytest.fixture(scope="module")
def cfg() -> DictConfig:
    from rlaux.config import compose

    return compose(["steps=300", "aux=tcrl"])


def _finished(run_dir: Path, cfg: DictConfig, step: int = 300, **summary: Any) -> None:
    from omegaconf import OmegaConf

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (run_dir / "summary.json").write_text(json.dumps({"interrupted": False, "step": step, **summary}))


def _checkpoint(run_dir: Path, step: int = 100) -> None:
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints" / f"step_{step:010d}.pt").write_bytes(b"")


def test_member_plans(tmp_path: Path, cfg: DictConfig) -> None:
    from rlaux import sweep

    assert sweep.plan_member(cfg, tmp_path / "new").state == sweep.FRESH
    done = tmp_path / "done"
    _finished(done, cfg)
    assert sweep.plan_member(cfg, done).state == sweep.FINISHED
    stopped = tmp_path / "stopped"  # stopped by a signal: interrupted summary and a checkpoint
    stopped.mkdir()
    (stopped / "summary.json").write_text(json.dumps({"interrupted": True, "step": 100}))
    _checkpoint(stopped)
    assert sweep.plan_member(cfg, stopped).state == sweep.RESUME
    failed = tmp_path / "failed"  # failed (summary without "interrupted") after a checkpoint
    failed.mkdir()
    (failed / "summary.json").write_text(json.dumps({"failed": True, "step": 100}))
    _checkpoint(failed)
    assert sweep.plan_member(cfg, failed).state == sweep.RESUME
    short = tmp_path / "short"  # finished at fewer steps than the command asks for: continues
    _finished(short, cfg, step=200)
    _checkpoint(short, 200)
    assert sweep.plan_member(cfg, short).state == sweep.RESUME


def test_resumed_member_gets_resume_set_and_finished_member_is_skipped(tmp_path: Path, cfg: DictConfig,
                                                                       capsys: pytest.CaptureFixture) -> None:
    from rlaux import sweep

    member = tmp_path / "m"
    _checkpoint(member)
    plan, resumed = sweep.prepare_member(cfg, member)
    assert plan.state == sweep.RESUME and resumed.resume == str(member) and cfg.resume is None
    done = tmp_path / "done"
    _finished(done, cfg)
    plan, same = sweep.prepare_member(cfg, done)
    assert plan.state == sweep.FINISHED and same.resume is None
    assert "already finished" in capsys.readouterr().out


def test_finished_member_of_another_config_is_an_error(tmp_path: Path, cfg: DictConfig) -> None:
    from rlaux import sweep
    from rlaux.config import ConfigError, compose

    done = tmp_path / "done"
    _finished(done, compose(["steps=300", "aux=tcrl", "aux.tcrl.horizon=2"]))
    with pytest.raises(ConfigError, match=r"aux\.tcrl\.horizon.*hydra\.sweep\.dir"):
        sweep.plan_member(cfg, done)
    # keys a resume may change (steps, logger, ...) do not count as another config
    _finished(done, compose(["steps=300", "aux=tcrl", "logger=none", "eval_every=7"]))
    assert sweep.plan_member(cfg, done).state == sweep.FINISHED


def test_fresh_start_removes_a_failed_attempts_logs(tmp_path: Path, cfg: DictConfig) -> None:
    from rlaux import sweep

    member = tmp_path / "m"
    member.mkdir()
    for name in ("train.csv", "eval.csv", "summary.json", "wandb_id.txt", "train.log", "config.yaml"):
        (member / name).write_text("x")
    (member / "tb").mkdir()
    plan, _ = sweep.prepare_member(cfg, member)
    assert plan.state == sweep.FRESH
    assert sorted(p.name for p in member.iterdir()) == ["config.yaml", "train.log"]


# --------------------------------------------------------------------------- launchers and errors
@pytest.mark.parametrize("launcher, target", [
    ("ray", "hydra_ray_launcher"),
    ("submitit_slurm", "hydra_submitit_launcher"),
    ("joblib", "hydra_joblib_launcher"),
])
def test_readme_launchers_resolve(launcher: str, target: str) -> None:
    """`hydra/launcher=<name>` (README "Sweeps") finds its installed plugin and composes."""
    pytest.importorskip(f"hydra_plugins.{target}", reason="needs the launcher's extra (pip install -e '.[test]')")
    from hydra import compose, initialize_config_dir

    from rlaux.config import CONFIG_DIR, register_configs

    register_configs(["seed=0,1"])
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["seed=0", "aux=tcrl", "logger=csv", "progress=false",
                                                      f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.startswith(f"hydra_plugins.{target}."), cfg.hydra.launcher
    assert cfg.hydra.sweep.subdir == "aux=tcrl,seed=0"  # a member's folder: its overrides, logger/progress left out


def test_a_bad_member_fails_alone(tmp_path: Path) -> None:
    """DQN cannot run Pendulum (continuous actions): that member fails with rlaux's message,
    the CartPole member still runs, and the sweep exits non-zero."""
    result = train_cli("-m", "agent=dqn", "env=Pendulum-v1,CartPole-v1", "steps=64", "agent.learning_starts=32",
                       "eval_every=0", "eval_episodes=1", "checkpoint_every=0", "logger=none", "progress=false",
                       "hydra.sweep.dir=sw", cwd=tmp_path)
    assert result.returncode != 0
    assert "rlaux: error:" in result.stderr and "discrete" in result.stderr, result.stderr[-3000:]
    found = [p.parent.name for p in (tmp_path / "sw").rglob("summary.json")]
    assert len(found) == 1 and "CartPole-v1" in found[0], found
