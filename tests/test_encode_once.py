"""Encode once per update (rlaux/feature_cache.py): every distinct (frames, augmentation draw,
network) goes through the encoder once per aux-suite loss call, with the numbers of the
uncached path."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from agents.sac import SACAgent
from rlaux.encoders import make_encoder
from rlaux.feature_cache import FeatureCache, active_cache, sharing_encoder_passes
from rlaux.objectives import build_aux_suite
from rlaux.objectives.common import encode
from rlaux.objectives.suite import AuxSuite
from rlaux.types import WindowBatch

PIXELS = gym.spaces.Box(0, 255, (9, 36, 36), np.uint8)  # small frames (36: the smallest PVN's RND nets take)
ACTIONS = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
B, L = 4, 5


def pixel_batch() -> WindowBatch:
    return WindowBatch(
        obs=torch.randint(0, 256, (B, L + 1, *PIXELS.shape), dtype=torch.uint8), action=torch.rand(B, L, 2) * 2 - 1,
        reward=torch.randn(B, L), terminated=torch.zeros(B, L), mask=torch.ones(B, L), nstep_reward=torch.randn(B),
        nstep_discount=torch.full((B,), 0.9), nstep_next_obs=torch.randint(0, 256, (B, *PIXELS.shape), dtype=torch.uint8),
    )


def pixel_suite(aux: dict) -> tuple[nn.Module, AuxSuite]:
    torch.manual_seed(0)
    encoder = make_encoder(PIXELS, "drq")
    return encoder, build_aux_suite(aux, "sac", encoder, encoder.out_dim, PIXELS, ACTIONS)


def record_inputs(module: nn.Module) -> list[torch.Tensor]:
    """The input batch of every forward call of ``module``, in order."""
    inputs: list[torch.Tensor] = []
    module.register_forward_hook(lambda _m, args, _out: inputs.append(args[0].detach().clone()))
    return inputs


def frames_of(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1, *PIXELS.shape) for t in tensors]).flatten(1)


def loss_and_grads(suite: AuxSuite, encoder: nn.Module, batch: WindowBatch, share: bool, seed: int = 1):
    """The suite's loss on ``batch`` and the gradients it gives every parameter (fresh each call)."""
    suite.share_encoder_passes = share
    params = list(encoder.parameters()) + list(suite.parameters())
    for p in params:
        p.grad = None
    torch.manual_seed(seed)  # the same augmentation draws in both paths
    loss, _ = suite.loss(batch, encoder)
    loss.backward()
    return loss.detach(), [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]


def test_composite_pixel_suite_encodes_each_distinct_frame_once_per_network() -> None:
    encoder, suite = pixel_suite({"tcrl": {}, "predictive": {}})
    online, ema = record_inputs(encoder), record_inputs(suite.objectives["tcrl"].target.encoder)
    batch = pixel_batch()
    suite.loss(batch, encoder)
    # online encoder: tcrl reads o_t, predictive o_t and o_{t+1} -> o_t and o_{t+1} once each
    seen = frames_of(online)
    expected = batch.obs[:, :2].reshape(-1, *PIXELS.shape).flatten(1)
    assert seen.shape[0] == expected.shape[0] == 2 * B
    assert torch.unique(torch.cat([seen, expected]), dim=0).shape[0] == 2 * B  # the same frames, none twice
    # tcrl's EMA copy is another network: its H target frames in one pass
    assert [t.shape[0] for t in ema] == [L * B]


def test_uncached_path_encodes_every_request() -> None:
    encoder, suite = pixel_suite({"tcrl": {}, "predictive": {}})
    suite.share_encoder_passes = False
    online = record_inputs(encoder)
    suite.loss(pixel_batch(), encoder)
    assert [t.shape[0] for t in online] == [B, 2 * B]


def test_composite_loss_and_gradients_equal_the_uncached_path() -> None:
    encoder, suite = pixel_suite({"tcrl": {}, "predictive": {}})
    batch = pixel_batch()
    loss_before, grads_before = loss_and_grads(suite, encoder, batch, share=False)
    loss_after, grads_after = loss_and_grads(suite, encoder, batch, share=True)
    assert torch.equal(loss_before, loss_after)
    for before, after in zip(grads_before, grads_after):  # summed in another order: equal up to rounding
        torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5 * before.abs().max().item() + 1e-12)


