"""``env.vectorization=ale`` (issue 15 item 3): ale-py's AtariVectorEnv behind rlaux's vector-env interface."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs import make_vector_env, resolve_env_config
from envs.ale_vector import AleVectorAdapter

# No sticky actions and no no-ops: the emulator is deterministic, so both paths can be compared.
DETERMINISTIC = {"name": "ALE/SpaceInvaders-v5", "protocol": "100k", "noop_max": 0,
                 "terminal_on_life_loss": True, "clip_rewards": True}


def _episodes(info: dict) -> list[tuple[int, float, int]]:
    if "episode" not in info:
        return []
    return [(int(i), float(info["episode"]["r"][i]), int(info["episode"]["l"][i])) for i in np.flatnonzero(info["_episode"])]


def test_same_streams_as_sync_without_sticky_actions_or_noops() -> None:
    sync = make_vector_env(DETERMINISTIC, num_envs=2, seed=3)
    ale = make_vector_env({**DETERMINISTIC, "vectorization": "ale"}, num_envs=2, seed=3)
    assert isinstance(ale, AleVectorAdapter)
    assert ale.single_observation_space == sync.single_observation_space
    assert ale.single_action_space == sync.single_action_space
    sync_obs, _ = sync.reset()
    ale_obs, _ = ale.reset()
    np.testing.assert_array_equal(ale_obs, sync_obs)  # a reset stack repeats the first frame
    rng = np.random.default_rng(0)
    life_losses, sync_episodes, ale_episodes = 0, [], []
    for _ in range(1000):
        actions = rng.integers(sync.single_action_space.n, size=2)
        expected, got = sync.step(actions), ale.step(actions)
        for name, want, have in zip(("obs", "reward", "terminated", "truncated"), expected[:4], got[:4]):
            np.testing.assert_array_equal(have, want, err_msg=name)
            assert have.dtype == want.dtype, name
        life_losses += int((got[2] & ~got[4].get("_episode", np.zeros(2, bool))).sum())
        sync_episodes += _episodes(expected[4])
        ale_episodes += _episodes(got[4])
    assert life_losses > 0 and len(ale_episodes) >= 2  # both kinds of episode end were compared
    assert ale_episodes == sync_episodes
    assert max(r for _, r, _ in ale_episodes) > 1  # raw game returns, while the agent saw clipped rewards
    sync.close()
    ale.close()


def test_v5_interface_next_step_autoreset_and_eval_mode() -> None:
    cfg = {"name": "ALE/Pong-v5", "vectorization": "ale"}  # v5: sticky actions, no-op starts
    train = make_vector_env({**cfg, "clip_rewards": True}, num_envs=2, seed=0)
    obs, _ = train.reset()
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    assert obs.shape[1:] == train.single_observation_space.shape
    actions = np.zeros(2, np.int64)
    prev_done = np.zeros(2, bool)
    games = 0
    for _ in range(1200):
        obs, reward, terminated, truncated, info = train.step(actions)
        assert set(np.unique(reward)) <= {-1.0, 0.0, 1.0}
        assert not (reward[prev_done] != 0).any() and not (terminated | truncated)[prev_done].any()
        for i in np.flatnonzero(prev_done):  # the reset step: a fresh stack of one frame
            assert all(np.array_equal(obs[i, k], obs[i, -1]) for k in range(4))
        if (terminated | truncated).any():
            assert info["_episode"][terminated | truncated].all()
            assert (info["episode"]["r"][terminated] <= -20).all()  # a whole game, raw: Pong ends at 21 points
            games += int(terminated.sum())
        prev_done = terminated | truncated
    assert games >= 1
    train.close()
    evaluation = make_vector_env({**cfg, "clip_rewards": True, "terminal_on_life_loss": True}, 1, seed=0, mode="eval")
    assert not evaluation.clip_rewards and not evaluation.terminal_on_life_loss
    evaluation.close()
    with pytest.raises(ValueError, match="mode"):
        make_vector_env(cfg, 1, seed=0, mode="test")


def test_ale_is_only_for_atari_and_has_no_agent_step_cap() -> None:
    with pytest.raises(ValueError, match=r"vectorization='ale'.*\['sync', 'async'\]"):
        resolve_env_config({"name": "CartPole-v1", "vectorization": "ale"})
    with pytest.raises(ValueError, match="max_episode_steps"):
        resolve_env_config({"name": "ALE/Pong-v5", "vectorization": "ale", "max_episode_steps": 100})
    assert resolve_env_config({"name": "ALE/Pong-v5", "vectorization": "ale"}).vectorization == "ale"


def test_resume_warning_names_the_limit() -> None:
    assert envs.resume_warning({"name": "ALE/Pong-v5"}) is None
    text = envs.resume_warning({"name": "ALE/Pong-v5", "vectorization": "ale"})
    assert text is not None and "fresh reset" in text and "\n" not in text
    assert "fresh reset" in envs.resume_warning({"name": "CartPole-v1", "vectorization": "async"})


def test_guarded_like_the_other_vector_envs() -> None:
    env = envs.EnvErrorGuard(make_vector_env({"name": "ALE/Pong-v5", "vectorization": "ale"}, 1, seed=0), "ALE/Pong-v5")
    env.reset()
    with pytest.raises(envs.EnvError, match="step"):
        env.step(np.zeros(3, np.int64))  # wrong batch size
    assert isinstance(env.unwrapped, gym.vector.VectorEnv) and not isinstance(env.unwrapped, gym.vector.SyncVectorEnv)
    env.close()
