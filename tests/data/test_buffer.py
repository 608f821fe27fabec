import numpy as np
import pytest

from mbrlax.data.buffer import ReplayBuffer
from mbrlax.errors import ConfigError, DataError


def _fill(buf: ReplayBuffer, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        buf.add(np.full(3, i), np.full(2, -i), float(i), np.full(3, i + 1), i % 7 == 0, i % 5 == 0)


def test_round_trip(tmp_path):
    buf = ReplayBuffer(100, 3, 2)
    _fill(buf, 40)
    buf.save(tmp_path / "b.npz")
    loaded = ReplayBuffer.load(tmp_path / "b.npz")
    assert len(loaded) == 40 and loaded.capacity == 100 and loaded.total_added == 40
    for a, b in zip(buf.all(), loaded.all()):
        np.testing.assert_array_equal(a, b)
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temp file


def test_capacity_wraps_keeping_newest():
    buf = ReplayBuffer(10, 3, 2)
    _fill(buf, 25)
    data = buf.all()
    assert len(buf) == 10 and buf.total_added == 25
    np.testing.assert_array_equal(data.reward, np.arange(15, 25))  # oldest first, newest kept
    np.testing.assert_array_equal(data.next_obs[:, 0], np.arange(16, 26))


def test_batch_add_larger_than_capacity():
    buf = ReplayBuffer(4, 1, 1)
    n = 9
    buf.add_batch(np.arange(n)[:, None], np.zeros((n, 1)), np.arange(n), np.arange(n)[:, None], np.zeros(n), np.zeros(n))
    np.testing.assert_array_equal(buf.all().reward, [5, 6, 7, 8])


def test_sampling_epochs_and_split_are_seeded():
    buf = ReplayBuffer(50, 3, 2)
    _fill(buf, 50)
    a = buf.sample(16, np.random.default_rng(0))
    b = buf.sample(16, np.random.default_rng(0))
    np.testing.assert_array_equal(a.reward, b.reward)
    seen = np.concatenate([bt.reward for bt in buf.iterate_epoch(16, np.random.default_rng(1))])
    np.testing.assert_array_equal(np.sort(seen), np.arange(50))  # one epoch visits every transition once
    train, hold = buf.split(0.2, np.random.default_rng(2))
    assert len(train) == 40 and len(hold) == 10
    assert set(train.reward) | set(hold.reward) == set(range(50))


def test_corrupt_and_mismatched_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a buffer")
    with pytest.raises(DataError, match="corrupt"):
        ReplayBuffer.load(bad)
    buf = ReplayBuffer(10, 3, 2)
    _fill(buf, 5)
    good = tmp_path / "good.npz"
    buf.save(good)
    truncated = tmp_path / "trunc.npz"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(DataError):
        ReplayBuffer.load(truncated)
    with pytest.raises(DataError, match="obs/action dims"):
        ReplayBuffer.load(good).check_compatible(17, 6)


def test_wrong_shapes_are_named():
    buf = ReplayBuffer(10, 3, 2)
    with pytest.raises(ConfigError, match="action has shape"):
        buf.add_batch(np.zeros((2, 3)), np.zeros((2, 5)), np.zeros(2), np.zeros((2, 3)), np.zeros(2), np.zeros(2))


def test_million_halfcheetah_transitions_fit_in_400mb():
    buf = ReplayBuffer(1_000_000, 18, 6)  # HalfCheetah-v5 with the x position kept
    assert buf.nbytes < 400e6
