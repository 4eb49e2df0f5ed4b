"""ReplayBuffer: window masks, n-step returns, frame stacks, wrap-around, checkpoints.

Most tests store observations that encode where they came from (env id, stream index), so
each sampled window can be identified and checked against the stream it was built from.
The windows' mask and n-step fields come from :mod:`rlaux.windows`, so
``test_randomized_against_naive_reference`` also checks those helpers against a plain-loop
reference on random streams (their hand-computed cases: ``tests/test_window_math.py``).
"""

from __future__ import annotations

import io
from collections import deque
from dataclasses import dataclass, fields

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlaux.buffers import ReplayBuffer
from rlaux.types import WindowBatch

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no cuda"))]
BOX1 = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
ACT1 = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)


def _add_scalar_stream(buf: ReplayBuffer, rewards, ends: dict[int, str], valid) -> None:
    """Single env: step t stores obs [t], action [t], reward rewards[t]; ends[t] in {'term', 'trunc'}."""
    for t, (r, v) in enumerate(zip(rewards, valid)):
        buf.add(np.array([[t]], np.float32), np.array([[t if v else -7.0]], np.float32), np.array([r]),
                np.array([ends.get(t) == "term"]), np.array([ends.get(t) == "trunc"]), np.array([v]))


def _by_start(batch: WindowBatch) -> dict[int, int]:
    """First batch row of every distinct window start (obs[:, 0] holds the stream index)."""
    starts: dict[int, int] = {}
    for b, t in enumerate(batch.obs[:, 0, 0].tolist()):
        starts.setdefault(int(t), b)
    return starts


# A terminated (or truncated) episode of 3 transitions at t = 0..2, the bogus reset step at t = 3
# (obs = final obs of episode 1, garbage reward), then a second episode t = 4..7 (7 = newest).
REWARDS = [1.0, 2.0, 4.0, 100.0, 8.0, 16.0, 32.0, 64.0]
VALID = [True, True, True, False, True, True, True, True]


@pytest.mark.parametrize("end", ["term", "trunc"])
def test_episode_end_masks_final_obs_and_nstep(end: str) -> None:
    buf = ReplayBuffer(16, 1, BOX1, ACT1, seed=1)
    _add_scalar_stream(buf, REWARDS, {2: end}, VALID)
    batch = buf.sample(2000, horizon=3, nstep=3, gamma=0.5)
    rows = _by_start(batch)
    assert sorted(rows) == [0, 1, 2, 4, 5, 6]  # never the bogus step 3, never the newest step 7
    g0 = 0.0 if end == "term" else 1.0  # bootstrap from the final obs only when truncated
    expected = {  # start: (mask, obs, nstep_reward, nstep_discount, nstep_next_obs)
        0: ([1, 1, 1], [0, 1, 2, 3], 1 + 0.5 * 2 + 0.25 * 4, g0 * 0.125, 3),
        1: ([1, 1, 0], [1, 2, 3, 3], 2 + 0.5 * 4, g0 * 0.25, 3),
        2: ([1, 0, 0], [2, 3, 3, 3], 4.0, g0 * 0.5, 3),
        4: ([1, 1, 1], [4, 5, 6, 7], 8 + 0.5 * 16 + 0.25 * 32, 0.125, 7),
        5: ([1, 1, 0], [5, 6, 7, 7], 16 + 0.5 * 32, 0.25, 7),  # the newest step has no next obs yet
        6: ([1, 0, 0], [6, 7, 7, 7], 32.0, 0.5, 7),
    }
    for t, (mask, obs, ret, disc, nxt) in expected.items():
        b = rows[t]
        assert batch.mask[b].tolist() == mask, t
        assert batch.obs[b, :, 0].tolist() == obs, t
        assert batch.nstep_reward[b].item() == pytest.approx(ret), t
        assert batch.nstep_discount[b].item() == pytest.approx(disc), t
        assert batch.nstep_next_obs[b, 0].item() == nxt, t
        n = sum(mask)
        assert batch.reward[b, :n].tolist() == REWARDS[t:t + n]
        assert batch.action[b, :n, 0].tolist() == list(range(t, t + n))  # the bogus action -7 never appears
        assert batch.reward[b, n:].abs().sum() == 0 and batch.terminated[b, n:].abs().sum() == 0
    # The done step (t = 2) is 'terminated' only for terminated episodes.
    assert batch.terminated[rows[0]].tolist() == ([0, 0, 1] if end == "term" else [0, 0, 0])
    assert batch.terminated[rows[2]].tolist() == ([1, 0, 0] if end == "term" else [0, 0, 0])
    assert len(buf) == 7


