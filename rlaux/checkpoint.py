"""Checkpoints: atomic writes, a few kept, and the newest readable one found on resume.

A checkpoint is one ``torch.save`` file ``run_dir/checkpoints/step_<N>.pt`` holding a dict:
``format`` (version), ``step`` and other counters, ``config_hash``, ``agent`` (state dict),
``optimizers`` ({name: state dict}), ``rng`` (python, numpy, torch states) and ``loop`` (the
training loop's own ``state_dict()``: its observation stream and, off-policy, the replay). Files are written to a temp
name, flushed to disk and renamed (then the folder entry is flushed too), so a crash or power
cut mid-write never leaves a corrupt newest checkpoint; a temp file left by such a crash is
removed by the next save. :func:`load_latest_checkpoint` skips (with a warning) a newest file
that is unreadable anyway, e.g. truncated by a full disk or a copy.
"""

from __future__ import annotations

import os
import random
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlaux.errors import UserError

#: 2: the replay is part of the loop's state (format 1 kept it beside it; still read).
CHECKPOINT_FORMAT = 2
_NAME = re.compile(r"^step_(\d+)\.pt$")


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is missing, unreadable or does not belong to this run's config."""


class CheckpointWarning(UserWarning):
    """An unreadable checkpoint was skipped in favour of an older one."""


def rng_state() -> dict[str, Any]:
    """The global RNG states of python, numpy and torch (and CUDA's, when a GPU is in use)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_dir(directory: Path) -> None:
    """Flush a folder's entries (a rename) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(directory: Path, step: int, payload: dict[str, Any], keep: int = 2) -> Path:
    """Atomically write ``payload`` as ``step_<step>.pt`` and delete all but the ``keep`` newest."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"step_{step:010d}.pt"
    tmp = directory / f".{path.name}.tmp"
    for stale in directory.glob(".step_*.pt.tmp"):  # left by a crash during an earlier write
        stale.unlink(missing_ok=True)
    torch.save({"format": CHECKPOINT_FORMAT, "step": step, **payload}, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(directory)
    for old in list_checkpoints(directory)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(directory: Path) -> list[Path]:
    """Checkpoint files in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load one checkpoint file, raising :class:`CheckpointError` if it is unreadable."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated zip, pickle error, ...
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict) or "format" not in data or "agent" not in data:
        raise CheckpointError(f"checkpoint {path} is not an rlaux checkpoint (format {CHECKPOINT_FORMAT})")
    if data["format"] == 1:
        _move_replay_into_loop(data)
    elif data["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {data['format']!r}, which this rlaux cannot read (it reads "
                              f"formats 1 to {CHECKPOINT_FORMAT}); use the rlaux version that wrote it")
    return data


def _move_replay_into_loop(data: dict[str, Any]) -> None:
    """Read a format-1 checkpoint as format 2: its replay moves into the loop state."""
    loop = dict(data.get("loop", {}))
    if "replay" in data:
        loop["replay"] = data.pop("replay")
    data["loop"], data["format"] = loop, CHECKPOINT_FORMAT


def load_latest_checkpoint(directory: Path) -> dict[str, Any] | None:
    """The newest readable checkpoint in ``directory`` (warning about any skipped), or None."""
    for path in reversed(list_checkpoints(directory)):
        try:
            data = load_checkpoint(path)
        except CheckpointError as exc:
            warnings.warn(f"{exc}; falling back to the previous checkpoint", CheckpointWarning, stacklevel=2)
            continue
        data["path"] = str(path)
        return data
    return None
