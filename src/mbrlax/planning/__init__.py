"""Planners: optimisers over action sequences, blind to models.

Each maximises ``objective(key, actions[N, H, A]) -> returns[N]`` inside box bounds through
``init(key)``, ``plan(state, objective, key, init_actions=None) -> (actions[H, A], state, info)``
and ``shift(state)``; see :mod:`mbrlax.planning.base`. ``make_planner`` builds one by name.
"""

from __future__ import annotations

from typing import Any, Sequence

from mbrlax.errors import ConfigError
from mbrlax.planning.base import (BoundedPlanner, Objective, Planner, PlannerState,
                                  sanitize_returns, shift_time)
from mbrlax.planning.cem import CEM, CEMState
from mbrlax.planning.cem_grad import CEMGrad, CEMGradState
from mbrlax.planning.gradient import GradientPlanner, GradientState
from mbrlax.planning.icem import ICEM, ICEMState
from mbrlax.planning.mppi import MPPI, MPPIState
from mbrlax.planning.noise import colored_noise
from mbrlax.planning.random_shooting import RandomShooting, RandomShootingState

PLANNERS = {"rs": RandomShooting, "cem": CEM, "icem": ICEM, "mppi": MPPI, "grad": GradientPlanner}
PLANNER_NAMES = (*PLANNERS, "cem-grad")


def _build(cls: type, horizon: int, low: Any, high: Any, overrides: dict) -> Any:
    fields = {f for f in cls.__dataclass_fields__} - {"horizon", "action_low", "action_high"}
    unknown = set(overrides) - fields
    if unknown:
        raise ConfigError(f"unknown setting(s) {sorted(unknown)} for {cls.__name__}; "
                          f"known: {sorted(fields)}")
    return cls(horizon=horizon, action_low=low, action_high=high, **overrides)


def make_planner(name: str, horizon: int, action_low: Sequence[float],
                 action_high: Sequence[float], **overrides: Any) -> Planner:
    """Build a planner by name: "rs", "cem", "icem", "mppi", "grad" or "cem-grad".

    ``overrides`` set the planner's fields (e.g. ``population=200``). For "cem-grad" pass
    ``cem={...}`` and ``grad={...}``; its gradient planner defaults to ``init_mode="all"``,
    20 steps and ``init_std=0.1`` (local refinement around CEM's solution).
    """
    if name == "cem-grad":
        unknown = set(overrides) - {"cem", "grad"}
        if unknown:
            raise ConfigError(f"cem-grad takes overrides cem={{...}} and grad={{...}}, got {sorted(unknown)}")
        grad_over = {"init_mode": "all", "steps": 20, "init_std": 0.1, **dict(overrides.get("grad", {}))}
        cem = _build(CEM, horizon, action_low, action_high, dict(overrides.get("cem", {})))
        grad = _build(GradientPlanner, horizon, action_low, action_high, grad_over)
        return CEMGrad(cem=cem, grad=grad)
    if name not in PLANNERS:
        raise ConfigError(f"unknown planner {name!r}; choose one of {PLANNER_NAMES}")
    return _build(PLANNERS[name], horizon, action_low, action_high, overrides)


__all__ = [
    "BoundedPlanner", "CEM", "CEMGrad", "CEMGradState", "CEMState", "GradientPlanner",
    "GradientState", "ICEM", "ICEMState", "MPPI", "MPPIState", "Objective", "PLANNER_NAMES",
    "Planner", "PlannerState", "RandomShooting", "RandomShootingState", "colored_noise",
    "make_planner", "sanitize_returns", "shift_time",
]
