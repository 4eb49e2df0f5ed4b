"""Evaluate a trained checkpoint: N episodes, per-episode CSV, normalised scores, a video.

Command line::

    python -m rlaux.evaluate run=runs/2026-11-22/12-00-00_ppo_CartPole-v1_s1
    python -m rlaux.evaluate checkpoint=RUN/checkpoints/step_0000100000.pt episodes=30 video_format=gif
    python -m rlaux.evaluate run=RUN protocol=100k episodes=100      # an Atari run, Atari-100k protocol

The agent and its env are rebuilt from the run folder's ``config.yaml`` (or the config stored
in the checkpoint) and the checkpoint's agent state. Episodes run on the env's evaluation
settings (Atari: no life-loss terminals, raw unclipped rewards) with the deterministic/greedy
policy unless ``deterministic=false``. Defaults: 100 episodes on Atari (Atari-100k and Machado
et al. 2018 both average 100 episodes), 10 on DeepMind Control, the run's ``eval_episodes``
otherwise; the evaluation envs use the seeds of the run's own periodic evaluation (seed +
100000, ``min(episodes, 10)`` envs), so the mean return of the final checkpoint reproduces the
run's last ``eval.csv`` row.

Writes to ``out`` (default ``RUN/evaluation/step_<N>/``): ``episodes.csv`` (episode, return,
length, score), ``summary.json`` and ``first_episode.mp4`` (or ``.gif``), a video of the first
episode of env 0 rendered as RGB frames (Atari screen, DMC camera, Gymnasium's ``rgb_array``),
one frame after the reset and one per agent step (``length + 1`` frames; a GIF merges identical
consecutive frames into one longer frame).
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import envs
from envs.config import EnvConfig
from rlaux import scores
from rlaux.config import ConfigError
from rlaux.kvargs import Key, run_cli
from rlaux.run_files import build_agent, load_run_checkpoint
from rlaux.training.build import resolve_device
from rlaux.training.evaluation import EVAL_SEED_OFFSET, MAX_EVAL_ENVS, eval_num_envs, run_episodes
from rlaux.video import FirstEpisodeRecorder, VideoUnavailable, enable_rgb_rendering, video_fps

KEYS: dict[str, Key] = {
    "run": Key(str, help="run folder (config.yaml, checkpoints/); its newest readable checkpoint is evaluated"),
    "checkpoint": Key(str, help="a checkpoint file (its run folder holds config.yaml)"),
    "episodes": Key(int, help="episodes (default: 100 on Atari, 10 on DMC, the run's eval_episodes otherwise)"),
    "deterministic": Key(bool, True, "deterministic/greedy policy; false: the training-time exploration policy"),
    "video": Key(bool, True, "record the first episode"),
    "video_format": Key(str, "mp4", "mp4 | gif", choices=("mp4", "gif")),
    "video_max_frames": Key(int, 10_000, "stop the video after this many frames (0: no limit)"),
    "out": Key(str, help="output folder (default: RUN/evaluation/step_<N>)"),
    "seed": Key(int, help=f"seed of the evaluation envs (default: the run's seed + {EVAL_SEED_OFFSET}, as its periodic "
                          "evaluation)"),
    "protocol": Key(str, help="Atari only: v5 (sticky actions 0.25) | 100k (none); default: the run's env.protocol",
                    choices=("v5", "100k")),
    "num_envs": Key(int, help=f"parallel evaluation envs (default: min(episodes, {MAX_EVAL_ENVS}))"),
    "device": Key(str, "auto", "auto (cuda when present) | cpu | cuda | cuda:N"),
}

ATARI_EPISODES = 100
DMC_EPISODES = 10
PROTOCOL_TEXT = {
    "v5": "sticky actions p=0.25 (Machado et al. 2018)",
    "100k": "Atari-100k: no sticky actions",
}


def default_episodes(env_cfg: EnvConfig, run_eval_episodes: int) -> int:
    """100 on Atari, 10 on DeepMind Control, the run's own ``eval_episodes`` otherwise."""
    return {"atari": ATARI_EPISODES, "dmc": DMC_EPISODES}.get(env_cfg.kind, int(run_eval_episodes))


