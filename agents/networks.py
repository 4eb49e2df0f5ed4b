"""Actor and critic building blocks shared by the off-policy agents (sac, ddpg, dqn).

* :class:`EnsembleLinear` / :class:`EnsembleMLP`: E independent MLPs evaluated as one batched
  matrix product per layer (weights ``[E, in, out]``, ``torch.baddbmm``), so twin critics cost
  one kernel per layer instead of two.
* :class:`QEnsemble`: E critics ``Q_e(z, a)`` on ``concat(z, a)``, returning ``[E, B]``;
  :class:`Critic`: a trunk (:func:`rlaux.encoders.head_trunk`) followed by a ``QEnsemble``.
* :class:`DeterministicActor` (ddpg) and :class:`SquashedGaussianActor` (sac).

Target networks are :func:`rlaux.objectives.targets.frozen_copy` copies moved by
:func:`rlaux.objectives.targets.ema_update`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rlaux.encoders import hidden_activation, mlp, orthogonal_init, run_sequential

LOG2 = math.log(2.0)
LOG_2PI = math.log(2.0 * math.pi)


class EnsembleLinear(nn.Module):
    """E independent linear layers: ``[E, B, in] -> [E, B, out]`` (a ``[B, in]`` input is shared).

    Args:
        init: "orthogonal" (DrQ-v2/TCRL: orthogonal weights, zero bias) or "default"
            (``nn.Linear``'s uniform(+-1/sqrt(in)) initialisation, as SB3 and CleanRL).
    """

    def __init__(self, in_dim: int, out_dim: int, ensemble: int, init: str = "orthogonal") -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.ensemble = in_dim, out_dim, ensemble
        self.weight = nn.Parameter(torch.empty(ensemble, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(ensemble, 1, out_dim))
        with torch.no_grad():
            for e in range(ensemble):
                if init == "orthogonal":
                    self.weight[e].copy_(nn.init.orthogonal_(torch.empty(out_dim, in_dim)).T)
                    self.bias[e].zero_()
                elif init == "default":
                    bound = 1.0 / math.sqrt(in_dim)
                    self.weight[e].uniform_(-bound, bound)
                    self.bias[e].uniform_(-bound, bound)
                else:
                    raise ValueError(f"init={init!r} is not valid; valid choices: orthogonal, default")

    def forward(self, x: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """``frozen=True`` uses detached weights: gradients reach the input but not the layer."""
        w, b = (self.weight.detach(), self.bias.detach()) if frozen else (self.weight, self.bias)
        if self.out_dim == 1 and x.dim() == 3:
            # a Q output layer: one dot product per row. As a batched GEMM with N=1 (and its
            # K=1 outer-product backward) it runs far below the BLAS peak on CPU; the same sum
            # as an elementwise product + reduction costs ~half (forward + backward).
            return torch.linalg.vecdot(x, w.transpose(1, 2)).unsqueeze(-1) + b
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.ensemble, -1, -1)
        return torch.baddbmm(b, x, w)

    def extra_repr(self) -> str:
        return f"ensemble={self.ensemble}, in={self.in_dim}, out={self.out_dim}"


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the last axis with a separate affine transform per ensemble member."""

    def __init__(self, dim: int, ensemble: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.ones(ensemble, 1, dim))
        self.bias = nn.Parameter(torch.zeros(ensemble, 1, dim))

    def forward(self, x: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        w, b = (self.weight.detach(), self.bias.detach()) if frozen else (self.weight, self.bias)
        return torch.addcmul(b, F.layer_norm(x, (self.dim,), eps=self.eps), w)


class EnsembleMLP(nn.Module):
    """E MLPs in lock-step: ``[B, in]`` or ``[E, B, in]`` -> ``[E, B, out]``.

    Args:
        hidden: hidden widths. With ``first_layernorm_tanh`` the first hidden layer is
            Linear + LayerNorm + Tanh (TD-MPC/TCRL critic), the others Linear + ``activation``.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        ensemble: int,
        activation: str = "relu",
        first_layernorm_tanh: bool = False,
        init: str = "orthogonal",
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        self.kinds: list[str] = []  # "linear" | "ln" | "act" | "tanh"
        last = in_dim
        for i, width in enumerate(hidden):
            self.layers.append(EnsembleLinear(last, width, ensemble, init))
            self.kinds.append("linear")
            if i == 0 and first_layernorm_tanh:
                self.layers.append(EnsembleLayerNorm(width, ensemble))
                self.kinds.append("ln")
                self.layers.append(nn.Tanh())
            else:
                self.layers.append(hidden_activation(activation))  # in place for ReLU/ELU
            self.kinds.append("act")
            last = width
        self.layers.append(EnsembleLinear(last, out_dim, ensemble, init))
        self.kinds.append("linear")

    def forward(self, x: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        # ``.forward`` directly: these internal layers carry no hooks, and Module.__call__'s
        # bookkeeping is a measurable part of a small network's update on CPU
        for kind, layer in zip(self.kinds, self.layers):
            x = layer.forward(x) if kind == "act" else layer.forward(x, frozen)
        return x


class QEnsemble(nn.Module):
    """E critics Q_e(z, a) on ``concat(z, a)``; :meth:`forward` returns ``[E, B]``.

    ``frozen=True`` (for actor losses) lets the gradient reach z and a but not the critic's
    weights, so the actor's backward pass does not compute critic weight gradients.
    """

    def __init__(
        self,
        feature_dim: int,
        action_dim: int,
        hidden: Sequence[int],
        ensemble: int = 2,
        activation: str = "relu",
        first_layernorm_tanh: bool = False,
        init: str = "orthogonal",
    ) -> None:
        super().__init__()
        self.ensemble = ensemble
        self.net = EnsembleMLP(feature_dim + action_dim, hidden, 1, ensemble, activation, first_layernorm_tanh, init)

    def forward(self, z: torch.Tensor, action: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        return self.net.forward(torch.cat([z, action], dim=-1), frozen).squeeze(-1)


class Critic(nn.Module):
    """``trunk`` (see :func:`rlaux.encoders.head_trunk`) followed by a :class:`QEnsemble`; returns ``[E, B]``.

    ``frozen=True`` (actor losses): the trunk runs under ``no_grad`` (its input is detached
    features anyway) and the Q weights are detached, so only the action receives gradient.
    """

    def __init__(self, trunk: nn.Module, q: QEnsemble) -> None:
        super().__init__()
        self.trunk = trunk
        self.q = q

    def forward(self, z: torch.Tensor, action: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        if isinstance(self.trunk, nn.Identity):
            h = z
        elif frozen:
            with torch.no_grad():
                h = self.trunk(z)
        else:
            h = self.trunk(z)
        return self.q.forward(h, action, frozen)


def ln_tanh_mlp(in_dim: int, hidden: Sequence[int], out_dim: int, activation: str) -> nn.Sequential:
    """MLP whose first hidden layer is Linear + LayerNorm + Tanh, the rest Linear + ``activation``
    (the TD-MPC/TCRL actor), with orthogonal initialisation."""
    if not hidden:
        net = nn.Sequential(nn.Linear(in_dim, out_dim))
    else:
        rest = mlp(hidden[0], list(hidden[1:]), out_dim, activation)
        net = nn.Sequential(nn.Linear(in_dim, hidden[0]), nn.LayerNorm(hidden[0]), nn.Tanh(), *rest)
    orthogonal_init(net)
    return net


class DeterministicActor(nn.Module):
    """mu(z) = tanh(MLP(trunk(z))) in [-1, 1]^A. With ``layernorm_tanh`` (DrQ-v2/TCRL) the MLP's
    first layer is Linear + LayerNorm + Tanh; without it every hidden layer is Linear +
    ``activation`` (TD3/CleanRL). Orthogonal initialisation either way."""

    def __init__(self, trunk: nn.Module, feature_dim: int, action_dim: int, hidden: Sequence[int],
                 activation: str = "elu", layernorm_tanh: bool = True) -> None:
        super().__init__()
        self.trunk = trunk
        if layernorm_tanh:
            self.net = ln_tanh_mlp(feature_dim, hidden, action_dim, activation)
        else:
            self.net = mlp(feature_dim, hidden, action_dim, activation)
            orthogonal_init(self.net)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = z if isinstance(self.trunk, nn.Identity) else self.trunk(z)
        return torch.tanh(run_sequential(self.net, h))


def clipped_noise_action(mu: torch.Tensor, std: float, clip: float | None) -> torch.Tensor:
    """mu + clip(std * eps, -clip, clip), clamped to [-1, 1] with a straight-through gradient
    (DrQ-v2's truncated-normal sample): the gradient w.r.t. ``mu`` is the identity."""
    noise = torch.randn_like(mu) * std
    if clip is not None:
        noise = noise.clamp(-clip, clip)
    x = mu + noise
    clamped = x.clamp(-1.0 + 1e-6, 1.0 - 1e-6)
    return x - x.detach() + clamped.detach()


class SquashedGaussianActor(nn.Module):
    """SAC policy: a = tanh(u), u ~ N(mean(z), std(z)^2) with log std squashed into
    [log_std_min, log_std_max] by a tanh (as CleanRL). MLP with ``activation`` (ReLU in SAC)."""

    def __init__(
        self,
        trunk: nn.Module,
        feature_dim: int,
        action_dim: int,
        hidden: Sequence[int],
        activation: str = "relu",
        log_std_min: float = -5.0,
        log_std_max: float = 2.0,
    ) -> None:
        super().__init__()
        self.trunk = trunk
        self.net = mlp(feature_dim, hidden, 2 * action_dim, activation)
        self.action_dim = action_dim
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def _dist(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = z if isinstance(self.trunk, nn.Identity) else self.trunk(z)
        mean, raw = run_sequential(self.net, h).split(self.action_dim, dim=-1)
        half = 0.5 * (self.log_std_max - self.log_std_min)
        log_std = torch.tanh(raw).mul(half).add_(self.log_std_min + half)  # min + half * (tanh + 1)
        return mean, log_std

    def mean_action(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self._dist(z)[0])

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised sample ``a`` [B, A] and its log-probability ``log pi(a|z)`` [B]."""
        mean, log_std = self._dist(z)
        eps = torch.randn_like(mean)
        u = torch.addcmul(mean, eps, log_std.exp())
        action = torch.tanh(u)
        # log N(u; mean, std) - sum log(1 - tanh(u)^2), with log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)):
        # sum_j [-eps^2 / 2 - log_std + 2 (u + softplus(-2u))] - A (log(2 pi) / 2 + 2 log 2)
        per_dim = torch.add(u, F.softplus(u * -2.0)).mul_(2.0).sub_(log_std)
        per_dim = per_dim.add_(eps.square().mul_(-0.5))
        log_prob = per_dim.sum(-1) - self.action_dim * (0.5 * LOG_2PI + 2.0 * LOG2)
        return action, log_prob
