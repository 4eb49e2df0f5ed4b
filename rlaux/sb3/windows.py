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
``terminated`` are zeroed. ``terminated = done and not timeout``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from rlaux.types import WindowBatch


@dataclass
class WindowSource:
    """References to SB3-layout arrays (no copies) and which rows hold data.

    Attributes:
        observations, next_observations: [ring, n_envs, *obs_shape].
        actions: [ring, n_envs, action_dim] (SB3 stores Discrete actions as one column).
        rewards, dones: [ring, n_envs]; ``dones`` = episode ended (terminated or truncated).
        timeouts: [ring, n_envs] 1 where the end was a truncation, or None (all ends terminal).
        oldest, size: ring slot of the oldest stored transition; number stored.
        normalize_obs, normalize_reward: applied to gathered arrays (SB3's VecNormalize hooks).
    """

    observations: np.ndarray
    next_observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    timeouts: np.ndarray | None
    oldest: int
    size: int
    normalize_obs: Callable[[np.ndarray], np.ndarray] | None = None
    normalize_reward: Callable[[np.ndarray], np.ndarray] | None = None

    @property
    def ring(self) -> int:
        return int(self.observations.shape[0])

    @property
    def n_envs(self) -> int:
        return int(self.observations.shape[1])

    def sample(
        self,
        batch_size: int,
        horizon: int,
        action_space: gym.Space,
        device: torch.device | str = "cpu",
        gamma: float = 0.99,
        nstep: int = 1,
    ) -> WindowBatch:
        """``batch_size`` windows of L = max(horizon, nstep) transitions, starts uniform over
        the stored (row, env) pairs (``np.random``, so SB3's ``seed`` makes it reproducible).

        n-step fields: m = unmasked steps among the first ``nstep``;
        ``nstep_reward = sum_{i<m} gamma^i r_i``, ``nstep_discount = gamma^m`` (0 if step m-1
        terminated), ``nstep_next_obs = obs[:, m]``.
        """
        if batch_size < 1 or horizon < 1 or nstep < 1:
            raise ValueError(f"batch_size={batch_size}, horizon={horizon}, nstep={nstep} must all be >= 1")
        if self.size < 1:
            raise ValueError("the buffer holds no transition yet; collect some steps first")
        L = max(horizon, nstep)
        starts = np.random.randint(0, self.size, size=batch_size)
        env = np.random.randint(0, self.n_envs, size=batch_size)
        steps = np.arange(L)
        age = starts[:, None] + steps  # [B, L] position in the stored sequence
        stored = age < self.size
        env2 = env[:, None]
        rows = (self.oldest + np.minimum(age, self.size - 1)) % self.ring
        done = self.dones[rows, env2].astype(bool) & stored
        done_before = np.concatenate([np.zeros_like(done[:, :1]), done[:, :-1]], axis=1)
        mask = stored & ~np.logical_or.accumulate(done_before, axis=1)  # a prefix of ones, mask[:, 0] = 1
        n_valid = mask.sum(axis=1)
        act_rows = (self.oldest + starts[:, None] + np.minimum(steps, n_valid[:, None] - 1)) % self.ring

        obs = np.concatenate([self.observations[act_rows[:, :1], env2], self.next_observations[act_rows, env2]], axis=1)
        maskf = mask.astype(np.float32)
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
            if obs.dtype == np.float64:
                obs = obs.astype(np.float32)
        action = self.actions[act_rows, env2]  # [B, L, action_dim]
        if isinstance(action_space, gym.spaces.Discrete):
            action = action.reshape(batch_size, L).astype(np.int64)
        else:
            action = action.reshape(batch_size, L, *action_space.shape).astype(np.float32)

        rows_b = np.arange(batch_size)
        m = mask[:, :nstep].sum(axis=1)  # >= 1
        discounts = gamma ** np.arange(nstep, dtype=np.float64)
        nstep_reward = (reward[:, :nstep] * discounts).sum(axis=1).astype(np.float32)
        nstep_discount = (gamma ** m.astype(np.float64) * (1.0 - terminated[rows_b, m - 1])).astype(np.float32)

        def t(x: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(x), device=device)

        obs_t = t(obs)
        return WindowBatch(
            obs=obs_t,
            action=t(action),
            reward=t(reward),
            terminated=t(terminated),
            mask=t(maskf),
            nstep_reward=t(nstep_reward),
            nstep_discount=t(nstep_discount),
            nstep_next_obs=obs_t[torch.as_tensor(rows_b, device=device), torch.as_tensor(m, device=device)],
        )
