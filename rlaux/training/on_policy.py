"""The on-policy loop (ppo): fill a rollout of ``agent.num_steps`` vector steps, update,
repeat. Checkpoints are taken between rollouts, when the storage is empty."""

from __future__ import annotations

import torch

from rlaux.training.loop import Loop
from rlaux.training.run import TrainingRun


class OnPolicyLoop(Loop):
    """Rollouts and updates of an on-policy agent (``agent.make_storage``, ``policy_step``,
    ``env_action``, ``update(storage, next_obs, step)``)."""

    def __init__(self, run: TrainingRun) -> None:
        super().__init__(run)
        self.num_steps = int(run.cfg.agent.num_steps)
        self.storage = run.agent.make_storage(run.num_envs)

    def train(self, stop: object) -> None:
        run, agent, device = self.run, self.run.agent, self.run.device
        storage, steps = self.storage, int(run.cfg.steps)
        self.start_stream()
        metrics: dict[str, torch.Tensor] = dict(run.restored_metrics)  # {} unless resumed
        while run.step < steps and not stop:
            for _ in range(self.num_steps):
                obs_t = torch.as_tensor(self.obs, device=device)
                action, logprob, value = agent.policy_step(obs_t)
                next_obs, reward, terminated, truncated, info = run.env.step(agent.env_action(action).cpu().numpy())
                valid = ~self.prev_done
                storage.add(obs_t, action, logprob, value, torch.as_tensor(reward, dtype=torch.float32, device=device),
                            torch.as_tensor(terminated, device=device), torch.as_tensor(truncated, device=device),
                            torch.as_tensor(valid, device=device))
                run.record_episodes(info)
                self.prev_done = terminated | truncated
                self.obs = next_obs
                run.count_steps(int(valid.sum()))
                run.after_step(metrics, can_checkpoint=False)
            metrics = run.apply_update(run.update_step, storage, torch.as_tensor(self.obs, device=device), run.step)
            run.count_updates(1)
            run.after_step(metrics, can_checkpoint=True)
