"""The ``env`` config node: one dataclass for every kind of environment rlaux builds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EnvConfig:
    """How to build an environment; ``python -m rlaux.train env=NAME env.FIELD=VALUE``.

    Attributes:
        name: "domain-task" for DeepMind Control (``dog-run``), ``ALE/<Game>-v5`` for
            Atari, or any Gymnasium id (``CartPole-v1``).
        kind: "dmc", "atari" or "gym"; filled in from ``name``.
        obs: "state" or "pixels" (DMC). Atari is always pixels, Gymnasium ids state.
        num_envs: number of vectorised envs; None = the agent's default.
        vectorization: "sync" (one process), "async" (a subprocess per env) or "ale" (Atari
            only: ale-py's C++ vector env; a resumed run starts new games; see envs/ale_vector.py).
        action_repeat: simulator steps per agent step; None = 2 for DMC (TCRL/TD-MPC2/DrQ-v2),
            4 for Atari (the frame skip), 1 for Gymnasium ids. Env frames = agent steps x this.
        frame_stack: frames stacked along channels; None = 3 for DMC pixels, 4 for Atari, 1 else.
        image_size: rendered/processed image side (84).
        camera: DMC camera id; None = 2 for quadruped, 0 otherwise.
        max_episode_steps: agent-step cap per episode; None = the env's own
            (DMC 1000 frames, Atari 108k frames).
        protocol: Atari protocol: "v5" (sticky actions 0.25, Machado et al. 2018) or "100k"
            (Atari-100k: no sticky actions).
        terminal_on_life_loss: Atari: end training episodes on a life loss (the game goes on).
        clip_rewards: Atari: clip training rewards to their sign (logged returns stay raw).
        noop_max: Atari: up to this many no-op actions after reset.
    """

    name: str = "CartPole-v1"
    kind: str = "gym"
    obs: str = "state"
    num_envs: int | None = None
    vectorization: str = "sync"
    action_repeat: int | None = None
    frame_stack: int | None = None
    image_size: int = 84
    camera: int | None = None
    max_episode_steps: int | None = None
    protocol: str = "v5"
    terminal_on_life_loss: bool = False
    clip_rewards: bool = False
    noop_max: int = 30