def test_nstep_shorter_than_horizon_and_continuing_episode() -> None:
    buf = ReplayBuffer(16, 1, BOX1, ACT1, seed=2)
    _add_scalar_stream(buf, [1.0] * 10, {}, [True] * 10)
    batch = buf.sample(500, horizon=4, nstep=2, gamma=0.9)
    b = _by_start(batch)[0]
    assert batch.mask[b].tolist() == [1, 1, 1, 1]
    assert batch.nstep_reward[b].item() == pytest.approx(1.9)
    assert batch.nstep_discount[b].item() == pytest.approx(0.81)  # continuing: gamma^n
    assert batch.nstep_next_obs[b, 0].item() == 2
    one = buf.sample(500, horizon=1, nstep=1, gamma=0.9)
    assert one.obs.shape == (500, 2, 1) and one.action.shape == (500, 1, 1) and one.mask.shape == (500, 1)
    assert torch.equal(one.nstep_next_obs, one.obs[:, 1]) and torch.all(one.mask == 1)


def test_wrap_around_never_crosses_the_write_head() -> None:
    ring = 6
    buf = ReplayBuffer(ring, 1, BOX1, ACT1, seed=3)
    _add_scalar_stream(buf, [float(t) for t in range(23)], {}, [True] * 23)  # wrapped several times
    assert len(buf) == ring and buf.num_window_starts() == ring - 1
    batch = buf.sample(3000, horizon=4, nstep=1)
    rows = _by_start(batch)
    assert sorted(rows) == list(range(23 - ring, 22))  # only stored steps with a stored next obs
    for t, b in rows.items():
        n = min(4, 22 - t)  # the newest step (22) has no next obs: no window reaches past it
        assert batch.mask[b].tolist() == [1.0] * n + [0.0] * (4 - n)
        assert batch.obs[b, :, 0].tolist() == [t + min(p, n) for p in range(5)]
        assert batch.reward[b, :n].tolist() == [float(t + k) for k in range(n)]


def test_bogus_step_never_starts_or_is_inside_a_valid_window() -> None:
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(64, 1, BOX1, ACT1, seed=4)
    valid, ends, t = [], {}, 0
    while t < 60:  # episodes of 1..4 transitions, each followed by its bogus reset step
        n = int(rng.integers(1, 5))
        valid += [True] * n + [False]
        ends[t + n - 1] = "term" if rng.random() < 0.5 else "trunc"
        t += n + 1
    _add_scalar_stream(buf, rng.normal(size=len(valid)), ends, valid)
    batch = buf.sample(4000, horizon=5)
    bogus = {i for i, v in enumerate(valid) if not v}
    for b in range(4000):
        n = int(batch.mask[b].sum())
        ts = batch.obs[b, : n + 1, 0].tolist()  # transitions t..t+n-1 and the next obs of the last
        assert not bogus & set(ts[:n])
        assert ts[n] - 1 in ends or n == 5 or ts[n] == len(valid) - 1  # a window stops at an episode end


def test_mask_stops_after_a_done_step_even_without_a_bogus_step() -> None:
    buf = ReplayBuffer(16, 1, BOX1, ACT1, seed=9)
    _add_scalar_stream(buf, [1.0] * 6, {1: "trunc"}, [True] * 6)  # a stream without the reset step
    batch = buf.sample(500, horizon=3, nstep=3, gamma=0.5)
    b = _by_start(batch)[0]
    assert batch.mask[b].tolist() == [1, 1, 0] and batch.obs[b, :, 0].tolist() == [0, 1, 2, 2]
    assert batch.nstep_discount[b].item() == pytest.approx(0.25)


