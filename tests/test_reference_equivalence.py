"""Reference equivalence: rlaux's four auxiliary losses reproduce the authors' own code.

Each fixture in ``tests/fixtures/reference/`` holds only numbers: the inputs in the
reference's own layout (``in.*``), every module weight under the reference's own parameter
name (``w.*``), the reference loss values (``out.*``) and the gradients of the reference loss
w.r.t. those weights (``grad.*``), plus ``meta.*`` strings naming where they came from. The
reference code itself never enters this repository: each fixture was made by a driver script
kept outside it that imports and runs the authors' loss code unchanged on fixed (seeded)
inputs and weights. The tests copy the weights into the rlaux objective (one mapping function
per objective, below: reference parameter name -> rlaux parameter), build the
:class:`~rlaux.types.WindowBatch`, and assert that rlaux's loss and gradients equal the
reference's to float32 tolerance.

How each fixture was made (the reference checkouts are ``git archive`` exports of the named
commit into ``/tmp/refwork/<name>``; all on CPU, torch 2.13):

* ``tcrl.npz``: ``zhaoyi11/tcrl`` @ 9773d8e2bf4c, ``tcrl.py`` ``TCRL._update_enc_trans``
  (encoder, a separately initialised target encoder, ``LatentModel``; horizon 3, rho 0.9,
  batch 6, obs 5, action 2, latent 6, MLPs [12, 12]). Command:
  ``/work/main/.venv/bin/python /tmp/refwork/drivers/make_tcrl.py``. The driver registers the
  package ``utils`` with its real path so ``utils/helper.py`` and ``utils/net.py`` load without
  ``utils/__init__.py`` (dm_control, torchvision: unused), and replaces the encoder + model
  optimiser by one whose ``step`` does nothing, so the gradients the authors' backward leaves
  in ``.grad`` are read (the gradient norm is below the clip of 10, so clipping is inactive).
  Scale: upstream reports the un-normalised total and divides only the *gradient* by H with a
  backward hook; rlaux divides the loss, so ``rlaux loss * H == reference total_loss`` and the
  gradients are equal as they are.
* ``taco.npz``: ``FrankZheng2022/TACO`` @ 84c38e34f4f9, ``agents/taco.py``
  ``TACOAgent.update_taco`` with the ``TACO`` module and ``utils.ActionEncoding`` (K = 3, CURL
  and reward terms on, batch 6, obs 5, action 2 -> d_u 3, feature 8, hidden 16); its inputs
  (obs, action_seq, the critic's 3-step reward with discount 0.99, r_next_obs) come from the
  authors' ``replay_buffer.py`` ``ReplayBuffer._sample`` run on six stored 3-step episodes.
  Command: ``/work/main/.venv/bin/python /tmp/refwork/drivers/make_taco.py``. The agent object is
  made with ``TACOAgent.__new__`` and given only what ``update_taco`` reads (its ``__init__``
  builds the 84x84 conv encoder, actor and critic, unused by this loss); the encoder passed to
  ``TACO`` is a small state MLP (TACO takes any encoder); augmentation is the identity (the
  random-shift draws are not part of the loss; rlaux does not augment state observations);
  ``taco_opt.step`` does nothing; the episodes are taken in order instead of ``random.choice``.
  Same scale on both sides: total = TACO + CURL + reward.
* ``predictive_next.npz`` and ``predictive_bootstrapped.npz``: ``chingf/auxrl`` @ 865027f4111d,
  ``auxrl/Agent.py`` ``Agent.update`` on the paper's gridworld network (``networks/yamls/dm.yaml``
  built by ``networks/Network.py`` / ``Modules.py``: conv encoder, residual transition model T;
  obs 1x4x4, 4 actions, latent 6, batch 6). ``next``: ``pred_TD=False`` with loss weights
  [pos, negN, negR, Q] = [1e-2, 0.1, 0.1, 0]; ``bootstrapped``: ``pred_TD=True``,
  ``pred_gamma=0.5``, weights [1e-2, 0, 0, 0]. The Q weight is 0, so the authors' ``all_losses``
  is the auxiliary loss alone (the Q loss belongs to the agent, not the objective). In pred_TD
  mode the authors compute both repulsion terms on the *second* transition of the pair, rlaux
  on z_t and both pairs (a sampling difference recorded in ``FIDELITY-AUDIT.md`` section 4), so
  the bootstrapped fixture covers the prediction term alone. Command:
  ``PYTHONPATH=/tmp/refwork/site:/tmp/refwork/stubs /work/main/.venv/bin/python
  /tmp/refwork/drivers/make_predictive.py``, where ``site`` holds ``pip install --target
  --no-deps`` copies of dm-acme 0.4.0, gym 0.26.2 and dm-tree, and ``stubs/launchpad.py`` is an
  empty module (imported by ``acme.utils.signals``, unused). The driver replaces
  ``agent._replay_buffer`` by one returning fixed transitions in the format of the authors'
  ``ReplayBuffer.sample`` (their ``Transitions`` namedtuple, stacked over the batch) and makes
  ``agent._optimizer.step`` do nothing. Scale: rlaux's ``pred_weight`` and repulsion weights
  are the authors' loss weights, so rlaux's loss equals ``all_losses``.
* ``proto_value.npz``: ``google-research/google-research``, folder ``pvn/``, commit
  1d4d2f1aa6f2 (the stored copy the audit read), ``pvn/offline.py`` ``train_step`` (its inner
  ``loss_fn``: TD loss ``mean(l2_loss)`` on the vmapped task heads with a uniform-policy target
  from ``target_params``, plus the RND indicators' quantile ("proportion") loss), run un-jitted
  in JAX 0.10.2 / Flax 0.12.8 on CPU with ``networks.DsmNetwork`` (``NatureDqnEncoder`` with 8
  features, width 0.25; 4 tasks, 3 actions) and ``indicator_functions.StackedNatureDqnIndicator``
  (4 tasks, width 0.25, 2 per module); 8x8x2 uint8 observations, batch 6, two terminal
  transitions, discount 0.99, p = 0.01, QR warm-up -1 (TD on from step 0, as rlaux's
  ``qr_warmup=0``), target params = online params + noise, threshold biases set so that some
  indicators fire. Command: ``PYTHONPATH=/tmp/refwork/jaxsite:/tmp/refwork/pvn:/tmp/refwork/pvnstubs
  /work/main/.venv/bin/python /tmp/refwork/drivers/make_pvn.py``. The repository (1.1 GB) could
  not be fetched whole: the files ``train_step`` needs were transcribed verbatim from the stored
  copy (networks.py, indicator_functions.py, utils/mesh_utils.py, utils/tree_utils.py in full;
  state.py up to ``create_train_state``; offline.py up to the end of ``train_step``). Stubs:
  ``pvn/datasets/atari.py``, ``pvn/utils/config_utils.py``, ``tensorflow``,
  ``clu.metric_writers``, ``clu.periodic_actions`` (all used only by the train loop). Shims for
  the newer JAX/Flax: ``jax.experimental.maps`` (removed) with an empty mesh, ``jax.tree_map``
  aliased, ``flax_return_frozendict`` on. An optax transformation records the gradients
  ``train_step`` hands to ``apply_gradients`` (and returns zero updates); the loss values are the
  authors' clu metrics. Layouts: Flax NHWC/HWIO and vmapped heads are rearranged to torch
  (:func:`flax_to_torch`); the encoder is a torch copy of ``NatureDqnEncoder`` with Flax's
  ``SAME`` padding (:class:`SameNatureEncoder`). The reference's frozen random indicator networks
  also pad ``SAME`` while rlaux's :class:`~rlaux.objectives.indicators.RNDIndicator` pads none, so
  their weights cannot be copied; their outputs are planted into an rlaux ``RNDIndicator``
  (:func:`planted_indicator`), whose learned bias, firing rule and quantile loss are rlaux's.
  Same scale on both sides: total = TD + QR.

Reference vs rlaux numbers and the driver scripts: ``/tmp/refwork/README.txt`` on the machine
that made them (not part of the repository).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rlaux.encoders import MLPEncoder
from rlaux.objectives.indicators import RNDIndicator
from rlaux.objectives.predictive import PredictiveConfig, PredictiveObjective
from rlaux.objectives.proto_value import ProtoValueConfig, ProtoValueObjective
from rlaux.objectives.taco import TACOConfig, TACOObjective
from rlaux.objectives.tcrl import TCRLConfig, TCRLObjective
from rlaux.types import WindowBatch

FIXTURES = Path(__file__).parent / "fixtures" / "reference"
#: Losses: relative tolerance of float32 arithmetic done in another order. Gradients: the same
#: relative tolerance plus an absolute one of RTOL times the largest reference gradient entry of
#: the fixture (entries that are sums of cancelling terms, e.g. a bias gradient of the repulsion
#: terms, carry the rounding of those terms, not of their small sum).
RTOL, VALUE_ATOL = 1e-5, 1e-8


# ---------------------------------------------------------------------------- fixture helpers
@pytest.fixture(autouse=True)
def _keep_global_rng() -> Iterator[None]:
    """Building the objectives draws initial weights (all overwritten) from torch's global RNG;
    restore it afterwards so these tests do not shift the random stream of tests run after them."""
    with torch.random.fork_rng():
        yield


def load_fixture(name: str) -> dict[str, np.ndarray]:
    """All arrays of ``tests/fixtures/reference/<name>.npz``."""
    with np.load(FIXTURES / f"{name}.npz") as data:
        return {key: data[key] for key in data.files}


def group(fixture: dict[str, np.ndarray], prefix: str) -> dict[str, torch.Tensor]:
    """The arrays whose key starts with ``<prefix>.``, as tensors, keyed without the prefix."""
    start = prefix + "."
    return {key[len(start) :]: torch.from_numpy(np.array(value)) for key, value in fixture.items()
            if key.startswith(start)}


def scalar(fixture: dict[str, np.ndarray], name: str) -> float:
    """The expected value ``out.<name>`` of a fixture."""
    return float(fixture[f"out.{name}"])


#: Rearranges a reference tensor (weight or gradient, named by its reference name) into the
#: layout of its rlaux parameter; the torch references need none.
Layout = Callable[[str, torch.Tensor], torch.Tensor]


def same_layout(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """The identity :data:`Layout` (torch references store torch layouts)."""
    return tensor


def load_weights(mapping: dict[str, torch.Tensor], fixture: dict[str, np.ndarray], layout: Layout = same_layout) -> None:
    """Copy every reference weight into its rlaux parameter; every reference weight must be mapped."""
    weights = group(fixture, "w")
    assert set(mapping) == set(weights), f"unmapped: {set(weights) ^ set(mapping)}"
    with torch.no_grad():
        for name, param in mapping.items():
            value = layout(name, weights[name])
            assert param.shape == value.shape, name
            param.copy_(value)


def assert_gradients(mapping: dict[str, torch.Tensor], fixture: dict[str, np.ndarray],
                     layout: Layout = same_layout) -> None:
    """rlaux's ``.grad`` of each mapped parameter equals the reference gradient stored for it."""
    grads = group(fixture, "grad")
    assert grads, "the fixture stores no gradients"
    atol = RTOL * max(float(g.abs().max()) for g in grads.values())
    for name, reference in grads.items():
        expected = layout(name, reference)
        actual = mapping[name].grad
        assert actual is not None, f"no gradient reached the rlaux parameter of {name}"
        torch.testing.assert_close(actual, expected, rtol=RTOL, atol=atol, msg=lambda m, n=name: f"{n}: {m}")


