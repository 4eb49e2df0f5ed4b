"""What every rlaux agent provides, the wiring they share, and the name -> class registry.

:class:`Agent` owns what all agents have in common, so that an agent writes only its
networks and its losses:

* its typed config (``config_class``, built once from the ``agent`` node: ``self.cfg``);
* the shared encoder (``self.encoder``), refused for aux objectives when it has nothing to train;
* the auxiliary suite (``self.aux``) and the gradient routing between them (``self.detach_rl``:
  ``agent.detach_rl``, or null = the objectives' recipe): detached, the RL losses read encoder
  features computed under ``no_grad`` (:meth:`Agent.rl_features`), so only the aux losses
  train the encoder;
* one optimiser step for RL losses (:meth:`Agent.optimizer_step`): in ``joint`` aux mode it adds
  the aux loss before the backward pass and refreshes the objectives' targets after the step;
  the ``separate`` aux step is :meth:`Agent.aux_step`;
* :meth:`Agent.optimizers`: the agent's own (:meth:`Agent.rl_optimizers`) plus the aux suite's.

Construction order (parameter initialisation draws from the torch RNG, so it fixes a seeded
run's numbers): config -> action-space check -> encoder -> aux suite -> :meth:`build_networks`
(heads, target networks) -> ``to(device)`` -> :meth:`build_optimizers`. An agent whose heads
come before the aux suite says so with ``aux_after_networks``.

What the training loops call is declared by :class:`OffPolicyLearner` (sac, ddpg, dqn: the
off-policy loop samples windows of ``max(aux horizon, 1)`` transitions with ``nstep``-step
returns from the replay) and :class:`OnPolicyLearner` (ppo: the on-policy loop fills a rollout
storage). Metrics are 0-dim tensors (no host sync in the update); the loop converts them when
it logs. A checkpoint is ``agent.state_dict()`` plus the optimisers' state dicts.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import gymnasium as gym
import torch
from torch import nn

from agents.config import AgentConfig
from rlaux.buffers.rollout import RolloutStorage
from rlaux.encoders import make_encoder
from rlaux.errors import UserError
from rlaux.objectives import build_aux_suite
from rlaux.objectives.base import IncompatibleObjectiveError
from rlaux.objectives.suite import AuxSuite
from rlaux.optim import adam_step, zero_grad
from rlaux.types import WindowBatch


class Agent(nn.Module):
    """Base class of rlaux agents (see the module docstring).

    Args:
        cfg: the ``agent`` config node (a mapping or DictConfig, e.g. ``configs/agent/<name>.yaml``
            as composed), or an instance of ``config_class``.
        obs_space, action_space: one env's spaces.
        aux_cfg: the ``aux`` config node ({objective name: options}); None/empty for none.
        device: where the networks live.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[AgentConfig]] = AgentConfig
    on_policy: ClassVar[bool] = False
    discrete_actions: ClassVar[bool | None] = None  # True/False when only one kind is supported
    aux_after_networks: ClassVar[bool] = False  # build the aux suite after build_networks (ppo's order)

    def __init__(self, cfg: Any, obs_space: gym.Space, action_space: gym.Space, aux_cfg: Any, device: torch.device) -> None:
        super().__init__()
        self.cfg = self.config_class.from_config(cfg)
        self.check_action_space(action_space)
        self.obs_space = obs_space
        self.action_space = action_space
        self.device = device
        enc = self.cfg.encoder
        self.encoder = make_encoder(obs_space, enc.kind, enc.latent_dim, enc.hidden, enc.activation)
        self.check_encoder_for_aux(self.encoder, aux_cfg)
        if self.aux_after_networks:
            self.build_networks()
            self.aux = self._build_aux(aux_cfg)
        else:
            self.aux = self._build_aux(aux_cfg)
            self.build_networks()
        self.detach_rl = self.aux.detach_rl if self.cfg.detach_rl is None else self.cfg.detach_rl
        self.to(device)
        self.build_optimizers()

    def _build_aux(self, aux_cfg: Any) -> AuxSuite:
        train = self.cfg.aux
        return build_aux_suite(aux_cfg, self.name, self.encoder, self.encoder.out_dim, self.obs_space,
                               self.action_space, optimizer=train.optimizer, lr=train.lr,
                               weight_decay=train.weight_decay, grad_clip=train.grad_clip)

    # ------------------------------------------------------------------ what an agent writes
    def build_networks(self) -> None:
        """Build the heads (and target networks) on ``self.encoder``; ``self.aux`` exists
        unless ``aux_after_networks``."""
        raise NotImplementedError

    def build_optimizers(self) -> None:
        """Build the RL optimisers (after ``to(device)``; ``self.detach_rl`` is known)."""
        raise NotImplementedError

    def rl_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The agent's own optimisers, by a stable name (checkpoints use the names)."""
        raise NotImplementedError

    @torch.no_grad()
    def act(self, obs: torch.Tensor, step: int, eval_mode: bool = False) -> torch.Tensor:
        """Actions for a batch of observations [N, *obs_shape] -> [N, *action_shape].

        ``eval_mode`` gives the deterministic/greedy policy; otherwise exploration noise
        (which may depend on the agent ``step``) is added.
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ checks
    @classmethod
    def action_space_problem(cls, action_space: gym.Space) -> str | None:
        """What this agent needs that ``action_space`` is not (``"a discrete action space"``), or None."""
        discrete = isinstance(action_space, gym.spaces.Discrete)
        if cls.discrete_actions is True and not discrete:
            return "a discrete action space"
        if cls.discrete_actions is False and discrete:
            return "a continuous (Box) action space"
        return None

    @classmethod
    def check_action_space(cls, action_space: gym.Space) -> None:
        """Raise ``ValueError`` naming the problem, and the registered agents that can act in
        ``action_space``, when this agent cannot."""
        problem = cls.action_space_problem(action_space)
        if problem is None:
            return
        fits = [name for name, other in sorted(AGENTS.items()) if other.action_space_problem(action_space) is None]
        hint = f"; use agent={_one_of(fits)}" if fits else ""
        raise ValueError(f"agent={cls.name} needs {problem}, got {action_space}{hint}")

    def check_encoder_for_aux(self, encoder: nn.Module, aux_cfg: Any) -> None:
        """Raise ``IncompatibleObjectiveError`` when aux objectives are asked for but ``encoder``
        has nothing to train (``encoder.kind=flat``)."""
        names = [str(name) for name in (aux_cfg or {})]
        if names and not any(p.requires_grad for p in encoder.parameters()):
            raise IncompatibleObjectiveError(
                f"aux={names} shapes the shared encoder, but agent={self.name}'s {type(encoder).__name__} has no "
                "trainable parameters (encoder.kind=flat feeds the raw observation to the networks); "
                "use encoder.kind=mlp (the default for state observations) or drop aux")

    # ------------------------------------------------------------------ shared wiring
    def rl_features(self, obs: torch.Tensor) -> torch.Tensor:
        """Encoder features for the RL losses: with gradient unless ``detach_rl``."""
        if self.detach_rl:
            with torch.no_grad():
                return self.encoder(obs)
        return self.encoder(obs)

    def aux_step(self, batch: WindowBatch) -> dict[str, torch.Tensor]:
        """The separate-mode aux update (its own optimiser step and target refresh); nothing
        in joint mode or without objectives."""
        if self.aux and not self.aux.joint:
            return self.aux.update(batch, self.encoder)
        return {}

    def optimizer_step(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: list[nn.Parameter],
                       aux_batch: WindowBatch | None = None) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """One RL step: zero_grad -> backward -> clip ``params`` to ``max_grad_norm`` -> step.

        With ``aux_batch`` in joint aux mode, the aux loss on it is added to ``loss`` first and
        the objectives' targets are refreshed after the step (``optimizer`` must hold the aux
        heads: see the agents' ``build_optimizers``). Returns the gradient norm (None when not
        clipped) and the aux metrics (empty unless joint).
        """
        aux_metrics: dict[str, torch.Tensor] = {}
        joint = aux_batch is not None and self.aux.joint
        if joint:
            aux_loss, aux_metrics = self.aux.loss(aux_batch, self.encoder)
            aux_metrics["aux/loss"] = aux_loss.detach()
            loss = loss + aux_loss
        zero_grad(optimizer)
        loss.backward()
        norm = None
        if self.cfg.max_grad_norm > 0 and params:
            norm = nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm, foreach=True)
        adam_step(optimizer)
        if joint:
            self.aux.update_targets(self.encoder)
        return norm, aux_metrics

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimiser of the agent (its own and the aux suite's), by a stable name."""
        opts = dict(self.rl_optimizers())
        if self.aux.optimizer is not None:
            opts["aux"] = self.aux.optimizer
        return opts


