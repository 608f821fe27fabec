"""iCEM, the improved cross-entropy method of Pinneri et al. 2020 ("Sample-efficient Cross-Entropy
Method for Real-time Planning", CoRL 2020).

Differences from plain CEM, each from the paper:

- **coloured noise**: sequences are ``clip(mean + std * noise)`` with noise whose power spectrum
  over time is ``1/f^beta`` (``noise_beta``), so actions are temporally correlated;
- **population decay**: iteration ``i`` samples ``N_i = max(2 * elites, int(N_{i-1} / decay))``;
- **keep elites**: the best ``int(elites * keep_fraction)`` of one iteration join the next one;
- **shift elites**: the same fraction of the last iteration's elites, shifted one step in time
  (``shift``) with a freshly sampled last action, join the first iteration of the next plan;
- **mean as a candidate**: on the last iteration the mean replaces one sample;
- **execute the best**: the returned sequence is the best one of the last iteration (which holds
  the kept elites re-evaluated); the distribution update uses ``std`` momentum
  ``std <- (1 - alpha) * elite_std + alpha * std``.

Defaults are those of the authors' released settings (martius-lab/iCEM,
``icem/settings/defaults/i-cem-blitz.json``): population 40, 10 elites, 3 iterations,
``alpha = 0.1``, ``init_std = 0.5`` (in half ranges), ``noise_beta = 3.0`` (the HalfCheetah
setting overrides it to 0.25), ``decay = 1.25``, ``keep_fraction = 0.3``, horizon 30. These are a
small-budget setting; raise ``population`` for harder models.

Population sizes differ per iteration, so iterations are a static Python loop (unrolled: compile
time grows with ``iterations``; keep it small). ``shift`` shifts the mean, fills its last step
with the centre, resets ``std`` to its initial value (as the reference does every step) and shifts
the kept elites. Departure: the reference repeats the mean's last step; we fill with the centre,
like every other planner here.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from mbrlax.errors import ConfigError
from mbrlax.planning.base import (Array, BoundedPlanner, Objective, PRNGKey, evaluate, finite_mean,
                                  shift_time, top_k)
from mbrlax.planning.noise import colored_noise
from mbrlax.utils.validate import check_range


@struct.dataclass
class ICEMState:
    mean: Array  # [H, A]
    std: Array  # [H, A]
    elites: Array  # [n_keep, H, A] elites carried to the next plan (shifted by ``shift``)


@dataclasses.dataclass(frozen=True)
class ICEM(BoundedPlanner):
    """Improved CEM (Pinneri et al. 2020).

    Attributes:
        population: sequences sampled in the first iteration.
        elites: elite set size.
        iterations: CEM iterations per plan.
        alpha: momentum of the old mean/std.
        init_std: initial std in half ranges.
        noise_beta: colour of the noise (0 white, 1 pink, 2 brown).
        decay: population decay factor per iteration (gamma in the paper).
        keep_fraction: fraction of elites kept across iterations and shifted across steps.
        use_mean_actions: put the mean into the last iteration's population.
    """

    population: int = 40
    elites: int = 10
    iterations: int = 3
    alpha: float = 0.1
    init_std: float = 0.5
    noise_beta: float = 3.0
    decay: float = 1.25
    keep_fraction: float = 0.3
    use_mean_actions: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "population", "elites", "iterations", "init_std", gt=0)
        if self.decay < 1.0:
            raise ConfigError(f"decay must be >= 1, got {self.decay}")
        if not 0.0 <= self.keep_fraction <= 1.0:
            raise ConfigError(f"keep_fraction must be in [0, 1], got {self.keep_fraction}")
        if not 0.0 <= self.alpha < 1.0:
            raise ConfigError(f"alpha must be in [0, 1), got {self.alpha}")
        if self.elites > self.population:
            raise ConfigError(f"elites ({self.elites}) must be <= population ({self.population})")
        if self.noise_beta < 0:
            raise ConfigError(f"noise_beta must be >= 0, got {self.noise_beta}")

    @property
    def populations(self) -> tuple[int, ...]:
        """Freshly sampled sequences per iteration (the paper's decay, floored at 2 * elites)."""
        sizes, n = [], self.population
        for i in range(self.iterations):
            if i > 0:
                n = max(2 * self.elites, int(n / self.decay))
            sizes.append(min(n, self.population))
        return tuple(sizes)

    @property
    def n_keep(self) -> int:
        """Elites kept across iterations and shifted across steps."""
        return int(self.elites * self.keep_fraction)

    def init_std_array(self) -> Array:
        return jnp.broadcast_to(self.init_std * self.half_range, (self.horizon, self.action_dim))

    def sample(self, key: PRNGKey, mean: Array, std: Array, n: int) -> Array:
        """``[n, H, A]`` coloured-noise sequences clipped into the bounds."""
        noise = colored_noise(key, self.noise_beta, (n, self.horizon, self.action_dim))
        return self.clip(mean + std * noise)

    def init(self, key: PRNGKey) -> ICEMState:
        """Mean at the centre; the carried elites are samples from the initial distribution."""
        mean, std = self.default_mean(), self.init_std_array()
        return ICEMState(mean=mean, std=std, elites=self.sample(key, mean, std, self.n_keep))

    def plan(self, state: ICEMState, objective: Objective, key: PRNGKey,
             init_actions: Array | None = None) -> tuple[Array, ICEMState, dict]:
        """``init_actions [H, A]``, when given, replaces the state's mean for this plan."""
        mean = state.mean if init_actions is None else self._check_init_actions(init_actions)
        mean, std = self.clip(mean), state.std
        k_noise, k_obj = jax.random.split(key)
        obj_keys = jax.random.split(k_obj, self.iterations)
        # all the noise of this plan in one RNG call (fewer RNG ops compile faster), sliced below
        sizes = self.populations
        noise = colored_noise(k_noise, self.noise_beta,
                              (sum(sizes) + self.n_keep, self.horizon, self.action_dim))
        kept = state.elites  # [n_keep, H, A]
        if self.n_keep > 0:
            # shifted elites get a fresh last action from the current distribution
            last = self.clip(mean + std * noise[sum(sizes):])[:, -1]
            kept = kept.at[:, -1].set(last)
        best_r = best_a = None
        mean_hist, max_hist = [], []
        start = 0
        for i, n in enumerate(sizes):
            pool = self.clip(mean + std * noise[start:start + n])  # [n, H, A]
            start += n
            if self.use_mean_actions and i == self.iterations - 1:
                pool = pool.at[0].set(mean)
            if self.n_keep > 0:
                pool = jnp.concatenate([pool, kept], axis=0)  # [n + n_keep, H, A]
            returns = evaluate(objective, obj_keys[i], pool, pool.shape[0])
            k = min(self.elites, pool.shape[0])
            elite_r, elite = top_k(returns, pool, k)
            mean = (1.0 - self.alpha) * jnp.mean(elite, axis=0) + self.alpha * mean
            std = (1.0 - self.alpha) * jnp.std(elite, axis=0) + self.alpha * std
            kept = elite[: self.n_keep]
            best_r, best_a = elite_r[0], elite[0]
            mean_hist.append(finite_mean(returns))
            max_hist.append(elite_r[0])
        info = dict(best_return=best_r, iterations=jnp.int32(self.iterations),
                    mean_return=jnp.stack(mean_hist), max_return=jnp.stack(max_hist))
        new_state = ICEMState(mean=self.clip(mean), std=std, elites=kept)
        return best_a, new_state, info

    def shift(self, state: ICEMState) -> ICEMState:
        return ICEMState(mean=shift_time(state.mean, self.centre), std=self.init_std_array(),
                         elites=shift_time(state.elites, self.centre))
