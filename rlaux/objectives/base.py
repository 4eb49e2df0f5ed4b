"""The auxiliary-objective contract and the registry of objectives by name.

An objective is an ``nn.Module`` that

* declares what it reads from a batch: ``horizon`` = number of transitions in the window
  (1 = a single transition (o_t, a_t, r_t, o_{t+1}));
* computes ``loss(batch, encoder) -> (scalar loss, metrics)`` from a :class:`WindowBatch`;
* owns its heads and, where the method has one, its target network: a
  :class:`~rlaux.objectives.targets.Target` attribute, which this base class binds to the shared
  encoder (``bind_encoder``) and refreshes after each optimiser step (``update_targets``);
* states how its gradient reaches the encoder (``encoder_grad``) and whether, by its
  paper's recipe, the RL losses should be detached from the encoder (``detach_rl``).

Objectives register themselves by name with :func:`register_objective`. Adding one is one new
file: ``rlaux/objectives/<name>.py`` with the objective and its config dataclass (the package
imports every module in it, see ``docs/ADD_AN_OBJECTIVE.md``). Another installed package adds
objectives through the entry-point group ``rlaux.objectives`` (:data:`PLUGIN_GROUP`), each entry
pointing to a module that registers objectives or to an objective class; they are loaded at the
first lookup in :data:`OBJECTIVES`.
"""

from __future__ import annotations

import types
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, ClassVar

import gymnasium as gym
import torch
from torch import nn

from rlaux.errors import UserError
from rlaux.objectives.targets import Target
from rlaux.types import WindowBatch

#: The entry-point group through which other packages add objectives.
PLUGIN_GROUP = "rlaux.objectives"


class IncompatibleObjectiveError(UserError, ValueError):
    """Raised when an objective cannot serve the chosen agent, observation or action space."""


class UnknownObjectiveError(UserError, KeyError, ValueError):
    """An objective name that is not registered; the message lists the valid choices.

    A ``KeyError`` because it is a failed registry lookup, printed as its message (not the
    message's repr, as a plain ``KeyError`` would)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ObjectivePluginError(UserError):
    """An installed objective plug-in (entry point of :data:`PLUGIN_GROUP`) that cannot be loaded."""


@dataclass
class ObjectiveConfig:
    """Options every objective has.

    Attributes:
        weight: multiplier (>= 0) on this objective's loss; 0 logs the loss without training on it.
        encoder_grad: whether this objective's gradient reaches the shared encoder.
        detach_rl: None = the paper's choice; True = RL losses do not train the encoder.

    Subclasses that add checks in their own ``__post_init__`` call ``super().__post_init__()``.
    """

    weight: float = 1.0
    encoder_grad: bool = True
    detach_rl: bool | None = None

    def __post_init__(self) -> None:
        if not float(self.weight) >= 0.0:  # also refuses NaN
            raise ValueError(f"aux weight={self.weight} is invalid: weights must be >= 0 (a negative weight "
                             "would reverse the objective; 0 logs its loss without training on it)")


class AuxObjective(nn.Module):
    """Base class of auxiliary objectives (see the module docstring for the contract).

    Subclasses set ``name``, ``config_class`` and ``paper_detach_rl`` and implement
    :meth:`loss`; they may override :meth:`check_compatible`, and extend :meth:`bind_encoder`
    and :meth:`update_targets` for state other than their :class:`Target` attributes.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[ObjectiveConfig]] = ObjectiveConfig
    paper_detach_rl: ClassVar[bool] = False
    #: ``state_dict`` key prefixes of older checkpoints -> the current ones; renamed on load.
    renamed_state_keys: ClassVar[dict[str, str]] = {}

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

    def targets(self) -> list[Target]:
        """This objective's :class:`Target` attributes (direct children), in definition order."""
        return [m for m in self.children() if isinstance(m, Target)]

    def bind_encoder(self, encoder: nn.Module) -> None:
        """Receive the shared encoder once, right after construction and before any optimiser
        is built (:func:`~rlaux.objectives.suite.build_aux_suite` calls it): every
        :class:`Target` makes its copies here."""
        for target in self.targets():
            target.bind(encoder)

    def update_targets(self, encoder: nn.Module) -> None:
        """Refresh target networks after an optimiser step (every :class:`Target`'s EMA)."""
        for target in self.targets():
            target.update(encoder)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        for old, new in self.renamed_state_keys.items():
            for key in [k for k in state_dict if k.startswith(prefix + old)]:
                state_dict[prefix + new + key[len(prefix + old):]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args)


