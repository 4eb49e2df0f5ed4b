"""Target networks shared by the objectives: the :class:`Target` helper, frozen copies and
their EMA updates.

The methods disagree on what a prediction target is; every objective exposes the choice with
the same vocabulary (``kind``):

* ``ema``: a separate copy of the encoder (and of the objective's projection or heads, if
  any), moved towards the online weights by ``target <- (1 - tau) * target + tau * online``
  after every optimiser step (TCRL, PVN, CURL, SPR without augmentation);
* ``stopgrad``: the online encoder itself, evaluated under ``no_grad`` (TACO, TD-MPC2);
* ``online``: the online encoder *with* gradient (Fang & Stachenfeld; collapse must be
  prevented some other way).

An objective holds one :class:`Target` per target it reads; :class:`~rlaux.objectives.base.AuxObjective`
binds every ``Target`` attribute to the shared encoder and refreshes it after each step, so an
objective only builds it and calls it. :func:`frozen_copy` and :func:`ema_update` are the two
operations underneath, usable on their own (e.g. for an agent's critic target).
"""

from __future__ import annotations

import copy
import weakref

import torch
from torch import nn

from rlaux.objectives.common import encode

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


class Target(nn.Module):
    """The prediction targets ``head(encoder(obs))`` of one objective.

    Args:
        kind: ``ema`` | ``stopgrad`` | ``online`` (module docstring).
        tau: EMA rate (``ema`` only).
        init: ``copy`` | ``random``: how the ``ema`` copies start (:func:`frozen_copy`).
        obs_ndim: number of observation dims; ``obs`` may have any leading batch dims.
        head: the objective's own module applied after the encoder (a projection, value
            heads), or None. It stays the objective's; ``ema`` keeps a copy of it.
        encoder_grad: whether ``online`` targets pass gradient to the encoder (the head's
            gradient always flows for ``online``).

    The ``ema`` copies (children ``encoder`` and ``head``, frozen) are made by :meth:`bind`
    and live in the objective's ``state_dict`` under ``<attribute>.encoder.*`` and
    ``<attribute>.head.*``; ``stopgrad`` and ``online`` keep no state.
    """

    def __init__(
        self,
        kind: str = "ema",
        *,
        tau: float = 0.005,
        init: str = "copy",
        obs_ndim: int = 1,
        head: nn.Module | None = None,
        encoder_grad: bool = True,
    ) -> None:
        super().__init__()
        check_choice("target", kind, TARGET_KINDS)
        check_choice("target_init", init, TARGET_INITS)
        self.kind = kind
        self.tau = float(tau)
        self.init = init
        self.obs_ndim = int(obs_ndim)
        self.encoder_grad = bool(encoder_grad)
        self._online_head = (head,)  # a tuple: the owner registers the head, not this module
        self.encoder: nn.Module | None = None
        self.head: nn.Module | None = None

    def extra_repr(self) -> str:
        return f"kind={self.kind}, tau={self.tau}, init={self.init}"

    def bind(self, encoder: nn.Module) -> None:
        """Make the ``ema`` copies of ``encoder`` and of the head (no-op for other kinds)."""
        if self.kind != "ema":
            return
        self.encoder = frozen_copy(encoder, self.init)
        head = self._online_head[0]
        if head is not None:
            self.head = frozen_copy(head, self.init)

    def forward(self, obs: torch.Tensor, encoder: nn.Module) -> torch.Tensor:
        """Targets for observations [*lead, *obs_shape] -> [*lead, D] from the online
        ``encoder`` (``stopgrad``, ``online``) or the copies (``ema``); no gradient except
        for ``online``."""
        if self.kind == "online":
            return self._head_of(encode(encoder, obs, self.obs_ndim, grad=self.encoder_grad), self._online_head[0])
        if self.kind == "stopgrad":
            online, head = encoder, self._online_head[0]
        elif self.encoder is None:
            raise RuntimeError("an ema Target needs bind(encoder) before use (AuxObjective.bind_encoder "
                               "does it; build_aux_suite calls that)")
        else:
            online, head = self.encoder, self.head
        with torch.no_grad():
            return self._head_of(encode(online, obs, self.obs_ndim, grad=False), head)

    @staticmethod
    def _head_of(features: torch.Tensor, head: nn.Module | None) -> torch.Tensor:
        return features if head is None else head(features)

    def update(self, encoder: nn.Module) -> None:
        """One EMA step of the copies towards ``encoder`` and the head (``ema`` once bound)."""
        if self.kind != "ema" or self.encoder is None:
            return
        ema_update(self.encoder, encoder, self.tau)
        if self.head is not None:
            ema_update(self.head, self._online_head[0], self.tau)
