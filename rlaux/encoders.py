"""Observation encoders shared by an agent and its auxiliary objectives.

Every encoder maps a batch of observations [B, *obs_shape] to features [B, out_dim].
Pixel encoders take uint8 images and scale them themselves; augmentation (random shift)
is a separate module so that callers decide when to apply it.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ENCODER_KINDS = ("auto", "mlp", "flat", "drq", "nature")

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh, "gelu": nn.GELU}


class HiddenReLU(nn.ReLU):
    """ReLU for a hidden layer that directly follows a Linear, LayerNorm or convolution: it
    overwrites its input (their backward passes do not read their outputs), which saves writing
    a fresh activation-sized tensor (on CPU ~10 % of a [256, 256] SAC update;
    ``benchmarks/RESULTS.md``). Inputs that are views (a Linear on a 3-D batch returns a view of
    a 2-D product) are not overwritten: autograd would have to copy the whole base tensor back.
    Same values as ``nn.ReLU``. Under ``torch.compile`` (``compile=true``) it runs out of place:
    Inductor fuses the activation itself, and ``_is_view`` cannot be traced."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x, inplace=not torch.compiler.is_compiling() and not x._is_view())


class HiddenELU(nn.ELU):
    """ELU with :class:`HiddenReLU`'s in-place rule (same values as ``nn.ELU``; in place, the
    backward pass reads exp(x) as output + 1, equal to ``nn.ELU``'s gradient up to rounding)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(x, self.alpha, inplace=not torch.compiler.is_compiling() and not x._is_view())


def hidden_activation(name: str) -> nn.Module:
    """The activation module of a hidden layer that follows a Linear or LayerNorm: ReLU and
    ELU overwrite their (non-view) input, the others are ``ACTIVATIONS[name]()``."""
    return {"relu": HiddenReLU, "elu": HiddenELU}.get(name, ACTIVATIONS[name])()


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    activation: str = "relu",
    layernorm: bool = False,
) -> nn.Sequential:
    """A plain MLP: Linear (+LayerNorm) + activation per hidden layer, then a linear output."""
    layers: list[nn.Module] = []
    last = in_dim
    for width in hidden:
        layers.append(nn.Linear(last, width))
        if layernorm:
            layers.append(nn.LayerNorm(width))
        layers.append(hidden_activation(activation))
        last = width
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


def run_sequential(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` for an internal, hook-free ``nn.Sequential``, calling each layer's ``forward``
    directly: the same computation without ``Module.__call__``'s per-layer overhead, a visible
    part of a small network's update on CPU (and of an objective's H-step latent rollout)."""
    for layer in net:
        x = layer.forward(x)
    return x


def orthogonal_init(module: nn.Module, gain: float = 1.0) -> None:
    """Orthogonal weights and zero biases for every Linear/Conv layer (TCRL, DrQ-v2, PPO)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.orthogonal_(m.weight, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def layernorm_tanh_projection(in_dim: int, out_dim: int) -> nn.Sequential:
    """``Linear(in_dim, out_dim) + LayerNorm + Tanh`` with orthogonal weights and zero bias.

    The one builder of the projection that sits between wide encoder features and a head
    (DrQ-v2's actor/critic trunk, the objectives' projections, TACO's state projection)."""
    projection = nn.Sequential(nn.Linear(in_dim, out_dim), nn.LayerNorm(out_dim), nn.Tanh())
    orthogonal_init(projection)
    return projection


class MLPEncoder(nn.Module):
    """State encoder: flat vector -> MLP -> latent of size ``out_dim``."""

    def __init__(
        self,
        obs_dim: int,
        out_dim: int = 50,
        hidden: Sequence[int] = (256, 256),
        activation: str = "elu",
        layernorm: bool = False,
    ) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.net = mlp(obs_dim, hidden, out_dim, activation, layernorm)
        orthogonal_init(self.net)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.float().flatten(1))


