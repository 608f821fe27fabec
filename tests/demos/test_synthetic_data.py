"""SynthER on Pendulum: the physics the demo checks against is the env's, and on a shortened run the
joint model's synthetic transitions obey the dynamics while SAC trained half on them learns."""

import json

import numpy as np

from mbrlax.demos.synthetic_data import ENV_ID, SyntheticDataDemoConfig, pendulum_next_obs, run
from mbrlax.envs import make_env


def test_pendulum_physics_matches_env_step():
    env = make_env(ENV_ID, seed=1)
    rng = np.random.default_rng(1)
    obs, _ = env.reset()
    rows = []
    for _ in range(150):  # within one episode (200 steps)
        action = rng.uniform(-2.5, 2.5, 1).astype(np.float32)  # beyond the bounds: both clip
        next_obs, *_ = env.step(action)
        rows.append((obs, action, next_obs))
        obs = next_obs
    obs, action, next_obs = (np.array(c) for c in zip(*rows))
    np.testing.assert_allclose(pendulum_next_obs(obs, action, env), next_obs, atol=1e-4)


def test_synthetic_data_demo_samples_obey_physics_and_sac_learns(tmp_path):
    out = tmp_path / "synthetic"
    res = run(SyntheticDataDemoConfig(quick=True, out=str(out), seed=0))
    for name in ("synthetic_data.png", "results.json"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "results.json").read_text())["env"] == ENV_ID
    # the generator's s' is the physics' next state of its own (s, a): measured 0.25-0.32 of a typical
    # step on seeds 0-2 (first fit, 250 rows: 1.1-1.5); another row's s' is ~7 steps off
    last = res["generator"]["last_fit_seed0"]
    assert last["dynamics_error"] < 0.6, last
    assert last["shuffled_error"] > 3.0, last
    assert last["reward_error"] < 0.3, last  # generated reward against the task's, in reward stds
    # SAC on half synthetic batches swings the pendulum up: measured -98 at 1500 steps (random -1100)
    s = res["summary"]["real + synthetic"]
    assert s["final_median"] > res["random_return"] + 500, (s, res["random_return"])
