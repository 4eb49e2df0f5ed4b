"""Bytes per transition of the replay buffer, and the projected size of 1M transitions.

Run: ``python benchmarks/replay_memory.py``. Builds small buffers (nothing near 1M is
allocated) for DMC pixels (3 stacked 84x84 RGB frames, 6-dim action, e.g. cheetah-run)
and dog-run state (223-dim float32 obs, 38-dim action).
"""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from rlaux.buffers import ReplayBuffer

CASES = {
    "dmc pixels, stack 3 (9x84x84 uint8, 6-dim action)": dict(
        obs_space=gym.spaces.Box(0, 255, (9, 84, 84), np.uint8),
        action_space=gym.spaces.Box(-1, 1, (6,), np.float32),
        frame_stack=3,
    ),
    "dog-run state (223 float32, 38-dim action)": dict(
        obs_space=gym.spaces.Box(-np.inf, np.inf, (223,), np.float32),
        action_space=gym.spaces.Box(-1, 1, (38,), np.float32),
        frame_stack=1,
    ),
}


def main(capacity: int = 1000, num_envs: int = 1) -> None:
    """Print bytes per transition and the projected size of a 1M-transition buffer per case."""
    for name, kwargs in CASES.items():
        buf = ReplayBuffer(capacity, num_envs, **kwargs)
        per = buf.nbytes / (buf.ring * num_envs)
        naive = 2 * int(np.prod(kwargs["obs_space"].shape)) * kwargs["obs_space"].dtype.itemsize
        print(f"{name}: {per:,.0f} bytes/transition; 1M transitions = {per * 1e6 / 2**30:.2f} GiB "
              f"(obs + next_obs stored naively: {naive:,} bytes/transition for observations alone)")


if __name__ == "__main__":
    main()
