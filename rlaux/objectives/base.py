"""The auxiliary-objective contract.

An objective is an ``nn.Module`` that

* declares what it reads from a batch: ``horizon`` = number of transitions in the window
  (1 = a single transition (o_t, a_t, r_t, o_{t+1}));
* computes ``loss(batch, encoder) -> (scalar loss, metrics)`` from a :class:`WindowBatch`;
* owns its heads and, where the method has one, its target network, refreshed by
  ``update_targets(encoder)`` after each optimiser step;
* states how its gradient reaches the encoder (``encoder_grad``) and whether, by its
  paper's recipe, the RL losses should be detached from the encoder (``detach_rl``).

Objectives register themselves by name with :func:`register_objective`; adding one touches
one new file (the objective and its config dataclass) and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import gymnasium as gym
import torch
from torch import nn

from rlaux.types import WindowBatch


class IncompatibleObjectiveError(ValueError):
    """Raised when an objective cannot serve the chosen agent, observation or action space."""


@dataclass
class ObjectiveConfig:
    """Options every objective has.

    Attributes:
        weight: multiplier on this objective's loss.
        encoder_grad: whether this objective's gradient reaches the shared encoder.
        detach_rl: None = the paper's choice; True = RL losses do not train the encoder.
    """

    weight: float = 1.0
    encoder_grad: bool = True
    detach_rl: bool | None = None


class AuxObjective(nn.Module):
    """Base class of auxiliary objectives (see the module docstring for the contract).

    Subclasses set ``name``, ``config_class`` and ``paper_detach_rl`` and implement
    :meth:`loss`; they may override :meth:`update_targets` and :meth:`check_compatible`.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[ObjectiveConfig]] = ObjectiveConfig
    paper_detach_rl: ClassVar[bool] = False

    def __init__(
        self,
        cfg: ObjectiveConfig,
        feature_dim: int,
        obs_space: gym.Space,
        action_space: gym.Space,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.feature_dim = feature_dim
        self.obs_space = obs_space
        self.action_space = action_space

    @property
    def horizon(self) -> int:
        """Number of transitions this objective needs in each sampled window."""
        return 1

    @property
    def weight(self) -> float:
        return float(self.cfg.weight)

    @property
    def detach_rl(self) -> bool:
        return self.paper_detach_rl if self.cfg.detach_rl is None else bool(self.cfg.detach_rl)

    @classmethod
    def check_compatible(cls, agent_name: str, obs_space: gym.Space, action_space: gym.Space) -> None:
        """Raise :class:`IncompatibleObjectiveError` naming why this combination cannot work.

        The default accepts what the encoders and action embeddings support (:func:`check_spaces`);
        objectives with narrower needs override it."""
        check_spaces(cls.name, obs_space, action_space)

    def loss(self, batch: WindowBatch, encoder: nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the (unweighted) scalar loss and metrics (0-dim tensors, no ``.item()``)."""
        raise NotImplementedError

    def bind_encoder(self, encoder: nn.Module) -> None:
        """Receive the shared encoder once, right after construction and before any optimiser
        is built (:func:`~rlaux.objectives.suite.build_aux_suite` calls it).

        Objectives that keep their own copy of the encoder (an EMA target network) make it
        here; the default does nothing.
        """

    def update_targets(self, encoder: nn.Module) -> None:
        """Refresh target networks after an optimiser step (no-op by default)."""


OBJECTIVES: dict[str, type[AuxObjective]] = {}


def register_objective(cls: type[AuxObjective]) -> type[AuxObjective]:
    """Class decorator adding an objective to :data:`OBJECTIVES` under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    OBJECTIVES[cls.name] = cls
    return cls


def objective_class(name: str) -> type[AuxObjective]:
    """Look up an objective by name, with an error listing the valid choices."""
    import rlaux.objectives  # noqa: F401  (imports every objective module so they register)

    if name not in OBJECTIVES:
        raise KeyError(f"Unknown aux objective {name!r}; valid choices: none, {', '.join(sorted(OBJECTIVES))}")
    return OBJECTIVES[name]


def check_spaces(objective: str, obs_space: gym.Space, action_space: gym.Space) -> None:
    """Raise :class:`IncompatibleObjectiveError` unless observations are a ``Box`` and actions
    a ``Box`` or ``Discrete`` space (what the encoders and action embeddings support)."""
    if not isinstance(obs_space, gym.spaces.Box):
        raise IncompatibleObjectiveError(
            f"aux={objective} needs Box observations (flat vectors or uint8 images), got {obs_space}"
        )
    if not isinstance(action_space, (gym.spaces.Box, gym.spaces.Discrete)):
        raise IncompatibleObjectiveError(
            f"aux={objective} needs Box (continuous) or Discrete actions, got {action_space}"
        )
