"""TCRL objective: learns a linear system's latent dynamics, masks episode ends, EMA target."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rlaux.encoders import MLPEncoder
from rlaux.objectives.tcrl import TCRLConfig, TCRLObjective
from rlaux.types import WindowBatch

N_X, N_A = 4, 2
OBS = gym.spaces.Box(-np.inf, np.inf, (N_X,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (N_A,), np.float32)


def linear_system(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x_{t+1} = A x_t + B a_t with A a damped rotation pair; reward = c . x_t."""
    g = torch.Generator().manual_seed(seed)
    th1, th2 = 0.5, 1.1
    rot = lambda th: torch.tensor([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]], dtype=torch.float32)
    A = torch.block_diag(0.95 * rot(th1), 0.9 * rot(th2))
    Bm = torch.randn(N_X, N_A, generator=g) * 0.5
    c = torch.randn(N_X, generator=g)
    return A, Bm, c


def linear_windows(B: int, L: int, system, gen: torch.Generator) -> WindowBatch:
    A, Bm, c = system
    x = torch.randn(B, N_X, generator=gen)
    a = torch.rand(B, L, N_A, generator=gen) * 2 - 1
    xs, rs = [x], []
    for k in range(L):
        rs.append(xs[-1] @ c)
        xs.append(xs[-1] @ A.T + a[:, k] @ Bm.T)
    obs = torch.stack(xs, 1)
    z = torch.zeros(B, L)
    return WindowBatch(obs, a, torch.stack(rs, 1), z, torch.ones(B, L), z[:, 0], z[:, 0] + 1, obs[:, -1])


def make(**options) -> tuple[TCRLObjective, MLPEncoder]:
    torch.manual_seed(0)
    enc = MLPEncoder(N_X, 16, (64, 64))
    cfg = TCRLConfig(**{"hidden": [64, 64], "horizon": 3, **options})
    obj = TCRLObjective(cfg, enc.out_dim, OBS, ACT)
    obj.bind_encoder(enc)
    return obj, enc


def rollout_errors(obj: TCRLObjective, enc, batch: WindowBatch) -> tuple[float, float]:
    """(model, no-model baseline) mean cosine distance 2 - 2cos to the target latents over
    k = 1..H; the baseline predicts z_t for every future step."""
    H = obj.horizon
    with torch.no_grad():
        z0 = obj.proj(enc(batch.obs[:, 0]))
        targets = obj.target(batch.obs[:, 1 : H + 1], enc)
        z, preds = z0, []
        for k in range(H):
            z = obj.dynamics(torch.cat([z, batch.action[:, k]], -1))
            preds.append(z)
        pred = torch.stack(preds, 1)
        model = (2 - 2 * F.cosine_similarity(pred, targets, dim=-1)).mean()
        base = (2 - 2 * F.cosine_similarity(z0[:, None].expand_as(targets), targets, dim=-1)).mean()
    return float(model), float(base)


def test_tcrl_learns_linear_dynamics_far_better_than_no_model() -> None:
    obj, enc = make()
    system, gen = linear_system(), torch.Generator().manual_seed(1)
    opt = torch.optim.Adam([*obj.parameters(), *enc.parameters()], lr=1e-3)
    for _ in range(400):
        loss, metrics = obj.loss(linear_windows(256, 3, system, gen), enc)
        opt.zero_grad()
        loss.backward()
        opt.step()
        obj.update_targets(enc)
    test = linear_windows(1024, 3, system, torch.Generator().manual_seed(99))
    model, base = rollout_errors(obj, enc, test)
    assert base > 0.05, f"representation collapsed (no-model error {base:.4f})"
    assert model < 0.2 * base, f"model {model:.4f} vs no-model {base:.4f}"
    assert float(metrics["reward_loss"]) < 0.5  # reward variance is ~ |c|^2 * var(x) >> 0.5


