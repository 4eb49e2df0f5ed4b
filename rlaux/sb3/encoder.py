"""The encoder the aux objectives shape: an SB3 features extractor seen through rlaux's encoder
interface, and the trainable MLP extractor the bridge puts in place of SB3's parameter-free one.

* :class:`FeaturesEncoder` wraps a policy's ``BaseFeaturesExtractor`` (no copy: the very module
  the policy uses) and applies SB3's own observation preprocessing (``preprocess_obs``: float
  cast, images / 255), so objectives call ``encoder(obs)`` on raw buffer observations exactly
  as the policy sees them. For Dict observation spaces it reads the objectives' flat view
  (:class:`rlaux.buffers.dict_obs.DictObsLayout`) and hands the extractor the dict of
  entries (SB3's ``CombinedExtractor`` or the user's). With ``detach_rl`` it also installs a
  forward hook on the extractor that detaches its output for every caller except the aux
  objectives, so the RL losses do not train it.
* :class:`MlpFeatures`: SB3's ``MlpPolicy`` uses ``FlattenExtractor``, which has no parameters,
  so an aux loss on it would shape nothing. :func:`aux_policy_kwargs` therefore moves the
  first hidden layer of the policy's MLP into a trainable ``MlpFeatures`` extractor (same
  width, same activation); the networks keep the depth and width of plain SB3. The same holds
  for ``MultiInputPolicy`` on Dict spaces without image entries, whose ``CombinedExtractor``
  only flattens and concatenates them: ``MlpFeatures`` concatenates them too, then trains.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, is_image_space, preprocess_obs
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor
from torch import nn
from torch.utils.hooks import RemovableHandle

from rlaux.buffers.dict_obs import dict_obs_layout


class MlpFeatures(BaseFeaturesExtractor):
    """Flatten -> [Linear + activation] per ``hidden`` width -> Linear(``features_dim``) + activation.

    Args:
        observation_space: a Box space (any shape; flattened), or a Dict of vector entries
            (each preprocessed by SB3 and flattened, concatenated in key order, as
            ``CombinedExtractor`` does).
        features_dim: output width.
        hidden: widths of extra layers before the output layer (default none).
        activation_fn: activation class (SB3 style, e.g. ``nn.Tanh``, ``nn.ReLU``).
    """

    def __init__(
        self,
        observation_space: gym.Space,
        features_dim: int = 64,
        hidden: Sequence[int] = (),
        activation_fn: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__(observation_space, features_dim)
        layers: list[nn.Module] = [nn.Flatten()]
        last = get_flattened_obs_dim(observation_space)
        for width in [*hidden, features_dim]:
            layers += [nn.Linear(last, int(width)), activation_fn()]
            last = int(width)
        self.net = nn.Sequential(*layers)

    def forward(self, observations: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        if isinstance(observations, dict):
            observations = torch.cat([observations[key].flatten(1) for key in self._observation_space.spaces], dim=1)
        return self.net(observations)


class FeaturesEncoder(nn.Module):
    """``obs -> features`` through an SB3 features extractor, with SB3's preprocessing.

    Args:
        extractor: the policy's features extractor (shared, not copied).
        observation_space: the algorithm's observation space (after SB3's env wrappers).
        normalize_images: the policy's ``normalize_images``.
    """

    def __init__(self, extractor: BaseFeaturesExtractor, observation_space: gym.Space, normalize_images: bool) -> None:
        super().__init__()
        self.extractor = extractor
        self.observation_space = observation_space
        self.normalize_images = bool(normalize_images)
        self.out_dim = int(extractor.features_dim)
        self.obs_layout = dict_obs_layout(observation_space)
        self._aux_calls = 0  # > 0 while an aux objective runs the extractor (see detach_rl)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Features of observations ``[N, *obs_shape]`` (Dict spaces: the flat view ``[N, size]``)."""
        observations = obs if self.obs_layout is None else self.obs_layout.unflatten(obs)
        self._aux_calls += 1
        try:
            return self.extractor(preprocess_obs(observations, self.observation_space, self.normalize_images))
        finally:
            self._aux_calls -= 1

    def detach_rl(self) -> RemovableHandle:
        """Make every call of the extractor that does not come through this encoder (i.e. the
        policy's own forward passes, hence the RL losses) return detached features. Returns the
        hook handle (``.remove()`` undoes it)."""

        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
            return None if self._aux_calls > 0 else output.detach()

        return self.extractor.register_forward_hook(hook)


