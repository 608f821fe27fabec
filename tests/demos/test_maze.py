"""The point maze: its task matches env.step, its floor twists beyond the wall, and the demo's
lesson holds on a shortened run (model good only where the data is; MPC succeeds only there)."""

import json

import jax
import numpy as np

from mbrlax.demos.maze import MazeDemoConfig, run
from mbrlax.envs import get_task, make_env
from mbrlax.envs.lessons import MAZE_ID, STEP_SIZE, free_mask, maze_step


def test_maze_task_matches_env_step_everywhere():
    env = make_env(MAZE_ID, seed=3, start_region="all")
    task = get_task(MAZE_ID)
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(6):
        obs, _ = env.reset()
        for _ in range(50):
            action = rng.uniform(-1, 1, 2).astype(np.float32)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            rows.append((obs, action, next_obs, reward, terminated))
            assert free_mask(next_obs[:2]), f"the point entered a wall at {next_obs[:2]}"
            obs = next_obs
    obs, act, next_obs, reward, terminated = (np.array(c) for c in zip(*rows))
    assert (obs[:, 0] > 5).any() and (obs[:, 0] < 4).any(), "the rollouts should visit both floors"
    r = np.asarray(jax.jit(task.reward_fn)(obs, act, next_obs))
    assert np.abs(r - reward).max() < 1e-4
    assert not np.asarray(task.termination_fn(obs, act, next_obs)).any() and not terminated.any()
    np.testing.assert_allclose(next_obs[:, 2:], obs[:, 2:])  # the goal never moves


def test_twisted_floor_and_walls():
    push_right = np.array([1.0, 0.0])
    np.testing.assert_allclose(maze_step(np.array([2.0, 5.5]), push_right), [2.0 + STEP_SIZE, 5.5], atol=1e-9)
    # beyond the wall a push is turned 90 degrees to the left
    np.testing.assert_allclose(maze_step(np.array([8.5, 1.5]), push_right), [8.5, 1.5 + STEP_SIZE], atol=1e-9)
    # the dividing wall at x in [4, 5) stops the point; it slides along it
    p = maze_step(np.array([3.9, 5.5]), np.array([1.0, 1.0]))
    assert 3.9 <= p[0] < 4.0 and p[1] > 5.5 + 0.25


def test_maze_demo_shows_coverage_and_its_effect_on_planning(tmp_path):
    out = tmp_path / "maze"
    res = run(MazeDemoConfig(quick=True, out=str(out), seed=0))
    for name in ("maze_coverage_room.png", "maze_disagreement_vs_error.png", "maze_planning.png", "results.json"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "results.json").read_text())["env"] == MAZE_ID
    m = res["models"]["room data"]
    assert m["data_fraction_in_start_room"] > 0.95
    # (b) the one-step error beyond the covered room is far above the error inside it
    assert m["error_outside"] > 3 * m["error_inside"], m
    # (c) ensemble disagreement ranks the errors
    assert m["corr_spearman"] > 0.5, m
    # (d) MPC through the model reaches goals in the covered room, not beyond it
    assert m["success_inside"] >= m["success_outside"] + 0.5, m
