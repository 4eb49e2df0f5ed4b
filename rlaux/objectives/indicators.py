"""Indicator ("reward") functions for proto-value networks (Farebrother et al. 2023).

An indicator module maps raw observations [B, *obs_shape] to ``(rewards, qr_loss)``:
``rewards`` [B, N] in {0, 1} (float, no gradient) and a scalar loss that calibrates any
learnable thresholds (0 when there are none). Any module with that interface can replace
``ProtoValueObjective.indicator`` (tests use this to plant known indicators).

* :class:`RNDIndicator` (``indicator=rnd``): frozen random networks with N outputs and a
  learned bias per output; ``r_i(x) = 1[out_i(x) + b_i > 0]``; the biases are trained by the
  quantile (pinball) loss ``L_QR = mean[y * ((1 - p) - 1[y < 0])]``, ``y = out(x) + b``, whose
  minimiser makes each indicator fire on a fraction ``p`` of the states it is trained on.
  Images: ``num_nets`` Nature-DQN conv torsos (channels 32/64/64 x ``width``) evaluated as one
  grouped convolution, each followed by a linear map to its share of the N outputs and a
  final ReLU (PVN's ``StackedNatureDqnIndicator`` without the 512-unit hidden layer). Flat
  states: ``num_nets`` random ReLU MLPs, also batched, with a linear output (rlaux's choice;
  PVN has no state variant). ``final_relu`` overrides either default: an output that the
  final ReLU zeroes on more than a fraction 1 - p of states cannot be calibrated (it then
  fires on fewer states than p).
* :class:`HashIndicator` (``indicator=hash``): Carter-Wegman universal hashing of the raw
  observation, ``h_i(x) = ((sum_j a_ij x_j + c_i) mod P) mod M`` with the Mersenne prime
  P = 2^13 - 1 and M = round(1/p) bins, firing when ``h_i(x) == 0``. ``x`` is the uint8 bytes
  of pixel observations, or ``floor(x / resolution) mod P`` for float states (quantised
  first). Computed exactly in float64 (all sums stay far below 2^53). No learned part.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rlaux.encoders import is_image_space

MERSENNE_13 = 8191  # 2^13 - 1


class RNDIndicator(nn.Module):
    """Frozen random networks + learned per-output thresholds calibrated by quantile regression."""

    def __init__(
        self,
        obs_space: gym.Space,
        num_tasks: int,
        target_rate: float,
        num_nets: int = 10,
        width: float = 1.0,
        hidden: tuple[int, ...] = (64, 64),
        final_relu: bool | None = None,
    ) -> None:
        super().__init__()
        self.num_tasks = num_tasks
        self.target_rate = float(target_rate)
        self.image = is_image_space(obs_space)
        self.final_relu = self.image if final_relu is None else bool(final_relu)
        G = max(1, min(int(num_nets), num_tasks))
        self.G = G
        self.per_net = math.ceil(num_tasks / G)
        if self.image:
            c = obs_space.shape[0]
            c1, c2, c3 = (max(1, int(round(w * width))) for w in (32, 64, 64))
            # The first layer is not grouped: each net's c1 filters see every input channel.
            self.convs = nn.Sequential(
                nn.Conv2d(c, c1 * G, 8, stride=4), nn.ReLU(),
                nn.Conv2d(c1 * G, c2 * G, 4, stride=2, groups=G), nn.ReLU(),
                nn.Conv2d(c2 * G, c3 * G, 3, stride=1, groups=G), nn.ReLU(),
            )
            with torch.no_grad():
                flat = self.convs(torch.zeros(1, *obs_space.shape)).numel() // G
            dims = [flat, self.per_net]
        else:
            flat = int(np.prod(obs_space.shape))
            dims = [flat, *[int(h) for h in hidden], self.per_net]
        # Batched ("stacked") linear layers [G, in, out], PyTorch's default Linear init.
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(d_in)
            self.weights.append(nn.Parameter(torch.empty(G, d_in, d_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(G, 1, d_out).uniform_(-bound, bound)))
        self.requires_grad_(False)  # frozen; only the thresholds below learn
        self.bias = nn.Parameter(torch.zeros(num_tasks))

    @torch.no_grad()
    def outputs(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw random-network outputs [B, N] (before the learned thresholds)."""
        B = obs.shape[0]
        if self.image:
            x = self.convs(obs.float() / 255.0)  # [B, c3*G, h, w]
            x = x.reshape(B, self.G, -1).transpose(0, 1)  # [G, B, flat]
        else:
            x = obs.float().reshape(B, -1).expand(self.G, B, -1)  # [G, B, D]
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < last or self.final_relu:
                x = torch.relu(x)
        out = x.transpose(0, 1).reshape(B, self.G * self.per_net)
        return out[:, : self.num_tasks]

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.outputs(obs) + self.bias
        p = self.target_rate
        qr_loss = (y * ((1.0 - p) - (y < 0).float())).mean()
        return (y > 0).float().detach(), qr_loss


class HashIndicator(nn.Module):
    """Universal-hash indicators firing on about a fraction ``target_rate`` of distinct inputs."""

    def __init__(self, obs_space: gym.Space, num_tasks: int, target_rate: float, resolution: float = 0.1,
                 seed: int = 0) -> None:
        super().__init__()
        self.image = obs_space.dtype == np.uint8
        self.resolution = float(resolution)
        self.bins = max(1, int(round(1.0 / float(target_rate))))
        dim = int(np.prod(obs_space.shape))
        gen = torch.Generator().manual_seed(int(seed))
        # Regenerated from the seed, so not stored in checkpoints (can be tens of MB for pixels).
        a = torch.randint(1, MERSENNE_13, (dim, num_tasks), generator=gen).double()
        self.register_buffer("a", a, persistent=False)
        self.register_buffer("c", torch.randint(0, MERSENNE_13, (num_tasks,), generator=gen).double(), persistent=False)

    @torch.no_grad()
    def hashes(self, obs: torch.Tensor) -> torch.Tensor:
        """Hash values [B, N] in 0..bins-1."""
        x = obs.reshape(obs.shape[0], -1)
        if self.image:
            x = x.double()
        else:
            x = torch.remainder(torch.floor(x.double() / self.resolution), MERSENNE_13)
        h = torch.remainder(x @ self.a + self.c, MERSENNE_13)
        return torch.remainder(h, self.bins)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = (self.hashes(obs) == 0).float()
        return r, torch.zeros((), device=obs.device)
