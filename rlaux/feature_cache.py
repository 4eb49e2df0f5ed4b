"""Encode once per update: encoder features shared by every consumer of the same frames.

Within one aux-suite loss call several objectives (and their targets) encode overlapping
frames of the same window batch with the same network, e.g. ``aux=[tcrl,predictive]``: TCRL
encodes o_t, predictive o_t and o_{t+1}. :func:`sharing_encoder_passes` opens a scope in which
:func:`rlaux.objectives.common.encode` goes through one :class:`FeatureCache`, so each distinct

    (frames, augmentation draw, network and parameter version)

is encoded once and later requests read the stored features (detached where they ask for no
gradient).

How requests are matched:

* *Frames.* A request ``obs [B, *lead, *obs_shape]`` is split into blocks of B frames, one per
  index of the lead dims after the first (``batch.obs[:, :2]`` = the blocks of steps 0 and 1).
  A block is named by where its frames sit in memory (storage, offset, strides, dtype) and by
  the storage's version counter, so ``batch.obs[:, 0]`` and step 0 of ``batch.obs[:, :2]`` are
  the same block, and a tensor written in place is a new one. The cache keeps every requested
  tensor alive, so its memory cannot be reused by another tensor while the cache lives.
* *Augmentation draw.* An augmented view is a new tensor, hence its own blocks: two requests
  share an augmentation only when they pass the same augmented tensor. (No objective shares
  its draws with another today, so sharing changes no number for pixel augmentation.)
* *Network and parameters.* The module itself and the version counters of its parameters: an
  optimiser step between two requests (in place, so it bumps the versions) makes them miss.
* *Gradient.* A request with gradient is served only by features that carry one (otherwise
  the blocks are encoded again, with gradient, and replace the stored ones); a request
  without gradient reads stored features detached.

Missing blocks of one request are encoded in one forward pass; a request that misses every
block is the uncached pass exactly (same batch, same numbers), so a single objective computes
what it computed before. Shared features sum their consumers' gradients before one backward
pass through the encoder (the same gradient up to the order of floating-point additions).

Under ``torch.compile`` tracing the cache is bypassed (the compiler sees plain passes).

The agents' RL passes need no cache: each update already encodes each of its inputs once
(sac/ddpg: the augmented o_t, whose features the actor reads detached, and the augmented
o_{t+n}; dqn: o_t online, o_{t+n} online and target), and in ``separate`` aux mode they run
after the aux optimiser step, so they could not reuse the aux passes (other parameters).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import torch
from torch import nn

#: the cache of the innermost :func:`sharing_encoder_passes` scope, or None outside any.
_ACTIVE: ContextVar[FeatureCache | None] = ContextVar("rlaux_feature_cache", default=None)


def encode_in_one_pass(encoder: nn.Module, obs: torch.Tensor, obs_ndim: int, grad: bool = True) -> torch.Tensor:
    """Encode observations with any number of leading batch dims in ONE forward pass:
    obs [*lead, *obs_shape] (``obs_ndim = len(obs_shape)``) -> features [*lead, F];
    under ``no_grad`` unless ``grad``."""
    lead = obs.shape[: obs.dim() - obs_ndim]
    flat = obs.reshape(-1, *obs.shape[obs.dim() - obs_ndim :])
    if grad:
        z = encoder(flat)
    else:
        with torch.no_grad():
            z = encoder(flat)
    return z.reshape(*lead, z.shape[-1])


@dataclass
class _Entry:
    """Stored features [B, F] of one frame block; ``version`` detects an in-place change."""

    features: torch.Tensor
    has_grad: bool
    version: int


class FeatureCache:
    """Encoder features by (frame block, network and parameter version) for one scope.

    Use it through :func:`sharing_encoder_passes` (``encode`` then finds it); :meth:`encode`
    may also be called directly. ``passes`` and ``frames_encoded`` count the forward passes run
    and the frames they encoded (tests and benchmarks read them).
    """

    def __init__(self) -> None:
        self._entries: dict[tuple, _Entry] = {}
        self._alive: list[object] = []  # requested tensors and networks: their ids and memory stay unique
        self.passes = 0
        self.frames_encoded = 0

    def encode(self, encoder: nn.Module, obs: torch.Tensor, obs_ndim: int, grad: bool = True) -> torch.Tensor:
        """Features [*lead, F] of ``obs`` [*lead, *obs_shape], as :func:`encode_in_one_pass`
        would return them, with every block already encoded in this scope read from the cache."""
        lead = tuple(obs.shape[: obs.dim() - obs_ndim])
        if not lead:
            return encode_in_one_pass(encoder, obs, obs_ndim, grad)
        need_grad = grad and torch.is_grad_enabled()
        network = self._network_key(encoder)
        keys = [(network, block) for block in self._block_keys(obs, obs_ndim)]
        found = [self._usable(self._entries.get(key), need_grad) for key in keys]
        missing = [i for i, entry in enumerate(found) if entry is None]
        self._alive += [obs, encoder]
        batch = lead[0]
        if len(missing) == len(keys):  # nothing shared: the uncached pass itself
            features = self._run(encoder, obs, obs_ndim, need_grad, frames=obs.shape[: len(lead)].numel())
            self._store(keys, features.reshape(batch, len(keys), -1), need_grad)
            return features
        if missing:
            blocks = obs.reshape(batch, len(keys), *obs.shape[len(lead):])[:, missing]
            fresh = self._run(encoder, blocks, obs_ndim, need_grad, frames=batch * len(missing))
            self._store([keys[i] for i in missing], fresh, need_grad)
            found = [self._usable(self._entries[key], need_grad) for key in keys]
        parts = [entry.features if need_grad or not entry.has_grad else entry.features.detach() for entry in found]
        features = parts[0] if len(parts) == 1 else torch.stack(parts, dim=1)
        return features.reshape(*lead, features.shape[-1])

    def _run(self, encoder: nn.Module, obs: torch.Tensor, obs_ndim: int, grad: bool, frames: int) -> torch.Tensor:
        self.passes += 1
        self.frames_encoded += int(frames)
        return encode_in_one_pass(encoder, obs, obs_ndim, grad)

    def _store(self, keys: list[tuple], features: torch.Tensor, has_grad: bool) -> None:
        """``features`` [B, len(keys), F]: block i's features under ``keys[i]``."""
        for i, key in enumerate(keys):
            block = features[:, i]
            self._entries[key] = _Entry(block, has_grad, block._version)

    @staticmethod
    def _usable(entry: _Entry | None, need_grad: bool) -> _Entry | None:
        """``entry`` when it can serve the request (unchanged, and with a gradient if one is needed)."""
        if entry is None or entry.features._version != entry.version or (need_grad and not entry.has_grad):
            return None
        return entry

    @staticmethod
    def _network_key(encoder: nn.Module) -> tuple:
        return (id(encoder), *(p._version for p in encoder.parameters()))

    @staticmethod
    def _block_keys(obs: torch.Tensor, obs_ndim: int) -> list[tuple]:
        """One key per block of B frames: ``obs[:, i, j, ...]`` for every index of the lead
        dims after the first, named by its place in memory and the storage's version."""
        n_lead = obs.dim() - obs_ndim
        strides = obs.stride()
        frame = (obs.dtype, obs.device, obs.shape[0], strides[0], tuple(obs.shape[n_lead:]), strides[n_lead:])
        storage = (obs.untyped_storage().data_ptr(), obs._version)
        offsets = [obs.storage_offset() + sum(i * s for i, s in zip(index, strides[1:n_lead]))
                   for index in itertools.product(*(range(n) for n in obs.shape[1:n_lead]))]
        return [(storage, offset, frame) for offset in offsets]


def active_cache() -> FeatureCache | None:
    """The cache of the current :func:`sharing_encoder_passes` scope (None outside one and
    while ``torch.compile`` traces)."""
    if torch.compiler.is_compiling():
        return None
    return _ACTIVE.get()


@contextlib.contextmanager
def _scope() -> Iterator[FeatureCache]:
    outer = _ACTIVE.get()
    if outer is not None:  # nested: share the outer scope's cache
        yield outer
        return
    cache = FeatureCache()
    token = _ACTIVE.set(cache)
    try:
        yield cache
    finally:
        _ACTIVE.reset(token)


def sharing_encoder_passes(enabled: bool = True) -> contextlib.AbstractContextManager[FeatureCache | None]:
    """A scope in which :func:`rlaux.objectives.common.encode` shares encoder passes through one
    :class:`FeatureCache` (yielded; a nested scope yields the outer one). With ``enabled=False``
    or while ``torch.compile`` traces it does nothing and yields None."""
    if not enabled or torch.compiler.is_compiling():
        return contextlib.nullcontext()
    return _scope()
