"""Which part of a trajectory window a model learns from and predicts: the model kinds beyond f(s, a).

Every kind is a conditional density p(y | x) (:class:`~mbrlax.models.conditional.ConditionalModel`)
fitted on windows of the data mbrlax collects (:mod:`mbrlax.data.windows`); a kind only says how a
window of n steps becomes an input row x and a target row y:

============================  ===========================  =========================  ==============
kind                          models                       x                          y
============================  ===========================  =========================  ==============
``forward``                   p(s_t+1 | s_t, a_t)          s_t, a_t                   s_t+1 - s_t
``inverse``                   p(a_t | s_t, s_t+1)          s_t, s_t+1                 a_t
``inverse-multistep``         p(a_t | s_t, s_t+n)          s_t, s_t+n                 a_t
``inverse-sequence``          p(a_t:t+n | s_t, s_t+n)      s_t, s_t+n                 a_t .. a_t+n-1
``action-free``               p(s_t+1:t+n | s_t)           s_t                        s_t+k - s_t, k = 1..n
``interpolation``             p(s_t+1:t+n | s_t, s_t+n+1)  s_t, s_t+n+1               s_t+k - s_t, k = 1..n
``joint``                     p(s_t, a_t, s_t+1)           (nothing)                  s_t, a_t, r_t, s_t+1 - s_t
============================  ===========================  =========================  ==============

States are predicted as offsets from s_t (as the forward model predicts Δs), which keeps targets
at the scale of the motion, not of the state. ``action-free`` and ``interpolation`` need no
actions: they train on observation-only trajectories (a video's frames) as well as on a buffer.
``forward`` here is the one-step forward model as a ``ConditionalModel`` (for comparisons of
heads); the planners use :class:`~mbrlax.models.dynamics.DynamicsModel`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import jax
import numpy as np

from mbrlax.data.buffer import ReplayBuffer
from mbrlax.data.windows import observation_window_starts, observation_windows_at, window_starts, windows_at
from mbrlax.errors import ConfigError, DataError
from mbrlax.models.conditional import ConditionalModel
from mbrlax.models.dynamics import ModelState
from mbrlax.models.trainer import FitResult, TrainerConfig, fit_conditional


@dataclass(frozen=True)
class ModelKind:
    """How windows of n steps become ``(x, y)`` rows for one kind of model."""

    name: str
    formula: str
    """The distribution it learns, e.g. ``p(a_t | s_t, s_t+n)``."""
    needs_actions: bool
    """False: trains on observation-only trajectories too."""
    extra_step: bool = False
    """The window is n + 1 steps long (interpolation needs s_t+n+1)."""
    fixed_n: bool = False
    """n is always 1 (inverse, forward, joint)."""

    def window_length(self, n: int) -> int:
        return 1 if self.fixed_n else n + int(self.extra_step)

    def sizes(self, obs_dim: int, act_dim: int, n: int) -> tuple[int, int]:
        """``(in_dim, out_dim)`` of the model for horizon n."""
        D, A = obs_dim, act_dim
        n = 1 if self.fixed_n else n
        return {
            "forward": (D + A, D), "inverse": (2 * D, A), "inverse-multistep": (2 * D, A),
            "inverse-sequence": (2 * D, n * A), "action-free": (D, n * D), "interpolation": (2 * D, n * D),
            "joint": (0, 2 * D + A + 1),
        }[self.name]

    def rows(self, states: np.ndarray, actions: np.ndarray | None, rewards: np.ndarray | None,
             n: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows from B windows: ``states[B, L+1, D]`` (s_t .. s_t+L), ``actions[B, L, A]`` and
        ``rewards[B, L]`` (None for observation-only data), L = :meth:`window_length`.
        Returns ``x[B, in]``, ``y[B, out]`` (float32)."""
        s0 = states[:, 0]
        if self.needs_actions and actions is None:
            raise DataError(f"model kind {self.name!r} learns actions; observation-only trajectories have none")
        if self.fixed_n:
            n = 1
        k = self.name
        if k == "forward":
            x, y = np.concatenate([s0, actions[:, 0]], 1), states[:, 1] - s0
        elif k == "inverse":
            x, y = np.concatenate([s0, states[:, 1]], 1), actions[:, 0]
        elif k == "inverse-multistep":
            x, y = np.concatenate([s0, states[:, n]], 1), actions[:, 0]
        elif k == "inverse-sequence":
            x, y = np.concatenate([s0, states[:, n]], 1), actions[:, :n].reshape(len(s0), -1)
        elif k == "action-free":
            x, y = s0, (states[:, 1:n + 1] - s0[:, None]).reshape(len(s0), -1)
        elif k == "interpolation":
            x = np.concatenate([s0, states[:, n + 1]], 1)
            y = (states[:, 1:n + 1] - s0[:, None]).reshape(len(s0), -1)
        else:  # joint
            if rewards is None:
                raise DataError("model kind 'joint' learns rewards; observation-only trajectories have none")
            x = np.zeros((len(s0), 0), np.float32)
            y = np.concatenate([s0, actions[:, 0], rewards[:, :1], states[:, 1] - s0], 1)
        return x.astype(np.float32), y.astype(np.float32)

    def states_from(self, s0: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
        """Predicted states ``[B, n, D]`` from an ``action-free``/``interpolation`` target ``y[B, n D]``."""
        return s0[:, None] + y.reshape(len(s0), n, s0.shape[-1])


KINDS: dict[str, ModelKind] = {k.name: k for k in (
    ModelKind("forward", "p(s_t+1 | s_t, a_t)", True, fixed_n=True),
    ModelKind("inverse", "p(a_t | s_t, s_t+1)", True, fixed_n=True),
    ModelKind("inverse-multistep", "p(a_t | s_t, s_t+n)", True),
    ModelKind("inverse-sequence", "p(a_t:t+n | s_t, s_t+n)", True),
    ModelKind("action-free", "p(s_t+1:t+n | s_t)", False),
    ModelKind("interpolation", "p(s_t+1:t+n | s_t, s_t+n+1)", False, extra_step=True),
    ModelKind("joint", "p(s_t, a_t, s_t+1)", True, fixed_n=True),
)}


def get_kind(name: str) -> ModelKind:
    if name not in KINDS:
        raise ConfigError(f"unknown model kind {name!r}; choose one of: {', '.join(KINDS)}")
    return KINDS[name]


def window_rows(kind: ModelKind | str, source: ReplayBuffer | Sequence[np.ndarray], n: int = 1,
                starts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All ``(x, y)`` rows of ``kind`` at horizon n from a buffer, or from observation-only
    episodes (a list of arrays ``[T_i, D]``), one row per valid window start (or per ``starts``)."""
    kind = get_kind(kind) if isinstance(kind, str) else kind
    L = kind.window_length(n)
    if isinstance(source, ReplayBuffer):
        if starts is None:
            starts = window_starts(source, L)
        w = windows_at(source, starts, L)
        states = np.concatenate([w.obs[:, None], w.next_obs], axis=1)
        return kind.rows(states, w.actions, w.rewards, n)
    if starts is None:
        starts = observation_window_starts(source, L)
    return kind.rows(observation_windows_at(source, starts, L), None, None, n)


def build_model(kind: ModelKind | str, obs_dim: int, act_dim: int, n: int = 1, **settings) -> ConditionalModel:
    """The :class:`ConditionalModel` for ``kind`` at horizon n; ``settings`` are its fields (head, hidden, ...)."""
    kind = get_kind(kind) if isinstance(kind, str) else kind
    in_dim, out_dim = kind.sizes(obs_dim, act_dim, n)
    return ConditionalModel(in_dim=in_dim, out_dim=out_dim, **settings)


def evaluate(model: ConditionalModel, state: ModelState, x: np.ndarray, y: np.ndarray, key: jax.Array,
             chunk: int = 4096) -> dict[str, float]:
    """Held-out ``mse`` (of the mean prediction) and ``nll`` (per dimension), both in normalised units."""
    mse, nll = [], []
    for i in range(0, len(x), chunk):
        xs, ys = x[i:i + chunk], y[i:i + chunk]
        key, k = jax.random.split(key)
        mse.append(np.asarray(model.normalised_error(state, xs, ys, k)))
        nll.append(np.asarray(model.nll(state, xs, ys)))
    return {"mse": float(np.mean(np.concatenate(mse))), "nll": float(np.mean(np.concatenate(nll)))}


def fit_and_evaluate(model: ConditionalModel, x: np.ndarray, y: np.ndarray, held: tuple[np.ndarray, np.ndarray],
                     key: jax.Array, trainer: TrainerConfig) -> tuple[FitResult, dict[str, float]]:
    """A fresh fit of ``model`` on rows ``(x, y)``, scored by :func:`evaluate` on the held-out rows ``held``."""
    k_init, k_fit, k_eval = jax.random.split(key, 3)
    result = fit_conditional(model, model.init(k_init), x, y, k_fit, trainer)
    return result, evaluate(model, result.state, *held, k_eval)