class ObjectiveRegistry(MutableMapping[str, type[AuxObjective]]):
    """Objective classes by name: those of this package (registered as :mod:`rlaux.objectives`
    imports its modules) and, loaded at the first lookup, those of installed plug-ins.

    Looking up a missing name raises :class:`UnknownObjectiveError` listing the choices."""

    def __init__(self) -> None:
        self._classes: dict[str, type[AuxObjective]] = {}
        self._plugins_loaded = False

    def __getitem__(self, name: str) -> type[AuxObjective]:
        self._load_plugins()
        if name not in self._classes:
            raise UnknownObjectiveError(
                f"Unknown aux objective {name!r}; valid choices: none, {', '.join(sorted(self._classes))}")
        return self._classes[name]

    def __setitem__(self, name: str, cls: type[AuxObjective]) -> None:
        self._classes[name] = cls

    def __delitem__(self, name: str) -> None:
        del self._classes[name]

    def __iter__(self) -> Iterator[str]:
        self._load_plugins()
        return iter(self._classes)

    def __len__(self) -> int:
        self._load_plugins()
        return len(self._classes)

    def _load_plugins(self) -> None:
        """Load every entry point of :data:`PLUGIN_GROUP` once (again after a failure)."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True  # a plug-in that looks names up while it loads does not recurse
        try:
            for entry_point in entry_points(group=PLUGIN_GROUP):
                _load_plugin(entry_point)
        except ObjectivePluginError:
            self._plugins_loaded = False
            raise


def _load_plugin(entry_point: EntryPoint) -> None:
    """Import one plug-in: a module registers its objectives itself, a class is registered here."""
    try:
        loaded = entry_point.load()
        if isinstance(loaded, type) and issubclass(loaded, AuxObjective):
            register_objective(loaded)
        elif not isinstance(loaded, types.ModuleType):
            raise TypeError(f"it points to {loaded!r}, not to a module or an AuxObjective subclass")
    except Exception as exc:
        raise ObjectivePluginError(f"aux objective plug-in {entry_point.name!r} (entry point {entry_point.value!r} "
                                   f"of group {PLUGIN_GROUP!r}) failed to load: {type(exc).__name__}: {exc}") from exc


#: Every objective by name (see :class:`ObjectiveRegistry`).
OBJECTIVES = ObjectiveRegistry()


def register_objective(cls: type[AuxObjective]) -> type[AuxObjective]:
    """Class decorator adding an objective to :data:`OBJECTIVES` under ``cls.name``.

    A name can be taken once: registering another class under it raises ``ValueError`` (the
    same class, or a class of the same module and qualified name re-defined, replaces it)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    known = OBJECTIVES._classes.get(cls.name)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"aux objective name {cls.name!r} of {cls.__module__}.{cls.__qualname__} is taken by "
                         f"{known.__module__}.{known.__qualname__}")
    OBJECTIVES[cls.name] = cls
    return cls


def objective_class(name: str) -> type[AuxObjective]:
    """Look up an objective by name (:class:`UnknownObjectiveError` lists the valid choices)."""
    return OBJECTIVES[name]


def check_spaces(objective: str, obs_space: gym.Space, action_space: gym.Space) -> None:
    """Raise :class:`IncompatibleObjectiveError` unless observations are a ``Box`` and actions
    a ``Box`` or ``Discrete`` space (what the encoders and action embeddings support).

    Dict observations reach the objectives as their flat Box view
    (:class:`rlaux.buffers.dict_obs.DictObsLayout`, as the SB3 bridge builds them), never as a Dict."""
    if isinstance(obs_space, gym.spaces.Dict):
        raise IncompatibleObjectiveError(
            f"aux={objective} reads Box observations; build it with the flat view of the Dict space "
            f"(rlaux.buffers.dict_obs.DictObsLayout(space).flat_space, what rlaux.sb3 does), got {obs_space}"
        )
    if not isinstance(obs_space, gym.spaces.Box):
        raise IncompatibleObjectiveError(
            f"aux={objective} needs Box observations (flat vectors or uint8 images), got {obs_space}"
        )
    if not isinstance(action_space, (gym.spaces.Box, gym.spaces.Discrete)):
        raise IncompatibleObjectiveError(
            f"aux={objective} needs Box (continuous) or Discrete actions, got {action_space}"
        )
