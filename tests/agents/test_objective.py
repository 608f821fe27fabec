"""The planning objective: termination, NaN ranking, the optional uncertainty penalty and state cost."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrlax.agents.objective import ObjectiveConfig, make_objective, particle_spread, quadratic_state_cost
from mbrlax.data.buffer import Batch
from mbrlax.envs.task import Task
from mbrlax.errors import ConfigError
from mbrlax.models.config import ModelConfig
from mbrlax.models.dynamics import DynamicsModel
from mbrlax.models.ensemble import EnsembleConfig
from mbrlax.models.normalizer import Normalizer
from mbrlax.models.trainer import TrainerConfig, fit


def flat_task():
    """Reward 1 per step whatever happens: every plan ties, as on InvertedPendulum while it stays up."""
    return Task("flat", 1, 1, np.array([-1.0]), np.array([1.0]), reward_fn=lambda o, a, n: jnp.ones(n.shape[:-1]))


@pytest.fixture(scope="module")
def fitted_on_small_actions():
    """5 deterministic members fitted on s' = s + a with |a| <= 0.2 only."""
    rng = np.random.default_rng(0)
    s = rng.uniform(-1, 1, (2000, 1)).astype(np.float32)
    a = rng.uniform(-0.2, 0.2, (2000, 1)).astype(np.float32)
    data = Batch(s, a, np.zeros(2000, np.float32), s + a, np.zeros(2000, bool), np.zeros(2000, bool))
    model = DynamicsModel(EnsembleConfig(1, 1, ensemble_size=5, hidden=32, depth=2, probabilistic=False), num_elites=5)
    res = fit(model, model.init(jax.random.PRNGKey(0)), data, jax.random.PRNGKey(1),
              TrainerConfig(max_epochs=60, patience=10, batch_size=64, progress=False))
    return model, res.state


def _still_model():
    """One deterministic member that predicts no motion: s' = s."""
    model = DynamicsModel(EnsembleConfig(1, 1, ensemble_size=1, hidden=2, depth=1, probabilistic=False), num_elites=1)
    state = model.init(jax.random.PRNGKey(0))
    layers = [dict(layer) for layer in state.params["layers"]]
    layers[-1] = {"w": jnp.zeros_like(layers[-1]["w"]), "b": jnp.zeros_like(layers[-1]["b"])}
    return model, state.replace(params={**state.params, "layers": layers})


def _unit_state(std):
    return type("S", (), {"target_norm": Normalizer(jnp.zeros(len(std)), jnp.asarray(std, jnp.float32))})()


def test_particle_spread_in_delta_obs_units():
    # 2 candidates x 2 particles (rows n*P + p), H = 2, D = 2; candidate 1's particles (rows 2, 3)
    # differ by 2 in both dims, candidate 0's agree
    obs = jnp.zeros((4, 3, 2)).at[2, 1:, :].set(2.0)
    spread = particle_spread(obs, jnp.zeros((4, 2), bool), _unit_state([1.0, 2.0]), N=2, P=2, discount=0.5)
    # candidate 1: std of (0, 2) = 1 per dim -> (1/1 + 1/2) / 2 = 0.75 per step; steps weigh 1 and 0.5
    np.testing.assert_allclose(spread, [0.0, 0.75 * 1.5], rtol=1e-5, atol=1e-5)


def test_particle_spread_ignores_frozen_particles():
    # one candidate, 3 particles, H = 3; particle 2 terminates at step 0 and is frozen far away
    obs = jnp.zeros((3, 4, 1)).at[2, 1:, 0].set(5.0)
    terminated = jnp.array([[False] * 3, [False] * 3, [True] * 3])
    spread = particle_spread(obs, terminated, _unit_state([1.0]), N=1, P=3, discount=1.0)
    # step 0 counts all three (particle 2 was alive before it): std of (0, 0, 5); then the two live ones agree
    np.testing.assert_allclose(spread, [np.std([0.0, 0.0, 5.0])], rtol=1e-5)


