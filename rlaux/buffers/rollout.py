"""On-policy rollout storage: ``num_steps`` x ``num_envs`` transitions kept in time order.

The on-policy loop adds one vector step at a time with the NEXT_STEP autoreset convention
(see ``envs.vector``): a transition whose ``valid`` flag is False is the bogus "reset step"
that follows an episode end; its observation is the previous episode's final observation.
Such transitions are never trained on (advantage 0, ``valid`` 0 in every loss), but their
stored observation and value are exactly what the done transition before them needs:
``V(o_{t+1})`` for a truncated episode is the value stored at t+1.

After the rollout, :meth:`RolloutStorage.finish` stores the observation that follows the
last step and computes GAE advantages and returns; :meth:`RolloutStorage.windows` then
serves contiguous per-env windows for sequence objectives with the same mask semantics
as the replay buffer (:class:`rlaux.types.WindowBatch`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rlaux.types import WindowBatch
from rlaux.windows import nstep_fields, window_mask


def normalize_advantages(adv: torch.Tensor, valid: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(adv - mean) / (std + eps) with mean and (unbiased) std over entries where ``valid`` is 1.

    Invalid entries are returned as 0 so that nothing computed from them can leak into a loss.
    """
    n = valid.sum()
    mean = (adv * valid).sum() / n.clamp(min=1.0)
    var = ((adv - mean) ** 2 * valid).sum() / (n - 1.0).clamp(min=1.0)
    return (adv - mean) / (var.sqrt() + eps) * valid


