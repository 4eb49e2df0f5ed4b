"""Masked H-step windows (:class:`rlaux.types.WindowBatch`) from SB3's buffer layout.

SB3 keeps transitions as numpy arrays ``[rows, n_envs, ...]``: one row per vector step, the
same env in the same column, and, per transition, its own next observation (the true final
observation at an episode end, since SB3 stores ``infos["terminal_observation"]`` there).
A window of L transitions from (row r, env e) is therefore::

    obs[0]   = observations[r, e]
    obs[k+1] = next_observations[r + k, e]          k = 0 .. L-1
    action[k], reward[k] = actions[r + k, e], rewards[r + k, e]

Rows form a ring of ``ring`` slots holding ``size`` transitions from ``oldest`` on (a replay
buffer that wrapped; a rollout is the ring with ``oldest = 0``). ``mask[k]`` is 1 while step
k is stored (no crossing of the write head) and no earlier step of the window ended an
episode; a done step keeps mask 1 with ``obs[k+1]`` its final observation. Masked steps
repeat the last unmasked step, so every value is real and finite; their rewards and
``terminated`` are zeroed. ``terminated = done and not timeout``. The mask and the n-step
fields are computed by :mod:`rlaux.windows` (in torch, on the CPU, before the transfer).

SB3's memory-optimised replay (``optimize_memory_usage=True``) has no ``next_observations``:
the next observation of row r is ``observations[r + 1]``. At an episode end that slot is
overwritten by the next episode's first observation, so the final observation is lost: a
done step is treated as not stored (it never starts a window and ends the mask before it).

Dict observations (SB3's ``DictReplayBuffer``, ``HerReplayBuffer``, ``DictRolloutBuffer``)
are dicts of such arrays: every key is gathered at the same rows, normalised as a dict, and
the window's ``obs`` is their flat view (:class:`rlaux.buffers.dict_obs.DictObsLayout`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlaux.buffers.dict_obs import DictObsLayout
from rlaux.types import WindowBatch
from rlaux.windows import nstep_fields, window_mask

_MAX_REDRAW_ROUNDS = 32

#: One observation array, or one per key of a Dict observation space.
Observations = np.ndarray | Mapping[str, np.ndarray]


def _take(observations: Observations, rows: np.ndarray, cols: np.ndarray) -> Observations:
    """``observations[rows, cols]``, key by key for a dict."""
    if isinstance(observations, Mapping):
        return {key: array[rows, cols] for key, array in observations.items()}
    return observations[rows, cols]


def _concat(first: Observations, rest: Observations) -> Observations:
    """Concatenate along the window axis (axis 1), key by key for a dict."""
    if isinstance(first, Mapping):
        return {key: np.concatenate([first[key], rest[key]], axis=1) for key in first}
    return np.concatenate([first, rest], axis=1)


@dataclass
class WindowSource:
    """References to SB3-layout arrays (no copies) and which rows hold data.

    Attributes:
        observations: [ring, n_envs, *obs_shape], or a dict of such arrays (Dict spaces).
        next_observations: the same layout, or None for SB3's memory-optimised layout (the
            next observation of row r is ``observations[r + 1]``; done steps have none).
        actions: [ring, n_envs, action_dim] (SB3 stores Discrete actions as one column).
        rewards, dones: [ring, n_envs]; ``dones`` = episode ended (terminated or truncated).
        timeouts: [ring, n_envs] 1 where the end was a truncation, or None (all ends terminal).
        oldest, size: ring slot of the oldest stored transition; number stored.
        normalize_obs, normalize_reward: applied to gathered arrays (SB3's VecNormalize hooks;
            ``normalize_obs`` gets the dict for Dict spaces).
        obs_layout: the flat view of Dict observations (None for array observations).
    """

    observations: Observations
    next_observations: Observations | None
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    timeouts: np.ndarray | None
    oldest: int
    size: int
    normalize_obs: Callable[[Any], Any] | None = None
    normalize_reward: Callable[[np.ndarray], np.ndarray] | None = None
    obs_layout: DictObsLayout | None = None

    def __post_init__(self) -> None:
        if isinstance(self.observations, Mapping) != (self.obs_layout is not None):
            raise ValueError("WindowSource: dict observations need an obs_layout, array observations none")

    @property
    def ring(self) -> int:
        """Rows of the arrays (the ring's length)."""
        return int(self.dones.shape[0])

    @property
    def n_envs(self) -> int:
        """Columns of the arrays (parallel envs)."""
        return int(self.dones.shape[1])

    @property
    def final_obs_stored(self) -> bool:
        """Whether a done step's next (final) observation is stored (False: memory-optimised layout)."""
        return self.next_observations is not None

    def sample(
        self,
        batch_size: int,
        horizon: int,
        action_space: gym.Space,
        device: torch.device | str = "cpu",
        gamma: float = 0.99,
        nstep: int = 1,
    ) -> WindowBatch:
        """``batch_size`` windows of L = max(horizon, nstep) transitions (see :meth:`windows`),
        starts uniform over the stored (row, env) pairs that can start one (``np.random``, so
        SB3's ``seed`` makes it reproducible)."""
        if batch_size < 1 or horizon < 1 or nstep < 1:
            raise ValueError(f"batch_size={batch_size}, horizon={horizon}, nstep={nstep} must all be >= 1")
        if self.size < 1:
            raise ValueError("the buffer holds no transition yet; collect some steps first")
        age = np.random.randint(0, self.size, size=batch_size)
        env = np.random.randint(0, self.n_envs, size=batch_size)
        if not self.final_obs_stored:
            self._redraw_done_starts(age, env)
        return self.windows(age, env, horizon, action_space, device, gamma, nstep)

    def _redraw_done_starts(self, age: np.ndarray, env: np.ndarray) -> None:
        """Replace, in place, starts at done steps (no next observation) by uniform draws over
        the other stored steps: rejection, with an exact fallback when those are rare."""
        def done_at(a: np.ndarray, e: np.ndarray) -> np.ndarray:
            return self.dones[(self.oldest + a) % self.ring, e].astype(bool)

        bad = done_at(age, env)
        for _ in range(_MAX_REDRAW_ROUNDS):
            n_bad = int(bad.sum())
            if n_bad == 0:
                return
            age[bad] = np.random.randint(0, self.size, size=n_bad)
            env[bad] = np.random.randint(0, self.n_envs, size=n_bad)
            bad = done_at(age, env)
        ok_age, ok_env = np.nonzero(~done_at(np.arange(self.size)[:, None], np.arange(self.n_envs)[None, :]))
        if len(ok_age) == 0:
            raise ValueError("every stored transition ends an episode, and optimize_memory_usage=True overwrote "
                             "their final observations: no window can start; collect more steps")
        pick = np.random.randint(0, len(ok_age), size=int(bad.sum()))
        age[bad], env[bad] = ok_age[pick], ok_env[pick]

    def windows(
        self,
        age: np.ndarray,
        env: np.ndarray,
        horizon: int,
        action_space: gym.Space,
        device: torch.device | str = "cpu",
        gamma: float = 0.99,
        nstep: int = 1,
    ) -> WindowBatch:
        """The windows of L = max(horizon, nstep) transitions that start at stored position
        ``age[b]`` (0 = the oldest stored row) of env ``env[b]``, on ``device``.

        The start must be a stored step with a next observation. n-step fields
        (:func:`rlaux.windows.nstep_fields`): m = unmasked steps among the first ``nstep``;
        ``nstep_reward = sum_{i<m} gamma^i r_i``, ``nstep_discount = gamma^m`` (0 if step m-1
        terminated), ``nstep_next_obs = obs[:, m]``.
        """
        batch_size, L = len(age), max(horizon, nstep)
        steps = np.arange(L)
        ages = age[:, None] + steps  # [B, L] position in the stored sequence
        stored = ages < self.size
        env2 = env[:, None]
        rows = (self.oldest + np.minimum(ages, self.size - 1)) % self.ring
        done = self.dones[rows, env2].astype(bool)
        real = stored if self.final_obs_stored else stored & ~done
        mask = window_mask(torch.from_numpy(real), torch.from_numpy(done))  # a prefix of ones, mask[:, 0] = 1
        n_valid = mask.sum(dim=1).numpy()
        act_rows = (self.oldest + age[:, None] + np.minimum(steps, n_valid[:, None] - 1)) % self.ring

        if self.next_observations is None:
            next_obs = _take(self.observations, (act_rows + 1) % self.ring, env2)
        else:
            next_obs = _take(self.next_observations, act_rows, env2)
        obs = _concat(_take(self.observations, act_rows[:, :1], env2), next_obs)
        maskf = mask.numpy().astype(np.float32)
        reward = self.rewards[act_rows, env2].astype(np.float32)
        if self.normalize_reward is not None:
            reward = self.normalize_reward(reward).astype(np.float32)
        reward = reward * maskf
        term = self.dones[act_rows, env2].astype(bool)
        if self.timeouts is not None:
            term &= ~self.timeouts[act_rows, env2].astype(bool)
        terminated = term.astype(np.float32) * maskf
        if self.normalize_obs is not None:
            obs = self.normalize_obs(obs)
        if self.obs_layout is not None:
            obs = self.obs_layout.flatten(obs, lead_ndim=2)
        elif self.normalize_obs is not None and obs.dtype == np.float64:
            obs = obs.astype(np.float32)
        action = self.actions[act_rows, env2]  # [B, L, action_dim]
        if isinstance(action_space, gym.spaces.Discrete):
            action = action.reshape(batch_size, L).astype(np.int64)
        else:
            action = action.reshape(batch_size, L, *action_space.shape).astype(np.float32)

        def t(x: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(x), device=device)

        obs_t, reward_t, terminated_t, mask_t = t(obs), t(reward), t(terminated), mask.to(device)
        nstep_reward, nstep_discount, nstep_next_obs = nstep_fields(obs_t, reward_t, terminated_t, mask_t, nstep, gamma)
        return WindowBatch(
            obs=obs_t,
            action=t(action),
            reward=reward_t,
            terminated=terminated_t,
            mask=t(maskf),
            nstep_reward=nstep_reward,
            nstep_discount=nstep_discount,
            nstep_next_obs=nstep_next_obs,
        )
