"""Update-step speed: rlaux SAC and DDPG against Stable-Baselines3 SAC (and TD3) at equal sizes.

Run: ``python benchmarks/sac_update_vs_sb3.py [--threads 1] [--rounds 12] [--calls 40]``

Setting (issue 6): cheetah-run state dimensions (obs 17, action 6), actor and critics
[256, 256] ReLU, twin critics, batch 256, one gradient update per call. Each call includes
drawing the batch from the agent's own replay (SB3: ``model.train(1, 256)``, which samples
its ReplayBuffer; rlaux: ``ReplayBuffer.sample`` + ``agent.update``). The replays hold 20k
synthetic transitions. The measurements are interleaved round by round (the order rotates),
and the ratio is the median over rounds of the paired per-round ratios.

Networks: rlaux's agents always have an encoder; here it is SAC's default (one linear layer
17 -> 50, ``encoder.hidden=[]``), so rlaux does slightly *more* work than SB3 (its [256, 256]
nets read 50 features instead of 17). rlaux DDPG uses the same encoder, [256, 256] actor and
critics (TCRL/DrQ-v2 layout: the first hidden layer is Linear + LayerNorm + Tanh), 1-step
returns; "rlaux DDPG, plain MLPs" is the same agent with ``layernorm_tanh=false`` (ReLU in every
layer: the networks of SB3's TD3). SB3 TD3 runs with ``policy_delay=1`` (an actor update every
step, as rlaux DDPG).

Equal networks: the "no encoder" rows set ``encoder.kind=flat`` (the raw 17-d state goes to
the actor and critics, as SB3's ``FlattenExtractor``): rlaux SAC then has SB3 SAC's layers, and
rlaux DDPG (plain MLPs) SB3 TD3's (its actor loss reads both critics, TD3's one). The issue's
goal (>= 1.5x SB3 SAC's updates/s at equal networks and batch) is judged on those rows.
"""

from __future__ import annotations

import argparse
import warnings

import gymnasium as gym
import numpy as np
import torch
from common import box, build_agent, filled_replay, interleaved, machine_line, paired_ratio, set_threads, spread

OBS_DIM, ACT_DIM, BATCH, FILL = 17, 6, 256, 20_000


class SpacesOnly(gym.Env):
    """An env with cheetah-run's state/action spaces, only used to construct SB3 models."""

    def __init__(self) -> None:
        self.observation_space = box(OBS_DIM)
        self.action_space = box(ACT_DIM, -1.0, 1.0)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return np.zeros(OBS_DIM, np.float32), {}

    def step(self, action):
        return np.zeros(OBS_DIM, np.float32), 0.0, False, False, {}


def sb3_model(kind: str, seed: int = 0):
    """An SB3 SAC/TD3 with [256, 256] nets, batch 256, its replay filled with random data."""
    from stable_baselines3 import SAC, TD3
    from stable_baselines3.common.logger import Logger

    env = SpacesOnly()
    common = dict(learning_rate=3e-4, buffer_size=FILL + 10, learning_starts=0, batch_size=BATCH, tau=0.005,
                  gamma=0.99, train_freq=1, gradient_steps=1, policy_kwargs=dict(net_arch=[256, 256]),
                  seed=seed, device="cpu", verbose=0)
    model = SAC("MlpPolicy", env, **common) if kind == "sac" else TD3("MlpPolicy", env, policy_delay=1, **common)
    model.set_logger(Logger(folder=None, output_formats=[]))
    rng = np.random.default_rng(seed)
    for _ in range(FILL):
        obs = rng.standard_normal((1, OBS_DIM)).astype(np.float32)
        nxt = rng.standard_normal((1, OBS_DIM)).astype(np.float32)
        act = rng.uniform(-1, 1, (1, ACT_DIM)).astype(np.float32)
        model.replay_buffer.add(obs, nxt, act, rng.random(1).astype(np.float32), np.zeros(1), [{}])
    return model


