"""Linear probe of a trained encoder (the Proto-Value Networks evaluation protocol).

PVN (Farebrother et al. 2023) judge a representation by freezing it and training only a
*linear* value head on its features with an RL algorithm in the environment (their online
stage: a DQN with a linear Q head on the frozen features), then reporting that agent's return.
rlaux does the same for any run's encoder:

* discrete actions: ``agent=dqn`` (double DQN, n-step) with a linear Q head (``head_hidden=[]``);
* continuous actions: ``agent=ppo`` with linear actor and critic heads (a linear policy head
  and a linear value head).

The probe agent is built with the source run's encoder architecture; the source checkpoint's
encoder weights (``encoder.*`` in its agent state) are loaded into it (and into a DQN's target
encoder) and frozen (``requires_grad=False``; ``detach_rl=true`` so RL losses never reach
it); no aux objective is used. What sits between encoder and heads is the agents' own: the
encoder's activation for MLP encoders, nothing for NatureCNN, and for DrQ conv features the
agents' trained Linear+LayerNorm+Tanh projection (so that case is not strictly linear).
``control=true`` trains the same probe on a frozen *randomly initialised* encoder of the same
architecture, the baseline a probe's return should be compared with.

Command line::

    python -m rlaux.probe run=runs/.../12-00-00_ppo_CartPole-v1_s1 steps=30000
    python -m rlaux.probe run=RUN agent=ppo control=true override=agent.lr=3e-4 override=threads=1

The probe is an ordinary run folder (``config.yaml``, ``eval.csv``, checkpoints, ...; default
``RUN/probe/<agent>_s<seed>``) plus ``probe.json`` (source, encoder, returns), so
``python -m rlaux.report`` aggregates probes too (as ``probe[dqn] of ppo+tcrl``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from omegaconf import DictConfig
from torch import nn

from agents import Agent
from rlaux.checkpoint import CheckpointError
from rlaux.config import compose
from rlaux.kvargs import Key, UsageError, run_cli
from rlaux.report.runs import algorithm_label
from rlaux.run_files import load_run_checkpoint
from rlaux.training.run import TrainingRun
from rlaux.training.runner import run_training

PROBE_AGENTS = ("dqn", "ppo")
ENCODER_KEYS = ("kind", "latent_dim", "hidden", "activation")
#: Config keys the probe sets itself (an ``override=`` may not change them).
FIXED_KEYS = ("agent", "env", "aux", "agent.encoder", "agent.head_hidden", "agent.detach_rl")
ENCODER_MODULES = ("encoder", "target_encoder")

KEYS: dict[str, Key] = {
    "run": Key(str, help="source run folder; its newest readable checkpoint's encoder is probed"),
    "checkpoint": Key(str, help="source checkpoint file"),
    "agent": Key(str, help="probe agent: dqn (linear Q head; default for discrete actions) | ppo (linear "
                           "policy and value heads; default for continuous actions)", choices=PROBE_AGENTS),
    "steps": Key(int, help="probe training agent steps (default: the source run's steps)"),
    "seed": Key(int, help="probe seed (default: the source run's seed)"),
    "out": Key(str, help="probe run folder (default: RUN/probe/<agent>_s<seed>)"),
    "control": Key(bool, False, "also train the probe on a frozen randomly initialised encoder (the baseline)"),
    "eval_every": Key(int, help="agent steps between evaluations (default: steps / 10)"),
    "eval_episodes": Key(int, help="episodes per evaluation (default: the source run's)"),
    "device": Key(str, "auto", "auto | cpu | cuda | cuda:N"),
    "logger": Key(str, "csv", "csv | tensorboard | wandb | none"),
    "override": Key(list, help="more training overrides for the probe agent, e.g. override=agent.lr=3e-4"),
}


def encoder_state(agent_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``encoder.*`` entries of an agent state dict, without the prefix."""
    state = {k[len("encoder."):]: v for k, v in agent_state.items() if k.startswith("encoder.")}
    if not state:
        raise CheckpointError("the checkpoint's agent state holds no encoder.* weights")
    return state


def freeze_encoder(agent: Agent, state: dict[str, torch.Tensor] | None) -> None:
    """Load ``state`` (None: keep the random initialisation) into the agent's encoder and
    its target copy, and stop every gradient to them."""
    for name in ENCODER_MODULES:
        module = getattr(agent, name, None)
        if not isinstance(module, nn.Module):
            continue
        if state is not None:
            try:
                module.load_state_dict(state)
            except RuntimeError as exc:
                raise CheckpointError(f"the source encoder does not fit the probe agent's {name}: {exc}") from None
        module.requires_grad_(False)
    if state is None:
        target = getattr(agent, "target_encoder", None)
        if isinstance(target, nn.Module):
            target.load_state_dict(agent.encoder.state_dict())


def trainable_parameters(agent: nn.Module) -> int:
    return sum(p.numel() for p in agent.parameters() if p.requires_grad)


class ProbeRun(TrainingRun):
    """A :class:`TrainingRun` whose agent gets a frozen (pretrained or random) encoder."""

    def __init__(self, cfg: DictConfig, run_dir: Path, state: dict[str, torch.Tensor] | None) -> None:
        self._encoder_state = state
        super().__init__(cfg, run_dir)

    def _make_agent(self) -> Agent:
        agent = super()._make_agent()
        freeze_encoder(agent, self._encoder_state)
        return agent


def _check_overrides(overrides: Sequence[str]) -> None:
    for item in overrides:
        if "=" not in item:
            raise UsageError(f"override={item!r} is not key=value")
        key = item.lstrip("+~").split("=", 1)[0]
        fixed = key in ("agent", "resume") or any(key == k or key.startswith(k + ".") for k in FIXED_KEYS[1:])
        if fixed:
            raise UsageError(f"override={item!r}: the probe sets {key} itself (fixed: {', '.join(FIXED_KEYS)})")