class FlatEncoder(nn.Module):
    """No learned encoder: the flattened observation is the feature vector (``encoder.kind=flat``).

    What Stable-Baselines3's ``FlattenExtractor`` and CleanRL's state-based scripts do, so the
    actor and critic MLPs read the raw state. It has no parameters, so auxiliary objectives
    (which exist to shape a learned encoder) cannot be combined with it.
    """

    def __init__(self, obs_dim: int) -> None:
        super().__init__()
        self.out_dim = obs_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float().flatten(1)


def _scaled(obs: torch.Tensor, scale: float, shift: float) -> torch.Tensor:
    """``obs.float() / scale - shift``, in place on the float copy of integer images (one
    image-sized allocation instead of three); float inputs are never modified."""
    x = obs.float()
    x = x.div_(scale) if x is not obs else x / scale
    return x.sub_(shift) if shift else x


class DrQEncoder(nn.Module):
    """DrQ-v2 conv encoder: 4 conv layers of 32 channels (first stride 2), flattened.

    For 84x84 inputs the output is 32*35*35 = 39200 features. Input is uint8 in [0, 255],
    scaled to [-0.5, 0.5]. The ReLUs run in place (:class:`HiddenReLU`: a convolution's backward
    does not read its output; ~6 % of a DDPG pixel update on CPU).
    """

    def __init__(self, obs_shape: Sequence[int], channels: int = 32) -> None:
        super().__init__()
        c = obs_shape[0]
        self.convnet = nn.Sequential(
            nn.Conv2d(c, channels, 3, stride=2), HiddenReLU(),
            nn.Conv2d(channels, channels, 3, stride=1), HiddenReLU(),
            nn.Conv2d(channels, channels, 3, stride=1), HiddenReLU(),
            nn.Conv2d(channels, channels, 3, stride=1), HiddenReLU(),
        )
        orthogonal_init(self.convnet, nn.init.calculate_gain("relu"))
        with torch.no_grad():
            self.out_dim = int(self.convnet(torch.zeros(1, *obs_shape)).numel())

    #: Images per forward pass when no gradient is recorded, on CPU. Larger no-grad batches
    #: (target encoders over H future frames, contrastive keys) are encoded in chunks: an
    #: activation of 320 images is ~70 MB, above glibc's 32 MB mmap threshold, so every
    #: such tensor is mmapped and page-faulted afresh (measured: ~40% of a TCRL pixel update
    #: spent in the kernel). Results are identical; per-image convolutions do not interact.
    no_grad_chunk = 64

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.shape[0] > self.no_grad_chunk and obs.device.type == "cpu" and not torch.is_grad_enabled():
            return torch.cat([self.forward(chunk) for chunk in obs.split(self.no_grad_chunk)])
        return self.convnet(_scaled(obs, 255.0, 0.5)).flatten(1)


class NatureCNN(nn.Module):
    """Nature-DQN conv torso (Mnih et al. 2015) followed by a 512-unit ReLU layer."""

    def __init__(self, obs_shape: Sequence[int], out_dim: int = 512) -> None:
        super().__init__()
        c = obs_shape[0]
        self.convnet = nn.Sequential(
            nn.Conv2d(c, 32, 8, stride=4), HiddenReLU(),
            nn.Conv2d(32, 64, 4, stride=2), HiddenReLU(),
            nn.Conv2d(64, 64, 3, stride=1), HiddenReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_flat = int(self.convnet(torch.zeros(1, *obs_shape)).shape[1])
        self.fc = nn.Sequential(nn.Linear(n_flat, out_dim), HiddenReLU())
        orthogonal_init(self, nn.init.calculate_gain("relu"))
        self.out_dim = out_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convnet(_scaled(obs, 255.0, 0.0)))


