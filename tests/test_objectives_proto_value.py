"""Proto-value objective: TD heads reach the analytic successor values of a tabular MDP,
QR thresholds calibrate the firing rate, hash indicators, the TD formula and its options."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from rlaux.encoders import MLPEncoder
from rlaux.objectives.indicators import HashIndicator, RNDIndicator
from rlaux.objectives.proto_value import ProtoValueConfig, ProtoValueObjective
from rlaux.types import WindowBatch

S, A, N = 6, 2, 3  # states, actions, indicator tasks
GAMMA = 0.9
OBS = gym.spaces.Box(0.0, 1.0, (S,), np.float32)


class OneHotIdentity(nn.Module):
    """Tabular "encoder": the one-hot observation itself (no parameters)."""

    out_dim = S

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float()


class GivenIndicator(nn.Module):
    """Test hook: fixed indicator table r[s, i] on one-hot observations, no thresholds."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return obs.float() @ self.table, torch.zeros(())


def tabular_mdp(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    P = torch.rand(A, S, S, generator=g) ** 3  # peaky random transitions
    P = P / P.sum(-1, keepdim=True)
    r = (torch.rand(S, N, generator=g) < 0.35).float()
    r[0, :] = 1.0  # every task fires somewhere
    return P, r


def sample_transitions(P: torch.Tensor, B: int, gen: torch.Generator, discrete: bool = True) -> WindowBatch:
    s = torch.randint(0, S, (B,), generator=gen)
    a = torch.randint(0, A, (B,), generator=gen)
    s2 = torch.multinomial(P[a, s], 1, generator=gen).squeeze(1)
    eye = torch.eye(S)
    obs = torch.stack([eye[s], eye[s2]], 1)
    action = a[:, None] if discrete else (a[:, None, None].float() * 2 - 1)  # Box: [-1, 1] codes
    z = torch.zeros(B, 1)
    return WindowBatch(obs, action, z, z.clone(), torch.ones(B, 1), z[:, 0], z[:, 0], obs[:, 1])


def make_tabular(action_space: gym.Space, table: torch.Tensor) -> tuple[ProtoValueObjective, nn.Module]:
    torch.manual_seed(0)
    enc = OneHotIdentity()
    obj = ProtoValueObjective(ProtoValueConfig(num_tasks=N, gamma=GAMMA, tau=0.1), S, OBS, action_space)
    obj.bind_encoder(enc)
    obj.indicator = GivenIndicator(table)
    return obj, enc


def train(obj: ProtoValueObjective, enc: nn.Module, P: torch.Tensor, discrete: bool) -> None:
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(obj.parameters(), lr=3e-2)
    for i in range(2000):
        if i == 1200:
            opt.param_groups[0]["lr"] = 1e-3
        loss, _ = obj.loss(sample_transitions(P, 256, gen, discrete), enc)
        opt.zero_grad()
        loss.backward()
        opt.step()
        obj.update_targets(enc)


def test_discrete_heads_learn_uniform_policy_successor_values() -> None:
    P, r = tabular_mdp()
    obj, enc = make_tabular(gym.spaces.Discrete(A), r)
    train(obj, enc, P, discrete=True)
    P_pi = P.mean(0)  # uniformly random policy
    V = torch.linalg.solve(torch.eye(S) - GAMMA * P_pi, r)  # [S, N] = (I - gamma P_pi)^-1 r_i
    Q = r[None] + GAMMA * P @ V  # [A, S, N]: Psi_i(s, a) = r_i(s) + gamma sum_s' P(s'|s,a) V_i(s')
    with torch.no_grad():
        psi = obj.values(torch.eye(S))  # [S, N, A]
    err = (psi.permute(2, 0, 1) - Q).abs().max()
    assert err < 0.1, f"max |Psi - Psi*| = {err:.3f} (values up to {float(Q.max()):.2f})"


def test_continuous_actions_learn_behaviour_state_values() -> None:
    P, r = tabular_mdp(seed=3)
    obj, enc = make_tabular(gym.spaces.Box(-1.0, 1.0, (1,), np.float32), r)
    train(obj, enc, P, discrete=False)
    V = torch.linalg.solve(torch.eye(S) - GAMMA * P.mean(0), r)  # data's policy is uniform over the 2 codes
    with torch.no_grad():
        psi = obj.values(torch.eye(S)).squeeze(-1)  # [S, N]
    err = (psi - V).abs().max()
    assert err < 0.1, f"max |V - V*| = {err:.3f}"


def test_td_loss_formula_with_terminations_and_mask() -> None:
    torch.manual_seed(0)
    enc = MLPEncoder(S, 8, (16,))
    obj = ProtoValueObjective(ProtoValueConfig(num_tasks=N, gamma=GAMMA), enc.out_dim, OBS, gym.spaces.Discrete(A))
    obj.bind_encoder(enc)
    P, r = tabular_mdp()
    obj.indicator = GivenIndicator(r)
    batch = sample_transitions(P, 32, torch.Generator().manual_seed(2))
    batch.terminated[:10] = 1.0
    batch.mask[-4:] = 0.0
    with torch.no_grad():
        enc.net[0].weight.add_(0.3)  # online != target
        psi = obj.values(enc(batch.obs[:, 0]))
        psi_a = psi[torch.arange(32), :, batch.action[:, 0]]
        nxt = obj.target.head(obj.target.encoder(batch.obs[:, 1])).view(32, N, A).mean(-1)
        y = batch.obs[:, 0] @ r + GAMMA * (1 - batch.terminated) * nxt
        expected = (0.5 * (y - psi_a) ** 2).mean(1)[:-4].mean()
        loss, m = obj.loss(batch, enc)
    assert torch.allclose(m["td_loss"], expected, rtol=1e-5)
    assert torch.allclose(loss, expected)  # given indicator: no QR term


def test_qr_thresholds_make_rnd_indicators_fire_at_target_rate() -> None:
    torch.manual_seed(0)
    p = 0.05
    space = gym.spaces.Box(-np.inf, np.inf, (8,), np.float32)
    ind = RNDIndicator(space, num_tasks=20, target_rate=p, num_nets=4, hidden=(32, 32))
    assert [n for n, q in ind.named_parameters() if q.requires_grad] == ["bias"]
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam([ind.bias], lr=1e-2)
    with torch.no_grad():
        before = ind(torch.randn(4000, 8, generator=gen))[0].mean(0)
    for i in range(1500):
        if i == 1000:
            opt.param_groups[0]["lr"] = 2e-3
        _, qr = ind(torch.randn(512, 8, generator=gen))
        opt.zero_grad()
        qr.backward()
        opt.step()
    with torch.no_grad():
        rate = ind(torch.randn(20000, 8, generator=gen))[0].mean(0)  # fresh states
    assert (before - p).abs().mean() > 0.2  # uncalibrated thresholds are far off
    assert (rate - p).abs().max() < 0.02, rate
    assert abs(float(rate.mean()) - p) < 0.006


def test_rnd_indicator_on_pixels_is_frozen_and_calibrates() -> None:
    torch.manual_seed(0)
    space = gym.spaces.Box(0, 255, (4, 36, 36), np.uint8)
    # Uniform-noise frames barely vary, so with PVN's final ReLU some outputs are 0 on every
    # frame and cannot be calibrated; test the thresholds without it.
    assert RNDIndicator(space, 10, 0.1, 5, width=0.25).final_relu  # PVN's default for images
    ind = RNDIndicator(space, num_tasks=10, target_rate=0.1, num_nets=5, width=0.25, final_relu=False)
    gen = torch.Generator().manual_seed(1)
    frames = lambda n: torch.randint(0, 256, (n, 4, 36, 36), generator=gen, dtype=torch.uint8)
    opt = torch.optim.Adam([ind.bias], lr=2e-3)
    for _ in range(400):
        _, qr = ind(frames(128))
        opt.zero_grad()
        qr.backward()
        opt.step()
    with torch.no_grad():
        rate = ind(frames(4000))[0].mean(0)
    assert (rate - 0.1).abs().max() < 0.05, rate
    assert all(q.grad is None for n, q in ind.named_parameters() if n != "bias")


def test_hash_indicator_rate_and_determinism() -> None:
    pixels = gym.spaces.Box(0, 255, (2, 16, 16), np.uint8)
    ind = HashIndicator(pixels, num_tasks=100, target_rate=0.01)
    x = torch.randint(0, 256, (3000, 2, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    r, qr = ind(x)
    assert r.shape == (3000, 100) and float(qr) == 0.0
    assert 0.007 < float(r.mean()) < 0.013  # ~ 82 / 8191 hash values land in bin 0
    assert torch.equal(ind(x[:50])[0], r[:50])  # a function of the observation only
    states = gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)
    ind_s = HashIndicator(states, num_tasks=100, target_rate=0.01, resolution=0.1)
    s = torch.randn(3000, 5, generator=torch.Generator().manual_seed(1))
    rs = ind_s(s)[0]
    assert 0.007 < float(rs.mean()) < 0.013
    same_bin = torch.floor(s / 0.1) * 0.1 + 0.05  # same quantisation cells
    assert torch.equal(ind_s(same_bin)[0], rs)


def test_qr_warmup_gates_td_and_counter_advances() -> None:
    torch.manual_seed(0)
    enc = MLPEncoder(S, 8, (16,))
    obj = ProtoValueObjective(ProtoValueConfig(num_tasks=N, qr_warmup=2, target_rate=0.2), enc.out_dim, OBS,
                              gym.spaces.Discrete(A))
    obj.bind_encoder(enc)
    batch = sample_transitions(tabular_mdp()[0], 16, torch.Generator().manual_seed(2))
    for step in range(3):
        loss, m = obj.loss(batch, enc)
        expected = m["qr_loss"] + (m["td_loss"] if step >= 2 else 0.0)
        assert torch.allclose(loss, expected), step
        obj.update_targets(enc)
    assert int(obj.num_updates) == 3 and "num_updates" in obj.state_dict()


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="rnd, hash"):
        ProtoValueConfig(indicator="given")
    with pytest.raises(ValueError, match="target_rate"):
        ProtoValueConfig(target_rate=0.0)
