"""``compile=true`` (:mod:`rlaux.compile`): compiled updates give the eager losses, a failing
compiler falls back to eager with one warning line, ``on_nan=skip`` still undoes a bad update,
and the config keys are checked.

Tolerance of the loss comparisons: ``rtol=1e-4, atol=1e-5``. Inductor's fused kernels sum
and multiply fp32 values in another order than the eager ATen kernels (rounding differs by
~1e-7 relative per operation), and each Adam step feeds the rounding of one update into the
parameters of the next; a real difference (a wrong gradient, a skipped step) changes the
losses by orders of magnitude more. Random draws are compared with Inductor's
``fallback_random`` (the eager RNG kernels), so both paths sample the same noise.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch._inductor.config as inductor_config
from omegaconf import OmegaConf

from agents import agent_class
from rlaux.compile import CompiledUpdate, resolve_mode
from rlaux.config import ConfigError, compose
from rlaux.training.health import NanPolicy
from rlaux.types import WindowBatch
from rlaux.validation import validate_config

CPU = torch.device("cpu")
STATE = gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)
BOX = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
DISCRETE = gym.spaces.Discrete(3)
TINY = {  # tiny networks keep the compile time small; the code paths are the defaults'
    "sac": {"hidden": [16, 16], "encoder.latent_dim": 8},
    "ddpg": {"hidden": [16, 16], "encoder.latent_dim": 8, "encoder.hidden": [16]},
    "ppo": {"head_hidden": [16], "encoder.latent_dim": 8, "encoder.hidden": [16], "num_steps": 8, "num_minibatches": 2,
            "update_epochs": 2},
}
RTOL, ATOL = 1e-4, 1e-5
UPDATES = 3


def make_agent(name: str, aux: str | None = None) -> Any:
    cfg = compose([f"agent={name}", "steps=1000", *([f"aux={aux}"] if aux else [])])
    for key, value in TINY[name].items():
        OmegaConf.update(cfg.agent, key, value, merge=False)
    action_space = DISCRETE if name == "ppo" else BOX
    return agent_class(name)(cfg.agent, STATE, action_space, cfg.aux, CPU)


def window_batch(horizon: int, gen: torch.Generator, B: int = 16) -> WindowBatch:
    """Random windows of ``horizon`` transitions (all valid) with 1-step returns."""
    L = max(horizon, 1)
    return WindowBatch(
        obs=torch.randn(B, L + 1, *STATE.shape, generator=gen), action=torch.rand(B, L, *BOX.shape, generator=gen) * 2 - 1,
        reward=torch.randn(B, L, generator=gen), terminated=torch.zeros(B, L), mask=torch.ones(B, L),
        nstep_reward=torch.randn(B, generator=gen), nstep_discount=torch.full((B,), 0.99),
        nstep_next_obs=torch.randn(B, *STATE.shape, generator=gen))


def off_policy_args(agent: Any, i: int) -> tuple[Any, ...]:
    return window_batch(agent.aux.horizon, torch.Generator().manual_seed(i)), 1000 + i


def ppo_args(agent: Any, i: int) -> tuple[Any, ...]:
    """A rollout of ``agent``'s policy on random observations (a fresh storage: the update empties it)."""
    gen = torch.Generator().manual_seed(i)
    storage = agent.make_storage(2)
    prev_done = torch.zeros(2, dtype=torch.bool)
    for _ in range(storage.num_steps):
        obs = torch.randn(2, *STATE.shape, generator=gen)
        action, logp, value = agent.policy_step(obs)
        done = torch.rand(2, generator=gen) < 0.2
        storage.add(obs, action, logp, value, torch.randn(2, generator=gen), done, torch.zeros(2, dtype=torch.bool),
                    ~prev_done)
        prev_done = done
    return storage, torch.randn(2, *STATE.shape, generator=gen), 1000 + i


def run_updates(update: Callable[..., dict[str, torch.Tensor]], agent: Any,
                make_args: Callable[[Any, int], tuple[Any, ...]]) -> list[dict[str, float]]:
    """``UPDATES`` updates, each from its own seed (the same noise for both paths)."""
    out = []
    for i in range(UPDATES):
        torch.manual_seed(i)
        args = make_args(agent, i)
        torch.manual_seed(100 + i)
        out.append({k: float(v) for k, v in update(*args).items()})
    return out


def assert_same_losses(eager: list[dict[str, float]], compiled: list[dict[str, float]]) -> None:
    for i, (e, c) in enumerate(zip(eager, compiled)):
        assert e.keys() == c.keys()
        for key in e:
            assert c[key] == pytest.approx(e[key], rel=RTOL, abs=ATOL), f"update {i}: {key}"


def compare(name: str, aux: str | None, make_args: Callable[[Any, int], tuple[Any, ...]],
            backend: str | Callable[..., Any] = "inductor") -> list[str]:
    """Eager and compiled copies of one agent, updated alike, end with the same losses and
    parameters; returns the compiled path's warnings (Dynamo's recompile limit may send a
    network's ``forward`` to eager: one warning line)."""
    torch.manual_seed(0)
    eager = make_agent(name, aux)
    compiled = copy.deepcopy(eager)
    warnings: list[str] = []
    step = CompiledUpdate(compiled.update, CPU, "auto", warnings.append, backend=backend)
    with inductor_config.patch(fallback_random=True):
        assert_same_losses(run_updates(eager.update, eager, make_args), run_updates(step, compiled, make_args))
    assert list(compiled.state_dict()) == list(eager.state_dict())  # checkpoints keep their keys
    for (key, e), c in zip(eager.state_dict().items(), compiled.state_dict().values()):
        if e.is_floating_point():
            torch.testing.assert_close(c, e, rtol=RTOL, atol=ATOL, msg=key)
    assert len(warnings) <= 1
    return warnings


