"""The off-policy loop (sac, ddpg, dqn): collect with the vector env, store every
transition in the replay, sample windows and update on a fixed schedule.

Schedule: the first ``agent.learning_starts`` agent steps act uniformly at random; after
that, ``agent.num_updates`` updates run every ``agent.update_every`` agent steps, so the
update count is a pure function of the step count (and a resumed run keeps to it).
"""

from __future__ import annotations

import numpy as np
import torch

from rlaux.buffers import ReplayBuffer
from rlaux.training.evaluation import random_policy
from rlaux.training.run import TrainingRun


def make_replay(run: TrainingRun) -> ReplayBuffer:
    """A replay sized min(agent.buffer_size, steps) on the run's device (CPU for pixel buffers).

    A resumed run keeps the capacity its checkpoint was written with (a resume may change
    ``steps`` but not the replay)."""
    acfg = run.cfg.agent
    obs_space = run.env.single_observation_space
    saved = (run.checkpoint or {}).get("loop", {}).get("replay_capacity")
    capacity = int(saved) if saved else int(min(acfg.buffer_size, run.cfg.steps + run.num_envs * 2))
    frame_stack = int(run.env_cfg.frame_stack) if len(obs_space.shape) == 3 else 1
    device = run.device if run.device.type == "cpu" or len(obs_space.shape) == 1 else torch.device("cpu")
    return ReplayBuffer(capacity, run.num_envs, obs_space, run.env.single_action_space,
                        frame_stack=frame_stack, device=device, seed=int(run.cfg.seed))


def updates_due(step: int, learning_starts: int, update_every: int, num_updates: int) -> int:
    """Total number of updates that should have run by agent step ``step``."""
    if step < learning_starts:
        return 0
    return ((step - learning_starts) // update_every + 1) * num_updates


def train_off_policy(run: TrainingRun, stop: object) -> None:
    """Run the off-policy loop until ``cfg.steps`` agent steps or until ``stop`` is set."""
    cfg, acfg, agent, device = run.cfg, run.cfg.agent, run.agent, run.device
    run.replay = replay = make_replay(run)
    explore = random_policy(run.env.single_action_space, run.num_envs)
    if run.checkpoint is not None:
        loop = run.restore()
    else:
        loop = {}
    if loop.get("obs") is not None and run.checkpoint and run.checkpoint.get("env") is not None:
        obs, prev_done = loop["obs"], loop["prev_done"]
    else:
        if run.step > 0 and "replay" in (run.checkpoint or {}):
            replay.end_episodes()  # the stored stream's next observations will never arrive
        obs, _ = run.env.reset(seed=int(cfg.seed) + 7919 * (run.step > 0))
        prev_done = np.zeros(run.num_envs, dtype=bool)
    learning_starts = int(acfg.learning_starts)
    # A run resumed without its replay refills it (acting with its policy) before updating again.
    refill_until = run.step + learning_starts if run.step > 0 and "replay" not in (run.checkpoint or {}) else 0
    metrics: dict[str, torch.Tensor] = dict(run.restored_metrics)  # {} unless resumed
    while run.step < cfg.steps and not stop:
        if run.step < learning_starts:
            action = explore(None).numpy()
        else:
            action = agent.act(torch.as_tensor(obs, device=device), run.step, eval_mode=False).cpu().numpy()
        next_obs, reward, terminated, truncated, info = run.env.step(action)
        valid = ~prev_done
        replay.add(obs, action, reward, terminated, truncated, valid)
        run.record_episodes(info)
        prev_done = terminated | truncated
        obs = next_obs
        run.step += int(valid.sum())
        target = updates_due(run.step, learning_starts, int(acfg.update_every), int(acfg.num_updates))
        if run.step < refill_until:
            run.updates = target
        while run.updates < target and replay.can_sample(agent.aux.horizon):
            batch = replay.sample(int(acfg.batch_size), horizon=agent.aux.horizon, nstep=int(acfg.nstep), gamma=float(acfg.gamma))
            metrics = run.apply_update(agent.update, batch, run.step)  # on_nan=skip may undo it
            run.updates += 1
        run.loop_state = {"obs": obs, "prev_done": prev_done, "replay_capacity": replay.capacity}
        run.after_step(metrics)
