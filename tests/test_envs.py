"""Tests for the envs package: names, config resolution, wrappers, vectorisation, statistics."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs import EnvConfig, UnknownEnvError, env_kind, make_env, make_vector_env, resolve_env_config


def _first(env: gym.Env, cls: type) -> gym.Env:
    """The outermost wrapper of type ``cls`` in ``env``'s chain."""
    while not isinstance(env, cls):
        env = env.env
    return env


# --------------------------------------------------------------------------- names & config
def test_env_kind_and_names() -> None:
    assert env_kind("CartPole-v1") == "gym"
    assert env_kind("Pendulum-v1") == "gym"
    assert env_kind("ALE/Pong-v5") == "atari"
    for name in ["dog-run", "finger-turn_hard", "cup-catch", "pointmass-easy", "cartpole-swingup-sparse"]:
        assert env_kind(name) == "dmc", name
    assert envs.parse_dmc_name("cup-catch") == ("ball_in_cup", "catch")
    assert envs.parse_dmc_name("cartpole-swingup-sparse") == ("cartpole", "swingup_sparse")
    names = set(envs.list_env_names())
    for name in ["finger-turn_hard", "cup-catch", "ball_in_cup-catch", "pointmass-easy", "ALE/Pong-v5", "CartPole-v1"]:
        assert name in names, name


def test_unknown_env_name_suggests_close_match() -> None:
    with pytest.raises(UnknownEnvError, match="dog-rn") as info:
        env_kind("dog-rn")
    assert isinstance(info.value, ValueError)
    assert "dog-run" in str(info.value) and "ALE/<Game>-v5" in str(info.value)
    with pytest.raises(UnknownEnvError, match="CartPole-v1"):
        resolve_env_config(EnvConfig(name="cartpole-v1"))


def test_resolve_defaults() -> None:
    dmc = resolve_env_config({"name": "cheetah-run", "obs": "pixels"})
    assert (dmc.kind, dmc.action_repeat, dmc.frame_stack, dmc.camera) == ("dmc", 2, 3, 0)
    assert resolve_env_config(EnvConfig(name="cheetah-run")).frame_stack == 1
    assert resolve_env_config(EnvConfig(name="quadruped-run")).camera == 2
    assert resolve_env_config(EnvConfig(name="quadruped-run", camera=1)).camera == 1
    atari = resolve_env_config(EnvConfig(name="ALE/Pong-v5"))
    assert (atari.kind, atari.obs, atari.action_repeat, atari.frame_stack) == ("atari", "pixels", 4, 4)
    gym_cfg = resolve_env_config(EnvConfig(name="Pendulum-v1"))
    assert (gym_cfg.kind, gym_cfg.action_repeat, gym_cfg.frame_stack) == ("gym", 1, 1)
    omegaconf = pytest.importorskip("omegaconf")
    from_dictconfig = resolve_env_config(omegaconf.OmegaConf.create({"name": "cheetah-run"}))
    assert from_dictconfig.kind == "dmc"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"obs": "rgb"}, "obs"),
        ({"vectorization": "threads"}, "vectorization"),
        ({"protocol": "v4"}, "protocol"),
        ({"action_repeat": 0}, "action_repeat"),
        ({"frame_stack": -1}, "frame_stack"),
        ({"image_size": 0}, "image_size"),
    ],
)
def test_resolve_rejects_bad_values(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field) as info:
        resolve_env_config({"name": "cheetah-run", **overrides})
    assert repr(next(iter(overrides.values()))) in str(info.value)


def test_resolve_rejects_pixels_for_gym_and_unknown_fields() -> None:
    with pytest.raises(ValueError, match="obs"):
        resolve_env_config({"name": "CartPole-v1", "obs": "pixels"})
    with pytest.raises(ValueError, match="colour"):
        resolve_env_config({"name": "CartPole-v1", "colour": "red"})


