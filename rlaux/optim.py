"""Adam for rlaux's many small optimiser steps: built fused where torch supports it, and
stepped through a cached fast path.

Off-policy agents take 2-3 optimiser steps per update on a handful of small tensors; there
``torch.optim.Adam.step`` spends most of its time in Python bookkeeping (grouping tensors,
hooks, profiling records) rather than in the fused kernel. :func:`adam_step` runs exactly
the same kernel (``torch._fused_adam_``, what ``Adam(fused=True).step()`` calls) on lists
cached per optimiser, so results are bit-for-bit those of ``optimizer.step()``; anything
the fast path does not cover (hooks, AMSGrad, capturable/differentiable modes, missing
gradients, a state replaced by ``load_state_dict``) goes through ``optimizer.step()``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks


def make_adam(params: Iterable[torch.Tensor] | list[dict[str, Any]], lr: float, **kwargs: Any) -> torch.optim.Adam:
    """``torch.optim.Adam`` with the fused implementation (CPU and CUDA in this torch;
    measured ~2.5x faster than foreach for 256-wide nets on CPU), falling back to foreach
    where fused is unsupported. ``kwargs`` go to Adam (``eps``, ``weight_decay``, ...)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True, **kwargs)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, lr=lr, foreach=True, **kwargs)


@dataclass
class _Group:
    params: list[torch.Tensor]
    exp_avgs: list[torch.Tensor]
    exp_avg_sqs: list[torch.Tensor]
    steps: list[torch.Tensor]
    options: dict[str, Any]


@dataclass
class _Plan:
    state: Any  # the optimiser's ``state`` dict the lists were read from
    param_groups: list[dict[str, Any]]
    groups: list[_Group]


_PLANS: weakref.WeakKeyDictionary[torch.optim.Optimizer, _Plan | None] = weakref.WeakKeyDictionary()
_SUPPORTED = {"amsgrad": False, "capturable": False, "differentiable": False, "decoupled_weight_decay": False}


def _build_plan(optimizer: torch.optim.Optimizer) -> _Plan | None:
    """Cached tensor lists of a fused Adam whose state exists for every parameter, or None."""
    groups = []
    for group in optimizer.param_groups:
        if not group.get("fused") or any(group.get(k, v) != v for k, v in _SUPPORTED.items()):
            return None
        if isinstance(group["lr"], torch.Tensor) or not group["params"]:
            return None
        params = list(group["params"])
        if len({(p.device, p.dtype) for p in params}) != 1 or params[0].is_complex():
            return None
        states = [optimizer.state.get(p) for p in params]
        if any(not s or "exp_avg" not in s for s in states):
            return None
        groups.append(_Group(params, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                             [s["step"] for s in states], group))
    return _Plan(optimizer.state, optimizer.param_groups, groups)


def zero_grad(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.zero_grad(set_to_none=True)`` without its per-call overhead."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None


def adam_step(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()`` for a fused ``torch.optim.Adam``, through the cached fast path
    when it applies (see the module docstring); any other optimiser just steps."""
    if type(optimizer) is not torch.optim.Adam or not hasattr(torch, "_fused_adam_"):
        optimizer.step()
        return
    if (optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks
            or _global_optimizer_pre_hooks or _global_optimizer_post_hooks):
        optimizer.step()
        return
    plan = _PLANS.get(optimizer)
    if plan is None or plan.state is not optimizer.state or plan.param_groups is not optimizer.param_groups:
        optimizer.step()  # creates the state on the first call
        _PLANS[optimizer] = _build_plan(optimizer)
        return
    grads = [[p.grad for p in g.params] for g in plan.groups]
    if any(gr is None for gs in grads for gr in gs):
        optimizer.step()  # Adam skips parameters without gradient
        return
    with torch.no_grad():
        for g, gs in zip(plan.groups, grads):
            o = g.options
            beta1, beta2 = o["betas"]
            torch._foreach_add_(g.steps, 1)
            torch._fused_adam_(g.params, gs, g.exp_avgs, g.exp_avg_sqs, [], g.steps, amsgrad=False, lr=o["lr"],
                               beta1=float(beta1), beta2=float(beta2), weight_decay=o["weight_decay"], eps=o["eps"],
                               maximize=o["maximize"], grad_scale=None, found_inf=None)
