"""The cross-entropy method as used by PETS (Chua et al. 2018).

Per iteration: sample ``population`` sequences from a diagonal Gaussian ``N(mean, var)`` over
``[H, A]`` kept inside the bounds, take the ``elites`` best, and move the distribution towards them
with momentum ``alpha``::

    mean <- alpha * mean + (1 - alpha) * elite_mean
    var  <- alpha * var  + (1 - alpha) * elite_var

Defaults are PETS's (Chua et al. 2018, appendix; handful-of-trials ``optimizers/cem.py``):
population 500, 50 elites, 5 iterations, ``alpha = 0.1``, initial variance ``(high - low)^2 / 16``
(``init_std = 0.5`` half ranges), samples from a Gaussian truncated at two standard deviations with
the variance capped so that ``mean ± 2 std`` stays inside the bounds, early stop once
``max(var) <= epsilon = 1e-3``. Departures, and why:

- ``epsilon`` is measured in units of the half range (``var / half_range^2``), identical to PETS for
  actions in [-1, 1] but independent of how an environment scales its actions.
- The first iteration always runs (PETS can run zero iterations when the bounds are tiny).
- ``sampling="clip"`` draws untruncated Gaussians and clips them, the other common variant.
- ``select="best"`` returns the best sequence seen instead of the final mean.

Iterations run in one ``lax.while_loop`` (which stops early); per-iteration records are NaN for
the iterations that did not run. ``shift`` shifts the mean and resets the variance (PETS re-plans
from the previous solution with the initial variance).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from mbrlax.errors import ConfigError
from mbrlax.planning.base import (Array, BoundedPlanner, Objective, PRNGKey, empty_history, evaluate,
                                  finite_mean, shift_time, top_k, update_best)
from mbrlax.utils.validate import check_choice, check_range


@struct.dataclass
class CEMState:
    mean: Array  # [H, A]
    var: Array  # [H, A]


@dataclasses.dataclass(frozen=True)
class CEM(BoundedPlanner):
    """Cross-entropy method (PETS flavour).

    Attributes:
        population: sequences sampled per iteration (PETS: 500).
        elites: how many of the best refit the Gaussian (PETS: 50).
        iterations: maximum iterations (PETS: 5).
        alpha: weight of the old mean/variance in the update (PETS: 0.1).
        init_std: initial standard deviation in half ranges; 0.5 gives PETS's ``(high-low)^2/16``.
        epsilon: stop when ``max(var / half_range^2) <= epsilon`` (PETS: 1e-3).
        sampling: "truncated" (PETS) or "clip".
        select: "mean" (PETS: return the final mean) or "best" (the best sequence seen).
    """

    population: int = 500
    elites: int = 50
    iterations: int = 5
    alpha: float = 0.1
    init_std: float = 0.5
    epsilon: float = 1e-3
    sampling: str = "truncated"
    select: str = "mean"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "population", "elites", "iterations", "init_std", gt=0)
        if self.elites > self.population:
            raise ConfigError(f"elites ({self.elites}) must be <= population ({self.population})")
        if not 0.0 <= self.alpha < 1.0:
            raise ConfigError(f"alpha must be in [0, 1), got {self.alpha}")
        check_choice(self, "sampling", ("truncated", "clip"))
        check_choice(self, "select", ("mean", "best"))

    def init_var(self) -> Array:
        """``[H, A]`` initial variance."""
        std = self.init_std * self.half_range
        return jnp.broadcast_to(std**2, (self.horizon, self.action_dim))

    def init(self, key: PRNGKey) -> CEMState:
        del key
        return CEMState(mean=self.default_mean(), var=self.init_var())

    def sample(self, key: PRNGKey, mean: Array, var: Array, n: int) -> Array:
        """``n`` sequences ``[n, H, A]`` inside the bounds."""
        shape = (n, self.horizon, self.action_dim)
        if self.sampling == "truncated":
            gap = jnp.minimum(mean - self.low, self.high - mean)
            var = jnp.minimum(var, jnp.square(gap / 2.0))
            eps = jax.random.truncated_normal(key, -2.0, 2.0, shape)
        else:
            eps = jax.random.normal(key, shape)
        return self.clip(mean + jnp.sqrt(var) * eps)

    def plan(self, state: CEMState, objective: Objective, key: PRNGKey,
             init_actions: Array | None = None) -> tuple[Array, CEMState, dict]:
        """``init_actions [H, A]``, when given, replaces the state's mean for this plan."""
        mean = state.mean if init_actions is None else self._check_init_actions(init_actions)
        mean = self.clip(mean)
        keys = jax.random.split(key, (self.iterations, 2))
        scale = jnp.square(self.half_range)  # [A] variance units of the early stop

        def cond(carry):
            i, _, var, *_ = carry
            return (i == 0) | ((i < self.iterations) & (jnp.max(var / scale) > self.epsilon))

        def body(carry):
            i, mean, var, best_r, best_a, mean_hist, max_hist = carry
            k_sample, k_obj = keys[i, 0], keys[i, 1]
            samples = self.sample(k_sample, mean, var, self.population)  # [N, H, A]
            returns = evaluate(objective, k_obj, samples, self.population)  # [N]
            elite_r, elite = top_k(returns, samples, self.elites)  # [K], [K, H, A]
            mean = self.alpha * mean + (1.0 - self.alpha) * jnp.mean(elite, axis=0)
            var = self.alpha * var + (1.0 - self.alpha) * jnp.var(elite, axis=0)
            best_r, best_a = update_best(best_r, best_a, elite_r[:1], elite[:1])
            mean_hist = mean_hist.at[i].set(finite_mean(returns))
            max_hist = max_hist.at[i].set(elite_r[0])
            return i + 1, mean, var, best_r, best_a, mean_hist, max_hist

        carry = (jnp.int32(0), mean, state.var, jnp.float32(-jnp.inf), mean,
                 empty_history(self.iterations), empty_history(self.iterations))
        n_iter, mean, var, best_r, best_a, mean_hist, max_hist = jax.lax.while_loop(cond, body, carry)
        mean = self.clip(mean)
        actions = mean if self.select == "mean" else best_a
        info = dict(best_return=best_r, iterations=n_iter, mean_return=mean_hist,
                    max_return=max_hist)
        return actions, CEMState(mean=mean, var=var), info

    def shift(self, state: CEMState) -> CEMState:
        return CEMState(mean=shift_time(state.mean, self.centre), var=self.init_var())
