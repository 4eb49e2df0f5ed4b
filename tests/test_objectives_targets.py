"""The Target helper: EMA arithmetic, gradient per kind, initialisation, binding and updates by
the objective base class, checkpoints (including the key names written before the helper)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from rlaux.encoders import MLPEncoder
from rlaux.objectives import AuxObjective, ObjectiveConfig, Target
from rlaux.objectives.proto_value import ProtoValueConfig, ProtoValueObjective
from rlaux.objectives.taco import TACOConfig, TACOObjective
from rlaux.objectives.tcrl import TCRLConfig, TCRLObjective

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
BOX = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def linear(weight: list[list[float]], bias: list[float]) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.copy_(torch.tensor(bias))
    return layer


def test_ema_moves_each_weight_by_tau_towards_online() -> None:
    encoder, head = linear([[1.0, 2.0]], [0.0]), linear([[4.0]], [-1.0])
    target = Target("ema", tau=0.25, obs_ndim=1, head=head)
    target.bind(encoder)
    with torch.no_grad():
        encoder.weight.copy_(torch.tensor([[5.0, -2.0]]))  # the online weights move after a step
        encoder.bias.fill_(8.0)
        head.weight.fill_(0.0)
    target.update(encoder)
    # 1 + 0.25 * (5 - 1) = 2; 2 + 0.25 * (-2 - 2) = 1; 0 + 0.25 * 8 = 2; 4 + 0.25 * (0 - 4) = 3
    assert target.encoder.weight.tolist() == [[2.0, 1.0]] and target.encoder.bias.tolist() == [2.0]
    assert target.head.weight.tolist() == [[3.0]] and target.head.bias.tolist() == [-1.0]
    # and the targets are computed with the copies: 3 * (2 * 1 + 1 * 1 + 2) - 1 = 14
    assert target(torch.ones(1, 2), encoder).tolist() == [[14.0]]


def test_ema_and_stopgrad_targets_carry_no_gradient() -> None:
    torch.manual_seed(0)
    encoder, head = nn.Linear(3, 4), nn.Linear(4, 2)
    obs = torch.randn(5, 7, 3)  # any leading dims
    for kind in ("ema", "stopgrad"):
        target = Target(kind, obs_ndim=1, head=head)
        target.bind(encoder)
        out = target(obs, encoder)
        assert out.shape == (5, 7, 2) and not out.requires_grad
        assert torch.allclose(out, head(encoder(obs)))  # copies start equal; stopgrad is the online pair
    assert not Target("stopgrad", head=head).state_dict()  # stopgrad keeps no state


@pytest.mark.parametrize("encoder_grad", [True, False])
def test_online_targets_pass_gradient(encoder_grad: bool) -> None:
    torch.manual_seed(0)
    encoder, head = nn.Linear(3, 4), nn.Linear(4, 2)
    target = Target("online", obs_ndim=1, head=head, encoder_grad=encoder_grad)
    target.bind(encoder)
    target(torch.randn(6, 3), encoder).square().sum().backward()
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    assert (encoder.weight.grad is not None) == encoder_grad


def test_random_init_draws_new_weights_and_copy_does_not() -> None:
    torch.manual_seed(0)
    encoder = MLPEncoder(3, 8, (16,))
    copied, fresh = Target("ema", init="copy"), Target("ema", init="random")
    copied.bind(encoder)
    fresh.bind(encoder)
    for online, same, other in zip(encoder.parameters(), copied.encoder.parameters(), fresh.encoder.parameters()):
        assert torch.equal(online, same) and not same.requires_grad and not other.requires_grad
    weights = [(o, f) for o, f in zip(encoder.parameters(), fresh.encoder.parameters()) if o.dim() == 2]
    assert all(not torch.allclose(o, f) for o, f in weights)


def test_an_unbound_ema_target_refuses_to_compute() -> None:
    target = Target("ema")
    target.update(nn.Linear(3, 2))  # nothing to move yet: no error
    with pytest.raises(RuntimeError, match="bind"):
        target(torch.zeros(1, 3), nn.Linear(3, 2))
    with pytest.raises(ValueError, match="ema, stopgrad, online"):
        Target("momentum")


class NextLatent(AuxObjective):
    """Predicts the next latent from [z, a]; its Target is the only target code it has."""

    name = "test_next_latent"

    def __init__(self, cfg: ObjectiveConfig, feature_dim: int, obs_space: gym.Space, action_space: gym.Space) -> None:
        super().__init__(cfg, feature_dim, obs_space, action_space)
        self.model = nn.Linear(feature_dim + 2, feature_dim)
        self.target = Target("ema", tau=0.5)

    def loss(self, batch, encoder):
        z = encoder(batch.obs[:, 0])
        pred = self.model(torch.cat([z, batch.action[:, 0]], -1))
        return (pred - self.target(batch.obs[:, 1], encoder)).square().mean(), {}


def test_the_base_class_binds_and_updates_every_target() -> None:
    torch.manual_seed(0)
    encoder = nn.Linear(3, 4)
    obj = NextLatent(ObjectiveConfig(), 4, OBS, BOX)
    assert obj.targets() == [obj.target] and obj.target.encoder is None
    obj.bind_encoder(encoder)
    assert torch.equal(obj.target.encoder.weight, encoder.weight)
    with torch.no_grad():
        encoder.weight.add_(1.0)
    obj.update_targets(encoder)
    assert torch.allclose(obj.target.encoder.weight, encoder.weight - 0.5)


def state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize(
    "make, renamed",
    [
        (lambda: TCRLObjective(TCRLConfig(hidden=[8], proj_dim=5), 16, OBS, BOX),
         {"target.encoder.": "target_encoder.", "target.head.": "target_proj."}),
        (lambda: TACOObjective(TACOConfig(hidden=8, key_encoder="ema"), 16, OBS, BOX),
         {"target.encoder.": "key_encoder_net.", "target.head.": "key_proj."}),
        (lambda: ProtoValueObjective(ProtoValueConfig(num_tasks=4, indicator="hash"), 16, OBS, BOX),
         {"target.encoder.": "target_encoder.", "target.head.": "target_heads."}),
    ],
    ids=["tcrl", "taco", "proto_value"],
)
def test_targets_round_trip_through_state_dict_also_under_their_old_key_names(make, renamed) -> None:
    def built(seed: int) -> tuple[AuxObjective, nn.Module]:
        torch.manual_seed(seed)
        encoder = MLPEncoder(3, 16, (16,))
        obj = make()
        obj.bind_encoder(encoder)
        return obj, encoder

    saved, encoder = built(0)
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(0.5)
    saved.update_targets(encoder)  # targets differ from a fresh build and from the online weights
    expected = state(saved)
    assert any(k.startswith("target.encoder.") for k in expected) and any(k.startswith("target.head.") for k in expected)
    old_format = {}
    for key, value in expected.items():
        for new, old in renamed.items():
            key = old + key[len(new):] if key.startswith(new) else key
        old_format[key] = value
    assert set(old_format) != set(expected)
    for checkpoint in (expected, old_format):
        restored, _ = built(1)
        assert any(not torch.equal(v, expected[k]) for k, v in restored.state_dict().items())
        restored.load_state_dict(checkpoint)  # strict: every key found
        assert all(torch.equal(v, expected[k]) for k, v in restored.state_dict().items())
