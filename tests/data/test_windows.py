import numpy as np
import pytest

from mbrlax.data import (ReplayBuffer, observation_window_starts, observation_windows, sample_windows,
                         window_starts, windows_at)
from mbrlax.errors import ConfigError

# (length, how it ends): "term", "trunc" or None (still running: the newest data)
EPISODES = [(1, "term"), (4, "trunc"), (6, "term"), (2, "trunc"), (9, None)]


def _episode_buffer(capacity: int = 100, obs_continuous: bool = True) -> ReplayBuffer:
    """Known episodes; action = [episode, t]. Observations continue across episode ends
    (obs[i+1] == next_obs[i]) so that only the done flags separate episodes."""
    buf = ReplayBuffer(capacity, 2, 2)
    i = 0
    for ep, (length, end) in enumerate(EPISODES):
        for t in range(length):
            last = t == length - 1
            o = np.array([i, 0.0]) if obs_continuous else np.array([ep, t])
            no = np.array([i + 1, 0.0]) if obs_continuous else np.array([ep, t + 1])
            buf.add(o, [ep, t], float(t), no, last and end == "term", last and end == "trunc")
            i += 1
    return buf


def _expected_starts(n: int) -> list[int]:
    out, pos = [], 0
    for length, _ in EPISODES:
        out += [pos + t for t in range(length - n + 1)]
        pos += length
    return out


def _assert_within_one_episode(w, n):
    ep, t = w.actions[..., 0], w.actions[..., 1]
    assert w.actions.shape[1:] == (n, 2) and w.next_obs.shape[1:] == (n, 2) and w.rewards.shape[1:] == (n,)
    assert (ep == ep[:, :1]).all(), "a window crosses an episode end"
    np.testing.assert_array_equal(t, t[:, :1] + np.arange(n))  # consecutive time indices
    assert not w.terminated[:, :-1].any()  # an end may only be the last step
    np.testing.assert_array_equal(w.next_obs[:, :-1], w.next_obs[:, 1:] - [1, 0])  # continuous states
    np.testing.assert_array_equal(w.obs, w.next_obs[:, 0] - [1, 0])


@pytest.mark.parametrize("n", [1, 2, 4, 6, 9])
def test_windows_never_cross_an_episode_end(n):
    buf = _episode_buffer()
    np.testing.assert_array_equal(window_starts(buf, n), _expected_starts(n))
    w = sample_windows(buf, n, 500, np.random.default_rng(0))
    assert w.obs.shape == (500, 2) and w.actions.shape == (500, n, 2) and w.terminated.shape == (500, n)
    _assert_within_one_episode(w, n)
    # a window may end on a terminal/truncated step: the episode of length n is fully used
    assert all(s in set(w.start.tolist()) for s in _expected_starts(n)[:3])


def test_unmarked_episode_change_breaks_windows():
    """Collection stopped mid-episode: no done flag, but next_obs[t] != obs[t+1]."""
    buf = ReplayBuffer(20, 2, 2)
    for t in range(3):
        buf.add([t, 0], [0, t], 0.0, [t + 1, 0], False, False)
    for t in range(3):
        buf.add([100 + t, 0], [1, t], 0.0, [101 + t, 0], False, False)
    np.testing.assert_array_equal(window_starts(buf, 2), [0, 1, 3, 4])


def test_uniform_over_valid_starts():
    buf = _episode_buffer()
    n = 2
    starts = window_starts(buf, n)
    per = 400
    w = sample_windows(buf, n, per * len(starts), np.random.default_rng(123))
    counts = np.bincount(w.start, minlength=len(buf))
    invalid = np.setdiff1d(np.arange(len(buf)), starts)
    assert counts[invalid].sum() == 0
    chi2 = (((counts[starts] - per) ** 2) / per).sum()
    dof = len(starts) - 1
    assert chi2 < dof + 5 * np.sqrt(2 * dof), chi2


def test_ring_buffer_wrap_around():
    """Capacity 10 after 25 adds: the write position sits mid-array; no window runs from the
    newest transition into the oldest one, while windows across the array's end are fine."""
    buf = ReplayBuffer(10, 1, 2)
    for i in range(25):  # one long episode; constant obs so only the buffer order separates data
        buf.add([0.0], [0, i], float(i), [0.0], False, False)
    assert buf._next == 5  # physical index 9 -> 0 lies inside the stored order
    n = 3
    np.testing.assert_array_equal(window_starts(buf, n), np.arange(8))
    w = windows_at(buf, window_starts(buf, n), n)
    t = w.actions[..., 1]
    np.testing.assert_array_equal(t, 15 + np.arange(8)[:, None] + np.arange(n))  # oldest kept is 15
    np.testing.assert_array_equal(w.rewards, t)
    # an episode end just before the wrap is respected too
    buf.add([0.0], [0, 25], 25.0, [0.0], True, False)  # now newest = 25 (terminated), oldest = 16
    starts = window_starts(buf, 10)
    np.testing.assert_array_equal(starts, [0])
    np.testing.assert_array_equal(windows_at(buf, starts, 10).actions[0, :, 1], np.arange(16, 26))


