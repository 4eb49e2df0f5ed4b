"""``env.vectorization=ale``: Atari through ale-py's C++ ``AtariVectorEnv``, with the interface of
rlaux's Sync/Async vector envs.

ale-py steps every env in C++ threads with its own preprocessing; this module sets it up with
the ``v5`` / ``100k`` protocol of :mod:`envs.atari` and adds, in :class:`AleVectorAdapter`, what
rlaux's wrapper stack does on the sync path, so the loops see the same thing:

* sticky actions 0.25 (``v5``) or 0 (``100k``), frame skip ``action_repeat`` with max-pooling of
  the last two frames, ``image_size`` grayscale frames, up to ``noop_max`` no-ops after a reset,
  108k frames per game, no fire-reset;
* frame stacking in Python, so a reset stack repeats the first frame (ale-py pads with zeros);
* ``info["episode"]`` / ``info["_episode"]``: the raw return of the whole game and its length in
  agent steps, only when the game is over;
* training only: life-loss terminals (``terminal_on_life_loss``) with the SB3 ``EpisodicLife``
  semantics of :class:`envs.atari.EpisodicLife` (the step after a lost life is a no-op that
  continues the same game, reward 0), and sign-clipped rewards (``clip_rewards``) in what the
  agent trains on only;
* NEXT_STEP autoreset, float64 rewards, uint8 ``(num_envs, frame_stack, S, S)`` observations.

Limits: the emulator state lives in C++ and cannot be saved, so a resumed run starts new games
from a fresh reset (as ``async`` does); ale-py seeds its emulators and no-op draws its own way,
so only runs without sticky actions and no-ops (``protocol=100k env.noop_max=0``) give the same
streams as ``vectorization=sync``; ``env.max_episode_steps`` is not supported (use ``sync``).
If the no-op that follows a lost life ends the game, that step reports the game's end (sync:
it starts the next game at once).
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from envs.atari import MAX_FRAMES_PER_EPISODE, STICKY_ACTION_PROB
from envs.config import EnvConfig
from envs.factory import check_mode

NOOP_ACTION = 0


def ale_game(env_name: str) -> str:
    """The ROM name (``"pong"``) of an ALE id (``"ALE/Pong-v5"``)."""
    import ale_py

    gym.register_envs(ale_py)
    return str(gym.spec(env_name).kwargs["game"])


class AleVectorAdapter(gym.vector.VectorWrapper):
    """Frame stacking, episode statistics, life-loss terminals and reward clipping over an
    ``AtariVectorEnv`` built with ``stack_num=1`` and none of its own life-loss/clipping options.

    Args:
        env: the ale-py vector env (NEXT_STEP autoreset).
        frame_stack: frames per observation.
        terminal_on_life_loss: end the agent's episode on a lost life (the game goes on).
        clip_rewards: give the agent ``sign(reward)``; statistics stay raw.
        seed: used by the first ``reset()`` called without a seed (env i gets ``seed + i``, as
            on the sync path); also seeds the action space.
    """

    def __init__(self, env: gym.vector.VectorEnv, frame_stack: int, terminal_on_life_loss: bool,
                 clip_rewards: bool, seed: int | None = None) -> None:
        super().__init__(env)
        self._pending_seed = seed
        self.action_space.seed(seed)
        self.frame_stack = frame_stack
        self.terminal_on_life_loss, self.clip_rewards = terminal_on_life_loss, clip_rewards
        frame = env.single_observation_space
        self.single_observation_space = gym.spaces.Box(0, 255, (frame_stack, *frame.shape[1:]), np.uint8)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        n = self.num_envs
        self._stack = np.zeros((n, *self.single_observation_space.shape), np.uint8)
        self._returns, self._lengths = np.zeros(n), np.zeros(n, np.int64)
        self._starts = np.zeros(n)
        self._lives = np.zeros(n, np.int64)
        self._game_over = np.zeros(n, bool)  # ale-py resets these at the next step
        self._life_lost = np.zeros(n, bool)  # these take a no-op at the next step

    def _restart(self, mask: np.ndarray, frames: np.ndarray) -> None:
        """Fill the stacks of the envs in ``mask`` with their current frame."""
        self._stack[mask] = frames[mask]

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Reset every env (ale-py seeds env i with ``seed + i``); partial resets are not supported."""
        if options and "reset_mask" in options:
            raise ValueError("AleVectorAdapter resets every env; options['reset_mask'] is not supported")
        if seed is None:
            seed = self._pending_seed
        self._pending_seed = None
        obs, info = self.env.reset(seed=seed, options=options)
        everyone = np.ones(self.num_envs, bool)
        self._restart(everyone, obs)
        self._returns[:], self._lengths[:], self._starts[:] = 0.0, 0, time.perf_counter()
        self._lives[:] = info["lives"]
        self._game_over[:] = self._life_lost[:] = False
        return self._stack.copy(), info

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = np.where(self._life_lost, NOOP_ACTION, np.asarray(actions, dtype=np.int64))
        frames, raw, terminated, truncated, info = self.env.step(actions)
        raw = raw.astype(np.float64)
        resetting, continuing = self._game_over, self._life_lost
        playing = ~resetting
        self._returns[playing] += raw[playing]
        self._lengths[playing] += 1
        self._stack[:, :-1] = self._stack[:, 1:]
        self._stack[:, -1] = frames[:, -1]
        self._restart(resetting | continuing, frames)

        lives = np.asarray(info["lives"], np.int64)
        game_over = terminated | truncated
        # as EpisodicLife: compared with the lives after the previous step (a no-op's included)
        life_lost = (0 < lives) & (lives < self._lives) & ~game_over & playing & ~continuing & self.terminal_on_life_loss
        self._lives = lives
        info = dict(info)
        if game_over.any():
            info["episode"], info["_episode"] = self._episode_stats(game_over), game_over.copy()
        reward = np.sign(raw) if self.clip_rewards else raw
        reward = np.where(continuing, 0.0, reward)
        if resetting.any():
            self._returns[resetting], self._lengths[resetting] = 0.0, 0
            self._starts[resetting] = time.perf_counter()
        self._game_over, self._life_lost = game_over, life_lost
        return self._stack.copy(), reward, terminated | life_lost, truncated, info

    def _episode_stats(self, done: np.ndarray) -> dict[str, np.ndarray]:
        """``RecordEpisodeStatistics``' vector format: r, l, t with their ``_`` masks."""
        elapsed = np.round(time.perf_counter() - self._starts, 6)
        stats = {"r": np.where(done, self._returns, 0.0), "l": np.where(done, self._lengths, 0),
                 "t": np.where(done, elapsed, 0.0)}
        return {**stats, **{f"_{k}": done.copy() for k in stats}}


