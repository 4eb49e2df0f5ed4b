"""DeepMind Control suite tasks as Gymnasium environments (state or pixels, action repeat)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from envs.rendering import import_dm_suite, select_gl_backend


class DMCEnv(gym.Env):
    """One ``dm_control.suite`` task as a Gymnasium ``Env``.

    * Actions: Box[-1, 1] float32, rescaled linearly to the task's action bounds.
    * Observations: ``"state"`` = the observation dict flattened and concatenated in the
      task's own (deterministic) key order, float32; ``"pixels"`` = one RGB frame
      ``(3, S, S)`` uint8 rendered from ``camera``.
    * ``action_repeat`` physics control steps per ``step``; rewards are summed and the
      repeat stops when the dm_control episode ends.
    * DMC's time limit (1000 control steps for most tasks = 500 agent steps at repeat 2) is a
      truncation; a dm_control episode ending with discount 0 (only ``lqr``) is a termination.

    Rendering turns shadows and reflections off (about 4x faster at 84x84 with EGL; the images
    differ only in shading: a mean absolute pixel difference below 1 on cheetah) and reuses one
    camera/scene instead of building one per frame.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self,
        domain: str,
        task: str,
        *,
        seed: int | None = None,
        obs: str = "state",
        action_repeat: int = 1,
        image_size: int = 84,
        camera: int = 0,
        render_mode: str | None = None,
    ) -> None:
        if obs not in ("state", "pixels"):
            raise ValueError(f"obs={obs!r} is invalid; choose one of ['state', 'pixels']")
        if action_repeat < 1:
            raise ValueError(f"action_repeat={action_repeat!r} is invalid; expected an integer >= 1")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} is invalid; choose one of [None, 'rgb_array']")
        if obs == "pixels" or render_mode is not None:
            select_gl_backend()
        suite = import_dm_suite()
        self._env = suite.load(domain, task, task_kwargs={"random": seed})
        self.domain, self.task = domain, task
        self.obs_type, self.action_repeat = obs, action_repeat
        self.image_size, self.camera_id, self.render_mode = image_size, camera, render_mode
        self.metadata = {**self.metadata, "render_fps": int(round(1.0 / self._env.control_timestep()))}

        spec = self._env.action_spec()
        self._act_low = np.asarray(spec.minimum, dtype=np.float64)
        self._act_high = np.asarray(spec.maximum, dtype=np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=spec.shape, dtype=np.float32)

        self._obs_keys = list(self._env.observation_spec().keys())
        if obs == "state":
            dim = sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values())
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float32)
        else:
            self.observation_space = gym.spaces.Box(
                0, 255, shape=(3, image_size, image_size), dtype=np.uint8
            )
        self._cameras: dict[tuple[int, int, int], Any] = {}

    # -- rendering -------------------------------------------------------------------------
    def _render_frame(self, height: int, width: int, camera_id: int) -> np.ndarray:
        """(H, W, 3) uint8 frame with shadows and reflections off, from a cached camera."""
        import mujoco  # noqa: PLC0415
        from dm_control.mujoco import engine  # noqa: PLC0415

        key = (height, width, camera_id)
        if key not in self._cameras:
            self._cameras[key] = engine.Camera(self._env.physics, height, width, camera_id)
        flags = {mujoco.mjtRndFlag.mjRND_SHADOW: False, mujoco.mjtRndFlag.mjRND_REFLECTION: False}
        return self._cameras[key].render(render_flag_overrides=flags)

    def render(self) -> np.ndarray | None:
        """RGB frame (H, W, 3) uint8 at 2x the observation size (for videos)."""
        if self.render_mode != "rgb_array":
            return None
        size = max(2 * self.image_size, 128)
        return self._render_frame(size, size, self.camera_id)

    # -- gym API ---------------------------------------------------------------------------
    def _observation(self, time_step: Any) -> np.ndarray:
        if self.obs_type == "pixels":
            frame = self._render_frame(self.image_size, self.image_size, self.camera_id)
            return np.ascontiguousarray(frame.transpose(2, 0, 1))
        parts = [np.asarray(time_step.observation[k], dtype=np.float32).ravel() for k in self._obs_keys]
        return np.concatenate(parts)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self._env.task.random.seed(seed)
        time_step = self._env.reset()
        return self._observation(time_step), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        action = self._act_low + (action + 1.0) * 0.5 * (self._act_high - self._act_low)
        reward = 0.0
        for _ in range(self.action_repeat):
            time_step = self._env.step(action)
            reward += float(time_step.reward or 0.0)
            if time_step.last():
                break
        done = time_step.last()
        terminated = bool(done and time_step.discount == 0.0)
        truncated = bool(done and not terminated)
        return self._observation(time_step), reward, terminated, truncated, {}

    def close(self) -> None:
        self._cameras.clear()
        self._env.close()
        super().close()
