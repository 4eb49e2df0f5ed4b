"""PPOAgent: acting, updates, gradient routing, auxiliary objectives, config checks, learning."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from agents.ppo import PPOAgent
from rlaux.config import compose
from rlaux.objectives.base import OBJECTIVES, AuxObjective, IncompatibleObjectiveError, ObjectiveConfig, register_objective
from rlaux.types import WindowBatch

CPU = torch.device("cpu")
DISCRETE = (gym.spaces.Box(-np.inf, np.inf, (4,), np.float32), gym.spaces.Discrete(3))
BOX = (gym.spaces.Box(-np.inf, np.inf, (5,), np.float32), gym.spaces.Box(-1.0, 1.0, (2,), np.float32))


def ppo_cfg(**overrides: object):
    """The shipped configs/agent/ppo.yaml (as composed for a run), with dotted overrides."""
    cfg = compose(["agent=ppo", "steps=1000"]).agent
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value, merge=False)
    return cfg


def make_agent(spaces=DISCRETE, aux=None, **overrides: object) -> PPOAgent:
    base = {"num_steps": 8, "num_minibatches": 2, "update_epochs": 2}
    return PPOAgent(ppo_cfg(**{**base, **overrides}), spaces[0], spaces[1], aux or {}, CPU)


def fill(agent: PPOAgent, num_envs: int = 3, seed: int = 0):
    """Roll the agent's policy on random observations with a few episode ends; return
    (storage, next_obs)."""
    gen = torch.Generator().manual_seed(seed)
    storage = agent.make_storage(num_envs)
    space = agent.obs_space
    prev_done = torch.zeros(num_envs, dtype=torch.bool)

    def obs() -> torch.Tensor:
        if space.dtype == np.uint8:
            return torch.randint(0, 256, (num_envs, *space.shape), generator=gen, dtype=torch.uint8)
        return torch.randn((num_envs, *space.shape), generator=gen)

    for _ in range(storage.num_steps):
        o = obs()
        action, logp, value = agent.policy_step(o)
        done = torch.rand(num_envs, generator=gen) < 0.2
        term = done & (torch.rand(num_envs, generator=gen) < 0.5)
        storage.add(o, action, logp, value, torch.randn(num_envs, generator=gen), term, done & ~term, ~prev_done)
        prev_done = done
    return storage, obs()


def params_of(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(before: list[torch.Tensor], module: nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


# ---------------------------------------------------------------------------- acting
@pytest.mark.parametrize("spaces", [DISCRETE, BOX], ids=["discrete", "box"])
def test_policy_step_and_act_shapes(spaces) -> None:
    agent = make_agent(spaces)
    obs = torch.randn(6, *spaces[0].shape)
    action, logp, value = agent.policy_step(obs)
    assert logp.shape == value.shape == (6,)
    if isinstance(spaces[1], gym.spaces.Discrete):
        assert action.shape == (6,) and action.dtype == torch.int64
        assert ((action >= 0) & (action < spaces[1].n)).all()
    else:
        assert action.shape == (6, 2) and action.dtype == torch.float32
        env_action = agent.env_action(action * 100)
        assert env_action.abs().max() <= 1.0
    for eval_mode in (False, True):
        out = agent.act(obs, step=0, eval_mode=eval_mode)
        assert out.shape == ((6,) if agent.discrete else (6, 2))
        if not agent.discrete:
            assert out.abs().max() <= 1.0
    torch.testing.assert_close(agent.act(obs, 0, eval_mode=True), agent.act(obs, 0, eval_mode=True))


def test_logprob_of_sampled_actions_is_consistent() -> None:
    """policy_step's log-prob is the Gaussian density of the raw (unclipped) sample."""
    agent = make_agent(BOX, init_log_std=0.5)
    obs = torch.randn(5, 5)
    action, logp, _ = agent.policy_step(obs)
    mean = agent.actor(agent.features(obs))
    ref = torch.distributions.Normal(mean, agent.log_std.exp()).log_prob(action).sum(-1)
    torch.testing.assert_close(logp, ref.detach())


