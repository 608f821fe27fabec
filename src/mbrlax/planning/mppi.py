"""MPPI with filtered noise and reward-weighted refinement, as in PDDM (Nagabandi et al. 2019,
"Deep Dynamics Models for Learning Dexterous Manipulation", CoRL 2019).

Candidates are filtered around the mean ``mu [H, A]``::

    eps ~ N(0, sigma^2),   u_t = beta * (mu_t + eps_t) + (1 - beta) * u_{t-1},   u_{-1} = last action

(``beta`` weighs the *new* sample, as in the paper and its code; ``beta = 1`` is unfiltered MPPI),
clipped into the bounds, and the mean becomes the reward-weighted average of the candidates::

    w_i = exp(gamma * (R_i - max_j R_j)),   mu <- sum_i w_i u_i / sum_i w_i

NaN returns get weight 0 (if every return is NaN, the weights are uniform). The plan returns the
new mean; the agent executes its first action. ``shift`` remembers that action as ``u_{-1}`` and
shifts the mean (last step: the centre).

Defaults follow the PDDM release's Baoding-balls configuration (google-research/pddm,
``pddm/config/baoding.txt``): ``population = 700`` (num_control_samples), ``gamma = 20``
(mppi_kappa), ``beta = 0.6`` (mppi_beta), ``noise_std = 0.9`` (mppi_mag_noise, for actions in
[-1, 1]; here in half ranges), one update per environment step (``iterations = 1``); horizon 7
there. Other PDDM tasks use gamma 0.5-20 and beta 0.6-0.9: gamma depends on the reward scale.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mbrlax.errors import ConfigError
from mbrlax.planning.base import (Array, BoundedPlanner, Objective, PRNGKey, evaluate, finite_mean,
                                  shift_time, update_best)
from mbrlax.utils.validate import check_range


@struct.dataclass
class MPPIState:
    mean: Array  # [H, A]
    last_action: Array  # [A] the action executed before this plan (u_{-1} of the filter)


@dataclasses.dataclass(frozen=True)
class MPPI(BoundedPlanner):
    """PDDM's filtered MPPI.

    Attributes:
        population: candidate sequences per iteration (PDDM: 700).
        gamma: reward-weighting inverse temperature (PDDM's kappa: 20 on Baoding).
        beta: filter weight of the new sample (PDDM: 0.6).
        noise_std: noise standard deviation in half ranges (PDDM: 0.9 for actions in [-1, 1]).
        iterations: weighted updates per plan (PDDM: 1).
    """

    population: int = 700
    gamma: float = 20.0
    beta: float = 0.6
    noise_std: float = 0.9
    iterations: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "population", "gamma", "noise_std", "iterations", gt=0)
        if not 0.0 < self.beta <= 1.0:
            raise ConfigError(f"beta must be in (0, 1], got {self.beta}")

    def init(self, key: PRNGKey) -> MPPIState:
        del key
        return MPPIState(mean=self.default_mean(), last_action=self.centre)

    def _filter_matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """``L [H, H]`` and ``d [H]`` with ``u = L @ (mu + eps) + d * u_{-1}`` (the filter unrolled)."""
        t = np.arange(self.horizon)
        lag = t[:, None] - t[None, :]
        L = np.where(lag >= 0, self.beta * (1.0 - self.beta) ** np.maximum(lag, 0), 0.0)
        d = (1.0 - self.beta) ** (t + 1)
        return L.astype(np.float32), d.astype(np.float32)

    def sample(self, key: PRNGKey, mean: Array, last_action: Array) -> Array:
        """``[N, H, A]`` filtered candidates inside the bounds."""
        eps = jax.random.normal(key, (self.population, self.horizon, self.action_dim))
        raw = mean + eps * (self.noise_std * self.half_range)
        L, d = self._filter_matrices()
        u = jnp.einsum("ts,nsa->nta", L, raw) + d[:, None] * last_action
        return self.clip(u)

    def weights(self, returns: Array) -> Array:
        """``[N] -> [N]`` normalised reward weights; ``-inf`` (NaN, +inf) returns get 0."""
        finite = jnp.isfinite(returns)
        top = jnp.max(jnp.where(finite, returns, -jnp.inf))
        top = jnp.where(jnp.isfinite(top), top, 0.0)
        w = jnp.where(finite, jnp.exp(self.gamma * (jnp.where(finite, returns, top) - top)), 0.0)
        total = jnp.sum(w)
        uniform = jnp.full_like(w, 1.0 / w.shape[0])
        return jnp.where(total > 0, w / jnp.maximum(total, 1e-30), uniform)

    def plan(self, state: MPPIState, objective: Objective, key: PRNGKey,
             init_actions: Array | None = None) -> tuple[Array, MPPIState, dict]:
        """``init_actions [H, A]``, when given, replaces the state's mean for this plan."""
        mean = state.mean if init_actions is None else self._check_init_actions(init_actions)
        mean = self.clip(mean)

        def step(carry, k):
            mean, best_r, best_a = carry
            k_sample, k_obj = jax.random.split(k)
            samples = self.sample(k_sample, mean, state.last_action)  # [N, H, A]
            returns = evaluate(objective, k_obj, samples, self.population)  # [N]
            w = self.weights(returns)
            mean = self.clip(jnp.einsum("n,nha->ha", w, samples))
            best_r, best_a = update_best(best_r, best_a, returns, samples)
            return (mean, best_r, best_a), (finite_mean(returns), jnp.max(returns))

        init = (mean, jnp.float32(-jnp.inf), mean)
        (mean, best_r, _), (mean_hist, max_hist) = jax.lax.scan(
            step, init, jax.random.split(key, self.iterations))
        info = dict(best_return=best_r, iterations=jnp.int32(self.iterations),
                    mean_return=mean_hist, max_return=max_hist)
        return mean, state.replace(mean=mean), info

    def shift(self, state: MPPIState) -> MPPIState:
        return MPPIState(mean=shift_time(state.mean, self.centre), last_action=state.mean[0])