def test_compiled_sac_update_gives_the_eager_losses() -> None:
    compare("sac", None, off_policy_args)


@pytest.mark.slow  # ~1.5 min of compilation on one core: the aux objective's graphs come on top
def test_compiled_ddpg_tcrl_update_gives_the_eager_losses() -> None:
    compare("ddpg", "tcrl", off_policy_args)


@pytest.mark.slow  # ~1.3 min of compilation on one core
def test_compiled_ppo_update_gives_the_eager_losses() -> None:
    compare("ppo", None, ppo_args)


def failing_backend(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> Callable[..., Any]:
    raise RuntimeError("no compiler here")


def test_a_failing_compiler_falls_back_to_eager_with_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="torch._dynamo"):
        warnings = compare("sac", None, off_policy_args, backend=failing_backend)
    assert warnings == ["rlaux: warning: compile=true: part of the update runs eagerly "
                        "(torch.compile: RuntimeError: no compiler here)"]
    assert not [r for r in caplog.records if r.name.startswith("torch._dynamo") and r.levelno >= logging.WARNING]


def test_on_nan_skip_undoes_a_compiled_update() -> None:
    torch.manual_seed(0)
    agent = make_agent("sac")
    policy = NanPolicy(agent, "skip", lambda: "here", lambda text: None)
    step = CompiledUpdate(agent.update, CPU, "default", lambda text: None, backend="eager")
    good = policy.apply(step, *off_policy_args(agent, 0))
    before = copy.deepcopy(agent.state_dict())
    batch, t = off_policy_args(agent, 1)
    batch.nstep_reward[0] = float("nan")
    assert policy.apply(step, batch, t) is policy.good_metrics and policy.good_metrics.keys() == good.keys()
    assert policy.skipped == 1
    for key, value in agent.state_dict().items():
        assert torch.equal(value, before[key]), key
    policy.apply(step, *off_policy_args(agent, 2))
    assert policy.skipped == 1 and not torch.equal(agent.state_dict()["log_alpha"], before["log_alpha"])


@pytest.mark.slow  # two short runs, each compiling its update (~1 min on one core)
def test_a_compiled_run_checkpoints_and_resumes(tmp_path: Path) -> None:
    from rlaux.checkpoint import list_checkpoints, load_checkpoint
    from rlaux.train import train

    threads = torch.get_num_threads()
    run = ["agent=sac", "env=Pendulum-v1", "compile=true", "on_nan=skip", "steps=80", "agent.learning_starts=40",
           "agent.batch_size=16", "agent.hidden=[16,16]", "agent.encoder.latent_dim=8", "log_every=20",
           "eval_every=0", "eval_episodes=1", "checkpoint_every=40", "logger=csv", "progress=false", "threads=1"]
    try:
        assert train(run, tmp_path / "run")["interrupted"] is False
        first = list_checkpoints(tmp_path / "run" / "checkpoints")[-1]
        keys = list(load_checkpoint(first)["agent"])
        assert train([f"resume={tmp_path / 'run'}", "steps=120"])["interrupted"] is False
    finally:
        torch.set_num_threads(threads)
    last = list_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    assert step_of(last) == 120 and list(load_checkpoint(last)["agent"]) == keys == list(make_agent("sac").state_dict())


def step_of(path: Path) -> int:
    return int(path.stem.split("_")[1])


def test_auto_mode_records_graphs_on_gpus_only() -> None:
    assert resolve_mode("auto", torch.device("cuda")) == "reduce-overhead"
    assert resolve_mode("auto", CPU) == "default"
    assert resolve_mode("max-autotune", CPU) == "max-autotune"
    with pytest.raises(ValueError, match="compile_mode='fast' is not valid; valid choices: auto, default"):
        resolve_mode("fast", CPU)


@pytest.mark.parametrize(("override", "message"), [
    ("compile=yes", "compile='yes' is invalid: must be true or false"),
    ("compile_mode=fast", "compile_mode='fast' is invalid: must be one of auto, default, reduce-overhead, max-autotune"),
])
def test_bad_compile_settings_are_config_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_config(compose([override]))


def test_compile_is_off_by_default() -> None:
    cfg = compose([])
    assert cfg.compile is False and cfg.compile_mode == "auto"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no cuda")
def test_compiled_sac_update_with_cuda_graphs_gives_the_eager_losses_cuda() -> None:
    device = torch.device("cuda")
    torch.manual_seed(0)
    cfg = compose(["agent=sac", "steps=1000"])
    eager = agent_class("sac")(cfg.agent, STATE, BOX, cfg.aux, device)
    compiled = copy.deepcopy(eager)
    step = CompiledUpdate(compiled.update, device, "auto", pytest.fail)

    def cuda_args(agent: Any, i: int) -> tuple[Any, ...]:
        batch, t = off_policy_args(agent, i)
        return WindowBatch(**{k: v.to(device) for k, v in vars(batch).items()}), t

    with inductor_config.patch(fallback_random=True):
        eager_losses = run_updates(eager.update, eager, cuda_args)
        assert_same_losses(eager_losses, run_updates(step, compiled, cuda_args))
