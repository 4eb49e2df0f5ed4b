"""Which SB3 features extractor the aux loss shapes, and which RL step it joins (joint mode).

``aux_kwargs["encoder"]`` names the network that reads the extractor:

* PPO, A2C: ``critic`` = ``policy.vf_features_extractor``, ``actor`` =
  ``policy.pi_features_extractor``; with ``share_features_extractor=True`` (SB3's default)
  both are the one shared extractor. Joint mode joins the PPO/A2C loss (``policy.optimizer``).
* SAC, TD3, DDPG: ``critic`` (default) = ``critic.features_extractor`` (joint: added to the
  critic loss, ``critic.optimizer``); ``actor`` = ``actor.features_extractor`` (joint: added to
  the actor loss, ``actor.optimizer``; TD3 steps it every ``policy_delay`` steps). The critic
  target and actor target keep their own extractors, updated by SB3's Polyak averaging.
* DQN: ``critic`` = ``q_net.features_extractor`` (joint: added to the Q loss); ``actor`` is
  refused (there is no actor).

SAC/TD3 with ``share_features_extractor=True``: SB3 builds the critic on the actor's
extractor, computes the critic's features under ``no_grad`` and leaves the extractor out of the
critic optimiser, so only the actor loss trains it. An aux objective "on the critic's encoder"
(the DrQ/CURL/TCRL convention) cannot exist there; ``encoder="critic"`` is refused with that
explanation and ``encoder="actor"`` (the shared extractor, trained by actor + aux) is the choice.

The aux gradient reaches the chosen extractor (objectives with ``encoder_grad=True``) and the
objectives' own heads, nothing else: the objectives only ever call the extractor, never the
policy's MLPs, heads or target networks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor


@dataclass
class AuxRoute:
    """The resolved routing.

    Attributes:
        extractor: the features extractor the aux loss trains.
        optimizer: the RL optimiser that steps that extractor (joint mode adds the aux loss there).
        description: one line for logs and errors, e.g. ``"SAC critic.features_extractor"``.
    """

    extractor: BaseFeaturesExtractor
    optimizer: torch.optim.Optimizer
    description: str


def resolve_route(policy: BasePolicy, encoder: str, algo_name: str) -> AuxRoute:
    """Pick the extractor and the RL optimiser for ``encoder`` ("critic" or "actor").

    Raises ``ValueError`` for a combination that cannot work, naming the valid choice.
    """
    if isinstance(policy, ActorCriticPolicy):
        module = policy.vf_features_extractor if encoder == "critic" else policy.pi_features_extractor
        name = "features_extractor" if policy.share_features_extractor else (
            "vf_features_extractor" if encoder == "critic" else "pi_features_extractor")
        return AuxRoute(module, policy.optimizer, f"{algo_name} policy.{name}")
    actor = getattr(policy, "actor", None)
    critic = getattr(policy, "critic", None)
    if actor is not None and critic is not None:  # SAC, TD3, DDPG (and their subclasses)
        if encoder == "critic":
            if getattr(policy, "share_features_extractor", False):
                raise ValueError(
                    f"aux_kwargs['encoder']='critic' is impossible for {algo_name} with share_features_extractor=True: "
                    "SB3 then trains the shared extractor with the actor loss only (the critic reads it under "
                    "no_grad and its optimiser leaves it out). Use aux_kwargs=dict(encoder='actor') to shape the "
                    "shared extractor, or share_features_extractor=False (SB3's default) to shape the critic's own.")
            return AuxRoute(critic.features_extractor, critic.optimizer, f"{algo_name} critic.features_extractor")
        return AuxRoute(actor.features_extractor, actor.optimizer, f"{algo_name} actor.features_extractor")
    q_net = getattr(policy, "q_net", None)
    if q_net is not None and hasattr(policy, "optimizer"):  # DQN
        if encoder == "actor":
            raise ValueError(f"aux_kwargs['encoder']='actor' is impossible for {algo_name}: it has no actor; "
                             "valid choice: 'critic' (the Q-network's features extractor)")
        return AuxRoute(q_net.features_extractor, policy.optimizer, f"{algo_name} q_net.features_extractor")
    raise TypeError(f"rlaux.sb3 does not know where the features extractor of {type(policy).__name__} is; "
                    "supported: ActorCriticPolicy (PPO, A2C), SAC/TD3 policies, DQNPolicy")


def optimizer_params(optimizer: torch.optim.Optimizer) -> set[int]:
    """ids of every parameter an optimiser steps."""
    return {id(p) for group in optimizer.param_groups for p in group["params"]}


def check_route(route: AuxRoute, joint: bool, encoder_grad: bool) -> None:
    """Refuse an extractor the aux loss could not train (no parameters, or, in joint mode,
    parameters the RL optimiser does not step)."""
    params = [p for p in route.extractor.parameters() if p.requires_grad]
    if encoder_grad and not params:
        raise ValueError(
            f"{route.description} ({type(route.extractor).__name__}) has no trainable parameters, so an aux loss "
            "cannot shape it. Give the policy a trainable extractor, e.g. "
            "policy_kwargs=dict(features_extractor_class=rlaux.sb3.MlpFeatures), or leave "
            "features_extractor_class unset (the Aux algorithms then use MlpFeatures).")
    if joint and encoder_grad:
        stepped = optimizer_params(route.optimizer)
        if any(id(p) not in stepped for p in params):
            raise ValueError(f"aux_kwargs['optimizer']='joint' needs the RL optimiser to step {route.description}, "
                             "but it leaves (some of) its parameters out; use optimizer='separate'")

