"""A short PETS run on the cart-pole swing-up improves over random data by a clear margin."""

import dataclasses
import math

import numpy as np

from mbrlax.algorithms.mpc_loop import planned_vs_achieved, run
from mbrlax.algorithms.presets import pets_light_preset, pets_light_without_prior


def test_short_pets_run_beats_random_data(tmp_path):
    cfg = pets_light_preset("cartpole-swingup")
    cfg = dataclasses.replace(
        cfg, out=str(tmp_path), iterations=2, episode_steps=0, video=False, seed=0,
        trainer=dataclasses.replace(cfg.trainer, max_epochs=20),
    )
    summary = run(cfg)
    rows = summary["returns"]
    random_return = float(next(r["return"] for r in _rows(tmp_path) if r["policy"] == "random"))
    # random swinging keeps the tip low: about -5 over 100 steps; a learned swing-up earns tens
    assert max(rows) > random_return + 20, (random_return, rows)
    assert (tmp_path / "learning_curve.png").exists() and (tmp_path / "checkpoint.json").exists()
    mpc_rows = [r for r in _rows(tmp_path) if r["policy"] == "mpc"]
    assert all(math.isfinite(float(r["planned_return_median"])) and math.isfinite(float(r["achieved_return_median"]))
               for r in mpc_rows)


def test_planned_vs_achieved_compares_each_plan_with_the_rewards_over_its_horizon():
    rewards = [1.0, 2.0, 3.0, 4.0, 5.0]
    # plans at steps 0..4 expecting 10 each; horizon 2, discount 0.5: achieved 1+1, 2+1.5, 3+2, 4+2.5;
    # the plan at step 4 runs past the (time-limit) end and is skipped
    planned = [(t, 10.0) for t in range(5)]
    p, a = planned_vs_achieved(planned, rewards, horizon=2, discount=0.5, terminated=False)
    assert p == 10.0 and a == np.median([2.0, 3.5, 5.0, 6.5])
    # after a termination nothing more is due: the last plan counts with what it got (5)
    p, a = planned_vs_achieved(planned, rewards, horizon=2, discount=0.5, terminated=True)
    assert a == np.median([2.0, 3.5, 5.0, 6.5, 5.0])
    assert all(map(math.isnan, planned_vs_achieved([(4, 1.0)], rewards, 2, 1.0, terminated=False)))


def _rows(path):
    import csv

    with open(path / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_random_steps_keeps_collecting_random_episodes(tmp_path):
    """InvertedPendulum's random episodes last ~5 steps; ``random_steps`` collects until there are enough."""
    cfg = dataclasses.replace(pets_light_preset("InvertedPendulum-v5"), out=str(tmp_path), iterations=0,
                              random_steps=60, video=False)
    summary = run(cfg)
    assert summary["env_steps"] >= 60 and summary["returns"] == []
    assert pets_light_preset("InvertedPendulum-v5").random_steps == 1000  # one trial length


def test_loop_without_random_data_or_with_too_many_random_steps_is_refused(tmp_path):
    import pytest

    from mbrlax.algorithms.mpc_loop import MPCLoopConfig
    from mbrlax.errors import ConfigError

    with pytest.raises(ConfigError, match="random data"):
        run(MPCLoopConfig(out=str(tmp_path), random_episodes=0, random_steps=0))
    with pytest.raises(ConfigError, match="buffer_capacity"):
        run(MPCLoopConfig(out=str(tmp_path), random_steps=2000, buffer_capacity=1000))


def test_inverted_pendulum_preset_plans_with_its_prior_and_without_on_request():
    """The preset's cart cost has one weight per observation dim (the objective built from the preset
    accepts it and scores candidates); the no-prior variant is plain CEM on the env's reward."""
    import jax
    import jax.numpy as jnp

    from mbrlax.agents.objective import make_objective
    from mbrlax.envs import get_task

    cfg = pets_light_preset("InvertedPendulum-v5")
    assert cfg.planner.name == "icem" and cfg.objective.state_cost[0] > 0
    task = get_task("InvertedPendulum-v5")
    model = cfg.model.build(4, 1, task=task)
    objective = make_objective(model, task, cfg.objective)(model.elite_state(model.init(jax.random.PRNGKey(0))),
                                                             jnp.zeros(4))
    assert objective(jax.random.PRNGKey(1), jnp.zeros((3, cfg.planner.horizon, 1))).shape == (3,)
    plain = pets_light_without_prior("InvertedPendulum-v5")
    assert plain.planner.name == "cem" and plain.objective.state_cost == ()


def test_half_cheetah_light_preset_costs_the_pitch_and_the_paper_preset_does_not():
    """Light PETS on HalfCheetah penalises only the root pitch (obs[2]): from a tilted start its
    objective scores the same plans lower than the reward alone does; ``pets-paper`` and the
    no-prior variant keep the env's reward alone."""
    import jax
    import jax.numpy as jnp

    from mbrlax.agents.objective import make_objective
    from mbrlax.algorithms.presets import pets_preset
    from mbrlax.envs import get_task

    cfg = pets_light_preset("HalfCheetah-v5")
    assert len(cfg.objective.state_cost) == 18
    assert [i for i, w in enumerate(cfg.objective.state_cost) if w > 0] == [2]
    assert pets_preset("HalfCheetah-v5").objective.state_cost == ()
    assert pets_light_without_prior("HalfCheetah-v5").objective.state_cost == ()
    task = get_task("HalfCheetah-v5")
    model = cfg.model.build_for_task(18, 6, task)
    state = model.elite_state(model.init(jax.random.PRNGKey(0)))
    actions = jnp.zeros((2, cfg.planner.horizon, 6))
    with_cost, without = (make_objective(model, task, c)(state, jnp.zeros(18).at[2].set(1.2))
                          for c in (cfg.objective, dataclasses.replace(cfg.objective, state_cost=())))
    key = jax.random.PRNGKey(1)
    assert float(with_cost(key, actions)[0]) < float(without(key, actions)[0]) - 1.0
