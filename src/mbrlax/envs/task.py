"""A task: an environment's reward and termination as pure, batched JAX functions.

Planners and model rollouts need the reward of imagined transitions, so for each
known environment we write its reward and termination as differentiable functions
of ``(obs, action, next_obs)`` that broadcast over any leading batch shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax.numpy as jnp
import numpy as np

# reward_fn(obs[..., D], action[..., A], next_obs[..., D]) -> reward[...]
RewardFn = Callable[[jnp.ndarray, jnp.ndarray, jnp.ndarray], jnp.ndarray]
# termination_fn(obs[..., D], action[..., A], next_obs[..., D]) -> terminated[...] (bool)
TerminationFn = Callable[[jnp.ndarray, jnp.ndarray, jnp.ndarray], jnp.ndarray]


def never_terminates(obs: jnp.ndarray, action: jnp.ndarray, next_obs: jnp.ndarray) -> jnp.ndarray:
    """Termination function of environments that only truncate: always False, shape obs[..., 0]."""
    return jnp.zeros(next_obs.shape[:-1], dtype=bool)


def unit_bounds(act_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Read-only ``[-1, 1]`` action bounds ``(low [A], high [A])`` for a Task (the lessons' and hand envs' actions)."""
    low, high = np.full(act_dim, -1.0, np.float32), np.full(act_dim, 1.0, np.float32)
    low.flags.writeable = high.flags.writeable = False
    return low, high


@dataclass(frozen=True)
class Task:
    """Reward and termination of one environment, plus the facts planners need.

    ``reward_fn`` / ``termination_fn`` take ``obs[..., D], action[..., A], next_obs[..., D]``
    and return ``[...]``. ``action_low`` / ``action_high`` are ``[A]`` bounds.
    """

    env_id: str
    obs_dim: int
    act_dim: int
    action_low: np.ndarray
    action_high: np.ndarray
    reward_fn: RewardFn
    termination_fn: TerminationFn = never_terminates
    max_episode_steps: int = 1000
    obs_features: Callable[[jnp.ndarray], jnp.ndarray] | None = None
    """Optional model-input features ``obs[..., D] -> [..., feature_dim]`` (e.g. sin/cos of angles)."""
    feature_dim: int = 0
    policy_features: Callable[[jnp.ndarray], jnp.ndarray] | None = None
    """Optional policy-input features ``obs[..., D] -> [..., policy_feature_dim]``: what a model-free
    learner should see. Usually the model's features (a runner's unbounded x dropped), but not where
    those drop what the policy needs (a maze's model features drop the goal); None: the raw obs."""
    policy_feature_dim: int = 0
    success_fn: Callable[[jnp.ndarray], jnp.ndarray] | None = None
    """Optional success measure ``next_obs[..., D] -> [...]`` (bool): the task is achieved after this
    step (the hand tasks: objects within a tolerance of their goals). A metric for runs, never planned on."""

    def success_rate(self, next_obs, episode_steps: int) -> float | None:
        """Fraction of an episode's ``episode_steps`` steps that succeed, from its ``next_obs[T, D]``
        (``T <= episode_steps``: steps after a termination count as failures, so dropping the object
        early cannot score well); None if the task has no success measure."""
        if self.success_fn is None:
            return None
        ok = np.asarray(self.success_fn(jnp.asarray(np.asarray(next_obs))), bool)
        return float(ok.sum() / max(episode_steps, len(ok), 1))

    def policy_input_tag(self) -> str:
        """Names the policy's observation map, stored in checkpoints so a resume cannot mix maps."""
        return f"features{self.policy_feature_dim}" if self.policy_features is not None else "raw"

    def __hash__(self) -> int:  # hashable so a Task can be a static jit argument
        return hash((self.env_id, self.obs_dim, self.act_dim, self.reward_fn, self.termination_fn))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and hash(self) == hash(other)
