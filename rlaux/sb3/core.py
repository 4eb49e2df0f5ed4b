"""AuxRuntime: the aux objectives of one SB3 model, wired into its networks and optimisers.

Seams used (no copy of SB3's ``train()``):

* separate mode: the Aux algorithms' ``train()`` calls :meth:`AuxRuntime.separate_updates`
  before SB3's off-policy gradient steps (TCRL's order: aux, then critic, then actor) and after
  PPO/A2C's epochs (so the next rollout's log-probabilities come from the encoder it trains);
* joint mode: SB3 performs every gradient step as ``optimizer.zero_grad(); loss.backward();
  [clip]; optimizer.step()``. The runtime wraps ``zero_grad`` of the RL optimiser that steps the
  aux extractor: right after the gradients are cleared it back-propagates the aux loss, so the
  RL ``backward`` that follows adds its gradient to it. The step then applies the gradient of
  ``RL loss + aux loss`` (PPO/A2C/DQN clip that sum with ``max_grad_norm``). A step post-hook
  (``Optimizer.register_step_post_hook``) refreshes the objectives' target networks. Both
  fire only inside the Aux algorithm's ``train()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.preprocessing import is_image_space
from torch import nn

from rlaux.objectives import build_aux_suite
from rlaux.objectives.base import IncompatibleObjectiveError
from rlaux.objectives.suite import AuxSuite
from rlaux.sb3.buffers import RecordedRollout, replay_window_source
from rlaux.sb3.encoder import FeaturesEncoder
from rlaux.sb3.options import AuxOptions
from rlaux.sb3.routing import AuxRoute, check_route, resolve_route
from rlaux.types import WindowBatch


def sb3_algorithm_name(model: Any) -> str:
    """Lower-case name of the SB3 algorithm a model derives from (``ppo``, ``sac``, ...)."""
    for cls in type(model).__mro__:
        if cls.__module__.startswith("stable_baselines3.") and "Algorithm" not in cls.__name__:
            return cls.__name__.lower()
    return type(model).__name__.lower()


def check_dict_augmentation(suite: AuxSuite, observation_space: spaces.Dict) -> None:
    """Refuse image augmentation (an objective's ``augment=True``, TACO's random shift) on Dict
    observations with image entries: the objectives read the flat view, where no image can be
    shifted, so the option would be silently ignored."""
    images = [key for key, sub in observation_space.spaces.items() if is_image_space(sub)]
    if not images:
        return
    for name, objective in suite.objectives.items():
        if getattr(objective.cfg, "augment", False):
            raise IncompatibleObjectiveError(
                f"aux={name} augment=True: image augmentation of Dict observations (image entries {images}) is not "
                f"supported; pass aux={{{name!r}: {{'augment': False}}}}")


class AuxRuntime:
    """Builds the :class:`~rlaux.objectives.suite.AuxSuite` on the model's features extractor and
    installs the hooks; holds the per-``train()`` metrics.

    Args:
        model: an SB3 algorithm whose policy is built (``_setup_model`` ran).
        spec: ``{objective name: options}``.
        options: :class:`AuxOptions`.
    """

    def __init__(self, model: Any, spec: Mapping[str, Mapping[str, Any]], options: AuxOptions) -> None:
        self.model = model
        self.options = options
        self.on_policy = isinstance(model, OnPolicyAlgorithm)
        name = sb3_algorithm_name(model)
        self.route: AuxRoute = resolve_route(model.policy, options.encoder, name.upper())
        self.encoder = FeaturesEncoder(self.route.extractor, model.observation_space, model.policy.normalize_images)
        layout = self.encoder.obs_layout
        self.suite = build_aux_suite(
            {k: dict(v) for k, v in spec.items()}, name, self.encoder, self.encoder.out_dim,
            model.observation_space if layout is None else layout.flat_space, model.action_space,
            optimizer=options.optimizer, lr=float(options.lr),
            weight_decay=float(options.weight_decay), grad_clip=float(options.grad_clip),
        ).to(model.device)
        if layout is not None:
            check_dict_augmentation(self.suite, model.observation_space)
        encoder_grad = any(obj.cfg.encoder_grad for obj in self.suite.objectives.values())
        check_route(self.route, self.suite.joint, encoder_grad)
        self.detach_rl = self.suite.detach_rl if options.detach_rl is None else bool(options.detach_rl)
        self.head_params = [p for p in self.suite.objectives.parameters() if p.requires_grad]

        self.in_train = False
        self.rl_steps = 0  # steps of the route's RL optimiser in the current train() call
        self.aux_steps = 0  # aux updates (separate) or aux backward passes (joint) in the current call
        self.last_metrics: dict[str, float] = {}
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        self._handles: list[Any] = []
        if self.detach_rl:
            self._handles.append(self.encoder.detach_rl())
        optimizer = self.route.optimizer
        if self.suite.joint:
            if self.head_params:
                optimizer.add_param_group({"params": self.head_params})
            original = optimizer.zero_grad

            def zero_grad(set_to_none: bool = True) -> None:
                original(set_to_none)
                if self.in_train:
                    self._joint_backward()

            optimizer.zero_grad = zero_grad  # type: ignore[method-assign]
        self._optimizer = optimizer
        self._handles.append(optimizer.register_step_post_hook(self._after_rl_step))

    # ------------------------------------------------------------------ data
    @property
    def joint(self) -> bool:
        return self.suite.joint

    @property
    def batch_size(self) -> int:
        model = self.model
        if self.options.batch_size is not None:
            return int(self.options.batch_size)
        return int(getattr(model, "batch_size", None) or model.n_steps * model.n_envs)

    def sample(self, batch_size: int | None = None) -> WindowBatch:
        """Windows of ``suite.horizon`` steps from the model's rollout or replay buffer."""
        model = self.model
        if self.on_policy:
            buffer = model.rollout_buffer
            if not isinstance(buffer, RecordedRollout):
                raise TypeError(f"aux objectives need an AuxRolloutBuffer or AuxDictRolloutBuffer, got "
                                f"{type(buffer).__name__}")
            source = buffer.window_source()
        else:
            source = replay_window_source(model.replay_buffer, model._vec_normalize_env)
        return source.sample(batch_size or self.batch_size, self.suite.horizon, model.action_space, model.device,
                             gamma=float(model.gamma))

    # ------------------------------------------------------------------ updates
    def separate_updates(self, n: int) -> None:
        """``n`` steps of the suite's own optimiser (separate mode), each on fresh windows."""
        if self.suite.optimizer is None:
            return
        for _ in range(int(n)):
            metrics = self.suite.update(self.sample(), self.encoder)
            self.suite.optimizer.zero_grad(set_to_none=True)  # leave no aux gradient behind for the RL step
            self._accumulate(metrics)
            self.aux_steps += 1

    def _joint_backward(self) -> None:
        loss, metrics = self.suite.loss(self.sample(), self.encoder)
        loss.backward()
        if self.options.grad_clip > 0 and self.head_params:
            metrics["aux/head_grad_norm"] = nn.utils.clip_grad_norm_(self.head_params, float(self.options.grad_clip))
        self._accumulate(metrics)
        self.aux_steps += 1

    def _after_rl_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if not self.in_train:
            return
        self.rl_steps += 1
        if self.joint:
            self.suite.update_targets(self.encoder)

    # ------------------------------------------------------------------ metrics
    def begin(self) -> None:
        """Start of a ``train()`` call."""
        self.rl_steps = 0
        self.aux_steps = 0
        self._sums, self._counts = {}, {}

    def _accumulate(self, metrics: Mapping[str, torch.Tensor]) -> None:
        total = None
        for name, obj in self.suite.objectives.items():
            key = f"aux/{name}/loss"
            if key in metrics:
                term = obj.weight * metrics[key].detach()
                total = term if total is None else total + term
        items = dict(metrics)
        if total is not None:
            items["aux/loss"] = total
        for key, value in items.items():
            value = torch.as_tensor(value).detach().float()
            self._sums[key] = self._sums[key] + value if key in self._sums else value
            self._counts[key] = self._counts.get(key, 0) + 1

    def flush(self, logger: Any) -> None:
        """Record the means of this call's metrics under ``aux/...`` (SB3 logger) and keep them
        in :attr:`last_metrics`."""
        if not self._sums:
            return
        keys = list(self._sums)
        means = torch.stack([self._sums[k].cpu() / self._counts[k] for k in keys]).tolist()
        self.last_metrics = dict(zip(keys, means))
        self.last_metrics["aux/steps"] = float(self.aux_steps)
        for key, value in self.last_metrics.items():
            logger.record(key, value)

    def close(self) -> None:
        """Remove the hooks (the model's networks go back to plain SB3 behaviour)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if "zero_grad" in vars(self._optimizer):
            del self._optimizer.zero_grad

    def describe(self) -> str:
        """Where the aux gradient goes, in one line."""
        mode = ("joint: aux loss added to the RL loss of every step of that extractor's optimiser"
                if self.joint else "separate: own Adam over the objectives' heads and the extractor")
        rl = "RL losses detached from it" if self.detach_rl else "RL losses train it too"
        return (f"aux {sorted(self.suite.objectives)} shapes {self.route.description} "
                f"({type(self.route.extractor).__name__}); {mode}; {rl}")