@pytest.mark.parametrize("obs_shape,kind", [((9, 48, 48), "drq"), ((4, 64, 64), "nature")])
def test_pixel_observations(obs_shape, kind) -> None:
    space = gym.spaces.Box(0, 255, obs_shape, np.uint8)
    agent = make_agent((space, gym.spaces.Discrete(4)), **{"encoder.kind": "auto", "num_steps": 4})
    assert type(agent.encoder).__name__ == {"drq": "DrQEncoder", "nature": "NatureCNN"}[kind]
    obs = torch.randint(0, 256, (2, *obs_shape), dtype=torch.uint8)
    action, logp, value = agent.policy_step(obs)
    assert action.shape == logp.shape == value.shape == (2,)
    storage, next_obs = fill(agent, num_envs=2)
    assert storage.obs.dtype == torch.uint8
    metrics = agent.update(storage, next_obs, step=8)
    assert all(torch.isfinite(v) for v in metrics.values())


def test_flat_encoder_gives_sb3_style_separate_mlps() -> None:
    """encoder.kind=flat + head_hidden=[64, 64]: each head is SB3's MlpPolicy net on the raw state."""
    torch.manual_seed(0)
    agent = make_agent(BOX, **{"encoder.kind": "flat", "head_hidden": [64, 64]})
    assert list(agent.encoder.parameters()) == [] and isinstance(agent.torso, nn.Identity)
    widths = [m.in_features for m in agent.actor.modules() if isinstance(m, nn.Linear)]
    assert widths == [BOX[0].shape[0], 64, 64]
    storage, next_obs = fill(agent)
    before = params_of(agent.actor)
    metrics = agent.update(storage, next_obs, step=24)
    assert changed(before, agent.actor) and all(torch.isfinite(v) for v in metrics.values())
    with pytest.raises(IncompatibleObjectiveError, match="encoder.kind=flat"):
        make_agent(BOX, aux={"tcrl": {}}, **{"encoder.kind": "flat"})


# ---------------------------------------------------------------------------- update
@pytest.mark.parametrize("spaces", [DISCRETE, BOX], ids=["discrete", "box"])
def test_update_returns_finite_metrics_and_changes_params(spaces) -> None:
    torch.manual_seed(0)
    agent = make_agent(spaces, target_kl=1.0)
    storage, next_obs = fill(agent)
    before_enc, before_actor, before_critic = params_of(agent.encoder), params_of(agent.actor), params_of(agent.critic)
    metrics = agent.update(storage, next_obs, step=24)
    for key in ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac", "explained_variance", "lr"):
        assert key in metrics and metrics[key].dim() == 0 and torch.isfinite(metrics[key]), key
    assert changed(before_enc, agent.encoder) and changed(before_actor, agent.actor) and changed(before_critic, agent.critic)
    assert storage.step == 0  # emptied for the next rollout


def test_invalid_transitions_do_not_affect_the_update() -> None:
    """Changing everything about reset steps except the stored value (which is V(final obs),
    the bootstrap of the step before) must not change the update."""
    torch.manual_seed(0)
    agent = make_agent(DISCRETE)
    storage, next_obs = fill(agent)
    invalid = storage.valid == 0
    assert invalid.any() and (storage.valid == 1).any()
    other_agent, other = copy.deepcopy(agent), copy.deepcopy(storage)
    other.obs[:-1][invalid] = 123.0
    other.actions[invalid] = 2
    other.logprobs[invalid] = -50.0
    other.rewards[invalid] = 1e3
    torch.manual_seed(1)
    m1 = agent.update(storage, next_obs, step=24)
    torch.manual_seed(1)
    m2 = other_agent.update(other, next_obs, step=24)
    for a, b in zip(agent.parameters(), other_agent.parameters()):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(m1["policy_loss"], m2["policy_loss"])


