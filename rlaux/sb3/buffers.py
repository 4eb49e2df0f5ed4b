"""SB3 buffers that serve masked windows (:class:`rlaux.types.WindowBatch`) to the aux objectives.

* Off-policy: :func:`replay_window_source` reads any SB3 ``ReplayBuffer`` (also
  ``NStepReplayBuffer``, same storage, and the memory-optimised layout of
  ``optimize_memory_usage=True``) and ``DictReplayBuffer`` without copying.
  :class:`WindowReplayBuffer` is the bridge's default ``replay_buffer_class`` for Box
  observations (SB3's ``DictReplayBuffer`` for Dict ones).
* HER (``HerReplayBuffer``, a ``DictReplayBuffer``): windows are the stored transitions, with
  the goals as collected (HER relabels only the samples of the RL losses). Those are real
  consecutive steps of one episode, so every horizon works.
* On-policy: SB3's ``RolloutBuffer`` has no next observations (episode ends keep only the
  reset observation) and adds ``gamma * V(final obs)`` to the reward of truncated steps.
  :class:`AuxRolloutBuffer` also records, per step, the next observation (the final one at an
  episode end), the env's reward before that bootstrap, the done and truncation flags; the
  :class:`RolloutRecorder` callback feeds it from the rollout loop's locals. Its windows are
  cut at the rollout's end; SB3 flattens the rollout on the first ``get()``, so the buffer
  keeps the time-major arrays for windows drawn during training. :class:`AuxDictRolloutBuffer`
  does the same for Dict observations (SB3's ``DictRolloutBuffer``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, ReplayBuffer, RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback

from rlaux.buffers.dict_obs import dict_obs_layout
from rlaux.sb3.windows import WindowSource


def check_window_replay(buffer: Any) -> None:
    """Raise ``ValueError`` unless ``buffer`` can serve windows (an SB3 ``ReplayBuffer``, or a
    ``DictReplayBuffer`` / ``HerReplayBuffer``, which derive from it)."""
    if not isinstance(buffer, ReplayBuffer):
        raise ValueError(f"aux objectives need an SB3 ReplayBuffer (or DictReplayBuffer, HerReplayBuffer); got "
                         f"{type(buffer).__name__}")


def replay_window_source(buffer: ReplayBuffer, env: Any = None) -> WindowSource:
    """A :class:`WindowSource` over an SB3 replay buffer's arrays (``env``: SB3's VecNormalize, or None).

    With ``optimize_memory_usage=True`` row ``pos`` holds the next observation of row ``pos - 1``
    (its own transition is overwritten), so a full ring stores ``buffer_size - 1`` transitions
    from ``pos + 1`` on, as SB3's own ``sample`` assumes.
    """
    check_window_replay(buffer)
    ring = buffer.buffer_size
    if buffer.optimize_memory_usage:
        size = ring - 1 if buffer.full else buffer.pos
        oldest = (buffer.pos + 1) % ring if buffer.full else 0
        next_observations = None
    else:
        size = ring if buffer.full else buffer.pos
        oldest = buffer.pos if buffer.full else 0
        next_observations = buffer.next_observations
    return WindowSource(
        observations=buffer.observations,
        next_observations=next_observations,
        actions=buffer.actions,
        rewards=buffer.rewards,
        dones=buffer.dones,
        timeouts=buffer.timeouts if buffer.handle_timeout_termination else None,
        oldest=oldest,
        size=size,
        normalize_obs=(lambda x: buffer._normalize_obs(x, env)) if env is not None else None,
        normalize_reward=(lambda r: buffer._normalize_reward(r, env)) if env is not None else None,
        obs_layout=dict_obs_layout(buffer.observation_space),
    )


class WindowReplayBuffer(ReplayBuffer):
    """SB3's ``ReplayBuffer`` (same arguments, same ``sample``): the Aux algorithms' default
    ``replay_buffer_class``. Windows are read from it, as from any SB3 replay buffer, by
    :func:`replay_window_source`. Saved Aux models name this class (SB3 pickles
    ``replay_buffer_class`` by reference), so it is part of the saved-model format."""


class RecordedRollout:
    """What :class:`AuxRolloutBuffer` and :class:`AuxDictRolloutBuffer` add to SB3's rollout
    buffers: next observations, raw rewards, dones and truncation flags per step (filled by
    :class:`RolloutRecorder`, one ``record`` per ``add``), and :meth:`window_source`."""

    buffer_size: int
    n_envs: int
    pos: int
    full: bool
    generator_ready: bool
    observation_space: spaces.Space
    obs_shape: Any  # tuple for Box, {key: tuple} for Dict (SB3's layout)
    observations: Any
    actions: np.ndarray

    def _allocate_records(self) -> None:
        shape = (self.buffer_size, self.n_envs)
        self.obs_layout = dict_obs_layout(self.observation_space)
        if self.obs_layout is None:
            self.next_observations: Any = np.zeros((*shape, *self.obs_shape), dtype=self.observation_space.dtype)
        else:
            self.next_observations = {key: np.zeros((*shape, *self.obs_shape[key]), dtype=sub.dtype)
                                      for key, sub in self.observation_space.spaces.items()}
        self.env_rewards = np.zeros(shape, dtype=np.float32)
        self.step_dones = np.zeros(shape, dtype=np.float32)
        self.step_timeouts = np.zeros(shape, dtype=np.float32)
        self.recorded = 0
        self._time_major: dict[str, Any] | None = None

    def reset(self) -> None:
        super().reset()  # type: ignore[misc]
        self.recorded = 0
        self._time_major = None

    def _store_next(self, p: int, key: str | None, new_obs: Any, dones: np.ndarray, infos: list[dict[str, Any]]
                    ) -> None:
        """Row ``p`` of the next observations (of entry ``key`` for Dict spaces)."""
        shape = self.obs_shape if key is None else self.obs_shape[key]
        target = self.next_observations if key is None else self.next_observations[key]
        next_obs = np.array(new_obs if key is None else new_obs[key]).reshape((self.n_envs, *shape))
        for i, done in enumerate(dones):
            final = infos[i].get("terminal_observation") if done else None
            if final is not None:
                next_obs[i] = np.asarray(final if key is None else final[key]).reshape(shape)
        target[p] = next_obs

    def record(self, new_obs: Any, rewards: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]]) -> None:
        """Store what follows the step about to be ``add``-ed (at ``self.pos``): the next
        observation (``infos[i]["terminal_observation"]`` where env i's episode ended), the env's
        reward, done and ``TimeLimit.truncated``."""
        p = self.pos
        if p >= self.buffer_size:
            raise RuntimeError(f"{type(self).__name__}.record called on a full buffer")
        for key in ([None] if self.obs_layout is None else self.obs_layout.keys):
            self._store_next(p, key, new_obs, dones, infos)
        self.env_rewards[p] = np.asarray(rewards, dtype=np.float32).reshape(self.n_envs)
        self.step_dones[p] = np.asarray(dones, dtype=np.float32).reshape(self.n_envs)
        self.step_timeouts[p] = [float(bool(info.get("TimeLimit.truncated", False))) for info in infos]
        self.recorded = p + 1

    def _time_major_arrays(self) -> dict[str, Any]:
        observations = self.observations if self.obs_layout is None else dict(self.observations)
        return {"observations": observations, "actions": self.actions}

    def get(self, batch_size: int | None = None):  # type: ignore[override]
        if not self.generator_ready:  # SB3 is about to flatten the arrays in place: keep the time-major ones
            self._time_major = self._time_major_arrays()
        yield from super().get(batch_size)  # type: ignore[misc]

    def window_source(self) -> WindowSource:
        """A :class:`WindowSource` over this rollout (time-major, oldest row 0)."""
        size = self.pos if not self.full else self.buffer_size
        if self.recorded < size:
            raise RuntimeError(f"{type(self).__name__} has {size} steps but only {self.recorded} recorded next "
                               "observations; the RolloutRecorder callback must run in collect_rollouts "
                               "(the Aux algorithms install it in learn())")
        arrays = self._time_major or self._time_major_arrays()
        return WindowSource(
            observations=arrays["observations"],
            next_observations=self.next_observations,
            actions=arrays["actions"],
            rewards=self.env_rewards,
            dones=self.step_dones,
            timeouts=self.step_timeouts,
            oldest=0,
            size=size,
            obs_layout=self.obs_layout,
        )


class AuxRolloutBuffer(RecordedRollout, RolloutBuffer):
    """SB3's ``RolloutBuffer`` plus what windows need (see :class:`RecordedRollout`); Box observations."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.observation_space, spaces.Box):
            raise ValueError(f"AuxRolloutBuffer needs Box observations, got {self.observation_space}; "
                             "use AuxDictRolloutBuffer for Dict observations")
        self._allocate_records()


class AuxDictRolloutBuffer(RecordedRollout, DictRolloutBuffer):
    """SB3's ``DictRolloutBuffer`` plus what windows need (see :class:`RecordedRollout`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._allocate_records()


def aux_rollout_buffer_class(space: spaces.Space) -> type[RolloutBuffer]:
    """:class:`AuxDictRolloutBuffer` for Dict observation spaces, :class:`AuxRolloutBuffer` otherwise."""
    return AuxDictRolloutBuffer if isinstance(space, spaces.Dict) else AuxRolloutBuffer


class RolloutRecorder(BaseCallback):
    """Feeds :meth:`AuxRolloutBuffer.record` from ``collect_rollouts``' locals at every step (it runs
    before SB3 bootstraps truncated rewards and before ``rollout_buffer.add``)."""

    def _on_step(self) -> bool:
        buffer = getattr(self.model, "rollout_buffer", None)
        if isinstance(buffer, RecordedRollout):
            loc = self.locals
            buffer.record(loc["new_obs"], loc["rewards"], loc["dones"], loc["infos"])
        return True
