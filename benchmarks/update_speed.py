"""Updates per second, eager vs ``compile=true`` (:class:`rlaux.compile.CompiledUpdate`), for
SAC, DDPG+TCRL and PPO on one device.

Run: ``python benchmarks/update_speed.py --device cuda`` (what ``benchmarks/gpu.sh`` runs), or
``python benchmarks/update_speed.py --device cpu --sizes tiny --rounds 3 --calls 5`` for a quick
check on a CPU.

Setting: cheetah-run state dimensions (obs 17, action 6), each agent at its preset's network
sizes and batch (``configs/agent/*.yaml``; ``--sizes tiny``: 32-wide networks and batch 64,
to check the script quickly). Off-policy calls are ``agent.update`` on one of 8 random window
batches already on the device (no replay sampling); a PPO call is one whole PPO update (its
epochs x minibatches) on one fixed, filled rollout. The compiled agent is first warmed up
(``--warmup`` calls: compilation, CUDA-graph recording), then eager and compiled calls are
interleaved round by round; the ratio is the median over rounds of the paired ratios.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from typing import Any

import torch
from common import box, compose_cfg, interleaved, machine_line, median, paired_ratio, set_threads, spread

OBS_DIM, ACT_DIM, NUM_BATCHES = 17, 6, 8
#: what each benchmarked agent is: (agent, aux objective or None)
AGENTS = {"sac": ("sac", None), "ddpg_tcrl": ("ddpg", "tcrl"), "ppo": ("ppo", None)}
TINY = {  # --sizes tiny: the same code paths on small networks and batches
    "sac": ["hidden=[32,32]", "batch_size=64"],
    "ddpg": ["hidden=[32,32]", "encoder.hidden=[32]", "batch_size=64"],
    "ppo": ["head_hidden=[32]", "encoder.hidden=[32]", "num_steps=16", "num_envs=4"],
}


def make_agent(name: str, aux: str | None, sizes: str, device: torch.device) -> Any:
    from agents import agent_class

    cfg = compose_cfg(name, aux, TINY[name] if sizes == "tiny" else ())
    return agent_class(name)(cfg.agent, box(OBS_DIM), box(ACT_DIM, -1.0, 1.0), cfg.aux, device)


def off_policy_calls(agent: Any, device: torch.device) -> Callable[[Callable[..., Any]], Callable[[], Any]]:
    """``update -> (a call of update on the next of NUM_BATCHES random window batches)``."""
    from rlaux.types import WindowBatch

    B, L = int(agent.cfg.batch_size), max(agent.aux.horizon, 1)
    batches = [WindowBatch(
        obs=torch.randn(B, L + 1, OBS_DIM, device=device), action=torch.rand(B, L, ACT_DIM, device=device) * 2 - 1,
        reward=torch.randn(B, L, device=device), terminated=torch.zeros(B, L, device=device),
        mask=torch.ones(B, L, device=device), nstep_reward=torch.randn(B, device=device),
        nstep_discount=torch.full((B,), 0.99, device=device), nstep_next_obs=torch.randn(B, OBS_DIM, device=device),
    ) for _ in range(NUM_BATCHES)]

    def caller(update: Callable[..., Any]) -> Callable[[], Any]:
        count = [0]

        def call() -> Any:
            count[0] += 1
            return update(batches[count[0] % NUM_BATCHES], 10_000 + count[0])

        return call

    return caller


def ppo_calls(agent: Any, device: torch.device) -> Callable[[Callable[..., Any]], Callable[[], Any]]:
    """``update -> (a call of update on one filled rollout)``: the update empties the storage,
    so each call marks it full again (its contents are inputs the update does not change)."""
    num_envs = int(agent.cfg.num_envs)
    storage = agent.make_storage(num_envs)
    for t in range(storage.num_steps):
        obs = torch.randn(num_envs, OBS_DIM, device=device)
        action, logp, value = agent.policy_step(obs)
        done = torch.full((num_envs,), t % 50 == 49, device=device)
        storage.add(obs, action, logp, value, torch.randn(num_envs, device=device), torch.zeros_like(done), done,
                    torch.ones_like(done))
    next_obs = torch.randn(num_envs, OBS_DIM, device=device)
    filled = storage.step

    def caller(update: Callable[..., Any]) -> Callable[[], Any]:
        def call() -> Any:
            storage.step = filled
            return update(storage, next_obs, 10_000)

        return call

    return caller


def synchronized(fn: Callable[[], Any], device: torch.device) -> Callable[[], Any]:
    """``fn`` followed by a device sync (CUDA work is asynchronous)."""
    if device.type != "cuda":
        return fn

    def call() -> Any:
        out = fn()
        torch.cuda.synchronize(device)
        return out

    return call


def main() -> None:
    from rlaux.compile import CompiledUpdate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cpu | cuda | cuda:N")
    parser.add_argument("--agents", default=",".join(AGENTS), help=f"comma-separated, of {', '.join(AGENTS)}")
    parser.add_argument("--sizes", choices=("default", "tiny"), default="default")
    parser.add_argument("--compile-mode", default="auto", help="rlaux's compile_mode (auto: CUDA graphs on CUDA)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls of each path first (compilation)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    unknown = sorted(set(args.agents.split(",")) - set(AGENTS))
    if unknown:
        parser.error(f"--agents {','.join(unknown)} is not valid; valid choices: {', '.join(AGENTS)}")
    set_threads(args.threads)
    device = torch.device(args.device)
    print(machine_line(args.threads))
    if device.type == "cuda":
        print(f"device: {torch.cuda.get_device_name(device)}")
    print(f"sizes {args.sizes}, compile_mode={args.compile_mode}, warm-up {args.warmup} calls, "
          f"{args.rounds} rounds x {args.calls} calls")
    for key in args.agents.split(","):
        name, aux = AGENTS[key]
        torch.manual_seed(0)
        eager = make_agent(name, aux, args.sizes, device)
        compiled = copy.deepcopy(eager)
        calls = (ppo_calls if name == "ppo" else off_policy_calls)(eager, device)
        step = CompiledUpdate(compiled.update, device, args.compile_mode, print)
        t0 = time.perf_counter()
        fns = {"eager": synchronized(calls(eager.update), device),
               "compiled": synchronized(calls(step), device)}
        for _ in range(args.warmup):
            fns["compiled"]()
        compile_s = time.perf_counter() - t0
        times = interleaved(fns, args.rounds, args.calls, warmup=2)
        ratio = paired_ratio(times["eager"], times["compiled"])
        print(f"{key:10s} eager {spread(times['eager'])} ({1 / median(times['eager']):8.1f} updates/s)   "
              f"compiled {spread(times['compiled'])} ({1 / median(times['compiled']):8.1f} updates/s)   "
              f"compiled/eager speed {ratio:5.2f}x   (warm-up incl. compilation {compile_s:.0f} s)")


if __name__ == "__main__":
    main()