def test_error_names_n_and_longest_episode():
    buf = _episode_buffer()
    with pytest.raises(ConfigError, match=r"n=10.*longest episode in the buffer has 9 transition"):
        window_starts(buf, 10)
    with pytest.raises(ConfigError, match="n=10"):
        sample_windows(buf, 10, 4, np.random.default_rng(0))
    with pytest.raises(ConfigError, match=">= 1"):
        window_starts(buf, 0)
    with pytest.raises(ConfigError, match="empty"):
        window_starts(ReplayBuffer(5, 1, 1), 1)


def test_holdout_split_by_starts():
    buf = _episode_buffer()
    starts = window_starts(buf, 3)
    hold = starts[len(starts) // 2:]  # the second half of the starts: a holdout
    w = sample_windows(buf, 3, 200, np.random.default_rng(1), starts=hold)
    assert set(w.start.tolist()) <= set(hold.tolist())
    _assert_within_one_episode(w, 3)


def test_observation_windows_from_list_of_episodes():
    eps = [np.stack([np.full(T, e), np.arange(T)], axis=1) for e, T in enumerate([3, 6, 1])]
    n = 2
    np.testing.assert_array_equal(observation_window_starts(eps, n),
                                  [[0, 0], [1, 0], [1, 1], [1, 2], [1, 3]])
    obs = observation_windows(eps, n, 300, np.random.default_rng(0))
    assert obs.shape == (300, n + 1, 2) and obs.dtype == np.float32
    assert (obs[..., 0] == obs[:, :1, 0]).all()
    np.testing.assert_array_equal(obs[..., 1], obs[:, :1, 1] + np.arange(n + 1))
    assert len({tuple(o[0]) for o in obs}) == 5  # every valid start drawn
    with pytest.raises(ConfigError, match=r"n=6.*longest episode has 6 observation"):
        observation_windows(eps, 6, 4, np.random.default_rng(0))


def test_observation_windows_from_buffer():
    buf = _episode_buffer(obs_continuous=False)
    obs = observation_windows(buf, 3, 100, np.random.default_rng(0))
    assert obs.shape == (100, 4, 2)
    assert (obs[..., 0] == obs[:, :1, 0]).all()
    np.testing.assert_array_equal(obs[..., 1], obs[:, :1, 1] + np.arange(4))


def test_interleaved_envs_are_followed_to_their_own_successors():
    """A vectorised collect stores env 0, env 1, env 2, env 0, ...: a window follows each env's own
    transitions (obs == the previous next_obs), and an env's episode end still ends its windows."""
    lengths = [7, 5, 9]  # env e's episode: obs = [e, t], action = [e, t]; env 1 stops (terminates) early
    buf = ReplayBuffer(100, 2, 2)
    for t in range(max(lengths)):
        for e, length in enumerate(lengths):
            if t < length:
                buf.add([e, t], [e, t], float(t), [e, t + 1], t == length - 1 and e == 1, False)
    n = 4
    starts = window_starts(buf, n)
    assert len(starts) == sum(length - n + 1 for length in lengths)
    w = windows_at(buf, starts, n)
    assert (w.actions[..., 0] == w.actions[:, :1, 0]).all()  # one env per window
    np.testing.assert_array_equal(w.actions[..., 1], w.actions[:, :1, 1] + np.arange(n))  # consecutive steps
    np.testing.assert_array_equal(w.next_obs[..., 1], w.actions[..., 1] + 1)
    with pytest.raises(ConfigError, match="longest episode in the buffer has 9"):
        window_starts(buf, 10)


def test_windows_from_a_vectorised_collect_on_a_real_env():
    from mbrlax.data import collect, random_policy
    from mbrlax.envs import make_vector_env

    envs = make_vector_env("Pendulum-v1", num_envs=3, seed=0)
    buf = ReplayBuffer(1000, 3, 1)
    collect(envs, random_policy(envs.single_action_space, seed=0), 300, buf)  # 100 steps per env, no episode end
    starts = window_starts(buf, 20)
    assert len(starts) == 3 * (100 - 20 + 1)
    w = windows_at(buf, starts, 20)
    # Pendulum's obs is [cos th, sin th, th_dot]: each step's new angle is the old one moved by the new velocity
    th0 = np.arctan2(w.obs[:, 1], w.obs[:, 0])
    th = np.arctan2(w.next_obs[..., 1], w.next_obs[..., 0])
    prev = np.concatenate([th0[:, None], th[:, :-1]], axis=1)
    np.testing.assert_allclose(np.angle(np.exp(1j * (th - prev))), 0.05 * w.next_obs[..., 2], atol=1e-4)
