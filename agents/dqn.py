"""DQN (Mnih et al. 2015) with double Q (van Hasselt et al. 2016), n-step returns, a target
network, an epsilon-greedy schedule and an optional dueling head (Wang et al. 2016), on
rlaux's shared encoder.

Network: ``encoder`` (shared with the aux objectives) -> trunk -> Q head. The trunk is the
activation for a state encoder's linear latent (so ``encoder.hidden=[256]``,
``latent_dim=256`` is a 256-256 ReLU MLP), identity for NatureCNN (already ReLU'd), and
DrQ-v2's Linear + LayerNorm + Tanh for DrQ conv features. The head is an MLP with
``head_hidden`` widths (one for Q, or one each for V and A when dueling:
``Q = V + A - mean_a A``).

Target network: a copy of encoder + trunk + head, moved towards the online network by
``lerp(tau)`` every ``target_update_every`` updates (``tau=1``: hard copy, as DQN).

One update on a :class:`~rlaux.types.WindowBatch` (transition 0, n-step return):
``y = R^(n) + gamma^(m) Qbar(o_{t+m}, argmax_a Q(o_{t+m}, a))`` (double Q; plain DQN takes
the argmax of Qbar), ``nstep_discount`` being 0 when the episode terminated; loss
Huber (smooth L1, as SB3/Dopamine) or MSE between ``Q(o_t, a_t)`` and ``y``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import nn

from agents.base import register_agent
from agents.networks import ema_, frozen_copy
from agents.offpolicy import ConfigChecker, OffPolicyAgent, linear_schedule, make_adam, unique_params
from rlaux.encoders import ACTIVATIONS, FlatEncoder, MLPEncoder, NatureCNN, mlp, orthogonal_init
from rlaux.types import WindowBatch


def check_dqn_config(cfg: Any) -> None:
    """DQN-specific keys (the shared ones are checked by :func:`agents.offpolicy.check_common_config`)."""
    check = ConfigChecker(cfg)
    check("tau", lambda v: 0.0 < float(v) <= 1.0, "in (0, 1]")
    check("target_update_every", lambda v: int(v) == v and v >= 1, "an integer >= 1 (updates)")
    check("double_q", lambda v: v in (True, False), "true or false")
    check("dueling", lambda v: v in (True, False), "true or false")
    check("loss", lambda v: v in ("huber", "mse"), "'huber' or 'mse'")
    check("eps_start", lambda v: 0.0 <= float(v) <= 1.0, "in [0, 1]")
    check("eps_end", lambda v: 0.0 <= float(v) <= 1.0, "in [0, 1]")
    check("eps_steps", lambda v: int(v) == v and v >= 0, "an integer >= 0")
    check("eval_epsilon", lambda v: 0.0 <= float(v) <= 1.0, "in [0, 1]")
    check("head_hidden", lambda v: all(int(w) >= 1 for w in v), "a list of integers >= 1")
    check("trunk_dim", lambda v: int(v) >= 1, "an integer >= 1")


class QHead(nn.Module):
    """Encoder features [B, F] -> Q-values [B, n_actions] (see the module docstring)."""

    def __init__(self, encoder: nn.Module, n_actions: int, hidden: Sequence[int], activation: str,
                 dueling: bool, trunk_dim: int) -> None:
        super().__init__()
        feat = int(encoder.out_dim)
        if isinstance(encoder, MLPEncoder):
            self.trunk: nn.Module = ACTIVATIONS[activation]()
        elif isinstance(encoder, (NatureCNN, FlatEncoder)):  # already non-linear / the raw state
            self.trunk = nn.Identity()
        else:
            self.trunk = nn.Sequential(nn.Linear(feat, trunk_dim), nn.LayerNorm(trunk_dim), nn.Tanh())
            orthogonal_init(self.trunk)
            feat = trunk_dim
        self.dueling = dueling
        if dueling:
            self.value = mlp(feat, list(hidden), 1, activation)
            self.advantage = mlp(feat, list(hidden), n_actions, activation)
        else:
            self.q = mlp(feat, list(hidden), n_actions, activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.trunk(z)
        if self.dueling:
            adv = self.advantage(h)
            return self.value(h) + adv - adv.mean(dim=1, keepdim=True)
        return self.q(h)


@register_agent
class DQNAgent(OffPolicyAgent):
    """Double DQN with n-step returns, a target network and epsilon-greedy exploration.

    Args:
        cfg: the ``agent`` config node (``configs/agent/dqn.yaml``).
        obs_space, action_space: one env's spaces (actions: Discrete).
        aux_cfg: the ``aux`` config node ({objective name: options}); None/empty for none.
        device: where the networks live.
    """

    name = "dqn"
    discrete_actions = True

    def __init__(self, cfg: Any, obs_space: gym.Space, action_space: gym.Space, aux_cfg: Any, device: torch.device) -> None:
        self.check_action_space(action_space)
        check_dqn_config(cfg)
        super().__init__(cfg, obs_space, action_space, aux_cfg, device)
        self.n_actions = int(action_space.n)
        self.head = QHead(self.encoder, self.n_actions, [int(w) for w in cfg.head_hidden],
                          str(cfg.encoder.activation), bool(cfg.dueling), int(cfg.trunk_dim))
        self.target_encoder = frozen_copy(self.encoder)
        self.target_head = frozen_copy(self.head)
        self.tau = float(cfg.tau)
        self.target_update_every = int(cfg.target_update_every)
        self.num_updates = 0  # checkpointed through get_extra_state (drives the target sync)
        self.to(device)

        self.q_params = unique_params(self.head.parameters(), self.encoder_params_for_rl())
        self.q_opt = make_adam(self.q_params, float(cfg.lr))

    # ------------------------------------------------------------------ state
    def get_extra_state(self) -> dict[str, int]:
        return {"num_updates": self.num_updates}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.num_updates = int(state["num_updates"])

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts: dict[str, torch.optim.Optimizer] = {"q": self.q_opt}
        if self.aux.optimizer is not None:
            opts["aux"] = self.aux.optimizer
        return opts

    def epsilon(self, step: int) -> float:
        """Exploration epsilon at agent step ``step``: linear(eps_start, eps_end, eps_steps)."""
        cfg = self.cfg
        return linear_schedule(float(cfg.eps_start), float(cfg.eps_end), int(cfg.eps_steps), step)

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Online Q-values [N, n_actions] (with gradient where the routing allows)."""
        return self.head(self.encoder(obs))

    @torch.no_grad()
    def act(self, obs: torch.Tensor, step: int, eval_mode: bool = False) -> torch.Tensor:
        """Epsilon-greedy int64 actions [N]: ``eval_epsilon`` in eval mode, else the schedule."""
        action = self.q_values(obs).argmax(dim=1)
        eps = float(self.cfg.eval_epsilon) if eval_mode else self.epsilon(step)
        if eps > 0:
            n = obs.shape[0]
            explore = torch.rand(n, device=action.device) < eps
            action = torch.where(explore, torch.randint(self.n_actions, (n,), device=action.device), action)
        return action

    def td_target(self, batch: WindowBatch, next_obs: torch.Tensor) -> torch.Tensor:
        """n-step (double) Q-learning target [B], without gradient."""
        with torch.no_grad():
            q_next_target = self.target_head(self.target_encoder(next_obs))
            if self.cfg.double_q:
                best = self.q_values(next_obs).argmax(dim=1, keepdim=True)
            else:
                best = q_next_target.argmax(dim=1, keepdim=True)
            next_value = q_next_target.gather(1, best).squeeze(1)
            return batch.nstep_reward + batch.nstep_discount * next_value

    def update(self, batch: WindowBatch, step: int) -> dict[str, torch.Tensor]:
        """One gradient update (aux -> Q -> target sync every ``target_update_every`` updates)."""
        metrics = self.aux_step(batch)
        obs = self.augmented(batch.obs[:, 0])
        next_obs = self.augmented(batch.nstep_next_obs)
        action = batch.action[:, 0].long()

        target = self.td_target(batch, next_obs)
        q = self.head(self.rl_features(obs)).gather(1, action[:, None]).squeeze(1)
        if self.cfg.loss == "huber":
            q_loss = F.smooth_l1_loss(q, target)
        else:
            q_loss = F.mse_loss(q, target)
        loss = self.add_aux_loss(q_loss, batch, metrics)
        grad_norm = self.step_optimizer(self.q_opt, loss, self.q_params)
        if self.aux.joint:
            self.aux.update_targets(self.encoder)

        self.num_updates += 1
        if self.num_updates % self.target_update_every == 0:
            ema_([*self.target_encoder.parameters(), *self.target_head.parameters()],
                 [*self.encoder.parameters(), *self.head.parameters()], self.tau)

        metrics.update({"q_loss": q_loss.detach(), "q": q.detach().mean(), "epsilon": torch.tensor(self.epsilon(step))})
        if grad_norm is not None:
            metrics["grad_norm"] = grad_norm
        return metrics
