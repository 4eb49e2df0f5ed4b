"""Every registered objective: gradient routing, target networks, the suite, config nodes,
incompatible spaces, pixels. A new objective joins these tests by being registered; OPTIONS
only makes its networks small or adds cases for its options."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from rlaux.encoders import DrQEncoder, MLPEncoder
from rlaux.objectives import OBJECTIVES, IncompatibleObjectiveError, Target, build_aux_suite, objective_class
from rlaux.types import WindowBatch

OBS = gym.spaces.Box(-np.inf, np.inf, (6,), np.float32)
BOX = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
DISCRETE = gym.spaces.Discrete(3)
NAMES = sorted(OBJECTIVES)

# Per objective: small networks, and one case per option that creates a target network
# ("<name>-<variant>"). Registered objectives not listed here run with their defaults.
OPTIONS = {
    "tcrl": {"hidden": [32], "horizon": 3},
    "tcrl-random-init": {"hidden": [32], "horizon": 3, "target_init": "random"},
    "predictive": {"hidden": [16], "mode": "kstep", "horizon": 2, "reward_weight": 1.0, "inverse_weight": 1.0},
    "predictive-target": {"hidden": [16], "collapse": "target", "mode": "bootstrapped"},
    "taco": {"hidden": 32},
    "taco-ema": {"hidden": 32, "key_encoder": "ema"},
    "proto_value": {"num_tasks": 8, "indicator_nets": 2, "indicator_hidden": [16], "target_rate": 0.2},
    "proto_value-hash": {"num_tasks": 8, "indicator": "hash"},
}
CASES = {**{name: {} for name in NAMES}, **OPTIONS}
WITH_EMA_TARGET = {"tcrl", "tcrl-random-init", "predictive-target", "taco-ema", "proto_value", "proto_value-hash"}


def random_windows(obs_space: gym.Space, action_space: gym.Space, B: int, L: int, seed: int = 0) -> WindowBatch:
    g = torch.Generator().manual_seed(seed)
    if obs_space.dtype == np.uint8:
        obs = torch.randint(0, 256, (B, L + 1, *obs_space.shape), generator=g, dtype=torch.uint8)
    else:
        obs = torch.randn(B, L + 1, *obs_space.shape, generator=g)
    if isinstance(action_space, gym.spaces.Discrete):
        action = torch.randint(0, action_space.n, (B, L), generator=g)
    else:
        action = torch.rand(B, L, *action_space.shape, generator=g) * 2 - 1
    reward = torch.randn(B, L, generator=g)
    z = torch.zeros(B, L)
    return WindowBatch(obs, action, reward, z, torch.ones(B, L), z[:, 0], z[:, 0] + 0.99, obs[:, -1])


def build(case: str, action_space: gym.Space = BOX, **extra):
    name = case.split("-")[0]
    torch.manual_seed(0)
    enc = MLPEncoder(6, 16, (32,))
    suite = build_aux_suite({name: {**CASES[case], **extra}}, "sac", enc, enc.out_dim, OBS, action_space)
    return suite, suite.objectives[name], enc


@pytest.mark.parametrize("action_space", [BOX, DISCRETE], ids=["box", "discrete"])
@pytest.mark.parametrize("case", list(CASES))
def test_gradient_routing_and_targets(case, action_space) -> None:
    suite, obj, enc = build(case, action_space)
    batch = random_windows(OBS, action_space, 16, suite.horizon)
    loss, metrics = obj.loss(batch, enc)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert all(v.dim() == 0 for v in metrics.values())
    loss.backward()
    for n, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"encoder {n} got no gradient"
    frozen = {id(p) for p in obj.parameters() if not p.requires_grad}
    assert all(p.grad is None for p in obj.parameters() if not p.requires_grad)
    copies = {id(p) for t in ema_targets(obj) for p in t.parameters()}
    assert frozen >= copies and bool(copies) == bool(ema_targets(obj))  # an EMA target holds frozen copies
    assert all(t.encoder is None for t in obj.targets() if t.kind != "ema")  # other kinds copy nothing
    if case in OPTIONS:  # the options that ask for an EMA target, and only those, make one
        assert bool(ema_targets(obj)) == (case in WITH_EMA_TARGET)
    trainable = [p for p in obj.parameters() if p.requires_grad]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable)

    enc.zero_grad(set_to_none=True)
    suite2, obj2, enc2 = build(case, action_space, encoder_grad=False)
    loss2, _ = obj2.loss(batch, enc2)
    loss2.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in enc2.parameters())


def ema_targets(obj) -> list[Target]:
    return [t for t in obj.targets() if t.kind == "ema"]


@pytest.mark.parametrize("case", list(CASES))
def test_targets_move_toward_online_after_update(case) -> None:
    suite, obj, enc = build(case)
    targets = [t for t in ema_targets(obj) if t.init == "copy"]
    if not targets:
        pytest.skip(f"{case} has no EMA target initialised as a copy")
    flat = lambda m: torch.cat([p.detach().flatten() for p in m.parameters()])
    for target in targets:
        assert torch.allclose(flat(target.encoder), flat(enc))  # initialised as a copy
    before = flat(enc)
    suite.update(random_windows(OBS, BOX, 16, suite.horizon), enc)
    after_online = flat(enc)
    assert not torch.allclose(before, after_online)
    for target in targets:
        assert torch.allclose(flat(target.encoder), before + target.tau * (after_online - before), atol=1e-6)


def test_suite_with_two_objectives() -> None:
    torch.manual_seed(0)
    enc = MLPEncoder(6, 16, (32,))
    aux = OmegaConf.create({"tcrl": {"hidden": [32], "horizon": 3},
                            "predictive": {"hidden": [16], "mode": "kstep", "horizon": 5}})
    suite = build_aux_suite(aux, "ddpg", enc, enc.out_dim, OBS, BOX)
    assert suite.horizon == 5 and suite.detach_rl  # TCRL's recipe detaches RL
    before = [p.detach().clone() for p in enc.parameters()]
    metrics = suite.update(random_windows(OBS, BOX, 32, 5), enc)
    assert {"aux/tcrl/loss", "aux/predictive/loss", "aux/tcrl/state_loss", "aux/predictive/pred_loss"} <= set(metrics)
    assert all(torch.is_tensor(v) and v.dim() == 0 for v in metrics.values())
    assert any(not torch.equal(b, p) for b, p in zip(before, enc.parameters()))
    target_params = {id(p) for p in suite.objectives["tcrl"].target.parameters()}
    optimised = {id(p) for g in suite.optimizer.param_groups for p in g["params"]}
    assert not target_params & optimised


def test_unknown_objective_lists_choices() -> None:
    enc = MLPEncoder(6, 16, (32,))
    with pytest.raises(KeyError, match="predictive, proto_value, taco, tcrl"):
        build_aux_suite({"tcrll": {}}, "sac", enc, enc.out_dim, OBS, BOX)
    assert {"predictive", "proto_value", "taco", "tcrl"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_impossible_spaces_raise_clear_errors(name) -> None:
    cls = objective_class(name)
    with pytest.raises(IncompatibleObjectiveError, match="Box .*or Discrete actions"):
        cls.check_compatible("sac", OBS, gym.spaces.MultiDiscrete([2, 3]))
    with pytest.raises(IncompatibleObjectiveError, match="Box observations"):
        cls.check_compatible("sac", gym.spaces.Dict({"x": OBS}), BOX)
    cls.check_compatible("dqn", OBS, DISCRETE)
    cls.check_compatible("ppo", OBS, BOX)
    enc = MLPEncoder(6, 16, (32,))
    with pytest.raises(IncompatibleObjectiveError):
        build_aux_suite({name: {}}, "sac", enc, enc.out_dim, OBS, gym.spaces.MultiBinary(3))


@pytest.mark.parametrize("name", NAMES)
def test_configs_are_typed_config_nodes(name) -> None:
    """The dataclasses become Hydra nodes: overrides are type-checked, defaults round-trip."""
    node = OmegaConf.structured(objective_class(name).config_class)
    assert OmegaConf.to_container(node)["weight"] == 1.0
    with pytest.raises(ValidationError):
        node.weight = "heavy"
    built = objective_class(name).config_class(**OmegaConf.to_container(node))
    assert built == objective_class(name).config_class()


@pytest.mark.parametrize("action_space", [BOX, DISCRETE], ids=["box", "discrete"])
def test_all_objectives_on_pixels(action_space) -> None:
    torch.manual_seed(0)
    space = gym.spaces.Box(0, 255, (6, 36, 36), np.uint8)
    enc = DrQEncoder(space.shape)
    aux = {"tcrl": {"hidden": [32], "horizon": 2}, "predictive": {"hidden": [16]},
           "taco": {"hidden": 32, "horizon": 2}, "proto_value": {"num_tasks": 4, "indicator_nets": 2, "indicator_width": 0.25}}
    suite = build_aux_suite(aux, "ddpg", enc, enc.out_dim, space, action_space)
    assert suite.objectives["tcrl"].proj[0].out_features == 50  # 3872 conv features projected
    before = [p.detach().clone() for p in enc.parameters()]
    metrics = suite.update(random_windows(space, action_space, 8, suite.horizon), enc)
    assert all(torch.isfinite(v) for v in metrics.values())
    assert all(not torch.equal(b, p) for b, p in zip(before, enc.parameters()))


# ----------------------------------------------------------------------------- weights
@pytest.mark.parametrize("name", NAMES)
def test_negative_weights_are_refused_by_every_objective(name) -> None:
    config_class = objective_class(name).config_class
    with pytest.raises(ValueError, match=r"weight=-1.* weights must be >= 0"):
        config_class(weight=-1.0)
    with pytest.raises(ValueError, match="must be >= 0"):
        config_class(weight=float("nan"))
    assert config_class(weight=0.0).weight == 0.0


@pytest.mark.parametrize("case", list(CASES))
def test_weight_zero_logs_the_loss_without_training_on_it(case) -> None:
    suite, obj, enc = build(case, weight=0.0)
    trained = [*enc.parameters(), *(p for p in obj.parameters() if p.requires_grad)]
    before = [p.detach().clone() for p in trained]
    metrics = suite.update(random_windows(OBS, BOX, 16, suite.horizon), enc)
    loss = metrics[f"aux/{obj.name}/loss"]
    assert torch.isfinite(loss) and loss != 0
    assert all(torch.equal(b, p) for b, p in zip(before, trained))


def test_a_negative_weight_is_one_clear_error_on_the_command_line(tmp_path) -> None:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "rlaux.train", "agent=sac", "env=Pendulum-v1", "aux=tcrl", "aux.tcrl.weight=-1",
         "logger=none", "progress=false", "threads=1", "steps=64", "eval_episodes=1", "eval_every=0", "checkpoint_every=0"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and result.stderr.count("rlaux: error:") == 1, result.stderr
    assert "weight=-1.0" in result.stderr and "must be >= 0" in result.stderr, result.stderr


def test_a_negative_weight_is_refused_by_the_sb3_classes() -> None:
    from rlaux.sb3 import AuxPPO

    with pytest.raises(ValueError, match=r"weight=-1 .*must be >= 0"):
        AuxPPO("MlpPolicy", "CartPole-v1", aux={"tcrl": {"weight": -1}}, n_steps=32, batch_size=32)
