"""Network building blocks: in-place hidden activations, the ensemble's Q output layer, the flat encoder,
the one encoder-to-heads trunk rule."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from agents.networks import EnsembleLinear, EnsembleMLP
from rlaux.encoders import (
    DrQEncoder,
    FlatEncoder,
    HiddenELU,
    HiddenReLU,
    MLPEncoder,
    NatureCNN,
    head_trunk,
    hidden_activation,
    mlp,
)


@pytest.mark.parametrize("name,reference", [("relu", nn.ReLU()), ("elu", nn.ELU())])
@pytest.mark.parametrize("batch_shape", [(16,), (4, 5)], ids=["2d", "3d"])
def test_hidden_activations_match_the_out_of_place_ones(name: str, reference: nn.Module, batch_shape) -> None:
    """Same values as nn.ReLU / nn.ELU inside an MLP, for 2-D and 3-D batches (a Linear on a 3-D
    batch returns a view, which must not be overwritten), and the same gradients (in-place ELU
    differentiates through its output, exp(x) = y + 1, so its gradient matches to rounding)."""
    torch.manual_seed(0)
    net = mlp(6, [32, 32], 3, name)
    assert sum(isinstance(m, (HiddenReLU, HiddenELU)) for m in net) == 2
    ref = nn.Sequential(*[reference if isinstance(m, (HiddenReLU, HiddenELU)) else m for m in net])
    x = torch.randn(*batch_shape, 6)
    out, out_ref = net(x), ref(x)
    torch.testing.assert_close(out, out_ref, rtol=0, atol=0)
    grads = torch.autograd.grad(out.square().sum(), list(net.parameters()))
    grads_ref = torch.autograd.grad(out_ref.square().sum(), list(ref.parameters()))
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-7)


def test_hidden_activation_is_in_place_only_for_non_views() -> None:
    act = hidden_activation("relu")
    x = torch.randn(8, 4)
    assert act(x).data_ptr() == x.data_ptr() and (x >= 0).all()  # overwritten
    base = torch.randn(8, 4)
    view = base.view(2, 4, 4)
    before = base.clone()
    y = act(view)
    assert y.data_ptr() != view.data_ptr() and torch.equal(base, before)
    assert isinstance(hidden_activation("tanh"), nn.Tanh)


def test_q_output_layer_equals_a_batched_matrix_product() -> None:
    """EnsembleLinear with one output (the vecdot path) computes baddbmm's values and gradients,
    and frozen=True sends gradient to the input only."""
    torch.manual_seed(0)
    layer = EnsembleLinear(7, 1, ensemble=3, init="default")
    x = torch.randn(3, 10, 7, requires_grad=True)
    out = layer(x)
    ref = torch.baddbmm(layer.bias, x, layer.weight)
    torch.testing.assert_close(out, ref)
    g = torch.autograd.grad(out.sum(), [x, layer.weight, layer.bias])
    g_ref = torch.autograd.grad(ref.sum(), [x, layer.weight, layer.bias])
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b)
    frozen = layer(x, frozen=True)
    assert frozen.grad_fn is not None
    (gx,) = torch.autograd.grad(frozen.sum(), [x])
    torch.testing.assert_close(gx, g_ref[0])
    mlp_out = EnsembleMLP(7, [16], 1, ensemble=3)(torch.randn(10, 7))
    assert mlp_out.shape == (3, 10, 1)


def test_flat_encoder_is_the_flattened_observation() -> None:
    enc = FlatEncoder(12)
    obs = torch.randn(5, 3, 4)
    assert enc.out_dim == 12 and list(enc.parameters()) == []
    assert torch.equal(enc(obs), obs.reshape(5, 12))


@pytest.mark.parametrize("encoder, latent_activation, kind, width", [
    (MLPEncoder(5, 8, [16]), None, nn.Identity, 8),
    (MLPEncoder(5, 8, [16]), "tanh", nn.Tanh, 8),
    (MLPEncoder(5, 8, [16]), "relu", nn.ReLU, 8),
    (FlatEncoder(5), "tanh", nn.Identity, 5),
    (NatureCNN((4, 84, 84)), "relu", nn.Identity, 512),  # already ends in ReLU(512)
    (DrQEncoder((3, 24, 24)), None, nn.Sequential, 12),
], ids=["mlp-linear", "mlp-tanh", "mlp-relu", "flat", "nature", "drq"])
def test_head_trunk_is_one_rule_per_encoder(encoder: nn.Module, latent_activation: str | None, kind: type,
                                            width: int) -> None:
    trunk, out_dim = head_trunk(encoder, 12, latent_activation)
    assert type(trunk) is kind and out_dim == width
    if kind is nn.Sequential:  # DrQ-v2's projection of the wide conv features
        assert [type(m) for m in trunk] == [nn.Linear, nn.LayerNorm, nn.Tanh]
        assert trunk[0].in_features == encoder.out_dim and not trunk[0].bias.any()
