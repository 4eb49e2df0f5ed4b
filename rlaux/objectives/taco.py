"""TACO: temporal action-driven contrastive learning (Zheng et al. 2023, ``FrankZheng2022/TACO``).

For windows (s_t, a_{t..t+K-1}, s_{t+K}) with K = ``horizon`` (3)::

    q_i  = h(f(aug(s_t^i)))                        # anchor, with gradient
    U_i  = psi(a_{t..t+K-1}^i)                     # action-sequence code
    g_i  = G([q_i, U_i])
    k_j  = stopgrad(h(f(aug(s_{t+K}^j))))          # key: same online f, h under no_grad
    L_TACO = CE(g W k^T - rowmax, labels = diagonal)           # in-batch negatives
    L_CURL = CE(q W p^T - rowmax, diagonal),  p_j = stopgrad(h(f(aug'(s_t^j))))   (curl)
    L_rew  = MSE(R([q_i, U_i]), sum_{l<K} gamma^l r_{t+l})                          (reward)
    L = L_TACO + L_CURL + L_rew

Networks (TACO's): h = ``proj_s`` Linear(F -> 50) + LayerNorm + Tanh (orthogonal weights and
zero bias, as TACO's ``weight_init``); psi = per-step tokenizer Linear(a -> 64) + Tanh +
Linear(64 -> d_u), d_u = floor(1.25 a_dim) + 1 (Discrete actions: an ``nn.Embedding(n, 64)`` in
place of the first Linear, i.e. a Linear on the one-hot), then the K tokens concatenated ->
Linear(K d_u -> K d_u) + LayerNorm + Tanh; G = Linear(50 + K d_u -> 1024) + ReLU + Linear(1024
-> 50); R the same with one output; W (50 x 50, uniform [0, 1) init as TACO/CURL) shared by the
TACO and CURL logits. No temperature, no L2 normalisation.

rlaux specifics:

* Masks: a window counts only if its K-step future is in the same episode (``mask[:, K-1]
  == 1``). Such windows are dropped both as anchors (rows) and as negative keys (columns),
  and every mean is over the valid windows; actions at masked steps are zeroed first, so
  anything a masked step holds cannot change the loss. The reward target is the K-step
  discounted sum of window rewards (upstream: the critic's n-step sum, n = 3 = K by default).
* ``key_encoder``: ``online_nograd`` (TACO: the *same* encoder and projection under no_grad,
  despite upstream's ``ema`` flag name) or ``ema`` (CURL's original: a momentum copy of the
  encoder and projection, ``tau`` 0.05; the copy lives in this objective).
* ``augment``: DrQ random shift (pad 4), an independent draw for the anchor, the CURL
  positive and the key; applied only to uint8 image observations (ignored for states). For
  state observations without augmentation the CURL term is instance discrimination.
* The no-grad views are encoded together in one forward pass.
* Gradient routing: TACO lets the critic train the encoder too (``paper_detach_rl=False``).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import nn

from rlaux.encoders import RandomShift, is_image_space, layernorm_tanh_projection, orthogonal_init
from rlaux.objectives.base import AuxObjective, ObjectiveConfig, register_objective
from rlaux.objectives.common import (
    action_dim,
    action_features,
    encode,
    is_discrete,
    latent_action_dim,
    mask_steps,
    masked_mean,
)
from rlaux.objectives.targets import Target, check_choice

KEY_ENCODERS = ("online_nograd", "ema")


@dataclass
class TACOConfig(ObjectiveConfig):
    """Options of ``aux=taco`` (defaults: TACO's ``cfgs/agent/taco.yaml``).

    Attributes:
        horizon: K (``multistep``), action-sequence length.
        latent_dim: size of ``proj_s`` and of G's output (feature_dim in TACO).
        hidden: hidden width of G and of the reward head.
        action_latent_dim: d_u per action token; null = floor(1.25 * a_dim) + 1.
        action_hidden: hidden width of the per-step action tokenizer.
        curl: add the CURL term.
        reward: add the reward-prediction term.
        gamma: discount of the K-step reward target.
        key_encoder: online_nograd | ema (see the module docstring).
        tau: EMA rate of the key encoder (``key_encoder=ema``; CURL 0.05).
        augment: random shift of image observations (ignored for state observations).
        pad: random-shift padding.
    """

    horizon: int = 3
    latent_dim: int = 50
    hidden: int = 1024
    action_latent_dim: int | None = None
    action_hidden: int = 64
    curl: bool = True
    reward: bool = True
    gamma: float = 0.99
    key_encoder: str = "online_nograd"
    tau: float = 0.05
    augment: bool = True
    pad: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("aux.taco.key_encoder", self.key_encoder, KEY_ENCODERS)
        if int(self.horizon) < 1:
            raise ValueError(f"aux.taco.horizon={self.horizon} must be an integer >= 1")
        if not 0.0 < float(self.tau) <= 1.0:
            raise ValueError(f"aux.taco.tau={self.tau} must be in (0, 1]")


class ActionSequenceEncoder(nn.Module):
    """TACO's ``ActionEncoding``: per-step tokens, concatenated, then Linear + LayerNorm + Tanh.

    Input: Box actions [B, K, A] (float) or Discrete actions [B, K] (int64); output [B, K * d_u].
    """

    def __init__(self, action_space: gym.Space, horizon: int, d_u: int, hidden: int = 64) -> None:
        super().__init__()
        self.discrete = is_discrete(action_space)
        first: nn.Module = (nn.Embedding(int(action_space.n), hidden) if self.discrete
                            else nn.Linear(action_dim(action_space), hidden))
        self.step = nn.Sequential(first, nn.Tanh(), nn.Linear(hidden, d_u))
        self.seq = nn.Sequential(nn.Linear(horizon * d_u, horizon * d_u), nn.LayerNorm(horizon * d_u), nn.Tanh())
        self.action_space = action_space

    def forward(self, actions: torch.Tensor) -> torch.Tensor:
        x = actions.long() if self.discrete else action_features(actions, self.action_space)
        tokens = self.step(x)  # [B, K, d_u]
        return self.seq(tokens.flatten(1))


#: Max-subtracted logits are floored here: exp(-60) ~ 1e-26, so the loss changes by less than
#: B * 1e-26, but no softmax entry is denormal (denormals made CPU updates ~5x slower once
#: the contrastive task is learnt and the logits are sharp).
LOGIT_FLOOR = -60.0


def infonce(logits: torch.Tensor, valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy with positives on the diagonal of ``logits`` [B, B] (max-subtracted rows,
    CURL's trick), restricted to valid rows (anchors) and columns (keys); returns (loss, accuracy)."""
    B = logits.shape[0]
    labels = torch.arange(B, device=logits.device)
    if valid is not None:  # finite fill: stays NaN-free even when no key is valid
        logits = logits.masked_fill(~valid[None, :], torch.finfo(logits.dtype).min / 4)
    logits = (logits - logits.max(dim=1, keepdim=True).values.detach()).clamp(min=LOGIT_FLOOR)
    if valid is not None:  # invalid keys get exactly zero probability
        logits = logits.masked_fill(~valid[None, :], -1e4)
    per_row = F.cross_entropy(logits, labels, reduction="none")
    correct = (logits.argmax(dim=1) == labels).float()
    if valid is None:
        return per_row.mean(), correct.mean()
    return masked_mean(per_row, valid), masked_mean(correct, valid)


@register_objective
class TACOObjective(AuxObjective):
    """TACO's InfoNCE over (state, action sequence) -> future state, plus CURL and reward terms."""

    name = "taco"
    config_class = TACOConfig
    paper_detach_rl = False
    renamed_state_keys = {"key_encoder_net.": "target.encoder.", "key_proj.": "target.head."}
    cfg: TACOConfig

    def __init__(self, cfg: TACOConfig, feature_dim: int, obs_space: gym.Space, action_space: gym.Space) -> None:
        super().__init__(cfg, feature_dim, obs_space, action_space)
        self.obs_ndim = len(obs_space.shape)
        K, d = int(cfg.horizon), int(cfg.latent_dim)
        d_u = int(cfg.action_latent_dim) if cfg.action_latent_dim else latent_action_dim(action_dim(action_space))
        self.proj_s = layernorm_tanh_projection(feature_dim, d)
        self.action_encoder = ActionSequenceEncoder(action_space, K, d_u, int(cfg.action_hidden))
        in_dim = d + K * d_u
        self.proj_sa = nn.Sequential(nn.Linear(in_dim, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, d))
        self.W = nn.Parameter(torch.rand(d, d))
        self.reward_head = (nn.Sequential(nn.Linear(in_dim, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 1))
                            if cfg.reward else None)
        # TACO's module applies utils.weight_init to all of its layers (latent-action encoder
        # included): orthogonal Linear weights, zero biases; W stays uniform in [0, 1)
        orthogonal_init(self)
        self.aug = RandomShift(int(cfg.pad)) if (cfg.augment and is_image_space(obs_space)) else None
        self.register_buffer("discounts", float(cfg.gamma) ** torch.arange(K, dtype=torch.float32), persistent=False)
        # the keys h(f(obs)): the online f and h under no_grad, or CURL's momentum copies of both
        self.target = Target("ema" if cfg.key_encoder == "ema" else "stopgrad", tau=cfg.tau, obs_ndim=self.obs_ndim,
                             head=self.proj_s)

    @property
    def horizon(self) -> int:
        return int(self.cfg.horizon)

    def loss(self, batch, encoder: nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.cfg
        K = self.horizon
        B = batch.obs.shape[0]
        mask = batch.mask[:, :K]
        valid = mask[:, K - 1] > 0  # the K-step future is in the same episode
        if is_discrete(self.action_space):
            actions = torch.where(mask > 0, batch.action[:, :K].long(), 0)
        else:
            actions = mask_steps(action_features(batch.action[:, :K], self.action_space), mask)

        views = [batch.obs[:, 0], batch.obs[:, K]] + ([batch.obs[:, 0]] if cfg.curl else [])
        x = torch.cat(views, dim=0)
        if self.aug is not None:
            x = self.aug(x)  # an independent shift per sample and view
        anchor_obs, key_obs = x[:B], x[B:]

        if cfg.encoder_grad or cfg.key_encoder == "ema":
            q = self.proj_s(encode(encoder, anchor_obs, self.obs_ndim, grad=bool(cfg.encoder_grad)))
            keys = self.target(key_obs, encoder)
        else:  # one no-grad pass over every view; proj_s still trains on the anchor
            feats = encode(encoder, x, self.obs_ndim, grad=False)
            q = self.proj_s(feats[:B])
            with torch.no_grad():
                keys = self.proj_s(feats[B:])
        k_future = keys[:B]

        u = self.action_encoder(actions)
        qu = torch.cat([q, u], dim=-1)
        g = self.proj_sa(qu)
        taco_loss, taco_acc = infonce(g @ self.W @ k_future.T, valid)
        loss = taco_loss
        metrics = {"taco_loss": taco_loss.detach(), "taco_accuracy": taco_acc.detach()}

        if cfg.curl:
            curl_loss, curl_acc = infonce(q @ self.W @ keys[B:].T)
            loss = loss + curl_loss
            metrics.update(curl_loss=curl_loss.detach(), curl_accuracy=curl_acc.detach())

        if self.reward_head is not None:
            rewards = mask_steps(batch.reward[:, :K].float(), mask)
            target = (rewards * self.discounts).sum(1)
            reward_loss = masked_mean((self.reward_head(qu).squeeze(-1) - target) ** 2, valid)
            loss = loss + reward_loss
            metrics["reward_loss"] = reward_loss.detach()
        return loss, metrics
