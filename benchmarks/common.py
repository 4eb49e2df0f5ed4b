"""Helpers shared by the benchmark scripts: thread control, interleaved timing, the matmul
peak, agents built from the project's configs, and replays filled with synthetic data.

Benchmarks are run by hand (``python benchmarks/<script>.py``); none of this is imported by
the package or the tests.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))


def set_threads(threads: int) -> None:
    """Fix torch's intra-op threads (and one inter-op thread) for the whole run."""
    torch.set_num_threads(int(threads))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once parallel work started
        pass


def at_matmul_precision(fn: Callable[[], Any], precision: str) -> Callable[[], Any]:
    """``fn`` run under ``torch.set_float32_matmul_precision(precision)`` (restored afterwards), so
    contestants at different precisions can be interleaved in one process. ``medium`` is the
    ``matmul_precision=medium`` option of ``rlaux.train`` (bf16-based fp32 matmuls on CPUs with
    AVX512-BF16/AMX)."""

    def run() -> Any:
        before = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision(precision)
        try:
            return fn()
        finally:
            torch.set_float32_matmul_precision(before)

    return run


def machine_line(threads: int) -> str:
    """One line naming the machine, torch version, thread count and current load."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"machine: {cpu}, {os.cpu_count()} cores; torch {torch.__version__}; "
            f"torch threads {threads}; load average (1 min) at start {load:.2f}")


class Timings(dict):
    """``{name: [seconds per call, one entry per round]}`` (wall clock), with the same for the
    process CPU time in :attr:`cpu`. With one torch thread the CPU time is what a call costs
    on a core of its own, so it stays meaningful when other jobs load the machine."""

    def __init__(self) -> None:
        super().__init__()
        self.cpu: dict[str, list[float]] = {}


def interleaved(fns: dict[str, Callable[[], Any]], rounds: int, calls: int, warmup: int = 3) -> Timings:
    """Time every function ``calls`` times per round, alternating the functions round by round
    (the order rotates each round), after ``warmup`` untimed calls each.

    Returns seconds per call for every round (wall clock; ``.cpu`` holds process CPU time).
    Interleaving makes the ratios robust to load that changes during the run.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names = list(fns)
    out = Timings()
    for n in names:
        out[n], out.cpu[n] = [], []
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            fn = fns[name]
            c0, t0 = time.process_time(), time.perf_counter()
            for _ in range(calls):
                fn()
            out[name].append((time.perf_counter() - t0) / calls)
            out.cpu[name].append((time.process_time() - c0) / calls)
    return out


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def spread(xs: Sequence[float]) -> str:
    """``median [min..max]`` in milliseconds."""
    return f"{median(xs) * 1e3:8.2f} ms [{min(xs) * 1e3:.2f}..{max(xs) * 1e3:.2f}]"


def paired_ratio(slow: Sequence[float], fast: Sequence[float]) -> float:
    """Median over rounds of ``slow[r] / fast[r]`` (each round's pair ran back to back)."""
    return median([s / f for s, f in zip(slow, fast)])


def matmul_gflops(n: int = 1024, reps: int = 20) -> float:
    """Achieved fp32 GFLOP/s of an n x n x n matmul (the "matmul peak" of this machine/threads)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    for _ in range(3):
        torch.mm(a, b, out=out)
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b, out=out)
    return 2.0 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def box(dim: int, low: float = -np.inf, high: float = np.inf) -> gym.spaces.Box:
    return gym.spaces.Box(low, high, (dim,), np.float32)


def compose_cfg(agent: str, aux: str | None = None, overrides: Sequence[str] = ()) -> Any:
    """The full Hydra config of ``agent=<agent> aux=<aux>`` with ``agent.<key>=<value>`` overrides."""
    from rlaux.config import compose

    args = [f"agent={agent}", "env=cartpole-swingup"]
    if aux:
        args.append(f"aux={aux}")
    args += [f"agent.{o}" for o in overrides]
    return compose(args)


def build_agent(agent: str, obs_space: gym.Space, action_space: gym.Space, aux: str | None = None,
                overrides: Sequence[str] = (), aux_overrides: Sequence[str] = ()) -> Any:
    """An rlaux agent built from ``configs/agent/<agent>.yaml`` (+ overrides) on CPU.

    ``aux_overrides`` are ``"<objective>.<key>=<value>"`` strings applied to the aux node.
    """
    from omegaconf import OmegaConf

    from agents import agent_class

    cfg = compose_cfg(agent, aux, overrides)
    aux_cfg = cfg.aux
    if aux_overrides:
        aux_cfg = OmegaConf.merge(aux_cfg, OmegaConf.from_dotlist(list(aux_overrides)))
    return agent_class(agent)(cfg.agent, obs_space, action_space, aux_cfg, torch.device("cpu"))


def filled_replay(obs_space: gym.spaces.Box, action_space: gym.Space, steps: int, episode: int = 500,
                  seed: int = 0) -> Any:
    """A one-env :class:`~rlaux.buffers.ReplayBuffer` holding ``steps`` synthetic transitions
    in episodes of ``episode`` steps (truncated, NEXT_STEP reset steps included)."""
    from rlaux.buffers import ReplayBuffer

    rng = np.random.default_rng(seed)
    rb = ReplayBuffer(steps + 8, 1, obs_space, action_space, seed=seed)
    image = obs_space.dtype == np.uint8
    prev_done = False
    for t in range(steps):
        if image:
            obs = rng.integers(0, 256, (1, *obs_space.shape), dtype=np.uint8)
        else:
            obs = rng.standard_normal((1, *obs_space.shape)).astype(np.float32)
        if isinstance(action_space, gym.spaces.Discrete):
            act = rng.integers(0, action_space.n, (1,))
        else:
            act = rng.uniform(-1, 1, (1, *action_space.shape)).astype(np.float32)
        done = (t + 1) % (episode + 1) == 0
        rb.add(obs, act, rng.random(1).astype(np.float32), np.zeros(1, bool), np.array([done]), np.array([not prev_done]))
        prev_done = done
    return rb