def _default_of(cls: type, name: str) -> Any:
    param = inspect.signature(cls.__init__).parameters.get(name)
    return None if param is None else param.default


def _default_net_arch(policy_class: type) -> list[int] | dict[str, list[int]] | None:
    """SB3's default ``net_arch`` for an MLP policy of this family (None if unknown)."""
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.dqn.policies import DQNPolicy
    from stable_baselines3.sac.policies import SACPolicy
    from stable_baselines3.td3.policies import TD3Policy

    if issubclass(policy_class, ActorCriticPolicy):
        return {"pi": [64, 64], "vf": [64, 64]}
    if issubclass(policy_class, SACPolicy):
        return [256, 256]
    if issubclass(policy_class, TD3Policy):
        return [400, 300]
    if issubclass(policy_class, DQNPolicy):
        return [64, 64]
    return None


def has_parameter_free_extractor(policy_class: type, observation_space: gym.Space) -> bool:
    """Whether the policy's default extractor has no parameters for this space: ``FlattenExtractor``
    of a Box, or ``CombinedExtractor`` of a Dict without image entries (it only flattens them)."""
    default = _default_of(policy_class, "features_extractor_class")
    if default is FlattenExtractor:
        return isinstance(observation_space, gym.spaces.Box)
    if default is CombinedExtractor and isinstance(observation_space, gym.spaces.Dict):
        return not any(is_image_space(sub) for sub in observation_space.spaces.values())
    return False


def aux_policy_kwargs(policy_class: type, observation_space: gym.Space, policy_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``policy_kwargs`` with a trainable :class:`MlpFeatures` extractor in place of SB3's
    parameter-free ``FlattenExtractor`` (or ``CombinedExtractor`` of vector entries); unchanged
    when the user chose an extractor or the policy's default has parameters (``CnnPolicy``:
    ``NatureCNN``; ``MultiInputPolicy`` with image entries: ``CombinedExtractor``'s CNNs).

    The first hidden layer of ``net_arch`` (given or SB3's default) becomes the extractor:
    ``[a, *rest]`` -> ``MlpFeatures(features_dim=a)`` + ``net_arch=rest``; for a dict
    (``pi``/``vf``/``qf``) ``a`` is the first width of ``pi`` and every branch drops its first
    layer. An empty ``net_arch`` keeps a 64-wide extractor and linear heads.
    """
    kwargs = dict(policy_kwargs)
    if "features_extractor_class" in kwargs:
        return kwargs
    if not has_parameter_free_extractor(policy_class, observation_space):
        return kwargs
    activation = kwargs.get("activation_fn", _default_of(policy_class, "activation_fn") or nn.ReLU)
    net_arch = kwargs.get("net_arch", _default_net_arch(policy_class))
    features_dim = 64
    if isinstance(net_arch, dict):
        first = list(net_arch.get("pi", next(iter(net_arch.values()), [])))
        if first:
            features_dim = int(first[0])
            net_arch = {key: list(widths)[1:] for key, widths in net_arch.items()}
    elif isinstance(net_arch, (list, tuple)) and net_arch:
        features_dim = int(net_arch[0])
        net_arch = list(net_arch)[1:]
    kwargs["features_extractor_class"] = MlpFeatures
    kwargs["features_extractor_kwargs"] = {**kwargs.get("features_extractor_kwargs", {}),
                                           "features_dim": features_dim, "activation_fn": activation}
    if net_arch is not None:
        kwargs["net_arch"] = net_arch
    return kwargs
