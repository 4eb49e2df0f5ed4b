"""Atari (ale-py) environments with the standard DQN-style preprocessing.

Wrapper stack, innermost first::

    AtariEnv(frameskip=1, sticky actions 0.25 ("v5") or 0 ("100k"), minimal action set,
             108k frames per episode)
    EmulatorSnapshot                          pickles the emulator state (for checkpoints)
    AtariPreprocessing(noop_max, frame_skip=action_repeat, screen image_size, grayscale)
    [TimeLimit(max_episode_steps)]            agent-step cap, if configured
    RecordEpisodeStatistics                   RAW game return / length in agent steps
    [EpisodicLife]                            training only, if terminal_on_life_loss
    [SignReward]                              training only, if clip_rewards
    FrameStackObservation(frame_stack)        -> uint8 (frame_stack, S, S)

The statistics wrapper sits below the life-loss and clipping wrappers, so ``info["episode"]``
holds the unclipped return of the whole game and is emitted only when the game is over.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from envs.config import EnvConfig
from envs.wrappers import SignReward

MAX_FRAMES_PER_EPISODE = 108_000
STICKY_ACTION_PROB = {"v5": 0.25, "100k": 0.0}


class EmulatorSnapshot(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Make a pickled Atari env resume exactly where it was.

    ale-py's ``AtariEnv`` pickles only its constructor arguments (``EzPickle``), so an
    unpickled env is a fresh game. This wrapper, placed right over it, adds the emulator
    state with its random generator (``cloneState(include_rng=True)``: RAM, frame counters,
    sticky-action RNG) and the env's numpy generator (no-op starts), and restores them after
    the inner env is rebuilt.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        atari = self.env.unwrapped
        state["_emulator"] = (atari.clone_state(include_rng=True), atari.np_random.bit_generator.state)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        emulator = state.pop("_emulator", None)
        self.__dict__.update(state)
        if emulator is not None:
            ale_state, np_state = emulator
            atari = self.env.unwrapped
            atari.restore_state(ale_state)
            atari.np_random.bit_generator.state = np_state


class EpisodicLife(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """End the episode on a life loss without resetting the game (SB3 ``EpisodicLifeEnv`` semantics).

    ``terminated`` is True when a life is lost; the following ``reset()`` then only takes a
    no-op step and continues the same game. The game is really reset only when it is over.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self.lives = 0
        self.game_over = True

    def _ale_lives(self) -> int:
        return int(self.env.unwrapped.ale.lives())

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self._ale_lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        if self.game_over or seed is not None:
            obs, info = self.env.reset(seed=seed, options=options)
        else:
            # Continue the same game: one no-op step from the state where the life was lost.
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:  # the no-op ended the game: start a new one, keep its stats
                episode = info.get("episode")
                obs, info = self.env.reset(options=options)
                if episode is not None:
                    info = {**info, "episode": episode}
        self.game_over = False
        self.lives = self._ale_lives()
        return obs, info


def make_atari_env(cfg: EnvConfig, mode: str = "train") -> gym.Env:
    """Build one preprocessed Atari env from a resolved config; ``mode="eval"`` turns off
    life-loss terminals and reward clipping."""
    import ale_py

    gym.register_envs(ale_py)
    env = gym.make(
        cfg.name,
        frameskip=1,
        repeat_action_probability=STICKY_ACTION_PROB[cfg.protocol],
        full_action_space=False,
        max_num_frames_per_episode=MAX_FRAMES_PER_EPISODE,
    )
    env = EmulatorSnapshot(env)
    env = gym.wrappers.AtariPreprocessing(
        env,
        noop_max=cfg.noop_max,
        frame_skip=cfg.action_repeat,
        screen_size=cfg.image_size,
        terminal_on_life_loss=False,
        grayscale_obs=True,
        scale_obs=False,
    )
    if cfg.max_episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, cfg.max_episode_steps)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    if mode == "train" and cfg.terminal_on_life_loss:
        env = EpisodicLife(env)
    if mode == "train" and cfg.clip_rewards:
        env = SignReward(env)
    return gym.wrappers.FrameStackObservation(env, cfg.frame_stack)
