"""Soft Actor-Critic (Haarnoja et al. 2018, with learned temperature) on rlaux's shared encoder.

Networks: ``encoder`` (shared with the aux objectives) -> per-network trunk (identity for a
state encoder's latent, DrQ-v2's Linear + LayerNorm + Tanh for conv features) -> a
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
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from agents.base import register_agent
from agents.networks import Critic, QEnsemble, SquashedGaussianActor, ema_, obs_trunk
from agents.offpolicy import ActorCriticAgent, ConfigChecker
from rlaux.encoders import ACTIVATIONS
from rlaux.types import WindowBatch


def check_sac_config(cfg: Any) -> None:
    """SAC-specific keys (the shared ones are checked by :func:`agents.offpolicy.check_common_config`)."""
    check = ConfigChecker(cfg)
    check("tau", lambda v: 0.0 < float(v) <= 1.0, "in (0, 1]")
    check("alpha_lr", lambda v: float(v) > 0, "> 0")
    check("alpha_init", lambda v: float(v) > 0, "> 0")
    check("autotune_alpha", lambda v: v in (True, False), "true or false")
    check("target_entropy", lambda v: v is None or math.isfinite(float(v)), "null (= -|A|) or a number")
    check("num_critics", lambda v: int(v) == v and v >= 1, "an integer >= 1")
    check("hidden", lambda v: len(v) >= 1 and all(int(w) >= 1 for w in v), "a non-empty list of integers >= 1")
    check("activation", lambda v: v in ACTIVATIONS, f"one of {', '.join(ACTIVATIONS)}")
    check("trunk_dim", lambda v: int(v) >= 1, "an integer >= 1")
    check("log_std_min", lambda v: float(v) < float(cfg.log_std_max), f"< log_std_max={cfg.log_std_max}")


@register_agent
class SACAgent(ActorCriticAgent):
    """SAC with a learned temperature, a shared encoder and auxiliary objectives.

    Args:
        cfg: the ``agent`` config node (``configs/agent/sac.yaml``).
        obs_space, action_space: one env's spaces (actions: Box in [-1, 1]).
        aux_cfg: the ``aux`` config node ({objective name: options}); None/empty for none.
        device: where the networks live.
    """

    name = "sac"
    discrete_actions = False

    def __init__(self, cfg: Any, obs_space: gym.Space, action_space: gym.Space, aux_cfg: Any, device: torch.device) -> None:
        self.check_action_space(action_space)
        check_sac_config(cfg)
        super().__init__(cfg, obs_space, action_space, aux_cfg, device)
        act_dim = int(np.prod(action_space.shape))
        hidden = [int(w) for w in cfg.hidden]
        activation = str(cfg.activation)

        actor_trunk, feat = obs_trunk(self.encoder, int(cfg.trunk_dim))
        self.actor = SquashedGaussianActor(actor_trunk, feat, act_dim, hidden, activation,
                                           float(cfg.log_std_min), float(cfg.log_std_max))
        critic_trunk, feat = obs_trunk(self.encoder, int(cfg.trunk_dim))
        self.critic = Critic(critic_trunk, QEnsemble(feat, act_dim, hidden, int(cfg.num_critics), activation, init="default"))
        log_alpha = torch.tensor(math.log(float(cfg.alpha_init)))
        if cfg.autotune_alpha:
            self.log_alpha = nn.Parameter(log_alpha)
        else:
            self.register_buffer("log_alpha", log_alpha)
        self.target_entropy = float(-act_dim if cfg.target_entropy is None else cfg.target_entropy)
        self.tau = float(cfg.tau)
        alpha_group = [{"params": [self.log_alpha], "lr": float(cfg.alpha_lr)}] if cfg.autotune_alpha else []
        self.finish_actor_critic(device, float(cfg.lr), alpha_group)
        self.autotune_alpha = bool(cfg.autotune_alpha)  # plain attribute: DictConfig reads are slow per update

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
        loss = self.add_aux_loss(critic_loss, batch, metrics)
        grad_norm = self.step_optimizer(self.critic_opt, loss, self.critic_params)
        if self.aux.joint:
            self.aux.update_targets(self.encoder)

        z_actor = z.detach()
        pi_action, log_prob = self.actor(z_actor)
        q_pi = self.critic(z_actor, pi_action, frozen=True).min(dim=0).values
        actor_loss = (alpha * log_prob - q_pi).mean()
        alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
        self.step_optimizer(self.actor_opt, actor_loss + alpha_loss if self.autotune_alpha else actor_loss,
                            self.actor_params)
        ema_(*self._ema_pairs, self.tau)

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
