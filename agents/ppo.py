"""PPO (Schulman et al. 2017) on rlaux's shared encoder, with auxiliary objectives.

Network: ``encoder`` (shared with the aux objectives) -> ``torso``
(:func:`rlaux.encoders.head_trunk`) -> actor head and critic head, each head an MLP of its
own (``head_hidden``). For state observations the MLP encoder's linear latent goes through
the activation (default: obs -> 64 tanh -> 64 tanh,
shared, then a 64-tanh hidden layer per head; sharing deeper and using linear heads made
the value loss swamp the policy on CartPole); for the wide DrQ conv features the torso is
DrQ-v2's Linear + LayerNorm + tanh to ``latent_dim``; NatureCNN features are used as they are.
Discrete actions: categorical policy. Continuous actions (Box in [-1, 1]): a diagonal
Gaussian with a state-independent log std (as CleanRL); the unclipped sample is what is
stored and scored, :meth:`PPOAgent.env_action` clips it for the env.

Update (per rollout): GAE with NEXT_STEP autoreset handling (:class:`RolloutStorage`), then
``update_epochs`` passes over ``num_minibatches`` shuffled minibatches of the clipped
surrogate, (optionally clipped) value loss and entropy bonus. Invalid (reset) transitions
are masked out of every loss and of the advantage normalisation.

Auxiliary objectives: every minibatch step also draws ``aux.batch_size`` windows from the
rollout (``aux.updates_per_rollout=k`` instead spreads k aux steps evenly over the
``update_epochs x num_minibatches`` minibatch steps, as the SB3 bridge's ``gradient_steps``).
``aux.optimizer=joint`` adds the aux loss to the PPO loss; ``separate`` runs the suite's own
optimiser step after the PPO step. With ``detach_rl`` (default: the objectives' recipe) the
PPO loss sees encoder features computed without gradient, so only aux losses train it.
A horizon longer than the rollout (``num_steps``) is allowed by the window mask contract
(steps past the rollout end are masked out) but warned about: no window is complete.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.base import Agent, register_agent
from agents.config import AgentConfig, AuxTrainConfig, EncoderConfig, FieldRules
from agents.networks import LOG_2PI
from rlaux.buffers.rollout import RolloutStorage, normalize_advantages
from rlaux.config import invalid_value
from rlaux.encoders import head_trunk, mlp, orthogonal_init
from rlaux.optim import make_adam


@dataclass
class PPOAuxConfig(AuxTrainConfig):
    """PPO's aux training options: those of :class:`AuxTrainConfig` plus where its windows come from."""

    batch_size: int = 256  #: windows drawn from the rollout per aux step
    updates_per_rollout: int | None = None  #: aux steps per rollout, spread over the minibatch steps; null: one each

    def __post_init__(self) -> None:
        super().__post_init__()
        FieldRules(self, "aux.").integer("batch_size", 1)