def test_importing_envs_is_lazy() -> None:
    code = (
        "import os, sys, envs; "
        "assert 'dm_control' not in sys.modules and 'ale_py' not in sys.modules, 'eager import'; "
        "print(os.environ.get('MUJOCO_GL'))"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("MUJOCO_GL", "RLAUX_GL_AUTO")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    if sys.platform.startswith("linux"):
        assert out.stdout.strip() == "egl"


# --------------------------------------------------------------------------- env checker
@pytest.mark.parametrize(
    "cfg",
    [
        {"name": "CartPole-v1"},
        {"name": "Pendulum-v1"},
        {"name": "cartpole-swingup"},
        {"name": "cartpole-swingup", "obs": "pixels"},
        {"name": "ALE/Pong-v5", "terminal_on_life_loss": True, "clip_rewards": True},
    ],
    ids=["cartpole", "pendulum", "dmc-state", "dmc-pixels", "pong"],
)
@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
@pytest.mark.filterwarnings("ignore:.*Box observation space (minimum|maximum) value is")
def test_env_checker(cfg: dict) -> None:
    env = make_env(cfg, seed=0)
    check_env(env, skip_render_check=True)
    env.close()


# --------------------------------------------------------------------------- spaces
def test_spaces_and_dtypes() -> None:
    pend = make_env({"name": "Pendulum-v1"}, seed=0)
    assert pend.action_space == gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    pend.reset()
    pend.step(np.array([1.0], dtype=np.float32))
    assert pend.unwrapped.last_u == pytest.approx(2.0)  # rescaled to the max torque

    dmc = make_env({"name": "cheetah-run"}, seed=0)
    assert dmc.action_space == gym.spaces.Box(-1.0, 1.0, (6,), np.float32)
    obs, _ = dmc.reset()
    assert obs.dtype == np.float32 and obs.shape == (17,) == dmc.observation_space.shape

    pix = make_env({"name": "cheetah-run", "obs": "pixels", "image_size": 64}, seed=0)
    obs, _ = pix.reset()
    assert pix.observation_space.shape == (9, 64, 64) and obs.shape == (9, 64, 64) and obs.dtype == np.uint8
    obs, *_ = pix.step(pix.action_space.sample())
    assert obs.shape == (9, 64, 64) and obs.dtype == np.uint8 and obs.max() > 0
    # channels are [frame t-2 RGB, frame t-1 RGB, frame t RGB]: after reset all three are equal
    first, _ = pix.reset()
    assert np.array_equal(first[:3], first[6:])

    pong = make_env({"name": "ALE/Pong-v5"}, seed=0)
    obs, _ = pong.reset()
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8 and pong.observation_space.shape == (4, 84, 84)
    for env in (pend, dmc, pix, pong):
        env.close()


def test_dmc_state_matches_dm_control_and_action_repeat_sums_rewards() -> None:
    from dm_control import suite

    env = make_env({"name": "cartpole-swingup", "action_repeat": 2}, seed=3)
    raw = suite.load("cartpole", "swingup", task_kwargs={"random": 3})
    obs, _ = env.reset()
    ts = raw.reset()
    flat = lambda o: np.concatenate([np.asarray(v, np.float32).ravel() for v in o.values()])
    np.testing.assert_allclose(obs, flat(ts.observation))
    rng = np.random.default_rng(0)
    for _ in range(5):
        action = rng.uniform(-1, 1, size=(1,)).astype(np.float32)
        obs, reward, *_ = env.step(action)
        r1 = raw.step(action).reward
        ts = raw.step(action)
        assert reward == pytest.approx(r1 + ts.reward)
        np.testing.assert_allclose(obs, flat(ts.observation), rtol=1e-6)


# --------------------------------------------------------------------------- episode ends
def test_dmc_time_limit_is_truncation() -> None:
    env = make_env({"name": "cartpole-swingup"}, seed=0)
    env.reset()
    action = np.zeros(1, np.float32)
    total = 0.0
    for t in range(1, 501):
        _, reward, terminated, truncated, info = env.step(action)
        total += reward
        assert not terminated
        assert truncated == (t == 500), t
    assert info["episode"]["l"] == 500
    assert info["episode"]["r"] == pytest.approx(total)


def test_terminating_env_reports_terminated() -> None:
    env = make_env({"name": "CartPole-v1"}, seed=0)
    env.reset()
    for _ in range(200):
        _, _, terminated, truncated, info = env.step(0)
        if terminated or truncated:
            break
    assert terminated and not truncated
    assert "episode" in info


# --------------------------------------------------------------------------- vectorisation
def test_vector_next_step_autoreset_and_episode_stats() -> None:
    cfg = {"name": "CartPole-v1"}
    vec = make_vector_env(cfg, num_envs=2, seed=10)
    replicas = [make_env(cfg, seed=10 + i) for i in range(2)]
    obs, _ = vec.reset()
    for i, rep in enumerate(replicas):
        np.testing.assert_array_equal(obs[i], rep.reset()[0])
    returns = np.zeros(2)
    lengths = np.zeros(2, dtype=int)
    done_seen = np.zeros(2, dtype=bool)
    prev_done = np.zeros(2, dtype=bool)
    for _ in range(300):
        actions = np.array([0, 1])
        obs, reward, terminated, truncated, info = vec.step(actions)
        for i, rep in enumerate(replicas):
            if prev_done[i]:  # the reset step: reset obs, reward 0, not done
                np.testing.assert_array_equal(obs[i], rep.reset()[0])
                assert reward[i] == 0 and not terminated[i] and not truncated[i]
                assert not info.get("_episode", np.zeros(2, bool))[i]
                returns[i], lengths[i] = 0.0, 0
                continue
            r_obs, r_rew, r_term, r_trunc, _ = rep.step(int(actions[i]))
            np.testing.assert_array_equal(obs[i], r_obs)  # on the done step: the final obs
            assert (reward[i], terminated[i], truncated[i]) == (r_rew, r_term, r_trunc)
            returns[i] += reward[i]
            lengths[i] += 1
            if terminated[i] or truncated[i]:
                assert info["_episode"][i]
                assert info["episode"]["r"][i] == pytest.approx(returns[i])
                assert info["episode"]["l"][i] == lengths[i]
                done_seen[i] = True
            else:
                assert not info.get("_episode", np.zeros(2, bool))[i]
        prev_done = terminated | truncated
    assert done_seen.all()
    vec.close()


def test_vector_dmc_pixels_shapes() -> None:
    vec = make_vector_env({"name": "walker-walk", "obs": "pixels"}, num_envs=2, seed=0)
    obs, _ = vec.reset()
    assert obs.shape == (2, 9, 84, 84) and obs.dtype == np.uint8
    assert vec.single_action_space == gym.spaces.Box(-1.0, 1.0, (6,), np.float32)
    obs, *_ = vec.step(vec.action_space.sample())
    assert obs.shape == (2, 9, 84, 84)
    assert not np.array_equal(obs[0], obs[1])  # differently seeded envs
    vec.close()


def test_async_vector_dmc_state_matches_sync() -> None:
    cfg = {"name": "cartpole-swingup", "vectorization": "async"}
    vec = make_vector_env(cfg, num_envs=2, seed=5)
    assert isinstance(vec, gym.vector.AsyncVectorEnv)
    ref = make_vector_env({**cfg, "vectorization": "sync"}, num_envs=2, seed=5)
    obs, _ = vec.reset()
    ref_obs, _ = ref.reset()
    np.testing.assert_allclose(obs, ref_obs)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(10, 2, 1)).astype(np.float32)
    for a in actions:
        obs, reward, *_ = vec.step(a)
        ref_obs, ref_reward, *_ = ref.step(a)
        np.testing.assert_allclose(obs, ref_obs, rtol=1e-6)
        np.testing.assert_allclose(reward, ref_reward, rtol=1e-6)
    assert obs.dtype == np.float32 and obs.shape == (2, 5)
    vec.close()
    ref.close()


