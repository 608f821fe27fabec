"""Branched model rollouts and the buffer that keeps them (MBPO, Janner et al. 2019, Alg. 2).

A *branched rollout* starts from states of the real replay buffer and follows the current
policy for ``k`` steps through the learned model. :func:`make_branched_rollout` builds one
jitted function that runs the whole batch of ``N`` rollouts for all ``k`` steps (one
``lax.scan``; the ensemble is the elite set, TS1 propagation by default):

    a_t ~ pi(s_t);  (s_{t+1}, r_t) ~ model(s_t, a_t);  done_t = termination(s_t, a_t, s_{t+1})

- Reward is the model's *learned* reward (as in MBPO); ``learned_reward=False`` takes the
  task's reward instead where a task is known.
- Termination is the task's where known, else the model's learned head (``p > 0.5``), else
  never.
- A rollout stops at its first termination (MBPO drops terminated particles); here its
  later steps are computed on a frozen state and marked invalid, so shapes stay static. A
  step whose prediction is not finite is invalid too and ends that rollout.

:class:`ModelBuffer` is a NumPy ring buffer of imagined transitions. Unlike
:class:`~mbrlax.data.buffer.ReplayBuffer` (which saves oldest-first and so re-lays a wrapped
ring on load) it saves and restores its exact layout, so a resumed run draws the very same
samples as an uninterrupted one; the model buffer wraps every epoch (the real one, sized to
the run, never does).
"""

from __future__ import annotations

import os
import zipfile
from functools import lru_cache, partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mbrlax.agents.learner import PolicyLearner, TrainBatch
from mbrlax.envs.task import Task
from mbrlax.errors import ConfigError, DataError
from mbrlax.models.dynamics import DynamicsModel, ModelState
from mbrlax.models.propagation import check_propagation, propagate_step
from mbrlax.utils.atomic import atomic_write

__all__ = ["RolloutBatch", "make_branched_rollout", "ModelBuffer"]


class RolloutBatch(NamedTuple):
    """``k`` steps of ``N`` branched rollouts; every field has leading dims ``[k, N]``."""

    obs: jax.Array  # [k, N, D]
    action: jax.Array  # [k, N, A]
    reward: jax.Array  # [k, N]
    next_obs: jax.Array  # [k, N, D]
    terminated: jax.Array  # [k, N] bool
    valid: jax.Array  # [k, N] bool: the rollout was alive at this step (and the step is finite)


RolloutFn = Callable[[ModelState, object, jax.Array, jax.Array, int], RolloutBatch]


@lru_cache(maxsize=8)
def make_branched_rollout(model: DynamicsModel, learner: PolicyLearner, task: Task | None, *,
                          learned_reward: bool = True, propagation: str = "ts1") -> RolloutFn:
    """A jitted ``rollout(model_state, learner_state, start_obs[N, D], key, horizon) -> RolloutBatch``.

    ``model_state`` is the full ensemble (the elites are selected inside); ``horizon`` is
    static (one compile per rollout length). ``N`` is padded internally to a multiple of the
    elites for TS propagation; the returned batch has exactly ``N`` rollouts.
    Memoised: the same arguments (the same learner object) give the same compiled function.
    """
    check_propagation(propagation)
    if task is None and not model.cfg.predict_reward:
        raise ConfigError("branched rollouts need a reward: the env has no task and the model predicts none")
    use_task_reward = task is not None and not (learned_reward and model.cfg.predict_reward)

    def reward_and_done(obs, action, out):
        reward = task.reward_fn(obs, action, out.next_obs) if use_task_reward else out.reward
        if task is not None:
            done = task.termination_fn(obs, action, out.next_obs)
        elif model.cfg.predict_termination:
            done = out.term_prob > 0.5
        else:
            done = jnp.zeros(obs.shape[0], bool)
        return reward, done

    @partial(jax.jit, static_argnames="horizon")
    def rollout(model_state: ModelState, learner_state, start_obs: jax.Array, key: jax.Array,
                horizon: int) -> RolloutBatch:
        elite = model.elite_state(model_state)
        n = start_obs.shape[0]
        pad = (-n) % model.num_elites if propagation != "expectation" else 0
        obs0 = jnp.concatenate([start_obs, jnp.repeat(start_obs[:1], pad, axis=0)]) if pad else start_obs
        alive0 = jnp.arange(n + pad) < n

        def body(carry, k):
            obs, alive = carry
            k_act, k_model = jax.random.split(k)
            action = learner.act(learner_state, obs, k_act)
            out = propagate_step(model, elite, obs, action, k_model, propagation)
            reward, done = reward_and_done(obs, action, out)
            finite = jnp.isfinite(out.next_obs).all(-1) & jnp.isfinite(reward)
            valid = alive & finite
            next_alive = valid & ~done
            next_obs = jnp.where(next_alive[:, None], out.next_obs, obs)  # freeze ended rollouts
            return (next_obs, next_alive), (obs, action, reward, out.next_obs, done, valid)

        _, ys = jax.lax.scan(body, (obs0, alive0), jax.random.split(key, horizon))
        return RolloutBatch(*(y[:, :n] for y in ys))

    return rollout


