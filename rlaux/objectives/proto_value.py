"""Proto-value networks as an auxiliary objective (Farebrother et al. 2023, ``google-research/pvn``).

N linear heads on the shared features learn, by TD, the value of N sparse indicator
"rewards" r_i(x) (see :mod:`rlaux.objectives.indicators`) under the uniformly random policy:

    Discrete actions (PVN):  Psi_i(x, a) = w_{i,a}^T phi(x) + b_{i,a}
        T_i = r_i(x) + gamma (1 - terminated) * (1/|A|) sum_a' Psibar_i(x', a')
        L_TD = mean_{batch, i} 1/2 (T_i - Psi_i(x, a))^2
    L = 1[updates >= qr_warmup] * L_TD + 1[qr_stop == 0 or updates < qr_stop] * L_QR

Psibar is the target network: an EMA (rate ``tau`` = 0.01 per update; PVN's code writes it as
tau = 0.99 on the other side) of the heads AND the encoder, both copies living in this
objective (initialised as copies). gamma = 0.99. Truncated episodes bootstrap
(``terminated`` only stops it). The indicator is computed on the current observation x and
always on the raw (unaugmented) observation.

Continuous (Box) actions: the uniform-policy expectation over next actions needs a finite
action set, so this objective then learns state values instead, N scalar heads with
``T_i = r_i(x) + gamma (1 - terminated) Psibar_i(x')``, i.e. the successor values of the
*behaviour* policy that generated the data (a documented rlaux variant; no reference exists).

rlaux specifics:

* The released PVN is offline pretraining followed by a frozen-feature linear probe
  (``paper_detach_rl=True`` here: RL losses do not train the encoder). Online, as an rlaux
  auxiliary loss, the heads and thresholds train from the first update (``qr_warmup=0``,
  ``qr_stop=0``); PVN's offline schedule turns TD on after 62,500 updates (TD off while the
  thresholds settle) and has a finite ``qr_stop``. The counts differ by one: PVN's TD term is on
  when its 0-based step is ``> num_qr_warmup_steps`` (``offline.py:240``), rlaux's when its
  0-based update count is ``>= qr_warmup``, so PVN's 62,500 is ``qr_warmup=62501`` here. The
  update counter lives in a buffer (checkpointed) and advances in
  :meth:`ProtoValueObjective.update_targets`.
* Only transition 0 of each window is used (``horizon = 1``); the TD term counts where
  ``mask[:, 0] == 1`` and is averaged over those windows and the N tasks.
* The heads are public: :meth:`ProtoValueObjective.values` gives Psi for given features,
  :meth:`ProtoValueObjective.target_values` Psibar for observations; ``heads`` and
  ``target.head`` are the linear layers (N * |A| outputs, task-major).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import torch
from torch import nn

from rlaux.objectives.base import AuxObjective, ObjectiveConfig, register_objective
from rlaux.objectives.common import encode, is_discrete, masked_mean
from rlaux.objectives.indicators import HashIndicator, RNDIndicator
from rlaux.objectives.targets import Target, check_choice

INDICATORS = ("rnd", "hash")


@dataclass
class ProtoValueConfig(ObjectiveConfig):
    """Options of ``aux=proto_value`` (defaults: PVN's ``configs/dsm.py`` where they apply online).

    Attributes:
        num_tasks: N, number of indicator value functions (heads).
        indicator: rnd | hash.
        target_rate: p, the fraction of states each indicator should fire on.
        indicator_nets: number of frozen random networks sharing the N outputs (rnd).
        indicator_width: channel multiplier of the random conv nets (rnd, images).
        indicator_hidden: hidden widths of the random MLPs (rnd, flat states).
        indicator_final_relu: ReLU on the random outputs; null = auto (PVN's final ReLU for
            images, none for flat states), see :mod:`rlaux.objectives.indicators`.
        hash_resolution: quantisation step of float states before hashing (hash).
        hash_seed: seed of the hash coefficients (hash).
        gamma: discount of the indicator values.
        tau: EMA rate of the target heads and encoder.
        qr_warmup: updates before the TD loss switches on (0 = from the start).
        qr_stop: updates after which the thresholds stop training (0 = never).
    """

    num_tasks: int = 100
    indicator: str = "rnd"
    target_rate: float = 0.01
    indicator_nets: int = 10
    indicator_width: float = 1.0
    indicator_hidden: list[int] = field(default_factory=lambda: [64, 64])
    indicator_final_relu: bool | None = None
    hash_resolution: float = 0.1
    hash_seed: int = 0
    gamma: float = 0.99
    tau: float = 0.01
    qr_warmup: int = 0
    qr_stop: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("aux.proto_value.indicator", self.indicator, INDICATORS)
        if int(self.num_tasks) < 1:
            raise ValueError(f"aux.proto_value.num_tasks={self.num_tasks} must be an integer >= 1")
        if not 0.0 < float(self.target_rate) < 1.0:
            raise ValueError(f"aux.proto_value.target_rate={self.target_rate} must be in (0, 1)")
        if not 0.0 < float(self.tau) <= 1.0:
            raise ValueError(f"aux.proto_value.tau={self.tau} must be in (0, 1]")
        if not 0.0 <= float(self.gamma) < 1.0:
            raise ValueError(f"aux.proto_value.gamma={self.gamma} must be in [0, 1)")


@register_objective
class ProtoValueObjective(AuxObjective):
    """N indicator value functions learned by TD on the shared features (module docstring)."""

    name = "proto_value"
    config_class = ProtoValueConfig
    paper_detach_rl = True
    renamed_state_keys = {"target_encoder.": "target.encoder.", "target_heads.": "target.head."}
    cfg: ProtoValueConfig

    def __init__(self, cfg: ProtoValueConfig, feature_dim: int, obs_space: gym.Space, action_space: gym.Space) -> None:
        super().__init__(cfg, feature_dim, obs_space, action_space)
        self.obs_ndim = len(obs_space.shape)
        self.discrete = is_discrete(action_space)
        self.num_tasks = int(cfg.num_tasks)
        self.num_actions = int(action_space.n) if self.discrete else 1
        self.heads = nn.Linear(feature_dim, self.num_tasks * self.num_actions)
        self.target = Target("ema", tau=cfg.tau, obs_ndim=self.obs_ndim, head=self.heads)  # Psibar: heads + encoder
        if cfg.indicator == "rnd":
            self.indicator: nn.Module = RNDIndicator(
                obs_space, self.num_tasks, cfg.target_rate, int(cfg.indicator_nets), float(cfg.indicator_width),
                tuple(int(h) for h in cfg.indicator_hidden), cfg.indicator_final_relu,
            )
        else:
            self.indicator = HashIndicator(obs_space, self.num_tasks, cfg.target_rate, cfg.hash_resolution,
                                           cfg.hash_seed)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def values(self, features: torch.Tensor) -> torch.Tensor:
        """Psi for features [B, F]: [B, N, |A|] for Discrete actions, [B, N, 1] for Box."""
        return self.heads(features).view(features.shape[0], self.num_tasks, self.num_actions)

    def target_values(self, obs: torch.Tensor, encoder: nn.Module) -> torch.Tensor:
        """Psibar for observations [B, *obs_shape] (target encoder and heads, no gradient): [B, N, |A|]."""
        return self.target(obs, encoder).view(obs.shape[0], self.num_tasks, self.num_actions)

    def loss(self, batch, encoder: nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.cfg
        obs, next_obs = batch.obs[:, 0], batch.obs[:, 1]
        rewards, qr_loss = self.indicator(obs)  # [B, N]

        psi = self.values(encode(encoder, obs, self.obs_ndim, grad=bool(cfg.encoder_grad)))  # [B, N, |A|]
        if self.discrete:
            a = batch.action[:, 0].long().clamp(0, self.num_actions - 1)
            psi_a = psi.gather(2, a[:, None, None].expand(-1, self.num_tasks, 1)).squeeze(2)
        else:
            psi_a = psi.squeeze(2)
        with torch.no_grad():
            next_v = self.target_values(next_obs, encoder).mean(2)  # uniform policy over a'
            not_done = (1.0 - batch.terminated[:, 0].float())[:, None]
            td_target = rewards + float(cfg.gamma) * not_done * next_v
        td_loss = masked_mean((0.5 * (td_target - psi_a) ** 2).mean(1), batch.mask[:, 0])

        td_on = (self.num_updates >= int(cfg.qr_warmup)).float()
        qr_on = (self.num_updates < int(cfg.qr_stop)).float() if int(cfg.qr_stop) > 0 else 1.0
        loss = td_on * td_loss + qr_on * qr_loss
        metrics = {
            "td_loss": td_loss.detach(),
            "qr_loss": qr_loss.detach(),
            "indicator_rate": rewards.mean(),
            "value_mean": psi_a.detach().mean(),
        }
        return loss, metrics

    def update_targets(self, encoder: nn.Module) -> None:
        """The EMA step of Psibar, then one more update counted (``qr_warmup``, ``qr_stop``)."""
        super().update_targets(encoder)
        self.num_updates += 1
