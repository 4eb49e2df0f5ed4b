"""Replay and rollout storage."""

from rlaux.buffers.replay import ReplayBuffer

__all__ = ["ReplayBuffer"]
