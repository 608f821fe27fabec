"""Trajectory windows: n consecutive transitions of one episode, for sequence models.

A window of length ``n >= 1`` starting at transition t is (s_t, a_t:t+n, s_t+1:t+n+1). It
never crosses an episode end: a transition that is terminated or truncated may only be the
*last* step of a window. Windows are drawn uniformly over all valid starts.

Positions are counted oldest first, as in :meth:`ReplayBuffer.all` (position 0 is the oldest
stored transition), so a window never runs across the ring buffer's write position.

A window follows each transition to its *successor*: the nearest later stored transition (at
most ``MAX_SUCCESSOR_GAP`` positions on) whose ``obs`` equals this one's ``next_obs`` exactly.
With one env that is the next position; a vectorised ``collect`` interleaves its envs (env 0,
env 1, ..., env 0, ...), and the successor is then a few positions on. A transition without a
successor ends its segment: a done flag, the newest transition, or a collection that stopped
mid-episode (``collect`` ends after ``num_steps`` without a done flag).

Observation-only trajectories (no actions, e.g. frames of a video) are a first-class input:
:func:`observation_windows` builds obs [B, n+1, D] from a buffer or from a list of episodes.
"""

from __future__ import annotations

import weakref
from typing import NamedTuple, Sequence

import numpy as np

from mbrlax.data.buffer import ReplayBuffer
from mbrlax.errors import ConfigError


class Windows(NamedTuple):
    """A batch of B windows of length n: (s_t, a_t:t+n, s_t+1:t+n+1)."""

    obs: np.ndarray  # [B, D] float32, s_t
    actions: np.ndarray  # [B, n, A] float32, a_t .. a_t+n-1
    next_obs: np.ndarray  # [B, n, D] float32, s_t+1 .. s_t+n
    rewards: np.ndarray  # [B, n] float32
    terminated: np.ndarray  # [B, n] bool (only the last step can be True)
    start: np.ndarray  # [B] int64, start positions (oldest-first, see module doc)


def _check_n(n: int, what: str) -> int:
    if int(n) != n or n < 1:
        raise ConfigError(f"{what}: window length n must be an integer >= 1, got {n}")
    return int(n)


def _physical(buffer: ReplayBuffer, positions: np.ndarray) -> np.ndarray:
    """Storage indices of oldest-first positions."""
    offset = buffer._next if len(buffer) == buffer.capacity else 0  # noqa: SLF001 (same package)
    return (offset + positions) % buffer.capacity


MAX_SUCCESSOR_GAP = 64
"""How far on (in stored positions) a transition's successor may be: the number of interleaved envs."""


_SUCCESSORS: "weakref.WeakKeyDictionary[ReplayBuffer, tuple[int, np.ndarray]]" = weakref.WeakKeyDictionary()


def _successors(buffer: ReplayBuffer) -> np.ndarray:
    """For each position p, the position of the next transition of p's episode, or -1. [size] int64

    A successor comes later and starts where p ended (``obs == next_obs[p]``, exact); each
    transition succeeds at most one other. Done transitions have none. Cached per buffer until
    it receives new data (sampling many batches must not rescan the buffer each time)."""
    cached = _SUCCESSORS.get(buffer)
    if cached is not None and cached[0] == buffer.total_added:
        return cached[1]
    succ = _find_successors(buffer)
    _SUCCESSORS[buffer] = (buffer.total_added, succ)
    return succ


def _find_successors(buffer: ReplayBuffer) -> np.ndarray:
    size = len(buffer)
    phys = _physical(buffer, np.arange(size))
    obs, next_obs = buffer._obs[phys], buffer._next_obs[phys]  # noqa: SLF001
    done = buffer._terminated[phys] | buffer._truncated[phys]  # noqa: SLF001
    succ = np.full(size, -1, np.int64)
    claimed = np.zeros(size, bool)
    for gap in range(1, min(MAX_SUCCESSOR_GAP, size - 1) + 1):
        p = np.flatnonzero(~done[:size - gap] & (succ[:size - gap] < 0) & ~claimed[gap:])
        if p.size:
            p = p[np.all(next_obs[p] == obs[p + gap], axis=-1)]
            succ[p], claimed[p + gap] = p + gap, True
    return succ


