"""Plain Gymnasium ids (CartPole-v1, Pendulum-v1, ...) with rlaux's space conventions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from envs.config import EnvConfig
from envs.wrappers import ActionRepeat


class Float32Action(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """Expose a float32 Box action space over an env whose Box actions have another dtype."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ActionWrapper.__init__(self, env)
        space = env.action_space
        self._dtype = space.dtype
        self.action_space = gym.spaces.Box(
            low=space.low.astype(np.float32), high=space.high.astype(np.float32), dtype=np.float32
        )

    def action(self, action: np.ndarray) -> np.ndarray:
        return np.asarray(action, dtype=self._dtype)


def make_gym_env(cfg: EnvConfig) -> gym.Env:
    """``gym.make(cfg.name)`` with Box actions rescaled to [-1, 1] float32 and Box observations
    flattened to float32 vectors, plus action repeat (no episode statistics; see ``make_env``).

    Raises ValueError for observation spaces other than Box and action spaces other than
    Discrete / bounded Box.
    """
    kwargs = {} if cfg.max_episode_steps is None else {"max_episode_steps": cfg.max_episode_steps}
    env = gym.make(cfg.name, **kwargs)
    obs_space, act_space = env.observation_space, env.action_space
    if not isinstance(obs_space, gym.spaces.Box):
        env.close()
        raise ValueError(
            f"{cfg.name!r} has observation space {obs_space}; rlaux supports only Box observations "
            "for Gymnasium ids (wrap the env yourself to flatten Dict/Tuple/Discrete spaces)"
        )
    if isinstance(act_space, gym.spaces.Box):
        if not (np.all(np.isfinite(act_space.low)) and np.all(np.isfinite(act_space.high))):
            env.close()
            raise ValueError(f"{cfg.name!r} has an unbounded Box action space {act_space}; cannot rescale to [-1, 1]")
        ones = np.ones(act_space.shape, dtype=act_space.dtype)
        env = gym.wrappers.RescaleAction(env, -ones, ones)
        if env.action_space.dtype != np.float32:
            env = Float32Action(env)
    elif not isinstance(act_space, gym.spaces.Discrete):
        env.close()
        raise ValueError(
            f"{cfg.name!r} has action space {act_space}; rlaux supports Discrete and bounded Box actions"
        )
    if len(obs_space.shape) != 1:
        env = gym.wrappers.FlattenObservation(env)
    if env.observation_space.dtype != np.float32:
        env = gym.wrappers.DtypeObservation(env, np.float32)
    if cfg.action_repeat > 1:
        env = ActionRepeat(env, cfg.action_repeat)
    return env
