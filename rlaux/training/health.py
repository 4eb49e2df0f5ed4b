"""NaN/Inf in a run: finding them (one host sync per check) and the ``on_nan`` policy.

``on_nan=stop``: the run raises :func:`stop_error` when :func:`non_finite_description` finds
NaN/Inf at a log row or before a checkpoint. ``on_nan=skip``: :meth:`NanPolicy.apply` undoes an
update that produced NaN/Inf (parameters and optimiser states put back) and counts it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from agents import Agent
from envs import EnvError


class NonFiniteLossError(RuntimeError):
    """A loss, metric or parameter became NaN/Inf (with ``on_nan=stop``)."""


#: Errors that end a started run with one clear message (the run folder is kept, with a
#: ``summary.json`` saying ``"failed": true``): a NaN/Inf, or an env raising in reset/step.
RUN_FAILURES = (NonFiniteLossError, EnvError)


def non_finite_names(metrics: Mapping[str, Any]) -> list[str]:
    """Names of the metrics that are NaN/Inf (one host sync for all tensor metrics)."""
    tensors = {k: v for k, v in metrics.items() if isinstance(v, torch.Tensor)}
    bad = [k for k, v in metrics.items() if not isinstance(v, torch.Tensor) and not math.isfinite(float(v))]
    if tensors:
        flags = torch.stack([v.detach().isfinite().all() for v in tensors.values()]).cpu()
        if not bool(flags.all()):
            bad += [k for k, ok in zip(tensors, flags.tolist()) if not ok]
    return bad


def non_finite_parameters(module: torch.nn.Module) -> list[str]:
    """Names of the parameters/buffers of ``module`` holding NaN/Inf (one host sync)."""
    named = [(k, v) for k, v in module.state_dict().items() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    if not named:
        return []
    flags = torch.stack([v.isfinite().all() for _, v in named]).cpu()
    return [] if bool(flags.all()) else [k for (k, _), ok in zip(named, flags.tolist()) if not ok]


def non_finite_description(metrics: Mapping[str, Any], module: torch.nn.Module) -> str | None:
    """``loss/metric a, b; parameters x, y`` naming what is NaN/Inf, or None when all is finite."""
    bad = non_finite_names(metrics)
    params = non_finite_parameters(module)
    if not bad and not params:
        return None
    what = f"loss/metric {', '.join(bad)}" if bad else ""
    if params:
        shown = ", ".join(params[:3]) + (f" (+{len(params) - 3} more)" if len(params) > 3 else "")
        what += ("; " if what else "") + f"parameters {shown}"
    return what


def stop_error(what: str, where: str, log_every: int, last_checkpoint: str) -> NonFiniteLossError:
    """The ``on_nan=stop`` error: what is NaN/Inf, where the run is, the last good checkpoint and the fixes."""
    return NonFiniteLossError(
        f"NaN/Inf in {what} at {where}; checked every log_every={log_every} steps; last good checkpoint: "
        f"{last_checkpoint}. Lower the learning rate (agent.lr), clip gradients (agent.max_grad_norm) or check the "
        "env's observations and rewards; on_nan=skip drops such updates instead of stopping.")


class NanPolicy:
    """The ``on_nan`` policy of one agent's updates: ``stop`` (run them as they are) or ``skip``.

    ``where()`` says where the run is (``"step S (update U)"``) and ``warn(text)`` prints a
    skipped update's warning.
    """

    def __init__(self, agent: Agent, on_nan: str, where: Callable[[], str], warn: Callable[[str], None]) -> None:
        self.agent = agent
        self.skip = on_nan == "skip"
        self.where = where
        self.warn = warn
        self.skipped = 0
        #: the metrics of the latest update that was applied (returned for a skipped one)
        self.good_metrics: dict[str, torch.Tensor] = {}

    def apply(self, update: Callable[..., dict[str, torch.Tensor]], *args: Any) -> dict[str, torch.Tensor]:
        """Run ``update(*args)`` (one agent update) under the policy.

        ``stop``: run it as is (the run finds NaN/Inf at its next log row or checkpoint).
        ``skip``: snapshot the agent's parameters and optimiser states, run the update, and if
        any returned metric or any parameter is NaN/Inf, put the snapshot back (the update is
        not applied), count it in ``skipped`` and say so; returns the last good metrics then.
        """
        if not self.skip:
            return update(*args)
        agent = self.agent
        params = {k: v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)
                  for k, v in agent.state_dict().items()}
        optims = {k: copy.deepcopy(opt.state_dict()) for k, opt in agent.optimizers().items()}
        metrics = update(*args)
        bad = non_finite_names(metrics)
        bad_params = non_finite_parameters(agent)
        if not bad and not bad_params:
            self.good_metrics = dict(metrics)
            return metrics
        agent.load_state_dict(params)
        for k, opt in agent.optimizers().items():
            opt.load_state_dict(optims[k])
        self.skipped += 1
        n = self.skipped
        if n <= 5 or n & (n - 1) == 0:  # the first few, then at powers of two
            what = ", ".join(bad) if bad else f"parameters {', '.join(bad_params[:3])}"
            self.warn(f"rlaux: warning: NaN/Inf in {what} at {self.where()}; update skipped "
                      f"(on_nan=skip; {n} skipped so far)")
        return self.good_metrics