def assert_value(actual: torch.Tensor | float, expected: float, what: str) -> None:
    """``actual`` (a scalar) equals the reference value ``expected`` to :data:`RTOL`."""
    torch.testing.assert_close(torch.as_tensor(float(torch.as_tensor(actual).detach()), dtype=torch.float64),
                               torch.as_tensor(expected, dtype=torch.float64), rtol=RTOL, atol=VALUE_ATOL,
                               msg=lambda m: f"{what}: {m}")


def window_batch(obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
                 terminated: torch.Tensor | None = None) -> WindowBatch:
    """A fully valid WindowBatch (mask 1 everywhere) from obs [B, L+1, ...], action [B, L, ...],
    reward [B, L]; the n-step fields are placeholders (no auxiliary loss reads them)."""
    B, L = reward.shape
    terminated = torch.zeros(B, L) if terminated is None else terminated
    return WindowBatch(obs=obs, action=action, reward=reward, terminated=terminated, mask=torch.ones(B, L),
                       nstep_reward=torch.zeros(B), nstep_discount=torch.ones(B), nstep_next_obs=obs[:, -1])


def box(*shape: int, dtype: type = np.float32, low: float = -np.inf, high: float = np.inf) -> gym.spaces.Box:
    """A Box space of the given shape (unbounded float32 by default)."""
    return gym.spaces.Box(low, high, shape, dtype)


