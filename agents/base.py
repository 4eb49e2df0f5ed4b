"""What every rlaux agent provides, and the name -> class registry.

Two families share this base:

* off-policy agents (``sac``, ``ddpg``, ``dqn``) implement :meth:`Agent.act` and
  ``update(batch: WindowBatch, step: int) -> metrics``; the off-policy loop samples windows
  of ``max(aux horizon, 1)`` transitions with ``nstep``-step returns from the replay;
* on-policy agents (``ppo``) implement :meth:`Agent.act`, ``policy_step(obs)`` and
  ``update(storage, step) -> metrics``; the on-policy loop fills a rollout storage.

Agents own their encoder (``self.encoder``), their auxiliary suite (``self.aux``) and their
optimisers (:meth:`optimizers`), so a checkpoint is ``agent.state_dict()`` plus the
optimisers' state dicts. Metrics are 0-dim tensors (no host sync in the update); the loop
converts them when it logs.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import torch
from torch import nn

from rlaux.objectives.base import IncompatibleObjectiveError


class Agent(nn.Module):
    """Base class of rlaux agents."""

    name: ClassVar[str] = ""
    on_policy: ClassVar[bool] = False
    discrete_actions: ClassVar[bool | None] = None  # True/False when only one kind is supported

    def __init__(self, cfg: Any, obs_space: gym.Space, action_space: gym.Space, aux_cfg: Any, device: torch.device) -> None:
        super().__init__()
        self.cfg = cfg
        self.obs_space = obs_space
        self.action_space = action_space
        self.device = device

    @classmethod
    def check_action_space(cls, action_space: gym.Space) -> None:
        """Raise ``ValueError`` naming the problem when this agent cannot act in ``action_space``."""
        discrete = isinstance(action_space, gym.spaces.Discrete)
        if cls.discrete_actions is True and not discrete:
            raise ValueError(f"agent={cls.name} needs a discrete action space, got {action_space}; use agent=sac, ddpg or ppo")
        if cls.discrete_actions is False and discrete:
            raise ValueError(f"agent={cls.name} needs a continuous (Box) action space, got {action_space}; use agent=dqn or ppo")

    def check_encoder_for_aux(self, encoder: nn.Module, aux_cfg: Any) -> None:
        """Raise ``IncompatibleObjectiveError`` when aux objectives are asked for but ``encoder``
        has nothing to train (``encoder.kind=flat``)."""
        names = [str(name) for name in (aux_cfg or {})]
        if names and not any(p.requires_grad for p in encoder.parameters()):
            raise IncompatibleObjectiveError(
                f"aux={names} shapes the shared encoder, but agent={self.name}'s {type(encoder).__name__} has no "
                "trainable parameters (encoder.kind=flat feeds the raw observation to the networks); "
                "use encoder.kind=mlp (the default for state observations) or drop aux")

    @torch.no_grad()
    def act(self, obs: torch.Tensor, step: int, eval_mode: bool = False) -> torch.Tensor:
        """Actions for a batch of observations [N, *obs_shape] -> [N, *action_shape].

        ``eval_mode`` gives the deterministic/greedy policy; otherwise exploration noise
        (which may depend on the agent ``step``) is added.
        """
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimiser of the agent (including the aux suite's), by a stable name."""
        raise NotImplementedError


AGENTS: dict[str, type[Agent]] = {}


def register_agent(cls: type[Agent]) -> type[Agent]:
    """Class decorator adding an agent to :data:`AGENTS` under ``cls.name``."""
    AGENTS[cls.name] = cls
    return cls


def agent_class(name: str) -> type[Agent]:
    """Look up an agent by name, with an error listing the valid choices."""
    import agents  # noqa: F401  (registers every agent)

    if name not in AGENTS:
        raise KeyError(f"Unknown agent {name!r}; valid choices: {', '.join(sorted(AGENTS))}")
    return AGENTS[name]
