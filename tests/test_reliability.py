"""Reliability: interrupted runs lose nothing, bad input gets one clear answer, runs
repeat exactly.

* Resume is exact: a run interrupted (SIGINT/SIGTERM in-process; SIGTERM and SIGKILL to a real
  ``python -m rlaux.train`` subprocess) and resumed writes the same train.csv/eval.csv rows as
  an uninterrupted run with the same seed, for ppo/sac/ddpg/dqn on Gymnasium, DMC and Atari
  envs, with aux objectives. (The uninterrupted reference run is also the "same seed twice"
  check: the resumed run repeats its first part exactly.)
* Env snapshots: DMC (physics + task RNG + per-episode model changes) and ALE (emulator + RNG)
  envs continue identically after pickling.
* Bad input through the real command line: one ``rlaux: error:`` line naming the problem and
  the fix, a non-zero exit, no traceback, no half-written run folder.
* Checkpoints: atomic writes, truncated newest file skipped with a warning, a checkpoint of
  another config refused with the differing keys named.
* NaN/Inf: ``on_nan=stop`` names the step, the metric and the last good checkpoint (which
  is finite); ``on_nan=skip`` leaves parameters and optimiser states as they were and counts
  the skipped updates in train.csv.

No test depends on timing: subprocesses are signalled only after a checkpoint file / a number
of CSV rows exist; the SIGKILL moment is drawn from a seeded generator.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import pickle
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import envs
from rlaux.checkpoint import (
    CheckpointError,
    CheckpointWarning,
    list_checkpoints,
    load_checkpoint,
    load_latest_checkpoint,
    save_checkpoint,
)
from rlaux.config import ConfigError, compose
from rlaux.train import train
from rlaux.training.health import NonFiniteLossError
from rlaux.training.off_policy import ReplaySchedule
from rlaux.training.run import TrainingRun
from rlaux.validation import check_override_keys, validate_config

ROOT = Path(__file__).resolve().parents[1]

COMMON = ["logger=csv", "progress=false", "threads=1", "eval_episodes=1"]
# Tiny runs: each crosses several log rows, evaluations, checkpoints and episode ends.
CASES: dict[str, list[str]] = {
    "ppo": ["agent=ppo", "env=CartPole-v1", "aux=predictive", "aux.predictive.hidden=[16]", "agent.aux.batch_size=16",
            "steps=256", "agent.num_steps=16", "env.num_envs=2", "agent.update_epochs=2",
            "log_every=32", "eval_every=128", "checkpoint_every=64"],
    "sac": ["agent=sac", "env=Pendulum-v1", "env.max_episode_steps=60", "aux=tcrl", "steps=240", "agent.learning_starts=60",
            "agent.batch_size=16", "agent.hidden=[32,32]", "aux.tcrl.hidden=[32]", "aux.tcrl.horizon=3", "log_every=20",
            "eval_every=120", "checkpoint_every=40"],
    "ddpg_dmc": ["agent=ddpg", "env=cartpole-swingup", "aux=tcrl", "env.max_episode_steps=40", "steps=160",
                 "agent.learning_starts=40", "agent.batch_size=16", "agent.hidden=[32,32]", "agent.encoder.hidden=[32]",
                 "aux.tcrl.hidden=[32]", "aux.tcrl.horizon=3", "log_every=20", "eval_every=80", "checkpoint_every=40"],
    "dqn_atari": ["agent=dqn", "env=ALE/Pong-v5", "env.max_episode_steps=25", "steps=120", "agent.learning_starts=40",
                  "agent.batch_size=8", "agent.buffer_size=1000", "agent.update_every=4", "agent.num_updates=1",
                  "agent.target_update_every=10", "log_every=20", "eval_every=60", "checkpoint_every=30"],
}

FAULTY_ENV = '''
import gymnasium as gym
from gymnasium.envs.classic_control import CartPoleEnv


class Faulty(CartPoleEnv):
    """CartPole whose 250th step call (counted over every instance) raises."""

    calls = 0

    def step(self, action):
        Faulty.calls += 1
        if Faulty.calls == 250:
            raise RuntimeError("simulator diverged")
        return super().step(action)


gym.register("Faulty-v0", entry_point=Faulty, max_episode_steps=500)
'''


# ----------------------------------------------------------------------------- helpers
def rows(path: Path) -> list[dict[str, str]]:
    """CSV rows without the wall-clock column."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [{k: v for k, v in r.items() if k != "steps_per_second"} for r in csv.DictReader(f)]


