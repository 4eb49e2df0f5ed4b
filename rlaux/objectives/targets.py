"""Target networks shared by the objectives: frozen copies and their EMA updates.

The anchors disagree on what a prediction target is (ALGORITHMS.md section 8.1); every
objective exposes the choice with the same vocabulary:

* ``ema``: a separate copy of the encoder (and of the objective's projection, if any), moved
  towards the online weights by ``target <- (1 - tau) * target + tau * online`` after every
  optimiser step (TCRL, PVN, CURL, SPR without augmentation);
* ``stopgrad``: the online encoder itself, evaluated under ``no_grad`` (TACO, TD-MPC2);
* ``online``: the online encoder *with* gradient (Fang & Stachenfeld; collapse must be
  prevented some other way).
"""

from __future__ import annotations

import copy
import weakref

import torch
from torch import nn

TARGET_KINDS = ("ema", "stopgrad", "online")
TARGET_INITS = ("copy", "random")


def check_choice(option: str, value: object, choices: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming ``option``, the bad ``value`` and the valid ``choices``."""
    if value not in choices:
        raise ValueError(f"{option}={value!r} is not valid; valid choices: {', '.join(choices)}")


def reinitialise(module: nn.Module) -> None:
    """Give ``module`` a fresh random draw of TCRL's initialisation scheme: orthogonal
    weights (gain 1 for Linear, ReLU gain for Conv2d) and zero biases; other layers with
    parameters (LayerNorm, ...) get their PyTorch default ``reset_parameters``."""
    relu_gain = nn.init.calculate_gain("relu")
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.orthogonal_(m.weight, relu_gain if isinstance(m, nn.Conv2d) else 1.0)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif hasattr(m, "reset_parameters") and m is not module:
            m.reset_parameters()


def frozen_copy(module: nn.Module, init: str = "copy") -> nn.Module:
    """A target copy of ``module`` whose parameters never receive gradients.

    Args:
        init: ``copy`` = start equal to ``module``; ``random`` = same architecture with an
            independent random initialisation (what TCRL's code does, see :func:`reinitialise`).
    """
    check_choice("target_init", init, TARGET_INITS)
    target = copy.deepcopy(module)
    if init == "random":
        with torch.no_grad():
            reinitialise(target)
    target.requires_grad_(False)
    return target


#: target module -> (online module, target params, online params, target buffers, online buffers):
#: the lists are rebuilt only when a target is paired with another online module.
_EMA_LISTS: weakref.WeakKeyDictionary[nn.Module, tuple] = weakref.WeakKeyDictionary()


def _ema_lists(target: nn.Module, online: nn.Module) -> tuple:
    cached = _EMA_LISTS.get(target)
    if cached is not None and cached[0]() is online:
        return cached
    t_params, o_params = list(target.parameters()), list(online.parameters())
    if len(t_params) != len(o_params):
        raise ValueError("target and online modules have different parameter lists")
    entry = (weakref.ref(online), t_params, o_params, list(target.buffers()), list(online.buffers()))
    _EMA_LISTS[target] = entry
    return entry


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """``target <- target + tau * (online - target)`` for every parameter (one fused
    multi-tensor op); buffers are copied. (The parameter lists are cached per target.)"""
    _, t_params, o_params, t_bufs, o_bufs = _ema_lists(target, online)
    if t_params:
        torch._foreach_lerp_(t_params, o_params, float(tau))
    for t_buf, o_buf in zip(t_bufs, o_bufs):
        t_buf.copy_(o_buf)