def probe_config(src: DictConfig, agent: str, steps: int, seed: int, eval_every: int, eval_episodes: int,
                 device: str, logger: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The probe's training config: ``agent`` with the source's env and encoder settings,
    linear heads, a detached encoder, no aux objective."""
    _check_overrides(overrides)
    cfg = compose([f"agent={agent}", f"env={src.env.name}", "aux=none", f"seed={seed}", f"steps={steps}",
                   f"eval_every={eval_every}", f"eval_episodes={eval_episodes}", f"device={device}",
                   f"logger={logger}", "progress=false", *overrides])
    for key, value in src.env.items():
        if key not in ("num_envs",):  # the probe agent's own number of envs
            cfg.env[key] = value
    for key in ENCODER_KEYS:
        cfg.agent.encoder[key] = src.agent.encoder[key]
    cfg.agent.head_hidden = []
    cfg.agent.detach_rl = True
    return cfg


def default_probe_agent(action_space: gym.Space) -> str:
    return "dqn" if isinstance(action_space, gym.spaces.Discrete) else "ppo"


def run_probe(
    run: str | Path | None = None,
    checkpoint: str | Path | None = None,
    agent: str | None = None,
    steps: int | None = None,
    seed: int | None = None,
    out: str | Path | None = None,
    control: bool = False,
    eval_every: int | None = None,
    eval_episodes: int | None = None,
    device: str = "auto",
    logger: str = "csv",
    override: Sequence[str] = (),
    verbose: bool = True,
) -> dict[str, Any]:
    """Train the linear probe (and, with ``control``, the random-encoder probe); returns
    ``probe.json``'s content."""
    import envs

    loaded = load_run_checkpoint(run, checkpoint)
    src = loaded.cfg
    state = encoder_state(loaded.data["agent"])
    if agent is None:
        probe_env = envs.make_env(envs.resolve_env_config(src.env), seed=0, mode="eval")
        agent = default_probe_agent(probe_env.action_space)
        probe_env.close()
    steps = int(src.steps) if steps is None else int(steps)
    seed = int(src.seed) if seed is None else int(seed)
    eval_every = max(steps // 10, 1) if eval_every is None else int(eval_every)
    eval_episodes = int(src.get("eval_episodes", 10)) if eval_episodes is None else int(eval_episodes)
    cfg = probe_config(src, agent, steps, seed, eval_every, eval_episodes, device, logger, list(override))
    out_dir = Path(out) if out is not None else loaded.run_dir / "probe" / f"{agent}_s{seed}"
    source_summary = {}
    if (loaded.run_dir / "summary.json").is_file():
        source_summary = json.loads((loaded.run_dir / "summary.json").read_text())
    info: dict[str, Any] = {
        "source_run": str(loaded.run_dir),
        "source_checkpoint": str(loaded.path),
        "source_step": loaded.step,
        "source_algorithm": algorithm_label(src),
        "source_eval_return": source_summary.get("eval_return"),
        "probe_agent": agent,
        "env": str(src.env.name),
        "steps": steps,
        "seed": seed,
        "encoder": "trained",
    }

    results = {}
    random_dir = out_dir.with_name(out_dir.name + "_random_encoder")
    for label, encoder, folder in (("trained", state, out_dir), ("random", None, random_dir)):
        if label == "random" and not control:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        meta = {**info, "encoder": label, "run_dir": str(folder)}
        (folder / "probe.json").write_text(json.dumps(meta, indent=2))  # before training: report labels it as a probe
        made: list[ProbeRun] = []

        def make_run(c: DictConfig, d: Path, _state: Any = encoder, _made: list[ProbeRun] = made) -> ProbeRun:
            r = ProbeRun(c, d, _state)
            _made.append(r)
            return r

        summary = run_training(cfg, folder, make_run=make_run)
        if summary.get("interrupted"):
            raise KeyboardInterrupt(f"probe interrupted; its checkpoint is in {folder}")
        meta.update({
            "probe_return": summary["eval_return"],
            "probe_return_std": summary["eval_return_std"],
            "random_policy_return": summary["random_return"],
            "trainable_parameters": trainable_parameters(made[0].agent),
            "frozen_encoder_parameters": sum(p.numel() for p in made[0].agent.encoder.parameters()),
        })
        (folder / "probe.json").write_text(json.dumps(meta, indent=2))
        results[label] = meta
    report = dict(results["trained"])
    if "random" in results:
        report["control_return"] = results["random"]["probe_return"]
        report["control_run_dir"] = results["random"]["run_dir"]
        (out_dir / "probe.json").write_text(json.dumps(report, indent=2))
    if verbose:
        line = (f"rlaux: linear probe ({agent}, frozen {report['source_algorithm']} encoder from step {report['source_step']}) "
                f"on {report['env']}: return {report['probe_return']:.2f} ± {report['probe_return_std']:.2f} after "
                f"{steps} steps (random policy {report['random_policy_return']:.2f}")
        if report.get("source_eval_return") is not None:
            line += f"; source agent {report['source_eval_return']:.2f}"
        if "control_return" in report:
            line += f"; random-encoder probe {report['control_return']:.2f}"
        print(line + f"); {out_dir / 'probe.json'}")
    return report


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m rlaux.probe run=RUN_DIR|checkpoint=FILE [key=value ...]``."""
    run_cli("rlaux.probe", KEYS, argv, lambda v: run_probe(**v), required=[("run", "checkpoint")])


if __name__ == "__main__":
    main()
