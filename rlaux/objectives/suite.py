"""AuxSuite: the set of auxiliary objectives an agent trains, seen as one thing.

Agents call the suite without knowing which objectives are in it:

* ``suite.horizon``: window length the replay must provide (longest objective, >= 1);
* ``suite.detach_rl``: True when any objective's recipe says RL must not train the encoder;
* joint mode (``optimizer="joint"``): ``loss, metrics = suite.loss(batch, encoder)`` is added
  to the agent's own encoder-training loss before its backward pass;
* separate mode (default, as TCRL and TACO): ``metrics = suite.update(batch, encoder)`` runs
  its own Adam step over the objectives' heads and, for objectives with
  ``encoder_grad=True``, the encoder;
* ``suite.update_targets(encoder)`` after the step in either mode.

Every loss call encodes each distinct (frames, augmentation draw, network) once
(:mod:`rlaux.feature_cache`): objectives that read the same frames with the same online
encoder, or with the same target copy, share one forward pass. ``share_encoder_passes=False``
encodes every request on its own (the path before the cache; benchmarks compare the two).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from rlaux.feature_cache import sharing_encoder_passes
from rlaux.objectives.base import AuxObjective, objective_class
from rlaux.optim import adam_step, make_adam, zero_grad
from rlaux.types import WindowBatch


class AuxSuite(nn.Module):
    """Holds the chosen objectives, their optimiser and their combined loss.

    ``share_encoder_passes`` (attribute, default True): whether :meth:`loss` shares encoder
    passes between its objectives (module docstring).
    """

    def __init__(
        self,
        objectives: Mapping[str, AuxObjective],
        encoder: nn.Module,
        optimizer: str = "separate",
        lr: float = 3e-4,
        weight_decay: float = 0.0,
        grad_clip: float = 10.0,
    ) -> None:
        super().__init__()
        if optimizer not in ("separate", "joint"):
            raise ValueError(f"aux optimizer must be 'separate' or 'joint', got {optimizer!r}")
        self.objectives = nn.ModuleDict(dict(objectives))
        self.mode = optimizer
        self.grad_clip = grad_clip
        self.share_encoder_passes = True
        self.optimizer: torch.optim.Optimizer | None = None
        if self.objectives and optimizer == "separate":
            params = list(self.objectives.parameters())
            if any(obj.cfg.encoder_grad for obj in self.objectives.values()):
                params += list(encoder.parameters())
            params = [p for p in dict.fromkeys(params) if p.requires_grad]
            if params:
                self.optimizer = make_adam(params, lr, weight_decay=weight_decay)

    def __bool__(self) -> bool:
        return len(self.objectives) > 0

    @property
    def horizon(self) -> int:
        return max([obj.horizon for obj in self.objectives.values()], default=1)

    @property
    def detach_rl(self) -> bool:
        return any(obj.detach_rl for obj in self.objectives.values())

    @property
    def joint(self) -> bool:
        return self.mode == "joint" and bool(self)

    def loss(self, batch: WindowBatch, encoder: nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted sum of every objective's loss, and metrics under ``aux/<name>/...``; each
        distinct (frames, augmentation draw, network) is encoded once in the call."""
        total = torch.zeros((), device=batch.reward.device)
        metrics: dict[str, torch.Tensor] = {}
        with sharing_encoder_passes(self.share_encoder_passes):
            for name, obj in self.objectives.items():
                loss, obj_metrics = obj.loss(batch, encoder)
                total = total + obj.weight * loss
                metrics[f"aux/{name}/loss"] = loss.detach()
                metrics.update({f"aux/{name}/{k}": v for k, v in obj_metrics.items()})
        return total, metrics

    def update(self, batch: WindowBatch, encoder: nn.Module) -> dict[str, torch.Tensor]:
        """One optimiser step on the aux losses (separate mode), then target updates."""
        if not self.objectives or self.optimizer is None:
            return {}
        total, metrics = self.loss(batch, encoder)
        zero_grad(self.optimizer)
        total.backward()
        if self.grad_clip > 0:
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            metrics["aux/grad_norm"] = nn.utils.clip_grad_norm_(params, self.grad_clip, foreach=True)
        adam_step(self.optimizer)
        self.update_targets(encoder)
        return metrics

    def update_targets(self, encoder: nn.Module) -> None:
        for obj in self.objectives.values():
            obj.update_targets(encoder)


def build_aux_suite(
    aux_cfg: Mapping[str, Any] | DictConfig | None,
    agent_name: str,
    encoder: nn.Module,
    feature_dim: int,
    obs_space: gym.Space,
    action_space: gym.Space,
    optimizer: str = "separate",
    lr: float = 3e-4,
    weight_decay: float = 0.0,
    grad_clip: float = 10.0,
) -> AuxSuite:
    """Build an :class:`AuxSuite` from the ``aux`` config node ({name: options}).

    Raises :class:`~rlaux.objectives.base.UnknownObjectiveError` for an unknown name and
    :class:`~rlaux.objectives.base.IncompatibleObjectiveError` for a combination an
    objective cannot serve.
    """
    objectives: dict[str, AuxObjective] = {}
    for name, options in (aux_cfg or {}).items():
        cls = objective_class(str(name))
        cls.check_compatible(agent_name, obs_space, action_space)
        raw = OmegaConf.to_container(options, resolve=True) if isinstance(options, DictConfig) else dict(options or {})
        cfg = cls.config_class(**raw)
        objective = cls(cfg, feature_dim, obs_space, action_space)
        objective.bind_encoder(encoder)
        objectives[str(name)] = objective
    return AuxSuite(objectives, encoder, optimizer=optimizer, lr=lr, weight_decay=weight_decay, grad_clip=grad_clip)
