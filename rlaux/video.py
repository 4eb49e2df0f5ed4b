"""Videos of an evaluation: env 0's first episode rendered as RGB frames (Atari screen, DMC
camera, Gymnasium's ``rgb_array``), one frame after the reset and one per agent step, written
as mp4 or GIF while the episode runs."""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np


class VideoUnavailable(RuntimeError):
    """The env cannot render RGB frames here."""


def enable_rgb_rendering(env: gym.Env) -> None:
    """Switch the innermost env of ``env`` to ``rgb_array`` rendering after construction
    (rlaux builds envs without a render mode). Frames are checked as they are recorded.

    Raises :class:`VideoUnavailable` when the env has no ``rgb_array`` mode or (DMC) no
    headless OpenGL backend works.
    """
    base = env.unwrapped
    if "rgb_array" not in (base.metadata or {}).get("render_modes", []):
        raise VideoUnavailable(f"{type(base).__name__} has no rgb_array render mode")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame (classic control) without a display
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    from envs.dmc import DMCEnv

    if isinstance(base, DMCEnv):
        from envs.rendering import select_gl_backend

        try:
            select_gl_backend()
        except RuntimeError as exc:
            raise VideoUnavailable(str(exc)) from exc
    base.render_mode = "rgb_array"


def video_fps(env: gym.Env, action_repeat: int) -> int:
    """Frames per second for one frame per agent step: the env's render fps / action repeat."""
    base = env.unwrapped
    fps = float((base.metadata or {}).get("render_fps") or 30)
    if type(base).__module__.startswith("ale_py"):
        fps = 60.0  # the Atari 2600 runs at 60 frames/s (NTSC); ale-py's metadata says 30 whatever the frame skip
    # DMC repeats actions inside the env and reports fps per control step; Atari's frame skip
    # and Gymnasium's ActionRepeat are wrappers over an env whose fps is per emulator frame.
    repeat = int(getattr(base, "action_repeat", None) or action_repeat)
    return int(max(1, min(60, round(fps / max(repeat, 1)))))


class FirstEpisodeRecorder:
    """Writes one RGB frame per agent step of env 0's first episode (plus the reset frame) to a
    video file, streaming (no frame list is kept in memory for mp4)."""

    def __init__(self, env: gym.Env, path: Path, fps: int, max_frames: int = 0) -> None:
        import imageio.v2 as imageio

        self.env, self.path, self.fps, self.max_frames = env, Path(path), fps, int(max_frames)
        self.frames = 0
        self.truncated = False
        self.error: str | None = None
        if self.path.suffix == ".gif":
            self._writer = imageio.get_writer(self.path, mode="I", duration=1000.0 / fps, loop=0)
        else:
            self._writer = imageio.get_writer(self.path, fps=fps, codec="libx264", quality=7, macro_block_size=1,
                                              ffmpeg_log_level="error")

    def _frame(self) -> np.ndarray:
        try:
            frame = self.env.unwrapped.render()
        except Exception as exc:  # e.g. pygame missing for Gymnasium's classic-control envs
            raise VideoUnavailable(f"render() failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(frame, np.ndarray) or frame.ndim != 3:
            raise VideoUnavailable(f"render() returned {type(frame).__name__}, not an RGB array")
        frame = np.asarray(frame, dtype=np.uint8)
        pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2  # H.264 (yuv420p) needs even sizes
        if pad_h or pad_w:
            frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        return frame

    def __call__(self, t: int, done: np.ndarray | None) -> bool:
        try:
            frame = self._frame()
        except VideoUnavailable as exc:
            self.error = str(exc)
            self.close()
            self.path.unlink(missing_ok=True)
            return False
        self._writer.append_data(frame)
        self.frames += 1
        if done is not None and bool(done[0]):
            self.close()
            return False
        if self.max_frames and self.frames >= self.max_frames:
            self.truncated = True
            self.close()
            return False
        return True

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None  # type: ignore[assignment]
