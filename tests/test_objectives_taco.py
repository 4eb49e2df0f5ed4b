"""TACO objective: InfoNCE accuracy needs the action sequence; masking; pixels and options."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlaux.encoders import DrQEncoder, MLPEncoder
from rlaux.objectives.taco import TACOConfig, TACOObjective, infonce
from rlaux.types import WindowBatch

N_X, N_A, K, B = 8, 4, 3, 128
OBS = gym.spaces.Box(-np.inf, np.inf, (N_X,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (N_A,), np.float32)
EMBED = torch.randn(N_A, N_X, generator=torch.Generator().manual_seed(0))


def action_driven_windows(B: int, gen: torch.Generator, shuffle_actions: bool = False) -> WindowBatch:
    """s_{t+k+1} = s_{t+k} + a_{t+k} E: the future is (almost) only determined by the actions
    (s_t = u E with a small spread of u). With ``shuffle_actions`` the windows carry another
    sample's actions, so they say nothing about the future."""
    s = (torch.randn(B, N_A, generator=gen) * 0.05) @ EMBED
    a = torch.rand(B, K, N_A, generator=gen) * 2 - 1
    states = [s]
    for k in range(K):
        states.append(states[-1] + a[:, k] @ EMBED)
    if shuffle_actions:
        a = a[torch.randperm(B, generator=gen)]
    obs = torch.stack(states, 1)
    reward = obs[:, :K, 0].clone()
    z = torch.zeros(B, K)
    return WindowBatch(obs, a, reward, z, torch.ones(B, K), z[:, 0], z[:, 0] + 1, obs[:, -1])


def make(**options) -> tuple[TACOObjective, MLPEncoder]:
    torch.manual_seed(0)
    enc = MLPEncoder(N_X, 32, (64, 64))
    obj = TACOObjective(TACOConfig(**{"hidden": 256, **options}), enc.out_dim, OBS, ACT)
    obj.bind_encoder(enc)
    return obj, enc


def train_accuracy(shuffle: bool, steps: int = 250) -> float:
    obj, enc = make()
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam([*obj.parameters(), *enc.parameters()], lr=1e-3)
    accs = []
    for i in range(steps):
        loss, metrics = obj.loss(action_driven_windows(B, gen, shuffle), enc)
        opt.zero_grad()
        loss.backward()
        opt.step()
        obj.update_targets(enc)
        if i >= steps - 20:
            accs.append(float(metrics["taco_accuracy"]))
    return float(np.mean(accs))


def test_taco_accuracy_needs_the_action_sequence() -> None:
    acc = train_accuracy(shuffle=False)
    acc_shuffled = train_accuracy(shuffle=True)
    chance = 1.0 / B
    assert acc > 0.5, f"accuracy {acc:.3f} (chance {chance:.4f})"
    assert acc_shuffled < 4 * chance, f"shuffled accuracy {acc_shuffled:.3f} (chance {chance:.4f})"


def test_windows_whose_future_is_masked_are_excluded() -> None:
    obj, enc = make()
    batch = action_driven_windows(32, torch.Generator().manual_seed(2))
    batch.mask[:8, 2:] = 0  # episodes end at step 1: no K-step future
    loss, metrics = obj.loss(batch, enc)
    batch.obs[:8, K] = 1e3  # garbage futures: neither anchors nor negatives
    batch.action[:8, 2:] = 0.3
    batch.reward[:8, 2:] = 1e4
    loss2, metrics2 = obj.loss(batch, enc)
    assert torch.allclose(loss, loss2, rtol=1e-6)
    for key in ("taco_loss", "taco_accuracy", "reward_loss"):
        assert torch.allclose(metrics[key], metrics2[key], rtol=1e-6), key
    batch.mask[:8] = 1
    assert not torch.allclose(obj.loss(batch, enc)[1]["taco_loss"], metrics["taco_loss"])


def test_infonce_accuracy_and_max_subtraction() -> None:
    logits = torch.eye(4) * 10 + 100.0  # a huge shared offset: max subtraction keeps it finite
    loss, acc = infonce(logits)
    assert acc == 1.0 and 0 < loss < 1e-3
    valid = torch.tensor([True, True, False, False])
    loss, acc = infonce(torch.zeros(4, 4), valid)
    assert torch.allclose(loss, torch.log(torch.tensor(2.0)))  # uniform over the 2 valid keys


def test_reward_target_is_k_step_discounted_sum() -> None:
    obj, enc = make(curl=False)
    batch = action_driven_windows(16, torch.Generator().manual_seed(3))
    with torch.no_grad():
        q = obj.proj_s(enc(batch.obs[:, 0]))
        u = obj.action_encoder(batch.action[:, :K])
        target = (batch.reward * 0.99 ** torch.arange(K)).sum(1)
        expected = ((obj.reward_head(torch.cat([q, u], -1)).squeeze(-1) - target) ** 2).mean()
        _, m = obj.loss(batch, enc)
    assert torch.allclose(m["reward_loss"], expected, rtol=1e-5)
    assert "curl_loss" not in m


@pytest.mark.parametrize("key_encoder", ["online_nograd", "ema"])
def test_pixels_discrete_actions_and_key_encoders(key_encoder) -> None:
    torch.manual_seed(0)
    obs_space = gym.spaces.Box(0, 255, (3, 32, 32), np.uint8)
    act = gym.spaces.Discrete(5)
    enc = DrQEncoder(obs_space.shape)
    obj = TACOObjective(TACOConfig(hidden=64, key_encoder=key_encoder), enc.out_dim, obs_space, act)
    obj.bind_encoder(enc)
    assert obj.aug is not None
    assert obj.action_encoder.seq[0].in_features == K * (int(1.25 * 5) + 1)
    obs = torch.randint(0, 256, (6, K + 1, 3, 32, 32), dtype=torch.uint8)
    z = torch.zeros(6, K)
    batch = WindowBatch(obs, torch.randint(0, 5, (6, K)), z, z, torch.ones(6, K), z[:, 0], z[:, 0], obs[:, -1])
    loss, m = obj.loss(batch, enc)
    loss.backward()
    assert {"taco_accuracy", "curl_accuracy", "reward_loss"} <= set(m)
    assert all(p.grad is not None for p in enc.parameters())
    assert (obj.target.encoder is not None) == (key_encoder == "ema")
    if key_encoder == "ema":
        assert all(p.grad is None for p in obj.target.parameters())


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="online_nograd, ema"):
        TACOConfig(key_encoder="momentum")