# ---------------------------------------------------------------------------------- TCRL
def tcrl_parameters(objective: TCRLObjective, encoder: MLPEncoder) -> dict[str, torch.Tensor]:
    """Reference (``zhaoyi11/tcrl``) parameter name -> rlaux parameter."""
    modules = {
        "encoder._encoder": encoder.net,
        "encoder_tar._encoder": objective.target.encoder.net,  # the EMA copy made by bind_encoder
        "trans._dynamics": objective.dynamics,
        "trans._reward": objective.reward_head,
    }
    return {f"{prefix}.{name}": param for prefix, module in modules.items()
            for name, param in module.named_parameters()}


def test_tcrl_matches_reference_update_enc_trans() -> None:
    fx = load_fixture("tcrl")
    x = group(fx, "in")
    H = int(scalar(fx, "horizon"))
    obs_dim, a_dim = x["obs"].shape[1], x["action"].shape[2]
    latent = fx["w.encoder._encoder.4.weight"].shape[0]
    hidden = [int(fx["w.trans._dynamics.0.weight"].shape[0]), int(fx["w.trans._dynamics.2.weight"].shape[0])]

    encoder = MLPEncoder(obs_dim, latent, hidden, "elu")
    cfg = TCRLConfig(horizon=H, rho=scalar(fx, "rho"), hidden=hidden, activation="elu", target="ema")
    objective = TCRLObjective(cfg, latent, box(obs_dim), box(a_dim, low=-1.0, high=1.0))
    objective.bind_encoder(encoder)
    mapping = tcrl_parameters(objective, encoder)
    load_weights(mapping, fx)

    # Reference layout: obs [B, D], action / next_obses / reward [H, B, ...] (time-major).
    obs = torch.cat([x["obs"][:, None], x["next_obses"].transpose(0, 1)], dim=1)
    batch = window_batch(obs, x["action"].transpose(0, 1), x["reward"][..., 0].T)
    loss, metrics = objective.loss(batch, encoder)
    loss.backward()

    assert_value(loss * H, scalar(fx, "total_loss"), "loss * H")  # rlaux divides the loss by H
    assert_value(metrics["state_loss"], scalar(fx, "consistency_loss"), "state_loss")
    assert_value(metrics["reward_loss"], scalar(fx, "reward_loss"), "reward_loss")
    assert_gradients(mapping, fx)


