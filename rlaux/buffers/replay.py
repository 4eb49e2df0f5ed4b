"""Off-policy replay: per-env rings of transitions, sampled as masked windows with n-step returns.

Storage layout. Every tensor is ``[num_envs, ring, ...]`` with ``ring = capacity // num_envs``;
``add`` writes one vector step at the same ring slot for every env. Slot ``s`` holds the
transition (o_s, a_s, r_s, terminated_s, truncated_s, valid_s); its next observation is the
observation in slot ``s + 1``, so observations are stored once and there is no ``next_obs``
array. A transition whose ``valid`` flag is False is the bogus NEXT_STEP "reset step"
(see ``envs.vector``): its observation is the previous episode's final observation, which
is exactly the next observation of the done transition before it.

Frame stacks (``frame_stack = K > 1``) store only the newest frame of each observation and
an episode-step counter (saturated, uint8). The stack of slot ``s`` is rebuilt from slots
``s - min(j, ep_step_s)`` for j = K-1..0, i.e. frames before the episode's first
observation repeat that first frame, as Gymnasium's ``FrameStackObservation`` (default
``padding_type="reset"``) does.

Indices are handled as *ages* (0 = oldest stored vector step, ``size - 1`` = newest), so a
window can never reach past the write head: steps whose next observation is not stored yet
are masked out, and steps beyond the mask re-read the last valid slot.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from rlaux.types import WindowBatch
from rlaux.windows import nstep_fields, window_mask

_STATE_VERSION = 1
_MAX_REJECTION_ROUNDS = 32


def _torch_dtype(np_dtype: Any) -> torch.dtype:
    """The torch dtype that matches a numpy dtype (``uint8`` -> ``torch.uint8``, ...)."""
    return torch.from_numpy(np.zeros(0, dtype=np_dtype)).dtype


class ReplayBuffer:
    """Replay of ``capacity`` transitions from ``num_envs`` parallel envs, sampled as windows.

    Args:
        capacity: total transitions across all envs; each env gets a ring of
            ``capacity // num_envs`` slots (at least 2).
        num_envs: number of parallel environments feeding :meth:`add`.
        obs_space: a ``Box``; uint8 pixels are stored as uint8, states as their dtype.
        action_space: ``Box`` (stored float32) or ``Discrete`` (stored int64, shape ``[]``).
        frame_stack: K > 1 means ``obs_space.shape[0] == K * C`` holds K frames of C channels,
            oldest first; only the newest C channels are stored and stacks are rebuilt on sampling.
        device: where storage lives and where sampled batches are returned.
        seed: seed of the buffer's own ``torch.Generator`` (all sampling randomness).
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        obs_space: gym.spaces.Box,
        action_space: gym.Space,
        frame_stack: int = 1,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs={num_envs} must be >= 1")
        if capacity // max(num_envs, 1) < 2:
            raise ValueError(f"capacity={capacity} must give every one of the {num_envs} envs at least 2 slots")
        if not isinstance(obs_space, gym.spaces.Box):
            raise ValueError(f"obs_space must be a gymnasium Box, got {obs_space!r}")
        if not 1 <= frame_stack <= 256:
            raise ValueError(f"frame_stack={frame_stack} must be in 1..256")
        obs_shape = tuple(obs_space.shape)
        if frame_stack > 1 and (len(obs_shape) == 0 or obs_shape[0] % frame_stack != 0):
            raise ValueError(f"frame_stack={frame_stack} must divide the first axis of obs shape {obs_shape}")

        self.capacity = int(capacity)
        self.num_envs = int(num_envs)
        self.ring = self.capacity // self.num_envs
        self.frame_stack = int(frame_stack)
        self.device = torch.device(device)
        self.obs_shape = obs_shape
        self.frame_shape = (obs_shape[0] // frame_stack, *obs_shape[1:]) if frame_stack > 1 else obs_shape
        if isinstance(action_space, gym.spaces.Discrete):
            self.action_shape: tuple[int, ...] = ()
            action_dtype = torch.int64
        elif isinstance(action_space, gym.spaces.Box):
            self.action_shape = tuple(action_space.shape)
            action_dtype = torch.float32
        else:
            raise ValueError(f"action_space must be Box or Discrete, got {type(action_space).__name__}")

        N, R, kw = self.num_envs, self.ring, {"device": self.device}
        self._storage: dict[str, Tensor] = {
            "obs": torch.zeros((N, R, *self.frame_shape), dtype=_torch_dtype(obs_space.dtype), **kw),
            "action": torch.zeros((N, R, *self.action_shape), dtype=action_dtype, **kw),
            "reward": torch.zeros((N, R), dtype=torch.float32, **kw),
            "terminated": torch.zeros((N, R), dtype=torch.bool, **kw),
            "truncated": torch.zeros((N, R), dtype=torch.bool, **kw),
            "valid": torch.zeros((N, R), dtype=torch.bool, **kw),
        }
        if self.frame_stack > 1:
            # observations since the episode's first one, saturated at 255 (only min(., K-1) is read)
            self._storage["ep_step"] = torch.zeros((N, R), dtype=torch.uint8, **kw)

        self.pos = 0  # next slot to write (the same for every env)
        self.size = 0  # vector steps stored per env
        self._num_valid = 0  # valid transitions stored, all envs
        self._newest_valid = 0  # valid transitions in the newest slot (their next obs is not stored yet)
        self._ep_step = torch.zeros(N, dtype=torch.int64, **kw)  # episode step of the newest obs per env
        self._prev_valid = torch.zeros(N, dtype=torch.bool, **kw)  # False: the next obs starts an episode
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(int(seed))

    # ------------------------------------------------------------------ writing
    def add(
        self,
        obs: np.ndarray | Tensor,
        action: np.ndarray | Tensor,
        reward: np.ndarray | Tensor,
        terminated: np.ndarray | Tensor,
        truncated: np.ndarray | Tensor,
        valid: np.ndarray | Tensor,
    ) -> None:
        """Store one vector step: ``obs`` [N, *obs_shape] is the observation ``action`` was taken in.

        ``valid[i]`` False marks env i's bogus reset step: its ``obs`` (the previous episode's
        final observation) is stored, its action and reward are never used, and the
        observation of the following ``add`` starts a new episode.
        """
        N, st = self.num_envs, self._storage
        obs_t = torch.as_tensor(obs)
        if tuple(obs_t.shape) != (N, *self.obs_shape):
            raise ValueError(f"obs shape {tuple(obs_t.shape)} != expected {(N, *self.obs_shape)}")
        if self.frame_stack > 1:
            obs_t = obs_t[:, -self.frame_shape[0]:]
        action_t = torch.as_tensor(action)
        if action_t.numel() != N * int(np.prod(self.action_shape)):
            raise ValueError(f"action shape {tuple(action_t.shape)} != expected {(N, *self.action_shape)}")
        valid_cpu = torch.as_tensor(valid, dtype=torch.bool).reshape(-1)
        if valid_cpu.numel() != N:
            raise ValueError(f"valid has {valid_cpu.numel()} entries, expected num_envs={N}")
        valid_t = valid_cpu.to(self.device)

        p = self.pos
        if self.size == self.ring:
            self._num_valid -= int(st["valid"][:, p].sum())
        ep = torch.where(self._prev_valid, self._ep_step + 1, torch.zeros_like(self._ep_step))
        st["obs"][:, p] = obs_t.to(self.device)
        st["action"][:, p] = action_t.to(self.device).reshape(N, *self.action_shape)
        st["reward"][:, p] = torch.as_tensor(reward).to(self.device, torch.float32).reshape(N)
        st["terminated"][:, p] = torch.as_tensor(terminated).to(self.device, torch.bool).reshape(N)
        st["truncated"][:, p] = torch.as_tensor(truncated).to(self.device, torch.bool).reshape(N)
        st["valid"][:, p] = valid_t
        if self.frame_stack > 1:
            st["ep_step"][:, p] = ep.clamp(max=255).to(torch.uint8)
        self._ep_step = ep
        self._prev_valid = valid_t
        self.pos = (p + 1) % self.ring
        self.size = min(self.size + 1, self.ring)
        self._newest_valid = int(valid_cpu.sum())
        self._num_valid += self._newest_valid

    def end_episodes(self) -> None:
        """Declare a break in every env's stream (e.g. the envs were reset outside NEXT_STEP
        autoreset, as on a resume without env state): the newest transitions, whose next
        observation will never arrive, become invalid and the next :meth:`add` starts new episodes.
        """
        if self.size > 0:
            self._storage["valid"][:, (self.pos - 1) % self.ring] = False
            self._num_valid -= self._newest_valid
            self._newest_valid = 0
        self._prev_valid = torch.zeros_like(self._prev_valid)

    # ------------------------------------------------------------------ counting
    def __len__(self) -> int:
        """Number of valid transitions stored (over all envs)."""
        return self._num_valid

    @property
    def nbytes(self) -> int:
        """Bytes of transition storage (all per-slot tensors)."""
        return sum(t.numel() * t.element_size() for t in self._storage.values())

    @property
    def _oldest(self) -> int:
        return (self.pos - self.size) % self.ring

    def _start_ok(self, env: Tensor, age: Tensor) -> Tensor:
        """Whether (env, age) can start a window: a valid transition whose next observation is
        stored and, for frame stacks, whose stack's frames have not been overwritten."""
        rows = env * self.ring + (self._oldest + age) % self.ring  # flat [env, slot] index
        ok = self._storage["valid"].view(-1).index_select(0, rows) & (age < self.size - 1)
        if self.frame_stack > 1:
            back = self._storage["ep_step"].view(-1).index_select(0, rows).long().clamp(max=self.frame_stack - 1)
            ok &= age >= back
        return ok

    def num_window_starts(self) -> int:
        """Number of transitions a window can start from (see :meth:`sample`)."""
        if self.size < 2:
            return 0
        count = self._num_valid - self._newest_valid
        # Only the K-1 oldest steps of a full ring can have overwritten stack frames.
        k = min(self.frame_stack - 1, self.size - 1)
        if k > 0 and self.size == self.ring:
            age = torch.arange(k, device=self.device).repeat(self.num_envs)
            env = torch.arange(self.num_envs, device=self.device).repeat_interleave(k)
            slot = (self._oldest + age) % self.ring
            count -= int((self._storage["valid"][env, slot] & ~self._start_ok(env, age)).sum())
        return count

    def can_sample(self, horizon: int = 1) -> bool:
        """True when a window can be sampled: some transition can start one and each ring
        holds at least ``horizon + 1`` vector steps."""
        return self.size > horizon and self.num_window_starts() > 0

    # ------------------------------------------------------------------ sampling
    def _sample_starts(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """Uniform (env, age) pairs over all window starts: rejection from all stored slots,
        with an exact fallback when starts are rare."""
        total = self.num_envs * self.size
        flat = torch.randint(total, (batch_size,), generator=self._gen, device=self.device)
        for _ in range(_MAX_REJECTION_ROUNDS):
            env, age = flat.div(self.size, rounding_mode="floor"), flat.remainder(self.size)
            bad = ~self._start_ok(env, age)
            n_bad = int(bad.sum())
            if n_bad == 0:
                return env, age
            flat[bad] = torch.randint(total, (n_bad,), generator=self._gen, device=self.device)
        every = torch.arange(total, device=self.device)
        starts = every[self._start_ok(every // self.size, every % self.size)]
        bad = ~self._start_ok(flat // self.size, flat % self.size)
        pick = torch.randint(len(starts), (int(bad.sum()),), generator=self._gen, device=self.device)
        flat[bad] = starts[pick]
        return flat // self.size, flat % self.size

    def _gather_obs(self, env: Tensor, slot: Tensor) -> Tensor:
        """Observations at ``slot`` ([B, P] ring indices) of ``env`` ([B]), stacks rebuilt."""
        st = self._storage
        env = env[:, None]
        if self.frame_stack == 1:
            rows = (env * self.ring + slot).reshape(-1)
            return st["obs"].flatten(0, 1).index_select(0, rows).view(*slot.shape, *self.obs_shape)
        K = self.frame_stack
        back = torch.arange(K - 1, -1, -1, device=self.device)  # oldest frame first
        ep = st["ep_step"][env, slot].long()
        frame_slot = (slot[..., None] - torch.minimum(back, ep[..., None])) % self.ring  # [B, P, K]
        rows = (env[..., None] * self.ring + frame_slot).reshape(-1)
        frames = st["obs"].flatten(0, 1).index_select(0, rows)  # much faster than x[env, slot] on CPU
        B, P = slot.shape
        return frames.view(B, P, *self.obs_shape)

    def sample(self, batch_size: int, horizon: int = 1, nstep: int = 1, gamma: float = 0.99) -> WindowBatch:
        """Sample ``batch_size`` windows of L = max(horizon, nstep) transitions.

        Starts are uniform over valid transitions whose next observation is stored (and, with
        frame stacks, whose stack frames are still stored). ``mask[k]`` is 1 while transitions
        0..k are valid, in the start's episode and have their next observation stored; a done
        step j keeps ``mask[j] = 1`` with ``obs[:, j+1]`` its final observation. Masked-out
        steps repeat the last unmasked observation/action and have reward and terminated 0.
        The mask and the n-step fields are :func:`rlaux.windows.window_mask` and
        :func:`rlaux.windows.nstep_fields`: a window that reaches the newest stored step (no
        episode end) bootstraps from there.
        """
        if batch_size < 1 or horizon < 1 or nstep < 1:
            raise ValueError(f"batch_size={batch_size}, horizon={horizon}, nstep={nstep} must all be >= 1")
        L = max(horizon, nstep)
        if L >= self.ring:
            raise ValueError(f"window length max(horizon, nstep)={L} must be < ring size {self.ring}")
        if self.num_window_starts() == 0:
            raise ValueError("no transition can start a window yet; check can_sample() first")
        st, dev, R = self._storage, self.device, self.ring
        env, age = self._sample_starts(batch_size)
        B = batch_size
        if L == 1:
            return self._sample_single(env, age, gamma)
        base = (env * R)[:, None]  # flat index of slot 0 of each window's env ring

        def take(name: str, slots: Tensor) -> Tensor:  # st[name][env, slots] as one flat gather
            return st[name].view(-1).index_select(0, (base + slots).view(-1)).view(slots.shape)

        steps = torch.arange(L, device=dev)
        ages = age[:, None] + steps  # [B, L]
        slots = (self._oldest + ages.clamp(max=self.size - 1)) % R
        valid = take("valid", slots) & (ages < self.size - 1)
        mask = window_mask(valid, take("terminated", slots) | take("truncated", slots))  # [B, L], prefix of ones
        n_valid = mask.sum(dim=1, keepdim=True)  # >= 1

        act_slots = (self._oldest + age[:, None] + torch.minimum(steps, n_valid - 1)) % R
        obs_pos = torch.minimum(torch.arange(L + 1, device=dev), n_valid)
        obs_slots = (self._oldest + age[:, None] + obs_pos) % R
        maskf = mask.float()
        obs = self._gather_obs(env, obs_slots)
        act_rows = (base + act_slots).view(-1)
        action = st["action"].flatten(0, 1).index_select(0, act_rows).view(B, L, *self.action_shape)
        reward = take("reward", act_slots) * maskf
        terminated = take("terminated", act_slots).float() * maskf
        nstep_reward, nstep_discount, nstep_next_obs = nstep_fields(obs, reward, terminated, mask, nstep, gamma)
        return WindowBatch(
            obs=obs,
            action=action,
            reward=reward,
            terminated=terminated,
            mask=maskf,
            nstep_reward=nstep_reward,
            nstep_discount=nstep_discount,
            nstep_next_obs=nstep_next_obs,
        )

    def _sample_single(self, env: Tensor, age: Tensor, gamma: float) -> WindowBatch:
        """:meth:`sample` for windows of one transition (horizon = nstep = 1), the common
        SAC/DQN case: every start is a valid transition whose next observation is stored, so
        the mask is 1 and the window is (o_t, a_t, r_t, o_{t+1}). Same values as the general path
        (``nstep_fields`` with m = 1), without its scans."""
        st, R = self._storage, self.ring
        slot = (self._oldest + age) % R
        rows = env * R + slot  # [B] flat index of the transition
        obs = self._gather_obs(env, torch.stack([slot, (slot + 1) % R], dim=1))  # [B, 2, *obs_shape]
        action = st["action"].flatten(0, 1).index_select(0, rows)
        reward = st["reward"].view(-1).index_select(0, rows)
        terminated = st["terminated"].view(-1).index_select(0, rows).float()
        B = rows.shape[0]
        return WindowBatch(
            obs=obs,
            action=action.view(B, 1, *self.action_shape),
            reward=reward.view(B, 1),
            terminated=terminated.view(B, 1),
            mask=torch.ones(B, 1, device=self.device),
            nstep_reward=reward,
            nstep_discount=(1.0 - terminated) * torch.tensor(gamma, dtype=torch.float32),
            nstep_next_obs=obs[:, 1].contiguous(),
        )

    # ------------------------------------------------------------------ checkpointing
    def _config(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "num_envs": self.num_envs,
            "frame_stack": self.frame_stack,
            "obs_shape": tuple(self.obs_shape),
            "action_shape": tuple(self.action_shape),
            "obs_dtype": str(self._storage["obs"].dtype),
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume bit-identically (storage, counters, sampling RNG), on CPU.

        Only the filled part of a ring is copied; a full ring's CPU tensors are returned without a
        copy, so save the dict before adding more transitions.
        """
        def to_cpu(t: Tensor) -> Tensor:
            if self.size == self.ring:
                return t.cpu()
            part = t[:, : self.size]
            return part.cpu() if part.device.type != "cpu" else part.clone()

        return {
            "version": _STATE_VERSION,
            "config": self._config(),
            "pos": self.pos,
            "size": self.size,
            "num_valid": self._num_valid,
            "newest_valid": self._newest_valid,
            "episode_step": self._ep_step.cpu(),
            "prev_valid": self._prev_valid.cpu(),
            "generator": self._gen.get_state(),
            "storage": {name: to_cpu(t) for name, t in self._storage.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` from a buffer built with the same arguments."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"replay state version {state.get('version')!r} != supported {_STATE_VERSION}")
        saved, mine = dict(state["config"]), self._config()
        for key, value in mine.items():
            theirs = tuple(saved[key]) if isinstance(value, tuple) else saved[key]
            if theirs != value:
                raise ValueError(f"replay state has {key}={saved[key]!r}, but this buffer has {key}={value!r}")
        size = int(state["size"])
        for name, t in self._storage.items():
            if name not in state["storage"]:
                raise KeyError(f"replay state lacks storage {name!r}; it has {sorted(state['storage'])}")
            t.zero_()
            t[:, :size].copy_(state["storage"][name])
        self.pos, self.size = int(state["pos"]), size
        self._num_valid, self._newest_valid = int(state["num_valid"]), int(state["newest_valid"])
        self._ep_step = state["episode_step"].to(self.device, torch.int64)
        self._prev_valid = state["prev_valid"].to(self.device, torch.bool)
        self._gen.set_state(state["generator"])
