"""The learned simulator as pure JAX: a batched ``step`` and a multi-step ``rollout``.

Reward and termination come from the environment's known :class:`~mbrlax.envs.task.Task`
when there is one, else from the model's learned heads. Everything is differentiable in
the actions (sampling uses the reparameterisation trick), so gradient planners can
backpropagate through ``rollout``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mbrlax.envs.task import Task
from mbrlax.errors import ConfigError
from mbrlax.models.dynamics import DynamicsModel, ModelState
from mbrlax.models.propagation import check_propagation, propagate_step


class Transition(NamedTuple):
    next_obs: jnp.ndarray  # [B, D]
    reward: jnp.ndarray  # [B]
    terminated: jnp.ndarray  # [B] bool


class Trajectory(NamedTuple):
    obs: jnp.ndarray  # [B, H + 1, D], obs[:, 0] is the start
    reward: jnp.ndarray  # [B, H]
    terminated: jnp.ndarray  # [B, H] bool, True from the first termination on


def check_reward_source(model: DynamicsModel, task: Task | None) -> None:
    """A rollout needs a reward: the task's or the model's own."""
    if task is None and not model.cfg.predict_reward:
        raise ConfigError("no task for this environment and the model does not predict reward: "
                          "set predict_reward=True (and predict_termination=True) in the ensemble config")


def step(model: DynamicsModel, state: ModelState, obs: jnp.ndarray, action: jnp.ndarray, key: jax.Array,
         task: Task | None = None, propagation: str = "ts1") -> Transition:
    """One imagined step for ``obs[B, D]``, ``action[B, A]`` (B a multiple of the members for TS)."""
    out = propagate_step(model, state, obs, action, key, propagation)
    if task is not None:
        reward = task.reward_fn(obs, action, out.next_obs)
        terminated = task.termination_fn(obs, action, out.next_obs)
    else:
        reward = out.reward
        terminated = out.term_prob > 0.5 if model.cfg.predict_termination else jnp.zeros(obs.shape[0], bool)
    return Transition(out.next_obs, reward, terminated)


def rollout(model: DynamicsModel, state: ModelState, obs0: jnp.ndarray, actions: jnp.ndarray, key: jax.Array,
            task: Task | None = None, propagation: str = "ts1") -> Trajectory:
    """Run ``actions[B, H, A]`` from ``obs0[B, D]`` through the model (one ``lax.scan``).

    Particles are padded to a multiple of the ensemble's members for TS propagation; once a
    particle terminates its state is frozen and ``terminated`` stays True.
    """
    check_propagation(propagation)
    check_reward_source(model, task)
    B, H, _ = actions.shape
    M = DynamicsModel.num_members(state)
    pad = (-B) % M if propagation != "expectation" else 0
    if pad:
        obs0 = jnp.concatenate([obs0, jnp.broadcast_to(obs0[:1], (pad, obs0.shape[1]))])
        actions = jnp.concatenate([actions, jnp.broadcast_to(actions[:1], (pad, H, actions.shape[2]))])

    def body(carry, inputs):
        obs, done = carry
        action, k = inputs
        tr = step(model, state, obs, action, k, task, propagation)
        next_obs = jnp.where(done[:, None], obs, tr.next_obs)
        reward = jnp.where(done, 0.0, tr.reward)
        done = done | tr.terminated
        return (next_obs, done), (next_obs, reward, done)

    keys = jax.random.split(key, H)
    done0 = jnp.zeros(obs0.shape[0], bool)
    _, (obs_seq, rewards, dones) = jax.lax.scan(body, (obs0, done0), (jnp.swapaxes(actions, 0, 1), keys))
    obs_all = jnp.concatenate([obs0[:, None], jnp.swapaxes(obs_seq, 0, 1)], axis=1)
    return Trajectory(obs_all[:B], jnp.swapaxes(rewards, 0, 1)[:B], jnp.swapaxes(dones, 0, 1)[:B])
