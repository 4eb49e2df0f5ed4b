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
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from agents.base import register_agent
from agents.config import AuxTrainConfig, EncoderConfig, FieldRules, OffPolicyConfig
from agents.offpolicy import OffPolicyAgent, linear_schedule, unique_params
from rlaux.encoders import head_trunk, mlp
from rlaux.objectives.targets import ema_update, frozen_copy
from rlaux.optim import make_adam
from rlaux.types import WindowBatch

DQN_LOSSES = ("huber", "mse")


@dataclass
class DQNConfig(OffPolicyConfig):
    """``agent=dqn`` (preset, with the RL Zoo and Atari values: ``configs/agent/dqn.yaml``;
    the shared keys: :class:`OffPolicyConfig`)."""

    name: str = "dqn"
    batch_size: int = 64
    buffer_size: int = 100_000
    learning_starts: int = 1000
    update_every: int = 256
    num_updates: int = 128
    nstep: int = 3
    lr: float = 1e-3
    tau: float = 1.0  #: 1: hard target copy; < 1: soft update (lerp) at each target sync
    target_update_every: int = 128  #: updates between target syncs
    double_q: bool = True  #: double DQN target: argmax by the online net, value by the target net
    dueling: bool = False  #: V + A - mean(A) head
    loss: str = "huber"  #: huber (smooth L1) | mse
    max_grad_norm: float = 10.0
    eps_start: float = 1.0  #: epsilon: linear(eps_start, eps_end, eps_steps) by agent step
    eps_end: float = 0.04
    eps_steps: int = 8000
    eval_epsilon: float = 0.0  #: epsilon of evaluation episodes
    head_hidden: list[int] = field(default_factory=list)  #: Q head hidden widths after the trunk
    augment: bool | str = False
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(latent_dim=256, hidden=[256],
                                                                         activation="relu"))
    aux: AuxTrainConfig = field(default_factory=AuxTrainConfig)

    def validate(self, rules: FieldRules) -> None:
        super().validate(rules)
        rules.integer("target_update_every", 1, note=" (updates)")
        rules.flag("double_q")
        rules.flag("dueling")
        rules.choice("loss", DQN_LOSSES)
        for name in ("eps_start", "eps_end", "eval_epsilon"):
            rules.number(name, 0.0, 1.0)
        rules.integer("eps_steps", 0)
        rules.widths("head_hidden")


class QHead(nn.Module):
    """Encoder features [B, F] -> ``trunk`` -> Q-values [B, n_actions] (see the module docstring)."""

    def __init__(self, trunk: nn.Module, feature_dim: int, n_actions: int, hidden: Sequence[int], activation: str,
                 dueling: bool) -> None:
        super().__init__()
        self.trunk = trunk
        self.dueling = dueling
        if dueling:
            self.value = mlp(feature_dim, list(hidden), 1, activation)
            self.advantage = mlp(feature_dim, list(hidden), n_actions, activation)
        else:
            self.q = mlp(feature_dim, list(hidden), n_actions, activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.trunk(z)
        if self.dueling:
            adv = self.advantage(h)
            return self.value(h) + adv - adv.mean(dim=1, keepdim=True)
        return self.q(h)


@register_agent
class DQNAgent(OffPolicyAgent):
    """Double DQN with n-step returns, a target network and epsilon-greedy exploration
    (arguments: :class:`agents.base.Agent`; actions: Discrete)."""

    name = "dqn"
    config_class = DQNConfig
    cfg: DQNConfig
    discrete_actions = True

    def build_networks(self) -> None:
        cfg = self.cfg
        self.n_actions = int(self.action_space.n)
        trunk, feat = head_trunk(self.encoder, cfg.trunk_dim, latent_activation=cfg.encoder.activation)
        self.head = QHead(trunk, feat, self.n_actions, cfg.head_hidden, cfg.encoder.activation, cfg.dueling)
        self.target_encoder = frozen_copy(self.encoder)
        self.target_head = frozen_copy(self.head)
        self.num_updates = 0  # checkpointed through get_extra_state (drives the target sync)

    def build_optimizers(self) -> None:
        self.q_params = unique_params(self.head.parameters(), self.encoder_params_for_rl())
        self.q_opt = make_adam(self.q_params, self.cfg.lr)

    def rl_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"q": self.q_opt}

    # ------------------------------------------------------------------ state
    def get_extra_state(self) -> dict[str, int]:
        return {"num_updates": self.num_updates}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.num_updates = int(state["num_updates"])

    def epsilon(self, step: int) -> float:
        """Exploration epsilon at agent step ``step``: linear(eps_start, eps_end, eps_steps)."""
        return linear_schedule(self.cfg.eps_start, self.cfg.eps_end, self.cfg.eps_steps, step)

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Online Q-values [N, n_actions] (with gradient where the routing allows)."""
        return self.head(self.encoder(obs))

    @torch.no_grad()
    def act(self, obs: torch.Tensor, step: int, eval_mode: bool = False) -> torch.Tensor:
        """Epsilon-greedy int64 actions [N]: ``eval_epsilon`` in eval mode, else the schedule."""
        action = self.q_values(obs).argmax(dim=1)
        eps = self.cfg.eval_epsilon if eval_mode else self.epsilon(step)
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
        grad_norm, aux_metrics = self.optimizer_step(self.q_opt, q_loss, self.q_params, batch)
        metrics.update(aux_metrics)

        self.num_updates += 1
        if self.num_updates % self.cfg.target_update_every == 0:
            ema_update(self.target_encoder, self.encoder, self.cfg.tau)
            ema_update(self.target_head, self.head, self.cfg.tau)

        metrics.update({"q_loss": q_loss.detach(), "q": q.detach().mean(), "epsilon": torch.tensor(self.epsilon(step))})
        if grad_norm is not None:
            metrics["grad_norm"] = grad_norm
        return metrics
