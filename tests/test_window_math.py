"""rlaux.windows: the WindowBatch mask prefix and n-step fields shared by every sampler.

Hand-computed cases at episode ends (terminated vs truncated, n-step crossing an end, a mask
cut by missing data), a plain-loop reference on random flags, and the proof on every small
window that ``terminated[m-1]`` equals "a termination among the m unmasked steps".
"""

from __future__ import annotations

import itertools

import pytest
import torch

from rlaux.windows import nstep_fields, window_mask


def _bools(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.bool)


def _obs(batch: int, length: int) -> torch.Tensor:
    """obs[b, p] = [10 b + p]: every window position identifies itself."""
    return (10 * torch.arange(batch)[:, None] + torch.arange(length + 1)).float()[..., None]


@pytest.mark.parametrize("valid,done,expected", [
    ([1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1]),  # one episode, all stored
    ([1, 1, 1, 1], [0, 1, 0, 0], [1, 1, 0, 0]),  # the done step keeps its mask, the next episode is cut
    ([1, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0]),  # an episode that ends at the window's first step
    ([1, 1, 0, 1], [0, 0, 0, 0], [1, 1, 0, 0]),  # missing data (write head, reset step) ends the prefix
    ([1, 0, 1, 1], [0, 0, 0, 1], [1, 0, 0, 0]),  # ... and nothing after it comes back
    ([1, 1, 0, 0], [0, 0, 1, 1], [1, 1, 0, 0]),  # done flags at missing steps are ignored
])
def test_window_mask_is_the_prefix_up_to_the_first_end(valid, done, expected) -> None:
    mask = window_mask(_bools([valid]), _bools([done]))
    assert mask.dtype == torch.bool and mask[0].tolist() == [bool(x) for x in expected]


@pytest.mark.parametrize("end", ["term", "trunc"])
def test_nstep_crossing_an_episode_end(end: str) -> None:
    # Window [r0, r1 | episode ends at step 1 | r2, r3 of the next episode], n = 3, gamma = 0.5.
    done = _bools([[0, 1, 0, 0]])
    terminated = torch.tensor([[0.0, 1.0 if end == "term" else 0.0, 0.0, 0.0]])
    mask = window_mask(_bools([[1, 1, 1, 1]]), done)
    reward = torch.tensor([[1.0, 2.0, 1e6, 1e6]])  # the next episode's rewards must not leak in
    out = nstep_fields(_obs(1, 4), reward, terminated, mask, nstep=3, gamma=0.5)
    assert mask[0].tolist() == [True, True, False, False]
    assert out.reward.item() == 1.0 + 0.5 * 2.0
    assert out.discount.item() == (0.0 if end == "term" else 0.25)  # a truncation bootstraps from the final obs
    assert out.next_obs[0, 0].item() == 2.0  # obs[:, 2]: the episode's final observation


def test_nstep_shorter_than_the_window_and_cut_by_missing_data() -> None:
    gamma = 0.9
    valid = _bools([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 1]])
    done = _bools([[0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]])
    terminated = torch.tensor([[0.0] * 4, [0.0] * 4, [1.0, 0.0, 0.0, 0.0]])
    reward = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 1.0, 1.0, 1.0]])
    out = nstep_fields(_obs(3, 4), reward, terminated, window_mask(valid, done), nstep=3, gamma=gamma)
    torch.testing.assert_close(out.reward, torch.tensor([1 + gamma * 2 + gamma**2 * 3, 5 + gamma * 6, 9.0]))
    # continuing: gamma^n; cut by missing data after 2 steps: bootstrap gamma^2 from obs[:, 2]; terminated at once: 0
    torch.testing.assert_close(out.discount, torch.tensor([gamma**3, gamma**2, 0.0]))
    assert out.next_obs[:, 0].tolist() == [3.0, 12.0, 21.0]


def _naive(valid: list[bool], done: list[bool], term: list[bool], reward: list[float], nstep: int, gamma: float):
    """Walk the window forward: mask, n-step return, discount (0 on any termination), index m."""
    mask, alive = [], True
    for k in range(len(valid)):
        mask.append(alive and valid[k])
        alive = mask[-1] and not done[k]
    m = sum(mask[:nstep])
    ret = sum(gamma**i * reward[i] for i in range(m))
    disc = 0.0 if any(term[i] for i in range(m)) else gamma**m
    return mask, ret, disc, m


def test_against_a_plain_loop_on_random_flags() -> None:
    gen = torch.Generator().manual_seed(0)
    B, L, gamma = 500, 6, 0.97
    valid = torch.rand(B, L, generator=gen) < 0.85
    valid[:, 0] = True  # samplers start windows at valid steps only
    done = torch.rand(B, L, generator=gen) < 0.3
    terminated = (done & (torch.rand(B, L, generator=gen) < 0.5)).float()
    reward = torch.randn(B, L, generator=gen)
    obs = _obs(B, L)
    mask = window_mask(valid, done)
    for nstep in range(1, L + 1):
        out = nstep_fields(obs, reward, terminated, mask, nstep, gamma)
        for b in range(B):
            want_mask, ret, disc, m = _naive(valid[b].tolist(), done[b].tolist(), terminated[b].bool().tolist(),
                                             reward[b].tolist(), nstep, gamma)
            assert mask[b].tolist() == want_mask
            assert out.reward[b].item() == pytest.approx(ret, abs=1e-5)
            assert out.discount[b].item() == pytest.approx(disc, abs=1e-6)
            assert out.next_obs[b, 0].item() == obs[b, m, 0].item()


def test_last_step_termination_equals_any_termination_on_every_window() -> None:
    # Every (valid, done, terminated within done) pattern of 4 steps that can start a window:
    # the two discount rules (replay: terminated[m-1]; the old rollout code: any termination
    # among the m unmasked steps) give bit-identical values.
    L, gamma = 4, 0.9
    rows = []
    for valid, done in itertools.product(itertools.product([0, 1], repeat=L), repeat=2):
        if not valid[0]:
            continue
        for term in itertools.product([0, 1], repeat=L):
            if all(t <= d for t, d in zip(term, done)):
                rows.append((valid, done, term))
    valid, done, term = (torch.tensor([r[i] for r in rows]) for i in range(3))
    mask = window_mask(valid.bool(), done.bool())
    terminated = term.float()
    for nstep in range(1, L + 1):
        out = nstep_fields(_obs(len(rows), L), torch.zeros(len(rows), L), terminated, mask, nstep, gamma)
        m = mask[:, :nstep].sum(1)
        any_term = (terminated[:, :nstep] * mask[:, :nstep]).sum(1) > 0
        rollout_rule = torch.where(any_term, torch.zeros(len(rows)), gamma ** m.float())
        assert torch.equal(out.discount, rollout_rule)
    assert len(rows) == 2 ** (L - 1) * 3 ** L  # valid[0] = 1; per step (done, terminated) in 3 ways
