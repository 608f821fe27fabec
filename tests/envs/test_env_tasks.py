"""Each task's reward and termination reproduce env.step on seeded random rollouts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrlax.envs import action_bounds, get_task, known_env_ids, make_env

REWARD_TOL = 1e-4  # float32 JAX vs float64 env; measured max is ~4e-6
STEPS = 400


def _rollout(env_id: str, steps: int, seed: int):
    """Random-action transitions ``(obs[T,D], act[T,A], next_obs[T,D], reward[T], terminated[T])``."""
    env = make_env(env_id, seed=seed)
    obs, _ = env.reset(seed=seed)
    rows = []
    for _ in range(steps):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        rows.append((obs, action, next_obs, reward, terminated))
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return env, [np.array(col) for col in zip(*rows)]


@pytest.mark.parametrize("env_id", known_env_ids())
def test_task_matches_env_step(env_id):
    env, (obs, act, next_obs, reward, terminated) = _rollout(env_id, STEPS, seed=7)
    task = get_task(env_id)
    assert task.env_id == env_id
    assert env.observation_space.shape == (task.obs_dim,)
    assert env.action_space.shape == (task.act_dim,)
    low, high = action_bounds(env)
    np.testing.assert_array_equal(low, task.action_low)
    np.testing.assert_array_equal(high, task.action_high)
    assert env.spec.max_episode_steps == task.max_episode_steps

    both = jax.jit(lambda o, a, n: (task.reward_fn(o, a, n), task.termination_fn(o, a, n)))
    r, d = (np.asarray(x) for x in both(obs, act, next_obs))
    assert r.shape == reward.shape and d.shape == terminated.shape and d.dtype == bool
    assert np.abs(r - reward).max() < REWARD_TOL, f"{env_id}: max |reward diff| {np.abs(r - reward).max():.3g}"
    np.testing.assert_array_equal(d, terminated)


@pytest.mark.parametrize("env_id", known_env_ids())
def test_task_is_batched_and_differentiable(env_id):
    task = get_task(env_id)
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.normal(size=(2, 3, task.obs_dim)) * 0.1, jnp.float32)
    act = jnp.full((2, 3, task.act_dim), 0.3, jnp.float32)
    reward, terminated = jax.jit(lambda o, a, n: (task.reward_fn(o, a, n), task.termination_fn(o, a, n)))(obs, act, obs)
    assert reward.shape == (2, 3) and terminated.shape == (2, 3)
    grad = jax.jit(jax.grad(lambda o, a, n: task.reward_fn(o, a, n).sum(), argnums=(0, 1, 2)))
    g_obs, g_act, g_next = grad(obs, act, obs)
    for g in (g_obs, g_act, g_next):
        assert bool(jnp.all(jnp.isfinite(g)))
    no_control_cost = ("InvertedPendulum-v5", "InvertedDoublePendulum-v5", "mbrlax/Baoding-v0", "mbrlax/HandCube-v0")
    if env_id not in no_control_cost:  # PDDM's hand rewards have none either
        assert bool(jnp.any(g_act != 0)), "the control cost should give an action gradient"


def test_mountain_car_goal_reward_and_termination():
    """Random actions never reach the goal; start states around it to cover the +100 branch."""
    env = make_env("MountainCarContinuous-v0", seed=0)
    task = get_task("MountainCarContinuous-v0")
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(300):
        env.reset()
        state = np.array([rng.uniform(0.38, 0.5), rng.uniform(-0.07, 0.07)], dtype=np.float32)
        env.unwrapped.state = state
        action = env.action_space.sample()
        next_obs, reward, terminated, _, _ = env.step(action)
        rows.append((state, action, next_obs, reward, terminated))
    obs, act, next_obs, reward, terminated = (np.array(c) for c in zip(*rows))
    assert 20 < terminated.sum() < 280
    r = np.asarray(task.reward_fn(obs, act, next_obs))
    np.testing.assert_array_equal(np.asarray(task.termination_fn(obs, act, next_obs)), terminated)
    assert np.abs(r - reward).max() < REWARD_TOL