def _chains(succ: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """Positions of the n transitions from each start along ``succ`` (-1 where a chain ends). [B, n]"""
    idx = np.empty((len(starts), n), np.int64)
    idx[:, 0] = starts
    for k in range(1, n):
        prev = idx[:, k - 1]
        idx[:, k] = np.where(prev >= 0, succ[np.maximum(prev, 0)], -1)
    return idx


def window_starts(buffer: ReplayBuffer, n: int) -> np.ndarray:
    """All valid start positions (oldest-first) for windows of length ``n``; [M] int64, sorted.

    Use it for holdout splits: split the starts, then pass each part as ``starts=``.
    """
    n = _check_n(n, "window_starts")
    if len(buffer) == 0:
        raise ConfigError("window_starts: the buffer is empty")
    succ = _successors(buffer)
    last = np.arange(len(buffer))
    for _ in range(n - 1):
        last = np.where(last >= 0, succ[np.maximum(last, 0)], -1)
    starts = np.flatnonzero(last >= 0)
    if starts.size == 0:
        length = np.ones(len(succ), np.int64)  # transitions from p to its segment's end
        for p in range(len(succ) - 1, -1, -1):
            if succ[p] >= 0:
                length[p] = 1 + length[succ[p]]
        longest = int(length.max())
        raise ConfigError(f"no trajectory window of length n={n} exists: the longest episode in the buffer has "
                          f"{longest} transition(s); use n <= {longest} or collect longer episodes")
    return starts


def windows_at(buffer: ReplayBuffer, starts: np.ndarray, n: int) -> Windows:
    """The windows of length ``n`` at the given start positions (valid ones, from :func:`window_starts`)."""
    n = _check_n(n, "windows_at")
    starts = np.asarray(starts, np.int64)
    chain = _chains(_successors(buffer), starts, n)
    if (chain < 0).any():
        raise ConfigError(f"windows_at: start position(s) {starts[(chain < 0).any(1)][:5].tolist()} have no "
                          f"window of length n={n}; take starts from window_starts(buffer, {n})")
    idx = _physical(buffer, chain)  # [B, n]
    return Windows(
        obs=buffer._obs[idx[:, 0]],  # noqa: SLF001
        actions=buffer._action[idx],  # noqa: SLF001
        next_obs=buffer._next_obs[idx],  # noqa: SLF001
        rewards=buffer._reward[idx],  # noqa: SLF001
        terminated=buffer._terminated[idx],  # noqa: SLF001
        start=starts,
    )


def sample_windows(buffer: ReplayBuffer, n: int, batch_size: int, rng: np.random.Generator,
                   starts: np.ndarray | None = None) -> Windows:
    """``batch_size`` windows of length ``n``, uniform over valid starts, with replacement.

    ``starts`` restricts sampling to a subset of :func:`window_starts` (e.g. the train part).
    """
    if starts is None:
        starts = window_starts(buffer, n)
    elif len(starts) == 0:
        raise ConfigError(f"sample_windows: no start positions given for windows of length n={n}")
    chosen = np.asarray(starts, np.int64)[rng.integers(0, len(starts), size=batch_size)]
    return windows_at(buffer, chosen, n)


# ------------------------------------------------------------------ observation-only trajectories
def _as_episodes(episodes: Sequence[np.ndarray]) -> list[np.ndarray]:
    eps = [np.asarray(e, np.float32) for e in episodes]
    if not eps:
        raise ConfigError("observation windows: the list of episodes is empty")
    dims = {e.shape[1:] for e in eps}
    if any(e.ndim < 2 for e in eps) or len(dims) != 1:
        raise ConfigError(f"observation windows: each episode must be an array [T_i, D...] with the same "
                          f"trailing shape, got shapes {[e.shape for e in eps]}")
    return eps


def observation_window_starts(episodes: Sequence[np.ndarray], n: int) -> np.ndarray:
    """All valid (episode, t) starts for obs windows of n+1 frames in a list of episodes; [M, 2] int64."""
    n = _check_n(n, "observation_window_starts")
    eps = _as_episodes(episodes)
    parts = [np.stack([np.full(len(e) - n, i), np.arange(len(e) - n)], axis=1)
             for i, e in enumerate(eps) if len(e) > n]
    if not parts:
        longest = max(len(e) for e in eps)
        raise ConfigError(f"no observation window of length n={n} (n+1 frames) exists: the longest episode has "
                          f"{longest} observation(s), i.e. {longest - 1} transition(s)")
    return np.concatenate(parts).astype(np.int64)


def observation_windows(source: ReplayBuffer | Sequence[np.ndarray], n: int, batch_size: int,
                        rng: np.random.Generator, starts: np.ndarray | None = None) -> np.ndarray:
    """``batch_size`` observation-only windows s_t:t+n+1, uniform over valid starts; obs [B, n+1, D].

    ``source`` is a :class:`ReplayBuffer` (its actions are ignored) or a list of episodes, each an
    array of observations [T_i, D] in time order (T_i frames = T_i - 1 transitions). ``starts``:
    from :func:`window_starts` (buffer) or :func:`observation_window_starts` (list).
    """
    n = _check_n(n, "observation_windows")
    if isinstance(source, ReplayBuffer):
        w = sample_windows(source, n, batch_size, rng, starts)
        return np.concatenate([w.obs[:, None], w.next_obs], axis=1)
    eps = _as_episodes(source)
    if starts is None:
        starts = observation_window_starts(eps, n)
    chosen = np.asarray(starts, np.int64)[rng.integers(0, len(starts), size=batch_size)]
    return observation_windows_at(eps, chosen, n)


def observation_windows_at(episodes: Sequence[np.ndarray], starts: np.ndarray, n: int) -> np.ndarray:
    """The observation windows s_t:t+n+1 at ``starts`` ``[B, 2]`` (episode, t) of a list of episodes
    (valid ones, from :func:`observation_window_starts`); obs [B, n+1, D]."""
    eps = _as_episodes(episodes)
    return np.stack([eps[e][t:t + n + 1] for e, t in np.asarray(starts, np.int64)])
