"""Batch containers shared by buffers, agents and auxiliary objectives, and the rule on
objective lists that the command line and the SB3 bridge share."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

import torch


@dataclass
class WindowBatch:
    """A batch of B windows of L consecutive transitions from one environment stream each.

    Index k in 0..L-1 is the transition (obs[:, k], action[:, k], reward[:, k], obs[:, k + 1]).

    Attributes:
        obs: [B, L+1, *obs_shape] observations o_t .. o_{t+L} (frame stacks rebuilt).
        action: [B, L, *action_shape] actions a_t .. a_{t+L-1} (float for continuous,
            int64 of shape [B, L] for discrete).
        reward: [B, L] rewards r_t .. r_{t+L-1}.
        terminated: [B, L] 1.0 where transition k ended its episode by termination
            (no bootstrapping from obs[:, k+1]).
        mask: [B, L] 1.0 where transition k belongs to the same episode as transition 0 and
            is real data. Once an episode ends (terminated or truncated) at step j, the mask
            is 1 up to and including j and 0 after it; obs[:, j+1] is that episode's final
            observation. Masked steps hold arbitrary (finite) values.
        nstep_reward: [B] sum_{i<m} gamma^i r_{t+i}, m = min(n, steps until episode end).
        nstep_discount: [B] gamma^m, or 0 when the episode terminated within those m steps.
        nstep_next_obs: [B, *obs_shape] o_{t+m}, the observation to bootstrap from.
    """

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    mask: torch.Tensor
    nstep_reward: torch.Tensor
    nstep_discount: torch.Tensor
    nstep_next_obs: torch.Tensor

    @property
    def horizon(self) -> int:
        """Number of transitions L in each window."""
        return self.action.shape[1]

    def to(self, device: torch.device | str) -> WindowBatch:
        """Return a copy with every tensor moved to ``device``."""
        return WindowBatch(**{f.name: getattr(self, f.name).to(device, non_blocking=True) for f in fields(self)})


def check_unique_objectives(names: Iterable[str]) -> None:
    """Raise ``ValueError("aux lists ['tcrl'] more than once")`` when an objective is named twice.

    The one rule (and message) for ``aux=[...]`` lists, on the command line and in the SB3 bridge.
    """
    listed = [str(name) for name in names]
    duplicates = sorted({name for name in listed if listed.count(name) > 1})
    if duplicates:
        raise ValueError(f"aux lists {duplicates} more than once")
