"""The off-policy loop (sac, ddpg, dqn): collect with the vector env, store every
transition in the replay, sample windows and update on a fixed schedule.

Schedule (:class:`ReplaySchedule`): the first ``agent.learning_starts`` agent steps act
uniformly at random; after that, ``agent.num_updates`` updates run every
``agent.update_every`` agent steps, so the update count is a pure function of the step count
(and a resumed run keeps to it).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig

from rlaux.buffers import ReplayBuffer
from rlaux.training.evaluation import random_policy
from rlaux.training.loop import Loop
from rlaux.training.run import TrainingRun
from rlaux.types import WindowBatch


@dataclass(frozen=True)
class ReplaySchedule:
    """When the off-policy loop updates and what batch each update samples."""

    batch_size: int
    nstep: int
    gamma: float
    learning_starts: int
    update_every: int
    num_updates: int
    #: transitions per sampled window: what the agent's aux objectives read
    horizon: int

    @classmethod
    def from_config(cls, agent_cfg: DictConfig, horizon: int) -> ReplaySchedule:
        """The schedule of ``agent_cfg`` (``cfg.agent``) for windows of ``horizon`` transitions."""
        return cls(batch_size=int(agent_cfg.batch_size), nstep=int(agent_cfg.nstep), gamma=float(agent_cfg.gamma),
                   learning_starts=int(agent_cfg.learning_starts), update_every=int(agent_cfg.update_every),
                   num_updates=int(agent_cfg.num_updates), horizon=int(horizon))

    def updates_due(self, step: int) -> int:
        """Total number of updates that should have run by agent step ``step``."""
        if step < self.learning_starts:
            return 0
        return ((step - self.learning_starts) // self.update_every + 1) * self.num_updates

    def can_sample(self, replay: ReplayBuffer) -> bool:
        return replay.can_sample(self.horizon)

    def sample(self, replay: ReplayBuffer) -> WindowBatch:
        """One batch of windows for an update."""
        return replay.sample(self.batch_size, horizon=self.horizon, nstep=self.nstep, gamma=self.gamma)


def make_replay(run: TrainingRun, capacity: int | None = None) -> ReplayBuffer:
    """A replay of ``capacity`` transitions (default: min(agent.buffer_size, steps + 2 per env))
    on the run's device (CPU for pixel buffers)."""
    cfg = run.cfg
    obs_space = run.env.single_observation_space
    capacity = capacity or int(min(cfg.agent.buffer_size, cfg.steps + run.num_envs * 2))
    frame_stack = int(run.env_cfg.frame_stack) if len(obs_space.shape) == 3 else 1
    device = run.device if run.device.type == "cpu" or len(obs_space.shape) == 1 else torch.device("cpu")
    return ReplayBuffer(capacity, run.num_envs, obs_space, run.env.single_action_space,
                        frame_stack=frame_stack, device=device, seed=int(cfg.seed))


class OffPolicyLoop(Loop):
    """Collection, replay and updates of an off-policy agent (``act``, ``update(batch, step)``).

    ``replay_capacity``: the capacity a resumed run's checkpoint was written with (a resume
    may change ``steps`` but not the replay); see :meth:`saved_capacity`.
    """

    def __init__(self, run: TrainingRun, replay_capacity: int | None = None) -> None:
        super().__init__(run)
        self.schedule = ReplaySchedule.from_config(run.cfg.agent, run.agent.aux.horizon)
        self.replay = make_replay(run, replay_capacity)
        self.explore = random_policy(run.env.single_action_space, run.num_envs)
        self.save_replay = bool(run.cfg.save_replay)
        self.max_replay_save_bytes = float(run.cfg.max_replay_save_gb) * 2**30
        self.replay_restored = False

    @staticmethod
    def saved_capacity(state: Mapping[str, Any]) -> int | None:
        """The replay capacity in a :meth:`state_dict` (None for an empty state)."""
        capacity = state.get("replay_capacity")
        return int(capacity) if capacity else None

    def state_dict(self) -> dict[str, Any]:
        """The stream and the replay's capacity, and the replay itself with ``save_replay``
        unless it is larger than ``max_replay_save_gb``."""
        state = {**super().state_dict(), "replay_capacity": self.replay.capacity}
        if self.save_replay:
            if self.replay.nbytes <= self.max_replay_save_bytes:
                state["replay"] = self.replay.state_dict()
            else:
                warnings.warn(f"replay ({self.replay.nbytes / 2**30:.1f} GB) is larger than max_replay_save_gb; "
                              "not saved", stacklevel=2)
        return state

    def load_state_dict(self, state: Mapping[str, Any], env_restored: bool) -> None:
        super().load_state_dict(state, env_restored)
        if "replay" in state:
            self.replay.load_state_dict(state["replay"])
            self.replay_restored = True

    def start_stream(self) -> None:
        restarted_mid_run = self.obs is None and self.run.step > 0
        if restarted_mid_run and self.replay_restored:
            self.replay.end_episodes()  # the stored stream's next observations will never arrive
        super().start_stream()

    def train(self, stop: object) -> None:
        run, agent, device = self.run, self.run.agent, self.run.device
        replay, schedule, steps = self.replay, self.schedule, int(run.cfg.steps)
        self.start_stream()
        learning_starts = schedule.learning_starts
        # A run resumed without its replay refills it (acting with its policy) before updating again.
        refill_until = run.step + learning_starts if run.step > 0 and not self.replay_restored else 0
        metrics: dict[str, torch.Tensor] = dict(run.restored_metrics)  # {} unless resumed
        while run.step < steps and not stop:
            if run.step < learning_starts:
                action = self.explore(None).numpy()
            else:
                action = agent.act(torch.as_tensor(self.obs, device=device), run.step, eval_mode=False).cpu().numpy()
            next_obs, reward, terminated, truncated, info = run.env.step(action)
            valid = ~self.prev_done
            replay.add(self.obs, action, reward, terminated, truncated, valid)
            run.record_episodes(info)
            self.prev_done = terminated | truncated
            self.obs = next_obs
            run.count_steps(int(valid.sum()))
            target = schedule.updates_due(run.step)
            if run.step < refill_until:
                run.count_updates(target - run.updates)  # the updates a refill skips count as done
            while run.updates < target and schedule.can_sample(replay):
                metrics = run.apply_update(run.update_step, schedule.sample(replay), run.step)  # on_nan=skip may undo it
                run.count_updates(1)
            run.after_step(metrics)
