"""The planning objective: termination, NaN ranking and the optional uncertainty penalty."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrlax.agents.objective import ObjectiveConfig, make_objective, particle_spread
from mbrlax.data.buffer import Batch
from mbrlax.envs.task import Task
from mbrlax.errors import ConfigError
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


def test_particle_spread_in_delta_obs_units():
    state = type("S", (), {"target_norm": Normalizer(jnp.zeros(2), jnp.array([1.0, 2.0]))})()
    # 2 candidates x 2 particles, H = 2, D = 2; candidate 0's particles agree, candidate 1's differ by 2
    obs = jnp.zeros((4, 3, 2)).at[3, 1:, :].set(2.0)
    spread = particle_spread(obs, state, N=2, P=2, discount=0.5)
    # candidate 1: std of (0, 2) = 1 per dim -> (1/1 + 1/2) / 2 = 0.75 per step; steps weigh 1 and 0.5
    np.testing.assert_allclose(spread, [0.0, 0.75 * 1.5], rtol=1e-6)


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
