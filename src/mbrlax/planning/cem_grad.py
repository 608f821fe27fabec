"""CEM followed by gradient refinement (in the spirit of Bharadhwaj et al. 2020, "Model-Predictive
Control via Cross-Entropy and Gradient-Based Optimization").

CEM finds a good basin; the gradient planner then starts from CEM's solution (``init_actions``)
and polishes it. The gradient planner's candidate 0 is CEM's solution itself, and the best
candidate seen is returned, so refinement never returns a worse sequence than CEM's (on the
gradient planner's objective key). The refined sequence also becomes CEM's mean, so the next
step's CEM warm-starts from it.
"""

from __future__ import annotations

import dataclasses

import jax
from flax import struct

from mbrlax.errors import ConfigError
from mbrlax.planning.base import Array, Objective, PRNGKey
from mbrlax.planning.cem import CEM, CEMState
from mbrlax.planning.gradient import GradientPlanner, GradientState


@struct.dataclass
class CEMGradState:
    cem: CEMState
    grad: GradientState


@dataclasses.dataclass(frozen=True)
class CEMGrad:
    """A CEM planner and a gradient planner over the same horizon and bounds."""

    cem: CEM
    grad: GradientPlanner

    def __post_init__(self) -> None:
        same = (self.cem.horizon == self.grad.horizon and self.cem.action_low == self.grad.action_low
                and self.cem.action_high == self.grad.action_high)
        if not same:
            raise ConfigError("CEMGrad: the CEM and gradient planners need the same horizon and bounds")

    @property
    def horizon(self) -> int:
        return self.cem.horizon

    @property
    def action_low(self) -> tuple[float, ...]:
        return self.cem.action_low

    @property
    def action_high(self) -> tuple[float, ...]:
        return self.cem.action_high

    @property
    def action_dim(self) -> int:
        return self.cem.action_dim

    def init(self, key: PRNGKey) -> CEMGradState:
        k1, k2 = jax.random.split(key)
        return CEMGradState(cem=self.cem.init(k1), grad=self.grad.init(k2))

    def plan(self, state: CEMGradState, objective: Objective, key: PRNGKey,
             init_actions: Array | None = None) -> tuple[Array, CEMGradState, dict]:
        """``init_actions`` goes to CEM (as its mean for this plan)."""
        k_cem, k_grad = jax.random.split(key)
        cem_actions, cem_state, cem_info = self.cem.plan(state.cem, objective, k_cem, init_actions)
        actions, grad_state, grad_info = self.grad.plan(state.grad, objective, k_grad,
                                                        init_actions=cem_actions)
        info = dict(best_return=grad_info["best_return"],
                    iterations=cem_info["iterations"] + grad_info["iterations"],
                    cem=cem_info, grad=grad_info)
        return actions, CEMGradState(cem=cem_state.replace(mean=actions), grad=grad_state), info

    def shift(self, state: CEMGradState) -> CEMGradState:
        return CEMGradState(cem=self.cem.shift(state.cem), grad=self.grad.shift(state.grad))
