"""The one place where a model and a task become a planner's objective.

``make_objective(...)(model_state, obs)`` returns ``objective(key, actions[N, H, A]) -> returns[N]``:
each candidate is rolled out with P particles (TS1, TS∞, mean or expectation propagation),
rewards are discounted, a particle that terminates stops earning, an optional terminal value
is added, and the return is the particle average. NaN and +inf returns become -inf (rank last).
An optional uncertainty penalty subtracts the particles' disagreement, so plans stay where
the model has data, and an optional quadratic state cost acts as a planning prior (both off by
default: PETS scores the mean return only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp

from mbrlax.envs.task import Task
from mbrlax.errors import ConfigError
from mbrlax.models.dynamics import DynamicsModel, ModelState
from mbrlax.models.propagation import PROPAGATIONS
from mbrlax.models.simulator import check_reward_source, rollout
from mbrlax.planning.base import sanitize_returns
from mbrlax.utils.validate import check_choice, check_range, setting

# terminal_value(obs[B, D]) -> value[B]
TerminalValue = Callable[[jnp.ndarray], jnp.ndarray]


@dataclass(frozen=True)
class ObjectiveConfig:
    """How imagined rollouts are scored."""

    propagation: str = "tsinf"
    """ts1, tsinf, mean (deterministic members) or expectation (average of members)."""
    num_particles: int = 20
    """Particles per candidate sequence (PETS: 20)."""
    discount: float = 1.0
    """Per-step discount of imagined rewards."""
    uncertainty_penalty: float = 0.0
    """λ >= 0: per step, subtract λ × the spread of the candidate's particles (0: off; docs/settings.md)."""
    state_cost: tuple[float, ...] = ()
    """Weights w[D] >= 0 of a quadratic state cost, a planning prior (() or all 0: off; docs/settings.md)."""

    @property
    def has_state_cost(self) -> bool:
        """Whether the state cost does any work (an all-zero weight vector is off, like ())."""
        return any(self.state_cost)

    def __post_init__(self):
        check_choice(self, "propagation", PROPAGATIONS)
        check_range(self, "num_particles", ge=1)
        check_range(self, "discount", gt=0, le=1)
        try:
            object.__setattr__(self, "state_cost", tuple(float(w) for w in self.state_cost))  # hashable
        except (TypeError, ValueError):
            raise ConfigError(f"{setting(self, 'state_cost')} {self.state_cost!r} must be numbers, "
                              "one weight per observation dim") from None
        if not all(math.isfinite(w) and w >= 0.0 for w in self.state_cost):
            raise ConfigError(f"{setting(self, 'state_cost')} weights must be finite and >= 0, got {self.state_cost}")
        check_range(self, "uncertainty_penalty", ge=0)
        if self.uncertainty_penalty > 0.0 and (self.propagation == "expectation" or self.num_particles < 2):
            raise ConfigError(f"{setting(self, 'uncertainty_penalty')} > 0 measures the spread of a candidate's particles: "
                              f"it needs {setting(self, 'num_particles')} >= 2 (got {self.num_particles}) and "
                              f"{setting(self, 'propagation')} ts1, tsinf or mean (got {self.propagation!r})")


