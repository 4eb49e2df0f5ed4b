"""Off-policy agents (sac, ddpg, dqn): acting, schedules, updates, gradient routing, targets,
config checks, checkpoints; learning tests (marked ``learning``) through ``rlaux.train``."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from agents.ddpg import DDPGAgent
from agents.dqn import DQNAgent
from agents.offpolicy import linear_schedule
from agents.sac import SACAgent
from rlaux.encoders import RandomShift
from rlaux.objectives.base import OBJECTIVES, AuxObjective, IncompatibleObjectiveError, ObjectiveConfig
from rlaux.types import WindowBatch

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "agent"
CPU = torch.device("cpu")
STATE = gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)
PIXELS = gym.spaces.Box(0, 255, (6, 24, 24), np.uint8)  # 2 RGB frames -> DrQ encoder
BOX = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
DISCRETE = gym.spaces.Discrete(3)
AGENTS = {"sac": SACAgent, "ddpg": DDPGAgent, "dqn": DQNAgent}
SMALL = {  # small nets keep these tests fast; the code paths are the defaults'
    "sac": ["hidden=[32,32]", "encoder.latent_dim=8"],
    "ddpg": ["hidden=[32,32]", "encoder.latent_dim=8", "encoder.hidden=[32]"],
    "dqn": ["encoder.hidden=[32]", "encoder.latent_dim=32"],
}


def load_cfg(name: str, *overrides: str) -> Any:
    cfg = OmegaConf.load(CONFIG_DIR / f"{name}.yaml")
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist([*SMALL[name], *overrides]))


def make_agent(name: str, *overrides: str, obs_space: gym.Space = STATE, aux: Any = None) -> Any:
    action_space = DISCRETE if name == "dqn" else BOX
    return AGENTS[name](load_cfg(name, *overrides), obs_space, action_space, aux, CPU)


def make_obs(space: gym.Space, *shape: int) -> torch.Tensor:
    if space.dtype == np.uint8:
        return torch.randint(0, 256, (*shape, *space.shape), dtype=torch.uint8)
    return torch.randn(*shape, *space.shape)


def make_batch(obs_space: gym.Space, discrete: bool, B: int = 16, L: int = 1) -> WindowBatch:
    action = torch.randint(0, DISCRETE.n, (B, L)) if discrete else torch.rand(B, L, *BOX.shape) * 2 - 1
    return WindowBatch(
        obs=make_obs(obs_space, B, L + 1), action=action, reward=torch.randn(B, L), terminated=torch.zeros(B, L),
        mask=torch.ones(B, L), nstep_reward=torch.randn(B), nstep_discount=torch.full((B,), 0.9),
        nstep_next_obs=make_obs(obs_space, B),
    )


def params(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(before: list[torch.Tensor], module: nn.Module) -> bool:
    return any(not torch.equal(b, p) for b, p in zip(before, module.parameters()))


# ---------------------------------------------------------------- a tiny aux objective
class _DummyConfig(ObjectiveConfig):
    pass


class _DummyObjective(AuxObjective):
    """Predicts the next observation's first feature from the current encoding (horizon 2),
    with the mask; the paper-detach flag says RL should not train the encoder."""

    name = "_test_offpolicy_dummy"
    paper_detach_rl = True

    def __init__(self, cfg: ObjectiveConfig, feature_dim: int, obs_space: gym.Space, action_space: gym.Space) -> None:
        super().__init__(cfg, feature_dim, obs_space, action_space)
        self.head = nn.Linear(feature_dim, 1)
        self.target_refreshes = 0

    @property
    def horizon(self) -> int:
        return 2

    def update_targets(self, encoder: nn.Module) -> None:
        self.target_refreshes += 1

    def loss(self, batch: WindowBatch, encoder: nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pred = self.head(encoder(batch.obs[:, 0])).squeeze(-1)
        err = (pred - batch.obs[:, 1].flatten(1)[:, 0].float()).pow(2) * batch.mask[:, 0]
        return err.mean(), {"pred": pred.detach().mean()}


@pytest.fixture
def dummy_objective(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(OBJECTIVES, _DummyObjective.name, _DummyObjective)
    return _DummyObjective.name


# ---------------------------------------------------------------- acting
@pytest.mark.parametrize("name", ["sac", "ddpg"])
@pytest.mark.parametrize("obs_space", [STATE, PIXELS], ids=["state", "pixels"])
def test_continuous_act_shapes_and_ranges(name: str, obs_space: gym.Space) -> None:
    torch.manual_seed(0)
    agent = make_agent(name, obs_space=obs_space)
    obs = make_obs(obs_space, 7)
    train_a = agent.act(obs, step=0, eval_mode=False)
    eval_a = agent.act(obs, step=0, eval_mode=True)
    for a in (train_a, eval_a):
        assert a.shape == (7, 2) and a.dtype == torch.float32
        assert a.abs().max() <= 1.0
    assert torch.equal(eval_a, agent.act(obs, step=0, eval_mode=True))  # deterministic
    assert not torch.equal(train_a, agent.act(obs, step=0, eval_mode=False))  # stochastic


def test_dqn_act_greedy_and_epsilon() -> None:
    torch.manual_seed(0)
    agent = make_agent("dqn", "eps_start=1.0", "eps_end=0.0", "eps_steps=100")
    obs = make_obs(STATE, 500)
    greedy = agent.act(obs, step=0, eval_mode=True)
    assert greedy.shape == (500,) and greedy.dtype == torch.int64
    assert torch.equal(greedy, agent.q_values(obs).argmax(1))
    random = agent.act(obs, step=0, eval_mode=False)  # epsilon 1: uniform
    assert set(random.tolist()) == {0, 1, 2}
    assert (random != greedy).float().mean() > 0.5
    assert torch.equal(agent.act(obs, step=100, eval_mode=False), greedy)  # epsilon 0


def test_schedules() -> None:
    assert linear_schedule(1.0, 0.1, 100, 0) == 1.0
    assert linear_schedule(1.0, 0.1, 100, 50) == pytest.approx(0.55)
    assert linear_schedule(1.0, 0.1, 100, 100) == pytest.approx(0.1)
    assert linear_schedule(1.0, 0.1, 100, 10**6) == pytest.approx(0.1)
    ddpg = make_agent("ddpg")
    assert ddpg.stddev(0) == 1.0 and ddpg.stddev(12500) == pytest.approx(0.55) and ddpg.stddev(25000) == pytest.approx(0.1)
    dqn = make_agent("dqn", "eps_start=1.0", "eps_end=0.05", "eps_steps=1000")
    assert dqn.epsilon(0) == 1.0 and dqn.epsilon(500) == pytest.approx(0.525) and dqn.epsilon(5000) == pytest.approx(0.05)


def test_ddpg_exploration_noise_follows_schedule() -> None:
    torch.manual_seed(0)
    agent = make_agent("ddpg", "std_init=0.5", "std_final=0.02", "std_steps=1000")
    obs = make_obs(STATE, 4000)
    mu = agent.act(obs, 0, eval_mode=True)
    inside = mu.abs() < 0.3  # away from the [-1, 1] clamp
    early = (agent.act(obs, 0) - mu)[inside]
    late = (agent.act(obs, 5000) - mu)[inside]
    assert 0.35 < early.std() < 0.6
    assert late.std() == pytest.approx(0.02, rel=0.1)


@pytest.mark.parametrize("layernorm_tanh", [True, False])
def test_ddpg_layernorm_tanh_switches_the_first_layer_of_actor_and_critics(layernorm_tanh: bool) -> None:
    torch.manual_seed(0)
    agent = make_agent("ddpg", f"layernorm_tanh={str(layernorm_tanh).lower()}", "activation=relu")
    norms = [m for net in (agent.actor, agent.critic) for m in net.modules()
             if isinstance(m, nn.LayerNorm) or type(m).__name__ == "EnsembleLayerNorm"]
    tanhs = [m for m in agent.actor.net if isinstance(m, nn.Tanh)]
    assert len(norms) == (2 if layernorm_tanh else 0)  # actor's first layer, the critic ensemble's first layer
    assert len(tanhs) == (1 if layernorm_tanh else 0)
    assert all(isinstance(m, nn.ReLU) for m in agent.actor.net if not isinstance(m, (nn.Linear, nn.LayerNorm, nn.Tanh)))
    before = [p.detach().clone() for p in agent.actor.parameters()]
    metrics = agent.update(make_batch(STATE, False), 0)
    assert torch.isfinite(metrics["critic_loss"]) and torch.isfinite(metrics["actor_loss"])
    assert any(not torch.equal(b, p) for b, p in zip(before, agent.actor.parameters()))


# ---------------------------------------------------------------- updates
@pytest.mark.parametrize("name", ["sac", "ddpg", "dqn"])
@pytest.mark.parametrize("obs_space", [STATE, PIXELS], ids=["state", "pixels"])
def test_update_returns_finite_scalar_metrics(name: str, obs_space: gym.Space) -> None:
    torch.manual_seed(0)
    agent = make_agent(name, "nstep=3", obs_space=obs_space)
    assert (agent.augment is not None) == (obs_space is PIXELS and name != "dqn")
    batch = make_batch(obs_space, name == "dqn", L=3)
    for step in range(3):
        metrics = agent.update(batch, step)
    assert metrics
    for key, value in metrics.items():
        assert isinstance(value, torch.Tensor) and value.dim() == 0, key
        assert torch.isfinite(value), key


@pytest.mark.parametrize("name", ["sac", "ddpg", "dqn"])
def test_flat_encoder_feeds_the_raw_state_to_the_networks(name: str) -> None:
    """encoder.kind=flat (SB3's FlattenExtractor): no encoder parameters, the first layer of
    every network reads the 5-d state itself, and updates train the heads."""
    torch.manual_seed(0)
    agent = make_agent(name, "encoder.kind=flat")
    assert list(agent.encoder.parameters()) == []
    obs = make_obs(STATE, 4)
    assert torch.equal(agent.encoder(obs), obs)
    if name == "dqn":
        first = next(m for m in agent.head.modules() if isinstance(m, nn.Linear))
        assert first.in_features == STATE.shape[0]
    else:
        assert agent.critic.q.net.layers[0].weight.shape[1] == STATE.shape[0] + BOX.shape[0]
        first = next(m for m in agent.actor.modules() if isinstance(m, nn.Linear))
        assert first.in_features == STATE.shape[0]
    heads = agent.head if name == "dqn" else agent.critic
    before = params(heads)
    metrics = agent.update(make_batch(STATE, name == "dqn"), 0)
    assert changed(before, heads)
    assert all(torch.isfinite(v) for v in metrics.values())


@pytest.mark.parametrize("name", ["sac", "ddpg", "dqn"])
def test_flat_encoder_refuses_aux_objectives(name: str, dummy_objective: str) -> None:
    with pytest.raises(IncompatibleObjectiveError, match=r"encoder.kind=flat.*encoder.kind=mlp"):
        make_agent(name, "encoder.kind=flat", aux={dummy_objective: {}})


@pytest.mark.parametrize("name", ["sac", "ddpg", "dqn"])
@pytest.mark.parametrize("detach", [True, False])
def test_rl_gradient_reaches_encoder_only_when_attached(name: str, detach: bool) -> None:
    torch.manual_seed(0)
    agent = make_agent(name, f"detach_rl={str(detach).lower()}")
    heads = agent.head if name == "dqn" else agent.critic
    enc_before, head_before = params(agent.encoder), params(heads)
    agent.update(make_batch(STATE, name == "dqn"), 0)
    assert changed(head_before, heads)
    assert changed(enc_before, agent.encoder) is not detach
    if name != "dqn":
        assert not any(p is q for p in agent.encoder.parameters() for q in agent.optimizers()["actor"].param_groups[0]["params"])


@pytest.mark.parametrize("name", ["sac", "ddpg"])
def test_actor_step_leaves_critic_alone(name: str) -> None:
    torch.manual_seed(0)
    agent = make_agent(name)
    actor_before = params(agent.actor)
    agent.update(make_batch(STATE, False), 0)
    assert changed(actor_before, agent.actor)
    for p in agent.critic.parameters():  # the frozen critic in the actor loss left no gradient
        assert p.grad is None or torch.isfinite(p.grad).all()
    crit_ids = {id(p) for p in agent.critic.parameters()}
    assert not crit_ids & {id(p) for g in agent.actor_opt.param_groups for p in g["params"]}


@pytest.mark.parametrize("name", ["sac", "ddpg"])
def test_target_critic_moves_by_ema(name: str) -> None:
    torch.manual_seed(0)
    agent = make_agent(name, "tau=0.1")
    target_before = params(agent.critic_target)
    assert all(torch.equal(t, p) for t, p in zip(target_before, agent.critic.parameters()))
    agent.update(make_batch(STATE, False), 0)
    assert changed(target_before, agent.critic)
    for old, new, online in zip(target_before, agent.critic_target.parameters(), agent.critic.parameters()):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * online)
    assert not any(p.requires_grad for p in agent.critic_target.parameters())


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_dqn_target_sync_every_n_updates(tau: float) -> None:
    torch.manual_seed(0)
    agent = make_agent("dqn", "target_update_every=3", f"tau={tau}")
    target = lambda: [*agent.target_encoder.parameters(), *agent.target_head.parameters()]
    online = lambda: [*agent.encoder.parameters(), *agent.head.parameters()]
    start = [p.clone() for p in target()]
    batch = make_batch(STATE, True)
    for _ in range(2):
        agent.update(batch, 0)
    assert all(torch.equal(a, b) for a, b in zip(start, target()))
    agent.update(batch, 0)
    assert agent.num_updates == 3
    for old, new, cur in zip(start, target(), online()):
        torch.testing.assert_close(new, (1 - tau) * old + tau * cur)


class _Table(nn.Module):
    """Q-values looked up by the integer state in obs[:, 0]."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.table[obs[:, 0].long()]


@pytest.mark.parametrize("double_q, expected", [(True, 1.0 + 0.9 * 3.0), (False, 1.0 + 0.9 * 10.0)])
def test_dqn_double_q_target_by_hand(double_q: bool, expected: float) -> None:
    agent = make_agent("dqn", f"double_q={str(double_q).lower()}")
    online = torch.tensor([[1.0, 5.0, 2.0], [0.0, 0.0, 4.0]])  # argmax: 1, 2
    target = torch.tensor([[10.0, 3.0, 7.0], [1.0, 2.0, -6.0]])
    object.__setattr__(agent, "q_values", _Table(online))  # shadows the method (not a submodule)
    agent.target_encoder, agent.target_head = nn.Identity(), _Table(target)
    batch = make_batch(STATE, True, B=3)
    batch.nstep_next_obs = torch.zeros(3, 5)
    batch.nstep_next_obs[2, 0] = 1.0
    batch.nstep_reward = torch.tensor([1.0, 1.0, 2.0])
    batch.nstep_discount = torch.tensor([0.9, 0.0, 0.5])  # row 1 terminated: no bootstrap
    y = agent.td_target(batch, batch.nstep_next_obs)
    row2 = 2.0 + 0.5 * (-6.0 if double_q else 2.0)
    torch.testing.assert_close(y, torch.tensor([expected, 1.0, row2]))


@pytest.mark.parametrize("name", ["sac", "ddpg"])
def test_terminal_transitions_do_not_bootstrap(name: str) -> None:
    torch.manual_seed(0)
    agent = make_agent(name, "tau=1.0")
    batch = make_batch(STATE, False)
    batch.nstep_discount = torch.zeros(16)
    torch.manual_seed(1)
    metrics = agent.update(batch, 0)
    torch.testing.assert_close(metrics["target_q"], batch.nstep_reward.mean())


# ---------------------------------------------------------------- aux suite
@pytest.mark.parametrize("name", ["sac", "ddpg", "dqn"])
def test_separate_aux_trains_encoder_when_rl_detached(name: str, dummy_objective: str) -> None:
    torch.manual_seed(0)
    agent = make_agent(name, aux={dummy_objective: {}})
    assert agent.aux.horizon == 2 and agent.detach_rl  # the objective's recipe
    assert "aux" in agent.optimizers()
    rl_opt = agent.optimizers()["q" if name == "dqn" else "critic"]
    enc_ids = {id(p) for p in agent.encoder.parameters()}
    assert not enc_ids & {id(p) for g in rl_opt.param_groups for p in g["params"]}
    enc_before = params(agent.encoder)
    metrics = agent.update(make_batch(STATE, name == "dqn", L=2), 0)
    assert f"aux/{dummy_objective}/loss" in metrics
    assert changed(enc_before, agent.encoder)
    assert agent.aux.objectives[dummy_objective].target_refreshes == 1


@pytest.mark.parametrize("name", ["sac", "ddpg", "dqn"])
def test_joint_aux_loss_is_added_to_the_rl_loss(name: str, dummy_objective: str) -> None:
    torch.manual_seed(0)
    agent = make_agent(name, "aux.optimizer=joint", aux={dummy_objective: {}})
    assert "aux" not in agent.optimizers()
    head_before, enc_before = params(agent.aux), params(agent.encoder)
    metrics = agent.update(make_batch(STATE, name == "dqn", L=2), 0)
    assert "aux/loss" in metrics and torch.isfinite(metrics["aux/loss"])
    assert changed(head_before, agent.aux) and changed(enc_before, agent.encoder)
    assert agent.aux.objectives[dummy_objective].target_refreshes == 1  # after the critic (Q) step


def test_empty_aux_suite() -> None:
    for aux in (None, {}):
        agent = make_agent("sac", aux=aux)
        assert not agent.aux and agent.aux.horizon == 1 and not agent.detach_rl
        assert set(agent.optimizers()) == {"critic", "actor"}


# ---------------------------------------------------------------- config checks
@pytest.mark.parametrize("name, key, value", [
    ("sac", "lr", -1.0), ("sac", "batch_size", 0), ("sac", "tau", 0.0), ("sac", "alpha_init", 0.0),
    ("sac", "encoder.activation", "swish"), ("ddpg", "gamma", 0.0), ("ddpg", "gamma", 1.5),
    ("ddpg", "tau", 1.5), ("ddpg", "std_clip", 0.0), ("ddpg", "aux.optimizer", "both"), ("ddpg", "update_every", 0),
    ("dqn", "nstep", 0), ("dqn", "loss", "l1"), ("dqn", "eps_end", 2.0), ("dqn", "target_update_every", 0),
    ("dqn", "learning_starts", -1), ("dqn", "augment", "sometimes"),
])
def test_invalid_config_values_raise(name: str, key: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"agent.{key}="):
        make_agent(name, f"{key}={value}")


def test_augment_true_needs_pixels() -> None:
    with pytest.raises(ValueError, match="agent.augment=true"):
        make_agent("ddpg", "augment=true")
    assert isinstance(make_agent("dqn", "augment=true", obs_space=PIXELS).augment, RandomShift)


@pytest.mark.parametrize("name, space", [("sac", DISCRETE), ("ddpg", DISCRETE), ("dqn", BOX)])
def test_wrong_action_space_raises(name: str, space: gym.Space) -> None:
    with pytest.raises(ValueError, match=f"agent={name} needs"):
        AGENTS[name](load_cfg(name), STATE, space, None, CPU)


# ---------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("name", ["sac", "ddpg", "dqn"])
def test_state_dict_resume_is_exact(name: str) -> None:
    torch.manual_seed(0)
    agent = make_agent(name, "target_update_every=2") if name == "dqn" else make_agent(name)
    batch = make_batch(STATE, name == "dqn")
    for _ in range(3):
        agent.update(batch, 0)
    state = copy.deepcopy(agent.state_dict())
    opt_state = {k: copy.deepcopy(o.state_dict()) for k, o in agent.optimizers().items()}
    other = make_agent(name, "target_update_every=2") if name == "dqn" else make_agent(name)
    other.load_state_dict(state)
    for k, o in other.optimizers().items():
        o.load_state_dict(opt_state[k])
    if name == "dqn":
        assert other.num_updates == 3
    torch.manual_seed(5)
    agent.update(batch, 10)
    torch.manual_seed(5)
    other.update(batch, 10)
    for (k, a), b in zip(agent.state_dict().items(), other.state_dict().values()):
        if isinstance(a, torch.Tensor):
            torch.testing.assert_close(a, b, msg=k)
    if name == "sac":
        assert "log_alpha" in state


# ---------------------------------------------------------------- learning (minutes)
def _train(tmp_path: Path, overrides: list[str]) -> dict[str, Any]:
    from rlaux.train import train

    return train([*overrides, "logger=none", "progress=false", "eval_every=0", "eval_episodes=10"],
                 run_dir=tmp_path / "run")


@pytest.mark.learning
def test_sac_learns_pendulum(tmp_path: Path) -> None:
    # ~25 s on 2 CPU cores; SAC with these settings is near -200 after ~5k steps.
    summary = _train(tmp_path, ["agent=sac", "env=Pendulum-v1", "steps=6000", "seed=1",
                                "agent.learning_starts=1000", "agent.lr=1e-3", "agent.alpha_lr=1e-3",
                                "agent.batch_size=128", "agent.hidden=[128,128]"])
    assert summary["eval_return"] > -400, summary


@pytest.mark.learning
def test_dqn_learns_cartpole(tmp_path: Path) -> None:
    summary = _train(tmp_path, DQN_CARTPOLE)
    assert summary["eval_return"] >= 150, summary


DQN_CARTPOLE = ["agent=dqn", "env=CartPole-v1", "steps=50000", "seed=1"]
