"""The on-policy loop (ppo): fill a rollout of ``agent.num_steps`` vector steps, update,
repeat. Checkpoints are taken between rollouts, when the storage is empty."""

from __future__ import annotations

import numpy as np
import torch

from rlaux.training.run import TrainingRun


def train_on_policy(run: TrainingRun, stop: object) -> None:
    """Run the on-policy loop until ``cfg.steps`` agent steps or until ``stop`` is set."""
    cfg, agent, device = run.cfg, run.agent, run.device
    storage = agent.make_storage(run.num_envs)
    loop = run.restore() if run.checkpoint is not None else {}
    if loop.get("obs") is not None and run.checkpoint and run.checkpoint.get("env") is not None:
        obs, prev_done = loop["obs"], loop["prev_done"]
    else:
        obs, _ = run.env.reset(seed=int(cfg.seed) + 7919 * (run.step > 0))
        prev_done = np.zeros(run.num_envs, dtype=bool)
    metrics: dict[str, torch.Tensor] = dict(run.restored_metrics)  # {} unless resumed
    while run.step < cfg.steps and not stop:
        for _ in range(int(cfg.agent.num_steps)):
            obs_t = torch.as_tensor(obs, device=device)
            action, logprob, value = agent.policy_step(obs_t)
            next_obs, reward, terminated, truncated, info = run.env.step(agent.env_action(action).cpu().numpy())
            valid = ~prev_done
            storage.add(obs_t, action, logprob, value, torch.as_tensor(reward, dtype=torch.float32, device=device),
                        torch.as_tensor(terminated, device=device), torch.as_tensor(truncated, device=device),
                        torch.as_tensor(valid, device=device))
            run.record_episodes(info)
            prev_done = terminated | truncated
            obs = next_obs
            run.step += int(valid.sum())
            run.after_step(metrics, can_checkpoint=False)
        metrics = run.apply_update(agent.update, storage, torch.as_tensor(obs, device=device), run.step)
        run.updates += 1
        run.loop_state = {"obs": obs, "prev_done": prev_done}
        run.after_step(metrics, can_checkpoint=True)