class RolloutStorage:
    """Fixed-size, preallocated storage of one on-policy rollout, all tensors on ``device``.

    Tensors are time-major, ``[num_steps, num_envs, ...]``; ``obs`` has one extra time slot
    for the observation that follows the last step (set by :meth:`finish`).

    Args:
        num_steps: vector steps per rollout (T).
        num_envs: parallel environments (N).
        obs_shape, obs_dtype: shape and dtype of one observation.
        action_shape, action_dtype: shape and dtype of one action (``()``/int64 for discrete).
        device: where every tensor lives.
    """

    def __init__(
        self,
        num_steps: int,
        num_envs: int,
        obs_shape: Sequence[int],
        obs_dtype: torch.dtype,
        action_shape: Sequence[int],
        action_dtype: torch.dtype,
        device: torch.device | str = "cpu",
    ) -> None:
        if num_steps < 1:
            raise ValueError(f"num_steps={num_steps} must be >= 1")
        if num_envs < 1:
            raise ValueError(f"num_envs={num_envs} must be >= 1")
        self.num_steps = int(num_steps)
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        T, N = self.num_steps, self.num_envs
        kw = {"device": self.device}
        self.obs = torch.zeros((T + 1, N, *obs_shape), dtype=obs_dtype, **kw)
        self.actions = torch.zeros((T, N, *action_shape), dtype=action_dtype, **kw)
        self.logprobs = torch.zeros((T, N), **kw)
        self.values = torch.zeros((T, N), **kw)
        self.rewards = torch.zeros((T, N), **kw)
        self.terminated = torch.zeros((T, N), **kw)
        self.truncated = torch.zeros((T, N), **kw)
        self.valid = torch.zeros((T, N), **kw)
        self.advantages = torch.zeros((T, N), **kw)
        self.returns = torch.zeros((T, N), **kw)
        self.step = 0
        self.finished = False

    # ------------------------------------------------------------------ filling
    @property
    def full(self) -> bool:
        """True once ``num_steps`` vector steps were added."""
        return self.step == self.num_steps

    @property
    def dones(self) -> torch.Tensor:
        """[T, N] 1.0 where the transition ended its episode (terminated or truncated)."""
        return torch.maximum(self.terminated, self.truncated)

    def add(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        logprob: torch.Tensor,
        value: torch.Tensor,
        reward: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        valid: torch.Tensor,
    ) -> None:
        """Store one vector step: (o_t, a_t, log pi(a_t|o_t), V(o_t), r_t, term_t, trunc_t, valid_t).

        Every argument has leading dimension ``num_envs``; dtypes are converted on copy.
        """
        if self.step >= self.num_steps:
            raise RuntimeError(f"RolloutStorage is full ({self.num_steps} steps); call reset() (agent.update does)")
        t = self.step
        self.obs[t].copy_(obs)
        self.actions[t].copy_(action)
        self.logprobs[t].copy_(logprob)
        self.values[t].copy_(value)
        self.rewards[t].copy_(reward)
        self.terminated[t].copy_(terminated)
        self.truncated[t].copy_(truncated)
        self.valid[t].copy_(valid)
        self.step += 1

    def reset(self) -> None:
        """Empty the storage for the next rollout (tensors are reused, not cleared)."""
        self.step = 0
        self.finished = False

    # ------------------------------------------------------------------ advantages
    def finish(self, next_obs: torch.Tensor, next_value: torch.Tensor, gamma: float, gae_lambda: float) -> None:
        """Store the observation after the last step and compute GAE advantages and returns.

        For every step t, with V_{t+1} the value stored at t+1 (``next_value`` for the last):

            delta_t = r_t + gamma * (1 - terminated_t) * V_{t+1} - V_t
            A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1},   done = terminated | truncated

        so a truncated episode bootstraps from the value of its final observation and a
        terminated one does not. Invalid (reset) steps get A_t = 0. ``returns = A + V``.
        """
        if not self.full:
            raise RuntimeError(f"RolloutStorage holds {self.step} of {self.num_steps} steps; fill it before finish()")
        self.obs[self.num_steps].copy_(next_obs)
        next_values = torch.cat([self.values[1:], next_value.reshape(1, self.num_envs).to(self.values)], dim=0)
        not_term = 1.0 - self.terminated
        not_done = 1.0 - self.dones
        deltas = self.rewards + gamma * not_term * next_values - self.values
        last = torch.zeros(self.num_envs, device=self.device)
        for t in reversed(range(self.num_steps)):
            last = (deltas[t] + gamma * gae_lambda * not_done[t] * last) * self.valid[t]
            self.advantages[t] = last
        self.returns.copy_(self.advantages + self.values)
        self.finished = True

    def flat(self) -> dict[str, torch.Tensor]:
        """The rollout flattened to [T*N, ...] (views): obs, actions, logprobs, values,
        advantages, returns, valid. Call after :meth:`finish`."""
        if not self.finished:
            raise RuntimeError("call finish() before flat()")
        T, N = self.num_steps, self.num_envs
        return {
            "obs": self.obs[:T].reshape(T * N, *self.obs.shape[2:]),
            "actions": self.actions.reshape(T * N, *self.actions.shape[2:]),
            "logprobs": self.logprobs.reshape(-1),
            "values": self.values.reshape(-1),
            "advantages": self.advantages.reshape(-1),
            "returns": self.returns.reshape(-1),
            "valid": self.valid.reshape(-1),
        }

    # ------------------------------------------------------------------ windows
    def windows(self, batch_size: int, horizon: int, gamma: float, nstep: int | None = None) -> WindowBatch:
        """Sample ``batch_size`` windows of ``horizon`` consecutive transitions of one env.

        Windows start at a uniformly drawn valid transition. ``mask`` follows the
        :class:`~rlaux.types.WindowBatch` contract: 1 up to and including the step that ends
        the episode (its next observation, the final one, is ``obs[:, j+1]``), 0 after it and
        0 for steps past the end of the rollout (not stored); masked steps hold the stored data
        that follows (finite, unused). The n-step fields use ``nstep`` (default ``horizon``)
        steps, cut at the episode end or the rollout end (:mod:`rlaux.windows`).
        Call after :meth:`finish` (the observation after the last step is needed).
        """
        if not self.finished:
            raise RuntimeError("call finish() (agent.update does) before sampling windows")
        nstep = horizon if nstep is None else nstep
        if horizon < 1:
            raise ValueError(f"horizon={horizon} must be >= 1")
        if not 1 <= nstep <= horizon:
            raise ValueError(f"nstep={nstep} must be between 1 and horizon={horizon}")
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        T, N = self.num_steps, self.num_envs
        start = torch.multinomial(self.valid.reshape(-1), batch_size, replacement=True)
        t0, env = start // N, start % N  # [B]
        t = t0[:, None] + torch.arange(horizon + 1, device=self.device)  # [B, L+1]
        env_l = env[:, None].expand(-1, horizon)
        t_obs = t.clamp(max=T)  # slot T is the obs after the last step
        t_tr = t[:, :horizon].clamp(max=T - 1)
        real = (t[:, :horizon] < T) & (self.valid[t_tr, env_l] > 0)  # in this rollout, not a reset step
        mask = window_mask(real, self.dones[t_tr, env_l] > 0)

        obs = self.obs[t_obs, env[:, None].expand(-1, horizon + 1)]
        reward = self.rewards[t_tr, env_l]
        terminated = self.terminated[t_tr, env_l]
        nstep_reward, nstep_discount, nstep_next_obs = nstep_fields(obs, reward, terminated, mask, nstep, gamma)
        return WindowBatch(
            obs=obs,
            action=self.actions[t_tr, env_l],
            reward=reward,
            terminated=terminated,
            mask=mask.float(),
            nstep_reward=nstep_reward,
            nstep_discount=nstep_discount,
            nstep_next_obs=nstep_next_obs,
        )