def test_multiple_envs_sample_proportional_to_valid_count() -> None:
    ring, steps = 40, 40
    buf = ReplayBuffer(2 * ring, 2, BOX1, gym.spaces.Discrete(3), seed=5)
    for t in range(steps):  # env 0: one long episode; env 1: 1-step episodes, every other step bogus
        v1 = t % 2 == 0
        obs = np.array([[t], [1000 + t]], np.float32)
        buf.add(obs, np.array([t % 3, 2]), np.zeros(2), np.array([False, v1]), np.zeros(2, bool), np.array([True, v1]))
    assert len(buf) == 40 + 20 and buf.num_window_starts() == 39 + 20
    batch = buf.sample(20000, horizon=2)
    from_env1 = (batch.obs[:, 0, 0] >= 1000).float().mean().item()
    assert from_env1 == pytest.approx(20 / 59, abs=0.02)
    counts = torch.bincount(batch.obs[:, 0, 0].long() % 1000 + 40 * (batch.obs[:, 0, 0] >= 1000).long())
    counts = counts[counts > 0].float()
    assert len(counts) == 59 and counts.min() > 0.7 * counts.mean() and counts.max() < 1.3 * counts.mean()
    env1 = batch.obs[:, 0, 0] >= 1000
    assert torch.all(batch.mask[env1] == torch.tensor([1.0, 0.0]))  # 1-step episodes end at once
    assert torch.all(batch.obs[env1, 1, 0] == batch.obs[env1, 0, 0] + 1)  # final obs = the bogus step's obs
    assert batch.action.dtype == torch.int64 and batch.action.shape == (20000, 2)
    assert torch.all(batch.action[~env1, 0] == batch.obs[~env1, 0, 0].long() % 3)


class CounterEnv(gym.Env):
    """Frames of shape (C, 4, 4) (or (4, 4) when C == 0) that encode env id and a global counter."""

    def __init__(self, env_id: int, channels: int, max_len: int) -> None:
        self.env_id, self.channels, self.max_len = env_id, channels, max_len
        shape = (channels, 4, 4) if channels else (4, 4)
        self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.counter = -1

    def _frame(self) -> np.ndarray:
        self.counter += 1
        frame = np.full((max(self.channels, 1), 4, 4), (self.counter * 7) % 251, np.uint8)
        frame[:, 0, 0], frame[:, 0, 1], frame[:, 0, 2] = self.env_id, self.counter % 256, self.counter // 256
        frame[:, 1, 1] = np.arange(frame.shape[0])
        return frame if self.channels else frame[0]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.left = int(self.np_random.integers(1, self.max_len + 1))
        return self._frame(), {}

    def step(self, action):
        self.left -= 1
        end = self.left == 0
        term = end and bool(self.np_random.random() < 0.5)
        return self._frame(), float(self.counter), term, end and not term, {}


def _counter_id(frame: np.ndarray) -> tuple[int, int]:
    flat = frame.reshape(-1, 4, 4)[-1]
    return int(flat[0, 0]), int(flat[0, 1]) + 256 * int(flat[0, 2])


