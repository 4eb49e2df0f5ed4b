"""Predictive auxiliary objectives (Fang & Stachenfeld 2023, ``chingf/auxrl``), with an
SPR-style k-step mode, a reward head and an inverse-dynamics head.

Latents ``z = e(o)`` (optional projection for conv features, see ``proj_dim``). The
transition model is residual: ``T(z, a) = z + f([act(z), a])`` with ``f`` an MLP (auxrl's
"crar" layout: a leading activation on the input, ReLU hidden layers of width 16). Modes:

* ``next`` (the paper's default, gamma_pred = 0): ``L_pos = d(T(z_t, a_t), z'_{t+1})``;
* ``kstep`` (SPR): open-loop rollout ``zhat_{k+1} = T(zhat_k, a_{t+k})`` from ``zhat_0 = z_t``
  for k < ``horizon``, ``L_pos = mean over valid (b, k) of d(zhat_{k+1}, z'_{t+k+1})``;
* ``bootstrapped`` (the paper's "pred_TD", gamma_pred > 0): ``L_pos = d(T(z_t, a_t),
  z'_{t+1} + gamma_pred * mask_{t+1} * stopgrad(T(z'_{t+1}, a_{t+1})))``. Unlike the reference
  (which samples sequences across episode ends), the bootstrap term is dropped when the
  episode ends at t (``mask[:, 1] == 0``): there is no a_{t+1} in the same episode.

``d`` is ``mse`` (mean over latent dims; the paper) or ``cosine`` (2 - 2 cos). ``z'`` (the
prediction target) and collapse prevention are set by ``collapse``:

* ``repulsion`` (the paper): targets come from the online encoder *with* gradient, and two
  repulsion terms are added, ``neg_random_weight * mean exp(-5 ||z - roll(z, 1)||)`` (random
  in-batch pairs) and ``neg_neighbour_weight * mean exp(-5 ||z_t - z_{t+1}||)`` (temporal
  neighbours, valid transitions only);
* ``target``: targets come from an EMA target encoder (rate ``tau``; SPR/BYOL style), no
  repulsion;
* ``none``: online targets with gradient and nothing else (collapses; an ablation).

Optional heads (weight 0 = off): ``reward_weight`` * MSE of a reward head R([z, a]) -> r_t
(on rollout latents in kstep mode); ``inverse_weight`` * inverse dynamics I([z_t, z_{t+1}]) ->
a_t (MSE for Box actions, cross-entropy for Discrete).

Normalisation: every term is a mean over the (window, step) pairs whose mask is 1 (with all
steps valid this is the reference's plain batch mean). Gradient routing: end to end, as the
paper (``paper_detach_rl=False``).

Loss weights: upstream weights its terms against the Q loss, [pos, negN, negR, Q] =
[1e-2, 0.1, 0.1, 1] for gamma_pred = 0; here ``pred_weight`` (1e-2) and the two repulsion
weights (0.1) keep those ratios, and the objective's ``weight`` scales the whole loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import nn

from rlaux.encoders import ACTIVATIONS, mlp
from rlaux.objectives.base import AuxObjective, ObjectiveConfig, register_objective
from rlaux.objectives.common import (
    action_dim,
    action_features,
    encode,
    is_discrete,
    make_projection,
    mask_steps,
    masked_mean,
)
from rlaux.objectives.targets import TARGET_INITS, Target, check_choice

MODES = ("next", "kstep", "bootstrapped")
DISTANCES = ("mse", "cosine")
COLLAPSE = ("repulsion", "target", "none")


@dataclass
class PredictiveConfig(ObjectiveConfig):
    """Options of ``aux=predictive`` (defaults: auxrl's gridworld setting with gamma_pred = 0).

    Attributes:
        mode: next | kstep | bootstrapped (module docstring).
        horizon: rollout length K of ``kstep`` (ignored by the other modes: next reads 1
            transition, bootstrapped 2).
        gamma_pred: bootstrap discount of ``bootstrapped`` (paper sweeps 0.25, 0.5, 0.8).
        distance: mse | cosine.
        collapse: repulsion | target | none.
        tau: EMA rate of the target encoder (``collapse=target``; SPR 0.01).
        target_init: copy | random (initialisation of the EMA target).
        pred_weight: weight of the prediction term.
        neg_random_weight / neg_neighbour_weight: repulsion weights (``collapse=repulsion``).
        repulsion_scale: the 5 in exp(-5 * distance).
        hidden: hidden widths of the transition MLP and of the optional heads (auxrl: [16]).
        activation: their activation (auxrl: relu).
        input_activation: apply the activation to the model's input first, as auxrl does.
        reward_weight: weight of the reward head's MSE (0 = no reward head).
        inverse_weight: weight of the inverse-dynamics loss (0 = no inverse head).
        proj_dim: null = auto (project conv features to 50), 0 = never, > 0 = that size.
    """

    mode: str = "next"
    horizon: int = 5
    gamma_pred: float = 0.5
    distance: str = "mse"
    collapse: str = "repulsion"
    tau: float = 0.01
    target_init: str = "copy"
    pred_weight: float = 1e-2
    neg_random_weight: float = 0.1
    neg_neighbour_weight: float = 0.1
    repulsion_scale: float = 5.0
    hidden: list[int] = field(default_factory=lambda: [16])
    activation: str = "relu"
    input_activation: bool = True
    reward_weight: float = 0.0
    inverse_weight: float = 0.0
    proj_dim: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("aux.predictive.mode", self.mode, MODES)
        check_choice("aux.predictive.distance", self.distance, DISTANCES)
        check_choice("aux.predictive.collapse", self.collapse, COLLAPSE)
        check_choice("aux.predictive.target_init", self.target_init, TARGET_INITS)
        check_choice("aux.predictive.activation", self.activation, tuple(ACTIVATIONS))
        if int(self.horizon) < 1:
            raise ValueError(f"aux.predictive.horizon={self.horizon} must be an integer >= 1")
        if not 0.0 < float(self.tau) <= 1.0:
            raise ValueError(f"aux.predictive.tau={self.tau} must be in (0, 1]")


class ResidualTransition(nn.Module):
    """T(z, a) = z + MLP([act(z), a]) (auxrl's residual transition model)."""

    def __init__(self, latent: int, a_dim: int, hidden: list[int], activation: str, input_activation: bool) -> None:
        super().__init__()
        self.pre = ACTIVATIONS[activation]() if input_activation else nn.Identity()
        self.delta = mlp(latent + a_dim, hidden, latent, activation)

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return z + self.delta(self.pre(torch.cat([z, a], dim=-1)))


@register_objective
class PredictiveObjective(AuxObjective):
    """Latent prediction with repulsion / EMA target (see the module docstring)."""

    name = "predictive"
    config_class = PredictiveConfig
    paper_detach_rl = False
    renamed_state_keys = {"target_encoder.": "target.encoder.", "target_proj.": "target.head."}
    cfg: PredictiveConfig

    def __init__(self, cfg: PredictiveConfig, feature_dim: int, obs_space: gym.Space, action_space: gym.Space) -> None:
        super().__init__(cfg, feature_dim, obs_space, action_space)
        self.obs_ndim = len(obs_space.shape)
        self.discrete = is_discrete(action_space)
        self.proj, latent = make_projection(feature_dim, cfg.proj_dim)
        a_dim = action_dim(action_space)
        hidden = [int(w) for w in cfg.hidden]
        self.transition = ResidualTransition(latent, a_dim, hidden, cfg.activation, bool(cfg.input_activation))
        self.reward_head = mlp(latent + a_dim, hidden, 1, cfg.activation) if cfg.reward_weight > 0 else None
        self.inverse_head = mlp(2 * latent, hidden, a_dim, cfg.activation) if cfg.inverse_weight > 0 else None
        # collapse=target: an EMA copy; otherwise the targets are the online latents of the same pass
        self.target = Target("ema" if cfg.collapse == "target" else "online", tau=cfg.tau, init=cfg.target_init,
                             obs_ndim=self.obs_ndim, head=self.proj, encoder_grad=bool(cfg.encoder_grad))

    @property
    def horizon(self) -> int:
        return {"next": 1, "bootstrapped": 2, "kstep": int(self.cfg.horizon)}[self.cfg.mode]

    # ------------------------------------------------------------------ pieces
    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample distance [...] between latents [..., D]."""
        if self.cfg.distance == "mse":
            return ((pred - target) ** 2).mean(-1)
        return 2.0 - 2.0 * F.cosine_similarity(pred, target, dim=-1, eps=1e-8)

    def repel(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """exp(-scale * ||a - b||_2) per sample."""
        return torch.exp(-float(self.cfg.repulsion_scale) * torch.linalg.vector_norm(a - b, dim=-1))

    def latents(self, batch, encoder: nn.Module, T: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(online z_t [B, D] (or all online latents [B, T+1, D] when needed), targets [B, T, D])."""
        grad = bool(self.cfg.encoder_grad)
        obs = batch.obs[:, : T + 1]
        need_all_online = self.cfg.collapse != "target" or self.inverse_head is not None
        online = self.proj(encode(encoder, obs if need_all_online else obs[:, :1], self.obs_ndim, grad=grad))
        if self.target.kind == "ema":
            targets = self.target(obs[:, 1:], encoder)
        else:
            targets = online[:, 1:]
        return online, targets

    # ------------------------------------------------------------------ loss
    def loss(self, batch, encoder: nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.cfg
        T = self.horizon
        mask = batch.mask[:, :T]
        actions = mask_steps(action_features(batch.action[:, :T], self.action_space), mask)  # [B, T, A]
        online, targets = self.latents(batch, encoder, T)
        z0 = online[:, 0]
        metrics: dict[str, torch.Tensor] = {}

        if cfg.mode == "kstep":
            preds, inputs, z = [], [], z0
            for k in range(T):  # open-loop rollout
                inputs.append(z)
                z = self.transition(z, actions[:, k])
                preds.append(z)
            pred = torch.stack(preds, 1)  # [B, T, D]
            pred_loss = masked_mean(self.distance(pred, targets), mask)
            reward_latents = torch.stack(inputs, 1)
        else:
            pred = self.transition(z0, actions[:, 0])
            target = targets[:, 0]
            if cfg.mode == "bootstrapped":
                with torch.no_grad():
                    boot = self.transition(targets[:, 0], actions[:, 1])
                target = target + float(cfg.gamma_pred) * mask[:, 1:2] * boot.detach()
            pred_loss = masked_mean(self.distance(pred, target), mask[:, 0])
            reward_latents = z0[:, None]
        loss = float(cfg.pred_weight) * pred_loss
        metrics["pred_loss"] = pred_loss.detach()

        if cfg.collapse == "repulsion":
            steps = online.shape[1] - 1  # consecutive online latents available
            neg_random = self.repel(z0, torch.roll(z0, 1, dims=0)).mean()
            neg_neighbour = masked_mean(self.repel(online[:, :-1], online[:, 1:]), mask[:, :steps])
            loss = loss + float(cfg.neg_random_weight) * neg_random + float(cfg.neg_neighbour_weight) * neg_neighbour
            metrics["neg_random"] = neg_random.detach()
            metrics["neg_neighbour"] = neg_neighbour.detach()

        if self.reward_head is not None:
            n = reward_latents.shape[1]
            rewards = mask_steps(batch.reward[:, :n].float(), mask[:, :n])
            r_hat = self.reward_head(torch.cat([reward_latents, actions[:, :n]], -1)).squeeze(-1)
            reward_loss = masked_mean((r_hat - rewards) ** 2, mask[:, :n])
            loss = loss + float(cfg.reward_weight) * reward_loss
            metrics["reward_loss"] = reward_loss.detach()

        if self.inverse_head is not None:
            steps = online.shape[1] - 1
            logits = self.inverse_head(torch.cat([online[:, :-1], online[:, 1:]], -1))  # [B, steps, A]
            if self.discrete:
                a = torch.where(mask[:, :steps] > 0, batch.action[:, :steps].long(), 0)
                per = F.cross_entropy(logits.flatten(0, 1), a.flatten(), reduction="none").view_as(a).float()
            else:
                per = ((logits - actions[:, :steps]) ** 2).mean(-1)
            inverse_loss = masked_mean(per, mask[:, :steps])
            loss = loss + float(cfg.inverse_weight) * inverse_loss
            metrics["inverse_loss"] = inverse_loss.detach()
        return loss, metrics