def make_ale_vector_env(cfg: EnvConfig, num_envs: int, seed: int | None = None, mode: str = "train") -> gym.vector.VectorEnv:
    """``num_envs`` Atari games of a resolved config in one ale-py ``AtariVectorEnv``; ``mode="eval"``
    turns off life-loss terminals and reward clipping."""
    from ale_py.vector_env import AtariVectorEnv

    check_mode(mode)
    vec = AtariVectorEnv(
        ale_game(cfg.name),
        num_envs,
        repeat_action_probability=STICKY_ACTION_PROB[cfg.protocol],
        full_action_space=False,
        max_num_frames_per_episode=MAX_FRAMES_PER_EPISODE,
        autoreset_mode=AutoresetMode.NEXT_STEP,
        img_height=cfg.image_size,
        img_width=cfg.image_size,
        grayscale=True,
        stack_num=1,
        frameskip=cfg.action_repeat,
        maxpool=True,
        noop_max=cfg.noop_max,
        episodic_life=False,
        life_loss_info=False,
        reward_clipping=False,
        use_fire_reset=False,
    )
    train = mode == "train"
    return AleVectorAdapter(vec, cfg.frame_stack, terminal_on_life_loss=train and cfg.terminal_on_life_loss,
                            clip_rewards=train and cfg.clip_rewards, seed=seed)
