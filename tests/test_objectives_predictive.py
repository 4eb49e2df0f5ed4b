"""Predictive objective: next / k-step / bootstrapped latent prediction on a linear system,
episode-end masking, repulsion and the optional heads."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlaux.encoders import MLPEncoder
from rlaux.objectives.predictive import PredictiveConfig, PredictiveObjective
from rlaux.types import WindowBatch

N_X, N_A = 4, 2
OBS = gym.spaces.Box(-np.inf, np.inf, (N_X,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (N_A,), np.float32)


def linear_system(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x_{t+1} = A x_t + B a_t with A a damped rotation pair; reward = c . x_t."""
    g = torch.Generator().manual_seed(seed)
    rot = lambda th: torch.tensor([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]], dtype=torch.float32)
    A = torch.block_diag(0.95 * rot(0.5), 0.9 * rot(1.1))
    return A, torch.randn(N_X, N_A, generator=g) * 0.5, torch.randn(N_X, generator=g)


def linear_windows(B: int, L: int, gen: torch.Generator, system=None) -> WindowBatch:
    A, Bm, c = system or linear_system()
    x = torch.randn(B, N_X, generator=gen)
    a = torch.rand(B, L, N_A, generator=gen) * 2 - 1
    xs, rs = [x], []
    for k in range(L):
        rs.append(xs[-1] @ c)
        xs.append(xs[-1] @ A.T + a[:, k] @ Bm.T)
    obs = torch.stack(xs, 1)
    z = torch.zeros(B, L)
    return WindowBatch(obs, a, torch.stack(rs, 1), z, torch.ones(B, L), z[:, 0], z[:, 0] + 1, obs[:, -1])


def make(action_space=ACT, **options) -> tuple[PredictiveObjective, MLPEncoder]:
    torch.manual_seed(0)
    enc = MLPEncoder(N_X, 16, (64, 64))
    obj = PredictiveObjective(PredictiveConfig(**{"hidden": [64], **options}), enc.out_dim, OBS, action_space)
    obj.bind_encoder(enc)
    return obj, enc


def train(obj, enc, steps: int, L: int) -> None:
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam([*obj.parameters(), *enc.parameters()], lr=1e-3)
    for _ in range(steps):
        loss, _ = obj.loss(linear_windows(256, L, gen), enc)
        opt.zero_grad()
        loss.backward()
        opt.step()
        obj.update_targets(enc)


@torch.no_grad()
def kstep_errors(obj: PredictiveObjective, enc, K: int) -> tuple[float, float]:
    """(model, no-model baseline) MSE to the prediction targets over k = 1..K, normalised by
    the targets' variance; the baseline predicts z_t for every future step."""
    batch = linear_windows(1024, K, torch.Generator().manual_seed(99))
    _, targets = obj.latents(batch, enc, K)
    z0 = obj.proj(enc(batch.obs[:, 0]))
    z, preds = z0, []
    for k in range(K):
        z = obj.transition(z, batch.action[:, k])
        preds.append(z)
    scale = targets.var(0).sum(-1).mean()
    model = ((torch.stack(preds, 1) - targets) ** 2).sum(-1).mean() / scale
    base = ((z0[:, None] - targets) ** 2).sum(-1).mean() / scale
    return float(model), float(base)


def test_next_mode_with_repulsion_learns_one_step_dynamics() -> None:
    obj, enc = make()  # the paper's recipe: online targets with gradient + repulsion, MSE
    assert obj.horizon == 1
    train(obj, enc, 500, 1)
    model, base = kstep_errors(obj, enc, 1)
    assert model < 0.1 * base, f"model {model:.4f} vs no-model {base:.4f}"


def test_kstep_mode_with_ema_target_learns_multistep_dynamics() -> None:
    obj, enc = make(mode="kstep", horizon=3, collapse="target", distance="cosine", pred_weight=1.0)
    assert obj.horizon == 3 and obj.target.encoder is not None
    train(obj, enc, 400, 3)
    model, base = kstep_errors(obj, enc, 3)
    assert base > 0.1, "representation collapsed"
    assert model < 0.2 * base, f"model {model:.4f} vs no-model {base:.4f}"


