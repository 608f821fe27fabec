"""Collecting transitions from real environments with any policy (random by default).

Works with Gymnasium vector environments in either autoreset mode: ``SAME_STEP`` (the
final observation arrives in ``info["final_obs"]``) or ``NEXT_STEP`` (the step after an
episode end only resets and is not a transition, so it is skipped).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from tqdm.auto import tqdm

from mbrlax.data.buffer import ReplayBuffer

# policy(obs[B, D]) -> action[B, A], NumPy in and out
Policy = Callable[[np.ndarray], np.ndarray]


class CollectStats(NamedTuple):
    episode_returns: list[float]  # returns of episodes that finished during collection
    episode_lengths: list[int]
    steps: int  # transitions added


def random_policy(action_space: gym.spaces.Box, seed: int | None = None) -> Policy:
    """Uniform actions in the bounds of a (single-env) Box action space."""
    rng = np.random.default_rng(seed)
    low, high = action_space.low, action_space.high

    def act(obs: np.ndarray) -> np.ndarray:
        return rng.uniform(low, high, size=(obs.shape[0], *low.shape)).astype(np.float32)

    return act


def collect(envs: gym.vector.VectorEnv, policy: Policy, num_steps: int, buffer: ReplayBuffer,
            seed: int | None = None, progress: bool = False) -> CollectStats:
    """Run ``policy`` on ``envs`` until ``num_steps`` transitions were added to ``buffer``."""
    mode = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    obs, _ = envs.reset(seed=seed)
    n_envs = envs.num_envs
    just_reset = np.zeros(n_envs, bool)  # NEXT_STEP: this env's next step is a reset, not a transition
    ep_ret, ep_len = np.zeros(n_envs), np.zeros(n_envs, int)
    returns, lengths, added = [], [], 0
    bar = tqdm(total=num_steps, desc="collect", disable=not progress, leave=False)
    while added < num_steps:
        action = np.asarray(policy(np.asarray(obs, np.float32)), np.float32)
        next_obs, reward, terminated, truncated, info = envs.step(action)
        real_next = np.array(next_obs, np.float32, copy=True)
        done = terminated | truncated
        if mode == AutoresetMode.SAME_STEP and done.any():
            for i in np.flatnonzero(done):
                real_next[i] = info["final_obs"][i]
        valid = ~just_reset
        take = np.flatnonzero(valid)[: num_steps - added]
        buffer.add_batch(np.asarray(obs, np.float32)[take], action[take], reward[take], real_next[take],
                         terminated[take], truncated[take])
        added += len(take)
        bar.update(len(take))
        ep_ret[valid] += reward[valid]
        ep_len[valid] += 1
        for i in np.flatnonzero(done & valid):
            returns.append(float(ep_ret[i]))
            lengths.append(int(ep_len[i]))
            ep_ret[i], ep_len[i] = 0.0, 0
        just_reset = done & valid if mode == AutoresetMode.NEXT_STEP else np.zeros(n_envs, bool)
        obs = next_obs
    bar.close()
    return CollectStats(returns, lengths, added)


def collect_episodes(env: gym.Env, policy: Policy, num_episodes: int, seed: int, max_steps: int | None = None
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Whole episodes ``(obs[T + 1, D], actions[T, A])`` from a single env (for diagnostics)."""
    episodes = []
    for ep in range(num_episodes):
        obs, _ = env.reset(seed=seed + ep)
        observations, actions = [np.asarray(obs, np.float32)], []
        while True:
            action = np.asarray(policy(np.asarray(obs, np.float32)[None])[0], np.float32)
            obs, _, terminated, truncated, _ = env.step(action)
            observations.append(np.asarray(obs, np.float32))
            actions.append(action)
            if terminated or truncated or (max_steps and len(actions) >= max_steps):
                break
        episodes.append((np.array(observations), np.array(actions)))
    return episodes
