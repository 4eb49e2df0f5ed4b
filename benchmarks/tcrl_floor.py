"""``ddpg aux=tcrl`` at TCRL's defaults: time per update against its compute floor (FLOPs over
the measured matmul peak) and against the public TCRL reference implementation.

Run: ``python benchmarks/tcrl_floor.py [--threads 1] [--reference /tmp/tcrl_ref]``

Setting: TCRL's defaults (``zhaoyi11/tcrl`` ``cfgs/default.yaml``) on cartpole-swingup state
sizes (obs 5, action 1): batch 512 windows, H = 5, n-step 3, [512, 512] ELU encoder to a
50-d latent, [512, 512] dynamics/reward MLPs, [512, 512] actor and twin critics, one update
= encoder+dynamics step, critic step, actor step, target EMAs. rlaux's time includes drawing
the batch from its replay (``ReplayBuffer.sample``; 10k synthetic transitions).

* FLOPs: matmul FLOPs of one update, forward + backward, counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (the analytic estimate is ~3x the forward
  FLOPs of the trained networks plus the forward-only target/no-grad passes).
* Matmul peak: fp32 ``torch.mm`` of 1024 x 1024 x 1024 on the same threads, measured once
  per round, interleaved with the updates; the floor is FLOPs / the best (highest) peak.
* Reference (optional, ``--reference`` = a checkout of ``zhaoyi11/tcrl``; its code is imported
  from there at run time, nothing of it is in this repository): its ``TCRL.update`` on
  batches shaped as its replay loader yields them (obs [B, 5], actions/rewards/discounts
  [B, H, 1], next observations [B, H, 5]), pre-drawn, so its time excludes its DataLoader
  workers (a conservative comparison for rlaux). Same process, same threads, interleaved.

Times are reported as wall clock and as process CPU time; with one thread the CPU time is
the cost on a core of its own (the wall clock rises with whatever else runs on the machine).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from common import (
    Timings,
    at_matmul_precision,
    box,
    build_agent,
    filled_replay,
    interleaved,
    machine_line,
    median,
    set_threads,
    spread,
)
from torch.utils.flop_counter import FlopCounterMode

OBS_DIM, ACT_DIM, BATCH, H, NSTEP = 5, 1, 512, 5, 3
PEAK_N = 1024


def count_flops(fn) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return float(counter.get_total_flops())


def rlaux_update():
    """(closure: one sample + update of ddpg aux=tcrl at TCRL's defaults, the agent)."""
    obs_space, act_space = box(OBS_DIM), box(ACT_DIM, -1.0, 1.0)
    agent = build_agent("ddpg", obs_space, act_space, "tcrl", [])
    assert int(agent.cfg.batch_size) == BATCH and agent.aux.horizon == H and int(agent.cfg.nstep) == NSTEP
    replay = filled_replay(obs_space, act_space, 10_000)

    def run() -> None:
        agent.update(replay.sample(BATCH, horizon=H, nstep=NSTEP, gamma=0.99), 100_000)

    return run


def reference_update(path: Path):
    """A closure running the reference ``TCRL.update`` on pre-drawn batches, or None."""
    if not (path / "tcrl.py").exists():
        return None
    sys.path.insert(0, str(path))
    try:
        from tcrl import TCRL
    except ImportError as exc:
        raise SystemExit(f"cannot import the TCRL reference from {path}: {exc}; run this script with a Python "
                         "that has the reference's dependencies (see benchmarks/RESULTS.md)") from None

    agent = TCRL(obs_shape=(OBS_DIM,), action_shape=(ACT_DIM,), mlp_dims=[512, 512], latent_dim=50, lr=3e-4,
                 weight_decay=1e-6, tau=0.005, rho=0.9, gamma=0.99, nstep=NSTEP, horizon=H, state_coef=1.0,
                 reward_coef=1.0, grad_clip_norm=10.0, std_schedule="linear(1.0, 0.1, 50)", std_clip=0.3,
                 device="cpu")
    rng = np.random.default_rng(0)
    batches = [tuple(torch.as_tensor(x) for x in (
        rng.standard_normal((BATCH, OBS_DIM), dtype=np.float32),
        rng.uniform(-1, 1, (BATCH, H, ACT_DIM)).astype(np.float32),
        rng.random((BATCH, H, 1), dtype=np.float32),
        np.ones((BATCH, H, 1), np.float32),
        rng.standard_normal((BATCH, H, OBS_DIM), dtype=np.float32),
    )) for _ in range(8)]
    state = {"i": 0}

    def batch_iter():
        while True:
            state["i"] += 1
            yield batches[state["i"] % len(batches)]

    it = batch_iter()

    def run() -> None:
        agent.update(100, it, BATCH)  # episode 100: exploration std at its final value

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--reference", type=Path, default=Path("/tmp/tcrl_ref"),
                        help="checkout of zhaoyi11/tcrl (skipped when absent)")
    args = parser.parse_args()
    set_threads(args.threads)
    torch.manual_seed(0)
    print(machine_line(args.threads))
    print(f"ddpg aux=tcrl at TCRL defaults: obs {OBS_DIM}, action {ACT_DIM}, batch {BATCH}, H={H}, n-step {NSTEP}, "
          f"widths 512; {args.rounds} interleaved rounds x {args.calls} updates")

    fns = {"rlaux ddpg+tcrl": rlaux_update(),
           "rlaux ddpg+tcrl medium": at_matmul_precision(rlaux_update(), "medium")}
    ref = reference_update(args.reference)
    if ref is not None:
        fns["TCRL reference"] = ref
    else:
        print(f"(no reference checkout at {args.reference}: reference skipped)")
    flops = {name: count_flops(fn) for name, fn in fns.items()}

    a, b = torch.randn(PEAK_N, PEAK_N), torch.randn(PEAK_N, PEAK_N)
    out = torch.empty(PEAK_N, PEAK_N)
    peak_reps = 8
    fns[f"matmul {PEAK_N}^3 x{peak_reps}"] = lambda: [torch.mm(a, b, out=out) for _ in range(peak_reps)]
    fns[f"matmul {PEAK_N}^3 x{peak_reps} medium"] = at_matmul_precision(fns[f"matmul {PEAK_N}^3 x{peak_reps}"], "medium")
    times: Timings = interleaved(fns, args.rounds, args.calls, warmup=2)
    peak_flop = 2.0 * PEAK_N**3 * peak_reps

    for label, table in (("wall clock", times), ("process CPU time", times.cpu)):
        peak_name = f"matmul {PEAK_N}^3 x{peak_reps}"
        peak = peak_flop / min(table[peak_name]) / 1e9  # best round: GFLOP/s
        peak_med = peak_flop / median(table[peak_name]) / 1e9
        print(f"{label}:")
        print(f"  matmul peak ({args.threads} thread(s)): {peak:.1f} GFLOP/s best round, {peak_med:.1f} median")
        peak_medium = peak_flop / min(table[peak_name + " medium"]) / 1e9
        print(f"  matmul peak at matmul_precision=medium: {peak_medium:.1f} GFLOP/s best round")
        for name in fns:
            if name.startswith("matmul"):
                continue
            t = median(table[name])
            floor = flops[name] / 1e9 / peak  # the fp32 (highest) peak for every contestant
            print(f"  {name:18s} {spread(table[name])}  {1.0 / t:6.2f} updates/s; {flops[name] / 1e9:.2f} GFLOP "
                  f"-> floor {floor * 1e3:.1f} ms; time / floor = {t / floor:.2f}"
                  + ("  (goal <= 1.5: " + ("met)" if t / floor <= 1.5 else "NOT met)") if name.startswith("rlaux") else ""))
        if ref is not None:
            ratio = median([r / x for r, x in zip(table["TCRL reference"], table["rlaux ddpg+tcrl"])])
            print(f"  ratio rlaux / reference updates/s: {ratio:.2f}x  (goal >= 2x: {'met' if ratio >= 2 else 'NOT met'})")
            ratio = median([r / x for r, x in zip(table["TCRL reference"], table["rlaux ddpg+tcrl medium"])])
            print(f"  ratio rlaux (matmul_precision=medium) / reference (fp32) updates/s: {ratio:.2f}x  (opt-in)")


if __name__ == "__main__":
    main()