def test_lr_annealing() -> None:
    agent = make_agent(DISCRETE, anneal_lr=True, anneal_steps=1000, lr=1e-3)
    storage, next_obs = fill(agent, num_envs=2)  # 16 transitions
    metrics = agent.update(storage, next_obs, step=16)
    assert float(metrics["lr"]) == pytest.approx(1e-3)
    storage, next_obs = fill(agent, num_envs=2)
    metrics = agent.update(storage, next_obs, step=516)
    assert float(metrics["lr"]) == pytest.approx(0.5e-3)


def test_detach_rl_leaves_encoder_untouched() -> None:
    torch.manual_seed(0)
    agent = make_agent(BOX, detach_rl=True)
    storage, next_obs = fill(agent)
    before_enc, before_actor = params_of(agent.encoder), params_of(agent.actor)
    agent.update(storage, next_obs, step=24)
    assert not changed(before_enc, agent.encoder)
    assert changed(before_actor, agent.actor)


# ---------------------------------------------------------------------------- aux objectives
@dataclass
class DummyConfig(ObjectiveConfig):
    horizon: int = 3


class DummyRewardObjective(AuxObjective):
    """Test objective: predict each window step's reward from the encoded observation (masked)."""

    name = "ppo_test_dummy"
    config_class = DummyConfig
    paper_detach_rl = True

    def __init__(self, cfg, feature_dim, obs_space, action_space) -> None:
        super().__init__(cfg, feature_dim, obs_space, action_space)
        self.head = nn.Linear(feature_dim, 1)
        self.seen: list[WindowBatch] = []
        self.target_refreshes = 0

    def update_targets(self, encoder) -> None:
        self.target_refreshes += 1

    @property
    def horizon(self) -> int:
        return self.cfg.horizon

    def loss(self, batch, encoder):
        self.seen.append(batch)
        B, L = batch.reward.shape
        z = encoder(batch.obs[:, :L].reshape(B * L, *batch.obs.shape[2:]))
        if not self.cfg.encoder_grad:
            z = z.detach()
        pred = self.head(z).reshape(B, L)
        loss = (((pred - batch.reward) ** 2) * batch.mask).sum() / batch.mask.sum()
        return loss, {"mask_mean": batch.mask.mean()}


@pytest.fixture(autouse=True, scope="module")
def _dummy_objective_registered():
    """Register the test objective for this module only, so it never leaks into other tests' choices."""
    register_objective(DummyRewardObjective)
    yield
    OBJECTIVES.pop(DummyRewardObjective.name, None)


@pytest.mark.parametrize("mode", ["separate", "joint"])
def test_aux_objective_trains_encoder_when_ppo_is_detached(mode) -> None:
    torch.manual_seed(0)
    aux = {"ppo_test_dummy": {"horizon": 3}}
    agent = make_agent(DISCRETE, aux=aux, **{"aux.optimizer": mode, "aux.batch_size": 16})
    assert agent.detach_rl  # the objective's recipe (paper_detach_rl=True)
    objective = agent.aux.objectives["ppo_test_dummy"]
    storage, next_obs = fill(agent)
    before_enc, before_head = params_of(agent.encoder), params_of(objective.head)
    metrics = agent.update(storage, next_obs, step=24)
    assert len(objective.seen) == 2 * 2  # one window batch per PPO minibatch step
    assert objective.target_refreshes == 2 * 2  # after each aux step, in either mode
    batch = objective.seen[0]
    assert batch.obs.shape == (16, 4, 4) and batch.mask.shape == (16, 3)
    assert (batch.mask[:, 0] == 1).all()
    assert "aux/ppo_test_dummy/loss" in metrics and torch.isfinite(metrics["aux/ppo_test_dummy/loss"])
    assert changed(before_enc, agent.encoder)  # only the aux loss can have moved it
    assert changed(before_head, objective.head)
    assert set(agent.optimizers()) == ({"ppo", "aux"} if mode == "separate" else {"ppo"})


