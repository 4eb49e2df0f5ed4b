"""Stable-Baselines3 PPO trained with rlaux's TCRL auxiliary objective on CartPole-v1.

Run: ``python examples/sb3_aux_ppo.py [--steps 60000] [--aux tcrl] [--mode joint|separate]``
(about a minute or two on a laptop CPU). It trains, prints where the aux gradient goes and the
aux metrics, evaluates, saves, loads the model back (aux heads, target networks and optimisers
included) and continues training for a few more steps.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import gymnasium as gym
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from rlaux.sb3 import AuxPPO


def main() -> None:
    parser = argparse.ArgumentParser(description="SB3 PPO + rlaux aux objective on CartPole-v1")
    parser.add_argument("--steps", type=int, default=60_000)
    parser.add_argument("--aux", nargs="+", default=["tcrl"], help="tcrl, predictive, taco, proto_value")
    parser.add_argument("--mode", default="joint", choices=["joint", "separate"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # small MLPs: one thread is fastest

    env = make_vec_env("CartPole-v1", n_envs=8, seed=args.seed)
    model = AuxPPO(
        "MlpPolicy", env,
        aux={name: {"hidden": [128, 128]} for name in args.aux},  # smaller heads than the papers' 512: CPU-friendly
        aux_kwargs={"optimizer": args.mode},
        # rl-zoo's CartPole-v1 hyperparameters
        n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
        learning_rate=lambda progress: 1e-3 * progress, clip_range=lambda progress: 0.2 * progress,
        seed=args.seed, verbose=0,
    )
    print(model.aux_route())
    model.learn(args.steps)
    print("aux metrics of the last update:", {k: round(v, 4) for k, v in model.aux_metrics.items()})
    mean, std = evaluate_policy(model, gym.make("CartPole-v1"), n_eval_episodes=10, deterministic=True)
    print(f"eval return: {mean:.1f} +- {std:.1f}")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ppo_tcrl.zip"
        model.save(path)
        loaded = AuxPPO.load(path, env=env)
    loaded.learn(2048, reset_num_timesteps=False)  # training continues with the restored aux state
    print("reloaded and trained on; aux loss:", round(loaded.aux_metrics["aux/loss"], 4))


if __name__ == "__main__":
    main()
