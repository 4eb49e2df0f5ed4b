"""Deterministic twin-critic actor-critic: the DrQ-v2 / TCRL recipe ("DDPG" in rlaux).

Networks: ``encoder`` (shared with the aux objectives) -> per-network trunk
(:func:`rlaux.encoders.head_trunk`: identity for a state encoder's latent as TCRL, and for
NatureCNN; DrQ-v2's Linear + LayerNorm + Tanh for DrQ conv features) ->
a deterministic tanh actor and E twin critics (one batched ensemble); in both, the first
hidden layer is Linear + LayerNorm + Tanh (``layernorm_tanh``; false gives plain TD3-style MLPs) and
the others use ``activation`` (TCRL: ELU).

Exploration: Gaussian noise with a standard deviation that falls linearly from ``std_init``
to ``std_final`` over ``std_steps`` **agent steps** (as DrQ-v2/TACO, whose ``global_step`` counts agent steps: 100k/500k/2M by
task tier = 200k/1M/4M frames at action repeat 2; TCRL indexes the
same schedule by episode, e.g. 1.0 -> 0.1 over 50 episodes = 25,000 agent steps at 500 agent
steps per episode). Acting adds unclipped noise (clamped to [-1, 1]), as DrQ-v2; target
smoothing and the actor loss clip the noise to +-``std_clip``.

One update on a :class:`~rlaux.types.WindowBatch` (transition 0 of each window, n-step return):

1. aux step (separate mode) -- see :mod:`agents.offpolicy` for the gradient routing;
2. critic: ``y = R^(n) + gamma^(m) min_e Qbar_e(z', mu(z') + clip(eps))`` with the online
   encoder (no_grad) on ``o_{t+m}``; loss ``sum_e mean (Q_e(z, a) - y)^2``;
3. actor: ``-mean min_e Q_e(z, mu(z) + clip(eps))`` on detached features, frozen critic;
4. ``Qbar <- lerp(Qbar, Q, tau)`` (TCRL: tau 0.005; DrQ-v2: 0.01).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from agents.base import register_agent
from agents.config import ActorCriticConfig, AuxTrainConfig, EncoderConfig, FieldRules
from agents.networks import Critic, DeterministicActor, QEnsemble, clipped_noise_action
from agents.offpolicy import ActorCriticAgent, linear_schedule
from rlaux.encoders import head_trunk
from rlaux.types import WindowBatch


@dataclass
class DDPGConfig(ActorCriticConfig):
    """``agent=ddpg`` (preset, with the TCRL/DrQ-v2 sources of each default: ``configs/agent/ddpg.yaml``;
    the shared keys: :class:`ActorCriticConfig`)."""

    name: str = "ddpg"
    batch_size: int = 512
    update_every: int = 2
    nstep: int = 3
    hidden: list[int] = field(default_factory=lambda: [512, 512])
    activation: str = "elu"  #: activation of the later hidden layers (the first: see layernorm_tanh)
    layernorm_tanh: bool = True  #: first actor/critic hidden layer Linear+LayerNorm+Tanh (false: Linear+activation)
    std_init: float = 1.0  #: exploration std: linear(std_init, std_final, std_steps), by agent step
    std_final: float = 0.1  #: exploration std from std_steps on
    std_steps: int = 25000  #: agent steps of the linear std decay
    std_clip: float = 0.3  #: noise clip of target smoothing and the actor loss
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(latent_dim=50, hidden=[512, 512],
                                                                         activation="elu"))
    aux: AuxTrainConfig = field(default_factory=lambda: AuxTrainConfig(weight_decay=1e-6))

    def validate(self, rules: FieldRules) -> None:
        super().validate(rules)
        rules.flag("layernorm_tanh")
        rules.number("std_init", 0.0)
        rules.number("std_final", 0.0)
        rules.integer("std_steps", 0)
        rules.number("std_clip", 0.0, low_open=True)


@register_agent
class DDPGAgent(ActorCriticAgent):
    """DrQ-v2/TCRL deterministic actor-critic with n-step twin critics and scheduled noise
    (arguments: :class:`agents.base.Agent`; actions: Box in [-1, 1])."""

    name = "ddpg"
    config_class = DDPGConfig
    cfg: DDPGConfig
    discrete_actions = False

    def build_actor_critic(self) -> None:
        cfg = self.cfg
        act_dim = int(np.prod(self.action_space.shape))
        actor_trunk, feat = head_trunk(self.encoder, cfg.trunk_dim)
        self.actor = DeterministicActor(actor_trunk, feat, act_dim, cfg.hidden, cfg.activation, cfg.layernorm_tanh)
        critic_trunk, feat = head_trunk(self.encoder, cfg.trunk_dim)
        self.critic = Critic(critic_trunk, QEnsemble(feat, act_dim, cfg.hidden, cfg.num_critics, cfg.activation,
                                                     first_layernorm_tanh=cfg.layernorm_tanh, init="orthogonal"))

    def stddev(self, step: int) -> float:
        """Exploration std at agent step ``step``: linear(std_init, std_final, std_steps)."""
        return linear_schedule(self.cfg.std_init, self.cfg.std_final, self.cfg.std_steps, step)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, step: int, eval_mode: bool = False) -> torch.Tensor:
        """mu(z) in eval mode; otherwise mu(z) + N(0, stddev(step)^2), clamped to [-1, 1]."""
        mu = self.actor(self.encoder(obs))
        if not eval_mode:
            mu = (mu + torch.randn_like(mu) * self.stddev(step)).clamp(-1.0, 1.0)
        return mu.reshape(obs.shape[0], *self.action_space.shape)

    def update(self, batch: WindowBatch, step: int) -> dict[str, torch.Tensor]:
        """One gradient update (aux -> critic -> actor -> target EMA)."""
        metrics = self.aux_step(batch)
        std = self.stddev(step)
        obs = self.augmented(batch.obs[:, 0])
        next_obs = self.augmented(batch.nstep_next_obs)
        action = batch.action[:, 0].flatten(1)

        z = self.rl_features(obs)
        with torch.no_grad():
            z_next = self.encoder(next_obs)
            next_action = clipped_noise_action(self.actor(z_next), std, self.cfg.std_clip)
            q_next = self.critic_target(z_next, next_action).min(dim=0).values
            target = batch.nstep_reward + batch.nstep_discount * q_next
        q = self.critic(z, action)
        critic_loss = (q - target).pow(2).mean(dim=1).sum()
        grad_norm, aux_metrics = self.optimizer_step(self.critic_opt, critic_loss, self.critic_params, batch)
        metrics.update(aux_metrics)

        z_actor = z.detach()
        pi_action = clipped_noise_action(self.actor(z_actor), std, self.cfg.std_clip)
        actor_loss = -self.critic(z_actor, pi_action, frozen=True).min(dim=0).values.mean()
        self.optimizer_step(self.actor_opt, actor_loss, self.actor_params)
        self.update_critic_target()

        metrics.update({
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "q": q.detach().mean(),
            "target_q": target.mean(),
            "stddev": torch.tensor(std),
        })
        if grad_norm is not None:
            metrics["critic_grad_norm"] = grad_norm
        return metrics