# ---------------------------------------------------------------------------------- TACO
def taco_parameters(objective: TACOObjective, encoder: MLPEncoder) -> dict[str, torch.Tensor]:
    """Reference (``FrankZheng2022/TACO``, the ``TACO`` module) parameter name -> rlaux parameter."""
    modules = {
        "encoder": encoder.net,
        "proj_s": objective.proj_s,
        "proj_sa": objective.proj_sa,
        "reward": objective.reward_head,
        "act_tok.action_tokenizer": objective.action_encoder.step,
        "act_tok.action_seq_tokenizer": objective.action_encoder.seq,
    }
    mapping = {f"{prefix}.{name}": param for prefix, module in modules.items()
               for name, param in module.named_parameters()}
    mapping["W"] = objective.W
    return mapping


def test_taco_matches_reference_update_taco() -> None:
    fx = load_fixture("taco")
    x = group(fx, "in")
    K = int(scalar(fx, "multistep"))
    obs_dim, a_dim = x["episode_observation"].shape[2], x["episode_action"].shape[2]
    enc_hidden, repr_dim = fx["w.encoder.0.weight"].shape[0], fx["w.encoder.2.weight"].shape[0]
    feature, hidden = fx["w.proj_s.0.weight"].shape[0], fx["w.proj_sa.0.weight"].shape[0]

    encoder = MLPEncoder(obs_dim, repr_dim, [enc_hidden], "relu")
    cfg = TACOConfig(horizon=K, latent_dim=feature, hidden=hidden, curl=True, reward=True,
                     gamma=scalar(fx, "gamma"), key_encoder="online_nograd", augment=False)
    objective = TACOObjective(cfg, repr_dim, box(obs_dim), box(a_dim, low=-1.0, high=1.0))
    objective.bind_encoder(encoder)
    mapping = taco_parameters(objective, encoder)
    load_weights(mapping, fx)

    # Each stored episode has a dummy first step; the authors' sampler starts every window at 1:
    # o_0 .. o_K with a_1 .. a_K and r_1 .. r_K.
    batch = window_batch(x["episode_observation"], x["episode_action"][:, 1:], x["episode_reward"][:, 1:])
    torch.testing.assert_close(batch.obs[:, 0], x["obs"])  # the window is the sample the reference trained on
    torch.testing.assert_close(batch.obs[:, K], x["r_next_obs"])
    torch.testing.assert_close(batch.action, x["action_seq"])
    loss, metrics = objective.loss(batch, encoder)
    loss.backward()

    assert_value(metrics["taco_loss"], scalar(fx, "taco_loss"), "taco_loss")
    assert_value(metrics["curl_loss"], scalar(fx, "curl_loss"), "curl_loss")
    assert_value(metrics["reward_loss"], scalar(fx, "reward_loss"), "reward_loss (K-step reward = critic's n-step)")
    assert_value(loss, scalar(fx, "total_loss"), "total loss")
    assert_gradients(mapping, fx)


