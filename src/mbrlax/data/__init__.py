"""Data: a replay buffer of transitions (NumPy on the host) and rollout collection with any policy."""

from mbrlax.data.buffer import Batch, ReplayBuffer
from mbrlax.data.rollout import CollectStats, Policy, collect, collect_episodes, random_policy

__all__ = ["Batch", "CollectStats", "Policy", "ReplayBuffer", "collect", "collect_episodes", "random_policy"]
