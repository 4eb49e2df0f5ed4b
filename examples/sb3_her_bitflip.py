"""Stable-Baselines3 SAC + HER on a goal-conditioned env (Dict observations), with rlaux aux objectives.

Run: ``python examples/sb3_her_bitflip.py [--bits 4] [--steps 3000] [--aux tcrl predictive]``.
``MultiInputPolicy`` reads the Dict observation (``observation``, ``achieved_goal``,
``desired_goal``); the aux objectives shape the critic's features extractor, which the bridge
makes a trainable MLP over the concatenated entries (SB3's ``CombinedExtractor`` of vectors has
no parameters). Aux windows are the stored episodes, goals as collected: HER relabels only the
samples of the RL losses. It trains, prints the aux metrics and the success rate, saves the
model and its replay buffer, loads both back and trains on.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.envs import BitFlippingEnv

from rlaux.sb3 import AuxSAC


def success_rate(model: AuxSAC, env: BitFlippingEnv, episodes: int = 20) -> float:
    """Fraction of greedy episodes that reach the goal."""
    successes = 0
    for _ in range(episodes):
        obs, _ = env.reset()
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        successes += bool(info.get("is_success", False))
    return successes / episodes


def main() -> None:
    parser = argparse.ArgumentParser(description="SB3 SAC + HER + rlaux aux objectives on BitFlippingEnv")
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--aux", nargs="+", default=["tcrl", "predictive"], help="tcrl, predictive, taco, proto_value")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # small MLPs: one thread is fastest

    def make_env() -> BitFlippingEnv:
        return BitFlippingEnv(n_bits=args.bits, continuous=True, max_steps=args.bits)

    model = AuxSAC(
        "MultiInputPolicy", make_env(),
        aux={name: {"hidden": [128, 128]} for name in args.aux},
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"),
        learning_starts=200, batch_size=128, policy_kwargs=dict(net_arch=[64, 64]), seed=args.seed,
    )
    print(model.aux_route())
    model.learn(args.steps)
    print("aux metrics of the last update:", {k: round(v, 4) for k, v in model.aux_metrics.items()})
    print(f"success rate: {success_rate(model, make_env()):.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "sac_her")
        model.save_replay_buffer(Path(tmp) / "sac_her_buffer")
        loaded = AuxSAC.load(Path(tmp) / "sac_her", env=make_env())
        loaded.load_replay_buffer(Path(tmp) / "sac_her_buffer")  # HER needs its episodes to relabel
    loaded.learn(200, reset_num_timesteps=False)
    print("reloaded and trained on; aux loss:", round(loaded.aux_metrics["aux/loss"], 4))


if __name__ == "__main__":
    main()
