"""Gymnasium registration of the DMC tasks (issue 19 item 8): ``rlaux/<domain>-<task>[-pixels]-v0``."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs import UnknownEnvError, env_kind, make_env, resolve_env_config
from envs.registration import DMC_TASKS, gym_id, parse_gym_id, registered_ids

# gymnasium's checker says this of every gym.make'd env (it is wrapped), and nags about
# unbounded Box observations (DMC states are unbounded)
UNWRAPPED_NOTE = "is different from the unwrapped version"


def _checker_warnings(env: gym.Env) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    return [str(w.message) for w in caught]


def test_task_list_is_dm_control_suite() -> None:
    from dm_control import suite

    assert DMC_TASKS == tuple(suite.ALL_TASKS)


def test_ids_are_registered_on_import_without_loading_simulators() -> None:
    code = ("import sys, gymnasium, envs; "
            "assert 'rlaux/cheetah-run-v0' in gymnasium.registry and 'rlaux/dog-run-pixels-v0' in gymnasium.registry; "
            "assert 'dm_control' not in sys.modules and 'ale_py' not in sys.modules and 'mujoco' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_module_prefixed_id_needs_no_import() -> None:
    code = ("import gymnasium; env = gymnasium.make('envs:rlaux/cartpole-swingup-v0'); "
            "assert env.reset(seed=0)[0].shape == (5,)")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_parse_gym_id() -> None:
    assert parse_gym_id("rlaux/cheetah-run-v0") == ("cheetah-run", "state")
    assert parse_gym_id("rlaux/finger-turn_hard-pixels-v0") == ("finger-turn_hard", "pixels")
    assert parse_gym_id(gym_id("ball_in_cup-catch", pixels=True)) == ("ball_in_cup-catch", "pixels")
    for not_ours in ("cheetah-run", "rlaux/cheetah-walk-v0", "rlaux/cheetah-run-v1", "ALE/Pong-v5", "rlaux/-v0"):
        assert parse_gym_id(not_ours) is None, not_ours
    assert len(registered_ids()) == 2 * len(DMC_TASKS)
    assert all(env_id in gym.registry for env_id in registered_ids())


@pytest.mark.parametrize("env_id", ["rlaux/cartpole-swingup-v0", "rlaux/cartpole-swingup-pixels-v0"])
def test_gymnasium_check_env_with_render_modes(env_id: str) -> None:
    env = gym.make(env_id)
    assert env.spec is not None and env.spec.id == env_id
    assert env.metadata["render_modes"] == ["rgb_array"]
    messages = _checker_warnings(env)  # renders with every declared mode (it has a spec)
    unexpected = [m for m in messages if UNWRAPPED_NOTE not in m and "Box observation space" not in m]
    assert unexpected == [], unexpected
    assert not any("spec" in m for m in messages if UNWRAPPED_NOTE not in m)
    env.close()
    rendering = gym.make(env_id, render_mode="rgb_array")
    rendering.reset(seed=0)
    frame = rendering.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3 and frame.max() > 0
    rendering.close()


def test_sb3_check_env_and_model_from_id() -> None:
    from stable_baselines3 import SAC
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(gym.make("rlaux/cartpole-swingup-v0"))
    assert [str(w.message) for w in caught] == []
    model = SAC("MlpPolicy", "rlaux/cartpole-swingup-v0", buffer_size=100, learning_starts=10, seed=0)
    assert model.observation_space.shape == (5,)
    model.learn(12)


def test_id_builds_the_same_env_as_the_dmc_name() -> None:
    for env_id, cfg in [("rlaux/cartpole-swingup-v0", {"name": "cartpole-swingup"}),
                        ("rlaux/cartpole-swingup-pixels-v0", {"name": "cartpole-swingup", "obs": "pixels"})]:
        assert resolve_env_config({"name": env_id}) == resolve_env_config(cfg)
        assert env_kind(env_id) == "dmc"
        by_id, by_name = gym.make(env_id), make_env(cfg, seed=3)
        obs_id, _ = by_id.reset(seed=3)
        obs_name, _ = by_name.reset()
        np.testing.assert_array_equal(obs_id, obs_name)
        action = np.full(by_id.action_space.shape, 0.5, np.float32)
        for _ in range(3):
            step_id, step_name = by_id.step(action), by_name.step(action)
            np.testing.assert_array_equal(step_id[0], step_name[0])
            assert step_id[1:4] == step_name[1:4]
        by_id.close()
        by_name.close()


def test_make_kwargs_override_env_fields() -> None:
    env = gym.make("rlaux/cartpole-swingup-pixels-v0", image_size=32, frame_stack=2)
    assert env.observation_space.shape == (6, 32, 32)
    env.close()
    with pytest.raises(ValueError, match="image_size"):
        gym.make("rlaux/cartpole-swingup-v0", image_size=0)


def test_ids_are_accepted_as_env_names() -> None:
    assert "rlaux/cheetah-run-v0" in envs.list_env_names()
    assert envs.parse_dmc_name("rlaux/ball_in_cup-catch-v0") == ("ball_in_cup", "catch")
    assert "rlaux/cheetah-run-v0" not in envs.registry._gym_tables()[1]  # not a plain Gymnasium id
    with pytest.raises(UnknownEnvError, match="rlaux/cheetah-run-v0"):
        env_kind("rlaux/cheetah-rn-v0")


def test_cli_config_accepts_an_id() -> None:
    from rlaux.config import compose

    cfg = compose(["env=rlaux/cheetah-run-pixels-v0"])
    assert cfg.env.name == "rlaux/cheetah-run-pixels-v0"
    assert resolve_env_config(cfg.env) == resolve_env_config({"name": "cheetah-run", "obs": "pixels"})