def cli_env(extra_path: Path | None = None) -> dict[str, str]:
    path = os.pathsep.join(str(p) for p in (ROOT, extra_path) if p is not None)
    return {**os.environ, "PYTHONPATH": path, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}


def cli(*args: str, cwd: Path, timeout: float = 300, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlaux.train", *args], cwd=cwd, env=cli_env(extra_path),
                          capture_output=True, text=True, timeout=timeout)


def popen(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rlaux.train", *args], cwd=cwd, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, limit: float = 300) -> None:
    """Poll ``condition`` while ``proc`` runs; fail (with its output) if it ends first."""
    deadline = time.monotonic() + limit
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"training ended (rc {proc.returncode}) before the test could signal it:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for the run to reach the point to signal it")
        time.sleep(0.05)


def assert_same_metrics(run: Path, reference: Path) -> None:
    for name in ("train.csv", "eval.csv"):
        got, want = rows(run / name), rows(reference / name)
        assert got, f"{run / name} is empty"
        assert got == want, f"{name} differs from the uninterrupted run"
    steps = [int(r["step"]) for r in rows(run / "train.csv")]
    assert steps == sorted(set(steps)), steps  # no duplicated or out-of-order rows


def step_of(path: str | Path) -> int:
    return int(Path(path).stem.split("_")[1])


