"""What the off-policy agents (sac, ddpg, dqn) share on top of :class:`agents.base.Agent`:
pixel augmentation, the encoder parameters the RL optimiser steps, schedules, and the
actor-critic skeleton of sac and ddpg.

Gradient routing (``self.detach_rl``, see :mod:`agents.base`):

* detached (TCRL): actor and critic read encoder features computed under ``no_grad``, so only
  the auxiliary losses train the encoder;
* attached (DrQ-v2, TACO): the critic (Q) loss trains the encoder; the actor reads the same
  features detached.

Auxiliary objectives: in ``separate`` mode the suite takes its own optimiser step *before*
the RL losses (TCRL's order: encoder + dynamics -> critic -> actor -> EMA targets); in
``joint`` mode the suite's loss is added to the critic (Q) loss and its heads are stepped by
the critic optimiser (:meth:`agents.base.Agent.optimizer_step` with the batch).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import gymnasium as gym
import torch
from torch import nn

from agents.base import Agent
from agents.config import ActorCriticConfig, OffPolicyConfig
from rlaux.encoders import RandomShift, is_image_space
from rlaux.objectives.targets import ema_update, frozen_copy
from rlaux.optim import make_adam


def linear_schedule(init: float, final: float, duration: int, step: int) -> float:
    """``init`` at step 0, moving linearly to ``final`` at ``duration`` and staying there."""
    if duration <= 0:
        return float(final)
    frac = min(max(step / duration, 0.0), 1.0)
    return float(init + frac * (final - init))


def unique_params(*groups: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    """Parameters of several modules, each once, trainable ones only, in a stable order."""
    seen: dict[int, nn.Parameter] = {}
    for group in groups:
        for p in group:
            if p.requires_grad and id(p) not in seen:
                seen[id(p)] = p
    return list(seen.values())


class OffPolicyAgent(Agent):
    """Base of the off-policy agents: the DrQ augmentation (``self.augment``) and which
    encoder/aux parameters belong in the critic (Q) optimiser (:meth:`encoder_params_for_rl`)."""

    config_class = OffPolicyConfig
    cfg: OffPolicyConfig

    def __init__(self, cfg: Any, obs_space: gym.Space, action_space: gym.Space, aux_cfg: Any, device: torch.device) -> None:
        super().__init__(cfg, obs_space, action_space, aux_cfg, device)
        image = is_image_space(obs_space)
        if self.cfg.augment is True and not image:
            raise ValueError(f"agent.augment=true needs uint8 image observations, got {obs_space}; use auto or false")
        use_augment = self.cfg.augment is True or (self.cfg.augment == "auto" and image)
        self.augment: nn.Module | None = RandomShift(pad=4) if use_augment else None

    def encoder_params_for_rl(self) -> list[nn.Parameter]:
        """Encoder parameters the RL (critic/Q) optimiser steps: all of them unless detached
        (joint aux mode adds them back, with the objectives' heads, for the aux gradient)."""
        params: list[nn.Parameter] = []
        if not self.detach_rl or self.aux.joint:
            params += list(self.encoder.parameters())
        if self.aux.joint:
            params += list(self.aux.parameters())
        return params

    def augmented(self, obs: torch.Tensor) -> torch.Tensor:
        """DrQ random shift of pixel observations (when enabled and in training mode)."""
        return self.augment(obs) if self.augment is not None else obs


class ActorCriticAgent(OffPolicyAgent):
    """Base of ``sac`` and ``ddpg``: an ``actor``, a ``critic`` ensemble with an EMA
    ``critic_target``, and their two Adam optimisers (the aux suite's third in separate mode).

    Subclasses build ``self.actor`` and ``self.critic`` in :meth:`build_actor_critic`.
    """

    config_class = ActorCriticConfig
    cfg: ActorCriticConfig

    def build_actor_critic(self) -> None:
        """Build ``self.actor`` and ``self.critic`` (and any other trained module)."""
        raise NotImplementedError

    def extra_actor_groups(self) -> list[dict[str, Any]]:
        """More parameter groups for the actor's Adam (SAC: the temperature)."""
        return []

    def build_networks(self) -> None:
        self.build_actor_critic()
        self.critic_target = frozen_copy(self.critic)

    def build_optimizers(self) -> None:
        """The critic's Adam steps the critic and whatever encoder/aux parameters the gradient
        routing gives the RL loss (:meth:`encoder_params_for_rl`); the actor's Adam steps the
        actor (plus :meth:`extra_actor_groups`)."""
        self.critic_params = unique_params(self.critic.parameters(), self.encoder_params_for_rl())
        self.critic_opt = make_adam(self.critic_params, self.cfg.lr)
        self.actor_params = list(self.actor.parameters())
        self.actor_opt = make_adam([{"params": self.actor_params}, *self.extra_actor_groups()], self.cfg.lr)

    def rl_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"critic": self.critic_opt, "actor": self.actor_opt}

    def update_critic_target(self) -> None:
        """``critic_target <- lerp(critic_target, critic, tau)``."""
        ema_update(self.critic_target, self.critic, self.cfg.tau)
