"""Stable-Baselines3 SAC with rlaux's TCRL objective on a DeepMind Control task built by rlaux's
``envs.make_env`` (a Gymnasium env) inside SB3's ``DummyVecEnv``.

Run: ``python examples/sb3_aux_sac_dmc.py [--env cartpole-swingup] [--steps 20000] [--encoder critic|actor]``

TCRL shapes the critic's features extractor by default (``--encoder actor`` picks the actor's);
with TCRL's recipe the critic loss does not train that extractor (``detach_rl``), only TCRL does.
"""

from __future__ import annotations

import argparse

import torch
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv

from envs import make_env
from rlaux.sb3 import AuxSAC


def main() -> None:
    parser = argparse.ArgumentParser(description="SB3 SAC + rlaux TCRL on a DMC task")
    parser.add_argument("--env", default="cartpole-swingup")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--encoder", default="critic", choices=["critic", "actor"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    env = DummyVecEnv([lambda: make_env({"name": args.env}, seed=args.seed)])
    model = AuxSAC("MlpPolicy", env, aux={"tcrl": {"hidden": [256, 256]}},
                   aux_kwargs={"encoder": args.encoder}, learning_rate=1e-3, learning_starts=1000, seed=args.seed)
    print(model.aux_route())
    model.learn(args.steps, log_interval=10)
    print("aux metrics of the last update:", {k: round(v, 4) for k, v in model.aux_metrics.items()})
    eval_env = DummyVecEnv([lambda: make_env({"name": args.env}, seed=args.seed + 100, mode="eval")])
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=5, deterministic=True)
    print(f"eval return over 5 episodes: {mean:.1f} +- {std:.1f}")


if __name__ == "__main__":
    main()
