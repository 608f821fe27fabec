"""PDDM's Shadow hand envs (Baoding balls, cube): tasks match env.step, Gymnasium API, registration, success measures."""

import importlib.util
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from mbrlax.envs import action_bounds, get_task, make_env, resolve_env_id
from mbrlax.envs.hand import (
    BAODING_ID, BAODING_SUCCESS_TOL, BAODING_WRIST_PENALTY, CUBE_GOALS, HAND_CUBE_ID, baoding_success, cube_success,
    quat_angle,
)
from mbrlax.errors import ConfigError

REWARD_TOL = 1e-4  # float32 JAX vs float64 env; measured max ~2e-5
IDS = [BAODING_ID, HAND_CUBE_ID]


def _compare(task, rows):
    obs, act, next_obs, reward, terminated = (np.array(c) for c in zip(*rows))
    both = jax.jit(lambda o, a, n: (task.reward_fn(o, a, n), task.termination_fn(o, a, n)))
    r, d = (np.asarray(x) for x in both(obs, act, next_obs))
    assert r.shape == reward.shape and d.dtype == bool
    assert np.abs(r - reward).max() < REWARD_TOL, f"max |reward diff| {np.abs(r - reward).max():.3g}"
    np.testing.assert_array_equal(d, terminated)
    return reward, terminated


@pytest.mark.parametrize("env_id", IDS)
def test_task_matches_env_step(env_id):
    env = make_env(env_id, seed=3)
    task = get_task(env_id)
    assert env.observation_space.shape == (task.obs_dim,) and env.action_space.shape == (task.act_dim,)
    np.testing.assert_array_equal(action_bounds(env)[0], task.action_low)
    assert env.spec.max_episode_steps == task.max_episode_steps
    obs, _ = env.reset(seed=3)
    rows = []
    for _ in range(200):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        rows.append((obs, action, next_obs, reward, terminated))
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
    reward, terminated = _compare(task, rows)
    assert terminated.any() and not terminated.all(), "random actions should drop the object now and then"


def test_baoding_wrist_penalty_branch():
    """Random actions rarely lift the wrist past 0.15 rad: drive it there with WRJ0's action at +1."""
    env = make_env("baoding", seed=0)
    task = get_task("baoding")
    obs, _ = env.reset(seed=0)
    action = np.zeros(20, np.float32)
    action[1] = 1.0  # actuator 1 = WRJ0
    rows = []
    for _ in range(6):
        next_obs, reward, terminated, _, _ = env.step(action)
        rows.append((obs, action, next_obs, reward, terminated))
        obs = next_obs
    reward, _ = _compare(task, rows)
    lifted = np.array([r[2][1] for r in rows]) > 0.15
    assert lifted.any()
    assert np.all(reward[lifted] <= BAODING_WRIST_PENALTY)