@pytest.fixture(scope="module", autouse=True)
def _keep_torch_threads() -> Any:
    threads = torch.get_num_threads()  # runs here set threads=1 for the whole process
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Uninterrupted run of ``CASES[name]`` (run once per module, in-process)."""
    done: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in done:
            run_dir = tmp_path_factory.mktemp(f"reference_{name}") / "run"
            summary = train(COMMON + CASES[name], run_dir)
            assert summary["interrupted"] is False
            done[name] = run_dir
        return done[name]

    return get


def train_until_signal(overrides: list[str], run_dir: Path, stop_at: int, sig: int) -> dict[str, Any]:
    """Train in-process and deliver ``sig`` to this process once the step reaches ``stop_at``."""
    after_step = TrainingRun.after_step
    sent: list[int] = []

    def after_step_then_signal(self: TrainingRun, *args: Any, **kwargs: Any) -> None:
        after_step(self, *args, **kwargs)
        if not sent and self.step >= stop_at:
            handler = signal.getsignal(sig)
            # never signal pytest itself: only when rlaux's StopFlag is installed
            assert type(getattr(handler, "__self__", None)).__name__ == "StopFlag", handler
            sent.append(self.step)
            os.kill(os.getpid(), sig)

    TrainingRun.after_step = after_step_then_signal  # type: ignore[method-assign]
    try:
        summary = train(overrides, run_dir)
    finally:
        TrainingRun.after_step = after_step  # type: ignore[method-assign]
    assert sent, "the run ended before the signal step"
    return summary


# ----------------------------------------------------------------------------- exact resume
# ppo (SIGTERM) and sac (SIGKILL) are interrupted through the command line below.
@pytest.mark.parametrize("name, sig", [("ddpg_dmc", signal.SIGINT), ("dqn_atari", signal.SIGTERM)])
def test_interrupted_run_resumes_exactly(name: str, sig: int, tmp_path: Path, reference: Callable[[str], Path]) -> None:
    overrides = COMMON + CASES[name]
    steps = int(next(o for o in overrides if o.startswith("steps=")).split("=")[1])
    stop_at = random.Random(f"stop-{name}").randint(steps // 4, steps // 2)  # seeded; off the log/ckpt grid
    run_dir = tmp_path / "run"
    first = train_until_signal(overrides, run_dir, stop_at, sig)
    assert first["interrupted"] is True and first["signal"] == sig
    assert first["step"] >= stop_at and step_of(first["checkpoint"]) == first["step"]
    assert json.loads((run_dir / "summary.json").read_text())["interrupted"] is True

    second = train([f"resume={run_dir}"])
    assert second["interrupted"] is False and second["step"] >= steps
    ref = reference(name)
    assert second["step"] == json.loads((ref / "summary.json").read_text())["step"]
    assert second["eval_return"] == json.loads((ref / "summary.json").read_text())["eval_return"]
    assert_same_metrics(run_dir, ref)


def test_sigterm_to_cli_checkpoints_and_resumes(tmp_path: Path, reference: Callable[[str], Path]) -> None:
    proc = popen(*COMMON, *CASES["ppo"], "hydra.run.dir=run", cwd=tmp_path)
    run_dir = tmp_path / "run"
    wait_for(lambda: len(rows(run_dir / "train.csv")) >= 2, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["signal"] == signal.SIGTERM
    assert step_of(list_checkpoints(run_dir / "checkpoints")[-1]) == summary["step"]
    assert "stopped by signal 15" in out and f"resume={run_dir.name}" in out.replace(str(tmp_path) + "/", "")
    assert "Traceback" not in err

    resumed = cli("resume=run", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run_dir.name}" in resumed.stdout.replace(str(tmp_path) + "/", "")
    first_new = [int(r["step"]) for r in rows(run_dir / "train.csv") if int(r["step"]) > summary["step"]]
    assert first_new, "the resumed run logged nothing"
    assert_same_metrics(run_dir, reference("ppo"))


def test_two_quick_ctrl_c_stop_without_a_traceback_and_leave_a_resumable_run(tmp_path: Path) -> None:
    proc = popen(*COMMON, *CASES["ppo"], "hydra.run.dir=run", cwd=tmp_path)
    run_dir = tmp_path / "run"
    wait_for(lambda: len(rows(run_dir / "train.csv")) >= 3, proc)  # past the step-64 checkpoint
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)  # impatient user: the second one stops at once
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "Traceback" not in err, err
    assert "second Ctrl-C" in err or "stopped by signal 2" in out, (out, err)
    assert "resume=" in out + err
    resumed = cli("resume=run", cwd=tmp_path)  # from the newest complete checkpoint (step 64 at least)
    assert resumed.returncode == 0, resumed.stderr


def test_sigkill_at_a_random_moment_resumes_from_last_checkpoint(tmp_path: Path, reference: Callable[[str], Path]) -> None:
    rng = random.Random(20261123)
    kill_after_rows = rng.randint(3, 7)  # of 12 train.csv rows (a checkpoint every 2 rows)
    proc = popen(*COMMON, *CASES["sac"], "hydra.run.dir=run", cwd=tmp_path)
    run_dir = tmp_path / "run"
    wait_for(lambda: bool(list_checkpoints(run_dir / "checkpoints")) and len(rows(run_dir / "train.csv")) >= kill_after_rows,
             proc)
    time.sleep(rng.uniform(0.0, 0.3))  # any moment, even mid-checkpoint-write; nothing below depends on it
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "summary.json").exists()
    last = list_checkpoints(run_dir / "checkpoints")[-1]

    resumed = cli("resume=run", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"from {last}" in resumed.stdout or last.name in resumed.stdout, resumed.stdout
    assert not list((run_dir / "checkpoints").glob("*.tmp"))
    assert_same_metrics(run_dir, reference("sac"))  # rows the killed run wrote after its checkpoint were replaced


def test_resuming_a_finished_run_adds_no_rows(tmp_path: Path, reference: Callable[[str], Path]) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(reference("ppo"), run_dir)
    before = {name: rows(run_dir / name) for name in ("train.csv", "eval.csv")}
    summary = train([f"resume={run_dir}"])
    assert summary["interrupted"] is False
    assert {name: rows(run_dir / name) for name in ("train.csv", "eval.csv")} == before


# ----------------------------------------------------------------------------- env snapshots
def _steps(env: Any, actions: list[Any]) -> list[tuple]:
    out = []
    for a in actions:
        obs, reward, terminated, truncated, _ = env.step(a)
        out.append((obs.copy(), float(reward), bool(terminated), bool(truncated)))
        if terminated or truncated:
            out.append((env.reset()[0].copy(), 0.0, False, False))
    return out


@pytest.mark.parametrize("cfg", [
    {"name": "reacher-easy", "max_episode_steps": 25},  # per-episode target: a model change
    {"name": "cartpole-swingup", "max_episode_steps": 25},
    {"name": "ALE/Breakout-v5", "terminal_on_life_loss": True, "max_episode_steps": 60},  # sticky actions: emulator RNG
])
def test_env_snapshot_continues_identically(cfg: dict[str, Any]) -> None:
    env = envs.make_env(cfg, seed=3)
    env.reset()
    space = env.action_space
    space.seed(0)
    for a in [space.sample() for _ in range(40)]:
        if any(env.step(a)[2:4]):
            env.reset()
    copy = pickle.loads(pickle.dumps(env))
    actions = [space.sample() for _ in range(150)]
    original, restored = _steps(env, actions), _steps(copy, actions)
    assert sum(1 for o in original if o[2] or o[3]) >= 1  # an episode boundary is crossed
    for (o1, r1, te1, tr1), (o2, r2, te2, tr2) in zip(original, restored):
        assert np.array_equal(o1, o2) and (r1, te1, tr1) == (r2, te2, tr2)
    env.close()
    copy.close()


def test_dmc_snapshot_is_compact() -> None:
    env = envs.make_env({"name": "cartpole-swingup"}, seed=0)
    env.reset()
    assert len(pickle.dumps(env)) < 200_000  # not the 12 MB model + data arena


# ----------------------------------------------------------------------------- bad input (CLI)
BASE = ["logger=none", "progress=false", "steps=64", "eval_episodes=1", "eval_every=0", "checkpoint_every=0"]

# Through the real command line: one per stage that can reject input (before Hydra, while
# composing/validating, while building the agent). Every other kind is fed to the same checks
# in-process below (test_cli.py covers unknown agent/aux/env names, agent.lr=-1, steps=0, ...).
BAD_INPUT_CLI = {
    "misspelled key": (["agent=sac", "env=Pendulum-v1", "agent.batch_sise=32"],
                       ["Unknown config key 'agent.batch_sise' (agent=sac)", "Did you mean agent.batch_size"]),
    "batch larger than buffer": (["agent=dqn", "agent.batch_size=512", "agent.buffer_size=100"],
                                 ["agent.batch_size=512", "agent.buffer_size=100", "lower agent.batch_size"]),
    "horizon 0": (["agent=sac", "env=Pendulum-v1", "aux=tcrl", "aux.tcrl.horizon=0"], ["aux.tcrl.horizon=0", ">= 1"]),
}


@pytest.fixture(scope="module")
def bad_input_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Every BAD_INPUT_CLI case through the real command line, two at a time."""
    def one(item: tuple[str, tuple[list[str], list[str]]]) -> tuple[str, tuple[subprocess.CompletedProcess, Path]]:
        name, (args, _) = item
        cwd = tmp_path_factory.mktemp("bad")
        return name, (cli(*BASE, *args, cwd=cwd, timeout=240), cwd)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, BAD_INPUT_CLI.items()))


