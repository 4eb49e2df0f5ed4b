"""Encode once per update (issue 15, item 2): matmul/conv FLOPs of one ``sac`` pixel update with
``aux=tcrl``, ``aux=predictive`` and ``aux=[tcrl,predictive]``, with the aux suite's shared
encoder passes off (before: every objective encodes what it reads) and on (after).

Run: ``python benchmarks/encode_once_flops.py [--batch 32] [--time 0] [--threads 1]``

Setting: the project's ``agent=sac`` preset and the objectives' defaults, DMC pixel shapes
(3 stacked 84x84 RGB frames = uint8 [9, 84, 84], action 6), DrQ-v2 conv encoder, random shift;
one synthetic window batch of ``horizon`` = the suite's (so no renderer is needed).
FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` over one whole
``agent.update`` (aux step + critic + actor, forward and backward); they are deterministic
and linear in the batch size (every product has the batch as a factor; neither objective has
a batch x batch term), so a small batch gives the per-sample cost of the preset's 256.
``--time N`` also times N interleaved rounds of one update per contestant (ms, median):
wall clock is meaningful only on an idle machine; with one thread the process CPU time is what
an update costs on a core of its own.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch
from common import box, build_agent, interleaved, machine_line, median, set_threads
from torch.utils.flop_counter import FlopCounterMode

from rlaux.types import WindowBatch

PIXELS = gym.spaces.Box(0, 255, (9, 84, 84), np.uint8)
ACTIONS = box(6, -1.0, 1.0)
SUITES = {"tcrl": "tcrl", "predictive": "predictive", "both": "[tcrl,predictive]"}
CONV_OPS = ("convolution", "convolution_backward")


def synthetic_batch(batch: int, horizon: int, seed: int = 0) -> WindowBatch:
    """A window batch of random frames with every step valid."""
    g = torch.Generator().manual_seed(seed)
    frames = (batch, horizon + 1, *PIXELS.shape)
    return WindowBatch(
        obs=torch.randint(0, 256, frames, dtype=torch.uint8, generator=g),
        action=torch.rand(batch, horizon, *ACTIONS.shape, generator=g) * 2 - 1,
        reward=torch.rand(batch, horizon, generator=g), terminated=torch.zeros(batch, horizon),
        mask=torch.ones(batch, horizon), nstep_reward=torch.rand(batch, generator=g),
        nstep_discount=torch.full((batch,), 0.99),
        nstep_next_obs=torch.randint(0, 256, (batch, *PIXELS.shape), dtype=torch.uint8, generator=g),
    )


def make_contestant(aux: str, share: bool, batch_size: int):
    """(agent, its batch) for ``aux`` with shared encoder passes on or off."""
    torch.manual_seed(0)
    agent = build_agent("sac", PIXELS, ACTIONS, aux, [f"batch_size={batch_size}"])
    agent.aux.share_encoder_passes = share
    return agent, synthetic_batch(batch_size, agent.aux.horizon)


def update_flops(agent, batch: WindowBatch) -> tuple[float, float]:
    """(all, conv) GFLOP of one update."""
    counter = FlopCounterMode(display=False)
    with counter:
        agent.update(batch, 100_000)
    ops = counter.get_flop_counts()["Global"]
    conv = sum(n for op, n in ops.items() if str(op).split(".")[1] in CONV_OPS)
    return counter.get_total_flops() / 1e9, conv / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--time", type=int, default=0, help="interleaved timing rounds (0: FLOPs only)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    set_threads(args.threads)
    print(machine_line(args.threads))
    contestants = {(name, share): make_contestant(aux, share, args.batch)
                   for name, aux in SUITES.items() for share in (False, True)}
    flops = {key: update_flops(*contestant) for key, contestant in contestants.items()}

    print(f"\nsac pixels [9, 84, 84], batch {args.batch}: GFLOP per update (matmul + conv, forward + backward)")
    print("| aux | before (no sharing) | after (shared passes) | after / before | conv share after |")
    print("|---|---|---|---|---|")
    for name in SUITES:
        (before, _), (after, conv) = flops[(name, False)], flops[(name, True)]
        print(f"| {SUITES[name]} | {before:.2f} | {after:.2f} | {after / before:.3f} | {conv / after:.0%} |")
    for share, label in ((False, "before"), (True, "after")):
        dearer = max(flops[("tcrl", share)][0], flops[("predictive", share)][0])
        print(f"{label}: composite / dearer single = {flops[('both', share)][0] / dearer:.3f} (goal <= 1.25)")

    if args.time > 0:
        fns = {f"{name}/{'after' if share else 'before'}": (lambda a=agent, b=batch: a.update(b, 100_000))
               for (name, share), (agent, batch) in contestants.items()}
        times = interleaved(fns, args.time, 1, warmup=1)
        print(f"\nms per update, median of {args.time} interleaved rounds (wall clock | process CPU time):")
        for label in fns:
            print(f"  {label}: {1e3 * median(times[label]):.0f} | {1e3 * median(times.cpu[label]):.0f}")


if __name__ == "__main__":
    main()
