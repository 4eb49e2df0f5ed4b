"""What the off-policy agents (sac, ddpg, dqn) share: config checks, the shared encoder and
aux suite, the gradient routing between them, pixel augmentation and schedules.

Gradient routing (``detach_encoder``; null = the aux objectives' recipe, ``aux.detach_rl``):

* detached (TCRL): actor and critic read encoder features computed under ``no_grad``, so only
  the auxiliary losses train the encoder;
* attached (DrQ-v2, TACO): the critic (Q) loss trains the encoder; the actor reads the same
  features detached.

Auxiliary objectives: in ``separate`` mode the suite takes its own optimiser step *before*
the RL losses (TCRL's order: encoder + dynamics -> critic -> actor -> EMA targets); in
``joint`` mode the suite's loss is added to the critic (Q) loss and its heads are stepped by
the critic optimiser.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import gymnasium as gym
import torch
from torch import nn

from agents.base import Agent
from agents.networks import frozen_copy
from rlaux.encoders import ACTIVATIONS, ENCODER_KINDS, RandomShift, is_image_space, make_encoder
from rlaux.objectives import build_aux_suite
from rlaux.optim import adam_step, make_adam, zero_grad
from rlaux.types import WindowBatch


def linear_schedule(init: float, final: float, duration: int, step: int) -> float:
    """``init`` at step 0, moving linearly to ``final`` at ``duration`` and staying there."""
    if duration <= 0:
        return float(final)
    frac = min(max(step / duration, 0.0), 1.0)
    return float(init + frac * (final - init))


def cfg_get(cfg: Any, dotted: str) -> Any:
    """``cfg["a"]["b"]`` for ``"a.b"``."""
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


class ConfigChecker:
    """Collects ``check(key, ok, rule)`` calls; the first failing one raises
    ``ValueError("agent.<key>=<value> must be <rule>")``."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    def __call__(self, key: str, test: Callable[[Any], bool], rule: str) -> None:
        value = cfg_get(self.cfg, key)
        try:
            ok = bool(test(value))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"agent.{key}={value!r} must be {rule}")


def check_common_config(cfg: Any) -> None:
    """The keys every off-policy agent config has (see ``configs/agent/*.yaml``)."""
    check = ConfigChecker(cfg)
    positive_int = lambda v: int(v) == v and v >= 1
    check("num_envs", positive_int, "an integer >= 1")
    check("batch_size", positive_int, "an integer >= 1")
    check("buffer_size", positive_int, "an integer >= 1")
    check("learning_starts", lambda v: int(v) == v and v >= 0, "an integer >= 0")
    check("update_every", positive_int, "an integer >= 1")
    check("num_updates", positive_int, "an integer >= 1")
    check("nstep", positive_int, "an integer >= 1")
    check("gamma", lambda v: 0.0 < float(v) <= 1.0, "in (0, 1]")
    check("lr", lambda v: float(v) > 0, "> 0")
    check("max_grad_norm", lambda v: float(v) >= 0, ">= 0 (0 disables clipping)")
    check("augment", lambda v: v in ("auto", True, False), "auto, true or false")
    check("detach_encoder", lambda v: v in (None, True, False), "null, true or false")
    check("encoder.kind", lambda v: v in ENCODER_KINDS, f"one of {', '.join(ENCODER_KINDS)}")
    check("encoder.latent_dim", positive_int, "an integer >= 1")
    check("encoder.hidden", lambda v: all(int(w) >= 1 for w in v), "a list of integers >= 1")
    check("encoder.activation", lambda v: v in ACTIVATIONS, f"one of {', '.join(ACTIVATIONS)}")
    check("aux.optimizer", lambda v: v in ("separate", "joint"), "'separate' or 'joint'")
    check("aux.lr", lambda v: float(v) > 0, "> 0")
    check("aux.weight_decay", lambda v: float(v) >= 0, ">= 0")
    check("aux.grad_clip", lambda v: float(v) >= 0, ">= 0 (0 disables clipping)")


