"""Deterministic twin-critic actor-critic: the DrQ-v2 / TCRL recipe ("DDPG" in rlaux).

Networks: ``encoder`` (shared with the aux objectives) -> per-network trunk (identity for a
state encoder's latent as TCRL; DrQ-v2's Linear + LayerNorm + Tanh for conv features) ->
a deterministic tanh actor and E twin critics (one batched ensemble); in both, the first
hidden layer is Linear + LayerNorm + Tanh (``layernorm_tanh``; false gives plain TD3-style MLPs) and
the others use ``activation`` (TCRL: ELU).

Exploration: Gaussian noise with a standard deviation that falls linearly from ``std_init``
to ``std_final`` over ``std_steps`` **agent steps** (DrQ-v2 counts frames; TCRL indexes the
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

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents.base import register_agent
from agents.networks import Critic, DeterministicActor, QEnsemble, clipped_noise_action, ema_, obs_trunk
from agents.offpolicy import ActorCriticAgent, ConfigChecker, linear_schedule
from rlaux.encoders import ACTIVATIONS
from rlaux.types import WindowBatch


def check_ddpg_config(cfg: Any) -> None:
    """DDPG-specific keys (the shared ones are checked by :func:`agents.offpolicy.check_common_config`)."""
    check = ConfigChecker(cfg)
    check("tau", lambda v: 0.0 < float(v) <= 1.0, "in (0, 1]")
    check("std_init", lambda v: float(v) >= 0, ">= 0")
    check("std_final", lambda v: float(v) >= 0, ">= 0")
    check("std_steps", lambda v: int(v) == v and v >= 0, "an integer >= 0")
    check("std_clip", lambda v: float(v) > 0, "> 0")
    check("num_critics", lambda v: int(v) == v and v >= 1, "an integer >= 1")
    check("hidden", lambda v: len(v) >= 1 and all(int(w) >= 1 for w in v), "a non-empty list of integers >= 1")
    check("activation", lambda v: v in ACTIVATIONS, f"one of {', '.join(ACTIVATIONS)}")
    check("trunk_dim", lambda v: int(v) >= 1, "an integer >= 1")
    check("layernorm_tanh", lambda v: v in (True, False), "true or false")


@register_agent
class DDPGAgent(ActorCriticAgent):
    """DrQ-v2/TCRL deterministic actor-critic with n-step twin critics and scheduled noise.

    Args:
        cfg: the ``agent`` config node (``configs/agent/ddpg.yaml``).
        obs_space, action_space: one env's spaces (actions: Box in [-1, 1]).
        aux_cfg: the ``aux`` config node ({objective name: options}); None/empty for none.
        device: where the networks live.
    """

    name = "ddpg"
    discrete_actions = False

    def __init__(self, cfg: Any, obs_space: gym.Space, action_space: gym.Space, aux_cfg: Any, device: torch.device) -> None:
        self.check_action_space(action_space)
        check_ddpg_config(cfg)
        super().__init__(cfg, obs_space, action_space, aux_cfg, device)
        act_dim = int(np.prod(action_space.shape))
        hidden = [int(w) for w in cfg.hidden]
        activation = str(cfg.activation)

        actor_trunk, feat = obs_trunk(self.encoder, int(cfg.trunk_dim))
        layernorm_tanh = bool(cfg.layernorm_tanh)
        self.actor = DeterministicActor(actor_trunk, feat, act_dim, hidden, activation, layernorm_tanh)
        critic_trunk, feat = obs_trunk(self.encoder, int(cfg.trunk_dim))
        self.critic = Critic(critic_trunk, QEnsemble(feat, act_dim, hidden, int(cfg.num_critics), activation,
                                                     first_layernorm_tanh=layernorm_tanh, init="orthogonal"))
        self.tau = float(cfg.tau)
        self.std_clip = float(cfg.std_clip)
        self.finish_actor_critic(device, float(cfg.lr))
        # plain attributes: DictConfig reads are slow, and these are read at every act/update
        self._std_schedule = (float(cfg.std_init), float(cfg.std_final), int(cfg.std_steps))

    def stddev(self, step: int) -> float:
        """Exploration std at agent step ``step``: linear(std_init, std_final, std_steps)."""
        return linear_schedule(*self._std_schedule, step)

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
            next_action = clipped_noise_action(self.actor(z_next), std, self.std_clip)
            q_next = self.critic_target(z_next, next_action).min(dim=0).values
            target = batch.nstep_reward + batch.nstep_discount * q_next
        q = self.critic(z, action)
        critic_loss = (q - target).pow(2).mean(dim=1).sum()
        loss = self.add_aux_loss(critic_loss, batch, metrics)
        grad_norm = self.step_optimizer(self.critic_opt, loss, self.critic_params)
        if self.aux.joint:
            self.aux.update_targets(self.encoder)

        z_actor = z.detach()
        pi_action = clipped_noise_action(self.actor(z_actor), std, self.std_clip)
        actor_loss = -self.critic(z_actor, pi_action, frozen=True).min(dim=0).values.mean()
        self.step_optimizer(self.actor_opt, actor_loss, self.actor_params)
        ema_(*self._ema_pairs, self.tau)

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