# ---------------------------------------------------------------------------- predictive
class GridConvEncoder(nn.Module):
    """The auxrl gridworld encoder (``networks/yamls/dm.yaml``): Conv(k2, 16) + ReLU + Conv(k2, 32)
    + ReLU + MaxPool(2), then Linear(-> 32) + ReLU + Linear(32 -> latent), on float images [C, H, W]."""

    def __init__(self, obs_shape: tuple[int, ...], latent: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(nn.Conv2d(obs_shape[0], 16, 2), nn.ReLU(), nn.Conv2d(16, 32, 2), nn.ReLU(),
                                   nn.MaxPool2d(2))
        flat = self.convs(torch.zeros(1, *obs_shape)).numel()
        self.fc = nn.Sequential(nn.Linear(flat, 32), nn.ReLU(), nn.Linear(32, latent))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(obs.float()).flatten(1))


def predictive_parameters(objective: PredictiveObjective, encoder: GridConvEncoder) -> dict[str, torch.Tensor]:
    """Reference (``chingf/auxrl``: ``Network.encoder``, ``Network.T``) parameter name -> rlaux parameter.
    The reference T is ``x[:, :latent] + fc(x)`` with fc = [ReLU, Linear, ReLU, Linear]."""
    delta = objective.transition.delta
    return {
        "encoder._convs.0.weight": encoder.convs[0].weight, "encoder._convs.0.bias": encoder.convs[0].bias,
        "encoder._convs.2.weight": encoder.convs[2].weight, "encoder._convs.2.bias": encoder.convs[2].bias,
        "encoder._fc.0.weight": encoder.fc[0].weight, "encoder._fc.0.bias": encoder.fc[0].bias,
        "encoder._fc.2.weight": encoder.fc[2].weight, "encoder._fc.2.bias": encoder.fc[2].bias,
        "T._fc.1.weight": delta[0].weight, "T._fc.1.bias": delta[0].bias,
        "T._fc.3.weight": delta[2].weight, "T._fc.3.bias": delta[2].bias,
    }


