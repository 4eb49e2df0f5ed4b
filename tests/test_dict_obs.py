"""Dict observations: the flat view the objectives read, windows from SB3's Dict buffers (replay,
HER, rollout), AuxSAC + HER and AuxPPO with ``MultiInputPolicy`` training with tcrl and
predictive, save/load, and the refusals (nested entries, image augmentation)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.envs import BitFlippingEnv, SimpleMultiObsEnv
from stable_baselines3.common.torch_layers import CombinedExtractor

from rlaux.buffers.dict_obs import DictObsLayout
from rlaux.objectives.base import IncompatibleObjectiveError, check_spaces
from rlaux.sb3 import AuxDictRolloutBuffer, AuxPPO, AuxRolloutBuffer, AuxSAC, MlpFeatures, replay_window_source

MIXED = gym.spaces.Dict({
    "pos": gym.spaces.Box(-5.0, 5.0, (2,), np.float32),
    "cell": gym.spaces.Discrete(7),
    "keys": gym.spaces.MultiDiscrete([3, 4]),
    "img": gym.spaces.Box(0, 255, (1, 3, 3), np.uint8),
})
SMALL = {"tcrl": {"horizon": 3, "hidden": [32, 32]}, "predictive": {"hidden": [32]}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def flat_box(layout: DictObsLayout) -> gym.spaces.Box:
    return gym.spaces.Box(-np.inf, np.inf, (layout.size,), np.float32)


# ---------------------------------------------------------------- the flat view
def test_layout_round_trip_is_exact():
    layout = DictObsLayout(MIXED)
    samples = [MIXED.sample() for _ in range(5)]
    stacked = {k: np.stack([s[k] for s in samples]) for k in MIXED.spaces}
    flat = layout.flatten(stacked, lead_ndim=1)
    assert flat.shape == (5, 2 + 1 + 2 + 9) and flat.dtype == np.float32
    back = layout.unflatten(torch.as_tensor(flat))
    for key, sub in MIXED.spaces.items():
        assert back[key].shape == (5, *layout.shapes[key])
        np.testing.assert_array_equal(back[key].numpy().astype(sub.dtype), stacked[key])
    # SB3 stores Discrete entries with an extra axis of 1: same flat view
    sb3_layout = {**stacked, "cell": stacked["cell"].reshape(5, 1)}
    np.testing.assert_array_equal(layout.flatten(sb3_layout, lead_ndim=1), flat)


def test_layout_refuses_nested_entries():
    nested = gym.spaces.Dict({"a": gym.spaces.Box(0, 1, (2,)), "inner": gym.spaces.Dict({"b": gym.spaces.Discrete(2)})})
    with pytest.raises(ValueError, match=r"entry 'inner' is Dict.*Box, Discrete, MultiDiscrete, MultiBinary"):
        DictObsLayout(nested)


# ---------------------------------------------------------------- windows
def fill(buffers: list[Any], space: gym.spaces.Dict, steps: int, n_envs: int, seed: int = 0) -> None:
    """The same random transitions (episodes of 1-4 steps, some truncated) into a Dict buffer
    and, flattened, a Box buffer."""
    rng = np.random.default_rng(seed)
    layout = DictObsLayout(space)

    def obs() -> dict[str, np.ndarray]:
        return {k: np.stack([sub.sample() for _ in range(n_envs)]) for k, sub in space.spaces.items()}

    current = obs()
    for _ in range(steps):
        nxt = obs()
        action = rng.uniform(-1, 1, (n_envs, 1)).astype(np.float32)
        reward = rng.normal(size=n_envs).astype(np.float32)
        done = rng.random(n_envs) < 0.3
        infos = [{"TimeLimit.truncated": bool(rng.random() < 0.5)} for _ in range(n_envs)]
        for buffer in buffers:
            dict_obs = isinstance(buffer.observation_space, gym.spaces.Dict)
            o, n = (current, nxt) if dict_obs else (layout.flatten(current, 1), layout.flatten(nxt, 1))
            buffer.add(o, n, action, reward, done, infos)
        current = nxt


@pytest.mark.parametrize("buffer_size", [40, 13])  # 13: the ring wrapped
def test_dict_replay_windows_equal_flat_box_windows(buffer_size):
    layout = DictObsLayout(MIXED)
    act = gym.spaces.Box(-1, 1, (1,), np.float32)
    dict_buffer = DictReplayBuffer(buffer_size, MIXED, act, n_envs=2)
    box_buffer = ReplayBuffer(buffer_size, flat_box(layout), act, n_envs=2)
    fill([dict_buffer, box_buffer], MIXED, steps=25, n_envs=2)
    windows = []
    for buffer in (dict_buffer, box_buffer):
        np.random.seed(3)
        windows.append(replay_window_source(buffer).sample(64, 4, act, gamma=0.9, nstep=2))
    a, b = windows
    assert a.obs.shape == (64, 5, layout.size) and 0 < a.mask.sum() < a.mask.numel()
    for name in ("obs", "action", "reward", "terminated", "mask", "nstep_reward", "nstep_discount", "nstep_next_obs"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0)


def test_dict_rollout_windows_equal_flat_box_windows_before_and_after_get():
    space = gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, (3,), np.float32), "c": gym.spaces.Discrete(4)})
    layout = DictObsLayout(space)
    act = gym.spaces.Discrete(2)
    T, N = 6, 2
    kwargs = dict(device="cpu", gamma=0.9, gae_lambda=0.9, n_envs=N)
    dict_buffer, box_buffer = AuxDictRolloutBuffer(T, space, act, **kwargs), AuxRolloutBuffer(T, flat_box(layout), act,
                                                                                            **kwargs)
    space.seed(0)
    current = {k: np.stack([sub.sample() for _ in range(N)]) for k, sub in space.spaces.items()}
    finals, resets = [], []
    for t in range(T):
        new = {k: np.stack([sub.sample() for _ in range(N)]) for k, sub in space.spaces.items()}
        final = {k: np.stack([sub.sample() for _ in range(N)]) for k, sub in space.spaces.items()}
        finals.append(final)
        resets.append(new)
        dones = np.array([t % 3 == 2, t == 4])
        infos = [{"terminal_observation": {k: v[i] for k, v in final.items()}, "TimeLimit.truncated": i == 0}
                 if dones[i] else {} for i in range(N)]
        flat_infos = [{**info, "terminal_observation": layout.flatten(info["terminal_observation"], 0)}
                      if "terminal_observation" in info else info for info in infos]
        rewards = np.full(N, float(t), np.float32)
        actions, values, logp = np.array([t % 2, 1]), torch.zeros(N), torch.zeros(N)
        dict_buffer.record(new, rewards, dones, infos)
        box_buffer.record(layout.flatten(new, 1), rewards, dones, flat_infos)
        dict_buffer.add(current, actions, rewards, np.zeros(N), values, logp)
        box_buffer.add(layout.flatten(current, 1), actions, rewards, np.zeros(N), values, logp)
        current = new
    for flattened_by_get in (False, True):
        if flattened_by_get:
            for buffer in (dict_buffer, box_buffer):
                next(buffer.get(4))
        windows = []
        for buffer in (dict_buffer, box_buffer):
            np.random.seed(1)
            windows.append(buffer.window_source().sample(32, 3, act))
        for name in ("obs", "action", "reward", "terminated", "mask"):
            torch.testing.assert_close(getattr(windows[0], name), getattr(windows[1], name), rtol=0, atol=0)
    # env 0 ended its episode at t=2: its next observation is the episode's final one, not the reset
    stored = dict_buffer.window_source().next_observations
    np.testing.assert_array_equal(stored["x"][2, 0], finals[2]["x"][0])
    assert not np.array_equal(stored["x"][2, 0], resets[2]["x"][0])
    np.testing.assert_array_equal(stored["c"][2, 0], [finals[2]["c"][0]])
    np.testing.assert_array_equal(stored["x"][1, 0], resets[1]["x"][0])  # not done: the next observation


# ---------------------------------------------------------------- training
def her_sac(**kwargs: Any) -> AuxSAC:
    env = BitFlippingEnv(n_bits=4, continuous=True, max_steps=4)
    opts = dict(replay_buffer_class=HerReplayBuffer,
                replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"),
                learning_starts=64, batch_size=32, buffer_size=2000, seed=0, policy_kwargs=dict(net_arch=[32, 32]))
    return AuxSAC("MultiInputPolicy", env, **{**dict(aux=SMALL), **opts, **kwargs})


def extractor_params(model: Any) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model._aux.route.extractor.parameters()]


def test_aux_sac_her_trains_tcrl_and_predictive_on_the_dict_extractor():
    model = her_sac()
    assert isinstance(model.replay_buffer, HerReplayBuffer)
    assert isinstance(model._aux.route.extractor, MlpFeatures)  # CombinedExtractor of vectors has no parameters
    model.learn(96)
    before = extractor_params(model)
    model.learn(32, reset_num_timesteps=False)
    metrics = model.aux_metrics
    for key in ("aux/tcrl/loss", "aux/predictive/loss"):
        assert np.isfinite(metrics[key]) and metrics[key] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model._aux.route.extractor.parameters()))
    # the windows are the stored episodes: consecutive steps of one episode, same desired goal
    layout = model._aux.encoder.obs_layout
    batch = model._aux.sample(64)
    goal = batch.obs[..., layout.slices["desired_goal"]]
    same_goal = (goal[:, 1:] == goal[:, :1]).all(-1)
    assert bool(same_goal[batch.mask > 0].all())
    achieved, observation = batch.obs[..., layout.slices["achieved_goal"]], batch.obs[..., layout.slices["observation"]]
    torch.testing.assert_close(achieved, observation)  # BitFlippingEnv: the state is the achieved goal


def test_multi_step_aux_loss_falls_on_her_windows():
    model = her_sac(aux={"tcrl": {"horizon": 3, "hidden": [32, 32]}})
    model.learn(66)  # just past learning_starts
    np.random.seed(0)
    batch = model._aux.sample(256)
    assert bool((batch.mask.sum(1) > 1).any())  # multi-step windows
    with torch.no_grad():
        first = float(model.aux_suite.loss(batch, model._aux.encoder)[0])
    model._aux.separate_updates(100)
    with torch.no_grad():
        last = float(model.aux_suite.loss(batch, model._aux.encoder)[0])
    assert last < 0.5 * first


def test_aux_sac_her_save_load_round_trip(tmp_path):
    model = her_sac()
    model.learn(80)
    model.save(tmp_path / "her")
    model.save_replay_buffer(tmp_path / "her_buffer")
    loaded = AuxSAC.load(tmp_path / "her", env=BitFlippingEnv(n_bits=4, continuous=True, max_steps=4))
    loaded.load_replay_buffer(tmp_path / "her_buffer")
    for (name, a), b in zip(model.aux_suite.state_dict().items(), loaded.aux_suite.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    obs = model.observation_space.sample()
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    loaded.learn(40, reset_num_timesteps=False)  # HER and the aux suite keep training after load
    assert np.isfinite(loaded.aux_metrics["aux/tcrl/loss"])


@pytest.mark.parametrize("optimizer", ["separate", "joint"])
def test_aux_ppo_multi_input_trains_tcrl_and_predictive(tmp_path, optimizer):
    model = AuxPPO("MultiInputPolicy", BitFlippingEnv(n_bits=4, max_steps=4), aux=SMALL, n_steps=64, batch_size=32,
                   n_epochs=1, seed=0, policy_kwargs=dict(net_arch=[32]), aux_kwargs=dict(optimizer=optimizer))
    assert isinstance(model.rollout_buffer, AuxDictRolloutBuffer)
    assert isinstance(model._aux.route.extractor, MlpFeatures)
    before = extractor_params(model)
    model.learn(128)
    for key in ("aux/tcrl/loss", "aux/predictive/loss"):
        assert np.isfinite(model.aux_metrics[key])
    assert any(not torch.equal(a, b) for a, b in zip(before, model._aux.route.extractor.parameters()))
    model.save(tmp_path / "ppo")
    loaded = AuxPPO.load(tmp_path / "ppo")
    for a, b in zip(model.aux_suite.state_dict().values(), loaded.aux_suite.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_aux_ppo_keeps_combined_extractor_with_image_entries():
    model = AuxPPO("MultiInputPolicy", SimpleMultiObsEnv(), aux={"tcrl": {"horizon": 2, "hidden": [32, 32]}},
                   n_steps=32, batch_size=32, n_epochs=1, seed=0)
    assert type(model._aux.route.extractor) is CombinedExtractor  # its CNN trains
    model.learn(32)
    assert np.isfinite(model.aux_metrics["aux/tcrl/loss"])


def test_taco_augmentation_of_dict_images_is_refused():
    with pytest.raises(IncompatibleObjectiveError, match=r"aux=taco augment=True.*\['img'\].*'augment': False"):
        AuxPPO("MultiInputPolicy", SimpleMultiObsEnv(), aux=["taco"], n_steps=32, batch_size=32)
    AuxPPO("MultiInputPolicy", SimpleMultiObsEnv(), aux={"taco": {"augment": False}}, n_steps=32, batch_size=32)


def test_dict_rollout_buffer_class_is_checked():
    with pytest.raises(ValueError, match="rollout_buffer_class=AuxRolloutBuffer cannot serve.*AuxDictRolloutBuffer"):
        AuxPPO("MultiInputPolicy", BitFlippingEnv(n_bits=4), aux=["tcrl"], rollout_buffer_class=AuxRolloutBuffer)


def test_check_spaces_points_dict_spaces_to_the_flat_view():
    with pytest.raises(IncompatibleObjectiveError, match=r"aux=tcrl reads Box observations.*flat_space.*Dict\("):
        check_spaces("tcrl", MIXED, gym.spaces.Discrete(2))
    check_spaces("tcrl", DictObsLayout(MIXED).flat_space, gym.spaces.Discrete(2))