# --------------------------------------------------------------------------- Atari
def test_atari_life_loss_keeps_game_and_reports_raw_game_return() -> None:
    cfg = {"name": "ALE/SpaceInvaders-v5", "terminal_on_life_loss": True, "clip_rewards": True, "protocol": "100k"}
    vec = make_vector_env(cfg, num_envs=1, seed=0)
    base = vec.envs[0]
    ale = base.unwrapped.ale
    pre = _first(base, gym.wrappers.AtariPreprocessing)
    raw_rewards: list[float] = []
    inner_step = pre.step

    def spy(action):  # records the raw (unclipped) reward of every agent step
        out = inner_step(action)
        raw_rewards.append(float(out[1]))
        return out

    pre.step = spy
    vec.reset()
    start_lives = ale.lives()
    assert start_lives > 1
    rng = np.random.default_rng(0)
    clipped_total, life_losses, prev_done = 0.0, 0, False
    for _ in range(20_000):
        if prev_done:
            frame_before = ale.getEpisodeFrameNumber()
        _, reward, terminated, truncated, info = vec.step(rng.integers(vec.single_action_space.n, size=1))
        if prev_done:  # the autoreset step after a life loss continues the same game
            assert ale.getEpisodeFrameNumber() > frame_before > 0
            assert reward[0] == 0
        clipped_total += reward[0]
        assert reward[0] in (-1.0, 0.0, 1.0)
        game_over = ale.game_over()
        if terminated[0] and not game_over:
            life_losses += 1
            assert not info.get("_episode", [False])[0]  # no statistics for a lost life
        if game_over:
            assert terminated[0] and info["_episode"][0]
            assert info["episode"]["r"][0] == pytest.approx(sum(raw_rewards))
            assert sum(raw_rewards) > clipped_total  # Space Invaders scores 5-30 per alien
            break
        prev_done = bool(terminated[0] or truncated[0])
    else:
        pytest.fail("the game did not end")
    assert life_losses == start_lives - 1
    vec.close()