def test_reads_only_first_horizon_steps_of_longer_windows() -> None:
    obj, enc = make()
    longer = linear_windows(8, 6, linear_system(), torch.Generator().manual_seed(2))
    batch = WindowBatch(longer.obs[:, :4], longer.action[:, :3], longer.reward[:, :3], longer.terminated[:, :3],
                        longer.mask[:, :3], longer.nstep_reward, longer.nstep_discount, longer.nstep_next_obs)
    base = obj.loss(batch, enc)[0]
    longer.obs[:, 4:] = 1e3
    longer.action[:, 3:] = 0.7
    longer.reward[:, 3:] = 1e3
    assert torch.allclose(obj.loss(longer, enc)[0], base)


def test_masked_steps_cannot_change_the_loss() -> None:
    obj, enc = make(horizon=5)
    batch = linear_windows(16, 5, linear_system(), torch.Generator().manual_seed(3))
    batch.mask[:4, 2:] = 0  # episode ends at step 1 (obs[:, 2] is its final observation)
    base, _ = obj.loss(batch, enc)
    garbage = WindowBatch(**vars(batch))
    garbage.obs = batch.obs.clone()
    garbage.obs[:4, 3:] = torch.randn(4, 3, N_X) * 50
    garbage.action = batch.action.clone()
    garbage.action[:4, 2:] = 9.0
    garbage.reward = batch.reward.clone()
    garbage.reward[:4, 2:] = -1e4
    assert torch.allclose(obj.loss(garbage, enc)[0], base, rtol=1e-6, atol=1e-7)
    # The same edits at unmasked steps do change it (the check above can fail).
    garbage.mask = torch.ones_like(batch.mask)
    assert not torch.allclose(obj.loss(garbage, enc)[0], base)


def test_loss_is_one_over_h_of_the_weighted_terms() -> None:
    obj, enc = make(horizon=4)
    batch = linear_windows(32, 4, linear_system(), torch.Generator().manual_seed(4))
    loss, m = obj.loss(batch, enc)
    assert torch.allclose(loss, (m["state_loss"] + m["reward_loss"]) / 4)
    obj.cfg.reward_coef = 0.0
    assert torch.allclose(obj.loss(batch, enc)[0], m["state_loss"] / 4)


def test_ema_target_moves_toward_online_and_gets_no_grad() -> None:
    obj, enc = make(target_init="random")
    online = torch.cat([p.flatten() for p in enc.parameters()])
    target0 = torch.cat([p.flatten() for p in obj.target.encoder.parameters()])
    assert not torch.allclose(online, target0)  # random init, not a copy
    loss, _ = obj.loss(linear_windows(32, 3, linear_system(), torch.Generator().manual_seed(5)), enc)
    loss.backward()
    assert all(p.grad is None for p in obj.target.encoder.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
    obj.update_targets(enc)
    target1 = torch.cat([p.flatten() for p in obj.target.encoder.parameters()])
    assert torch.allclose(target1, target0 + 0.005 * (online - target0), atol=1e-6)
    assert (target1 - online).norm() < (target0 - online).norm()


@pytest.mark.parametrize("target", ["stopgrad", "online"])
def test_other_targets_have_no_copy(target) -> None:
    obj, enc = make(target=target)
    assert obj.target.encoder is None and not list(obj.target.parameters())
    loss, _ = obj.loss(linear_windows(8, 3, linear_system(), torch.Generator().manual_seed(6)), enc)
    assert torch.isfinite(loss)


def test_discrete_actions_and_config_errors() -> None:
    torch.manual_seed(0)
    enc = MLPEncoder(N_X, 8, (16,))
    obj = TCRLObjective(TCRLConfig(hidden=[16], horizon=2), enc.out_dim, OBS, gym.spaces.Discrete(3))
    obj.bind_encoder(enc)
    batch = linear_windows(8, 2, linear_system(), torch.Generator().manual_seed(7))
    batch.action = torch.randint(0, 3, (8, 2))
    assert torch.isfinite(obj.loss(batch, enc)[0])
    with pytest.raises(ValueError, match="ema, stopgrad, online"):
        TCRLConfig(target="bogus")
    with pytest.raises(ValueError, match="copy, random"):
        TCRLConfig(target_init="zeros")
