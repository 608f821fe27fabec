"""Camera frames stored as uint8, with actions and rewards, sampled as sequences for latent models.

A :class:`FrameBuffer` is a ring buffer of *rows*, one per frame, in the order one environment
produced them. Row i holds frame o_i (uint8 ``[H, W, C]``, one camera frame, not a stack),
optionally the true state s_i (for diagnostics), and the step taken from it: action a_i, reward
r_i and whether that step terminated. An episode of T steps takes T + 1 rows (its last frame's
action is zero and never sampled). Rows carry an episode number, so a sequence never crosses an
episode end: a sequence of length L starting at row p is (o_p..o_p+L, a_p..a_p+L-1, r_p..r_p+L-1)
and is valid when rows p and p + L belong to the same episode.

Frame stacks are built when sampling (``stack = k``): the frame at row t becomes the channels of
rows t-k+1 .. t (oldest first), clamped at the episode's first stored row, which repeats the first
frame as :class:`~mbrlax.envs.pixels.PixelObservation` does after ``reset``. Storing single frames
costs 1/k of storing the stacks.

Memory (``nbytes`` of a 10,000-row buffer, measured): 64x64 RGB frames with a 1-D action and a
4-D state take 12,321 bytes a row, 87,147 frames per GiB (the frame is 12,288 of them); 32x32
frames take 3,105 bytes a row, 345,810 frames per GiB.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from mbrlax.errors import ConfigError, DataError
from mbrlax.utils.atomic import atomic_write

_FORMAT_VERSION = 1
_SAVED = ("frames", "states", "action", "reward", "terminated", "episode")


class FrameSequences(NamedTuple):
    """A batch of B sequences of length L (L steps, L + 1 frames)."""

    frames: np.ndarray  # [B, L+1, H, W, C*stack] uint8, o_t .. o_t+L (each a stack, oldest first)
    actions: np.ndarray  # [B, L, A] float32, a_t .. a_t+L-1
    rewards: np.ndarray  # [B, L] float32, r_t .. r_t+L-1
    terminated: np.ndarray  # [B, L] bool (only the last valid step can be True)
    states: np.ndarray  # [B, L+1, S] float32 true states (S = 0 if the buffer stores none)
    start: np.ndarray  # [B] int64 start rows (oldest-first positions)
    valid: np.ndarray  # [B, L] bool: whether step t is in the episode (all True unless sampled with partial)


class FrameBuffer:
    """Ring buffer of uint8 frames with actions, rewards, done flags and (optional) true states.

    Args:
        capacity: number of rows (frames) kept; the oldest are overwritten.
        frame_shape: ``(H, W, C)`` of one frame (C = 3 for RGB).
        act_dim: action size A.
        state_dim: size S of the true state kept beside each frame (0: none).

    Fill it from one environment in time order: :meth:`add_first` after each reset, then
    :meth:`add` after each step (:func:`collect_random_frames` does this).
    """

    def __init__(self, capacity: int, frame_shape: tuple[int, int, int], act_dim: int, state_dim: int = 0):
        if capacity < 2 or act_dim < 1 or state_dim < 0 or len(frame_shape) != 3 or min(frame_shape) < 1:
            raise ConfigError(f"FrameBuffer needs capacity >= 2, act_dim >= 1, state_dim >= 0 and a frame shape "
                              f"(H, W, C); got {capacity}, {act_dim}, {state_dim}, {frame_shape}")
        self.capacity, self.frame_shape = int(capacity), tuple(int(s) for s in frame_shape)
        self.act_dim, self.state_dim = int(act_dim), int(state_dim)
        self._frames = np.zeros((capacity, *self.frame_shape), np.uint8)
        self._states = np.zeros((capacity, state_dim), np.float32)
        self._action = np.zeros((capacity, act_dim), np.float32)
        self._reward = np.zeros((capacity,), np.float32)
        self._terminated = np.zeros((capacity,), bool)
        self._episode = np.full((capacity,), -1, np.int64)
        self._next = 0
        self._size = 0
        self._episodes = 0  # episodes started
        self._open = False  # whether the newest row may still get a step
        self.total_added = 0
        self._cache: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """Bytes held by the storage arrays."""
        return sum(a.nbytes for a in (self._frames, self._states, self._action, self._reward,
                                      self._terminated, self._episode))

    def _check_frame(self, frame, state) -> tuple[np.ndarray, np.ndarray]:
        frame = np.asarray(frame)
        if frame.shape != self.frame_shape or frame.dtype != np.uint8:
            raise ConfigError(f"FrameBuffer: frame is {frame.dtype} {frame.shape}, expected uint8 {self.frame_shape} "
                              "(pass one frame, e.g. obs[..., -3:] of a stacked observation)")
        state = np.zeros(0, np.float32) if state is None else np.asarray(state, np.float32).reshape(-1)
        if state.shape != (self.state_dim,):
            raise ConfigError(f"FrameBuffer: state has shape {state.shape}, expected ({self.state_dim},)")
        return frame, state

    def _write(self, frame: np.ndarray, state: np.ndarray) -> None:
        i = self._next
        self._frames[i], self._states[i] = frame, state
        self._action[i], self._reward[i], self._terminated[i] = 0.0, 0.0, False
        self._episode[i] = self._episodes - 1
        self._next = (i + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)
        self.total_added += 1

    def add_first(self, frame, state=None) -> None:
        """Start an episode with its first frame ``[H, W, C]`` (and state ``[S]``)."""
        frame, state = self._check_frame(frame, state)
        self._episodes += 1
        self._write(frame, state)
        self._open = True

    def add(self, action, reward, next_frame, terminated: bool, truncated: bool, next_state=None) -> None:
        """Record the step taken from the newest frame and the frame it led to."""
        if not self._open:
            raise ConfigError("FrameBuffer.add: no open episode; call add_first(frame) after reset")
        next_frame, next_state = self._check_frame(next_frame, next_state)
        action = np.asarray(action, np.float32).reshape(-1)
        if action.shape != (self.act_dim,):
            raise ConfigError(f"FrameBuffer.add: action has shape {action.shape}, expected ({self.act_dim},)")
        last = (self._next - 1) % self.capacity
        self._action[last], self._reward[last], self._terminated[last] = action, float(reward), bool(terminated)
        self._write(next_frame, next_state)
        self._open = not (terminated or truncated)

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> None:
        """Write the stored rows (oldest first) and the open-episode state to one compressed ``.npz``
        file, atomically (a training loop's checkpoint; frames compress ~10x, mostly background)."""
        phys = self._physical(np.arange(self._size))
        arrays = {name: getattr(self, f"_{name}")[phys] for name in _SAVED}
        arrays.update(capacity=np.int64(self.capacity), total_added=np.int64(self.total_added),
                      episodes=np.int64(self._episodes), open=np.bool_(self._open),
                      format_version=np.int64(_FORMAT_VERSION))
        atomic_write(path, lambda f: np.savez_compressed(f, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FrameBuffer":
        """Read a buffer written by :meth:`save` (same rows, positions and sampling as the saved one);
        :class:`DataError` naming the file if it is corrupt or not a frame buffer file."""
        try:
            return cls._from_file(path)
        except (FileNotFoundError, DataError):
            raise
        except Exception as e:  # zlib, zip, shape and type errors of a damaged file come in many types
            raise DataError(f"frame buffer file {path} is corrupt or not a frame buffer ({type(e).__name__}: {e})") from e

    @classmethod
    def _from_file(cls, path: str | os.PathLike) -> "FrameBuffer":
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        missing = (set(_SAVED) | {"capacity", "total_added", "episodes", "open", "format_version"}) - set(arrays)
        if missing:
            raise DataError(f"frame buffer file {path} is missing fields {sorted(missing)}")
        if int(arrays["format_version"]) != _FORMAT_VERSION:
            raise DataError(f"frame buffer file {path} has format {int(arrays['format_version'])}, expected {_FORMAT_VERSION}")
        frames, n = arrays["frames"], len(arrays["frames"])
        if (frames.ndim != 4 or frames.dtype != np.uint8 or arrays["action"].ndim != 2 or arrays["states"].ndim != 2
                or any(len(arrays[k]) != n for k in _SAVED) or n > int(arrays["capacity"])):
            raise DataError(f"frame buffer file {path} has inconsistent field shapes")
        buf = cls(int(arrays["capacity"]), frames.shape[1:], arrays["action"].shape[1], arrays["states"].shape[1])
        for name in _SAVED:
            getattr(buf, f"_{name}")[:n] = arrays[name]
        buf._size, buf._next = n, n % buf.capacity
        buf._episodes, buf._open = int(arrays["episodes"]), bool(arrays["open"])
        buf.total_added = int(arrays["total_added"])
        return buf

    # ------------------------------------------------------------------ positions and sampling
    def _physical(self, positions: np.ndarray) -> np.ndarray:
        offset = self._next if self._size == self.capacity else 0
        return (offset + positions) % self.capacity

    def _first_positions(self) -> np.ndarray:
        """For each position, the position of its episode's first stored row. [size] int64 (cached)."""
        if self._cache is not None and self._cache[0] == self.total_added:
            return self._cache[1]
        ep = self._episode[self._physical(np.arange(self._size))]
        change = np.r_[True, ep[1:] != ep[:-1]]
        first = np.maximum.accumulate(np.where(change, np.arange(self._size), 0))
        self._cache = (self.total_added, first)
        return first

    def sequence_starts(self, length: int, partial: bool = False) -> np.ndarray:
        """All start positions (oldest first) of sequences of ``length`` steps; [M] int64, sorted.
        With ``partial``, also those cut short by their episode's end (every row that has a step)."""
        if int(length) != length or length < 1:
            raise ConfigError(f"FrameBuffer: sequence length must be an integer >= 1, got {length}")
        length = 1 if partial else int(length)
        if self._size <= length:
            raise ConfigError(f"FrameBuffer holds {self._size} frames; a sequence of {length} steps needs {length + 1}")
        ep = self._episode[self._physical(np.arange(self._size))]
        starts = np.flatnonzero(ep[:-length] == ep[length:])
        if starts.size == 0:
            raise ConfigError(f"no sequence of {length} steps exists: every stored episode is shorter")
        return starts

    def step_rewards(self) -> np.ndarray:
        """Rewards of every stored row that has a step (all but each episode's newest frame). [M] float32"""
        starts = self.sequence_starts(1)
        return self._reward[self._physical(starts)]

    def episode_of(self, positions: np.ndarray) -> np.ndarray:
        """Episode numbers of oldest-first positions (for splits by episode). [N] int64"""
        return self._episode[self._physical(np.asarray(positions, np.int64))]

    def stacked_frames(self, positions: np.ndarray, stack: int = 1) -> np.ndarray:
        """Frames at oldest-first ``positions [...]`` as stacks of ``stack`` frames: ``[..., H, W, C*stack]`` uint8."""
        positions = np.asarray(positions, np.int64)
        first = self._first_positions()[positions]
        lags = np.arange(stack - 1, -1, -1)  # oldest first
        idx = np.maximum(positions[..., None] - lags, first[..., None])  # [..., stack]
        frames = self._frames[self._physical(idx)]  # [..., stack, H, W, C]
        frames = np.moveaxis(frames, -4, -2)  # [..., H, W, stack, C]
        return frames.reshape(*frames.shape[:-2], -1)

    def states_at(self, positions: np.ndarray) -> np.ndarray:
        """True states at oldest-first positions: ``[..., S]`` float32."""
        return self._states[self._physical(np.asarray(positions, np.int64))]

    def sequences_at(self, starts: np.ndarray, length: int, stack: int = 1, partial: bool = False) -> FrameSequences:
        """The sequences of ``length`` steps at the given starts (from :meth:`sequence_starts`).

        With ``partial``, a sequence may stop at its episode's end: the steps after it are marked
        invalid (``valid``), with zero action and reward and the episode's last frame repeated."""
        starts = np.asarray(starts, np.int64)
        pos = starts[:, None] + np.arange(length + 1)  # [B, L+1]
        same = (pos < self._size) & (self.episode_of(np.minimum(pos, self._size - 1)) == self.episode_of(starts)[:, None])
        need = same[:, 1] if partial else same[:, -1]
        if not need.all():
            raise ConfigError(f"FrameBuffer.sequences_at: some starts have no {'step' if partial else f'sequence of {length} steps'}; "
                              f"take them from sequence_starts({length}{', partial=True' if partial else ''})")
        last = starts + same.sum(1) - 1  # an episode's rows are contiguous, so ``same`` is a prefix
        pos = np.where(same, pos, last[:, None])
        valid = same[:, 1:]  # [B, L]
        phys = self._physical(pos[:, :-1])
        return FrameSequences(
            frames=self.stacked_frames(pos, stack),
            actions=self._action[phys] * valid[..., None],
            rewards=self._reward[phys] * valid,
            terminated=self._terminated[phys] & valid,
            states=self.states_at(pos),
            start=starts,
            valid=valid,
        )

    def sample_sequences(self, batch: int, length: int, rng: np.random.Generator, stack: int = 1,
                         starts: np.ndarray | None = None, partial: bool = False) -> FrameSequences:
        """``batch`` sequences of ``length`` steps, uniform over valid starts (or over ``starts``), with
        replacement; with ``partial``, also sequences cut short by an episode's end (see :meth:`sequences_at`)."""
        if starts is None:
            starts = self.sequence_starts(length, partial)
        elif len(starts) == 0:
            raise ConfigError("FrameBuffer.sample_sequences: no start positions given")
        chosen = np.asarray(starts, np.int64)[rng.integers(0, len(starts), size=batch)]
        return self.sequences_at(chosen, length, stack, partial)


def collect_random_frames(env, buffer: FrameBuffer, num_steps: int, seed: int = 0, policy=None) -> FrameBuffer:
    """Run ``num_steps`` steps of ``env`` (a :class:`~mbrlax.envs.pixels.PixelObservation`) into ``buffer``.

    Stores the newest frame of each observation and ``info["state"]``; resets when an episode
    ends. ``policy(obs, rng) -> action`` defaults to uniform random actions. Seeded: the first
    reset uses ``seed``, actions come from ``np.random.default_rng(seed)``.
    """
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    act = policy or (lambda obs, r: r.uniform(low, high).astype(np.float32))
    obs, info = env.reset(seed=int(seed))
    buffer.add_first(obs[..., -3:], info["state"] if buffer.state_dim else None)
    for _ in range(int(num_steps)):
        a = act(obs, rng)
        obs, r, term, trunc, info = env.step(a)
        buffer.add(a, r, obs[..., -3:], term, trunc, info["state"] if buffer.state_dim else None)
        if term or trunc:
            obs, info = env.reset()
            buffer.add_first(obs[..., -3:], info["state"] if buffer.state_dim else None)
    return buffer