@pytest.mark.parametrize("channels,stack", [(0, 4), (2, 3)])
def test_frame_stacks_match_gymnasium_frame_stack_observation(channels: int, stack: int) -> None:
    num_envs, max_lens = 3, (2, 5, 9)

    def make(i: int):
        return lambda: gym.wrappers.FrameStackObservation(CounterEnv(i, channels, max_lens[i]), stack)

    venv = gym.vector.SyncVectorEnv([make(i) for i in range(num_envs)],
                                    autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
    c = max(channels, 1)
    obs_space = gym.spaces.Box(0, 255, (stack * c, 4, 4), np.uint8)
    buf = ReplayBuffer(num_envs * 30, num_envs, obs_space, venv.single_action_space, frame_stack=stack, seed=6)
    assert buf.nbytes < num_envs * 30 * (c * 16 + 20)  # one frame per transition, not one per stack slot
    truth: dict[tuple[int, int], np.ndarray] = {}
    obs, _ = venv.reset(seed=0)
    prev_done = np.zeros(num_envs, bool)
    for _ in range(100):  # the 30-slot rings wrap around
        obs = obs.reshape(num_envs, stack * c, 4, 4)
        action = venv.action_space.sample()
        nobs, reward, term, trunc, _ = venv.step(action)
        buf.add(obs, action, reward, term, trunc, ~prev_done)
        for i in range(num_envs):
            truth[_counter_id(obs[i])] = obs[i].copy()
        prev_done = term | trunc
        obs = nobs
    batch = buf.sample(3000, horizon=3, nstep=2)
    assert batch.obs.dtype == torch.uint8 and batch.obs.shape == (3000, 4, stack * c, 4, 4)
    checked = 0
    for b in range(3000):
        n = int(batch.mask[b].sum())
        env, start = _counter_id(batch.obs[b, 0].numpy())
        for p in range(n + 1):
            got = batch.obs[b, p].numpy()
            assert _counter_id(got) == (env, start + p)
            np.testing.assert_array_equal(got, truth[(env, start + p)])
            checked += 1
    assert checked > 3000
    venv.close()


@dataclass
class Record:
    obs: np.ndarray  # the stacked observation the env produced
    action: np.ndarray
    reward: float
    term: bool
    trunc: bool
    valid: bool


def _random_stream(env_id: int, steps: int, stack: int, act_shape: tuple, rng: np.random.Generator) -> list[Record]:
    """What one env of a NEXT_STEP vector env feeds the replay; frames are [env_id, index, episode]."""
    records: list[Record] = []
    episode, left = 0, int(rng.integers(1, 7))
    frames = deque([np.array([env_id, 0, 0], np.float32)] * stack, maxlen=stack)
    while len(records) < steps:
        r = len(records)
        obs = np.concatenate(frames)
        if left == 0:  # obs is a final obs: bogus reset step with garbage data, then a new episode
            records.append(Record(obs, rng.normal(size=act_shape).astype(np.float32) * 1e6, 1e6,
                                  bool(rng.random() < 0.3), bool(rng.random() < 0.3), False))
            episode, left = episode + 1, int(rng.integers(1, 7))
            frames.extend([np.array([env_id, r + 1, episode], np.float32)] * stack)
            continue
        left -= 1
        term = left == 0 and bool(rng.random() < 0.5)
        records.append(Record(obs, rng.normal(size=act_shape).astype(np.float32), float(rng.normal()),
                              term, left == 0 and not term, True))
        frames.append(np.array([env_id, r + 1, episode], np.float32))
    return records


class NaiveReplay:
    """Slow reference: the full streams plus a ring size; everything computed with plain loops."""

    def __init__(self, streams: list[list[Record]], ring: int, stack: int) -> None:
        self.streams, self.ring, self.stack = streams, ring, stack
        self.total = len(streams[0])
        self.lo = self.total - min(self.total, ring)  # oldest stored index

    def episode_step(self, env: int, r: int) -> int:
        s = self.streams[env]
        k = 0
        while r - k > 0 and s[r - k - 1].valid:
            k += 1
        return k

    def is_start(self, env: int, r: int) -> bool:
        s = self.streams[env]
        back = min(self.stack - 1, self.episode_step(env, r))
        return self.lo <= r - back and r + 1 <= self.total - 1 and s[r].valid

    def starts(self) -> set[tuple[int, int]]:
        return {(e, r) for e in range(len(self.streams)) for r in range(self.lo, self.total) if self.is_start(e, r)}

    def window(self, env: int, r: int, length: int, nstep: int, gamma: float) -> dict:
        s = self.streams[env]
        mask, alive = [], True
        for k in range(length):
            j = r + k
            ok = alive and j + 1 <= self.total - 1 and s[j].valid
            mask.append(ok)
            alive = ok and not (s[j].term or s[j].trunc)
        m = sum(mask[:nstep])
        ret = sum(gamma**i * s[r + i].reward for i in range(m))
        disc = 0.0 if s[r + m - 1].term else gamma**m
        n = sum(mask)
        return {"mask": mask, "obs": [s[r + p].obs for p in range(n + 1)],
                "action": [s[r + k].action for k in range(n)], "reward": [s[r + k].reward for k in range(n)],
                "term": [s[r + k].term for k in range(n)], "ret": ret, "disc": disc, "next": s[r + m].obs}


@pytest.mark.parametrize("device", DEVICES)
def test_randomized_against_naive_reference(device: str) -> None:
    rng = np.random.default_rng(123)
    for case in range(40):
        num_envs, ring, stack = int(rng.integers(1, 4)), int(rng.integers(6, 14)), int(rng.choice([1, 2, 4]))
        steps = int(rng.integers(2, 4 * ring))
        horizon, nstep, gamma = int(rng.integers(1, 5)), int(rng.integers(1, 4)), 0.9
        length = max(horizon, nstep)
        if length >= ring:
            continue
        discrete = case % 2 == 1
        act_shape = () if discrete else (2,)
        streams = [_random_stream(e, steps, stack, act_shape, rng) for e in range(num_envs)]
        if discrete:
            for s in streams:
                for rec in s:
                    rec.action = np.array(int(abs(rec.action.sum())) % 5 if rec.valid else 99)
        obs_space = gym.spaces.Box(-np.inf, np.inf, (3 * stack,), np.float32)
        act_space = gym.spaces.Discrete(5) if discrete else gym.spaces.Box(-1, 1, (2,), np.float32)
        buf = ReplayBuffer(ring * num_envs + (case % num_envs), num_envs, obs_space, act_space,
                           frame_stack=stack, device=device, seed=case)
        for t in range(steps):
            recs = [s[t] for s in streams]
            buf.add(np.stack([r.obs for r in recs]), np.stack([r.action for r in recs]),
                    np.array([r.reward for r in recs]), np.array([r.term for r in recs]),
                    np.array([r.trunc for r in recs]), np.array([r.valid for r in recs]))
        ref = NaiveReplay(streams, ring, stack)
        starts = ref.starts()
        assert len(buf) == sum(rec.valid for s in streams for rec in s[ref.lo:]), case
        assert buf.num_window_starts() == len(starts), case
        assert buf.can_sample(horizon) == (len(starts) > 0 and min(steps, ring) > horizon), case
        if not starts:
            with pytest.raises(ValueError, match="can_sample"):
                buf.sample(4, horizon, nstep)
            continue
        batch = buf.sample(60 * len(starts), horizon=horizon, nstep=nstep, gamma=gamma).to("cpu")
        for f in fields(batch):
            assert torch.isfinite(getattr(batch, f.name).float()).all(), f.name
        ids = batch.obs[:, 0, -3:-1].long()  # newest frame: [env, index]
        seen = {(int(e), int(r)) for e, r in ids.tolist()}
        assert seen == starts, case  # every start, and nothing else, gets sampled
        done_rows: set[tuple[int, int]] = set()
        for b, (e, r) in enumerate(ids.tolist()):
            if (e, r) in done_rows:
                continue
            done_rows.add((e, r))
            want = ref.window(e, r, length, nstep, gamma)
            n = sum(want["mask"])
            assert batch.mask[b].tolist() == [float(x) for x in want["mask"]], (case, e, r)
            for p in range(length + 1):  # masked-out positions repeat the final stored obs
                np.testing.assert_array_equal(batch.obs[b, p].numpy(), want["obs"][min(p, n)])
            for k in range(n):
                np.testing.assert_allclose(batch.action[b, k].numpy(), want["action"][k])
                assert batch.reward[b, k].item() == pytest.approx(want["reward"][k], abs=1e-6)
                assert batch.terminated[b, k].item() == float(want["term"][k])
            assert batch.nstep_reward[b].item() == pytest.approx(want["ret"], abs=1e-5)
            assert batch.nstep_discount[b].item() == pytest.approx(want["disc"], abs=1e-6)
            np.testing.assert_array_equal(batch.nstep_next_obs[b].numpy(), want["next"])


def _fill(buf: ReplayBuffer, steps: int, start: int = 0) -> None:
    rng = np.random.default_rng(start)
    for t in range(start, start + steps):
        valid = np.array([t % 7 != 3, t % 5 != 2])
        buf.add(rng.integers(0, 255, (2, 6, 3, 3), dtype=np.uint8), rng.uniform(-1, 1, (2, 2)).astype(np.float32),
                rng.normal(size=2), np.array([t % 7 == 2, False]), np.array([False, t % 5 == 1]), valid)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("steps", [9, 40])  # partly filled and wrapped rings
def test_state_dict_round_trip_gives_identical_samples(device: str, steps: int) -> None:
    obs_space = gym.spaces.Box(0, 255, (6, 3, 3), np.uint8)
    act_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    buf = ReplayBuffer(30, 2, obs_space, act_space, frame_stack=2, device=device, seed=7)
    _fill(buf, steps)
    buf.sample(16, horizon=3, nstep=3)  # advance the sampling RNG
    blob = io.BytesIO()
    torch.save(buf.state_dict(), blob)
    blob.seek(0)
    other = ReplayBuffer(30, 2, obs_space, act_space, frame_stack=2, device=device, seed=99)
    other.load_state_dict(torch.load(blob, weights_only=False))
    assert len(other) == len(buf) and other.num_window_starts() == buf.num_window_starts()
    for _ in range(2):
        a, b = buf.sample(64, horizon=3, nstep=3), other.sample(64, horizon=3, nstep=3)
        for f in fields(a):
            assert torch.equal(getattr(a, f.name), getattr(b, f.name)), f.name
        _fill(buf, 5, start=100)
        _fill(other, 5, start=100)
    wrong = ReplayBuffer(30, 2, obs_space, act_space, frame_stack=3, device=device)
    with pytest.raises(ValueError, match="frame_stack"):
        wrong.load_state_dict(buf.state_dict())


def test_can_sample_and_len() -> None:
    buf = ReplayBuffer(20, 1, BOX1, ACT1)
    assert not buf.can_sample() and len(buf) == 0
    _add_scalar_stream(buf, [0.0], {}, [False])  # a bogus first step
    _add_scalar_stream(buf, [0.0], {}, [True])
    assert len(buf) == 1 and not buf.can_sample()  # the only valid step has no next obs yet
    with pytest.raises(ValueError, match="can_sample"):
        buf.sample(2)
    _add_scalar_stream(buf, [0.0] * 3, {}, [True] * 3)
    assert buf.can_sample(1) and buf.can_sample(4) and not buf.can_sample(5)
    assert len(buf) == 4 and buf.num_window_starts() == 3


def test_rare_window_starts_are_still_sampled_uniformly() -> None:
    buf = ReplayBuffer(300, 1, BOX1, ACT1, seed=10)
    valid = [t in (100, 250) for t in range(300)]  # 2 starts among 300 slots: the exact fallback path
    _add_scalar_stream(buf, [0.0] * 300, {}, valid)
    starts = buf.sample(400).obs[:, 0, 0]
    assert set(starts.tolist()) == {100.0, 250.0}
    assert (starts == 100).float().mean().item() == pytest.approx(0.5, abs=0.1)


def test_end_episodes_breaks_the_stream() -> None:
    buf = ReplayBuffer(20, 1, BOX1, ACT1, seed=8)
    _add_scalar_stream(buf, [1.0] * 5, {}, [True] * 5)
    buf.end_episodes()  # e.g. the envs were reset on resume: step 4's next obs never arrives
    for t in range(5, 9):
        buf.add(np.array([[t]], np.float32), np.zeros((1, 1), np.float32), np.ones(1), np.zeros(1, bool),
                np.zeros(1, bool), np.ones(1, bool))
    assert len(buf) == 8
    batch = buf.sample(2000, horizon=4)
    rows = _by_start(batch)
    assert sorted(rows) == [0, 1, 2, 3, 5, 6, 7]
    assert batch.mask[rows[2]].tolist() == [1, 1, 0, 0]  # stops before the broken step 4
    assert batch.obs[rows[3], :, 0].tolist() == [3, 4, 4, 4, 4]


def test_memory_per_transition() -> None:
    dog = ReplayBuffer(1000, 1, gym.spaces.Box(-np.inf, np.inf, (223,), np.float32),
                       gym.spaces.Box(-1, 1, (38,), np.float32))
    per = dog.nbytes / 1000
    assert per == 223 * 4 + 38 * 4 + 4 + 3  # obs once, no next_obs copy
    assert per * 1_000_000 < 2e9
    pixels = ReplayBuffer(100, 2, gym.spaces.Box(0, 255, (9, 84, 84), np.uint8),
                          gym.spaces.Box(-1, 1, (6,), np.float32), frame_stack=3)
    assert pixels.nbytes / 100 == 3 * 84 * 84 + 6 * 4 + 4 + 3 + 1


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(3, 2, BOX1, ACT1)
    with pytest.raises(ValueError, match="frame_stack"):
        ReplayBuffer(10, 1, gym.spaces.Box(0, 255, (4, 8, 8), np.uint8), ACT1, frame_stack=3)
    with pytest.raises(ValueError, match="Box or Discrete"):
        ReplayBuffer(10, 1, BOX1, gym.spaces.MultiDiscrete([2, 2]))
    buf = ReplayBuffer(10, 1, BOX1, ACT1)
    with pytest.raises(ValueError, match="obs shape"):
        buf.add(np.zeros((1, 2), np.float32), np.zeros((1, 1)), np.zeros(1), np.zeros(1), np.zeros(1), np.ones(1))
    _add_scalar_stream(buf, [0.0] * 4, {}, [True] * 4)
    with pytest.raises(ValueError, match="ring size"):
        buf.sample(2, horizon=10)
    with pytest.raises(ValueError, match="horizon"):
        buf.sample(2, horizon=0)