def test_terminated_particles_stop_earning_and_non_finite_ranks_last():
    """A model that predicts no motion; reward 1 per step, the episode ends on an action > 0.5
    (that step still earns), an action < -0.5 gives a NaN reward and one in [-0.5, -0.2) +inf."""
    model, state = _still_model()
    task = Task("edge", 1, 1, np.array([-1.0]), np.array([1.0]),
                reward_fn=lambda o, a, n: jnp.where(a[..., 0] < -0.5, jnp.nan, jnp.where(a[..., 0] < -0.2, jnp.inf, 1.0)),
                termination_fn=lambda o, a, n: a[..., 0] > 0.5)
    objective = make_objective(model, task, ObjectiveConfig("mean", num_particles=1))(state, jnp.zeros(1))
    step1 = lambda v: jnp.zeros((4, 1)).at[1, 0].set(v)  # noqa: E731
    actions = jnp.stack([step1(0.9), step1(0.0), step1(-0.9), step1(-0.3)])
    returns = np.asarray(objective(jax.random.PRNGKey(0), actions))
    assert returns[0] == 2.0 and returns[1] == 4.0 and returns[2] == returns[3] == -math.inf, returns


def test_penalty_prefers_plans_where_the_model_has_data(fitted_on_small_actions):
    model, state = fitted_on_small_actions
    inside, outside = jnp.full((1, 10, 1), 0.1), jnp.full((1, 10, 1), 0.9)
    actions = jnp.concatenate([inside, outside])
    obs = jnp.zeros(1)
    plain = make_objective(model, flat_task(), ObjectiveConfig("mean", num_particles=5))(state, obs)
    careful = make_objective(model, flat_task(), ObjectiveConfig("mean", num_particles=5, uncertainty_penalty=1.0))(state, obs)
    key = jax.random.PRNGKey(0)
    np.testing.assert_allclose(plain(key, actions), [10.0, 10.0])  # the env reward alone: a tie
    scores = np.asarray(careful(key, actions))
    assert scores[0] > scores[1] + 1.0, scores  # members disagree off the data (actions 0.9 were never seen)


def test_penalty_config_errors():
    with pytest.raises(ConfigError, match="uncertainty_penalty must be >= 0"):
        ObjectiveConfig(uncertainty_penalty=-1.0)
    with pytest.raises(ConfigError, match="num_particles >= 2"):
        ObjectiveConfig(propagation="expectation", uncertainty_penalty=0.1)
    with pytest.raises(ConfigError, match="num_particles >= 2"):
        ObjectiveConfig(num_particles=1, uncertainty_penalty=0.1)


def test_state_cost_in_the_objective_is_discounted_like_the_reward():
    model, state = _still_model()
    cfg = ObjectiveConfig("mean", num_particles=1, discount=0.5, state_cost=(0.3,))
    score = make_objective(model, flat_task(), cfg)(state, jnp.full(1, 2.0))(jax.random.PRNGKey(0), jnp.zeros((1, 3, 1)))
    # reward 1 and cost 0.3 * 2² = 1.2 at each of 3 steps, weights 1, 0.5, 0.25
    np.testing.assert_allclose(score, [(1.0 - 1.2) * 1.75], rtol=1e-5)


def test_an_all_zero_state_cost_is_off_like_an_empty_one():
    assert not ObjectiveConfig(state_cost=()).has_state_cost
    assert not ObjectiveConfig(state_cost=(0.0, 0)).has_state_cost
    assert ObjectiveConfig(state_cost=(0.0, 0.1)).has_state_cost
    model, state = _still_model()
    zero = ObjectiveConfig("mean", num_particles=1, state_cost=(0.0,))
    scores = [make_objective(model, flat_task(), c)(state, jnp.full(1, 2.0))(jax.random.PRNGKey(0), jnp.zeros((1, 3, 1)))
              for c in (zero, ObjectiveConfig("mean", num_particles=1))]
    np.testing.assert_allclose(scores[0], scores[1])


def test_state_cost_of_a_non_finite_state_is_zero_with_a_finite_gradient():
    obs = jnp.zeros((1, 3, 2)).at[0, 2, 1].set(jnp.inf)  # step 1's state: dim 1 non-finite (a terminating state)
    terminated = jnp.array([[False, True]])
    weights = jnp.array([0.3, 0.0])
    np.testing.assert_allclose(quadratic_state_cost(obs.at[0, 1:, 0].set(1.0), terminated, weights, 1.0), [0.6])
    grad = jax.grad(lambda o: quadratic_state_cost(o, terminated, weights, 1.0).sum())(obs.at[0, 1:, 0].set(1.0))
    assert np.all(np.isfinite(grad)), grad


