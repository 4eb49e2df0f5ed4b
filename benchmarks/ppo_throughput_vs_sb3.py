"""PPO training throughput (env steps/s of the whole loop): rlaux against Stable-Baselines3,
and the cost of adding ``aux=tcrl`` to rlaux PPO.

Run: ``python benchmarks/ppo_throughput_vs_sb3.py [--threads 1] [--rounds 3] [--rollouts 2]``

Setting (issue 6): DMC cheetah-run, state observations (17-dim, action 6, action repeat 2),
8 synchronous envs, 256 steps per env per rollout (2048 transitions), minibatch 256
(8 minibatches), 10 epochs, lr 3e-4, gamma 0.99, GAE 0.95, clip 0.2, no value clipping
(SB3's default), value coefficient 0.5, grad-norm clip 0.5, constant lr. Both libraries
step the same env (rlaux's ``envs.make_env``; SB3 through its ``DummyVecEnv``).

Networks: SB3 ``MlpPolicy`` = separate policy and value MLPs [64, 64] tanh. rlaux PPO =
a shared first layer (encoder, 17 -> 64, tanh) then a [64] tanh head each for the policy
and the value, i.e. the same widths and depth with the first layer shared.

Timing: each round runs ``--rollouts`` rollouts + updates of every contestant back to back
(order rotating), after one warm-up rollout each; env steps/s = agent steps / wall time of
the learning loop (no evaluation, no checkpoints; rlaux's CSV logging every 10k steps).
``rlaux PPO + tcrl`` uses TCRL's defaults (H=5, [512, 512] dynamics/reward MLPs, aux batch
256 windows per PPO minibatch step); ``tcrl (small)`` uses [64, 64] MLPs, PPO's own widths.
The ``8 aux/rollout`` rows set ``agent.aux.updates_per_rollout=8``: 8 aux steps of 256 windows
spread over the 80 minibatch steps, i.e. one pass of windows over the 2048-step rollout
(``--no-sparse`` skips them).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import torch
from common import ROOT, machine_line, median, set_threads  # noqa: F401  (ROOT puts the repo on sys.path)
from torch.utils.flop_counter import FlopCounterMode

N_ENVS, N_STEPS, BATCH, EPOCHS = 8, 256, 256, 10
PPO_OVERRIDES = [
    f"agent.num_envs={N_ENVS}", f"agent.num_steps={N_STEPS}", f"agent.num_minibatches={N_ENVS * N_STEPS // BATCH}",
    f"agent.update_epochs={EPOCHS}", "agent.lr=3e-4", "agent.anneal_lr=false", "agent.gamma=0.99",
    "agent.gae_lambda=0.95", "agent.clip_coef=0.2", "agent.clip_vloss=false", "agent.ent_coef=0.0",
    "agent.vf_coef=0.5", "agent.max_grad_norm=0.5", "agent.encoder.hidden=[]", "agent.encoder.latent_dim=64",
    "agent.head_hidden=[64]", "agent.encoder.activation=tanh",
]


class RlauxPPO:
    """An rlaux PPO training run whose loop can be continued for more steps."""

    def __init__(self, aux: str | None, aux_overrides: list[str], run_dir: Path, threads: int) -> None:
        from rlaux.config import compose
        from rlaux.training.on_policy import OnPolicyLoop
        from rlaux.training.run import TrainingRun

        overrides = ["agent=ppo", "env=cheetah-run", "seed=1", "steps=0", "logger=csv", "progress=false",
                     "eval_every=0", "checkpoint_every=0", "log_every=10000", f"threads={threads}", *PPO_OVERRIDES]
        if aux:
            overrides.append(f"aux={aux}")
        overrides += aux_overrides
        cfg = compose(overrides)
        cfg.steps = 1  # TrainingRun validates steps >= 1; raised before each chunk
        self.run = TrainingRun(cfg, run_dir)
        self.run.start_logger()
        self.loop = OnPolicyLoop(self.run)
        self.run.attach(self.loop)

    def learn(self, steps: int) -> int:
        """Continue the same env stream for ``steps`` more agent steps."""
        start = self.run.step
        self.run.cfg.steps = start + steps
        self.loop.train(False)
        return self.run.step - start


class SB3PPO:
    """SB3 PPO on the same envs, with the same settings."""

    def __init__(self) -> None:
        from omegaconf import OmegaConf
        from stable_baselines3 import PPO
        from stable_baselines3.common.vec_env import DummyVecEnv

        import envs

        env_cfg = envs.resolve_env_config(OmegaConf.create({"name": "cheetah-run", "kind": "dmc", "obs": "state"}))
        venv = DummyVecEnv([lambda i=i: envs.make_env(env_cfg, 1 + i) for i in range(N_ENVS)])
        self.model = PPO("MlpPolicy", venv, learning_rate=3e-4, n_steps=N_STEPS, batch_size=BATCH, n_epochs=EPOCHS,
                         gamma=0.99, gae_lambda=0.95, clip_range=0.2, ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5,
                         policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64])), seed=1, device="cpu", verbose=0)
        self.first = True

    def learn(self, steps: int) -> int:
        before = self.model.num_timesteps
        self.model.learn(total_timesteps=steps, reset_num_timesteps=self.first)
        self.first = False
        return self.model.num_timesteps - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rollouts", type=int, default=2, help="rollouts per contestant per round")
    parser.add_argument("--no-tcrl", action="store_true", help="skip the rlaux PPO + tcrl contestants")
    parser.add_argument("--no-sparse", action="store_true", help="skip the updates_per_rollout=8 contestants")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    set_threads(args.threads)
    torch.manual_seed(0)
    print(machine_line(args.threads))
    rollout = N_ENVS * N_STEPS
    print(f"cheetah-run state, {N_ENVS} envs x {N_STEPS} steps, batch {BATCH}, {EPOCHS} epochs; "
          f"{args.rounds} interleaved rounds x {args.rollouts} rollouts ({args.rollouts * rollout} env steps) each")

    with tempfile.TemporaryDirectory() as tmp:
        contestants = {"SB3 PPO": SB3PPO(), "rlaux PPO": RlauxPPO(None, [], Path(tmp) / "ppo", args.threads)}
        if not args.no_tcrl:
            contestants["rlaux PPO + tcrl"] = RlauxPPO("tcrl", [], Path(tmp) / "tcrl", args.threads)
            contestants["rlaux PPO + tcrl (small)"] = RlauxPPO(
                "tcrl", ["aux.tcrl.hidden=[64,64]"], Path(tmp) / "tcrl_small", args.threads)
            if not args.no_sparse:
                sparse = "agent.aux.updates_per_rollout=8"
                contestants["rlaux PPO + tcrl, 8 aux/rollout"] = RlauxPPO(
                    "tcrl", [sparse], Path(tmp) / "tcrl_sparse", args.threads)
                contestants["rlaux PPO + tcrl (small), 8 aux/rollout"] = RlauxPPO(
                    "tcrl", ["aux.tcrl.hidden=[64,64]", sparse], Path(tmp) / "tcrl_small_sparse", args.threads)
        flops: dict[str, float] = {}
        for name, c in contestants.items():  # warm-up: one rollout + update each, FLOPs counted
            counter = FlopCounterMode(display=False)
            with counter:
                steps = c.learn(rollout)
            flops[name] = counter.get_total_flops() / steps
        rates: dict[str, list[float]] = {name: [] for name in contestants}
        cpu_rates: dict[str, list[float]] = {name: [] for name in contestants}
        names = list(contestants)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:
                c0, t0 = time.process_time(), time.perf_counter()
                steps = contestants[name].learn(args.rollouts * rollout)
                rates[name].append(steps / (time.perf_counter() - t0))
                cpu_rates[name].append(steps / (time.process_time() - c0))
        for c in contestants.values():
            if isinstance(c, RlauxPPO):
                c.run.close()

    print("matmul FLOPs per env step (acting + PPO epochs + aux, forward + backward): "
          + ", ".join(f"{name} {f / 1e6:.1f} MFLOP" for name, f in flops.items()))
    for label, table in (("wall clock", rates), ("process CPU time (env steps per CPU second)", cpu_rates)):
        print(f"{label}:")
        for name, rs in table.items():
            print(f"  {name:40s} {median(rs):8.0f} env steps/s  [{min(rs):.0f}..{max(rs):.0f}]")
        ratio = median([a / b for a, b in zip(table["rlaux PPO"], table["SB3 PPO"])])
        print(f"  ratio rlaux PPO / SB3 PPO env steps/s: {ratio:.2f}x  (goal >= 1.0x: {'met' if ratio >= 1.0 else 'NOT met'})")
        for name in names[2:]:
            cost = median([a / b for a, b in zip(table["rlaux PPO"], table[name])])
            print(f"  cost of {name[len('rlaux PPO + '):]:28s}: PPO + aux takes {cost:.2f}x the time of PPO  "
                  f"(goal <= 1.5x: {'met' if cost <= 1.5 else 'NOT met'})")

if __name__ == "__main__":
    main()