@pytest.mark.parametrize("name", list(BAD_INPUT_CLI))
def test_bad_input_gets_one_clear_error(name: str, bad_input_results: dict) -> None:
    result, cwd = bad_input_results[name]
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("rlaux: error:") == 1, result.stderr
    for text in BAD_INPUT_CLI[name][1]:
        assert text in result.stderr, result.stderr
    assert not [p for p in cwd.rglob("*") if p.is_file()], "a run folder was left behind"


BAD_INPUT = {  # checked in-process: (overrides, expected text); each raises ConfigError before a run starts
    "misspelled top-level key": (["stpes=100"], ["Unknown config key 'stpes'", "Did you mean steps"]),
    "misspelled env key": (["env.num_env=2"], ["'env.num_env'", "Did you mean env.num_envs"]),
    "aux option without aux": (["aux.tcrl.horizon=3"], ["not selected", "add aux=tcrl"]),
    "negative learning rate": (["agent=sac", "agent.lr=-0.001"], ["agent.lr=-0.001", "> 0"]),
    "learning rate not a number": (["agent.lr=fast"], ["agent.lr='fast'", "number"]),
    "unknown matmul precision": (["matmul_precision=fast"], ["matmul_precision='fast'", "highest, high, medium"]),
    "minibatches larger than rollout": (["agent.num_minibatches=10000"], ["agent.num_minibatches=10000", "rollout"]),
    "steps not an integer": (["steps=ten"], ["steps='ten'", "integer"]),
    "negative seed": (["seed=-1"], ["seed=-1", ">= 0"]),
    "unknown on_nan": (["on_nan=ignore"], ["on_nan='ignore'", "stop, skip"]),
    "unknown logger": (["logger=mlflow"], ["logger='mlflow'", "wandb, tensorboard, csv, none"]),
    "threads 0": (["threads=0"], ["threads=0"]),
    "keep no checkpoints": (["keep_checkpoints=0"], ["keep_checkpoints=0"]),
    "negative replay size limit": (["max_replay_save_gb=-1"], ["max_replay_save_gb=-1"]),
    "not a boolean": (["save_replay=maybe"], ["save_replay='maybe'"]),
    "fractional buffer": (["agent=sac", "agent.buffer_size=1.5"], ["agent.buffer_size=1.5", "integer"]),
    "negative learning_starts": (["agent=dqn", "agent.learning_starts=-5"], ["agent.learning_starts=-5"]),
    "unknown env module": (["env=no_such_module:Foo-v0"], ["cannot import module 'no_such_module'"]),
}


