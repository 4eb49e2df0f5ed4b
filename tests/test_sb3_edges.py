"""rlaux.sb3 edges: memory-optimised replay, loading with another objective list, duplicate
objectives. Everything goes through the real SB3 classes (short runs, small networks)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from rlaux.sb3 import AuxDQN, AuxSAC, replay_window_source
from rlaux.types import check_unique_objectives

SMALL_TCRL = {"tcrl": {"horizon": 3, "hidden": [32, 32]}}
NO_TIMEOUTS = {"handle_timeout_termination": False}  # SB3 needs it with optimize_memory_usage=True


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sac(**kwargs: Any) -> AuxSAC:
    opts = {"aux": SMALL_TCRL, "learning_starts": 64, "batch_size": 32, "seed": 0,
            "policy_kwargs": {"net_arch": [32, 32]}, **kwargs}
    return AuxSAC("MlpPolicy", "Pendulum-v1", **opts)


def dqn(**kwargs: Any) -> AuxDQN:
    opts = {"aux": SMALL_TCRL, "learning_starts": 64, "batch_size": 32, "train_freq": 4, "seed": 0,
            "policy_kwargs": {"net_arch": [32, 32]}, **kwargs}
    return AuxDQN("MlpPolicy", "CartPole-v1", **opts)


# ------------------------------------------------------------------ optimize_memory_usage
def test_sac_trains_with_a_memory_optimised_replay() -> None:
    model = sac(optimize_memory_usage=True, replay_buffer_kwargs=NO_TIMEOUTS)
    model.learn(200)
    assert model.replay_buffer.optimize_memory_usage and not hasattr(model.replay_buffer, "next_observations")
    assert model.aux_metrics["aux/tcrl/loss"] > 0


def test_dqn_takes_optimize_memory_usage_through_replay_buffer_kwargs() -> None:
    # plain SB3 passes it twice to the buffer here (TypeError: got multiple values)
    model = dqn(replay_buffer_kwargs={"optimize_memory_usage": True, **NO_TIMEOUTS})
    assert model.optimize_memory_usage and model.replay_buffer.optimize_memory_usage
    assert "optimize_memory_usage" not in model.replay_buffer_kwargs
    model.learn(200)
    assert model.aux_metrics["aux/tcrl/loss"] > 0


def test_memory_optimised_windows_match_the_plain_replay_on_the_same_stream() -> None:
    # No training (learning_starts > steps): both models collect the same seeded CartPole stream
    # (many episode ends) into 150-slot rings that wrap.
    models = [dqn(learning_starts=10_000, buffer_size=150, replay_buffer_kwargs={"optimize_memory_usage": opt,
                                                                                  **NO_TIMEOUTS})
              for opt in (False, True)]
    for model in models:
        model.learn(400)
    plain, optimised = (replay_window_source(m.replay_buffer) for m in models)
    buf = models[1].replay_buffer
    np.testing.assert_array_equal(models[0].replay_buffer.actions, buf.actions)  # the same stream
    assert optimised.size == plain.size - 1  # row pos holds the next obs of pos - 1: its transition is gone
    rows = (optimised.oldest + np.arange(optimised.size)) % optimised.ring
    done_rows = buf.dones[rows, 0].astype(bool)
    assert 5 < done_rows.sum() < len(rows) / 2

    horizon, space = 4, models[0].action_space
    starts = np.flatnonzero(~done_rows)  # a done step's final obs was overwritten: it cannot start a window
    a = optimised.windows(starts, np.zeros_like(starts), horizon, space, gamma=0.9, nstep=2)
    b = plain.windows(starts + 1, np.zeros_like(starts), horizon, space, gamma=0.9, nstep=2)  # same rows
    for i, age in enumerate(starts):
        dones = buf.dones[(rows[age] + np.arange(horizon)) % buf.buffer_size, 0].astype(bool)
        n = int(a.mask[i].sum())
        # the plain window, less the done step that ends it; beyond the stored data both stop
        n_plain = int(b.mask[i].sum())
        assert n == n_plain - int(dones[n_plain - 1]), age
        assert a.mask[i, :n].all() and not a.mask[i, n:].any()
        torch.testing.assert_close(a.obs[i, : n + 1], b.obs[i, : n + 1], rtol=0, atol=0)
        torch.testing.assert_close(a.reward[i, :n], b.reward[i, :n], rtol=0, atol=0)
        assert torch.equal(a.action[i, :n], b.action[i, :n])
    assert a.terminated.sum() == 0  # the done steps are the ones left out
    np.random.seed(0)
    sampled = optimised.sample(2000, horizon, space)
    first_obs = {tuple(x) for x in sampled.obs[:, 0].tolist()}
    assert first_obs == {tuple(x) for x in a.obs[:, 0].tolist()}  # exactly the non-done stored steps start windows


# ------------------------------------------------------------------ load with another objective list
def test_load_with_other_objectives_names_the_difference(tmp_path) -> None:
    model = sac(aux_kwargs={"optimizer": "separate"})
    path = tmp_path / "sac.zip"
    model.save(path)
    with pytest.raises(ValueError, match=r"objectives \['predictive'\] requested, \['tcrl'\] saved") as err:
        AuxSAC.load(path, aux=["predictive"])
    assert "\n" not in str(err.value) and "state_dict" not in str(err.value)
    with pytest.raises(ValueError, match=r"aux\['tcrl'\]\['horizon'\]=5 requested, 3 saved"):
        AuxSAC.load(path, aux={"tcrl": {"horizon": 5}})
    with pytest.raises(ValueError, match=r"aux_kwargs\['optimizer'\]='joint' requested, 'separate' saved"):
        AuxSAC.load(path, aux_kwargs={"optimizer": "joint"})
    for same in ({}, {"aux": "tcrl"}, {"aux": {"tcrl": {"horizon": 3}}}, {"aux_kwargs": {"optimizer": "separate"}}):
        loaded = AuxSAC.load(path, **same)
        assert loaded.aux_spec == model.aux_spec and sorted(loaded.aux_suite.objectives) == ["tcrl"]


# ------------------------------------------------------------------ duplicate objectives
def test_duplicate_objectives_have_one_rule_and_message() -> None:
    with pytest.raises(ValueError) as err:
        check_unique_objectives(["tcrl", "predictive", "tcrl"])
    assert str(err.value) == "aux lists ['tcrl'] more than once"
    check_unique_objectives(["tcrl", "predictive"])
    with pytest.raises(ValueError) as bridge:
        sac(aux=["tcrl", "tcrl"])
    assert str(bridge.value) == str(err.value)

