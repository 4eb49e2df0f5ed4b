"""rlaux.optim: the fast Adam step gives exactly what ``optimizer.step()`` gives."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from rlaux.optim import adam_step, make_adam, zero_grad


def _nets() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    return net, copy.deepcopy(net)


def _backward(net: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 5, generator=gen)
    net(x).pow(2).mean().backward()


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_fast_step_matches_optimizer_step_bitwise(weight_decay: float) -> None:
    ref_net, fast_net = _nets()
    ref = make_adam(ref_net.parameters(), 1e-2, weight_decay=weight_decay)
    fast = make_adam(fast_net.parameters(), 1e-2, weight_decay=weight_decay)
    for i in range(6):
        if i == 3:  # lr changes (PPO's annealing) are read at every step
            for opt in (ref, fast):
                for group in opt.param_groups:
                    group["lr"] = 5e-3
        ref.zero_grad(set_to_none=True)
        _backward(ref_net, i)
        ref.step()
        zero_grad(fast)
        _backward(fast_net, i)
        adam_step(fast)
        for a, b in zip(ref_net.parameters(), fast_net.parameters()):
            assert torch.equal(a, b)
    assert torch.equal(ref.state_dict()["state"][0]["step"], fast.state_dict()["state"][0]["step"])


def test_fast_step_after_load_state_dict_and_missing_grads() -> None:
    ref_net, fast_net = _nets()
    ref, fast = make_adam(ref_net.parameters(), 1e-2), make_adam(fast_net.parameters(), 1e-2)
    for net, opt in ((ref_net, ref), (fast_net, fast)):
        _backward(net, 0)
        opt.step()
    fast.load_state_dict(copy.deepcopy(fast.state_dict()))  # new state tensors: the cache must not be reused
    for i in range(1, 4):
        for net, opt in ((ref_net, ref), (fast_net, fast)):
            opt.zero_grad(set_to_none=True)
            _backward(net, i)
            if i == 2:  # a parameter without gradient is skipped, as Adam does
                net[2].bias.grad = None
            opt.step() if opt is ref else adam_step(opt)
        for a, b in zip(ref_net.parameters(), fast_net.parameters()):
            assert torch.equal(a, b)
        assert all(torch.equal(s1["exp_avg"], s2["exp_avg"])
                   for s1, s2 in zip(ref.state_dict()["state"].values(), fast.state_dict()["state"].values()))


def test_other_optimizers_and_hooks_use_their_own_step() -> None:
    net, _ = _nets()
    sgd = torch.optim.SGD(net.parameters(), lr=0.1)
    _backward(net, 0)
    before = [p.detach().clone() for p in net.parameters()]
    adam_step(sgd)
    assert any(not torch.equal(b, p) for b, p in zip(before, net.parameters()))
    opt = make_adam(net.parameters(), 1e-2)
    calls = []
    opt.register_step_post_hook(lambda *args: calls.append(1))
    for _ in range(3):
        _backward(net, 1)
        adam_step(opt)
    assert calls == [1, 1, 1]
