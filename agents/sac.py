"""Soft Actor-Critic (Haarnoja et al. 2018, with learned temperature) on rlaux's shared encoder.

Networks: ``encoder`` (shared with the aux objectives) -> per-network trunk
(:func:`rlaux.encoders.head_trunk`: identity for a state encoder's latent and for NatureCNN,
DrQ-v2's Linear + LayerNorm + Tanh for DrQ conv features) -> a
squashed-Gaussian actor and E twin critics evaluated as one batched ensemble
(:class:`agents.networks.QEnsemble`). An EMA copy of the critic gives the targets.

One update on a :class:`~rlaux.types.WindowBatch` (transition 0 of each window, n-step return):

1. aux step (separate mode) -- see :mod:`agents.offpolicy` for the gradient routing;
2. critic: ``y = R^(n) + gamma^(m) [min_e Qbar_e(z', a') - alpha log pi(a'|z')]`` with
   ``z' = encoder(o_{t+m})`` from the online encoder under no_grad and ``a' ~ pi(.|z')``;
   loss ``sum_e mean (Q_e(z, a) - y)^2`` (plus the aux loss in joint mode);
3. actor and temperature (one optimiser, one backward): ``mean(alpha log pi(a|z) - min_e Q_e(z, a))``
   on detached features with frozen critic weights, and
   ``-mean(log_alpha (log pi + target_entropy))`` with ``target_entropy = -|A|`` by default;
4. ``Qbar <- lerp(Qbar, Q, tau)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from agents.base import register_agent
from agents.config import ActorCriticConfig, EncoderConfig, FieldRules
from agents.networks import Critic, QEnsemble, SquashedGaussianActor
from agents.offpolicy import ActorCriticAgent
from rlaux.encoders import head_trunk
from rlaux.types import WindowBatch


@dataclass
class SACConfig(ActorCriticConfig):
    """``agent=sac`` (preset: ``configs/agent/sac.yaml``; the shared keys: :class:`ActorCriticConfig`)."""

    name: str = "sac"
    alpha_lr: float = 3e-4  #: Adam learning rate of the temperature
    autotune_alpha: bool = True  #: learn the temperature (false: fixed at alpha_init)
    alpha_init: float = 1.0  #: initial temperature
    target_entropy: float | None = None  #: entropy target of the temperature loss; null: -|A|
    log_std_min: float = -5.0  #: the policy's log std is squashed into [log_std_min, log_std_max]
    log_std_max: float = 2.0  #: upper end of the policy's log std
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(latent_dim=50, hidden=[], activation="elu"))

    def validate(self, rules: FieldRules) -> None:
        super().validate(rules)
        rules.number("alpha_lr", 0.0, low_open=True)
        rules.number("alpha_init", 0.0, low_open=True)
        rules.flag("autotune_alpha")
        rules.number("target_entropy", optional=True, note=" (null: -|A|)")
        rules.number("log_std_max")
        rules.number("log_std_min")
        if not self.log_std_min < self.log_std_max:
            raise rules.fail("log_std_min", f"< log_std_max={self.log_std_max}")


@register_agent
class SACAgent(ActorCriticAgent):
    """SAC with a learned temperature, a shared encoder and auxiliary objectives
    (arguments: :class:`agents.base.Agent`; actions: Box in [-1, 1])."""

    name = "sac"
    config_class = SACConfig
    cfg: SACConfig
    discrete_actions = False

    def build_actor_critic(self) -> None:
        cfg = self.cfg
        act_dim = int(np.prod(self.action_space.shape))
        actor_trunk, feat = head_trunk(self.encoder, cfg.trunk_dim)
        self.actor = SquashedGaussianActor(actor_trunk, feat, act_dim, cfg.hidden, cfg.activation,
                                           cfg.log_std_min, cfg.log_std_max)
        critic_trunk, feat = head_trunk(self.encoder, cfg.trunk_dim)
        self.critic = Critic(critic_trunk, QEnsemble(feat, act_dim, cfg.hidden, cfg.num_critics, cfg.activation,
                                                     init="default"))
        log_alpha = torch.tensor(math.log(cfg.alpha_init))
        if cfg.autotune_alpha:
            self.log_alpha = nn.Parameter(log_alpha)
        else:
            self.register_buffer("log_alpha", log_alpha)
        self.target_entropy = float(-act_dim if cfg.target_entropy is None else cfg.target_entropy)

    def extra_actor_groups(self) -> list[dict[str, object]]:
        return [{"params": [self.log_alpha], "lr": self.cfg.alpha_lr}] if self.cfg.autotune_alpha else []

    @torch.no_grad()
    def act(self, obs: torch.Tensor, step: int, eval_mode: bool = False) -> torch.Tensor:
        """tanh(mean) in eval mode, a sample from the policy otherwise; [N, *action_shape] in [-1, 1]."""
        z = self.encoder(obs)
        action = self.actor.mean_action(z) if eval_mode else self.actor(z)[0]
        return action.reshape(obs.shape[0], *self.action_space.shape)

    def update(self, batch: WindowBatch, step: int) -> dict[str, torch.Tensor]:
        """One gradient update (aux -> critic -> actor & temperature -> target EMA)."""
        metrics = self.aux_step(batch)
        obs = self.augmented(batch.obs[:, 0])
        next_obs = self.augmented(batch.nstep_next_obs)
        action = batch.action[:, 0].flatten(1)
        alpha = self.log_alpha.detach().exp()

        z = self.rl_features(obs)
        with torch.no_grad():
            z_next = self.encoder(next_obs)
            next_action, next_log_prob = self.actor(z_next)
            q_next = self.critic_target(z_next, next_action).min(dim=0).values
            target = batch.nstep_reward + batch.nstep_discount * (q_next - alpha * next_log_prob)
        q = self.critic(z, action)
        critic_loss = (q - target).pow(2).mean(dim=1).sum()
        grad_norm, aux_metrics = self.optimizer_step(self.critic_opt, critic_loss, self.critic_params, batch)
        metrics.update(aux_metrics)

        z_actor = z.detach()
        pi_action, log_prob = self.actor(z_actor)
        q_pi = self.critic(z_actor, pi_action, frozen=True).min(dim=0).values
        actor_loss = (alpha * log_prob - q_pi).mean()
        alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
        self.optimizer_step(self.actor_opt, actor_loss + alpha_loss if self.cfg.autotune_alpha else actor_loss,
                            self.actor_params)
        self.update_critic_target()

        metrics.update({
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "alpha": alpha,
            "alpha_loss": alpha_loss.detach(),
            "entropy": -log_prob.detach().mean(),
            "q": q.detach().mean(),
            "target_q": target.mean(),
        })
        if grad_norm is not None:
            metrics["critic_grad_norm"] = grad_norm
        return metrics