def head_trunk(encoder: nn.Module, trunk_dim: int, latent_activation: str | None = None) -> tuple[nn.Module, int]:
    """What sits between the shared encoder and an agent's heads, and its output width.

    The one rule, by encoder:

    * :class:`MLPEncoder`: its latent is linear; ``latent_activation`` (an :data:`ACTIVATIONS`
      name) is applied to it, None leaves it as it is (identity);
    * :class:`FlatEncoder` (the raw state) and :class:`NatureCNN` (already ends in ReLU(512)):
      identity;
    * any other encoder (the wide :class:`DrQEncoder` conv features): DrQ-v2's
      :func:`layernorm_tanh_projection` to ``trunk_dim``.

    Agents choose ``latent_activation``: sac and ddpg None (TCRL's linear latent), ppo and dqn
    the encoder's activation (so an MLP encoder with a linear latent is one more hidden layer).
    """
    feat = int(encoder.out_dim)
    if isinstance(encoder, MLPEncoder):
        return (nn.Identity() if latent_activation is None else ACTIVATIONS[latent_activation]()), feat
    if isinstance(encoder, (FlatEncoder, NatureCNN)):
        return nn.Identity(), feat
    return layernorm_tanh_projection(feat, trunk_dim), trunk_dim


class RandomShift(nn.Module):
    """DrQ random-shift augmentation: replicate-pad by ``pad`` and crop back at a random
    offset per sample, implemented with one bilinear ``grid_sample`` (as DrQ-v2)."""

    def __init__(self, pad: int = 4) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.pad == 0:
            return x
        n, _, h, w = x.shape
        assert h == w, "RandomShift expects square images"
        dtype = x.dtype
        x = F.pad(x.float(), (self.pad,) * 4, mode="replicate")
        eps = 1.0 / (h + 2 * self.pad)
        arange = torch.linspace(-1.0 + eps, 1.0 - eps, h + 2 * self.pad, device=x.device)[:h]
        arange = arange.unsqueeze(0).repeat(h, 1).unsqueeze(2)
        base_grid = torch.cat([arange, arange.transpose(1, 0)], dim=2).unsqueeze(0).repeat(n, 1, 1, 1)
        shift = torch.randint(0, 2 * self.pad + 1, size=(n, 1, 1, 2), device=x.device, dtype=torch.float32)
        shift *= 2.0 / (h + 2 * self.pad)
        out = F.grid_sample(x, base_grid + shift, padding_mode="zeros", align_corners=False)
        return out.to(dtype) if dtype == torch.uint8 else out


def is_image_space(space: gym.Space) -> bool:
    """True for uint8 Box spaces of rank 3 (channel-first images, possibly frame-stacked)."""
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


def make_encoder(
    obs_space: gym.Space,
    kind: str = "auto",
    latent_dim: int = 50,
    hidden: Sequence[int] = (256, 256),
    activation: str = "elu",
) -> nn.Module:
    """Build the shared encoder for ``obs_space``.

    Args:
        kind: "mlp", "flat" (no encoder: the flattened observation), "drq" (DMC pixels),
            "nature" (Atari) or "auto": mlp for vectors, drq for 3-channel-multiple images,
            nature for grayscale stacks.
        latent_dim, hidden, activation: MLP encoder settings (ignored by conv encoders).
    """
    if kind == "auto":
        if not is_image_space(obs_space):
            kind = "mlp"
        else:
            kind = "drq" if obs_space.shape[0] % 3 == 0 else "nature"  # RGB stacks vs gray stacks
    if kind == "mlp":
        return MLPEncoder(int(np.prod(obs_space.shape)), latent_dim, hidden, activation)
    if kind == "flat":
        return FlatEncoder(int(np.prod(obs_space.shape)))
    if kind == "drq":
        return DrQEncoder(obs_space.shape)
    if kind == "nature":
        return NatureCNN(obs_space.shape)
    raise ValueError(f"Unknown encoder kind {kind!r}; valid choices: {', '.join(ENCODER_KINDS)}")
