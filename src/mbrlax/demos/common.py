"""Small helpers the lecture demos share: fitting, ensemble statistics, MPC episodes, timing.

Everything here is thin glue over the library (``models``, ``agents``); the demos stay short
and read top to bottom.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from mbrlax.data.buffer import Batch
from mbrlax.models.dynamics import DynamicsModel, ModelState
from mbrlax.models.trainer import FitResult, TrainerConfig, fit

__all__ = ["Stopwatch", "ensemble_stats", "fit_on", "run_episode", "pearson", "spearman"]


class Stopwatch:
    """Named wall-clock sections: ``with watch("fit"): ...``; ``watch.seconds`` maps name -> total."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def total(self) -> float:
        return time.perf_counter() - self._start

    def summary(self) -> dict[str, float]:
        return {**{k: round(v, 2) for k, v in self.seconds.items()}, "total": round(self.total(), 2)}


def fit_on(model: DynamicsModel, data: Batch, key: jax.Array, trainer: TrainerConfig,
           state: ModelState | None = None) -> FitResult:
    """Fit ``model`` to ``data`` from ``state`` (a fresh init from ``key`` when None)."""
    k_init, k_fit = jax.random.split(key)
    if state is None:
        state = model.init(k_init)
    return fit(model, state, data, k_fit, trainer)


def ensemble_stats(model: DynamicsModel, state: ModelState, obs: np.ndarray, action: np.ndarray,
                   chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Elite ensemble on ``obs[B, D]``, ``action[B, A]``: ``(mean[B, D], disagreement[B, D])``.

    ``mean`` averages the members' mean next observations; ``disagreement`` is the standard
    deviation of those means across members (epistemic uncertainty, no aleatoric part).
    """
    elite = model.elite_state(state)
    M = DynamicsModel.num_members(elite)

    @jax.jit
    def stats(o, a):
        pred = model.predict(elite, jnp.broadcast_to(o, (M, *o.shape)), jnp.broadcast_to(a, (M, *a.shape)))
        return pred.next_obs_mean.mean(0), pred.next_obs_mean.std(0)

    means, stds = [], []
    for s in range(0, len(obs), chunk):
        m, d = stats(jnp.asarray(obs[s:s + chunk], jnp.float32), jnp.asarray(action[s:s + chunk], jnp.float32))
        means.append(np.asarray(m))
        stds.append(np.asarray(d))
    return np.concatenate(means), np.concatenate(stds)


def run_episode(env: gymnasium.Env, act: Callable[[np.ndarray], np.ndarray], max_steps: int,
                reset_options: dict | None = None, seed: int | None = None,
                on_transition: Callable[..., Any] | None = None) -> dict:
    """One episode with ``act(obs[D]) -> action[A]``; returns obs ``[T+1, D]``, actions, rewards, infos, flags.

    ``on_transition(obs, action, reward, next_obs, terminated, truncated)`` sees every step
    (e.g. ``buffer.add``).
    """
    obs, _ = env.reset(seed=seed, options=reset_options)
    observations, actions, rewards, infos = [np.asarray(obs, np.float32)], [], [], []
    terminated = truncated = False
    for t in range(max_steps):
        action = np.asarray(act(obs), np.float32)
        next_obs, reward, terminated, truncated, info = env.step(action)
        truncated = truncated or t == max_steps - 1
        if on_transition is not None:
            on_transition(obs, action, reward, next_obs, terminated, truncated)
        observations.append(np.asarray(next_obs, np.float32))
        actions.append(action)
        rewards.append(float(reward))
        infos.append(info)
        obs = next_obs
        if terminated or truncated:
            break
    return {"obs": np.array(observations), "actions": np.array(actions), "rewards": np.array(rewards),
            "infos": infos, "return": float(np.sum(rewards)), "terminated": bool(terminated),
            "steps": len(rewards)}


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two 1-D arrays."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.corrcoef(a, b)[0, 1])


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two 1-D arrays (ties broken by order)."""
    ra = np.argsort(np.argsort(a)).astype(np.float64)
    rb = np.argsort(np.argsort(b)).astype(np.float64)
    return pearson(ra, rb)
