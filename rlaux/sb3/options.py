"""What a user passes to the SB3 bridge: the objectives (``aux=``) and how they train (``aux_kwargs=``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from rlaux.types import check_unique_objectives

OPTIMIZERS = ("separate", "joint")
ENCODERS = ("critic", "actor")


@dataclass
class AuxOptions:
    """How the auxiliary objectives train inside an SB3 algorithm (``aux_kwargs=dict(...)``).

    Attributes:
        optimizer: ``separate`` (default, as TCRL and TACO): the aux suite has its own Adam
            over the objectives' heads and the features extractor and steps it
            ``gradient_steps`` times per ``train()`` call; ``joint``: the aux loss is added to the
            RL loss of the same gradient step (same backward, clipping and optimiser; the
            objectives' heads join that optimiser as an extra parameter group).
        encoder: which SB3 features extractor the aux loss shapes, named by the network that
            reads it: ``critic`` (default: SAC/TD3's critic extractor, DQN's Q-network
            extractor, PPO/A2C's value extractor) or ``actor`` (the policy's extractor). PPO and
            A2C share one extractor by default, so both names mean that one. SAC/TD3 with
            ``share_features_extractor=True`` train the shared extractor with the actor loss
            only, so ``critic`` is refused there; DQN has no actor.
        detach_rl: ``None`` = the objectives' recipe (TCRL, proto_value: the RL losses do not
            train the extractor; TACO, predictive: they do); True/False forces it.
        lr, weight_decay, grad_clip: the separate optimiser's Adam settings and gradient-norm
            clip. In joint mode ``grad_clip`` clips the objectives' own heads only (the
            extractor's gradient is clipped with the RL gradient, by the algorithm).
        batch_size: windows per aux step; None = the algorithm's ``batch_size``.
        gradient_steps: separate mode only: aux steps per ``train()`` call; None = as many as
            the RL optimiser steps of that call (off-policy: ``gradient_steps``; PPO/A2C: one
            per minibatch step).
    """

    optimizer: str = "separate"
    encoder: str = "critic"
    detach_rl: bool | None = None
    lr: float = 3e-4
    weight_decay: float = 0.0
    grad_clip: float = 10.0
    batch_size: int | None = None
    gradient_steps: int | None = None

    def __post_init__(self) -> None:
        def fail(key: str, rule: str) -> None:
            raise ValueError(f"aux_kwargs[{key!r}]={getattr(self, key)!r} is invalid: must be {rule}")

        if self.optimizer not in OPTIMIZERS:
            fail("optimizer", f"one of {', '.join(OPTIMIZERS)}")
        if self.encoder not in ENCODERS:
            fail("encoder", f"one of {', '.join(ENCODERS)}")
        if self.detach_rl not in (None, True, False):
            fail("detach_rl", "None, True or False")
        if not float(self.lr) > 0:
            fail("lr", "> 0")
        if not float(self.weight_decay) >= 0:
            fail("weight_decay", ">= 0")
        if not float(self.grad_clip) >= 0:
            fail("grad_clip", ">= 0 (0 disables clipping)")
        if self.batch_size is not None and not _positive_int(self.batch_size):
            fail("batch_size", "None or an integer >= 1")
        if self.gradient_steps is not None:
            if not _positive_int(self.gradient_steps):
                fail("gradient_steps", "None or an integer >= 1")
            if self.optimizer == "joint":
                fail("gradient_steps", "None with optimizer='joint' (joint mode takes one aux step per RL step)")

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any] | AuxOptions | None) -> AuxOptions:
        """Build from ``aux_kwargs`` (a dict, an :class:`AuxOptions` or None), naming any unknown key."""
        if kwargs is None:
            return cls()
        if isinstance(kwargs, AuxOptions):
            return cls(**asdict(kwargs))
        if not isinstance(kwargs, Mapping):
            raise TypeError(f"aux_kwargs must be a dict or AuxOptions, got {type(kwargs).__name__}")
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise ValueError(f"Unknown aux_kwargs key(s) {unknown}; valid keys: {', '.join(valid)}")
        return cls(**dict(kwargs))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (saved with the model)."""
        return asdict(self)


def _positive_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def normalize_aux_spec(aux: str | Sequence[str] | Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``aux=`` as ``{objective name: options}``.

    Accepts None (no objectives), one name (``"tcrl"``), a list of names (``["tcrl",
    "predictive"]``) or a dict of options per name (``{"tcrl": {"horizon": 3}}``). Names are
    checked when the model is built (an unknown one lists the valid choices).
    """
    if aux is None:
        return {}
    if isinstance(aux, str):
        return {} if aux == "none" else {aux: {}}
    if isinstance(aux, Mapping):
        out: dict[str, dict[str, Any]] = {}
        for name, options in aux.items():
            if options is not None and not isinstance(options, Mapping):
                raise TypeError(f"aux[{name!r}] must be a dict of options or None, got {options!r}")
            out[str(name)] = dict(options or {})
        return out
    if isinstance(aux, Sequence):
        names = [str(name) for name in aux]
        check_unique_objectives(names)
        return {name: {} for name in names}
    raise TypeError(f"aux must be None, a name, a list of names or a dict of options, got {type(aux).__name__}")


def saved_setting_differences(saved_spec: Mapping[str, Mapping[str, Any]], saved_options: Mapping[str, Any],
                              aux: Any, aux_kwargs: Any) -> list[str]:
    """How ``aux=`` / ``aux_kwargs=`` given to ``load`` differ from what the model was saved with.

    Only what is given is compared: ``aux=["tcrl"]`` matches a saved ``{"tcrl": {"horizon": 2}}``;
    ``aux={"tcrl": {"horizon": 5}}`` does not. ``None`` means "not given". Returns one phrase per
    difference (empty: nothing differs).
    """
    out: list[str] = []
    if aux is not None:
        requested = normalize_aux_spec(aux)
        if sorted(requested) != sorted(saved_spec):
            out.append(f"objectives {sorted(requested)} requested, {sorted(saved_spec)} saved")
        else:
            out += [f"aux[{name!r}][{key!r}]={value!r} requested, {saved_spec[name].get(key, '<default>')!r} saved"
                    for name, options in requested.items() for key, value in options.items()
                    if key not in saved_spec[name] or saved_spec[name][key] != value]
    if aux_kwargs is not None:
        requested_options = AuxOptions.from_kwargs(aux_kwargs).to_dict()
        given = aux_kwargs.to_dict() if isinstance(aux_kwargs, AuxOptions) else dict(aux_kwargs)
        out += [f"aux_kwargs[{key!r}]={requested_options[key]!r} requested, {saved_options.get(key)!r} saved"
                for key in given if saved_options.get(key) != requested_options[key]]
    return out
