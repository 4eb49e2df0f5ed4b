"""The flat view of Dict observations that the aux objectives read.

A Dict observation (``{"observation": ..., "desired_goal": ...}``, several sensors) is seen by
the objectives as ONE float32 vector: every key's values flattened, concatenated in the
space's key order. The objectives then treat it like any Box state (``batch.obs[:, k]``
slices, one batched encoder call), and the encoder that reads it splits it back into the
dict its network expects (:meth:`DictObsLayout.unflatten`). The view is exact: Discrete
entries are their index, image entries their uint8 values (SB3's preprocessing, one-hot and
``/ 255``, runs on the unflattened dict as on the policy's own input).

Pixel-specific parts of objectives (TACO's random shift) do not apply to the flat view.
"""

from __future__ import annotations

from collections.abc import Mapping

import gymnasium as gym
import numpy as np
import torch

#: Subspaces a Dict observation may hold (SB3's Dict buffers support the same).
SUPPORTED_SUBSPACES = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)


def entry_shape(space: gym.Space) -> tuple[int, ...]:
    """The shape of one observation of a Dict entry: the Box/MultiBinary shape, the
    MultiDiscrete ``nvec`` shape, ``()`` for Discrete (an index)."""
    if isinstance(space, gym.spaces.Discrete):
        return ()
    if isinstance(space, gym.spaces.MultiDiscrete):
        return tuple(space.nvec.shape)
    return tuple(space.shape)


class DictObsLayout:
    """Where each key of a Dict observation space sits in the flat vector.

    Args:
        space: a ``gym.spaces.Dict`` of Box, Discrete, MultiDiscrete or MultiBinary entries
            (not nested); ``ValueError`` names any other entry.

    Attributes:
        keys: the keys, in the space's order.
        shapes: ``{key: entry_shape}``.
        slices: ``{key: slice of the flat vector}``.
        flat_space: the ``Box(-inf, inf, (size,), float32)`` the objectives are built with.
    """

    def __init__(self, space: gym.spaces.Dict) -> None:
        if not isinstance(space, gym.spaces.Dict):
            raise ValueError(f"DictObsLayout needs a gymnasium Dict space, got {space}")
        self.space = space
        self.keys: list[str] = list(space.spaces)
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.slices: dict[str, slice] = {}
        start = 0
        for key, subspace in space.spaces.items():
            if not isinstance(subspace, SUPPORTED_SUBSPACES):
                valid = ", ".join(cls.__name__ for cls in SUPPORTED_SUBSPACES)
                raise ValueError(f"Dict observation entry {key!r} is {subspace}; aux objectives support entries "
                                 f"of type {valid} (no nested Dict or Tuple)")
            shape = entry_shape(subspace)
            size = int(np.prod(shape))
            self.shapes[key] = shape
            self.slices[key] = slice(start, start + size)
            start += size
        self.size = start
        self.flat_space = gym.spaces.Box(-np.inf, np.inf, shape=(self.size,), dtype=np.float32)

    def flatten(self, observations: Mapping[str, np.ndarray], lead_ndim: int) -> np.ndarray:
        """``{key: [*lead, *entry]}`` (numpy; an entry may carry SB3's extra ``1`` axis for
        Discrete) -> float32 ``[*lead, size]``; ``lead_ndim`` = number of leading batch dims."""
        lead = np.shape(observations[self.keys[0]])[:lead_ndim]
        parts = [np.asarray(observations[key], dtype=np.float32).reshape(*lead, -1) for key in self.keys]
        flat = np.concatenate(parts, axis=-1)
        if flat.shape[-1] != self.size:
            raise ValueError(f"Dict observations flatten to {flat.shape[-1]} values, the space {self.space} to "
                             f"{self.size}")
        return flat

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """float ``[*lead, size]`` -> ``{key: [*lead, *entry_shape]}`` (views, no copies)."""
        lead = flat.shape[:-1]
        return {key: flat[..., self.slices[key]].reshape(*lead, *self.shapes[key]) for key in self.keys}


def dict_obs_layout(space: gym.Space) -> DictObsLayout | None:
    """The flat view of a Dict observation space; None for any other space (read as it is)."""
    return DictObsLayout(space) if isinstance(space, gym.spaces.Dict) else None