def unique_params(*groups: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    """Parameters of several modules, each once, trainable ones only, in a stable order."""
    seen: dict[int, nn.Parameter] = {}
    for group in groups:
        for p in group:
            if p.requires_grad and id(p) not in seen:
                seen[id(p)] = p
    return list(seen.values())


class OffPolicyAgent(Agent):
    """Base of the off-policy agents: builds ``self.encoder``, ``self.aux`` and the
    augmentation, and decides the gradient routing (``self.detach_encoder``).

    Subclasses call ``super().__init__`` after their own config checks, then build their
    heads and optimisers; :meth:`encoder_params_for_rl` says which encoder/aux parameters
    belong in the critic (Q) optimiser.
    """

    def __init__(self, cfg: Any, obs_space: gym.Space, action_space: gym.Space, aux_cfg: Any, device: torch.device) -> None:
        super().__init__(cfg, obs_space, action_space, aux_cfg, device)
        self.check_action_space(action_space)
        check_common_config(cfg)
        enc = cfg.encoder
        self.encoder = make_encoder(obs_space, str(enc.kind), int(enc.latent_dim), [int(w) for w in enc.hidden],
                                    str(enc.activation))
        self.check_encoder_for_aux(self.encoder, aux_cfg)
        self.aux = build_aux_suite(
            aux_cfg, self.name, self.encoder, self.encoder.out_dim, obs_space, action_space,
            optimizer=str(cfg.aux.optimizer), lr=float(cfg.aux.lr),
            weight_decay=float(cfg.aux.weight_decay), grad_clip=float(cfg.aux.grad_clip),
        )
        self.detach_encoder = bool(cfg.detach_encoder) if cfg.detach_encoder is not None else self.aux.detach_rl
        image = is_image_space(obs_space)
        if cfg.augment is True and not image:
            raise ValueError(f"agent.augment=true needs uint8 image observations, got {obs_space}; use auto or false")
        use_augment = cfg.augment is True or (cfg.augment == "auto" and image)
        self.augment: nn.Module | None = RandomShift(pad=4) if use_augment else None
        self.max_grad_norm = float(cfg.max_grad_norm)

    # ------------------------------------------------------------------ features
    def encoder_params_for_rl(self) -> list[nn.Parameter]:
        """Encoder parameters the RL (critic/Q) optimiser steps: all of them unless detached
        (joint aux mode adds them back, with the objectives' heads, for the aux gradient)."""
        params: list[nn.Parameter] = []
        if not self.detach_encoder or self.aux.joint:
            params += list(self.encoder.parameters())
        if self.aux.joint:
            params += list(self.aux.parameters())
        return params

    def rl_features(self, obs: torch.Tensor) -> torch.Tensor:
        """Encoder features for the critic/Q loss: with gradient unless the encoder is detached."""
        if self.detach_encoder:
            with torch.no_grad():
                return self.encoder(obs)
        return self.encoder(obs)

    def augmented(self, obs: torch.Tensor) -> torch.Tensor:
        """DrQ random shift of pixel observations (when enabled and in training mode)."""
        return self.augment(obs) if self.augment is not None else obs

    def aux_step(self, batch: WindowBatch) -> dict[str, torch.Tensor]:
        """Separate-mode aux update (runs first in every update); nothing in joint mode."""
        if self.aux and not self.aux.joint:
            return self.aux.update(batch, self.encoder)
        return {}

    def add_aux_loss(self, loss: torch.Tensor, batch: WindowBatch, metrics: dict[str, torch.Tensor]) -> torch.Tensor:
        """Joint mode: ``loss + aux loss`` (aux metrics go into ``metrics``)."""
        if self.aux.joint:
            aux_loss, aux_metrics = self.aux.loss(batch, self.encoder)
            metrics.update(aux_metrics)
            metrics["aux/loss"] = aux_loss.detach()
            return loss + aux_loss
        return loss

    def step_optimizer(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor,
                       params: list[nn.Parameter] | None = None) -> torch.Tensor | None:
        """zero_grad -> backward -> (clip ``max_grad_norm``) -> step; returns the grad norm when clipped.

        Uses :mod:`rlaux.optim`'s low-overhead zero_grad/step (same results as the optimizer's own)."""
        zero_grad(optimizer)
        loss.backward()
        norm = None
        if self.max_grad_norm > 0 and params:
            norm = nn.utils.clip_grad_norm_(params, self.max_grad_norm, foreach=True)
        adam_step(optimizer)
        return norm


class ActorCriticAgent(OffPolicyAgent):
    """Base of ``sac`` and ``ddpg``: an ``actor``, a ``critic`` ensemble with an EMA
    ``critic_target``, and their two Adam optimisers (the aux suite's third in separate mode).

    Subclasses build ``self.actor`` and ``self.critic``, then call :meth:`finish_actor_critic`.
    """

    def finish_actor_critic(self, device: torch.device, lr: float,
                            extra_actor_groups: list[dict[str, Any]] | None = None) -> None:
        """Make the target critic, move everything to ``device`` and build the optimisers:
        the critic's Adam steps the critic and whatever encoder/aux parameters the gradient
        routing gives the RL loss (:meth:`encoder_params_for_rl`); the actor's Adam steps the
        actor (plus ``extra_actor_groups``, e.g. SAC's temperature)."""
        self.critic_target = frozen_copy(self.critic)
        self.to(device)
        self.critic_params = unique_params(self.critic.parameters(), self.encoder_params_for_rl())
        self.critic_opt = make_adam(self.critic_params, lr)
        self.actor_params = list(self.actor.parameters())
        self.actor_opt = make_adam([{"params": self.actor_params}, *(extra_actor_groups or [])], lr)
        self._ema_pairs = (list(self.critic_target.parameters()), list(self.critic.parameters()))

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts: dict[str, torch.optim.Optimizer] = {"critic": self.critic_opt, "actor": self.actor_opt}
        if self.aux.optimizer is not None:
            opts["aux"] = self.aux.optimizer
        return opts
