"""The mixins that turn an SB3 algorithm class into one trained with rlaux aux objectives.

They override, minimally:

* ``__init__``: takes ``aux=`` and ``aux_kwargs=`` (everything else goes to SB3 unchanged);
* ``_setup_model``: before SB3 builds the networks, puts a trainable :class:`MlpFeatures`
  extractor in place of the parameter-free ``FlattenExtractor`` (see
  :func:`rlaux.sb3.encoder.aux_policy_kwargs`) and the window-serving buffer class in place of
  SB3's default; after, builds the :class:`~rlaux.sb3.core.AuxRuntime` (suite + hooks);
* ``train``: SB3's own ``train()`` runs unchanged inside; separate-mode aux steps run before
  (off-policy) or after (on-policy) it, joint-mode aux losses join its gradient steps through
  the runtime's optimiser hooks; the means of the aux metrics go to SB3's logger (``aux/...``);
* ``_get_torch_save_params`` / ``_excluded_save_params``: ``model.save()`` stores the suite
  (heads, target networks, counters) as ``aux_suite.pth`` and its optimiser as
  ``aux_suite.optimizer.pth``; ``load()`` rebuilds the suite from the saved ``aux_spec`` and
  ``aux_options`` and loads both (joint mode: the heads live in the RL optimiser's state);
  ``aux=`` / ``aux_kwargs=`` given to ``load()`` must agree with the saved ones;
* off-policy: ``optimize_memory_usage`` may also come through ``replay_buffer_kwargs``
  (SB3 itself passes it twice there and fails);
* on-policy ``_init_callback``: adds the :class:`RolloutRecorder` that gives the rollout its
  next observations.

Dict observation spaces (``MultiInputPolicy``, HER) use SB3's Dict buffers (the rollout:
:class:`~rlaux.sb3.buffers.AuxDictRolloutBuffer`); the objectives read a flat view of the
observations (:mod:`rlaux.buffers.dict_obs`).
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import IO, Any

from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, ConvertCallback
from stable_baselines3.common.type_aliases import MaybeCallback

from rlaux.objectives.suite import AuxSuite
from rlaux.sb3.buffers import RolloutRecorder, WindowReplayBuffer, aux_rollout_buffer_class, check_window_replay
from rlaux.sb3.core import AuxRuntime
from rlaux.sb3.encoder import aux_policy_kwargs
from rlaux.sb3.options import AuxOptions, normalize_aux_spec, saved_setting_differences


class AuxAlgorithmMixin:
    """What the on- and off-policy mixins share (use :class:`OnPolicyAuxMixin` /
    :class:`OffPolicyAuxMixin` through :func:`rlaux.sb3.with_aux` or the ``Aux*`` classes).

    Args:
        policy, env: as for the SB3 algorithm.
        aux: objectives: a name (``"tcrl"``), a list (``["tcrl", "predictive"]``) or options per
            name (``{"tcrl": {"horizon": 3}}``); None = none (plain SB3 behaviour).
        aux_kwargs: :class:`~rlaux.sb3.options.AuxOptions` fields (optimizer, encoder,
            detach_rl, lr, weight_decay, grad_clip, batch_size, gradient_steps).
        **kwargs: the SB3 algorithm's own arguments.
    """

    aux_suite: AuxSuite | None
    _aux: AuxRuntime | None

    def __init__(
        self,
        policy: Any,
        env: Any,
        aux: str | Sequence[str] | Mapping[str, Any] | None = None,
        aux_kwargs: Mapping[str, Any] | AuxOptions | None = None,
        **kwargs: Any,
    ) -> None:
        self.aux_spec = normalize_aux_spec(aux)
        self.aux_options = AuxOptions.from_kwargs(aux_kwargs).to_dict()
        self._aux = None
        self.aux_suite = None
        super().__init__(policy, env, **kwargs)  # type: ignore[call-arg]

    # ------------------------------------------------------------------ building
    def _prepare_aux_setup(self) -> None:
        """Algorithm-family changes made before SB3 builds the buffers and networks."""

    def _setup_model(self) -> None:
        if self._aux is not None:
            self._aux.close()
        self._aux, self.aux_suite = None, None
        if self.aux_spec:
            self.policy_kwargs = aux_policy_kwargs(self.policy_class, self.observation_space, self.policy_kwargs)
            self._prepare_aux_setup()
        super()._setup_model()  # type: ignore[misc]
        if self.aux_spec:
            self._aux = AuxRuntime(self, self.aux_spec, AuxOptions(**self.aux_options))
            self.aux_suite = self._aux.suite
            if getattr(self, "verbose", 0) >= 1:
                print(self._aux.describe())

    @property
    def aux_metrics(self) -> dict[str, float]:
        """Means of the aux metrics of the last ``train()`` call (``aux/<name>/loss``, ``aux/loss``, ...)."""
        return dict(self._aux.last_metrics) if self._aux is not None else {}

    def aux_route(self) -> str:
        """Which features extractor the aux loss shapes and how the gradients are routed."""
        return self._aux.describe() if self._aux is not None else "no aux objectives"

    # ------------------------------------------------------------------ saving
    @classmethod
    def load(cls, path: str | pathlib.Path | IO[bytes], env: Any = None, device: Any = "auto",
             custom_objects: dict[str, Any] | None = None, print_system_info: bool = False, force_reset: bool = True,
             **kwargs: Any) -> Any:
        """SB3's ``load``; the objectives and their options are the saved ones.

        ``aux=`` and ``aux_kwargs=`` may restate them (only what is given is compared); a model
        cannot be loaded with other objectives (their heads are not in the file), so a request that
        differs raises ``ValueError`` naming the difference. Other keyword arguments go to SB3.
        """
        aux, aux_kwargs = kwargs.pop("aux", None), kwargs.pop("aux_kwargs", None)
        model = super().load(path, env=env, device=device, custom_objects=custom_objects,  # type: ignore[misc]
                             print_system_info=print_system_info, force_reset=force_reset, **kwargs)
        differences = saved_setting_differences(model.aux_spec, model.aux_options, aux, aux_kwargs)
        if differences:
            raise ValueError(f"{cls.__name__}.load({str(path)!r}): {'; '.join(differences)}. A model loads with the "
                             "objectives it was saved with: omit aux=/aux_kwargs=, or build a new model for others")
        return model

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_aux", "aux_suite"]  # type: ignore[misc]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, variables = super()._get_torch_save_params()  # type: ignore[misc]
        if self.aux_suite is not None:
            state_dicts = [*state_dicts, "aux_suite"]
            if self.aux_suite.optimizer is not None:
                state_dicts.append("aux_suite.optimizer")
        return state_dicts, variables


class OnPolicyAuxMixin(AuxAlgorithmMixin):
    """Aux objectives for SB3's on-policy algorithms (PPO, A2C): windows from the rollout."""

    def _prepare_aux_setup(self) -> None:
        needed = aux_rollout_buffer_class(self.observation_space)
        if self.rollout_buffer_class is None:
            self.rollout_buffer_class = needed
        elif not issubclass(self.rollout_buffer_class, needed):
            raise ValueError(f"rollout_buffer_class={self.rollout_buffer_class.__name__} cannot serve aux windows; "
                             f"use rlaux.sb3.{needed.__name__} (the default) or a subclass of it")

    def _init_callback(self, callback: MaybeCallback, progress_bar: bool = False) -> BaseCallback:
        if self._aux is not None:
            if callback is None:
                callbacks: list[BaseCallback] = []
            elif isinstance(callback, list):
                callbacks = list(callback)
            elif isinstance(callback, BaseCallback):
                callbacks = [callback]
            else:
                callbacks = [ConvertCallback(callback)]
            callback = CallbackList([RolloutRecorder(), *callbacks])
        return super()._init_callback(callback, progress_bar)  # type: ignore[misc]

    def train(self) -> None:
        aux = self._aux
        if aux is None:
            return super().train()  # type: ignore[misc]
        aux.begin()
        aux.in_train = True
        try:
            super().train()  # type: ignore[misc]
        finally:
            aux.in_train = False
        if not aux.joint:
            aux.separate_updates(self.aux_options["gradient_steps"] or aux.rl_steps)
        aux.flush(self.logger)


