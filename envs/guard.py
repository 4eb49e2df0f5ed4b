"""Turn an exception raised inside an environment into one clear :class:`EnvError`.

A vector env's ``reset``/``step`` run the user's (or a simulator's) code; when it raises, the
training loop should stop with a message naming the env, the call and where the error was
raised, not with a wall of wrapper frames.
"""

from __future__ import annotations

import traceback
from typing import Any

import gymnasium as gym


class EnvError(RuntimeError):
    """An environment raised inside ``reset()`` or ``step()``."""


def describe_env_exception(exc: BaseException, env_name: str, call: str, role: str = "train") -> str:
    """``env 'X' (train) raised RuntimeError: boom in step(), at file.py:12 in step``."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f", at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
    return f"env {env_name!r} ({role}) raised {type(exc).__name__}: {exc} in {call}(){where}"


class EnvErrorGuard(gym.vector.VectorWrapper):
    """Re-raise any exception from the wrapped vector env's ``reset``/``step`` as :class:`EnvError`.

    The original exception is kept as ``__cause__`` (for a debugger or ``RLAUX_TRACEBACK=1``).
    """

    def __init__(self, env: gym.vector.VectorEnv, env_name: str, role: str = "train") -> None:
        super().__init__(env)
        self.env_name, self.role = env_name, role

    def reset(self, *, seed: Any = None, options: dict | None = None) -> tuple[Any, dict]:
        try:
            return self.env.reset(seed=seed, options=options)
        except Exception as exc:
            raise EnvError(describe_env_exception(exc, self.env_name, "reset", self.role)) from exc

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict]:
        try:
            return self.env.step(actions)
        except Exception as exc:
            raise EnvError(describe_env_exception(exc, self.env_name, "step", self.role)) from exc
