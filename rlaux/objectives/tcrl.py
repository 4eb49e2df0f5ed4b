"""TCRL: temporal consistency of an open-loop latent rollout (Zhao et al. 2023, ``zhaoyi11/tcrl``).

For a window (o_t, a_{t..t+H-1}, r_{t..t+H-1}, o_{t+1..t+H})::

    z_0 = e(o_t)                                        # online encoder (+ optional projection)
    z_{k+1} = d_z([z_k, a_{t+k}]),  r_k = d_r([z_k, a_{t+k}])   # open loop, no re-encoding
    zbar_{k+1} = e_target(o_{t+k+1})                    # EMA target encoder, no gradient
    L_state  = sum_k rho^k * mean_batch[2 - 2 cos(z_{k+1}, zbar_{k+1})]
    L_reward = sum_k rho^k * mean_batch[(r_k - r_{t+k})^2]
    L = (c_s * min(L_state, 1e4) + c_r * min(L_reward, 1e4)) / H

``d_z`` and ``d_r`` are two separate MLPs (ELU, 512-512, orthogonal init) on concat[z, a].

Implementation notes:

* The upstream code scales the *gradient* by 1/H with a backward hook on the total loss; here
  the loss itself is multiplied by 1/H, which gives exactly the same gradient. The reported
  loss is therefore the upstream value / H; ``state_loss`` and ``reward_loss`` are unscaled.
* Masks: upstream samples never cross episode ends; here step k counts only where
  ``mask[:, k] == 1`` and each ``mean_batch`` is the mean over the windows valid at step k
  (identical to upstream when every step is valid). Actions and rewards at masked steps are
  zeroed before use, so whatever a masked step holds cannot change the loss.
* Only the first H+1 observations of a (possibly longer) window are read. All H target
  observations go through the target encoder in one batched forward pass.
* Target network (``target``): ``ema`` (TCRL, tau 0.005), ``stopgrad`` (online encoder under
  no_grad, as TD-MPC2) or ``online`` (with gradient). ``target_init``: TCRL's code
  initialises its target encoder *independently at random* (not a copy) and lets the EMA pull
  it in; rlaux defaults to ``copy`` (probably what was intended, and what TD-MPC/SPR do);
  ``random`` reproduces upstream. The EMA copy lives in this objective.
* Pixel features (> 1024, e.g. 39200 for DrQ) are projected to 50 dims (Linear + LayerNorm +
  Tanh) by default (``proj_dim: null``): TCRL itself is a state-based method whose encoder
  outputs a 50-d latent. The projection is part of the "encoder" for the target (EMA'd too).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import nn

from rlaux.encoders import ACTIVATIONS, mlp, orthogonal_init, run_sequential
from rlaux.objectives.base import AuxObjective, ObjectiveConfig, register_objective
from rlaux.objectives.common import (
    action_dim,
    action_features,
    encode,
    make_projection,
    mask_steps,
)
from rlaux.objectives.targets import TARGET_INITS, TARGET_KINDS, Target, check_choice


@dataclass
class TCRLConfig(ObjectiveConfig):
    """Options of ``aux=tcrl`` (defaults: TCRL's ``cfgs/default.yaml``).

    Attributes:
        horizon: H, rollout length (transitions).
        rho: per-step weight rho^k.
        tau: EMA rate of the target encoder (``target=ema``).
        hidden: widths of the dynamics and reward MLPs.
        activation: their activation (elu, relu, tanh, gelu).
        state_coef: c_s, weight of the latent-consistency term.
        reward_coef: c_r, weight of the reward-prediction term (0 disables it).
        target: ema | stopgrad | online (see the module docstring).
        target_init: copy | random (initialisation of the EMA target).
        loss_clamp: upper clamp of each summed term (1e4 as upstream).
        proj_dim: null = auto (project conv features to 50), 0 = never, > 0 = that size.
    """

    horizon: int = 5
    rho: float = 0.9
    tau: float = 0.005
    hidden: list[int] = field(default_factory=lambda: [512, 512])
    activation: str = "elu"
    state_coef: float = 1.0
    reward_coef: float = 1.0
    target: str = "ema"
    target_init: str = "copy"
    loss_clamp: float = 1e4
    proj_dim: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if int(self.horizon) < 1:
            raise ValueError(f"aux.tcrl.horizon={self.horizon} must be an integer >= 1")
        if not 0.0 < float(self.tau) <= 1.0:
            raise ValueError(f"aux.tcrl.tau={self.tau} must be in (0, 1]")
        check_choice("aux.tcrl.target", self.target, TARGET_KINDS)
        check_choice("aux.tcrl.target_init", self.target_init, TARGET_INITS)
        check_choice("aux.tcrl.activation", self.activation, tuple(ACTIVATIONS))


@register_objective
class TCRLObjective(AuxObjective):
    """TCRL's latent-consistency + reward-prediction loss (see the module docstring).

    Gradient routing (TCRL's recipe, ``paper_detach_rl=True``): the encoder is trained by
    this loss only; the RL losses read detached features.
    """

    name = "tcrl"
    config_class = TCRLConfig
    paper_detach_rl = True
    renamed_state_keys = {"target_encoder.": "target.encoder.", "target_proj.": "target.head."}
    cfg: TCRLConfig

    def __init__(self, cfg: TCRLConfig, feature_dim: int, obs_space: gym.Space, action_space: gym.Space) -> None:
        super().__init__(cfg, feature_dim, obs_space, action_space)
        self.obs_ndim = len(obs_space.shape)
        self.proj, latent = make_projection(feature_dim, cfg.proj_dim)
        in_dim = latent + action_dim(action_space)
        hidden = [int(w) for w in cfg.hidden]
        self.dynamics = mlp(in_dim, hidden, latent, cfg.activation)
        self.reward_head = mlp(in_dim, hidden, 1, cfg.activation)
        orthogonal_init(self.dynamics)
        orthogonal_init(self.reward_head)
        self.register_buffer("rho_k", float(cfg.rho) ** torch.arange(int(cfg.horizon), dtype=torch.float32),
                             persistent=False)
        self.target = Target(cfg.target, tau=cfg.tau, init=cfg.target_init, obs_ndim=self.obs_ndim, head=self.proj,
                             encoder_grad=bool(cfg.encoder_grad))

    @property
    def horizon(self) -> int:
        return int(self.cfg.horizon)

    def loss(self, batch, encoder: nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        H = self.horizon
        mask = batch.mask[:, :H]
        valid = mask > 0
        actions = mask_steps(action_features(batch.action[:, :H], self.action_space), mask)
        rewards = mask_steps(batch.reward[:, :H].float(), mask)

        z = self.proj(encode(encoder, batch.obs[:, 0], self.obs_ndim, grad=bool(self.cfg.encoder_grad)))
        targets = self.target(batch.obs[:, 1 : H + 1], encoder)  # [B, H, D], one forward pass

        inputs, preds = [], []
        for k in range(H):  # open-loop rollout (sequential by nature)
            za = torch.cat([z, actions[:, k]], dim=-1)
            z = run_sequential(self.dynamics, za)
            inputs.append(za)
            preds.append(z)
        pred = torch.stack(preds, dim=1)  # [B, H, D]
        reward_in = torch.stack(inputs, dim=1).flatten(0, 1)  # [B*H, D]: one batched pass, 2-D products
        reward_pred = run_sequential(self.reward_head, reward_in).view(pred.shape[0], H)  # [B, H]

        cos = F.cosine_similarity(pred, targets, dim=-1, eps=1e-8)  # [B, H]
        zero = torch.zeros((), device=cos.device)
        n_valid = valid.sum(0).clamp(min=1)  # windows valid at each step
        state_k = torch.where(valid, 2.0 - 2.0 * cos, zero).sum(0) / n_valid  # [H]
        reward_k = torch.where(valid, (reward_pred - rewards) ** 2, zero).sum(0) / n_valid
        state_loss = (self.rho_k[:H] * state_k).sum()
        reward_loss = (self.rho_k[:H] * reward_k).sum()
        clamp = float(self.cfg.loss_clamp)
        total = (float(self.cfg.state_coef) * state_loss.clamp(max=clamp)
                 + float(self.cfg.reward_coef) * reward_loss.clamp(max=clamp))
        loss = total / H  # == upstream's backward hook grad * (1/H)
        metrics = {
            "state_loss": state_loss.detach(),
            "reward_loss": reward_loss.detach(),
            "latent_cos": (torch.where(valid, cos, zero).sum() / valid.sum().clamp(min=1)).detach(),
        }
        return loss, metrics
