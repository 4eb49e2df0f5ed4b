"""Atari stepping: ``env.vectorization=ale`` (ale-py's C++ AtariVectorEnv) vs ``sync`` (issue 15 item 3).

Run: ``python benchmarks/ale_vector_vs_sync.py [--game ALE/Pong-v5] [--num-envs 8] [--rounds 5]
[--steps 200]``

Both vector envs are built by ``envs.make_vector_env`` with the training defaults (``v5``:
sticky actions 0.25, frame skip 4, 84x84 grayscale, 4 stacked frames, no-op starts) and step
uniformly random actions drawn in advance. Rounds alternate between the two (after a warm-up).
Printed: env steps/s (vector steps x envs; one env step = 4 frames) of each, and the median
per-round ratio ale / sync (issue 15's acceptance: >= 1.5 on Pong with 8 envs).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import interleaved, machine_line, median, paired_ratio

from envs import make_vector_env


def stepper(name: str, vectorization: str, num_envs: int, steps: int, seed: int = 0):
    """A closure stepping a fresh ``vectorization`` vector env ``steps`` times per call."""
    env = make_vector_env({"name": name, "vectorization": vectorization}, num_envs, seed=seed)
    env.reset()
    actions = np.random.default_rng(seed).integers(env.single_action_space.n, size=(steps, num_envs))

    def run() -> None:
        for a in actions:
            env.step(a)

    return run, env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="ALE/Pong-v5")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200, help="vector steps per timed call")
    args = parser.parse_args()
    print(machine_line(threads=torch.get_num_threads()))
    contestants, vector_envs = {}, []
    for vectorization in ("sync", "ale"):
        fn, env = stepper(args.game, vectorization, args.num_envs, args.steps)
        contestants[vectorization] = fn
        vector_envs.append(env)
    times = interleaved(contestants, rounds=args.rounds, calls=1, warmup=1)
    env_steps = args.steps * args.num_envs
    print(f"{args.game}, {args.num_envs} envs, {args.rounds} rounds of {args.steps} vector steps")
    for name, secs in times.items():
        print(f"  {name:>4}: {env_steps / median(secs):10,.0f} env steps/s")
    print(f"  ale / sync: {paired_ratio(times['sync'], times['ale']):.2f}x")
    for env in vector_envs:
        env.close()


if __name__ == "__main__":
    main()