@pytest.mark.parametrize("mode", ["separate", "joint"])
@pytest.mark.parametrize("per_rollout,expected_steps", [(None, [0, 1, 2, 3, 4, 5]), (2, [2, 5]), (3, [1, 3, 5])])
def test_aux_updates_per_rollout_spreads_aux_steps_over_minibatch_steps(mode, per_rollout, expected_steps) -> None:
    """3 epochs x 2 minibatches = 6 PPO steps; k aux steps land on steps floor((i+1)k/6) > floor(ik/6)."""
    torch.manual_seed(0)
    agent = make_agent(DISCRETE, aux={"ppo_test_dummy": {"horizon": 2}}, update_epochs=3,
                       **{"aux.optimizer": mode, "aux.batch_size": 8, "aux.updates_per_rollout": per_rollout})
    objective = agent.aux.objectives["ppo_test_dummy"]
    calls: list[int] = []
    ppo_steps = iter(range(100))
    original = agent._ppo_loss

    def counting_ppo_loss(*args):
        calls.append(("ppo", next(ppo_steps)))
        return original(*args)

    agent._ppo_loss = counting_ppo_loss
    original_loss = objective.loss
    objective.loss = lambda batch, encoder: (calls.append(("aux", None)), original_loss(batch, encoder))[1]
    storage, next_obs = fill(agent)
    metrics = agent.update(storage, next_obs, step=24)
    aux_at = [calls[i - 1][1] for i, c in enumerate(calls) if c[0] == "aux"]  # the PPO step each aux step joined
    assert aux_at == expected_steps
    assert torch.isfinite(metrics["aux/ppo_test_dummy/loss"]) and metrics["epochs"] == 3


@pytest.mark.parametrize("value", [0, 7, 2.5])
def test_aux_updates_per_rollout_out_of_range_raises(value) -> None:
    with pytest.raises(ValueError, match=r"aux.updates_per_rollout=.*update_epochs x num_minibatches = 6"):
        make_agent(DISCRETE, update_epochs=3, **{"aux.updates_per_rollout": value})


def test_aux_objective_without_encoder_grad_and_detached_rl_freezes_encoder() -> None:
    torch.manual_seed(0)
    aux = {"ppo_test_dummy": {"horizon": 2, "encoder_grad": False}}
    agent = make_agent(DISCRETE, aux=aux, **{"aux.batch_size": 8})
    storage, next_obs = fill(agent)
    before_enc = params_of(agent.encoder)
    agent.update(storage, next_obs, step=24)
    assert not changed(before_enc, agent.encoder)


# ---------------------------------------------------------------------------- config checks
@pytest.mark.parametrize("key,value", [
    ("gamma", 1.5), ("num_steps", 0), ("lr", -1.0), ("update_epochs", 0), ("clip_coef", 0.0),
    ("target_kl", -0.1), ("aux.optimizer", "sgd"), ("encoder.activation", "swish"), ("num_minibatches", 0),
])
def test_invalid_config_raises(key, value) -> None:
    with pytest.raises(ValueError, match=key.split(".")[-1]):
        make_agent(DISCRETE, **{key: value})


def test_too_many_minibatches_and_bad_spaces_raise() -> None:
    agent = make_agent(DISCRETE, num_steps=4, num_minibatches=9)
    with pytest.raises(ValueError, match="num_minibatches"):
        agent.make_storage(2)
    with pytest.raises(ValueError, match="Discrete or 1-D Box"):
        PPOAgent(ppo_cfg(), DISCRETE[0], gym.spaces.MultiDiscrete([2, 2]), {}, CPU)


# ---------------------------------------------------------------------------- learning
@pytest.mark.learning
def test_ppo_learns_cartpole(tmp_path) -> None:
    from rlaux.train import train

    summary = train(["agent=ppo", "env=CartPole-v1", "steps=100000", "seed=1", "logger=none", "progress=false",
                     "eval_every=0", "checkpoint_every=0", "threads=2"], run_dir=tmp_path / "run")
    assert summary["eval_return"] >= 475, summary
