"""Random shooting: ``population`` action sequences drawn uniformly inside the bounds; the best wins.

The simplest MPC optimiser (used e.g. by Nagabandi et al. 2018, "Neural network dynamics for
model-based deep RL with model-free fine-tuning"). ``init_actions`` (and the state's shifted
previous solution when ``keep_previous``) join the population as extra candidates.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from mbrlax.planning.base import Array, BoundedPlanner, Objective, PRNGKey, evaluate, finite_mean, shift_time
from mbrlax.utils.validate import check_range


@struct.dataclass
class RandomShootingState:
    mean: Array  # [H, A] the last solution (shifted by ``shift``); the centre at first


@dataclasses.dataclass(frozen=True)
class RandomShooting(BoundedPlanner):
    """Uniform random shooting.

    Attributes:
        population: number of sequences sampled per plan.
        keep_previous: add the state's (shifted) previous solution as one more candidate.
    """

    population: int = 1000
    keep_previous: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "population", gt=0)

    def init(self, key: PRNGKey) -> RandomShootingState:
        del key
        return RandomShootingState(mean=self.default_mean())

    def plan(self, state: RandomShootingState, objective: Objective, key: PRNGKey,
             init_actions: Array | None = None) -> tuple[Array, RandomShootingState, dict]:
        k_sample, k_obj = jax.random.split(key)
        shape = (self.population, self.horizon, self.action_dim)
        samples = jax.random.uniform(k_sample, shape, minval=self.low, maxval=self.high)  # [N, H, A]
        extra = []
        if self.keep_previous:
            extra.append(self.clip(state.mean)[None])
        if init_actions is not None:
            init_actions = self._check_init_actions(init_actions)
            extra.append(init_actions.reshape(-1, self.horizon, self.action_dim))
        if extra:
            samples = jnp.concatenate([samples, *extra], axis=0)
        n = samples.shape[0]
        returns = evaluate(objective, k_obj, samples, n)  # [n]
        i = jnp.argmax(returns)
        actions = samples[i]
        info = dict(best_return=returns[i], iterations=jnp.int32(1),
                    mean_return=finite_mean(returns)[None], max_return=returns[i][None])
        return actions, RandomShootingState(mean=actions), info

    def shift(self, state: RandomShootingState) -> RandomShootingState:
        return state.replace(mean=shift_time(state.mean, self.centre))
