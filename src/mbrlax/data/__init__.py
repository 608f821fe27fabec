"""Data: a replay buffer of transitions (NumPy on the host), rollout collection with any policy, and
trajectory windows (with actions, or observations only) that never cross an episode end."""

from mbrlax.data.buffer import Batch, ReplayBuffer
from mbrlax.data.frames import FrameBuffer, FrameSequences, collect_random_frames
from mbrlax.data.rollout import CollectStats, Policy, collect, collect_episodes, random_policy
from mbrlax.data.windows import (Windows, observation_window_starts, observation_windows, observation_windows_at,
                                 sample_windows, window_starts, windows_at)

__all__ = ["Batch", "CollectStats", "FrameBuffer", "FrameSequences", "collect_random_frames", "Policy", "ReplayBuffer", "Windows", "collect", "collect_episodes",
           "observation_window_starts", "observation_windows", "observation_windows_at", "random_policy", "sample_windows", "window_starts",
           "windows_at"]