@pytest.mark.parametrize("mode", ["next", "bootstrapped"])
def test_predictive_matches_reference_agent_update(mode: str) -> None:
    fx = load_fixture(f"predictive_{mode}")
    x = group(fx, "in")
    obs_shape = tuple(x["obs"].shape[2:])
    latent = fx["w.encoder._fc.2.weight"].shape[0]
    n_actions = fx["w.T._fc.1.weight"].shape[1] - latent  # T reads [z, one-hot a]
    hidden = [int(fx["w.T._fc.1.weight"].shape[0])]

    encoder = GridConvEncoder(obs_shape, latent)
    cfg = PredictiveConfig(mode=mode, gamma_pred=scalar(fx, "pred_gamma"), distance="mse", collapse="repulsion",
                           pred_weight=scalar(fx, "w_pos"), neg_random_weight=scalar(fx, "w_neg_random"),
                           neg_neighbour_weight=scalar(fx, "w_neg_neighbour"), hidden=hidden, activation="relu",
                           input_activation=True)
    objective = PredictiveObjective(cfg, latent, box(*obs_shape), gym.spaces.Discrete(n_actions))
    objective.bind_encoder(encoder)
    mapping = predictive_parameters(objective, encoder)
    load_weights(mapping, fx)

    batch = window_batch(x["obs"], x["action"].long(), x["reward"])  # obs [B, steps + 1, C, H, W]
    loss, metrics = objective.loss(batch, encoder)
    loss.backward()

    assert_value(cfg.pred_weight * metrics["pred_loss"], scalar(fx, "weighted_pos"), "weighted prediction loss")
    if mode == "next":
        assert_value(cfg.neg_random_weight * metrics["neg_random"], scalar(fx, "weighted_neg_random"), "negR")
        assert_value(cfg.neg_neighbour_weight * metrics["neg_neighbour"], scalar(fx, "weighted_neg_neighbour"), "negN")
    assert_value(loss, scalar(fx, "total_loss"), "total auxiliary loss")
    assert_gradients(mapping, fx)