@pytest.mark.parametrize("aux", [{"tcrl": {}}, {"predictive": {}}, {"taco": {}}, {"proto_value": {}},
                                 {"predictive": {"collapse": "target", "inverse_weight": 1.0}}])
def test_single_objective_gives_exactly_the_uncached_numbers(aux: dict) -> None:
    encoder, suite = pixel_suite(aux)
    batch = pixel_batch()
    loss_before, grads_before = loss_and_grads(suite, encoder, batch, share=False)
    loss_after, grads_after = loss_and_grads(suite, encoder, batch, share=True)
    assert torch.equal(loss_before, loss_after)
    assert all(torch.equal(a, b) for a, b in zip(grads_before, grads_after))


def test_sac_pixel_update_encodes_each_distinct_input_once() -> None:
    """aux step: o_t, o_{t+1} (online) and o_{t+1..t+H} (EMA); RL: the two augmented views."""
    torch.manual_seed(0)
    agent = SACAgent({"hidden": [32, 32]}, PIXELS, ACTIONS, {"tcrl": {}, "predictive": {}}, torch.device("cpu"))
    online = record_inputs(agent.encoder)
    batch = pixel_batch()
    agent.update(batch, step=0)
    assert [t.shape[0] for t in online] == [B, B, B, B]  # uncached: [B, 2B, B, B]
    aux_frames, expected = frames_of(online[:2]), batch.obs[:, :2].reshape(-1, *PIXELS.shape).flatten(1)
    assert torch.unique(torch.cat([aux_frames, expected]), dim=0).shape[0] == 2 * B


# ---------------------------------------------------------------------- the cache itself
OBS_DIM = 3


def linear_encoder() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(OBS_DIM, 2)


def test_no_grad_request_reads_features_computed_with_gradient_detached() -> None:
    encoder, cache, obs = linear_encoder(), FeatureCache(), torch.randn(4, 2, OBS_DIM)
    z = cache.encode(encoder, obs, 1, grad=True)
    z0 = cache.encode(encoder, obs[:, 0], 1, grad=False)
    assert cache.passes == 1 and z.requires_grad and not z0.requires_grad
    assert torch.equal(z0, z[:, 0].detach())


def test_gradient_request_re_encodes_features_computed_without_gradient() -> None:
    encoder, cache, obs = linear_encoder(), FeatureCache(), torch.randn(4, 2, OBS_DIM)
    cache.encode(encoder, obs[:, 1], 1, grad=False)
    z = cache.encode(encoder, obs, 1, grad=True)
    assert z.requires_grad and cache.passes == 2 and cache.frames_encoded == 4 + 8
    assert cache.encode(encoder, obs[:, 1], 1, grad=True).requires_grad and cache.passes == 2


def test_partial_hit_encodes_only_the_missing_blocks() -> None:
    encoder, cache, obs = linear_encoder(), FeatureCache(), torch.randn(4, 3, OBS_DIM)
    cache.encode(encoder, obs[:, 1], 1)
    z = cache.encode(encoder, obs, 1)
    assert cache.frames_encoded == 4 + 8
    torch.testing.assert_close(z, encoder(obs))


@pytest.mark.parametrize("change", ["parameter step", "other network", "other draw", "written in place"])
def test_a_changed_network_or_input_is_encoded_again(change: str) -> None:
    encoder, cache, obs = linear_encoder(), FeatureCache(), torch.randn(4, OBS_DIM)
    cache.encode(encoder, obs, 1)
    network, frames = encoder, obs
    if change == "parameter step":
        with torch.no_grad():
            encoder.weight.add_(1.0)
    elif change == "other network":
        network = copy.deepcopy(encoder)
    elif change == "other draw":
        frames = obs.clone()  # equal values, another tensor: another augmentation draw
    else:
        with torch.no_grad():
            obs.add_(1.0)
    z = cache.encode(network, frames, 1)
    assert cache.passes == 2
    torch.testing.assert_close(z, network(frames))


def test_scopes_nest_and_can_be_disabled() -> None:
    encoder, obs = linear_encoder(), torch.randn(4, OBS_DIM)
    assert active_cache() is None
    with sharing_encoder_passes() as outer:
        with sharing_encoder_passes() as inner:
            assert inner is outer is active_cache()
            encode(encoder, obs, 1)
            encode(encoder, obs, 1)
        assert outer.passes == 1
    assert active_cache() is None
    with sharing_encoder_passes(enabled=False) as disabled:
        assert disabled is None and active_cache() is None
