"""DeepMind Control suite tasks as Gymnasium environments (state or pixels, action repeat)."""

from __future__ import annotations

import logging
from typing import Any

import gymnasium as gym
import numpy as np

from envs.rendering import import_dm_suite, select_gl_backend

#: MuJoCo >= 3.3 deprecates ``<compiler settotalmass=...>``, which dm_control's own cheetah model
#: uses; dm_control logs MuJoCo's warning through absl at every model compile (every env).
SETTOTALMASS_DEPRECATION = "compiler attribute 'settotalmass' is deprecated"


class DropSetTotalMassDeprecation(logging.Filter):
    """Drop the ``settotalmass`` deprecation records of the ``absl`` logger; pass all others."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(SETTOTALMASS_DEPRECATION)


def _silence_settotalmass_deprecation() -> None:
    """Install :class:`DropSetTotalMassDeprecation` on the ``absl`` logger (once)."""
    absl_logger = logging.getLogger("absl")
    if not any(isinstance(f, DropSetTotalMassDeprecation) for f in absl_logger.filters):
        absl_logger.addFilter(DropSetTotalMassDeprecation())


_silence_settotalmass_deprecation()

#: Model arrays a snapshot leaves out: textures, meshes, skins, flexes, their bounding-volume
#: trees and names. They are large and no suite task changes them between episodes.
_MODEL_SKIP = ("tex_", "mesh_", "skin_", "flex_", "bvh_", "name", "paths", "text_", "plugin")


def _model_arrays(model: Any) -> dict[str, np.ndarray]:
    """The numeric arrays of a ``mujoco.MjModel`` that a task may change per episode (geometry,
    colours, masses, heightfields, ...): every array attribute but those in ``_MODEL_SKIP``."""
    arrays = {}
    for name in dir(model):
        if name.startswith("_") or name.startswith(_MODEL_SKIP):
            continue
        value = getattr(model, name, None)
        if isinstance(value, np.ndarray):
            arrays[name] = value
    return arrays


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
        self.domain, self.task, self._seed = domain, task, seed
        self._env = self._load()
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

    def _load(self) -> Any:
        """Load the dm_control task and remember its pristine model arrays (for snapshots)."""
        env = import_dm_suite().load(self.domain, self.task, task_kwargs={"random": self._seed})
        self._model_ref = {k: v.copy() for k, v in _model_arrays(env.physics.model.ptr).items()}
        return env

    # -- pickling (an exact snapshot for checkpoints) ---------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """A compact, exact snapshot: the full MuJoCo integration state (``mj_getState`` with
        ``mjSTATE_INTEGRATION``: time, qpos, qvel, act, warm start, controls, applied forces,
        mocap, ...), the model arrays the task changed since loading, and the dm_control
        environment's own fields (task object with its random state, step counter).

        Pickling the dm_control env itself would store the whole model and data arena
        (12 MB for cartpole, 70+ MB for dog per env)."""
        import mujoco

        state = {k: v for k, v in self.__dict__.items() if k not in ("_env", "_cameras", "_model_ref")}
        physics = self._env.physics
        changed = {k: v.copy() for k, v in _model_arrays(physics.model.ptr).items()
                   if not np.array_equal(v, self._model_ref.get(k), equal_nan=True)}
        state["_snapshot"] = {
            "physics": physics.get_state(sig=mujoco.mjtState.mjSTATE_INTEGRATION),
            "model": changed,
            "control": {k: v for k, v in self._env.__dict__.items() if k != "_physics"},
        }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        import mujoco

        state = dict(state)
        snapshot = state.pop("_snapshot")
        self.__dict__.update(state)
        self._cameras = {}
        if self.obs_type == "pixels" or self.render_mode is not None:
            select_gl_backend()
        self._env = self._load()
        physics = self._env.physics
        model = physics.model.ptr
        for name, value in snapshot["model"].items():
            getattr(model, name)[...] = value
        self._env.__dict__.update(snapshot["control"])
        physics.set_state(snapshot["physics"], sig=mujoco.mjtState.mjSTATE_INTEGRATION)
        physics.forward()  # derived quantities (positions, sensors) as after the step that was saved

    # -- rendering -------------------------------------------------------------------------
    def _render_frame(self, height: int, width: int, camera_id: int) -> np.ndarray:
        """(H, W, 3) uint8 frame with shadows and reflections off, from a cached camera."""
        import mujoco
        from dm_control.mujoco import engine

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
