"""Cost of each auxiliary objective on the off-policy update step: time per update with and
without it (issue 3).

Run: ``python benchmarks/aux_overhead.py [--threads 1] [--case states|pixels|both]``

Cases (agent ``ddpg``, every objective at its own defaults, ``aux.optimizer=separate``):

* ``states``: TCRL's setting on cheetah-run state sizes (obs 17, action 6): batch 512,
  [512, 512] actor/critic and encoder (obs -> 512 -> 512 -> 50), n-step 3;
* ``pixels``: DMC pixels (3 stacked 84x84 RGB frames, action 6), DrQ-v2 conv encoder, random
  shift, batch 64 (small, to keep the run short), [512, 512] heads, n-step 3.

Every contestant samples its windows (``horizon`` = the objective's) from a replay of
synthetic transitions and runs one ``agent.update``; contestants are interleaved round by
round. The table gives ms per update, the added ms and the ratio to ``none``, plus the
matmul/conv GFLOP of one update (``torch.utils.flop_counter``, forward + backward).
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch
from common import box, build_agent, filled_replay, interleaved, machine_line, median, paired_ratio, set_threads, spread
from torch.utils.flop_counter import FlopCounterMode

OBJECTIVES = ("none", "tcrl", "predictive", "taco", "proto_value")
CASES = {
    "states": dict(obs_space=box(17), batch=512, fill=5000, overrides=[]),
    "pixels": dict(obs_space=gym.spaces.Box(0, 255, (9, 84, 84), np.uint8), batch=64, fill=1500,
                   overrides=["batch_size=64"]),
}


def contestant(case: dict, aux: str, replay):
    """(closure doing one sample + update, GFLOP of one update) for ``aux`` in ``case``."""
    act_space = box(6, -1.0, 1.0)
    agent = build_agent("ddpg", case["obs_space"], act_space, None if aux == "none" else aux, case["overrides"])
    batch_size, horizon, nstep = case["batch"], agent.aux.horizon, int(agent.cfg.nstep)
    step = 100_000

    def run() -> None:
        agent.update(replay.sample(batch_size, horizon=horizon, nstep=nstep, gamma=0.99), step)

    batch = replay.sample(batch_size, horizon=horizon, nstep=nstep, gamma=0.99)
    counter = FlopCounterMode(display=False)
    with counter:
        agent.update(batch, step)
    return run, counter.get_total_flops() / 1e9


def frame_stack(case: dict) -> int:
    return 3 if len(case["obs_space"].shape) == 3 else 1


def run_case(name: str, rounds: int, calls: int) -> None:
    case = CASES[name]
    obs_space, act_space = case["obs_space"], box(6, -1.0, 1.0)
    if frame_stack(case) > 1:
        from rlaux.buffers import ReplayBuffer

        rng = np.random.default_rng(0)
        replay = ReplayBuffer(case["fill"] + 8, 1, obs_space, act_space, frame_stack=3, seed=0)
        prev_done = False
        for t in range(case["fill"]):
            done = (t + 1) % 501 == 0
            replay.add(rng.integers(0, 256, (1, *obs_space.shape), dtype=np.uint8),
                       rng.uniform(-1, 1, (1, 6)).astype(np.float32), rng.random(1).astype(np.float32),
                       np.zeros(1, bool), np.array([done]), np.array([not prev_done]))
            prev_done = done
    else:
        replay = filled_replay(obs_space, act_space, case["fill"])
    fns, flops = {}, {}
    for aux in OBJECTIVES:
        torch.manual_seed(0)
        fns[aux], flops[aux] = contestant(case, aux, replay)
    print(f"\n[{name}] obs {tuple(obs_space.shape)}, batch {case['batch']}; {rounds} interleaved rounds x {calls} updates")
    times = interleaved(fns, rounds, calls, warmup=2)
    for label, table in (("wall clock", times), ("process CPU time", times.cpu)):
        base = median(table["none"])
        print(f"  {label}:")
        print(f"  {'aux':12s} {'ms/update [min..max]':>30s} {'+ms':>8s} {'x none':>7s} {'GFLOP':>7s} {'+GFLOP':>7s}")
        for aux, ts in table.items():
            extra = median(ts) - base
            ratio = 1.0 if aux == "none" else paired_ratio(ts, table["none"])
            print(f"  {aux:12s} {spread(ts):>30s} {extra * 1e3:8.1f} {ratio:7.2f} {flops[aux]:7.2f} "
                  f"{flops[aux] - flops['none']:7.2f}")

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--case", choices=("states", "pixels", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    set_threads(args.threads)
    print(machine_line(args.threads))
    if args.case in ("states", "both"):
        run_case("states", args.rounds, calls=5)
    if args.case in ("pixels", "both"):
        run_case("pixels", args.rounds, calls=2)


if __name__ == "__main__":
    main()
