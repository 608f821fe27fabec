"""Propagating particles through an ensemble, one step at a time (Chua et al. 2018, sec. 4).

- ``ts1``: every step each particle is sent to a member drawn uniformly (a random
  permutation of particles over members, so each member sees B/M particles), then sampled.
- ``tsinf``: particle i stays with member ``i % M`` for the whole rollout, and is sampled.
- ``mean``: like ``tsinf`` but the member's mean, no sampling (deterministic models, PDDM).
- ``expectation``: every member predicts every particle; the next state is the average of
  the members' means (no sampling; M times the compute).

TS variants need the particle count B to be a multiple of M; ``rollout`` pads for you.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mbrlax.errors import ConfigError
from mbrlax.models.dynamics import DynamicsModel, ModelState, Prediction
from mbrlax.utils.sharding import shard_along

PROPAGATIONS = ("ts1", "tsinf", "mean", "expectation")


class StepOutput(NamedTuple):
    next_obs: jnp.ndarray  # [B, D]
    reward: jnp.ndarray  # [B] learned reward (zeros if the model has no reward head)
    term_prob: jnp.ndarray  # [B] learned termination probability (zeros if none)


def check_propagation(method: str) -> None:
    if method not in PROPAGATIONS:
        raise ConfigError(f"unknown propagation {method!r}; choose from {PROPAGATIONS}")


def _grouped(x: jnp.ndarray, M: int) -> jnp.ndarray:
    """``x[B, F]`` -> ``[M, B/M, F]`` with particle i in group ``i % M``."""
    B = x.shape[0]
    return shard_along(jnp.swapaxes(x.reshape(B // M, M, *x.shape[1:]), 0, 1), 1)


def _ungrouped(y: jnp.ndarray) -> jnp.ndarray:
    """Inverse of :func:`_grouped`: ``[M, B/M, ...]`` -> ``[B, ...]``."""
    M, n = y.shape[:2]
    return jnp.swapaxes(y, 0, 1).reshape(M * n, *y.shape[2:])


def _sample(model: DynamicsModel, pred: Prediction, key: jax.Array, sample: bool) -> Prediction:
    if not (sample and model.cfg.probabilistic):
        return pred
    k1, k2 = jax.random.split(key)
    obs = pred.next_obs_mean + jnp.sqrt(pred.next_obs_var) * jax.random.normal(k1, pred.next_obs_mean.shape)
    rew = pred.reward_mean + jnp.sqrt(pred.reward_var) * jax.random.normal(k2, pred.reward_mean.shape)
    return pred._replace(next_obs_mean=obs, reward_mean=rew)


def propagate_step(model: DynamicsModel, state: ModelState, obs: jnp.ndarray, action: jnp.ndarray,
                   key: jax.Array, method: str = "ts1") -> StepOutput:
    """One step for particles ``obs[B, D]``, ``action[B, A]`` -> next state, reward, termination prob."""
    check_propagation(method)
    M = DynamicsModel.num_members(state)
    B = obs.shape[0]
    if method == "expectation":
        pred = model.predict(state, jnp.broadcast_to(obs, (M, *obs.shape)), jnp.broadcast_to(action, (M, *action.shape)))
        return StepOutput(pred.next_obs_mean.mean(0), pred.reward_mean.mean(0), pred.term_prob.mean(0))
    if B % M:
        raise ConfigError(f"{method} propagation needs the particle count ({B}) to be a multiple of the members ({M})")
    key_perm, key_noise = jax.random.split(key)
    if method == "ts1":
        perm = jax.random.permutation(key_perm, B)
        obs_in, act_in = obs[perm], action[perm]
    else:
        obs_in, act_in = obs, action
    pred = model.predict(state, _grouped(obs_in, M), _grouped(act_in, M))
    pred = _sample(model, pred, key_noise, sample=(method != "mean"))
    out = StepOutput(_ungrouped(pred.next_obs_mean), _ungrouped(pred.reward_mean), _ungrouped(pred.term_prob))
    if method == "ts1":
        inv = jnp.argsort(perm)
        out = StepOutput(*(x[inv] for x in out))
    return out
