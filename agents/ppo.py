"""PPO (Schulman et al. 2017) on rlaux's shared encoder, with auxiliary objectives.

Network: ``encoder`` (shared with the aux objectives) -> ``torso`` -> actor head and critic
head, each head an MLP of its own (``head_hidden``). For state observations the MLP
encoder's linear latent goes through the activation (default: obs -> 64 tanh -> 64 tanh,
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
optimiser step. With ``detach_encoder`` (default: the objectives' recipe) the
PPO loss sees encoder features computed without gradient, so only aux losses train it.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.base import Agent, register_agent
from rlaux.buffers.rollout import RolloutStorage, normalize_advantages
from rlaux.encoders import ACTIVATIONS, DrQEncoder, MLPEncoder, make_encoder, mlp, orthogonal_init
from rlaux.objectives import build_aux_suite
from rlaux.optim import adam_step, make_adam, zero_grad

LOG_2PI = math.log(2.0 * math.pi)


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


def validate_ppo_config(cfg: Any) -> None:
    """Raise ``ValueError`` naming the first out-of-range key of a PPO config."""

    def check(key: str, ok: bool, rule: str) -> None:
        if not ok:
            raise ValueError(f"agent.{key}={_get(cfg, key)!r} is invalid: must be {rule}")

    check("num_envs", int(cfg.num_envs) >= 1, "an integer >= 1")
    check("num_steps", int(cfg.num_steps) >= 1, "an integer >= 1")
    check("lr", float(cfg.lr) > 0, "> 0")
    check("gamma", 0.0 <= float(cfg.gamma) <= 1.0, "in [0, 1]")
    check("gae_lambda", 0.0 <= float(cfg.gae_lambda) <= 1.0, "in [0, 1]")
    check("num_minibatches", int(cfg.num_minibatches) >= 1, "an integer >= 1")
    check("update_epochs", int(cfg.update_epochs) >= 1, "an integer >= 1")
    check("clip_coef", float(cfg.clip_coef) > 0, "> 0")
    check("ent_coef", float(cfg.ent_coef) >= 0, ">= 0")
    check("vf_coef", float(cfg.vf_coef) >= 0, ">= 0")
    check("max_grad_norm", float(cfg.max_grad_norm) >= 0, ">= 0 (0 disables clipping)")
    check("target_kl", cfg.target_kl is None or float(cfg.target_kl) > 0, "null or > 0")
    if cfg.anneal_lr:
        check("anneal_steps", cfg.anneal_steps is not None and int(cfg.anneal_steps) >= 1,
              "an integer >= 1 when anneal_lr is true (default: ${steps})")
    check("init_log_std", math.isfinite(float(cfg.init_log_std)), "a finite number")
    check("encoder.activation", cfg.encoder.activation in ACTIVATIONS, f"one of {', '.join(ACTIVATIONS)}")
    check("encoder.latent_dim", int(cfg.encoder.latent_dim) >= 1, "an integer >= 1")
    check("aux.optimizer", cfg.aux.optimizer in ("separate", "joint"), "'separate' or 'joint'")
    check("aux.lr", float(cfg.aux.lr) > 0, "> 0")
    check("aux.batch_size", int(cfg.aux.batch_size) >= 1, "an integer >= 1")
    n_steps = int(cfg.update_epochs) * int(cfg.num_minibatches)
    per_rollout = cfg.aux.updates_per_rollout
    check("aux.updates_per_rollout", per_rollout is None or (isinstance(per_rollout, int) and 1 <= per_rollout <= n_steps),
          f"null (one aux step per minibatch step) or an integer from 1 to update_epochs x num_minibatches = {n_steps}")


def _get(cfg: Any, dotted: str) -> Any:
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


@register_agent
class PPOAgent(Agent):
    """Proximal Policy Optimisation with a shared encoder and auxiliary objectives.

    Args:
        cfg: the ``agent`` config node (``configs/agent/ppo.yaml``).
        obs_space, action_space: one env's spaces (Discrete or 1-D Box in [-1, 1] actions).
        aux_cfg: the ``aux`` config node ({objective name: options}); empty for none.
        device: where the networks and the rollout storage live.
    """

    name = "ppo"
    on_policy = True

    def __init__(self, cfg: Any, obs_space: gym.Space, action_space: gym.Space, aux_cfg: Any, device: torch.device) -> None:
        super().__init__(cfg, obs_space, action_space, aux_cfg, device)
        validate_ppo_config(cfg)
        self.check_action_space(action_space)
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        act_dim = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        enc = cfg.encoder
        activation = str(enc.activation)

        self.encoder = make_encoder(obs_space, str(enc.kind), int(enc.latent_dim), list(enc.hidden), activation)
        self.check_encoder_for_aux(self.encoder, aux_cfg)
        feat = self.encoder.out_dim
        if isinstance(self.encoder, MLPEncoder):
            self.torso: nn.Module = ACTIVATIONS[activation]()  # the MLP encoder's latent is linear
            torso_dim = feat
        elif isinstance(self.encoder, DrQEncoder):  # 39200 conv features: DrQ-v2's trunk
            self.torso = nn.Sequential(nn.Linear(feat, int(enc.latent_dim)), nn.LayerNorm(int(enc.latent_dim)), nn.Tanh())
            orthogonal_init(self.torso)
            torso_dim = int(enc.latent_dim)
        else:  # NatureCNN (already ReLU(512)), the raw state (encoder.kind=flat) or another compact encoder
            self.torso = nn.Identity()
            torso_dim = feat
        heads_hidden = list(cfg.head_hidden)
        self.actor = _head(torso_dim, heads_hidden, act_dim, activation, out_gain=0.01)
        self.critic = _head(torso_dim, heads_hidden, 1, activation, out_gain=1.0)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((act_dim,), float(cfg.init_log_std)))

        self.aux = build_aux_suite(
            aux_cfg, self.name, self.encoder, feat, obs_space, action_space,
            optimizer=str(cfg.aux.optimizer), lr=float(cfg.aux.lr),
            weight_decay=float(cfg.aux.weight_decay), grad_clip=float(cfg.aux.grad_clip),
        )
        self.detach_encoder = bool(cfg.detach_encoder) if cfg.detach_encoder is not None else self.aux.detach_rl

        params = [p for name, p in self.named_parameters() if not name.startswith("aux.")]
        if self.aux.joint:
            params += list(self.aux.objectives.parameters())
        self.ppo_params = list(dict.fromkeys(params))
        self.optimizer = make_adam(self.ppo_params, float(cfg.lr), eps=1e-5)
        # read once: DictConfig lookups cost more than a small minibatch's arithmetic
        self._loss_options = (bool(cfg.norm_adv), bool(cfg.clip_vloss), float(cfg.ent_coef), float(cfg.vf_coef))
        self.to(device)

    @classmethod
    def check_action_space(cls, action_space: gym.Space) -> None:
        if isinstance(action_space, gym.spaces.Discrete):
            return
        if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
            return
        raise ValueError(f"agent=ppo needs a Discrete or 1-D Box action space, got {action_space}")

    # ------------------------------------------------------------------ networks
    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """Torso features for the actor and critic heads (encoder gradient per ``detach_encoder``)."""
        if self.detach_encoder:
            with torch.no_grad():
                z = self.encoder(obs)
        else:
            z = self.encoder(obs)
        return self.torso(z)

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
        batch = int(self.cfg.num_steps) * num_envs
        if int(self.cfg.num_minibatches) > batch:
            raise ValueError(f"agent.num_minibatches={self.cfg.num_minibatches} exceeds the rollout size "
                             f"num_steps x num_envs = {batch}")
        obs_dtype = torch.uint8 if self.obs_space.dtype == np.uint8 else torch.float32
        if self.discrete:
            action_shape, action_dtype = (), torch.int64
        else:
            action_shape, action_dtype = tuple(self.action_space.shape), torch.float32
        return RolloutStorage(int(self.cfg.num_steps), num_envs, tuple(self.obs_space.shape), obs_dtype,
                              action_shape, action_dtype, self.device)

    def _set_lr(self, step: int, rollout_size: int) -> torch.Tensor:
        lr = float(self.cfg.lr)
        if self.cfg.anneal_lr:
            done_before = max(step - rollout_size, 0)  # steps taken before this rollout
            lr *= max(1.0 - done_before / float(self.cfg.anneal_steps), 0.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return torch.tensor(lr)

    def update(self, storage: RolloutStorage, next_obs: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """GAE on the full rollout, then the PPO epochs; empties ``storage``. Returns 0-dim metrics."""
        cfg = self.cfg
        gamma, clip = float(cfg.gamma), float(cfg.clip_coef)
        with torch.no_grad():
            next_value = self.value(next_obs.to(self.device))
        storage.finish(next_obs, next_value, gamma, float(cfg.gae_lambda))
        data = storage.flat()
        batch = data["valid"].shape[0]
        mb_size = batch // int(cfg.num_minibatches)
        lr = self._set_lr(step, batch)
        max_grad_norm, aux_batch = float(cfg.max_grad_norm), int(cfg.aux.batch_size)
        n_minibatches = int(cfg.num_minibatches)
        n_steps = int(cfg.update_epochs) * n_minibatches
        aux_steps = n_steps if cfg.aux.updates_per_rollout is None else int(cfg.aux.updates_per_rollout)

        sums: dict[str, torch.Tensor] = {}
        aux_sums: dict[str, torch.Tensor] = {}
        n_updates = n_aux = 0

        def accumulate(into: dict[str, torch.Tensor], values: dict[str, torch.Tensor]) -> None:
            for k, v in values.items():
                v = v.detach()
                into[k] = into[k] + v if k in into else v

        for _ in range(int(cfg.update_epochs)):
            perm = torch.randperm(batch, device=self.device)
            for start in range(0, mb_size * n_minibatches, mb_size):
                idx = perm[start:start + mb_size]
                loss, metrics = self._ppo_loss({k: v[idx] for k, v in data.items()}, clip)
                # aux_steps of the n_steps minibatch steps carry an aux step, spread evenly
                with_aux = bool(self.aux) and (n_updates + 1) * aux_steps // n_steps > n_updates * aux_steps // n_steps
                if with_aux:
                    windows = storage.windows(aux_batch, self.aux.horizon, gamma)
                    if self.aux.joint:
                        aux_loss, aux_metrics = self.aux.loss(windows, self.encoder)
                        loss = loss + aux_loss
                zero_grad(self.optimizer)
                loss.backward()
                if max_grad_norm > 0:
                    metrics["grad_norm"] = nn.utils.clip_grad_norm_(self.ppo_params, max_grad_norm, foreach=True)
                adam_step(self.optimizer)
                if with_aux:
                    if self.aux.joint:
                        self.aux.update_targets(self.encoder)
                    else:
                        aux_metrics = self.aux.update(windows, self.encoder)
                    accumulate(aux_sums, aux_metrics)
                    n_aux += 1
                accumulate(sums, metrics)
                n_updates += 1
            if cfg.target_kl is not None and float(metrics["approx_kl"]) > float(cfg.target_kl):
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
        out["epochs"] = torch.tensor(float(n_updates) / int(cfg.num_minibatches))
        if not self.discrete:
            out["log_std"] = self.log_std.detach().mean()
        storage.reset()
        return out

    def _ppo_loss(self, mb: dict[str, torch.Tensor], clip: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Clipped surrogate + value + entropy loss on one minibatch, masked to valid steps."""
        norm_adv, clip_vloss, ent_coef, vf_coef = self._loss_options
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

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """PPO's Adam (encoder, torso, heads, log std; aux heads too in joint mode) and the
        aux suite's own optimiser in separate mode."""
        opts: dict[str, torch.optim.Optimizer] = {"ppo": self.optimizer}
        if self.aux.optimizer is not None:
            opts["aux"] = self.aux.optimizer
        return opts