def protocol_description(env_cfg: EnvConfig) -> str:
    """One line saying how episodes were run (what a paper's evaluation section states)."""
    if env_cfg.kind == "atari":
        cap = (f"{env_cfg.max_episode_steps} agent steps" if env_cfg.max_episode_steps
               else "108,000 frames (27,000 agent steps)")
        return (f"Atari protocol {env_cfg.protocol}: {PROTOCOL_TEXT[env_cfg.protocol]}, frame skip {env_cfg.action_repeat}, "
                f"up to {env_cfg.noop_max} no-op starts, full games (no life-loss terminal), raw rewards, episodes capped "
                f"at {cap}")
    if env_cfg.kind == "dmc":
        return (f"DeepMind Control {env_cfg.obs} observations, action repeat {env_cfg.action_repeat}, "
                "1000-step episodes (returns in [0, 1000])")
    return f"Gymnasium {env_cfg.name}, action repeat {env_cfg.action_repeat}"


# --------------------------------------------------------------------------- evaluation
def _summary_stats(returns: np.ndarray) -> dict[str, float]:
    return {"mean": float(returns.mean()), "std": float(returns.std()), "median": float(np.median(returns)),
            "min": float(returns.min()), "max": float(returns.max())}


def evaluate_checkpoint(
    run: str | Path | None = None,
    checkpoint: str | Path | None = None,
    episodes: int | None = None,
    deterministic: bool = True,
    video: bool = True,
    video_format: str = "mp4",
    video_max_frames: int = 10_000,
    out: str | Path | None = None,
    seed: int | None = None,
    protocol: str | None = None,
    num_envs: int | None = None,
    device: str = "auto",
    verbose: bool = True,
) -> dict[str, Any]:
    """Evaluate a checkpoint (see the module docstring); returns the summary (also written
    to ``out/summary.json``). Raises :class:`ConfigError` / :class:`CheckpointError` on bad input."""
    loaded = load_run_checkpoint(run, checkpoint)
    cfg = loaded.cfg
    try:
        env_cfg = envs.resolve_env_config(cfg.env)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if protocol is not None:
        if env_cfg.kind != "atari":
            raise ConfigError(f"protocol={protocol} applies to Atari envs only; "
                              f"this run's env is {env_cfg.name} ({env_cfg.kind})")
        env_cfg.protocol = protocol
    env_cfg.vectorization = "sync"  # one process: the recorder renders env 0 directly
    episodes = default_episodes(env_cfg, int(cfg.get("eval_episodes", 10))) if episodes is None else int(episodes)
    if episodes < 1:
        raise ConfigError(f"episodes={episodes} must be >= 1")
    n = eval_num_envs(episodes) if num_envs is None else int(num_envs)
    if n < 1:
        raise ConfigError(f"num_envs={n} must be >= 1")
    seed = int(cfg.seed) + EVAL_SEED_OFFSET if seed is None else int(seed)
    dev = resolve_device(device)
    step = loaded.step
    frame = step * int(env_cfg.action_repeat)
    out_dir = Path(out) if out is not None else loaded.run_dir / "evaluation" / f"step_{step:010d}"
    out_dir.mkdir(parents=True, exist_ok=True)

    env = envs.make_vector_env(env_cfg, n, seed=seed, mode="eval")
    try:
        agent = build_agent(cfg, env.single_observation_space, env.single_action_space, dev, loaded.data["agent"])
        agent.eval()
        recorder: FirstEpisodeRecorder | None = None
        video_note = None
        if video:
            sub_env = env.envs[0]  # type: ignore[attr-defined]
            try:
                enable_rgb_rendering(sub_env)
                recorder = FirstEpisodeRecorder(sub_env, out_dir / f"first_episode.{video_format}",
                                                video_fps(sub_env, int(env_cfg.action_repeat)), video_max_frames)
            except VideoUnavailable as exc:
                video_note = f"no video: {env_cfg.name} cannot render RGB frames here ({exc})"
                warnings.warn(video_note, RuntimeWarning, stacklevel=2)
        policy = lambda o: agent.act(o, step, eval_mode=deterministic)
        try:
            results = run_episodes(policy, env, episodes, seed, dev, on_step=recorder)
        finally:
            if recorder is not None:
                recorder.close()
        if recorder is not None and recorder.error is not None:
            video_note = f"no video: {env_cfg.name} cannot render RGB frames here ({recorder.error})"
            warnings.warn(video_note, RuntimeWarning, stacklevel=2)
            recorder = None
    finally:
        env.close()

    returns = np.array([r for r, _ in results], dtype=np.float64)
    lengths = np.array([length for _, length in results], dtype=np.int64)
    normalised = env_cfg.kind in ("atari", "dmc")
    score_name = scores.normalizer_name(env_cfg.kind)
    norm = np.array([scores.normalize(env_cfg.name, env_cfg.kind, r) for r in returns]) if normalised else None
    with open(out_dir / "episodes.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["episode", "return", "length", *(["score"] if normalised else [])])
        for i, (ret, length) in enumerate(zip(returns, lengths)):
            writer.writerow([i, f"{ret:.6g}", int(length), *([f"{norm[i]:.6g}"] if norm is not None else [])])

    summary: dict[str, Any] = {
        "run_dir": str(loaded.run_dir),
        "checkpoint": str(loaded.path),
        "step": step,
        "frame": frame,
        "env": env_cfg.name,
        "kind": env_cfg.kind,
        "agent": str(cfg.agent.name),
        "aux": sorted(str(k) for k in (cfg.aux or {})),
        "protocol": protocol_description(env_cfg),
        "atari_protocol": env_cfg.protocol if env_cfg.kind == "atari" else None,
        "episodes": int(len(returns)),
        "deterministic": bool(deterministic),
        "seed": seed,
        "num_envs": n,
        "return": _summary_stats(returns),
        "length_mean": float(lengths.mean()),
        "score_name": score_name,
        "score": _summary_stats(norm) if norm is not None else None,
        "episodes_csv": str(out_dir / "episodes.csv"),
        "video": str(recorder.path) if recorder is not None else None,
        "video_frames": recorder.frames if recorder is not None else 0,
        "video_truncated": bool(recorder.truncated) if recorder is not None else False,
        "video_note": video_note,
    }
    if env_cfg.kind == "atari":
        summary["atari_reference"] = dict(zip(("random", "human"), scores.atari_reference(env_cfg.name)))
        summary["atari_reference_source"] = f"rlaux/data/{scores.ATARI_TABLE}"
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if verbose:
        print(format_summary(summary))
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The printed summary of :func:`evaluate_checkpoint`."""
    r = summary["return"]
    policy = "deterministic" if summary["deterministic"] else "stochastic (exploration)"
    lines = [
        f"rlaux: evaluated {summary['checkpoint']} (agent step {summary['step']}, {summary['frame']} env frames)",
        f"rlaux: {summary['env']}: {summary['protocol']}",
        f"rlaux: {summary['episodes']} episodes, {policy} policy: return {r['mean']:.2f} ± {r['std']:.2f} "
        f"(median {r['median']:.2f}, min {r['min']:.2f}, max {r['max']:.2f}), mean length {summary['length_mean']:.1f}",
    ]
    if summary["score"] is not None:
        s = summary["score"]
        ref = summary.get("atari_reference")
        extra = f" (random {ref['random']}, human {ref['human']})" if ref else ""
        lines.append(f"rlaux: {summary['score_name']} {s['mean']:.4f} ± {s['std']:.4f} (median {s['median']:.4f}){extra}")
    outputs = [summary["episodes_csv"]]
    if summary["video"]:
        outputs.append(f"{summary['video']} ({summary['video_frames']} frames"
                       f"{', truncated' if summary['video_truncated'] else ''})")
    lines.append(f"rlaux: wrote {', '.join(outputs)}")
    if summary["video_note"]:
        lines.append(f"rlaux: {summary['video_note']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m rlaux.evaluate run=RUN_DIR|checkpoint=FILE [key=value ...]``."""

    def body(v: dict[str, Any]) -> None:
        evaluate_checkpoint(**v)

    run_cli("rlaux.evaluate", KEYS, argv, body, required=[("run", "checkpoint")])


if __name__ == "__main__":
    main()