def make_objective(model: DynamicsModel, task: Task | None, cfg: ObjectiveConfig = ObjectiveConfig(),
                   terminal_value: TerminalValue | None = None):
    """``(model_state, obs[D]) -> objective``; use the elite sub-ensemble as ``model_state``."""
    check_reward_source(model, task)
    P = 1 if cfg.propagation == "expectation" else cfg.num_particles
    if cfg.state_cost and len(cfg.state_cost) != model.cfg.obs_dim:
        raise ConfigError(f"state_cost has {len(cfg.state_cost)} weights, the observation has "
                          f"{model.cfg.obs_dim} dims: give one weight per dim")
    cost_weights = jnp.asarray(cfg.state_cost, jnp.float32) if cfg.has_state_cost else None  # all-zero: no work

    def for_state(state: ModelState, obs: jnp.ndarray):
        def objective(key: jax.Array, actions: jnp.ndarray) -> jnp.ndarray:
            N, H, _ = actions.shape
            obs0 = jnp.broadcast_to(obs, (N * P, obs.shape[-1]))
            acts = jnp.repeat(actions, P, axis=0)  # candidate n owns particles n*P .. n*P+P-1
            traj = rollout(model, state, obs0, acts, key, task, cfg.propagation)
            ret = (traj.reward * cfg.discount ** jnp.arange(H)).sum(-1)  # [N*P]
            if cost_weights is not None:
                ret = ret - quadratic_state_cost(traj.obs, traj.terminated, cost_weights, cfg.discount)
            if terminal_value is not None:
                alive = ~traj.terminated[:, -1]
                ret = ret + cfg.discount ** H * jnp.where(alive, terminal_value(traj.obs[:, -1]), 0.0)
            ret = ret.reshape(N, P).mean(-1)
            if cfg.uncertainty_penalty > 0.0:
                ret = ret - cfg.uncertainty_penalty * particle_spread(traj.obs, traj.terminated, state, N, P, cfg.discount)
            return sanitize_returns(ret)  # NaN and +inf (a blown-up model) rank last

        return objective

    return for_state


def _alive_before_step(terminated: jnp.ndarray) -> jnp.ndarray:
    """``terminated[B, H]`` (True from the terminating step on) -> alive at the start of each step [B, H]."""
    return jnp.concatenate([jnp.ones_like(terminated[:, :1]), ~terminated[:, :-1]], axis=1)


def quadratic_state_cost(obs: jnp.ndarray, terminated: jnp.ndarray, weights: jnp.ndarray,
                         discount: float) -> jnp.ndarray:
    """Discounted Σ_t Σ_d w_d obs[:, t+1, d]² over the steps a particle starts alive: ``[B]``.

    ``obs[B, H+1, D]`` (obs[:, 0] is the start), ``terminated[B, H]``, ``weights[D]``. The
    terminating step still pays, as it still earns its task reward; frozen steps after it do not.
    A non-finite coordinate (which tasks treat as termination) pays nothing rather than NaN, and
    is masked before squaring so that gradients stay finite too.
    """
    H = terminated.shape[1]
    x = obs[:, 1:]
    counted = _alive_before_step(terminated)[..., None] & jnp.isfinite(x)  # [B, H, D]
    x = jnp.where(counted, x, 0.0)
    cost = (x ** 2 * weights).sum(-1)  # [B, H]
    return (cost * discount ** jnp.arange(H)).sum(-1)


def particle_spread(obs: jnp.ndarray, terminated: jnp.ndarray, state: ModelState, N: int, P: int,
                    discount: float) -> jnp.ndarray:
    """Discounted sum over the horizon of the particles' std of ``obs[N*P, H+1, D]``, per candidate [N].

    Measured in the model's Δobs std so that state dims of any unit weigh alike; particles that
    go through different members disagree most where the model has no data. Only particles
    alive before step t count at t (``terminated[N*P, H]``): a frozen state is not disagreement.
    """
    H, D = obs.shape[1] - 1, obs.shape[2]
    w = _alive_before_step(terminated).reshape(N, P, H, 1).astype(obs.dtype)
    x = obs[:, 1:].reshape(N, P, H, D) / state.target_norm.std[:D]
    count = jnp.maximum(w.sum(1), 1.0)  # [N, H, 1]
    mean = (w * x).sum(1) / count
    var = (w * (x - mean[:, None]) ** 2).sum(1) / count
    spread = jnp.sqrt(var + 1e-12)  # the epsilon keeps the gradient finite where particles coincide
    return (spread.mean(-1) * discount ** jnp.arange(H)).sum(-1)