@pytest.mark.parametrize("env_id", IDS)
def test_passes_gymnasium_env_checker(env_id):
    env = make_env(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # infinite observation bounds are intended
        check_env(env.unwrapped, skip_render_check=True)


def test_registered_by_id_and_alias():
    assert resolve_env_id("baoding") == BAODING_ID
    assert resolve_env_id("Baoding-Balls") == BAODING_ID
    assert resolve_env_id("hand-cube") == HAND_CUBE_ID
    assert resolve_env_id("HandCube") == HAND_CUBE_ID
    assert get_task("baoding") is get_task(BAODING_ID)
    assert get_task("hand-cube").env_id == HAND_CUBE_ID
    assert make_env("hand-cube").spec.id == HAND_CUBE_ID


def test_missing_gymnasium_robotics_is_one_line_config_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gymnasium_robotics" else real(name, *a))
    with pytest.raises(ConfigError, match="pip install gymnasium-robotics") as info:
        make_env("baoding")
    assert "\n" not in str(info.value)


def test_cube_goal_is_in_obs_and_angle_is_geodesic():
    env = make_env("hand-cube", seed=0)
    goals = {tuple(env.reset()[0][37:41]) for _ in range(30)}
    assert goals == {tuple(g) for g in CUBE_GOALS}
    q = jnp.asarray([1.0, 0.0, 0.0, 0.0])
    for g in CUBE_GOALS:
        assert abs(float(quat_angle(q, jnp.asarray(g))) - 1.5) < 1e-5
        assert abs(float(quat_angle(-2.0 * q, jnp.asarray(g))) - 1.5) < 1e-5  # sign and norm do not matter
    grad = jax.grad(lambda x: quat_angle(x, x).sum())(jnp.asarray(CUBE_GOALS, jnp.float32))
    assert bool(jnp.all(jnp.isfinite(grad)))


def _steps(env_id, actions, seed=0):
    """``next_obs [T, D]`` and ``info`` of each step of ``actions [T, 20]`` from a reset."""
    env = make_env(env_id, seed=seed)
    env.reset(seed=seed)
    rows = [env.step(a) for a in actions]
    return np.stack([r[0] for r in rows]), [r[4] for r in rows]


def test_baoding_success_is_both_balls_within_tolerance_and_no_drop():
    rng = np.random.default_rng(0)
    actions = np.concatenate([np.zeros((40, 20)), rng.uniform(-1, 1, (30, 20))]).astype(np.float32)
    next_obs, infos = _steps("baoding", actions)
    ok = np.asarray(baoding_success(jnp.asarray(next_obs)))
    far = np.array([max(i["ball1_distance"], i["ball2_distance"]) for i in infos])
    dropped = np.array([i["dropped"] for i in infos])
    clear = np.abs(far - BAODING_SUCCESS_TOL) > 1e-4  # float32 vs float64 right at the tolerance
    np.testing.assert_array_equal(ok[clear], ((far < BAODING_SUCCESS_TOL) & ~dropped)[clear])
    assert ok.any() and not ok.all(), "holding the start pose passes now and then (the targets move)"
    # a dropped ball fails even at its target
    at_target = next_obs[0].copy()
    at_target[24:26], at_target[30:32] = at_target[36:38], at_target[38:40]
    low = at_target.copy()
    low[26] = 0.0
    assert np.asarray(baoding_success(jnp.asarray(np.stack([at_target, low])))).tolist() == [True, False]


def test_cube_success_is_orientation_within_tolerance_and_no_drop():
    next_obs, infos = _steps("hand-cube", np.zeros((5, 20), np.float32))
    assert not np.asarray(cube_success(jnp.asarray(next_obs))).any(), "every goal starts 1.5 rad away"
    done = next_obs[-1].copy()
    done[27:31] = done[37:41] * -1  # the goal's orientation (either sign of the quaternion)
    turned = done.copy()
    turned[27:31] = np.cos(0.06), np.sin(0.06), 0.0, 0.0  # 0.12 rad from identity
    turned[37:41] = 1.0, 0.0, 0.0, 0.0
    dropped = done.copy()
    dropped[26] = 0.0
    got = np.asarray(cube_success(jnp.asarray(np.stack([done, turned, dropped]))))
    assert got.tolist() == [True, False, False]
    assert np.asarray(cube_success(jnp.asarray(turned), tol=0.15)).item()


def test_success_rate_counts_steps_after_a_drop_as_failures():
    task = get_task("baoding")
    next_obs, infos = _steps("baoding", np.zeros((20, 20), np.float32))
    per_step = np.asarray(baoding_success(jnp.asarray(next_obs)))
    assert task.success_rate(next_obs, 100) == per_step.sum() / 100
    assert task.success_rate(next_obs, 10) == per_step.mean()  # never below the steps given
    assert get_task("cartpole-swingup").success_rate(next_obs, 100) is None


def test_sac_evaluation_reports_the_success_rate():
    """SAC's evaluation logs ``success`` beside the return (the MPC loop's: tests/algorithms/test_pddm_hand.py)."""
    import jax

    from mbrlax.agents.sac import SAC, SACConfig
    from mbrlax.algorithms.sac_train import evaluate

    env = make_env("baoding", seed=0)
    learner = SAC.for_env(env, SACConfig(hidden_sizes=(8, 8)))
    returns, success = evaluate(learner, learner.init(jax.random.PRNGKey(0)), env, 1, seed=0, task=get_task("baoding"))
    assert returns.shape == (1,) and 0.0 <= success <= 1.0
    assert evaluate(learner, learner.init(jax.random.PRNGKey(0)), env, 1, seed=0)[1] is None
