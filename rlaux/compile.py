"""``compile=true``: the agent's update step through ``torch.compile``.

:class:`CompiledUpdate` wraps a bound ``agent.update`` (the module itself is not wrapped, so
``agent.state_dict()`` keys, checkpoints and resume are unchanged). What it does with the
update's Python-side parts:

* **Backward passes and optimiser steps** are graph breaks: Dynamo compiles the code between
  them (forward graphs, with AOTAutograd's backward graphs) and runs ``loss.backward()`` and
  :func:`rlaux.optim.adam_step` eagerly. ``adam_step`` is marked as not traced: it already
  calls the one fused Adam kernel (tracing ``torch._fused_adam_`` fails in Inductor's
  functionalisation), and its per-optimiser plan cache is a Python weak dictionary.
* **A frame that fails to compile** (no C++ compiler, an Inductor error) or that reached
  Dynamo's recompile limit (a network's ``forward`` met with many modules, shapes and grad
  modes) runs eagerly: each call runs under Dynamo's ``suppress_errors``, which falls back per frame,
  before that frame ran, so the results stay the eager ones. The first fallback prints one
  warning line (through ``warn``) instead of Dynamo's traceback.
* **CUDA graphs** (``mode="reduce-overhead"``, the ``auto`` choice on CUDA): each update
  starts a new CUDA-graph step (``torch.compiler.cudagraph_mark_step_begin``) and its metrics
  are copied out of the graphs' memory pools, which the next replay overwrites.

Compiled kernels may reorder float operations, so losses equal eager ones up to float
rounding, not bit for bit (``tests/test_compile.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from rlaux import optim

#: ``compile_mode`` values: ``auto`` = reduce-overhead (CUDA graphs) on CUDA, default elsewhere
COMPILE_MODES = ("auto", "default", "reduce-overhead", "max-autotune")

#: where Dynamo reports a frame it could not compile and runs eagerly
_DYNAMO_LOGGER = logging.getLogger("torch._dynamo.convert_frame")

Update = Callable[..., dict[str, torch.Tensor]]


def resolve_mode(mode: str, device: torch.device) -> str:
    """The ``torch.compile`` mode for ``compile_mode=mode`` on ``device`` (``auto``: CUDA graphs on CUDA)."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile_mode={mode!r} is not valid; valid choices: {', '.join(COMPILE_MODES)}")
    if mode == "auto":
        return "reduce-overhead" if device.type == "cuda" else "default"
    return mode


def _never_traced(fn: Callable[..., Any]) -> None:
    """Dynamo neither traces ``fn`` nor what it calls (a graph break, then eager). Where
    ``fn`` is defined, ``@torch.compiler.disable`` says the same; this marks a function
    that other modules have already imported, in place."""
    torch._dynamo.decorators.skip(fn)  # a call of fn breaks the graph; fn's own frame runs eagerly
    action = torch._dynamo.types.FrameAction.SKIP  # ... and so do the frames fn calls (optimizer.step)
    torch._C._dynamo.eval_frame.set_code_exec_strategy(fn.__code__, torch._dynamo.types.FrameExecStrategy(action, action))


class _FirstFallbackNotice(logging.Filter):
    """Turns Dynamo's fallback reports into one ``warn`` line (the first), dropping them all."""

    def __init__(self, warn: Callable[[str], None]) -> None:
        super().__init__()
        self.warn = warn
        self.reported = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING and not self.reported:
            self.reported = True
            self.warn(f"rlaux: warning: compile=true: part of the update runs eagerly (torch.compile: {_reason(record)})")
        return record.levelno < logging.WARNING


def _reason(record: logging.LogRecord) -> str:
    """The first line of what a Dynamo fallback report says went wrong (the compiler's own error when it has one)."""
    exc = record.exc_info[1] if record.exc_info else None
    exc = getattr(exc, "inner_exception", None) or exc  # BackendCompilerFailed wraps the compiler's error
    text = f"{type(exc).__name__}: {exc}" if exc is not None else record.getMessage()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:200] if lines else "no reason given"


class CompiledUpdate:
    """``update`` (a bound ``agent.update``) through ``torch.compile`` (see the module docstring).

    Args:
        update: the agent's update method; called with the loop's arguments.
        device: the agent's device (decides ``auto`` and the CUDA-graph handling).
        mode: a :data:`COMPILE_MODES` value.
        warn: prints a warning line (the run's logger).
        backend: ``torch.compile``'s backend (``inductor``; tests pass others).
    """

    def __init__(self, update: Update, device: torch.device, mode: str, warn: Callable[[str], None],
                 backend: str | Callable[..., Any] = "inductor") -> None:
        self.eager = update
        self.mode = resolve_mode(mode, device)
        self.cuda_graphs = self.mode == "reduce-overhead" and device.type == "cuda"
        self.notice = _FirstFallbackNotice(warn)
        _never_traced(optim.adam_step)
        try:
            self.compiled: Update | None = torch.compile(update, mode=None if self.mode == "default" else self.mode,
                                                         backend=backend)
        except RuntimeError as exc:  # e.g. a Python version Dynamo does not support
            warn(f"rlaux: warning: compile=true: torch.compile is unavailable ({exc}); the update runs eagerly")
            self.compiled = None

    @contextmanager
    def _eager_fallback(self) -> Iterator[None]:
        """Frames that fail to compile run eagerly; Dynamo's report becomes one warning line."""
        _DYNAMO_LOGGER.addFilter(self.notice)
        try:
            with torch._dynamo.config.patch(suppress_errors=True):
                yield
        finally:
            _DYNAMO_LOGGER.removeFilter(self.notice)

    def __call__(self, *args: Any) -> dict[str, torch.Tensor]:
        """One update; returns its metrics (0-dim tensors), as the eager update does."""
        if self.compiled is None:
            return self.eager(*args)
        with self._eager_fallback():
            if self.cuda_graphs:
                torch.compiler.cudagraph_mark_step_begin()
            metrics = self.compiled(*args)
        if self.cuda_graphs:
            metrics = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in metrics.items()}
        return metrics