def _one_of(names: list[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


@runtime_checkable
class OffPolicyLearner(Protocol):
    """What the off-policy loop (:mod:`rlaux.training.off_policy`) calls."""

    aux: AuxSuite  # aux.horizon: the window length to sample

    def act(self, obs: torch.Tensor, step: int, eval_mode: bool = False) -> torch.Tensor: ...

    def update(self, batch: WindowBatch, step: int) -> dict[str, torch.Tensor]: ...

    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...


@runtime_checkable
class OnPolicyLearner(Protocol):
    """What the on-policy loop (:mod:`rlaux.training.on_policy`) calls."""

    def act(self, obs: torch.Tensor, step: int, eval_mode: bool = False) -> torch.Tensor: ...

    def policy_step(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(action, log pi(action|obs), V(obs)) for a rollout step."""
        ...

    def env_action(self, action: torch.Tensor) -> torch.Tensor:
        """The action the env receives for a stored ``action``."""
        ...

    def make_storage(self, num_envs: int) -> RolloutStorage: ...

    def update(self, storage: RolloutStorage, next_obs: torch.Tensor, step: int) -> dict[str, torch.Tensor]: ...

    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...


class UnknownAgentError(UserError, KeyError, ValueError):
    """``agent=<name>`` names no registered agent."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


AGENTS: dict[str, type[Agent]] = {}


def register_agent(cls: type[Agent]) -> type[Agent]:
    """Class decorator adding an agent to :data:`AGENTS` under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    AGENTS[cls.name] = cls
    return cls


def agent_class(name: str) -> type[Agent]:
    """Look up an agent by name, with an error listing the valid choices."""
    if name not in AGENTS:
        raise UnknownAgentError(f"Unknown agent {name!r}; valid choices: {', '.join(sorted(AGENTS))}")
    return AGENTS[name]
