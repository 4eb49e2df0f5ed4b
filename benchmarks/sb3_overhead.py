"""Time overhead of rlaux's SB3 bridge: plain SB3 vs the Aux algorithm at equal settings.

Run: ``python benchmarks/sb3_overhead.py [--algo ppo sac dqn] [--aux tcrl] [--mode separate|joint]
[--aux-option hidden=[128,128]] [--rounds 3] [--threads 1]``

For each algorithm both models get the same environment, hyperparameters (rl-zoo's, as in
``tests/test_sb3_bridge.py``), seed and networks: the plain SB3 model is given the policy
kwargs the bridge uses (a trainable ``MlpFeatures`` extractor carrying SB3's first hidden
layer), so the only difference is the aux objectives. Each model first learns ``--warmup``
untimed steps, then both learn ``--steps`` more per round, alternating plain/aux every round
(``reset_num_timesteps=False``, so it is one continuing run each). Printed: median wall
seconds per round of plain SB3 and of rlaux-aux, the median of the per-round ratios, and the
same for process CPU time (with one torch thread, CPU time is the cost on a core of its own
and stays meaningful when other jobs load the machine). A second table splits one aux step
into window sampling (the bridge's numpy gather from SB3's buffer) and the objective's own
forward/backward/step, measured after the timed rounds.
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.env_util import make_vec_env

from rlaux.sb3 import AuxDQN, AuxPPO, AuxSAC, aux_policy_kwargs

# rl-zoo hyperparameters (CartPole-v1 PPO and DQN, Pendulum-v1 SAC) and the steps one round learns.
CASES: dict[str, dict[str, Any]] = {
    "ppo": dict(env="CartPole-v1", n_envs=8, plain=PPO, aux=AuxPPO, warmup=1024, steps=4096, kwargs=dict(
        n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0, learning_rate=1e-3,
        clip_range=0.2)),
    "sac": dict(env="Pendulum-v1", n_envs=1, plain=SAC, aux=AuxSAC, warmup=300, steps=500, kwargs=dict(
        learning_rate=1e-3, learning_starts=200)),
    "dqn": dict(env="CartPole-v1", n_envs=1, plain=DQN, aux=AuxDQN, warmup=1280, steps=1024, kwargs=dict(
        learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000, gamma=0.99,
        target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
        exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256]))),
}


def build(algo: str, aux: dict[str, dict[str, Any]] | None, mode: str, seed: int) -> Any:
    """The plain SB3 model (``aux`` None) or the Aux one, with identical networks and settings."""
    case = CASES[algo]
    env = make_vec_env(case["env"], n_envs=case["n_envs"], seed=seed)
    kwargs = dict(case["kwargs"], seed=seed)
    if aux is None:
        policy_class = case["plain"].policy_aliases["MlpPolicy"]
        kwargs["policy_kwargs"] = aux_policy_kwargs(policy_class, env.observation_space, kwargs.get("policy_kwargs", {}))
        return case["plain"]("MlpPolicy", env, **kwargs)
    return case["aux"]("MlpPolicy", env, aux=aux, aux_kwargs={"optimizer": mode}, **kwargs)


def timed_learn(model: Any, steps: int) -> tuple[float, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return time.perf_counter() - t0, time.process_time() - c0


def aux_step_breakdown(model: Any, calls: int = 20) -> tuple[float, float]:
    """CPU ms of one window sample and of one aux loss forward+backward (+ step in separate mode),
    outside SB3's ``train()`` (the model keeps training afterwards unchanged in spirit)."""
    rt = model._aux
    sample_t, update_t = [], []
    for _ in range(calls):
        c0 = time.process_time()
        batch = rt.sample()
        c1 = time.process_time()
        if rt.suite.optimizer is not None:
            rt.suite.update(batch, rt.encoder)
            rt.suite.optimizer.zero_grad(set_to_none=True)
        else:
            loss, _ = rt.suite.loss(batch, rt.encoder)
            loss.backward()
            rt.route.optimizer.zero_grad(set_to_none=True)
        c2 = time.process_time()
        sample_t.append(c1 - c0)
        update_t.append(c2 - c1)
    return 1e3 * statistics.median(sample_t), 1e3 * statistics.median(update_t)


def parse_options(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algo", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--aux", nargs="+", default=["tcrl"], help="objective names (rlaux.objectives)")
    parser.add_argument("--aux-option", action="append", default=[],
                        help="key=value set on every objective, e.g. hidden=[128,128]")
    parser.add_argument("--mode", default="separate", choices=["separate", "joint"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = parse_options(args.aux_option)
    aux = {name: dict(options) for name in args.aux}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, torch threads {args.threads}, "
          f"load average at start {load:.2f}; aux={aux} mode={args.mode}; seed {args.seed}")
    print(f"{'algo':5} {'env':12} {'steps/round':>11} {'plain SB3 s':>11} {'rlaux-aux s':>11} {'ratio':>6} "
          f"{'plain cpu s':>11} {'aux cpu s':>10} {'cpu ratio':>9}  aux steps/train")
    rows: list[tuple[str, tuple[float, float]]] = []
    for algo in args.algo:
        case = CASES[algo]
        plain, auxm = build(algo, None, args.mode, args.seed), build(algo, aux, args.mode, args.seed)
        for model in (plain, auxm):  # warm-up (untimed): lazy inits, allocator, first trains
            model.learn(case["warmup"])
        wall: dict[str, list[float]] = {"plain": [], "aux": []}
        cpu: dict[str, list[float]] = {"plain": [], "aux": []}
        for r in range(args.rounds):
            order = [("plain", plain), ("aux", auxm)] if r % 2 == 0 else [("aux", auxm), ("plain", plain)]
            for name, model in order:
                w, c = timed_learn(model, case["steps"])
                wall[name].append(w)
                cpu[name].append(c)
        med = statistics.median
        breakdown = aux_step_breakdown(auxm)
        ratio = med([a / p for a, p in zip(wall["aux"], wall["plain"])])
        cpu_ratio = med([a / p for a, p in zip(cpu["aux"], cpu["plain"])])
        print(f"{algo:5} {case['env']:12} {case['steps']:>11} {med(wall['plain']):>11.2f} {med(wall['aux']):>11.2f} "
              f"{ratio:>6.2f} {med(cpu['plain']):>11.2f} {med(cpu['aux']):>10.2f} {cpu_ratio:>9.2f}  "
              f"{auxm.aux_metrics.get('aux/steps', 0):.0f}")
        rows.append((algo, breakdown))
    print("one aux step (CPU ms, median of 20): window sampling from the SB3 buffer | aux loss forward+backward "
          "(+ optimiser step in separate mode)")
    for algo, (sample_ms, update_ms) in rows:
        print(f"{algo:5} {sample_ms:8.2f} | {update_ms:8.2f}")


if __name__ == "__main__":
    main()
