"""The planner interface and the helpers every planner shares.

A planner maximises an objective ``objective(key, actions[N, H, A]) -> returns[N]`` over action
sequences inside box bounds. It knows nothing about models: building the objective from a model
and a task happens elsewhere (``agents``).

Each planner is a frozen, hashable dataclass of static settings with three pure methods::

    state = planner.init(key)                                   # a pytree: mean [H, A], ...
    actions, state, info = planner.plan(state, objective, key)  # actions [H, A]; info a dict pytree
    state = planner.shift(state)                                # warm start for the next env step

``plan`` runs all its iterations inside ``lax.scan``/``lax.while_loop`` (or a short static Python
loop, for iCEM's shrinking populations), so a whole plan is one compiled call when the caller jits
``lambda state, key, p: planner.plan(state, partial(objective, p), key)``.

Shared conventions
------------------
- Bounds are stored as tuples of floats (hashable); ``A = len(action_low)``.
- Actions handed to the objective and returned are always inside ``[action_low, action_high]``.
- NaN and ``+inf`` returns rank last: every planner maps them to ``-inf`` before ranking or weighting.
- ``info`` always holds ``best_return`` (scalar, the best return seen), ``iterations`` (int32
  scalar, iterations or gradient steps actually run), ``mean_return`` and ``max_return``
  (``[iterations]``, mean of the finite returns and max return per iteration; NaN where an
  iteration did not run). ``CEMGrad`` has ``best_return`` and ``iterations`` and nests its
  parts' info under ``"cem"`` and ``"grad"``.
- ``shift`` moves the solution one step to the left along the time axis and fills the last step
  with the centre of the bounds.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from mbrlax.errors import ConfigError

Array = jax.Array
PRNGKey = jax.Array
#: ``objective(key, actions[N, H, A]) -> returns[N]``; higher is better.
Objective = Callable[[PRNGKey, Array], Array]
PlannerState = Any
PlanInfo = dict


@runtime_checkable
class Planner(Protocol):
    """What every planner offers (see the module docstring)."""

    horizon: int

    def init(self, key: PRNGKey) -> PlannerState:
        """Initial planner state (a pytree), e.g. mean ``[H, A]`` at the centre of the bounds."""
        ...

    def plan(self, state: PlannerState, objective: Objective, key: PRNGKey,
             init_actions: Array | None = None) -> tuple[Array, PlannerState, PlanInfo]:
        """Optimise; return ``(actions [H, A], new_state, info)``."""
        ...

    def shift(self, state: PlannerState) -> PlannerState:
        """Warm start for the next environment step."""
        ...


def _as_float_tuple(x: Any, name: str) -> tuple[float, ...]:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ConfigError(f"{name} must be a non-empty 1-D sequence of floats, got shape {arr.shape}")
    return tuple(float(v) for v in arr)


@dataclasses.dataclass(frozen=True)
class BoundedPlanner:
    """Static settings every planner shares: horizon ``H`` and box bounds (``A`` floats each).

    Bounds given as lists or NumPy arrays are stored as tuples so the planner stays hashable
    (usable as a static argument or a closure under ``jax.jit``).
    """

    horizon: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]

    def __post_init__(self) -> None:
        low = _as_float_tuple(self.action_low, "action_low")
        high = _as_float_tuple(self.action_high, "action_high")
        if len(low) != len(high):
            raise ConfigError(f"action_low has {len(low)} entries but action_high has {len(high)}")
        if not all(np.isfinite(low)) or not all(np.isfinite(high)):
            raise ConfigError("action bounds must be finite")
        if not all(l < h for l, h in zip(low, high)):
            raise ConfigError(f"need action_low < action_high everywhere, got {low} and {high}")
        if int(self.horizon) < 1:
            raise ConfigError(f"horizon must be >= 1, got {self.horizon}")
        object.__setattr__(self, "action_low", low)
        object.__setattr__(self, "action_high", high)
        object.__setattr__(self, "horizon", int(self.horizon))

    @property
    def action_dim(self) -> int:
        return len(self.action_low)

    @property
    def low(self) -> Array:
        """``[A]``"""
        return jnp.asarray(self.action_low, dtype=jnp.float32)

    @property
    def high(self) -> Array:
        """``[A]``"""
        return jnp.asarray(self.action_high, dtype=jnp.float32)

    @property
    def centre(self) -> Array:
        """``[A]``, the middle of the bounds."""
        return (self.low + self.high) / 2.0

    @property
    def half_range(self) -> Array:
        """``[A]``, half the width of the bounds."""
        return (self.high - self.low) / 2.0

    def default_mean(self) -> Array:
        """``[H, A]``: the centre of the bounds at every step."""
        return jnp.broadcast_to(self.centre, (self.horizon, self.action_dim))

    def clip(self, actions: Array) -> Array:
        """Clip ``[..., A]`` actions into the bounds."""
        return jnp.clip(actions, self.low, self.high)

    def _check_init_actions(self, init_actions: Array) -> Array:
        init_actions = jnp.asarray(init_actions, dtype=jnp.float32)
        if init_actions.shape[-2:] != (self.horizon, self.action_dim):
            raise ConfigError(f"init_actions must end in shape {(self.horizon, self.action_dim)}, "
                              f"got {init_actions.shape}")
        return self.clip(init_actions)


def sanitize_returns(returns: Array) -> Array:
    """``[N] -> [N]``: NaN and ``+inf`` (a model that blew up) become ``-inf`` so they rank last; float32."""
    returns = jnp.asarray(returns, dtype=jnp.float32)
    return jnp.where(jnp.isnan(returns) | (returns == jnp.inf), -jnp.inf, returns)


def evaluate(objective: Objective, key: PRNGKey, actions: Array, n: int) -> Array:
    """Call the objective on ``actions [n, H, A]``, check the shape and sanitise: ``[n]``."""
    returns = objective(key, actions)
    if returns.shape != (n,):
        raise ConfigError(f"objective must return shape ({n},) for {n} sequences, got {returns.shape}")
    return sanitize_returns(returns)


def finite_mean(returns: Array) -> Array:
    """Mean of the finite entries of ``[N]`` (NaN when there are none): a scalar."""
    finite = jnp.isfinite(returns)
    count = jnp.sum(finite)
    total = jnp.sum(jnp.where(finite, returns, 0.0))
    return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan)


def shift_time(x: Array, fill: Array) -> Array:
    """Shift ``x [..., H, A]`` one step left along the time axis (-2); the last step becomes
    ``fill [A]``."""
    tail = jnp.broadcast_to(fill, x.shape[:-2] + (1, x.shape[-1])).astype(x.dtype)
    return jnp.concatenate([x[..., 1:, :], tail], axis=-2)


def top_k(returns: Array, samples: Array, k: int) -> tuple[Array, Array]:
    """The ``k`` best: ``(returns [k], samples [k, H, A])``, best first (returns already sanitised)."""
    best, idx = jax.lax.top_k(returns, k)
    return best, samples[idx]


def update_best(best_return: Array, best_actions: Array, returns: Array, samples: Array
                ) -> tuple[Array, Array]:
    """Keep the better of the incumbent and the best of ``samples [N, H, A]``."""
    i = jnp.argmax(returns)
    better = returns[i] > best_return
    return (jnp.where(better, returns[i], best_return),
            jnp.where(better, samples[i], best_actions))


def empty_history(n: int) -> Array:
    """``[n]`` of NaN, for per-iteration records that a loop fills in."""
    return jnp.full((n,), jnp.nan, dtype=jnp.float32)
