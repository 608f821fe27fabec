"""The cliff: its task matches env.step (falls included), the slope is a point of no return, and
the demo's lesson holds on a shortened run (aggregation stops the falls; no aggregation does not)."""

import json

import jax
import numpy as np

from mbrlax.demos.cliff import CliffDemoConfig, run
from mbrlax.envs import get_task, make_env
from mbrlax.envs.lessons import CLIFF_ID, EDGE, FALL_PENALTY, NO_RETURN, SLOPE_START, cliff_step


def test_cliff_task_matches_env_step_with_falls():
    env = make_env(CLIFF_ID, seed=0)
    task = get_task(CLIFF_ID)
    rng = np.random.default_rng(0)
    rows, falls = [], 0
    for ep in range(8):
        obs, _ = env.reset()
        bias = 0.6 if ep % 2 else 0.0  # half the episodes drift right and fall
        for _ in range(60):
            action = np.clip(rng.uniform(-1, 1, 1) + bias, -1, 1).astype(np.float32)
            next_obs, reward, terminated, truncated, info = env.step(action)
            rows.append((obs, action, next_obs, reward, terminated))
            obs = next_obs
            if terminated or truncated:
                falls += int(terminated)
                break
    assert falls >= 2
    obs, act, next_obs, reward, terminated = (np.array(c) for c in zip(*rows))
    r, d = jax.jit(lambda o, a, n: (task.reward_fn(o, a, n), task.termination_fn(o, a, n)))(obs, act, next_obs)
    assert np.abs(np.asarray(r) - reward).max() < 1e-4
    np.testing.assert_array_equal(np.asarray(d), terminated)
    assert np.all(reward[terminated] == FALL_PENALTY)


def test_the_slope_is_a_point_of_no_return():
    def brake_from(x, v, steps=40):
        for _ in range(steps):
            x, v = cliff_step(x, v, -1.0)
            if x >= EDGE:
                return True
        return False

    assert brake_from(NO_RETURN + 0.01, 0.0)  # past the point of no return even full braking slides off
    assert not brake_from(NO_RETURN - 0.05, 0.0)  # just before it, the brakes hold the cart
    assert not brake_from(SLOPE_START - 0.6, 1.0)  # a cart braking before the slope stops on flat ground


def test_cliff_demo_aggregation_stops_the_falls(tmp_path):
    out = tmp_path / "cliff"
    res = run(CliffDemoConfig(quick=True, out=str(out), seed=0))
    for name in ("cliff_iterations.png", "cliff_model_near_edge.png", "results.json"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "results.json").read_text())["env"] == CLIFF_ID
    assert res["initial_data"]["max_x"] < SLOPE_START  # the base policy never reached the slope
    without, with_agg = res["arms"]["without aggregation"], res["arms"]["with aggregation"]
    episodes = res["last_iterations"] * CliffDemoConfig().episodes_per_iteration
    # without aggregation the planner keeps going over the edge; with it, it learns to stop
    assert without["falls_last_iterations"] >= episodes - 1, without
    assert with_agg["falls_last_iterations"] <= without["falls_last_iterations"] - 2, with_agg
    assert with_agg["return_last_iterations"] > without["return_last_iterations"] + 20
    # and the model has learned the slope
    err = res["slope_velocity_error"]
    assert err["after_aggregation"] < 0.6 * err["before_aggregation"], err
