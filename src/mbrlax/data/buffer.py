"""A fixed-capacity replay buffer of transitions, kept in NumPy on the host.

Stores (obs, action, reward, next_obs, terminated, truncated). When full, the oldest
transitions are overwritten (ring buffer). Saves to one ``.npz`` file atomically.
"""

from __future__ import annotations

import os
import zipfile
from typing import Iterator, NamedTuple

import numpy as np

from mbrlax.errors import ConfigError, DataError
from mbrlax.utils.atomic import atomic_write

_FORMAT_VERSION = 1


class Batch(NamedTuple):
    """A batch of transitions; every field has leading dimension N."""

    obs: np.ndarray  # [N, D] float32
    action: np.ndarray  # [N, A] float32
    reward: np.ndarray  # [N] float32
    next_obs: np.ndarray  # [N, D] float32
    terminated: np.ndarray  # [N] bool
    truncated: np.ndarray  # [N] bool

    def __len__(self) -> int:
        return self.obs.shape[0]

    def index(self, idx: np.ndarray) -> "Batch":
        """The transitions at ``idx`` (any NumPy index)."""
        return Batch(*(f[idx] for f in self))


class ReplayBuffer:
    """Ring buffer of transitions with sampling, epoch iteration, splits and save/load."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int):
        if capacity <= 0 or obs_dim <= 0 or act_dim <= 0:
            raise ConfigError(f"ReplayBuffer needs positive capacity/obs_dim/act_dim, got {capacity}/{obs_dim}/{act_dim}")
        self.capacity, self.obs_dim, self.act_dim = int(capacity), int(obs_dim), int(act_dim)
        self._obs = np.zeros((capacity, obs_dim), np.float32)
        self._action = np.zeros((capacity, act_dim), np.float32)
        self._reward = np.zeros((capacity,), np.float32)
        self._next_obs = np.zeros((capacity, obs_dim), np.float32)
        self._terminated = np.zeros((capacity,), bool)
        self._truncated = np.zeros((capacity,), bool)
        self._next = 0  # index of the next write
        self._size = 0
        self.total_added = 0  # transitions ever added, including overwritten ones

    def __len__(self) -> int:
        return self._size

    def _fields(self) -> tuple[np.ndarray, ...]:
        return (self._obs, self._action, self._reward, self._next_obs, self._terminated, self._truncated)

    def add(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        """Add one transition (obs [D], action [A], scalars)."""
        self.add_batch(
            np.asarray(obs)[None], np.asarray(action)[None], np.asarray(reward).reshape(1),
            np.asarray(next_obs)[None], np.asarray(terminated).reshape(1), np.asarray(truncated).reshape(1),
        )

    def add_batch(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        """Add N transitions (obs [N, D], action [N, A], reward/terminated/truncated [N])."""
        obs, next_obs = np.asarray(obs, np.float32), np.asarray(next_obs, np.float32)
        action = np.asarray(action, np.float32)
        n = obs.shape[0]
        expected = {"obs": (n, self.obs_dim), "next_obs": (n, self.obs_dim), "action": (n, self.act_dim)}
        for name, arr in (("obs", obs), ("next_obs", next_obs), ("action", action)):
            if arr.shape != expected[name]:
                raise ConfigError(f"ReplayBuffer.add_batch: {name} has shape {arr.shape}, expected {expected[name]}")
        values = (obs, action, np.asarray(reward, np.float32).reshape(n), next_obs,
                  np.asarray(terminated, bool).reshape(n), np.asarray(truncated, bool).reshape(n))
        if n >= self.capacity:  # keep only the newest `capacity`
            values = tuple(v[-self.capacity:] for v in values)
            n = self.capacity
        idx = (self._next + np.arange(n)) % self.capacity
        for store, v in zip(self._fields(), values):
            store[idx] = v
        self._next = int((self._next + n) % self.capacity)
        self._size = min(self._size + n, self.capacity)
        self.total_added += int(len(np.asarray(obs)))

    def _ordered_indices(self) -> np.ndarray:
        """Indices of stored transitions from oldest to newest."""
        if self._size < self.capacity:
            return np.arange(self._size)
        return (self._next + np.arange(self.capacity)) % self.capacity

    def all(self) -> Batch:
        """Every stored transition, oldest first (a copy)."""
        return Batch(*(f[self._ordered_indices()] for f in self._fields()))

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """``batch_size`` transitions drawn uniformly with replacement."""
        if self._size == 0:
            raise ConfigError("ReplayBuffer.sample: the buffer is empty")
        idx = rng.integers(0, self._size, size=batch_size)
        return Batch(*(f[idx] for f in self._fields()))

    def iterate_epoch(self, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        """One pass over the data in shuffled minibatches (the last one may be smaller)."""
        perm = rng.permutation(self._size)
        for start in range(0, self._size, batch_size):
            idx = perm[start:start + batch_size]
            yield Batch(*(f[idx] for f in self._fields()))

    def split(self, holdout_fraction: float, rng: np.random.Generator) -> tuple[Batch, Batch]:
        """A random (train, holdout) split of the stored data."""
        if not 0.0 <= holdout_fraction < 1.0:
            raise ConfigError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
        data = self.all()
        perm = rng.permutation(len(data))
        n_hold = int(round(holdout_fraction * len(data)))
        return data.index(perm[n_hold:]), data.index(perm[:n_hold])

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the stored transitions (oldest first) to one ``.npz`` file, atomically."""
        data = self.all()
        arrays = dict(data._asdict(), capacity=np.int64(self.capacity), total_added=np.int64(self.total_added),
                      format_version=np.int64(_FORMAT_VERSION))
        atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike, capacity: int | None = None) -> "ReplayBuffer":
        """Read a buffer written by :meth:`save`; raise :class:`DataError` if the file is corrupt."""
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except FileNotFoundError:
            raise
        except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as e:
            raise DataError(f"replay buffer file {path} is corrupt or not a buffer file ({type(e).__name__}: {e})") from e
        missing = (set(Batch._fields) | {"capacity", "format_version"}) - set(arrays)
        if missing:
            raise DataError(f"replay buffer file {path} is missing fields {sorted(missing)}")
        if int(arrays["format_version"]) != _FORMAT_VERSION:
            raise DataError(f"replay buffer file {path} has format {int(arrays['format_version'])}, expected {_FORMAT_VERSION}")
        obs, action = arrays["obs"], arrays["action"]
        n = obs.shape[0]
        if obs.ndim != 2 or action.ndim != 2 or any(arrays[k].shape[0] != n for k in Batch._fields):
            raise DataError(f"replay buffer file {path} has inconsistent field shapes")
        buf = cls(capacity or int(arrays["capacity"]), obs.shape[1], action.shape[1])
        buf.add_batch(*(arrays[k] for k in Batch._fields))
        buf.total_added = int(arrays.get("total_added", n))
        return buf

    def check_compatible(self, obs_dim: int, act_dim: int, what: str = "buffer") -> None:
        """Raise :class:`DataError` if this buffer does not match an environment's dimensions."""
        if (self.obs_dim, self.act_dim) != (obs_dim, act_dim):
            raise DataError(f"{what} has obs/action dims {self.obs_dim}/{self.act_dim}, environment has {obs_dim}/{act_dim}")

    @property
    def nbytes(self) -> int:
        """Bytes held by the storage arrays."""
        return sum(f.nbytes for f in self._fields())
