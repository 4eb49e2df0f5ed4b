"""Small generic Gymnasium wrappers used by every env kind."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class ActionRepeat(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Repeat each action ``repeat`` times, summing rewards; stop early when the episode ends."""

    def __init__(self, env: gym.Env, repeat: int) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, repeat=repeat)
        gym.Wrapper.__init__(self, env)
        if repeat < 1:
            raise ValueError(f"action repeat must be >= 1, got {repeat}")
        self.repeat = repeat

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


class ConcatFrames(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Merge the stack axis of a :class:`~gymnasium.wrappers.FrameStackObservation` into the next.

    (k, C, H, W) -> (k*C, H, W) for images, (k, D) -> (k*D,) for vectors, (k, H, W) unchanged.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        space = env.observation_space
        assert isinstance(space, gym.spaces.Box), space
        self._merge = space.shape is not None and len(space.shape) in (2, 4)
        if self._merge:
            shape = (space.shape[0] * space.shape[1], *space.shape[2:])
            self.observation_space = gym.spaces.Box(
                low=space.low.reshape(shape), high=space.high.reshape(shape), dtype=space.dtype
            )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        if not self._merge:
            return observation
        return observation.reshape(self.observation_space.shape)


class SeedOnFirstReset(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Use ``seed`` for the first ``reset()`` called without one (and seed the spaces)."""

    def __init__(self, env: gym.Env, seed: int) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, seed=seed)
        gym.Wrapper.__init__(self, env)
        self._pending_seed: int | None = seed
        self.action_space.seed(seed)
        self.observation_space.seed(seed)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        if seed is None:
            seed = self._pending_seed
        self._pending_seed = None
        return self.env.reset(seed=seed, options=options)


class SignReward(gym.RewardWrapper, gym.utils.RecordConstructorArgs):
    """Clip rewards to their sign (-1, 0, +1), as DQN does for Atari training."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.RewardWrapper.__init__(self, env)

    def reward(self, reward: float) -> float:
        return float(np.sign(reward))