# --------------------------------------------------------------------------- proto_value
def same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Zero padding of square images equal to Flax/XLA ``padding='SAME'`` (low side gets the floor)."""
    size = x.shape[-1]
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return F.pad(x, (total // 2, total - total // 2) * 2)


class SameNatureEncoder(nn.Module):
    """PVN's ``networks.NatureDqnEncoder`` in torch: Conv 8/4, 4/2, 3/1 with Flax's default ``SAME``
    padding (rlaux's ``NatureCNN`` uses none), ReLUs, flatten, Dense + ReLU; uint8 input / 255
    (``DsmNetwork`` scales before its encoder)."""

    def __init__(self, channels: int, widths: tuple[int, int, int], flat: int, features: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(channels, widths[0], 8, 4), nn.Conv2d(widths[0], widths[1], 4, 2),
                                    nn.Conv2d(widths[1], widths[2], 3, 1)])
        self.dense = nn.Linear(flat, features)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float() / 255.0
        for conv in self.convs:
            x = torch.relu(conv(same_pad(x, conv.kernel_size[0], conv.stride[0])))
        return torch.relu(self.dense(x.flatten(1)))  # spatial 1x1 here, so HWC and CHW flatten alike


def flax_to_torch(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """Flax layouts -> torch: Conv kernel [kh, kw, in, out] -> [out, in, kh, kw]; Dense kernel
    [in, out] -> [out, in]; the vmapped task heads ``aux_tasks`` kernel [N, F, A] / bias [N, A] ->
    one Linear of N * A task-major outputs ([N * A, F] / [N * A])."""
    if "aux_tasks" in name:
        return tensor.permute(0, 2, 1).reshape(-1, tensor.shape[1]) if tensor.dim() == 3 else tensor.reshape(-1)
    if name.endswith("kernel"):
        return tensor.permute(3, 2, 0, 1) if tensor.dim() == 4 else tensor.T
    return tensor


def proto_value_parameters(objective: ProtoValueObjective, encoder: SameNatureEncoder) -> dict[str, torch.Tensor]:
    """Reference (PVN: ``DsmNetwork`` params, ``target_params``, the indicator's ``reward_bias``)
    parameter name -> rlaux parameter."""
    mapping = {"indicator.params.reward_bias": objective.indicator.bias}
    for side, enc, heads in (("online", encoder, objective.heads),
                             ("target", objective.target.encoder, objective.target.head)):
        layers = {f"Conv_{i}": conv for i, conv in enumerate(enc.convs)} | {"Dense_0": enc.dense}
        for layer_name, layer in layers.items():
            mapping[f"{side}.params.encoder.{layer_name}.kernel"] = layer.weight
            mapping[f"{side}.params.encoder.{layer_name}.bias"] = layer.bias
        mapping[f"{side}.params.aux_tasks.kernel"] = heads.weight
        mapping[f"{side}.params.aux_tasks.bias"] = heads.bias
    return mapping


def planted_indicator(outputs: torch.Tensor, target_rate: float) -> RNDIndicator:
    """rlaux's RND indicator (learned threshold bias, firing rule, quantile loss) on the reference
    random networks' outputs: those networks use ``SAME`` padding, rlaux's none, so the weights do
    not transfer; their outputs [B, N] for the fixture's observations are planted instead."""
    indicator = RNDIndicator(box(1), outputs.shape[1], target_rate, num_nets=1, hidden=())
    indicator.outputs = lambda obs: outputs
    return indicator


def test_proto_value_matches_reference_train_step() -> None:
    fx = load_fixture("proto_value")
    x = group(fx, "in")
    obs = x["observation"].permute(3, 2, 0, 1)  # reference [H, W, C, B] -> [B, C, H, W]
    next_obs = x["next_observation"].permute(3, 2, 0, 1)
    n_tasks, features, n_actions = fx["w.online.params.aux_tasks.kernel"].shape
    widths = tuple(int(fx[f"w.online.params.encoder.Conv_{i}.kernel"].shape[3]) for i in range(3))
    flat = int(fx["w.online.params.encoder.Dense_0.kernel"].shape[0])
    obs_space = box(*obs.shape[1:], dtype=np.uint8, low=0, high=255)

    encoder = SameNatureEncoder(obs.shape[1], widths, flat, features)
    cfg = ProtoValueConfig(num_tasks=n_tasks, indicator="hash", target_rate=scalar(fx, "target_rate"),
                           gamma=scalar(fx, "discount"), qr_warmup=0, qr_stop=0)
    objective = ProtoValueObjective(cfg, features, obs_space, gym.spaces.Discrete(n_actions))
    objective.indicator = planted_indicator(x["indicator_outputs"], cfg.target_rate)
    objective.bind_encoder(encoder)
    mapping = proto_value_parameters(objective, encoder)
    load_weights(mapping, fx, flax_to_torch)

    batch = window_batch(torch.stack([obs, next_obs], 1), x["action"][:, None], torch.zeros(obs.shape[0], 1),
                         terminated=x["terminal"])
    loss, metrics = objective.loss(batch, encoder)
    loss.backward()

    assert_value(metrics["td_loss"], scalar(fx, "tde_loss"), "TD loss")
    assert_value(metrics["qr_loss"], scalar(fx, "proportion_loss"), "QR (proportion) loss")
    assert_value(metrics["indicator_rate"], scalar(fx, "indicator_rate"), "fraction of indicators firing")
    assert_value(loss, scalar(fx, "total_loss"), "total loss (QR warm-up over)")
    assert_gradients(mapping, fx, flax_to_torch)
