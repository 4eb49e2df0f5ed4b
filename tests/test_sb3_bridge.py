"""rlaux.sb3: aux objectives inside Stable-Baselines3's PPO, SAC, DQN (and A2C, TD3).

Fast tests: options and errors, default extractors, window sampling from SB3's buffers,
gradient routing (which networks the aux gradient reaches, per option), joint-mode gradient
sums, save/load round trips, SB3 logger keys, rlaux's DMC/Atari envs through DummyVecEnv.
Learning tests (marked ``learning``, minutes): each algorithm reaches the native agents' bars
with an aux objective while the aux loss falls.
"""

from __future__ import annotations

import csv
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.torch_layers import FlattenExtractor, NatureCNN
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

from rlaux.sb3 import (
    AuxA2C,
    AuxDQN,
    AuxPPO,
    AuxRolloutBuffer,
    AuxSAC,
    AuxTD3,
    MlpFeatures,
    replay_window_source,
    with_aux,
)
from rlaux.sb3.routing import optimizer_params

BOX1 = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
ACT1 = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
SMALL_TCRL = {"tcrl": {"horizon": 3, "hidden": [32, 32]}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def ppo(aux: Any = SMALL_TCRL, env: Any = "CartPole-v1", **kwargs: Any) -> AuxPPO:
    opts = {"n_steps": 32, "batch_size": 32, "n_epochs": 2, "seed": 0, **kwargs}
    return AuxPPO("MlpPolicy", make_vec_env(env, n_envs=2, seed=0) if isinstance(env, str) else env, aux=aux, **opts)


def sac(aux: Any = SMALL_TCRL, **kwargs: Any) -> AuxSAC:
    opts = {"learning_starts": 64, "batch_size": 32, "seed": 0, "policy_kwargs": {"net_arch": [32, 32]}, **kwargs}
    return AuxSAC("MlpPolicy", "Pendulum-v1", aux=aux, **opts)


def dqn(aux: Any = SMALL_TCRL, **kwargs: Any) -> AuxDQN:
    opts = {"learning_starts": 64, "batch_size": 32, "train_freq": 4, "seed": 0,
            "policy_kwargs": {"net_arch": [32, 32]}, **kwargs}
    return AuxDQN("MlpPolicy", "CartPole-v1", aux=aux, **opts)


def grads_after(loss: torch.Tensor, module: nn.Module) -> dict[str, bool]:
    """name -> whether that parameter got a nonzero gradient from ``loss`` alone."""
    for p in module.parameters():
        p.grad = None
    loss.backward()
    return {name: p.grad is not None and bool(p.grad.abs().sum() > 0) for name, p in module.named_parameters()}


def aux_loss(model: Any) -> torch.Tensor:
    rt = model._aux
    loss, _ = rt.suite.loss(rt.sample(64), rt.encoder)
    return loss


# ------------------------------------------------------------------ options, errors, defaults
def test_bad_aux_names_and_options_are_named() -> None:
    with pytest.raises(KeyError, match="'nope'.*valid choices: none, predictive, proto_value, taco, tcrl"):
        ppo(aux=["nope"])
    with pytest.raises(ValueError, match=r"Unknown aux_kwargs key\(s\) \['optimiser'\]; valid keys: optimizer"):
        ppo(aux_kwargs={"optimiser": "joint"})
    with pytest.raises(ValueError, match=r"aux_kwargs\['optimizer'\]='both'.*one of separate, joint"):
        ppo(aux_kwargs={"optimizer": "both"})
    with pytest.raises(ValueError, match=r"aux_kwargs\['encoder'\]='trunk'.*one of critic, actor"):
        sac(aux_kwargs={"encoder": "trunk"})
    with pytest.raises(ValueError, match="gradient_steps"):
        ppo(aux_kwargs={"optimizer": "joint", "gradient_steps": 3})
    with pytest.raises(ValueError, match=r"aux=.*lists \['tcrl'\] more than once|lists \['tcrl'\] more than once"):
        ppo(aux=["tcrl", "tcrl"])


def test_mlp_policies_get_a_trainable_extractor_of_sb3s_first_layer() -> None:
    model = ppo()
    assert isinstance(model.policy.features_extractor, MlpFeatures)
    assert model.policy.features_extractor.features_dim == 64
    assert isinstance(model.policy.features_extractor.net[-1], nn.Tanh)  # PPO's default activation
    assert model.policy.net_arch == {"pi": [64], "vf": [64]}  # 64 (extractor) + 64 = SB3's [64, 64]
    model = sac(policy_kwargs={})
    assert model.critic.features_extractor.features_dim == 256 and model.policy.net_arch == [256]
    assert isinstance(model.critic.features_extractor.net[-1], nn.ReLU)
    model = dqn(policy_kwargs={"net_arch": [128, 32]})
    assert model.q_net.features_extractor.features_dim == 128 and model.policy.net_arch == [32]
    plain = AuxPPO("MlpPolicy", "CartPole-v1", n_steps=32, batch_size=32)  # no aux: plain SB3 networks
    assert isinstance(plain.policy.features_extractor, FlattenExtractor) and plain.aux_suite is None


def test_parameter_free_extractor_and_impossible_routes_are_refused() -> None:
    with pytest.raises(ValueError, match="FlattenExtractor.*no trainable parameters"):
        ppo(policy_kwargs={"features_extractor_class": FlattenExtractor})
    with pytest.raises(ValueError, match="share_features_extractor=True.*actor loss only.*encoder='actor'"):
        sac(policy_kwargs={"net_arch": [32, 32], "share_features_extractor": True})
    shared = sac(policy_kwargs={"net_arch": [32, 32], "share_features_extractor": True}, aux_kwargs={"encoder": "actor"})
    assert shared._aux.route.extractor is shared.actor.features_extractor is shared.critic.features_extractor
    with pytest.raises(ValueError, match="encoder'\\]='actor' is impossible for DQN: it has no actor"):
        dqn(aux_kwargs={"encoder": "actor"})


def test_with_aux_wraps_subclasses_once() -> None:
    class MyPPO(PPO):
        pass

    assert with_aux(PPO) is AuxPPO
    cls = with_aux(MyPPO)
    assert cls is with_aux(MyPPO) and cls.__name__ == "AuxMyPPO" and issubclass(cls, MyPPO)
    model = cls("MlpPolicy", "CartPole-v1", aux="tcrl", n_steps=16, batch_size=16)
    assert model.aux_suite is not None
    with pytest.raises(TypeError, match="SB3 algorithm class"):
        with_aux(dict)


# ------------------------------------------------------------------ windows from SB3 buffers
def _stream(n: int, ends: dict[int, str]) -> list[dict[str, Any]]:
    """Single-env stream: obs t, action t/100, reward 2^t; ends[t] in {'term', 'trunc'} (final obs 100 + t)."""
    out = []
    for t in range(n):
        end = ends.get(t)
        out.append({"obs": float(t), "next": 100.0 + t if end else float(t + 1), "action": t / 100.0,
                    "reward": float(2 ** t), "done": end is not None, "timeout": end == "trunc"})
    return out


def _expected(stream: list[dict[str, Any]], start: int, length: int, last: int) -> dict[str, list[float]]:
    mask, obs, rew, term = [], [stream[start]["obs"]], [], []
    k_valid = start
    for k in range(length):
        t = start + k
        ok = t <= last and (k == 0 or (mask[-1] and not stream[t - 1]["done"]))
        mask.append(1.0 if ok else 0.0)
        if ok:
            k_valid = t
        step = stream[k_valid]
        obs.append(step["next"])
        rew.append(step["reward"] if ok else 0.0)
        term.append(float(step["done"] and not step["timeout"]) if ok else 0.0)
    return {"mask": mask, "obs": obs, "reward": rew, "terminated": term}


@pytest.mark.parametrize("n_added", [6, 11])  # 11 > 8 slots: the ring wrapped
def test_replay_windows_follow_episodes_and_stop_at_the_write_head(n_added: int) -> None:
    np.random.seed(0)
    buf = ReplayBuffer(8, BOX1, ACT1, device="cpu", n_envs=1)  # any SB3 replay buffer serves windows
    stream = _stream(n_added, {2: "term", 6: "trunc"})
    for s in stream:
        buf.add(np.array([[s["obs"]]]), np.array([[s["next"]]]), np.array([[s["action"]]]), np.array([s["reward"]]),
                np.array([s["done"]]), [{"TimeLimit.truncated": s["timeout"]}])
    first = max(0, n_added - 8)
    batch = replay_window_source(buf).sample(600, 4, buf.action_space, buf.device, gamma=0.5, nstep=2)
    starts = batch.obs[:, 0, 0].long().tolist()
    assert set(starts) == set(range(first, n_added))  # every stored transition, nothing overwritten
    for b, start in enumerate(starts):
        exp = _expected(stream, start, 4, n_added - 1)
        assert batch.mask[b].tolist() == exp["mask"], start
        assert batch.obs[b, :, 0].tolist() == exp["obs"], start
        assert batch.reward[b].tolist() == exp["reward"], start
        assert batch.terminated[b].tolist() == exp["terminated"], start
        m = int(sum(exp["mask"][:2]))
        assert batch.nstep_reward[b].item() == pytest.approx(sum(0.5 ** i * exp["reward"][i] for i in range(m)))
        assert batch.nstep_discount[b].item() == pytest.approx(0.5 ** m * (1 - exp["terminated"][m - 1]))
        assert batch.nstep_next_obs[b, 0].item() == exp["obs"][m]
    assert batch.action.shape == (600, 4, 1) and batch.action.dtype == torch.float32


def test_rollout_windows_use_final_obs_and_raw_rewards_and_survive_flattening() -> None:
    np.random.seed(0)
    T, N = 6, 2
    buf = AuxRolloutBuffer(T, BOX1, gym.spaces.Discrete(3), device="cpu", gamma=0.9, gae_lambda=0.9, n_envs=N)
    buf.reset()
    streams = [_stream(T, {2: "trunc"}), _stream(T, {3: "term"})]
    for t in range(T):
        steps = [s[t] for s in streams]
        dones = np.array([s["done"] for s in steps])
        infos = [{"terminal_observation": np.array([s["next"]]), "TimeLimit.truncated": s["timeout"]} if s["done"]
                 else {} for s in steps]
        new_obs = np.array([[s["next"] if not s["done"] else -1.0] for s in steps])  # reset obs is not the final obs
        buf.record(new_obs, np.array([s["reward"] for s in steps]), dones, infos)
        bootstrapped = np.array([s["reward"] + (1000.0 if s["timeout"] else 0.0) for s in steps])  # SB3's timeout bootstrap
        buf.add(np.array([[s["obs"]] for s in steps]), np.array([[t % 3]] * N), bootstrapped,
                np.zeros(N), torch.zeros(N), torch.zeros(N))
    buf.compute_returns_and_advantage(torch.zeros(N), np.zeros(N))

    def check() -> None:
        batch = buf.window_source().sample(400, 3, buf.action_space, buf.device)
        assert batch.action.dtype == torch.int64 and batch.action.shape == (400, 3)
        for b in range(400):
            start = int(batch.obs[b, 0, 0])
            # which env? both streams hold the same obs values; the done step tells them apart
            cands = [_expected(s, start, 3, T - 1) for s in streams]
            assert any(batch.mask[b].tolist() == e["mask"] and batch.obs[b, :, 0].tolist() == e["obs"]
                       and batch.reward[b].tolist() == e["reward"] and batch.terminated[b].tolist() == e["terminated"]
                       for e in cands), (start, batch.obs[b, :, 0].tolist(), batch.mask[b].tolist())
            assert batch.action[b, 0].item() == start % 3

    check()
    list(buf.get(4))  # SB3 flattens the arrays here
    check()


# ------------------------------------------------------------------ gradient routing
def test_ppo_aux_gradient_reaches_only_the_extractor_and_detach_rl_switches_the_rl_gradient() -> None:
    model = ppo()  # tcrl: detach_rl by its recipe
    model.learn(64)
    grads = grads_after(aux_loss(model), model.policy)
    assert all(grads[n] for n in grads if "features_extractor" in n)
    assert not any(grads[n] for n in grads if "features_extractor" not in n)  # mlp_extractor, action/value nets

    def rl_loss(m: AuxPPO) -> torch.Tensor:
        data = next(m.rollout_buffer.get(32))
        values, log_prob, entropy = m.policy.evaluate_actions(data.observations, data.actions.long().flatten())
        return values.sum() + log_prob.sum()

    assert not any(v for n, v in grads_after(rl_loss(model), model.policy).items() if "features_extractor" in n)
    attached = ppo(aux_kwargs={"detach_rl": False})
    attached.learn(64)
    assert all(v for n, v in grads_after(rl_loss(attached), attached.policy).items() if "features_extractor" in n)


@pytest.mark.parametrize("encoder", ["critic", "actor"])
def test_sac_aux_gradient_reaches_the_chosen_extractor_only(encoder: str) -> None:
    model = sac(aux_kwargs={"encoder": encoder})
    model.learn(80)
    grads = grads_after(aux_loss(model), model.policy)
    chosen, other = ("critic.", "actor.") if encoder == "critic" else ("actor.", "critic.")
    assert all(grads[n] for n in grads if n.startswith(chosen + "features_extractor"))
    reached = {n for n, v in grads.items() if v}
    assert reached == {n for n in grads if n.startswith(chosen + "features_extractor")}
    assert not any(n.startswith(other) or "critic_target" in n for n in reached)
    # detach_rl (tcrl's recipe): the RL losses do not reach the chosen extractor; the other one they do
    obs = torch.as_tensor(model.replay_buffer.observations[:16, 0])
    act = torch.as_tensor(model.replay_buffer.actions[:16, 0])
    critic_grads = grads_after(sum(q.sum() for q in model.critic(obs, act)), model.critic)
    actor_grads = grads_after(model.actor(obs).sum(), model.actor)
    assert any(v for n, v in critic_grads.items() if n.startswith("qf"))
    chosen_grads, other_grads = (critic_grads, actor_grads) if encoder == "critic" else (actor_grads, critic_grads)
    assert not any(v for n, v in chosen_grads.items() if n.startswith("features_extractor"))
    assert all(v for n, v in other_grads.items() if n.startswith("features_extractor"))


def test_dqn_aux_gradient_reaches_the_q_extractor_only() -> None:
    model = dqn(aux_kwargs={"detach_rl": False})
    model.learn(80)
    grads = grads_after(aux_loss(model), model.policy)
    assert {n for n, v in grads.items() if v} == {n for n in grads if n.startswith("q_net.features_extractor")}


@pytest.mark.parametrize("make", [ppo, sac, dqn], ids=["ppo", "sac", "dqn"])
def test_joint_mode_adds_the_aux_gradient_to_the_rl_gradient_of_the_same_step(make) -> None:
    model = make(aux_kwargs={"optimizer": "joint", "detach_rl": False})
    model.learn(96)
    rt = model._aux
    assert rt.suite.optimizer is None
    assert {id(p) for p in rt.head_params} <= optimizer_params(rt.route.optimizer)
    assert rt.aux_steps == rt.rl_steps > 0  # one aux backward per RL optimiser step of the last train()
    params = list(rt.route.extractor.parameters())

    def rl_loss() -> torch.Tensor:  # any loss of the RL networks that reads the extractor
        obs = rt.sample(16).obs[:, 0]
        torch.manual_seed(1)
        return model.policy.extract_features(obs, rt.route.extractor).pow(2).sum()

    np.random.seed(3)
    loss = rl_loss()
    rt.in_train = True
    rt.route.optimizer.zero_grad()  # the hook back-propagates the aux loss here
    rt.in_train = False
    g_aux = [p.grad.clone() for p in params]
    assert all(g.abs().sum() > 0 for g in g_aux)
    loss.backward()
    g_total = [p.grad.clone() for p in params]
    rt.route.optimizer.zero_grad()  # outside train(): plain zero_grad
    assert all(p.grad is None for p in params)
    np.random.seed(3)
    rl_loss().backward()
    for total, aux_g, p in zip(g_total, g_aux, params):
        torch.testing.assert_close(total, aux_g + p.grad)


def test_separate_mode_steps_as_often_as_the_rl_optimiser() -> None:
    model = ppo(n_epochs=3)
    model.learn(64)
    assert model._aux.aux_steps == model._aux.rl_steps == 3 * 2  # 3 epochs x (64 / 32) minibatches
    model = sac(train_freq=4, gradient_steps=3)
    model.learn(100)
    assert model._aux.aux_steps == 3
    assert model.aux_metrics["aux/steps"] == 3.0


def test_separate_updates_reduce_the_aux_loss_on_fixed_data() -> None:
    model = sac(learning_starts=300)
    model.learn(300)  # fills the replay; no RL or aux update yet
    rt = model._aux
    np.random.seed(0)
    batch = rt.sample(256)

    def loss() -> float:
        with torch.no_grad():
            return float(rt.suite.loss(batch, rt.encoder)[0])

    before = loss()
    rt.separate_updates(150)
    assert loss() < 0.7 * before


# ------------------------------------------------------------------ save / load, logging, envs
def _state_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
        elif isinstance(a[k], dict):
            _state_equal(a[k], b[k])
        elif isinstance(a[k], list):
            assert len(a[k]) == len(b[k])
            for x, y in zip(a[k], b[k]):
                _state_equal(x, y) if isinstance(x, dict) else None


@pytest.mark.parametrize("make,mode", [(ppo, "separate"), (sac, "joint"), (dqn, "separate"), (ppo, "joint")],
                         ids=["ppo-separate", "sac-joint", "dqn-separate", "ppo-joint"])
def test_save_load_restores_heads_targets_optimisers_and_continues(make, mode: str, tmp_path) -> None:
    model = make(aux_kwargs={"optimizer": mode})
    model.learn(96)
    path = tmp_path / "model.zip"
    model.save(path)
    loaded = type(model).load(path, env=model.get_env())
    obs = np.stack([model.observation_space.sample() for _ in range(20)])
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    _state_equal(model.aux_suite.state_dict(), loaded.aux_suite.state_dict())
    assert any("target" in k and "encoder" in k for k in loaded.aux_suite.state_dict())  # tcrl's EMA target came back
    names = model._get_torch_save_params()[0]
    assert names == loaded._get_torch_save_params()[0]
    assert ("aux_suite.optimizer" in names) == (mode == "separate")
    for name in names:
        if name.endswith("optimizer"):
            _state_equal(model.get_parameters()[name], loaded.get_parameters()[name])
    assert loaded.aux_options["optimizer"] == mode and loaded.aux_spec == model.aux_spec
    before = [p.clone() for p in loaded._aux.route.extractor.parameters()]
    heads = [p.clone() for p in loaded._aux.head_params]
    loaded.learn(96, reset_num_timesteps=False)
    assert loaded.aux_metrics["aux/loss"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, loaded._aux.route.extractor.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(heads, loaded._aux.head_params))


def test_aux_metrics_go_to_the_sb3_logger(tmp_path) -> None:
    model = ppo(aux={"tcrl": {"horizon": 2, "hidden": [16]}, "predictive": {"hidden": [16]}})
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(128)
    with open(tmp_path / "progress.csv") as f:
        header = next(csv.reader(f))
    for key in ["aux/loss", "aux/tcrl/loss", "aux/tcrl/latent_cos", "aux/predictive/loss", "aux/steps", "train/value_loss"]:
        assert key in header


def test_a2c_and_td3_train_with_aux() -> None:
    a2c = AuxA2C("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), aux=SMALL_TCRL, n_steps=8, seed=0)
    a2c.learn(64)
    assert a2c.aux_metrics["aux/steps"] == 1.0  # A2C: one gradient step per rollout
    td3 = AuxTD3("MlpPolicy", "Pendulum-v1", aux=SMALL_TCRL, aux_kwargs={"optimizer": "joint", "encoder": "actor"},
                 learning_starts=64, batch_size=32, policy_kwargs={"net_arch": [32, 32]}, seed=0)
    td3.learn(100)
    assert td3.aux_metrics["aux/loss"] > 0
    assert td3._aux.rl_steps == td3._aux.aux_steps  # joined the (delayed) actor steps


def test_rlaux_envs_through_dummy_vec_env() -> None:
    from envs import make_env

    dmc = DummyVecEnv([lambda: make_env({"name": "cartpole-swingup"}, seed=0)])
    model = AuxSAC("MlpPolicy", dmc, aux=SMALL_TCRL, learning_starts=40, batch_size=16,
                   policy_kwargs={"net_arch": [32, 32]}, seed=0)
    model.learn(60)
    assert model.aux_metrics["aux/tcrl/loss"] > 0

    pong = DummyVecEnv([lambda: make_env({"name": "ALE/Pong-v5"}, seed=0)])
    model = AuxPPO("CnnPolicy", pong, aux={"tcrl": {"horizon": 2, "hidden": [32]}}, n_steps=16, batch_size=8,
                   n_epochs=1, seed=0, policy_kwargs={"features_extractor_kwargs": {"features_dim": 64}})
    assert isinstance(model._aux.route.extractor, NatureCNN)
    model.learn(16)
    window = model._aux.sample(4)
    assert window.obs.dtype == torch.uint8 and window.obs.shape[2:] == (4, 84, 84)
    assert model.aux_metrics["aux/tcrl/loss"] > 0


# ------------------------------------------------------------------ learning (minutes)
class AuxLossTrace(BaseCallback):
    """Keeps ``model.aux_metrics["aux/loss"]`` after every train() call."""

    def __init__(self) -> None:
        super().__init__()
        self.losses: list[float] = []
        self._updates = 0

    def _on_rollout_start(self) -> None:  # called after every train() (and before the first)
        if self.model._n_updates != self._updates:
            self._updates = self.model._n_updates
            self.losses.append(self.model.aux_metrics["aux/loss"])

    def _on_step(self) -> bool:
        return True


def _assert_aux_loss_fell(trace: AuxLossTrace) -> None:
    n = max(len(trace.losses) // 10, 1)
    early, late = np.mean(trace.losses[:n]), np.mean(trace.losses[-n:])
    assert late < early, (early, late)


def _eval(model: Any, env_id: str) -> float:
    mean, _ = evaluate_policy(model, gym.make(env_id), n_eval_episodes=10, deterministic=True)
    return float(mean)


@pytest.mark.learning
def test_aux_ppo_learns_cartpole() -> None:
    # rl-zoo's CartPole-v1 PPO hyperparameters (half its 1e5 steps); TCRL joined to the PPO loss,
    # end to end (detach_rl=False: with TCRL's own recipe the extractor, trained by TCRL alone,
    # leaves PPO at ~330 after 60k steps)
    trace = AuxLossTrace()
    model = AuxPPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=8, seed=0), aux={"tcrl": {"hidden": [128, 128]}},
                   aux_kwargs={"optimizer": "joint", "detach_rl": False}, n_steps=32, batch_size=256, gae_lambda=0.8,
                   gamma=0.98, n_epochs=20, ent_coef=0.0, learning_rate=lambda p: 1e-3 * p,
                   clip_range=lambda p: 0.2 * p, seed=0)
    model.learn(50_000, callback=trace)
    assert _eval(model, "CartPole-v1") >= 475
    _assert_aux_loss_fell(trace)


@pytest.mark.learning
def test_aux_dqn_learns_cartpole() -> None:
    # rl-zoo's CartPole-v1 DQN hyperparameters, TCRL with its own optimiser
    trace = AuxLossTrace()
    model = AuxDQN("MlpPolicy", "CartPole-v1", aux={"tcrl": {"hidden": [128, 128]}}, learning_rate=2.3e-3,
                   batch_size=64, buffer_size=100_000, learning_starts=1000, gamma=0.99, target_update_interval=10,
                   train_freq=256, gradient_steps=128, exploration_fraction=0.16, exploration_final_eps=0.04,
                   policy_kwargs={"net_arch": [256, 256]}, seed=0)
    model.learn(30_000, callback=trace)
    assert _eval(model, "CartPole-v1") >= 150
    _assert_aux_loss_fell(trace)


@pytest.mark.learning
def test_aux_sac_learns_pendulum() -> None:
    # rl-zoo's Pendulum-v1 SAC (lr 1e-3), smaller nets; TCRL on the critic's extractor, own optimiser
    trace = AuxLossTrace()
    model = AuxSAC("MlpPolicy", "Pendulum-v1", aux={"tcrl": {"hidden": [128, 128]}}, learning_rate=1e-3,
                   learning_starts=500, batch_size=128, train_freq=4, gradient_steps=4,
                   policy_kwargs={"net_arch": [128, 128]}, seed=0)
    model.learn(8_000, callback=trace)
    assert _eval(model, "Pendulum-v1") > -400
    _assert_aux_loss_fell(trace)
