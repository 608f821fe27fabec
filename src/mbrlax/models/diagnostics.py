"""How good is a learned model? Multi-step error against horizon, and disagreement vs error.

Errors are normalised MSE: squared error divided by each observation dimension's variance in
the training data, averaged over dimensions (1.0 = as bad as predicting the data mean).
"""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mbrlax.models.dynamics import DynamicsModel, ModelState
from mbrlax.models.simulator import rollout


class HorizonErrors(NamedTuple):
    per_member: np.ndarray  # [E, H] normalised MSE of each member's mean prediction at horizon h+1
    ensemble: np.ndarray  # [H] normalised MSE of the ensemble-mean (expectation) prediction
    disagreement: np.ndarray  # [H] mean normalised variance across members' predictions
    one_step_error: np.ndarray  # [S] per-start one-step ensemble-mean error
    one_step_disagreement: np.ndarray  # [S] per-start one-step member variance
    correlation: float  # Pearson correlation of log disagreement and log error (one step)


def windows(episodes: list[tuple[np.ndarray, np.ndarray]], horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All length-``horizon`` windows of real episodes ``(obs[T+1, D], actions[T, A])``.

    Returns ``obs0[S, D]``, ``actions[S, H, A]`` and the true ``future[S, H, D]``.
    """
    o0, acts, fut = [], [], []
    for obs, act in episodes:
        for s in range(len(act) - horizon + 1):
            o0.append(obs[s])
            acts.append(act[s:s + horizon])
            fut.append(obs[s + 1:s + horizon + 1])
    if not o0:
        raise ValueError(f"no episode is at least {horizon} steps long")
    return np.array(o0, np.float32), np.array(acts, np.float32), np.array(fut, np.float32)


def horizon_errors(model: DynamicsModel, state: ModelState, episodes: list[tuple[np.ndarray, np.ndarray]],
                   horizon: int, max_windows: int = 2000, seed: int = 0) -> HorizonErrors:
    """Open-loop prediction error at horizons 1..H on held-out real episodes (all members, no sampling)."""
    obs0, actions, future = windows(episodes, horizon)
    if len(obs0) > max_windows:
        idx = np.random.default_rng(seed).choice(len(obs0), max_windows, replace=False)
        obs0, actions, future = obs0[idx], actions[idx], future[idx]
    S, D = obs0.shape
    E = DynamicsModel.num_members(state)
    var = np.asarray(state.input_norm.std[:D]) ** 2
    # every member on every window: particle s*E + e goes to member e (``mean`` propagation)
    traj = jax.jit(lambda st, o, a: rollout(model, st, o, a, jax.random.PRNGKey(0), None if model.cfg.predict_reward else _NoReward(), "mean"))
    pred = np.asarray(traj(state, jnp.repeat(obs0, E, axis=0), jnp.repeat(actions, E, axis=0)).obs[:, 1:])
    pred = pred.reshape(S, E, horizon, D)
    err_members = (((pred - future[:, None]) ** 2) / var).mean(-1)  # [S, E, H]
    ens_mean = pred.mean(1)
    err_ens = (((ens_mean - future) ** 2) / var).mean(-1)  # [S, H]
    disagreement = (pred.var(1) / var).mean(-1)  # [S, H]
    e1, d1 = err_ens[:, 0], disagreement[:, 0]
    ok = (e1 > 0) & (d1 > 0)
    corr = float(np.corrcoef(np.log(d1[ok]), np.log(e1[ok]))[0, 1]) if ok.sum() > 2 else float("nan")
    return HorizonErrors(err_members.mean(0), err_ens.mean(0), disagreement.mean(0), e1, d1, corr)


class _NoReward:
    """A stand-in task for diagnostics of models without a reward head: reward 0, never terminates."""

    @staticmethod
    def reward_fn(obs, action, next_obs):
        return jnp.zeros(obs.shape[:-1])

    @staticmethod
    def termination_fn(obs, action, next_obs):
        return jnp.zeros(obs.shape[:-1], bool)


def plot_horizon_errors(errors: HorizonErrors, path: str | os.PathLike, title: str = "") -> None:
    """Two panels: error vs horizon (members and ensemble), and one-step disagreement vs error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    H = len(errors.ensemble)
    h = np.arange(1, H + 1)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for i, m in enumerate(errors.per_member):
        a1.plot(h, m, color="tab:blue", alpha=0.35, lw=1, label="members" if i == 0 else None)
    a1.plot(h, errors.ensemble, color="tab:red", lw=2.5, label="ensemble mean")
    a1.plot(h, errors.disagreement, color="tab:green", lw=1.5, ls="--", label="disagreement (variance)")
    a1.set_yscale("log")
    a1.set_xlabel("horizon (steps, open loop)")
    a1.set_ylabel("normalised MSE")
    a1.set_title("multi-step prediction error")
    a1.legend()
    a1.grid(alpha=0.3)
    a2.scatter(errors.one_step_disagreement, errors.one_step_error, s=4, alpha=0.4)
    a2.set_xscale("log")
    a2.set_yscale("log")
    a2.set_xlabel("ensemble disagreement (one step)")
    a2.set_ylabel("true error of ensemble mean (one step)")
    a2.set_title(f"disagreement vs error, log-corr = {errors.correlation:.2f}")
    a2.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