@dataclass
class PPOConfig(AgentConfig):
    """``agent=ppo`` (preset, tuned for CartPole: ``configs/agent/ppo.yaml``).

    ``num_steps`` (with ``num_envs``) is read by the on-policy loop and sizes the rollout.
    """

    name: str = "ppo"
    num_envs: int = 8
    num_steps: int = 64  #: loop setting: vector steps per rollout (rollout = num_steps x num_envs transitions)
    lr: float = 1e-3  #: Adam learning rate (eps 1e-5)
    anneal_lr: bool = True  #: linear decay of lr to 0 over anneal_steps agent steps
    anneal_steps: int | None = None  #: length of the lr decay; needed with anneal_lr (the preset: ${steps}, the run's)
    gamma: float = 0.98
    gae_lambda: float = 0.8  #: GAE lambda
    num_minibatches: int = 2  #: minibatches per epoch over the rollout
    update_epochs: int = 10  #: passes over the rollout per update
    norm_adv: bool = True  #: normalise advantages per minibatch (over valid transitions)
    clip_coef: float = 0.2  #: surrogate clip (and value clip when clip_vloss)
    clip_vloss: bool = True  #: clip the value loss around the rollout's values
    ent_coef: float = 0.0  #: entropy bonus coefficient
    vf_coef: float = 0.5  #: value loss coefficient
    max_grad_norm: float = 0.5
    target_kl: float | None = None  #: early-stop the epochs once approx KL exceeds this (null: never)
    init_log_std: float = 0.0  #: continuous actions: initial log std of the Gaussian policy
    head_hidden: list[int] = field(default_factory=lambda: [64])  #: hidden widths of the actor and critic heads
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(latent_dim=64, hidden=[64],
                                                                         activation="tanh"))
    aux: PPOAuxConfig = field(default_factory=PPOAuxConfig)

    def validate(self, rules: FieldRules) -> None:
        super().validate(rules)
        for name in ("num_steps", "num_minibatches", "update_epochs"):
            rules.integer(name, 1)
        rules.number("gamma", 0.0, 1.0)
        rules.number("gae_lambda", 0.0, 1.0)
        for name in ("anneal_lr", "norm_adv", "clip_vloss"):
            rules.flag(name)
        rules.number("clip_coef", 0.0, low_open=True)
        rules.number("ent_coef", 0.0)
        rules.number("vf_coef", 0.0)
        rules.number("target_kl", 0.0, low_open=True, optional=True)
        if self.anneal_lr:
            rules.integer("anneal_steps", 1, note=" when anneal_lr is true (the preset's default: ${steps})")
        rules.number("init_log_std")
        rules.widths("head_hidden")
        n_steps = self.update_epochs * self.num_minibatches
        per_rollout = self.aux.updates_per_rollout
        if per_rollout is not None and not (isinstance(per_rollout, int) and 1 <= per_rollout <= n_steps):
            raise invalid_value("agent.aux.updates_per_rollout", per_rollout,
                                "null (one aux step per minibatch step) or an integer from 1 to "
                                f"update_epochs x num_minibatches = {n_steps}")

    def check_run(self, steps: int, num_envs: int) -> list[str]:
        self.check_rollout(num_envs)
        return []

    def check_rollout(self, num_envs: int) -> None:
        """Raise :class:`ConfigError` when a rollout of ``num_steps x num_envs`` transitions
        cannot be split into ``num_minibatches``."""
        rollout = self.num_steps * num_envs
        if self.num_minibatches > rollout:
            raise invalid_value("agent.num_minibatches", self.num_minibatches,
                                f"<= the rollout (agent.num_steps x num_envs = {self.num_steps} x {num_envs} = "
                                f"{rollout} transitions)", "lower agent.num_minibatches or raise agent.num_steps")


