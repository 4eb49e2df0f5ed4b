"""The arithmetic of :class:`rlaux.types.WindowBatch`: the mask prefix and the n-step fields.

Every sampler gathers its own ``[B, L]`` per-step flags (the replay ring and the rollout
storage in :mod:`rlaux.buffers`, the SB3 bridge's :mod:`rlaux.sb3.windows`) and computes the
mask and the n-step fields with these two functions, so a window means the same everywhere.
Both are a handful of vectorised torch ops: no host syncs, no per-sample loops.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


def window_mask(valid: Tensor, done: Tensor) -> Tensor:
    """The ``WindowBatch.mask`` of B windows of L steps, as bool ``[B, L]``.

    ``mask[:, k]`` is True while steps 0..k are all ``valid`` and no step before k ended the
    episode: a done step keeps its mask (its next observation is the episode's final one) and
    every step after it is masked out. The result is a prefix of ones in each row.

    Args:
        valid: bool ``[B, L]``: step k is real data whose next observation is stored.
        done: bool ``[B, L]``: step k ended its episode (terminated or truncated); read only
            where it matters, so values at invalid steps are ignored.
    """
    done_before = torch.cat([torch.zeros_like(done[:, :1]), done[:, :-1]], dim=1)
    ended_before = done_before.to(torch.uint8).cummax(dim=1).values.bool()
    return (valid & ~ended_before).to(torch.uint8).cummin(dim=1).values.bool()


class NStepFields(NamedTuple):
    """The n-step fields of a :class:`~rlaux.types.WindowBatch` (``nstep_reward``,
    ``nstep_discount``, ``nstep_next_obs``)."""

    reward: Tensor
    discount: Tensor
    next_obs: Tensor


def nstep_fields(obs: Tensor, reward: Tensor, terminated: Tensor, mask: Tensor, nstep: int, gamma: float) -> NStepFields:
    """n-step returns of B windows, cut at the episode end or the end of the stored data.

    With ``m = mask[:, :nstep].sum(1)`` (the unmasked steps among the first ``nstep``; at
    least 1, since a window starts at a valid step):

    * ``reward   = sum_{i<m} gamma^i reward[:, i]``
    * ``discount = gamma^m * (1 - terminated[:, m-1])``
    * ``next_obs = obs[:, m]``

    ``terminated[:, m-1]`` is the same as "a termination among the m unmasked steps": the mask
    stops right after the first done step, so only the last unmasked step can have ended the
    episode (tested on every window in ``tests/test_window_math.py``).

    Args:
        obs: ``[B, L+1, *obs_shape]`` window observations.
        reward, terminated: float ``[B, L]``; values at masked steps are ignored.
        mask: bool ``[B, L]`` from :func:`window_mask`.
        nstep: n, 1 <= n <= L.
        gamma: discount per step.
    """
    rows = torch.arange(mask.shape[0], device=mask.device)
    live = mask[:, :nstep]
    m = live.sum(dim=1)  # [B] int64, >= 1
    discounts = gamma ** torch.arange(nstep, device=reward.device, dtype=torch.float32)
    return NStepFields(
        reward=(reward[:, :nstep] * live.to(reward.dtype) * discounts).sum(dim=1),
        discount=gamma ** m.float() * (1.0 - terminated[rows, m - 1]),
        next_obs=obs.flatten(0, 1).index_select(0, rows * obs.shape[1] + m),
    )
