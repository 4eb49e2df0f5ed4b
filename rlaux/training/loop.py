"""What both training loops share: the train env's observation stream, and the state a loop
gives a checkpoint (:meth:`Loop.state_dict`) and takes back on resume (:meth:`Loop.load_state_dict`).

A loop owns its state; the :class:`~rlaux.training.run.TrainingRun` owns the counters
(``step``, ``updates``: logged and checkpointed with the run) and asks its loop for its state
when it saves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rlaux.training.run import TrainingRun

#: A run starts its stream with a reset seeded ``seed``; a resumed run whose stream cannot
#: continue (async envs keep their state in subprocesses, so no env snapshot) restarts it with
#: a reset seeded ``seed + RESTART_SEED_OFFSET``, so it does not replay the run's first episodes.
RESTART_SEED_OFFSET = 7919


class Loop(ABC):
    """A training loop's base: the observation stream of ``run``'s train env, i.e. the latest
    observation and which envs ended an episode in the previous vector step (their next
    transition is not valid)."""

    def __init__(self, run: TrainingRun) -> None:
        self.run = run
        self.obs: np.ndarray | None = None
        self.prev_done: np.ndarray | None = None

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of the loop."""
        return {"obs": self.obs, "prev_done": self.prev_done}

    def load_state_dict(self, state: Mapping[str, Any], env_restored: bool) -> None:
        """Take back a :meth:`state_dict`; the stream continues only where the run restored
        the env snapshot it belongs to (``env_restored``), else :meth:`start_stream` restarts it."""
        if env_restored and state.get("obs") is not None:
            self.obs, self.prev_done = state["obs"], state["prev_done"]

    def start_stream(self) -> None:
        """Reset the env, unless the stream continues (a restored or an earlier :meth:`train`'s)."""
        if self.obs is not None:
            return
        run = self.run
        self.obs, _ = run.env.reset(seed=int(run.cfg.seed) + RESTART_SEED_OFFSET * (run.step > 0))
        self.prev_done = np.zeros(run.num_envs, dtype=bool)

    @abstractmethod
    def train(self, stop: object) -> None:
        """Run until ``cfg.steps`` agent steps or until ``stop`` is set (continuing the stream
        when called again)."""
