"""Small Gymnasium wrappers the registry applies to known environments."""

from __future__ import annotations

from typing import Callable, Sequence

import gymnasium
import numpy as np
from gymnasium.spaces import Box

from mbrlax.errors import ConfigError


class AppendObservation(gymnasium.ObservationWrapper):
    """Append ``features(env.unwrapped) -> [K]`` to a 1-D Box observation (after reset and step).

    Used where an env's reward reads simulator quantities its observation lacks, so the
    task's reward can be computed from ``(obs, action, next_obs)`` alone.
    ``feature_names`` (length K) documents the new entries (``self.feature_names``).
    """

    def __init__(self, env: gymnasium.Env, features: Callable[[gymnasium.Env], np.ndarray], feature_names: Sequence[str]):
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, Box) or len(space.shape) != 1:
            raise ConfigError(f"AppendObservation needs a 1-D Box observation space, got {space}")
        k = len(feature_names)
        self._features = features
        self.feature_names = tuple(feature_names)
        dtype = np.result_type(space.dtype, np.float64)
        self.observation_space = Box(
            low=np.concatenate([space.low.astype(dtype), np.full(k, -np.inf, dtype)]),
            high=np.concatenate([space.high.astype(dtype), np.full(k, np.inf, dtype)]),
            dtype=dtype,
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        extra = np.asarray(self._features(self.env.unwrapped), dtype=self.observation_space.dtype)
        return np.concatenate([np.asarray(observation, self.observation_space.dtype), extra])


class TaskFeatures(gymnasium.ObservationWrapper):
    """Observations mapped through a task's ``policy_features`` (``[D] -> [policy_feature_dim]``).

    For a model-free learner: ``make_env`` keeps a runner's x position in the observation so the
    task's reward can be computed, but it grows without bound (hundreds of metres in a
    HalfCheetah episode) and says nothing about what to do; the features drop it.
    """

    def __init__(self, env: gymnasium.Env, features: Callable, feature_dim: int):
        super().__init__(env)
        import jax

        self._features = jax.jit(features)
        self.observation_space = Box(-np.inf, np.inf, (feature_dim,), np.float32)

    def observation(self, observation):
        return np.asarray(self._features(np.asarray(observation, np.float32)), np.float32)