def test_atari_eval_mode_has_no_life_loss_or_clipping() -> None:
    cfg = {"name": "ALE/SpaceInvaders-v5", "terminal_on_life_loss": True, "clip_rewards": True}
    env = make_env(cfg, seed=0, mode="eval")
    chain = []
    e = env
    while isinstance(e, gym.Wrapper):
        chain.append(type(e).__name__)
        e = e.env
    assert "EpisodicLife" not in chain and "SignReward" not in chain
    train = make_env(cfg, seed=0)
    assert isinstance(_first(train, envs.atari.EpisodicLife), envs.atari.EpisodicLife)
    with pytest.raises(ValueError, match="mode"):
        make_env(cfg, seed=0, mode="test")


# --------------------------------------------------------------------------- log noise
def test_dmc_settotalmass_deprecation_is_silenced(caplog: pytest.LogCaptureFixture) -> None:
    from absl import logging as absl_logging

    with caplog.at_level(logging.WARNING):
        env = make_env({"name": "cheetah-run", "obs": "pixels", "image_size": 32}, seed=0)
        env.reset()
        env.close()
        absl_logging.warning("an unrelated absl warning")
    messages = [record.getMessage() for record in caplog.records]
    assert not any("settotalmass" in m for m in messages), messages
    assert "an unrelated absl warning" in messages  # other warnings still pass


# --------------------------------------------------------------------------- Dict observations
GOAL_ENV_MODULE = '''
import gymnasium as gym
gym.register("BitFlipGoal-v0", entry_point="stable_baselines3.common.envs:BitFlippingEnv",
             kwargs={"n_bits": 4, "continuous": True, "max_steps": 8})
gym.register("BitFlipImage-v0", entry_point="stable_baselines3.common.envs:BitFlippingEnv",
             kwargs={"n_bits": 4, "image_obs_space": True, "max_steps": 8})
'''


def test_dict_observations_of_vector_entries_are_joined(tmp_path, monkeypatch) -> None:
    """A goal-conditioned Dict env (observation, achieved_goal, desired_goal) becomes one float32
    vector in key order; image entries are refused with a message naming the way that works."""
    (tmp_path / "goal_envs.py").write_text(GOAL_ENV_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    env = make_env(EnvConfig(name="goal_envs:BitFlipGoal-v0"), seed=0)
    raw = gym.make("BitFlipGoal-v0")
    assert env.observation_space.shape == (12,) and env.observation_space.dtype == np.float32
    obs, _ = env.reset(seed=0)
    raw_obs, _ = raw.reset(seed=0)
    expected = np.concatenate([raw_obs[k] for k in sorted(raw_obs)]).astype(np.float32)  # Dict keys are sorted
    np.testing.assert_array_equal(obs, expected)
    with pytest.raises(ValueError, match="rlaux.sb3 with MultiInputPolicy"):
        make_env(EnvConfig(name="goal_envs:BitFlipImage-v0"), seed=0)


def test_dict_observation_env_trains_through_the_cli(tmp_path) -> None:
    (tmp_path / "goal_envs.py").write_text(GOAL_ENV_MODULE)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "rlaux.train", "agent=sac", "aux=tcrl", "env=goal_envs:BitFlipGoal-v0", "steps=400",
         "agent.learning_starts=100", "agent.batch_size=32", "log_every=200", "eval_every=0", "eval_episodes=1",
         "logger=csv", "progress=false", "threads=1", "hydra.run.dir=run"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    header = (tmp_path / "run" / "train.csv").read_text().splitlines()[0]
    assert "aux/tcrl/loss" in header