def test_quadratic_state_cost_by_hand():
    # 2 particles, H = 3, D = 2; particle 1 terminates at step 1 (that step pays, step 2 does not)
    obs = jnp.zeros((2, 4, 2)).at[:, 1:, 0].set(jnp.array([1.0, 2.0, 3.0])).at[:, 1:, 1].set(1.0)
    terminated = jnp.array([[False, False, False], [False, True, True]])
    cost = quadratic_state_cost(obs, terminated, jnp.array([0.5, 2.0]), discount=0.5)
    per_step = 0.5 * jnp.array([1.0, 4.0, 9.0]) + 2.0  # 2.5, 4, 6.5
    np.testing.assert_allclose(cost, [per_step[0] + 0.5 * per_step[1] + 0.25 * per_step[2],
                                      per_step[0] + 0.5 * per_step[1]], rtol=1e-6)


def test_state_cost_breaks_the_alive_bonus_tie(fitted_on_small_actions):
    """Reward 1 per step ties every plan; a cost on the state prefers the plan that stays near 0."""
    model, state = fitted_on_small_actions
    stay, drift = jnp.zeros((1, 10, 1)), jnp.full((1, 10, 1), 0.1)
    actions = jnp.concatenate([stay, drift])
    cfg = ObjectiveConfig("mean", num_particles=5, state_cost=(0.3,))
    scores = np.asarray(make_objective(model, flat_task(), cfg)(state, jnp.zeros(1))(jax.random.PRNGKey(0), actions))
    assert scores[0] > 9.9 and scores[1] < scores[0] - 0.5, scores  # drift: s_t ≈ 0.1 t, cost ≈ 0.3 Σ (0.1 t)² ≈ 1.2


def test_state_cost_config_errors(fitted_on_small_actions):
    model, _ = fitted_on_small_actions
    with pytest.raises(ConfigError, match="state_cost weights must be finite and >= 0"):
        ObjectiveConfig(state_cost=(-0.1,))
    with pytest.raises(ConfigError, match="state_cost weights must be finite and >= 0"):
        ObjectiveConfig(state_cost=(math.inf,))
    with pytest.raises(ConfigError, match="one weight per observation dim"):
        ObjectiveConfig(state_cost=0.3)
    assert hash(ObjectiveConfig(state_cost=[0.3])) == hash(ObjectiveConfig(state_cost=(0.3,)))  # list -> tuple
    with pytest.raises(ConfigError, match="state_cost has 2 weights, the observation has 1"):
        make_objective(model, flat_task(), ObjectiveConfig(state_cost=(0.1, 0.1)))


def _unstable_episodes(n_episodes: int, seed: int) -> Batch:
    """Random-action episodes of ``s' = 1.1 s + 0.1 a``, reward 1 per step, ending when ``|s'| > 1``."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_episodes):
        s = rng.uniform(-0.2, 0.2)
        for _ in range(60):
            a = rng.uniform(-1, 1)
            s2 = 1.1 * s + 0.1 * a
            rows.append((s, a, s2, abs(s2) > 1.0))
            if abs(s2) > 1.0:
                break
            s = s2
    s, a, s2, done = (np.array(c) for c in zip(*rows))
    n = len(s)
    return Batch(s[:, None].astype(np.float32), a[:, None].astype(np.float32), np.ones(n, np.float32),
                 s2[:, None].astype(np.float32), done, np.zeros(n, bool))


def test_a_learned_termination_ranks_a_plan_that_ends_the_episode_below_one_that_does_not():
    """An alive bonus with a learned reward and termination (an env no task knows): from s = 0.5, pushing
    out (a = +1) ends the episode at step 4, pushing back (a = -1) survives the 10-step horizon.
    Every real episode stops at the boundary, so the model never saw a state past it. Measured (3 seeds):
    a head fitted on plain cross-entropy scored the falling plan 9.8-10.1 (once above the surviving one,
    10.0); with class-balanced weights and absorbing terminal rows (``trainer.termination_rows``) 1.0-2.7
    (termination predicted a step or two early: balancing makes the head cautious)."""
    data = _unstable_episodes(40, 0)
    assert 0.02 < data.terminated.mean() < 0.08  # terminations are rare
    model = ModelConfig(ensemble_size=3, num_elites=3, hidden=32, depth=2).build(1, 1, learn_reward=True)
    res = fit(model, model.init(jax.random.PRNGKey(0)), data, jax.random.PRNGKey(1),
              TrainerConfig(max_epochs=40, patience=40, batch_size=64, progress=False))
    objective = make_objective(model, None, ObjectiveConfig("tsinf", num_particles=6))(model.elite_state(res.state),
                                                                                       jnp.full(1, 0.5))
    falls, survives = np.asarray(objective(jax.random.PRNGKey(0), jnp.stack([jnp.ones((10, 1)), -jnp.ones((10, 1))])))
    assert survives > 9.0 and falls < 6.5, (falls, survives)  # true returns: 4 and 10