# ------------------------------------------------------------------------------------ buffer
_FIELDS = ("obs", "action", "reward", "next_obs", "terminated")
_FORMAT_VERSION = 1


class ModelBuffer:
    """Fixed-capacity NumPy ring buffer of imagined transitions, with exact save/load."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int):
        if capacity <= 0 or obs_dim <= 0 or act_dim <= 0:
            raise ConfigError(f"ModelBuffer needs positive capacity/obs_dim/act_dim, got {capacity}/{obs_dim}/{act_dim}")
        self.capacity, self.obs_dim, self.act_dim = int(capacity), int(obs_dim), int(act_dim)
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.action = np.zeros((capacity, act_dim), np.float32)
        self.reward = np.zeros((capacity,), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.terminated = np.zeros((capacity,), bool)
        self.next = 0  # index of the next write
        self.size = 0
        self.total_added = 0

    def __len__(self) -> int:
        return self.size

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return tuple(getattr(self, f) for f in _FIELDS)

    def add_rollouts(self, batch: RolloutBatch) -> int:
        """Add the valid transitions of a rollout batch (``[k, N]`` arrays, device or host), step by step.

        Returns the number added. Transitions are stored in rollout-step order (all of step 0,
        then step 1, ...), so when the ring overwrites, the oldest batch goes first.
        """
        host = jax.device_get(batch)
        valid = np.asarray(host.valid).reshape(-1)
        idx = np.flatnonzero(valid)
        values = [np.asarray(a).reshape(valid.shape[0], *np.shape(a)[2:])[idx] for a in host[:5]]
        self.add(*values)
        return len(idx)

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        """Add ``n`` transitions (obs ``[n, D]``, action ``[n, A]``, reward/terminated ``[n]``)."""
        values = [np.asarray(obs, np.float32), np.asarray(action, np.float32), np.asarray(reward, np.float32),
                  np.asarray(next_obs, np.float32), np.asarray(terminated, bool)]
        n = len(values[0])
        if n == 0:
            return
        if n > self.capacity:
            values = [v[-self.capacity:] for v in values]
        m = len(values[0])
        idx = (self.next + np.arange(m)) % self.capacity
        for store, v in zip(self._arrays(), values):
            store[idx] = v
        self.next = int((self.next + m) % self.capacity)
        self.size = min(self.size + m, self.capacity)
        self.total_added += n

    def ordered(self) -> tuple[np.ndarray, ...]:
        """Stored fields, oldest first (copies)."""
        idx = np.arange(self.size) if self.size < self.capacity else (self.next + np.arange(self.capacity)) % self.capacity
        return tuple(a[idx] for a in self._arrays())

    def resized(self, capacity: int) -> "ModelBuffer":
        """A buffer of the new capacity holding the newest transitions of this one (MBPO's pool reallocation)."""
        out = ModelBuffer(capacity, self.obs_dim, self.act_dim)
        out.add(*self.ordered())
        out.total_added = self.total_added
        return out

    def sample_indices(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.size == 0:
            raise ConfigError("ModelBuffer.sample: the buffer is empty")
        return rng.integers(0, self.size, size=n)

    def take(self, idx: np.ndarray) -> TrainBatch:
        """Transitions at ``idx`` as a host :class:`TrainBatch` (``done`` = terminated as float32)."""
        return TrainBatch(self.obs[idx], self.action[idx], self.reward[idx], self.next_obs[idx],
                          self.terminated[idx].astype(np.float32))

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the storage (exact layout, only the filled part) to one ``.npz`` atomically."""
        arrays = {f: a[: self.size] for f, a in zip(_FIELDS, self._arrays())}
        arrays.update(capacity=np.int64(self.capacity), next=np.int64(self.next), size=np.int64(self.size),
                      total_added=np.int64(self.total_added), format_version=np.int64(_FORMAT_VERSION))
        atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ModelBuffer":
        """Read a buffer written by :meth:`save`; raises :class:`DataError` if it is corrupt."""
        try:
            with np.load(path, allow_pickle=False) as f:
                a = {k: f[k] for k in f.files}
            if int(a["format_version"]) != _FORMAT_VERSION:
                raise DataError(f"model buffer {path} has format {int(a['format_version'])}, expected {_FORMAT_VERSION}")
            buf = cls(int(a["capacity"]), a["obs"].shape[1], a["action"].shape[1])
            size = int(a["size"])
            if any(a[f].shape[0] != size for f in _FIELDS) or size > buf.capacity:
                raise DataError(f"model buffer {path} has inconsistent field shapes")
        except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError, IndexError) as e:
            if isinstance(e, (DataError, FileNotFoundError)):
                raise
            raise DataError(f"model buffer {path} is corrupt ({type(e).__name__}: {e})") from e
        for f in _FIELDS:
            getattr(buf, f)[:size] = a[f]
        buf.size, buf.next, buf.total_added = size, int(a["next"]), int(a["total_added"])
        return buf