class OffPolicyAuxMixin(AuxAlgorithmMixin):
    """Aux objectives for SB3's off-policy algorithms (SAC, TD3, DDPG, DQN): windows from the replay."""

    def _prepare_aux_setup(self) -> None:
        if "optimize_memory_usage" in self.replay_buffer_kwargs:  # SB3 passes it as its own argument too
            kwargs = dict(self.replay_buffer_kwargs)
            self.optimize_memory_usage = bool(kwargs.pop("optimize_memory_usage"))
            self.replay_buffer_kwargs = kwargs
        dict_obs = isinstance(self.observation_space, spaces.Dict)  # SB3 then picks its DictReplayBuffer
        if self.replay_buffer_class is None and getattr(self, "n_steps", 1) == 1 and not dict_obs:
            self.replay_buffer_class = WindowReplayBuffer
        elif self.replay_buffer_class is not None and not issubclass(self.replay_buffer_class, ReplayBuffer):
            raise ValueError(f"replay_buffer_class={self.replay_buffer_class.__name__} is not an SB3 ReplayBuffer")

    def _setup_model(self) -> None:
        super()._setup_model()
        if self._aux is not None:
            check_window_replay(self.replay_buffer)

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        aux = self._aux
        if aux is None:
            return super().train(gradient_steps, batch_size)  # type: ignore[misc]
        aux.begin()
        if not aux.joint:
            aux.separate_updates(self.aux_options["gradient_steps"] or gradient_steps)
        aux.in_train = True
        try:
            super().train(gradient_steps, batch_size)  # type: ignore[misc]
        finally:
            aux.in_train = False
        aux.flush(self.logger)
