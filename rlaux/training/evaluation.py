"""Policy evaluation on a vectorised env: exactly ``episodes`` full episodes, raw returns."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

Policy = Callable[[torch.Tensor], torch.Tensor]

#: The evaluation envs are seeded with the run's seed + this (training's periodic evaluation
#: and ``rlaux.evaluate`` alike, so a checkpoint's evaluation repeats the run's own).
EVAL_SEED_OFFSET = 100_000
#: At most this many evaluation envs run side by side.
MAX_EVAL_ENVS = 10


def eval_num_envs(episodes: int) -> int:
    """How many evaluation envs run ``episodes`` episodes: ``min(episodes, MAX_EVAL_ENVS)``."""
    return min(int(episodes), MAX_EVAL_ENVS)


def episode_stats(info: dict) -> list[tuple[int, float, int]]:
    """(env index, raw return, length) of every episode that ended in this vector step."""
    if "episode" not in info:
        return []
    done = info.get("_episode", np.ones(len(info["episode"]["r"]), dtype=bool))
    return [(int(i), float(info["episode"]["r"][i]), int(info["episode"]["l"][i])) for i in np.flatnonzero(done)]


def random_policy(action_space: gym.Space, num_envs: int, generator: torch.Generator | None = None) -> Policy:
    """A uniform-random policy over a single env's ``action_space`` ([-1,1] boxes, discrete)."""

    def act(obs: torch.Tensor) -> torch.Tensor:
        if isinstance(action_space, gym.spaces.Discrete):
            return torch.randint(action_space.n, (num_envs,), generator=generator)
        low = torch.as_tensor(action_space.low)
        high = torch.as_tensor(action_space.high)
        return low + (high - low) * torch.rand((num_envs, *action_space.shape), generator=generator)

    return act


def run_episodes(policy: Policy, env: gym.vector.VectorEnv, episodes: int, seed: int, device: torch.device,
                 on_step: Callable[[int, np.ndarray | None], bool] | None = None) -> list[tuple[float, int]]:
    """Run ``policy`` until each env finished ``ceil(episodes / num_envs)`` episodes and return
    the first ``episodes`` (raw return, length in agent steps) pairs, in env order (episode k of
    every env before episode k+1 of any, so short episodes do not bias the sample).

    ``on_step(t, done)`` is called after the reset (t = 0, done None) and after every vector
    step t (done = terminated | truncated per env); while it returns True it is called again
    (a video recorder stops itself by returning False).
    """
    n = env.num_envs
    per_env = -(-episodes // n)
    obs, _ = env.reset(seed=seed)
    t = 0
    watching = on_step is not None and on_step(t, None)
    results: list[list[tuple[float, int]]] = [[] for _ in range(n)]
    while any(len(r) < per_env for r in results):
        with torch.no_grad():
            action = policy(torch.as_tensor(obs, device=device))
        obs, _, terminated, truncated, info = env.step(action.cpu().numpy())
        t += 1
        if watching:
            watching = on_step(t, np.logical_or(terminated, truncated))  # type: ignore[misc]
        for i, ret, length in episode_stats(info):
            if len(results[i]) < per_env:
                results[i].append((ret, length))
    return [r for k in range(per_env) for env_results in results for r in env_results[k:k + 1]][:episodes]


def evaluate(policy: Policy, env: gym.vector.VectorEnv, episodes: int, seed: int, device: torch.device) -> dict[str, float]:
    """Mean/std of the returns of :func:`run_episodes`, with their mean length in agent steps."""
    flat = run_episodes(policy, env, episodes, seed, device)
    returns = np.array([r for r, _ in flat], dtype=np.float64)
    lengths = np.array([length for _, length in flat], dtype=np.float64)
    return {
        "return": float(returns.mean()),
        "return_std": float(returns.std()),
        "length": float(lengths.mean()),
        "episodes": float(len(flat)),
    }
