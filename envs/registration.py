"""Gymnasium ids for rlaux's DeepMind Control tasks: ``rlaux/<domain>-<task>[-pixels]-v0``.

Every task of ``dm_control.suite`` is registered twice, in the suite's own spelling::

    gym.make("rlaux/cheetah-run-v0")                 # states: float32 vector
    gym.make("rlaux/cheetah-run-pixels-v0")          # pixels: uint8 (3 x frame_stack, 84, 84)
    gym.make("rlaux/finger-turn_hard-v0", render_mode="rgb_array")

Each id builds the env that ``python -m rlaux.train env=cheetah-run`` trains on (action repeat 2,
actions in [-1, 1], DMC's 1000-frame time limit as a truncation, episode statistics in
``info["episode"]``; pixels: 3 stacked RGB frames), so ``env=rlaux/cheetah-run-v0`` and
``env=cheetah-run`` are the same run. Keyword arguments of ``gym.make`` override the ``env``
fields: ``obs``, ``action_repeat``, ``frame_stack``, ``image_size``, ``camera``,
``max_episode_steps``; ``render_mode="rgb_array"`` renders frames for videos.

The ids exist once :mod:`envs` is imported (``import envs``, or ``gym.make("envs:rlaux/...")``,
or ``gym.register_envs(envs)``, the way ``ale_py`` registers ``ALE/...``). Gymnasium 1.x no
longer loads plugins from the ``gymnasium.envs`` entry-point group. Registering imports
neither dm_control nor MuJoCo: the task list below is static (a test keeps it equal to
``dm_control.suite.ALL_TASKS``).
"""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym

NAMESPACE = "rlaux"
VERSION = 0
PIXELS_SUFFIX = "-pixels"
ENTRY_POINT = "envs.registration:make_registered_env"

#: ``dm_control.suite.ALL_TASKS`` (dm_control 1.0.x), as (domain, task).
DMC_TASKS: tuple[tuple[str, str], ...] = (
    ("acrobot", "swingup"), ("acrobot", "swingup_sparse"), ("ball_in_cup", "catch"),
    ("cartpole", "balance"), ("cartpole", "balance_sparse"), ("cartpole", "swingup"),
    ("cartpole", "swingup_sparse"), ("cartpole", "two_poles"), ("cartpole", "three_poles"),
    ("cheetah", "run"), ("dog", "stand"), ("dog", "walk"), ("dog", "trot"), ("dog", "run"),
    ("dog", "fetch"), ("finger", "spin"), ("finger", "turn_easy"), ("finger", "turn_hard"),
    ("fish", "upright"), ("fish", "swim"), ("hopper", "stand"), ("hopper", "hop"),
    ("humanoid", "stand"), ("humanoid", "walk"), ("humanoid", "run"), ("humanoid", "run_pure_state"),
    ("humanoid_CMU", "stand"), ("humanoid_CMU", "walk"), ("humanoid_CMU", "run"),
    ("lqr", "lqr_2_1"), ("lqr", "lqr_6_2"), ("manipulator", "bring_ball"), ("manipulator", "bring_peg"),
    ("manipulator", "insert_ball"), ("manipulator", "insert_peg"), ("pendulum", "swingup"),
    ("point_mass", "easy"), ("point_mass", "hard"), ("quadruped", "walk"), ("quadruped", "run"),
    ("quadruped", "escape"), ("quadruped", "fetch"), ("reacher", "easy"), ("reacher", "hard"),
    ("stacker", "stack_2"), ("stacker", "stack_4"), ("swimmer", "swimmer6"), ("swimmer", "swimmer15"),
    ("walker", "stand"), ("walker", "walk"), ("walker", "run"),
)

_ID_PATTERN = re.compile(rf"^{NAMESPACE}/(?P<name>.+?)(?P<pixels>{PIXELS_SUFFIX})?-v{VERSION}$")


def gym_id(dmc_name: str, pixels: bool = False) -> str:
    """``"cheetah-run"`` -> ``"rlaux/cheetah-run-v0"`` (``...-pixels-v0`` with ``pixels``)."""
    return f"{NAMESPACE}/{dmc_name}{PIXELS_SUFFIX if pixels else ''}-v{VERSION}"


def registered_ids() -> list[str]:
    """Every id this module registers: states then pixels for each task."""
    return [gym_id(f"{d}-{t}", pixels) for d, t in DMC_TASKS for pixels in (False, True)]


def parse_gym_id(env_id: str) -> tuple[str, str] | None:
    """``"rlaux/cheetah-run-pixels-v0"`` -> ``("cheetah-run", "pixels")``; None for any string
    that is not one of :func:`registered_ids`."""
    match = _ID_PATTERN.match(env_id)
    if match is None or tuple(match["name"].split("-", 1)) not in DMC_TASKS:
        return None
    return match["name"], "pixels" if match["pixels"] else "state"


def make_registered_env(task: str, obs: str = "state", render_mode: str | None = None, **fields: Any) -> gym.Env:
    """Entry point of the ``rlaux/...`` ids: rlaux's env for DMC ``task`` (``domain-task``).

    ``fields`` are :class:`~envs.config.EnvConfig` fields (validated like ``env.*`` options).
    The task's random state comes from ``reset(seed=...)``.
    """
    from envs.factory import make_dmc_env
    from envs.resolve import resolve_env_config

    cfg = resolve_env_config({**fields, "name": task, "obs": obs})
    return make_dmc_env(cfg, seed=None, render_mode=render_mode)


def register_dmc_envs() -> None:
    """Register :func:`registered_ids` with Gymnasium (ids already registered are kept)."""
    for domain, task in DMC_TASKS:
        name = f"{domain}-{task}"
        for obs in ("state", "pixels"):
            env_id = gym_id(name, pixels=obs == "pixels")
            if env_id not in gym.registry:
                gym.register(env_id, entry_point=ENTRY_POINT, kwargs={"task": name, "obs": obs})