def rlaux_step(agent_name: str, *extra: str):
    """A closure doing one rlaux replay sample + update at the benchmark's sizes."""
    obs_space, act_space = box(OBS_DIM), box(ACT_DIM, -1.0, 1.0)
    overrides = [f"batch_size={BATCH}", "hidden=[256,256]", "encoder.hidden=[]", "encoder.latent_dim=50", "nstep=1",
                 *extra]
    if agent_name == "ddpg":
        overrides += ["activation=relu"]
    agent = build_agent(agent_name, obs_space, act_space, None, overrides)
    replay = filled_replay(obs_space, act_space, FILL)
    state = {"step": 100_000}

    def step() -> None:
        batch = replay.sample(BATCH, horizon=1, nstep=1, gamma=0.99)
        agent.update(batch, state["step"])

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    set_threads(args.threads)
    torch.manual_seed(0)
    print(machine_line(args.threads))
    print(f"obs {OBS_DIM}, action {ACT_DIM}, nets [256, 256], batch {BATCH}; "
          f"{args.rounds} interleaved rounds x {args.calls} updates; times are per update (sample + gradient step)")

    sb3_sac, sb3_td3 = sb3_model("sac"), sb3_model("td3")
    fns = {
        "SB3 SAC": lambda: sb3_sac.train(gradient_steps=1, batch_size=BATCH),
        "rlaux SAC": rlaux_step("sac"),
        "SB3 TD3 (policy_delay=1)": lambda: sb3_td3.train(gradient_steps=1, batch_size=BATCH),
        "rlaux DDPG": rlaux_step("ddpg"),
        "rlaux DDPG, plain MLPs": rlaux_step("ddpg", "layernorm_tanh=false"),
        "rlaux SAC, no encoder": rlaux_step("sac", "encoder.kind=flat"),
        "rlaux DDPG, plain, no encoder": rlaux_step("ddpg", "layernorm_tanh=false", "encoder.kind=flat"),
    }
    times = interleaved(fns, args.rounds, args.calls, warmup=20)
    verdict = lambda r: "met" if r >= 1.5 else "NOT met"
    for label, table in (("wall clock", times), ("process CPU time", times.cpu)):
        print(f"{label}:")
        for name, ts in table.items():
            print(f"  {name:30s} {spread(ts)}  ({1.0 / np.median(ts):7.1f} updates/s)")
        sac_ratio = paired_ratio(table["SB3 SAC"], table["rlaux SAC"])
        ddpg_ratio = paired_ratio(table["SB3 SAC"], table["rlaux DDPG"])
        td3_ratio = paired_ratio(table["SB3 TD3 (policy_delay=1)"], table["rlaux DDPG"])
        print(f"  ratio rlaux SAC  / SB3 SAC updates/s: {sac_ratio:.2f}x  (goal >= 1.5x: {verdict(sac_ratio)})")
        print(f"  ratio rlaux DDPG / SB3 SAC updates/s: {ddpg_ratio:.2f}x  (goal >= 1.5x: {verdict(ddpg_ratio)})")
        print(f"  ratio rlaux DDPG / SB3 TD3 updates/s: {td3_ratio:.2f}x  (context)")
        plain = paired_ratio(table["SB3 SAC"], table["rlaux DDPG, plain MLPs"])
        plain_td3 = paired_ratio(table["SB3 TD3 (policy_delay=1)"], table["rlaux DDPG, plain MLPs"])
        print(f"  ratio rlaux DDPG (plain MLPs) / SB3 SAC updates/s: {plain:.2f}x  (goal >= 1.5x: {verdict(plain)})")
        print(f"  ratio rlaux DDPG (plain MLPs) / SB3 TD3 updates/s: {plain_td3:.2f}x  (context)")
        flat_sac = paired_ratio(table["SB3 SAC"], table["rlaux SAC, no encoder"])
        flat_ddpg = paired_ratio(table["SB3 SAC"], table["rlaux DDPG, plain, no encoder"])
        flat_td3 = paired_ratio(table["SB3 TD3 (policy_delay=1)"], table["rlaux DDPG, plain, no encoder"])
        print("  equal networks (encoder.kind=flat: SB3's raw-state MLPs):")
        print(f"  ratio rlaux SAC  / SB3 SAC updates/s: {flat_sac:.2f}x  (goal >= 1.5x: {verdict(flat_sac)})")
        print(f"  ratio rlaux DDPG / SB3 SAC updates/s: {flat_ddpg:.2f}x  (goal >= 1.5x: {verdict(flat_ddpg)})")
        print(f"  ratio rlaux DDPG / SB3 TD3 updates/s: {flat_td3:.2f}x  (context)")

if __name__ == "__main__":
    main()
