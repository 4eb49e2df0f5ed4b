"""RolloutStorage: GAE with NEXT_STEP autoreset, windows for sequence objectives, masked
advantage normalisation."""

from __future__ import annotations

import pytest
import torch

from rlaux.buffers.rollout import RolloutStorage, normalize_advantages

GAMMA, LAM = 0.9, 0.8

# Two envs, six steps. Env 0: an episode that terminates at t=1, the bogus reset step at t=2
# (its obs is the final obs of that episode), an episode truncated at t=4, the reset step at
# t=5. Env 1: one episode, truncated at the last step t=5 (bootstraps from next_obs).
# Env 2: one episode still running when the rollout ends (bootstraps from next_obs).
REWARD = [[1.0, 1.0, 0.0, 1.0, 1.0, 0.0], [0.5, 0.5, 0.5, 0.5, 0.5, 2.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]
TERM = [[0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]
TRUNC = [[0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0]]
VALID = [[1, 1, 0, 1, 1, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]]
VALUE = [[0.5, 0.2, 3.0, 0.4, 0.6, 2.0], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [1.0, 0.0, -1.0, 0.5, 0.25, 0.125]]
NEXT_VALUE = [0.7, 1.5, -0.3]
ENVS = range(3)


def filled_storage() -> RolloutStorage:
    """The scenario above; obs[t, n] = (t, n) so windows can be traced back to their start."""
    T, N = 6, 3
    storage = RolloutStorage(T, N, (2,), torch.float32, (), torch.int64)
    for t in range(T):
        storage.add(
            obs=torch.tensor([[t, float(n)] for n in ENVS]),
            action=torch.tensor([10 * t + n for n in ENVS]),
            logprob=torch.zeros(N),
            value=torch.tensor([VALUE[n][t] for n in ENVS]),
            reward=torch.tensor([REWARD[n][t] for n in ENVS]),
            terminated=torch.tensor([bool(TERM[n][t]) for n in ENVS]),
            truncated=torch.tensor([bool(TRUNC[n][t]) for n in ENVS]),
            valid=torch.tensor([bool(VALID[n][t]) for n in ENVS]),
        )
    assert storage.full
    storage.finish(torch.tensor([[6.0, float(n)] for n in ENVS]), torch.tensor(NEXT_VALUE), GAMMA, LAM)
    return storage


def test_gae_matches_hand_computation() -> None:
    storage = filled_storage()
    g, gl = GAMMA, GAMMA * LAM
    v0, v1, v2 = VALUE
    # env 0
    a0_1 = 1.0 - v0[1]  # terminated: no bootstrap
    a0_0 = (1.0 + g * v0[1] - v0[0]) + gl * a0_1
    a0_4 = 1.0 + g * v0[5] - v0[4]  # truncated: bootstraps from V(final obs), stored at t=5
    a0_3 = (1.0 + g * v0[4] - v0[3]) + gl * a0_4
    expected0 = [a0_0, a0_1, 0.0, a0_3, a0_4, 0.0]  # reset steps: 0
    # env 1: truncated at the last step, bootstraps from the value of next_obs
    a1_5 = 2.0 + g * NEXT_VALUE[1] - v1[5]
    a1_4 = (0.5 + g * v1[5] - v1[4]) + gl * a1_5
    a1_3 = (0.5 + g * v1[4] - v1[3]) + gl * a1_4
    a1_2 = (0.5 + g * v1[3] - v1[2]) + gl * a1_3
    a1_1 = (0.5 + g * v1[2] - v1[1]) + gl * a1_2
    a1_0 = (0.5 + g * v1[1] - v1[0]) + gl * a1_1
    expected1 = [a1_0, a1_1, a1_2, a1_3, a1_4, a1_5]
    # env 2: no episode end, the last step bootstraps from the value of next_obs
    r2 = REWARD[2]
    a2 = [0.0] * 7
    for t in (5, 4, 3, 2, 1, 0):
        v_next = NEXT_VALUE[2] if t == 5 else v2[t + 1]
        a2[t] = (r2[t] + g * v_next - v2[t]) + gl * a2[t + 1]
    expected = torch.tensor([expected0, expected1, a2[:6]]).T
    torch.testing.assert_close(storage.advantages, expected)
    torch.testing.assert_close(storage.returns, expected + torch.tensor(VALUE).T)
    flat = storage.flat()
    assert flat["valid"].tolist() == torch.tensor(VALID).T.reshape(-1).tolist()


def test_storage_overflow_and_unfinished_use_raise() -> None:
    storage = RolloutStorage(1, 1, (2,), torch.float32, (), torch.int64)
    with pytest.raises(RuntimeError):
        storage.windows(4, 2, GAMMA)
    one = ([torch.zeros(1, 2), torch.zeros(1, dtype=torch.int64)] + [torch.zeros(1)] * 3
           + [torch.zeros(1, dtype=torch.bool)] * 2 + [torch.ones(1, dtype=torch.bool)])
    storage.add(*one)
    with pytest.raises(RuntimeError):
        storage.add(*one)
    storage.reset()
    storage.add(*one)


def _expected_window(t0: int, n: int, horizon: int) -> tuple[list[float], int, bool]:
    """Reference mask by walking forward: (mask, n-step length m, ended by termination)."""
    mask, ended, term = [], False, False
    for k in range(horizon):
        t = t0 + k
        real = t < 6 and not ended
        mask.append(1.0 if real else 0.0)
        if real and (TERM[n][t] or TRUNC[n][t]):
            ended, term = True, bool(TERM[n][t])
    return mask, int(sum(mask)), term


def test_windows_respect_episode_ends_and_rollout_end() -> None:
    torch.manual_seed(0)
    storage = filled_storage()
    horizon = 3
    batch = storage.windows(512, horizon, GAMMA)
    assert batch.obs.shape == (512, horizon + 1, 2)
    assert batch.action.shape == batch.reward.shape == batch.mask.shape == (512, horizon)
    starts = {(int(t), int(n)) for t, n in batch.obs[:, 0].tolist()}
    valid_starts = {(t, n) for n in ENVS for t in range(6) if VALID[n][t]}
    assert starts == valid_starts  # every valid start drawn, never a reset step
    for i in range(512):
        t0, n = (int(x) for x in batch.obs[i, 0].tolist())
        mask, m, term = _expected_window(t0, n, horizon)
        assert batch.mask[i].tolist() == mask, (t0, n)
        for k in range(m):  # real steps: the stored transition, and o_{t+k+1} (final obs / next_obs included)
            assert batch.obs[i, k + 1].tolist() == [t0 + k + 1, n]
            assert int(batch.action[i, k]) == 10 * (t0 + k) + n
            assert float(batch.reward[i, k]) == REWARD[n][t0 + k]
            assert float(batch.terminated[i, k]) == TERM[n][t0 + k]
        expected_r = sum(GAMMA**k * REWARD[n][t0 + k] for k in range(m))
        assert float(batch.nstep_reward[i]) == pytest.approx(expected_r)
        assert float(batch.nstep_discount[i]) == pytest.approx(0.0 if term else GAMMA**m)
        assert batch.nstep_next_obs[i].tolist() == [t0 + m, n]
    assert torch.isfinite(batch.obs).all() and torch.isfinite(batch.reward).all()


def test_windows_nstep_shorter_than_horizon() -> None:
    storage = filled_storage()
    batch = storage.windows(256, 3, GAMMA, nstep=1)
    torch.testing.assert_close(batch.nstep_reward, batch.reward[:, 0])
    torch.testing.assert_close(batch.nstep_next_obs, batch.obs[:, 1])
    with pytest.raises(ValueError, match="nstep"):
        storage.windows(4, 2, GAMMA, nstep=3)


def test_normalize_advantages_uses_valid_entries_only() -> None:
    adv = torch.tensor([1.0, 2.0, 3.0, 1e6, -1e6])
    valid = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0])
    out = normalize_advantages(adv, valid)
    torch.testing.assert_close(out[:3], torch.tensor([-1.0, 0.0, 1.0]), atol=1e-6, rtol=0)
    assert out[3:].tolist() == [0.0, 0.0]
    other = normalize_advantages(torch.tensor([1.0, 2.0, 3.0, -5.0, 7.0]), valid)
    torch.testing.assert_close(out, other)
