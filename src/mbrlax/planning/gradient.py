"""Planning by backpropagation through the objective.

``candidates`` action sequences are parameterised without constraints, ``actions = centre +
half_range * tanh(z)`` (so they never leave the bounds), and ``steps`` Adam (optax) steps maximise
the sum of their returns (each candidate's gradient is its own, as long as the objective treats
sequences independently). The best candidate seen over all steps is returned.

Starting points: candidate 0 is the state's mean (the shifted previous solution, the centre at
first); the others are ``mean + init_std * half_range * N(0, 1)``, clipped. With
``init_actions [H, A]`` (e.g. a sampling planner's solution): ``init_mode="one"`` replaces
candidate 0 by it, ``init_mode="all"`` centres every candidate on it instead of the mean.
``init_actions [M, H, A]`` (M <= candidates) replaces the first M candidates. Starting actions
are pulled ``squash_margin`` inside the bounds before ``arctanh``.

The objective's key is the same at every step by default (common random numbers: a stochastic
objective, e.g. trajectory sampling, becomes a fixed function); ``fresh_keys=True`` draws a new
one per step. Non-finite returns count as ``-inf`` for selection and contribute no gradient;
non-finite gradient entries are zeroed. Settings are ours, not a paper's (no standard defaults):
16 candidates, 100 steps, learning rate 0.1 in ``z`` (Adam steps are scale-free, so this is
relative to the bounds), ``init_std = 0.3``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from mbrlax.errors import ConfigError
from mbrlax.planning.base import (Array, BoundedPlanner, Objective, PRNGKey, finite_mean, sanitize_returns,
                                  shift_time, update_best)
from mbrlax.utils.validate import check_choice, check_range


@struct.dataclass
class GradientState:
    mean: Array  # [H, A] the last solution (shifted by ``shift``)


@dataclasses.dataclass(frozen=True)
class GradientPlanner(BoundedPlanner):
    """Adam on tanh-squashed action sequences.

    Attributes:
        candidates: sequences optimised in parallel.
        steps: Adam steps.
        learning_rate: Adam step size in the unconstrained space.
        init_std: spread of the starting candidates, in half ranges.
        init_mode: "one" or "all": how ``init_actions`` seeds the candidates.
        fresh_keys: new objective key per step instead of one fixed key.
        squash_margin: starting actions are kept this far (in half ranges) inside the bounds.
    """

    candidates: int = 16
    steps: int = 100
    learning_rate: float = 0.1
    init_std: float = 0.3
    init_mode: str = "one"
    fresh_keys: bool = False
    squash_margin: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "candidates", "steps", "learning_rate", "squash_margin", gt=0)
        if self.init_std < 0:
            raise ConfigError(f"init_std must be >= 0, got {self.init_std}")
        check_choice(self, "init_mode", ("one", "all"))

    def init(self, key: PRNGKey) -> GradientState:
        del key
        return GradientState(mean=self.default_mean())

    def squash(self, z: Array) -> Array:
        """Unconstrained ``z [..., H, A]`` to actions inside the bounds."""
        return self.centre + self.half_range * jnp.tanh(z)

    def unsquash(self, actions: Array) -> Array:
        """Actions to ``z``, with the margin keeping ``arctanh`` finite."""
        y = (actions - self.centre) / self.half_range
        return jnp.arctanh(jnp.clip(y, -1.0 + self.squash_margin, 1.0 - self.squash_margin))

    def _starts(self, key: PRNGKey, mean: Array, init_actions: Array | None) -> Array:
        """``[K, H, A]`` starting actions."""
        shape = (self.candidates, self.horizon, self.action_dim)
        centre = mean
        if init_actions is not None and init_actions.ndim == 2 and self.init_mode == "all":
            centre = init_actions
        noise = jax.random.normal(key, shape) * (self.init_std * self.half_range)
        starts = self.clip(centre + noise).at[0].set(centre)
        if init_actions is not None:
            seeds = init_actions.reshape(-1, self.horizon, self.action_dim)
            if seeds.shape[0] > self.candidates:
                raise ConfigError(f"init_actions holds {seeds.shape[0]} sequences but there are "
                                  f"only {self.candidates} candidates")
            starts = starts.at[: seeds.shape[0]].set(seeds)
        return starts

    def plan(self, state: GradientState, objective: Objective, key: PRNGKey,
             init_actions: Array | None = None) -> tuple[Array, GradientState, dict]:
        if init_actions is not None:
            init_actions = self._check_init_actions(init_actions)
        k_init, k_obj = jax.random.split(key)
        z = self.unsquash(self._starts(k_init, self.clip(state.mean), init_actions))  # [K, H, A]
        opt = optax.adam(self.learning_rate)
        K = self.candidates

        def loss(z, k):
            returns = objective(k, self.squash(z))
            if returns.shape != (K,):
                raise ConfigError(f"objective must return shape ({K},), got {returns.shape}")
            returns = sanitize_returns(returns)
            finite = jnp.isfinite(returns)
            return -jnp.sum(jnp.where(finite, returns, 0.0)), returns

        grad_fn = jax.value_and_grad(loss, has_aux=True)
        obj_keys = (jax.random.split(k_obj, self.steps + 1) if self.fresh_keys
                    else jnp.broadcast_to(k_obj, (self.steps + 1,) + k_obj.shape))

        def step(carry, k):
            z, opt_state, best_r, best_a = carry
            (_, returns), g = grad_fn(z, k)
            g = jnp.where(jnp.isfinite(g), g, 0.0)
            best_r, best_a = update_best(best_r, best_a, returns, self.squash(z))
            updates, opt_state = opt.update(g, opt_state, z)
            z = optax.apply_updates(z, updates)
            return (z, opt_state, best_r, best_a), (finite_mean(returns), jnp.max(returns))

        init = (z, opt.init(z), jnp.float32(-jnp.inf), self.squash(z[0]))
        (z, _, best_r, best_a), (mean_hist, max_hist) = jax.lax.scan(step, init, obj_keys[:-1])
        # the last update's result gets evaluated too
        final_r = sanitize_returns(objective(obj_keys[-1], self.squash(z)))
        best_r, best_a = update_best(best_r, best_a, final_r, self.squash(z))
        best_a = self.clip(best_a)
        info = dict(best_return=best_r, iterations=jnp.int32(self.steps), mean_return=mean_hist,
                    max_return=max_hist)
        return best_a, GradientState(mean=best_a), info

    def shift(self, state: GradientState) -> GradientState:
        return GradientState(mean=shift_time(state.mean, self.centre))
