"""Small helpers the objectives share: space checks, action features, batched encoding,
optional projections of large conv features and masked means."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlaux.encoders import layernorm_tanh_projection
from rlaux.feature_cache import active_cache, encode_in_one_pass

#: Feature sizes above this count as "conv features" for the ``proj_dim: null`` (auto) rule.
LARGE_FEATURES = 1024


def is_discrete(action_space: gym.Space) -> bool:
    return isinstance(action_space, gym.spaces.Discrete)


def action_dim(action_space: gym.Space) -> int:
    """Size of the action features: ``n`` (one-hot) for Discrete, the flat size for Box."""
    if is_discrete(action_space):
        return int(action_space.n)
    return int(np.prod(action_space.shape))


def action_features(action: torch.Tensor, action_space: gym.Space) -> torch.Tensor:
    """Float action features: one-hot [..., n] for Discrete (int64 [...]), flattened [..., A]
    for Box ([..., *shape])."""
    if is_discrete(action_space):
        return F.one_hot(action.long(), int(action_space.n)).float()
    lead = action.shape[: action.dim() - len(action_space.shape)]
    return action.float().reshape(*lead, -1)


def mask_steps(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` with entries at masked steps (``mask == 0``, mask [B, T], x [B, T, ...]) replaced
    by zeros, so arbitrary values there cannot reach any computation."""
    keep = (mask > 0).reshape(*mask.shape, *([1] * (x.dim() - mask.dim())))
    return torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the entries where ``mask`` is 1 (0 when none is); masked entries
    never contribute, whatever their value."""
    keep = mask > 0
    total = torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum()
    return total / keep.sum().clamp(min=1).to(x.dtype)


def encode(encoder: nn.Module, obs: torch.Tensor, obs_ndim: int, grad: bool = True) -> torch.Tensor:
    """Encode observations with any number of leading batch dims in ONE forward pass:
    obs [*lead, *obs_shape] (``obs_ndim = len(obs_shape)``) -> features [*lead, F];
    under ``no_grad`` unless ``grad``. Inside a :func:`~rlaux.feature_cache.sharing_encoder_passes`
    scope (every aux-suite loss call opens one) frames this network already encoded in the scope
    are read from its :class:`~rlaux.feature_cache.FeatureCache` instead of encoded again."""
    cache = active_cache()
    if cache is None:
        return encode_in_one_pass(encoder, obs, obs_ndim, grad)
    return cache.encode(encoder, obs, obs_ndim, grad)


def make_projection(feature_dim: int, proj_dim: int | None, default_dim: int = 50) -> tuple[nn.Module, int]:
    """The optional projection applied to encoder features before an objective's latent model.

    Args:
        proj_dim: ``None`` = auto: large (conv) features (> 1024) are projected to
            ``default_dim`` with DrQ-v2's trunk Linear + LayerNorm + Tanh
            (:func:`~rlaux.encoders.layernorm_tanh_projection`), smaller (MLP
            encoder latents) are used as they are; ``0`` = never project; ``> 0`` = always
            project to that size.

    Returns:
        (module, output size)
    """
    if proj_dim is None:
        proj_dim = default_dim if feature_dim > LARGE_FEATURES else 0
    if proj_dim < 0:
        raise ValueError(f"proj_dim={proj_dim} must be null (auto), 0 (none) or a positive size")
    if proj_dim == 0:
        return nn.Identity(), feature_dim
    return layernorm_tanh_projection(feature_dim, proj_dim), proj_dim


def latent_action_dim(a_dim: int) -> int:
    """TACO's latent action size heuristic: floor(1.25 * a_dim) + 1."""
    return int(math.floor(1.25 * a_dim)) + 1
