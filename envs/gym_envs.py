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


#: Dict entries that ``rlaux.train`` joins into one observation vector
FLAT_ENTRY_SPACES = (gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)


def is_flat_dict_space(space: gym.Space) -> bool:
    """True for a Dict space whose entries are all vectors: Box of rank <= 1, Discrete,
    MultiDiscrete or MultiBinary (goal-conditioned envs; what SB3's ``CombinedExtractor`` joins
    without a CNN)."""
    if not isinstance(space, gym.spaces.Dict) or not space.spaces:
        return False
    return all((isinstance(sub, gym.spaces.Box) and len(sub.shape) <= 1) or isinstance(sub, FLAT_ENTRY_SPACES)
               for sub in space.spaces.values())


def make_gym_env(cfg: EnvConfig) -> gym.Env:
    """``gym.make(cfg.name)`` with Box actions rescaled to [-1, 1] float32 and Box observations
    flattened to float32 vectors (Dict observations of vector entries joined into one, see
    :func:`is_flat_dict_space`), plus action repeat (no episode statistics; see ``make_env``).

    Raises ValueError for other observation spaces and action spaces other than Discrete /
    bounded Box.
    """
    kwargs = {} if cfg.max_episode_steps is None else {"max_episode_steps": cfg.max_episode_steps}
    env = gym.make(cfg.name, **kwargs)
    if is_flat_dict_space(env.observation_space):
        env = gym.wrappers.FlattenObservation(env)  # entries joined in key order, Discrete one-hot (as SB3)
    obs_space, act_space = env.observation_space, env.action_space
    if not isinstance(obs_space, gym.spaces.Box):
        env.close()
        raise ValueError(
            f"{cfg.name!r} has observation space {obs_space}; rlaux.train supports Box observations and Dict "
            "observations of vector entries (Box vectors, Discrete, MultiDiscrete, MultiBinary), joined into one "
            "vector; for image entries or nested spaces use rlaux.sb3 with MultiInputPolicy, or wrap the env yourself"
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
