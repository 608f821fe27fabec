"""The one place where a model and a task become a planner's objective.

``make_objective(...)(model_state, obs)`` returns ``objective(key, actions[N, H, A]) -> returns[N]``:
each candidate is rolled out with P particles (TS1, TS∞, mean or expectation propagation),
rewards are discounted, a particle that terminates stops earning, an optional terminal value
is added, and the return is the particle average. NaN returns become -inf (rank last).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp

from mbrlax.envs.task import Task
from mbrlax.errors import ConfigError
from mbrlax.models.dynamics import DynamicsModel, ModelState
from mbrlax.models.propagation import check_propagation
from mbrlax.models.simulator import check_reward_source, rollout

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

    def __post_init__(self):
        check_propagation(self.propagation)
        if self.num_particles < 1 or not 0.0 < self.discount <= 1.0:
            raise ConfigError(f"need num_particles >= 1 and discount in (0, 1], got {self}")


def make_objective(model: DynamicsModel, task: Task | None, cfg: ObjectiveConfig = ObjectiveConfig(),
                   terminal_value: TerminalValue | None = None):
    """``(model_state, obs[D]) -> objective``; use the elite sub-ensemble as ``model_state``."""
    check_reward_source(model, task)
    P = 1 if cfg.propagation == "expectation" else cfg.num_particles

    def for_state(state: ModelState, obs: jnp.ndarray):
        def objective(key: jax.Array, actions: jnp.ndarray) -> jnp.ndarray:
            N, H, _ = actions.shape
            obs0 = jnp.broadcast_to(obs, (N * P, obs.shape[-1]))
            acts = jnp.repeat(actions, P, axis=0)  # candidate n owns particles n*P .. n*P+P-1
            traj = rollout(model, state, obs0, acts, key, task, cfg.propagation)
            ret = (traj.reward * cfg.discount ** jnp.arange(H)).sum(-1)  # [N*P]
            if terminal_value is not None:
                alive = ~traj.terminated[:, -1]
                ret = ret + cfg.discount ** H * jnp.where(alive, terminal_value(traj.obs[:, -1]), 0.0)
            ret = ret.reshape(N, P).mean(-1)
            return jnp.where(jnp.isnan(ret), -jnp.inf, ret)

        return objective

    return for_state