@pytest.mark.parametrize("name", list(BAD_INPUT))
def test_bad_value_is_named_with_its_fix(name: str) -> None:
    overrides, expected = BAD_INPUT[name]
    with pytest.raises(ConfigError) as info:
        check_override_keys(overrides)  # what the command line checks before Hydra
        validate_config(compose(overrides))  # what TrainingRun checks before building anything
    for text in expected:
        assert text in str(info.value)


@pytest.mark.parametrize("overrides, expected", [
    (["agent=sac", "env=CartPole-v1"], ["agent=sac", "continuous", "dqn or ppo"]),
    (["agent=sac", "env=Pendulum-v1", "agent.augment=true"], ["agent.augment=true", "image"]),
])
def test_incompatible_combination_is_refused_before_a_run_folder(overrides: list[str], expected: list[str],
                                                                 tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        TrainingRun(compose(overrides), tmp_path / "run")
    for text in expected:
        assert text in str(info.value)
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_matmul_precision_is_applied_by_the_run(tmp_path: Path) -> None:
    before = torch.get_float32_matmul_precision()
    try:
        run = TrainingRun(compose(["matmul_precision=medium", "logger=none", "progress=false"]), tmp_path / "run")
        assert torch.get_float32_matmul_precision() == "medium"
        run.close()
        TrainingRun(compose(["logger=none", "progress=false"]), tmp_path / "run2").close()
        assert torch.get_float32_matmul_precision() == "highest"  # the default puts IEEE fp32 back
    finally:
        torch.set_float32_matmul_precision(before)


def test_env_raising_mid_episode_gets_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "faulty_env.py").write_text(FAULTY_ENV)
    result = cli(*BASE, "agent=dqn", "env=faulty_env:Faulty-v0", "steps=400", "agent.learning_starts=50",
                 "agent.num_updates=1", "agent.update_every=4", "checkpoint_every=100", "hydra.run.dir=run",
                 cwd=tmp_path, extra_path=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "rlaux: error: env 'faulty_env:Faulty-v0' (train) raised RuntimeError: simulator diverged in step()" in result.stderr
    assert "faulty_env.py" in result.stderr and "resume=run" in result.stderr.replace(str(tmp_path) + "/", "")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["failed"] is True and "simulator diverged" in summary["error"]
    assert summary["checkpoint"] and Path(summary["checkpoint"]).exists()


# ----------------------------------------------------------------------------- checkpoints
def test_checkpoint_of_another_config_is_refused(tmp_path: Path, reference: Callable[[str], Path]) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(reference("ppo"), run_dir)
    config = (run_dir / "config.yaml").read_text()
    assert "  lr: 0.001\n" in config
    (run_dir / "config.yaml").write_text(config.replace("  lr: 0.001\n", "  lr: 0.002\n"))
    files = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    result = cli("resume=run", "steps=300", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    for text in ("was written by a different config", "agent.lr: 0.001 -> 0.002", "resume the run that wrote it"):
        assert text in result.stderr, result.stderr
    assert all(p.read_bytes() == data for p, data in files.items())  # the run folder is left as it was


def test_resume_of_a_config_without_a_run_key_names_it(tmp_path: Path, reference: Callable[[str], Path]) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(reference("ppo"), run_dir)
    config = (run_dir / "config.yaml").read_text()
    (run_dir / "config.yaml").write_text(re.sub(r"(?m)^seed: .*\n", "", config))
    result = cli("resume=run", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("rlaux: error:") == 1, result.stderr
    assert "config.yaml has no seed" in result.stderr and "put the missing keys back" in result.stderr

    # a key a resume may change takes today's default, with a warning naming it
    (run_dir / "config.yaml").write_text(re.sub(r"(?m)^eval_every: .*\n", "", config))
    result = cli("resume=run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "rlaux: warning:" in result.stderr and "config.yaml has no eval_every" in result.stderr, result.stderr
    assert "today's defaults (eval_every=" in result.stderr


def test_run_written_by_an_older_rlaux_resumes(tmp_path: Path, reference: Callable[[str], Path]) -> None:
    """An older rlaux wrote ``agent.detach_encoder`` (now ``agent.detach_rl``), lacked keys added
    since (``recipe``, ``compile``) and hashed its config without them: the checkpoint's own config
    decides. An edited value is still refused."""
    run_dir = tmp_path / "run"
    shutil.copytree(reference("ppo"), run_dir)
    path = list_checkpoints(run_dir / "checkpoints")[-1]
    state = torch.load(path, map_location="cpu", weights_only=False)

    def as_older(config: dict) -> dict:
        old = {k: v for k, v in config.items() if k not in ("recipe", "compile", "compile_mode")}
        agent = dict(old["agent"])
        agent["detach_encoder"] = agent.pop("detach_rl")
        return {**old, "agent": agent}

    state["config"], state["config_hash"] = as_older(state["config"]), "written-by-an-older-rlaux"
    torch.save(state, path)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(state["config"])))
    result = cli("resume=run", "steps=320", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stdout + result.stderr

    config = (run_dir / "config.yaml").read_text()
    (run_dir / "config.yaml").write_text(config.replace("  lr: 0.001\n", "  lr: 0.002\n"))
    result = cli("resume=run", "steps=400", cwd=tmp_path)
    assert result.returncode == 2 and "was written by a different config" in result.stderr, result.stderr


def test_checkpoint_holds_the_loop_state_with_its_replay(reference: Callable[[str], Path]) -> None:
    state = load_checkpoint(list_checkpoints(reference("sac") / "checkpoints")[-1])
    assert "replay" not in state
    loop = state["loop"]
    assert set(loop) == {"obs", "prev_done", "replay_capacity", "replay"}
    assert loop["obs"].shape == (1, 3) and loop["replay"]["config"]["capacity"] == loop["replay_capacity"]
    assert set(load_checkpoint(list_checkpoints(reference("ppo") / "checkpoints")[-1])["loop"]) == {"obs", "prev_done"}


def test_replay_schedule_counts_updates_from_the_step() -> None:
    cfg = compose(["agent=sac", "agent.learning_starts=100", "agent.update_every=4", "agent.num_updates=2"])
    schedule = ReplaySchedule.from_config(cfg.agent, horizon=3)
    assert schedule.horizon == 3 and schedule.batch_size == int(cfg.agent.batch_size)
    assert [schedule.updates_due(s) for s in (0, 99, 100, 103, 104, 108)] == [0, 0, 2, 2, 4, 6]


def test_truncated_newest_checkpoint_falls_back_with_a_warning(tmp_path: Path, reference: Callable[[str], Path]) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(reference("ppo"), run_dir)
    older, newest = list_checkpoints(run_dir / "checkpoints")[-2:]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 3])
    result = cli("resume=run", "steps=300", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "rlaux: warning:" in output and "unreadable" in output and "falling back" in output
    assert f"from {older}".replace(str(tmp_path) + "/", "") in output.replace(str(tmp_path) + "/", "")
    steps = [int(r["step"]) for r in rows(run_dir / "train.csv")]
    assert steps == sorted(set(steps)) and json.loads((run_dir / "summary.json").read_text())["step"] >= 300
    load_checkpoint(list_checkpoints(run_dir / "checkpoints")[-1])  # the corrupt file was replaced

    for path in list_checkpoints(run_dir / "checkpoints"):
        path.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="no readable checkpoint"):
        train([f"resume={run_dir}", "steps=400"])
    assert (run_dir / "config.yaml").exists()  # never removed: it is a started run


def test_crash_during_checkpoint_write_keeps_the_latest_good(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_checkpoint(tmp_path, 10, {"agent": {"w": torch.ones(3)}})

    def crash(obj: Any, path: Any, *args: Any, **kwargs: Any) -> None:
        Path(path).write_bytes(b"PK\x03\x04 partial")  # a few bytes, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, 20, {"agent": {"w": torch.zeros(3)}})
    monkeypatch.undo()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_0000000010.pt"]
    latest = load_latest_checkpoint(tmp_path)
    assert latest is not None and latest["step"] == 10
    save_checkpoint(tmp_path, 30, {"agent": {"w": torch.zeros(3)}})
    assert not list(tmp_path.glob("*.tmp"))  # the crash's leftover is cleaned up


def test_unreadable_checkpoint_warning_category(tmp_path: Path) -> None:
    for step in (1, 2):
        save_checkpoint(tmp_path, step, {"agent": {}})
    list_checkpoints(tmp_path)[-1].write_bytes(b"junk")
    with pytest.warns(CheckpointWarning, match="falling back"):
        assert load_latest_checkpoint(tmp_path)["step"] == 1  # type: ignore[index]


# ----------------------------------------------------------------------------- NaN / Inf
NAN_RUN = COMMON + ["agent=dqn", "env=CartPole-v1", "steps=200", "agent.learning_starts=50", "agent.update_every=1",
                    "agent.num_updates=1", "agent.batch_size=8", "agent.encoder.hidden=[16]", "agent.encoder.latent_dim=16",
                    "log_every=20", "eval_every=0", "checkpoint_every=50"]


def same_state(a: Any, b: Any) -> bool:
    """Deep equality of (optimiser) state dicts holding tensors."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b))
    return a == b


def poison_updates(monkeypatch: pytest.MonkeyPatch, bad_updates: set[int]) -> list[int]:
    """Make DQN's update number ``n`` in ``bad_updates`` (1-based) end with a NaN weight and loss."""
    from agents.dqn import DQNAgent

    original = DQNAgent.update
    count: list[int] = []

    def update(self: Any, batch: Any, step: int) -> dict[str, torch.Tensor]:
        metrics = original(self, batch, step)
        count.append(step)
        if len(count) in bad_updates:
            with torch.no_grad():
                next(self.parameters()).fill_(float("nan"))
            metrics = {**metrics, "q_loss": torch.tensor(float("nan"))}
        return metrics

    monkeypatch.setattr(DQNAgent, "update", update)
    return count


def test_nan_stops_the_run_naming_step_loss_and_last_good_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    poison_updates(monkeypatch, {80})  # update 80 = agent step 129
    with pytest.raises(NonFiniteLossError) as info:
        train(NAN_RUN, tmp_path / "run")
    message = str(info.value)
    assert "q_loss" in message and "at step 140" in message
    assert "last good checkpoint:" in message and "step_0000000100.pt" in message
    found = list_checkpoints(tmp_path / "run" / "checkpoints")
    assert [step_of(p) for p in found] == [50, 100]  # nothing written after the NaN
    agent_state = load_checkpoint(found[-1])["agent"]
    assert all(torch.isfinite(v).all() for v in agent_state.values() if isinstance(v, torch.Tensor))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["failed"] is True and "q_loss" in summary["error"]


def test_nan_skip_leaves_parameters_and_optimisers_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    poison_updates(monkeypatch, {80, 81})
    apply_update = TrainingRun.apply_update
    checked: list[int] = []

    def apply_and_compare(self: TrainingRun, update: Any, *args: Any) -> Any:
        before = {k: v.clone() for k, v in self.agent.state_dict().items() if isinstance(v, torch.Tensor)}
        opt_before = {k: copy.deepcopy(o.state_dict()) for k, o in self.agent.optimizers().items()}
        skipped = self.nan.skipped
        metrics = apply_update(self, update, *args)
        if self.nan.skipped > skipped:
            after = self.agent.state_dict()
            assert all(torch.equal(v, after[k]) for k, v in before.items())
            assert all(same_state(o.state_dict(), opt_before[k]) for k, o in self.agent.optimizers().items())
            checked.append(self.step)
        return metrics

    monkeypatch.setattr(TrainingRun, "apply_update", apply_and_compare)
    summary = train(NAN_RUN + ["on_nan=skip"], tmp_path / "run")
    assert summary["interrupted"] is False and len(checked) == 2
    train_rows = rows(tmp_path / "run" / "train.csv")
    assert float(train_rows[-1]["nan_skipped"]) == 2
    assert all(float(r["q_loss"]) == float(r["q_loss"]) for r in train_rows if r.get("q_loss"))  # no NaN logged
    state = load_checkpoint(list_checkpoints(tmp_path / "run" / "checkpoints")[-1])
    assert state["counters"]["nan_skipped"] == 2


# ----------------------------------------------------------------------------- validation units
def test_validate_config_warns_about_runs_that_never_update() -> None:
    warnings = validate_config(compose(["agent=sac", "steps=100"]))
    assert any("never updates" in w for w in warnings)
    assert validate_config(compose([])) == []


def test_override_keys_accept_valid_and_sweep_forms() -> None:
    check_override_keys(["agent=sac", "agent.lr=1e-3,3e-4", "env.num_envs=2", "aux=[tcrl,predictive]",
                         "aux.tcrl.horizon=3", "+agent.new_key=1", "hydra.run.dir=x", "hydra/launcher=basic", "-m",
                         "agent.hidden=[64,64]"])
    with pytest.raises(ConfigError, match="agent=ppo"):
        check_override_keys(["agent=sac,ppo", "agent.tau=0.01"])


# ----------------------------------------------------------------------------- wandb
def test_wandb_run_id_is_kept_across_a_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    from rlaux.logger import Logger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    first = Logger(tmp_path, backend="wandb", config={"seed": 1}, progress=False, run_name="r")
    first.log("train", 10, 10, {"loss": 1.0})
    first.close()
    run_id = (tmp_path / "wandb_id.txt").read_text().strip()
    second = Logger(tmp_path, backend="wandb", config={"seed": 1}, progress=False, run_name="r", start_step=10)
    second.log("train", 20, 20, {"loss": 0.5})
    assert second._wandb_run is not None and second._wandb_run.id == run_id
    second.close()
    # offline-run-<time>-<id>, and wandb appends -1 when both began in the same second
    offline = [p.name for p in (tmp_path / "wandb").glob("offline-run-*")]
    assert offline and all(re.fullmatch(rf"offline-run-\d{{8}}_\d{{6}}-{run_id}(-\d+)?", n) for n in offline), offline
