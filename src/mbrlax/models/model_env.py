"""A trained model as a ``gymnasium.Env``: any RL code can train inside the learned simulator.

Each step draws one ensemble member at random (TS1) and samples its Gaussian. Episodes
start from states drawn from ``start_states`` (e.g. real observations from the buffer),
end when the task's (or the learned) termination fires, and truncate after
``max_episode_steps``. For batched, differentiable use call :mod:`mbrlax.models.simulator`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from mbrlax.envs.task import Task
from mbrlax.errors import ConfigError
from mbrlax.models.dynamics import DynamicsModel, ModelState
from mbrlax.models.ensemble import select_members
from mbrlax.models.simulator import check_reward_source, step as model_step


class ModelEnv(gym.Env):
    """Gymnasium environment whose dynamics are a learned model (elite members only)."""

    metadata = {"render_modes": []}

    def __init__(self, model: DynamicsModel, state: ModelState, observation_space: gym.spaces.Box,
                 action_space: gym.spaces.Box, start_states: np.ndarray, task: Task | None = None,
                 max_episode_steps: int = 1000, propagation: str = "ts1"):
        check_reward_source(model, task)
        start_states = np.asarray(start_states, np.float32)
        if start_states.ndim != 2 or start_states.shape[1] != model.cfg.obs_dim or len(start_states) == 0:
            raise ConfigError(f"start_states must be [N, {model.cfg.obs_dim}], got {start_states.shape}")
        if not isinstance(action_space, gym.spaces.Box):
            raise ConfigError(f"ModelEnv needs a Box action space, got {action_space}")
        self.observation_space = observation_space
        self.action_space = action_space
        self.model, self.task = model, task
        self.max_episode_steps = max_episode_steps
        self._start_states = start_states
        self._elite = model.elite_state(state)
        n_members = DynamicsModel.num_members(self._elite)

        def one_step(elite: ModelState, obs, action, key):
            k_member, k_step = jax.random.split(key)
            member = jax.random.randint(k_member, (1,), 0, n_members)
            single = elite.replace(params=select_members(elite.params, member), elites=jnp.zeros(1, jnp.int32))
            method = "ts1" if propagation in ("ts1", "tsinf") else propagation
            tr = model_step(model, single, obs[None], action[None], k_step, task, method)
            return tr.next_obs[0], tr.reward[0], tr.terminated[0]

        self._step_fn = jax.jit(one_step)
        self._obs = None
        self._t = 0
        self._key = jax.random.PRNGKey(0)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._key = jax.random.PRNGKey(seed)
        i = self.np_random.integers(len(self._start_states))
        self._obs = self._start_states[i].copy()
        self._t = 0
        return self._clip(self._obs), {}

    def step(self, action):
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        action = np.clip(np.asarray(action, np.float32), self.action_space.low, self.action_space.high)
        self._key, k = jax.random.split(self._key)
        next_obs, reward, terminated = self._step_fn(self._elite, jnp.asarray(self._obs), jnp.asarray(action), k)
        next_obs = np.asarray(next_obs, np.float32)
        reward, terminated = float(reward), bool(terminated)
        if not np.all(np.isfinite(next_obs)):  # a model blow-up ends the episode rather than poisoning the learner
            next_obs, terminated = self._obs, True
        self._obs = next_obs
        self._t += 1
        truncated = self._t >= self.max_episode_steps and not terminated
        return self._clip(next_obs), reward, terminated, truncated, {}

    def _clip(self, obs: np.ndarray) -> np.ndarray:
        return np.clip(obs, self.observation_space.low, self.observation_space.high).astype(self.observation_space.dtype)