def _init_layer(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def _head(in_dim: int, hidden: list[int], out_dim: int, activation: str, out_gain: float) -> nn.Sequential:
    """MLP head with orthogonal init: sqrt(2) on hidden layers, ``out_gain`` on the output."""
    net = mlp(in_dim, hidden, out_dim, activation)
    orthogonal_init(net, math.sqrt(2.0))
    _init_layer(net[-1], out_gain)
    return net


@register_agent
class PPOAgent(Agent):
    """Proximal Policy Optimisation with a shared encoder and auxiliary objectives
    (arguments: :class:`agents.base.Agent`; Discrete or 1-D Box actions in [-1, 1]; the
    networks and the rollout storage live on ``device``)."""

    name = "ppo"
    config_class = PPOConfig
    cfg: PPOConfig
    on_policy = True
    aux_after_networks = True  # heads before the aux suite: the parameter-init order of seeded runs

    def __init__(self, cfg: object, obs_space: gym.Space, action_space: gym.Space, aux_cfg: object,
                 device: torch.device) -> None:
        super().__init__(cfg, obs_space, action_space, aux_cfg, device)
        horizon, num_steps = self.aux.horizon, self.cfg.num_steps
        if self.aux and horizon > num_steps:
            warnings.warn(f"aux horizon {horizon} is longer than the rollout (agent.num_steps={num_steps}): every "
                          f"window is cut at the rollout end, so no window has all {horizon} steps (at most "
                          f"{num_steps} are valid, the rest are masked out); raise agent.num_steps to >= {horizon} "
                          "or lower the objective's horizon", UserWarning, stacklevel=2)

    def build_networks(self) -> None:
        cfg = self.cfg
        self.discrete = isinstance(self.action_space, gym.spaces.Discrete)
        act_dim = int(self.action_space.n) if self.discrete else int(np.prod(self.action_space.shape))
        activation = cfg.encoder.activation
        self.torso, torso_dim = head_trunk(self.encoder, cfg.encoder.latent_dim, latent_activation=activation)
        self.actor = _head(torso_dim, cfg.head_hidden, act_dim, activation, out_gain=0.01)
        self.critic = _head(torso_dim, cfg.head_hidden, 1, activation, out_gain=1.0)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((act_dim,), cfg.init_log_std))

    def build_optimizers(self) -> None:
        """PPO's Adam: encoder, torso, heads, log std; the aux heads too in joint mode."""
        params = [p for name, p in self.named_parameters() if not name.startswith("aux.")]
        if self.aux.joint:
            params += list(self.aux.objectives.parameters())
        self.ppo_params = list(dict.fromkeys(params))
        self.optimizer = make_adam(self.ppo_params, self.cfg.lr, eps=1e-5)

    def rl_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"ppo": self.optimizer}

    @classmethod
    def action_space_problem(cls, action_space: gym.Space) -> str | None:
        if isinstance(action_space, gym.spaces.Discrete):
            return None
        if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
            return None
        return "a Discrete or 1-D Box action space"

    # ------------------------------------------------------------------ networks
    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """Torso features for the actor and critic heads (encoder gradient per ``detach_rl``)."""
        return self.torso(self.rl_features(obs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(o) for a batch of observations -> [B]."""
        return self.critic(self.features(obs)).squeeze(-1)

    def _log_prob_entropy(self, out: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log pi(a|o) and the policy entropy, from the actor output (logits or Gaussian mean)."""
        if self.discrete:
            logp_all = F.log_softmax(out, dim=-1)
            logp = logp_all.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
            entropy = -(logp_all.exp() * logp_all).sum(-1)
            return logp, entropy
        log_std = self.log_std.expand_as(out)
        logp = (-0.5 * ((action - out) / log_std.exp()) ** 2 - log_std - 0.5 * LOG_2PI).sum(-1)
        entropy = (0.5 + 0.5 * LOG_2PI + log_std).sum(-1)
        return logp, entropy

    def _log_prob(self, out: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """log pi(a|o) alone (acting needs no entropy); the same values as :meth:`_log_prob_entropy`."""
        if self.discrete:
            return F.log_softmax(out, dim=-1).gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
        log_std = self.log_std.expand_as(out)
        return (-0.5 * ((action - out) / log_std.exp()) ** 2 - log_std - 0.5 * LOG_2PI).sum(-1)

    def _sample(self, out: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            return torch.multinomial(F.softmax(out, dim=-1), 1).squeeze(-1)
        return out + self.log_std.exp() * torch.randn_like(out)

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def policy_step(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample actions for a rollout: (action, log pi(action|obs), V(obs)), each [N, ...].

        Continuous actions are the raw Gaussian samples; send ``env_action(action)`` to the env.
        """
        h = self.features(obs)
        out = self.actor(h)
        action = self._sample(out)
        return action, self._log_prob(out, action), self.critic(h).squeeze(-1)

    def env_action(self, action: torch.Tensor) -> torch.Tensor:
        """The action the env receives: continuous samples clipped to [-1, 1]; discrete unchanged."""
        return action if self.discrete else action.clamp(-1.0, 1.0)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, step: int, eval_mode: bool = False) -> torch.Tensor:
        """Env-ready actions: argmax / Gaussian mean in ``eval_mode``, else a policy sample."""
        out = self.actor(self.features(obs))
        if eval_mode:
            action = out.argmax(-1) if self.discrete else out
        else:
            action = self._sample(out)
        return self.env_action(action)

    # ------------------------------------------------------------------ learning
    def make_storage(self, num_envs: int) -> RolloutStorage:
        """A rollout storage of ``num_steps`` x ``num_envs`` on the agent's device."""
        self.cfg.check_rollout(num_envs)
        obs_dtype = torch.uint8 if self.obs_space.dtype == np.uint8 else torch.float32
        if self.discrete:
            action_shape, action_dtype = (), torch.int64
        else:
            action_shape, action_dtype = tuple(self.action_space.shape), torch.float32
        return RolloutStorage(self.cfg.num_steps, num_envs, tuple(self.obs_space.shape), obs_dtype,
                              action_shape, action_dtype, self.device)

    def _set_lr(self, step: int, rollout_size: int) -> torch.Tensor:
        lr = self.cfg.lr
        if self.cfg.anneal_lr:
            done_before = max(step - rollout_size, 0)  # steps taken before this rollout
            lr *= max(1.0 - done_before / float(self.cfg.anneal_steps), 0.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return torch.tensor(lr)

    def update(self, storage: RolloutStorage, next_obs: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """GAE on the full rollout, then the PPO epochs; empties ``storage``. Returns 0-dim metrics."""
        cfg = self.cfg
        gamma, clip = cfg.gamma, cfg.clip_coef
        with torch.no_grad():
            next_value = self.value(next_obs.to(self.device))
        storage.finish(next_obs, next_value, gamma, cfg.gae_lambda)
        data = storage.flat()
        batch = data["valid"].shape[0]
        n_minibatches = cfg.num_minibatches
        mb_size = batch // n_minibatches
        lr = self._set_lr(step, batch)
        n_steps = cfg.update_epochs * n_minibatches
        aux_steps = n_steps if cfg.aux.updates_per_rollout is None else cfg.aux.updates_per_rollout

        sums: dict[str, torch.Tensor] = {}
        aux_sums: dict[str, torch.Tensor] = {}
        n_updates = n_aux = 0

        def accumulate(into: dict[str, torch.Tensor], values: dict[str, torch.Tensor]) -> None:
            for k, v in values.items():
                v = v.detach()
                into[k] = into[k] + v if k in into else v

        for _ in range(cfg.update_epochs):
            perm = torch.randperm(batch, device=self.device)
            for start in range(0, mb_size * n_minibatches, mb_size):
                idx = perm[start:start + mb_size]
                loss, metrics = self._ppo_loss({k: v[idx] for k, v in data.items()}, clip)
                # aux_steps of the n_steps minibatch steps carry an aux step, spread evenly
                with_aux = bool(self.aux) and (n_updates + 1) * aux_steps // n_steps > n_updates * aux_steps // n_steps
                windows = storage.windows(cfg.aux.batch_size, self.aux.horizon, gamma) if with_aux else None
                grad_norm, aux_metrics = self.optimizer_step(self.optimizer, loss, self.ppo_params, windows)
                if grad_norm is not None:
                    metrics["grad_norm"] = grad_norm
                if windows is not None:
                    aux_metrics.update(self.aux_step(windows))  # separate mode: after the PPO step
                    accumulate(aux_sums, aux_metrics)
                    n_aux += 1
                accumulate(sums, metrics)
                n_updates += 1
            if cfg.target_kl is not None and float(metrics["approx_kl"]) > cfg.target_kl:
                break  # one host sync per epoch, only when early stopping is asked for

        out = {k: v / n_updates for k, v in sums.items()}
        out.update({k: v / n_aux for k, v in aux_sums.items()})
        valid = data["valid"]
        n_valid = valid.sum().clamp(min=1.0)
        ret = data["returns"]
        ret_mean = (ret * valid).sum() / n_valid
        var_ret = (((ret - ret_mean) ** 2) * valid).sum() / n_valid
        err = ret - data["values"]
        err_mean = (err * valid).sum() / n_valid
        var_err = (((err - err_mean) ** 2) * valid).sum() / n_valid
        out["explained_variance"] = torch.where(var_ret > 0, 1.0 - var_err / var_ret.clamp(min=1e-12), torch.zeros_like(var_ret))
        out["lr"] = lr
        out["epochs"] = torch.tensor(float(n_updates) / n_minibatches)
        if not self.discrete:
            out["log_std"] = self.log_std.detach().mean()
        storage.reset()
        return out

    def _ppo_loss(self, mb: dict[str, torch.Tensor], clip: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Clipped surrogate + value + entropy loss on one minibatch, masked to valid steps."""
        cfg = self.cfg
        norm_adv, clip_vloss, ent_coef, vf_coef = cfg.norm_adv, cfg.clip_vloss, cfg.ent_coef, cfg.vf_coef
        valid = mb["valid"]
        n = valid.sum().clamp(min=1.0)

        def masked_mean(x: torch.Tensor) -> torch.Tensor:
            return (x * valid).sum() / n

        h = self.features(mb["obs"])
        out = self.actor(h)
        new_value = self.critic(h).squeeze(-1)
        logp, entropy = self._log_prob_entropy(out, mb["actions"])
        log_ratio = logp - mb["logprobs"]
        ratio = log_ratio.exp()

        adv = mb["advantages"]
        if norm_adv:
            adv = normalize_advantages(adv, valid)
        pg_loss = masked_mean(torch.maximum(-adv * ratio, -adv * ratio.clamp(1.0 - clip, 1.0 + clip)))

        ret = mb["returns"]
        if clip_vloss:
            v_clipped = mb["values"] + (new_value - mb["values"]).clamp(-clip, clip)
            v_loss = 0.5 * masked_mean(torch.maximum((new_value - ret) ** 2, (v_clipped - ret) ** 2))
        else:
            v_loss = 0.5 * masked_mean((new_value - ret) ** 2)
        ent = masked_mean(entropy)
        loss = pg_loss - ent_coef * ent + vf_coef * v_loss

        with torch.no_grad():
            approx_kl = masked_mean((ratio - 1.0) - log_ratio)
            clipfrac = masked_mean(((ratio - 1.0).abs() > clip).float())
        metrics = {"policy_loss": pg_loss, "value_loss": v_loss, "entropy": ent,
                   "approx_kl": approx_kl, "clipfrac": clipfrac}
        return loss, metrics