def test_bootstrapped_target_matches_the_formula_and_stops_at_episode_ends() -> None:
    obj, enc = make(mode="bootstrapped", collapse="none", gamma_pred=0.5)
    assert obj.horizon == 2
    batch = linear_windows(16, 2, torch.Generator().manual_seed(2))
    batch.mask[:5, 1] = 0  # those episodes end at step 0
    with torch.no_grad():
        z = enc(batch.obs.reshape(-1, N_X)).reshape(16, 3, -1)
        boot = obj.transition(z[:, 1], batch.action[:, 1]) * batch.mask[:, 1:2]
        expected = obj.cfg.pred_weight * ((obj.transition(z[:, 0], batch.action[:, 0]) - z[:, 1] - 0.5 * boot) ** 2).mean()
        loss, _ = obj.loss(batch, enc)
    assert torch.allclose(loss, expected, rtol=1e-5)
    # Garbage in the masked second transition changes nothing.
    batch.obs[:5, 2] = 1e3
    batch.action[:5, 1] = -5.0
    assert torch.allclose(obj.loss(batch, enc)[0], loss, rtol=1e-6)
    batch.mask[:5, 1] = 1
    assert not torch.allclose(obj.loss(batch, enc)[0], loss, rtol=1e-3)


def test_masked_steps_cannot_change_kstep_loss_with_all_heads() -> None:
    obj, enc = make(mode="kstep", horizon=4, reward_weight=1.0, inverse_weight=1.0)
    batch = linear_windows(16, 4, torch.Generator().manual_seed(3))
    batch.mask[:6, 2:] = 0
    loss, metrics = obj.loss(batch, enc)
    assert {"pred_loss", "neg_random", "neg_neighbour", "reward_loss", "inverse_loss"} <= set(metrics)
    batch.obs[:6, 3:] = 77.0
    batch.action[:6, 2:] = 3.0
    batch.reward[:6, 2:] = -1e3
    assert torch.allclose(obj.loss(batch, enc)[0], loss, rtol=1e-6)
    batch.mask[:6, 2:] = 1
    assert not torch.allclose(obj.loss(batch, enc)[0], loss, rtol=1e-3)


def test_repulsion_terms_are_the_papers_formula() -> None:
    obj, enc = make(collapse="repulsion")
    batch = linear_windows(8, 1, torch.Generator().manual_seed(4))
    _, m = obj.loss(batch, enc)
    with torch.no_grad():
        z = enc(batch.obs.reshape(-1, N_X)).reshape(8, 2, -1)
        neg_r = torch.exp(-5 * (z[:, 0] - z[:, 0].roll(1, 0)).norm(dim=-1)).mean()
        neg_n = torch.exp(-5 * (z[:, 0] - z[:, 1]).norm(dim=-1)).mean()
    assert torch.allclose(m["neg_random"], neg_r) and torch.allclose(m["neg_neighbour"], neg_n)
    obj_none, _ = make(collapse="none")
    assert "neg_random" not in obj_none.loss(batch, enc)[1]


def test_inverse_head_with_discrete_actions_uses_cross_entropy() -> None:
    obj, enc = make(action_space=gym.spaces.Discrete(3), inverse_weight=1.0)
    batch = linear_windows(32, 1, torch.Generator().manual_seed(5))
    batch.action = torch.randint(0, 3, (32, 1))
    _, m = obj.loss(batch, enc)
    assert abs(float(m["inverse_loss"]) - np.log(3)) < 0.5  # untrained CE is near log|A|


def test_config_errors_list_choices() -> None:
    with pytest.raises(ValueError, match="next, kstep, bootstrapped"):
        PredictiveConfig(mode="spr")
    with pytest.raises(ValueError, match="mse, cosine"):
        PredictiveConfig(distance="l1")
    with pytest.raises(ValueError, match="repulsion, target, none"):
        PredictiveConfig(collapse="byol")
