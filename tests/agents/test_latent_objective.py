"""Planning in latent space: the objective encodes the frames once and scores plans by predicted reward."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrlax.agents.latent_objective import make_latent_objective
from mbrlax.errors import ConfigError
from mbrlax.models.latent import LatentModel
from mbrlax.planning import make_planner

MODEL = LatentModel(act_dim=2, size=16, frame_stack=1, latent_dim=8, channels=(4, 4, 4, 4), hidden=16)


@pytest.fixture(scope="module")
def setup():
    params = MODEL.init(jax.random.PRNGKey(0))
    frames = jnp.asarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3)), jnp.uint8)
    return params, frames


def test_objective_is_the_discounted_predicted_reward_of_the_latent_rollout(setup):
    """Each reward is weighted by discount^t and by the predicted chance that no earlier step terminated."""
    params, frames = setup
    actions = jax.random.uniform(jax.random.PRNGKey(1), (5, 4, 2), minval=-1, maxval=1)
    returns = make_latent_objective(MODEL, discount=0.9)(params, frames)(jax.random.PRNGKey(2), actions)
    z = MODEL.encode(params, frames[None])[0]
    for n in range(5):  # by hand, one step at a time
        zn, total, alive = z, 0.0, 1.0
        for t in range(4):
            total += 0.9**t * alive * float(MODEL.reward(params, zn, actions[n, t]))
            alive *= 1.0 - float(jax.nn.sigmoid(MODEL.termination_logit(params, zn, actions[n, t])))
            zn = MODEL.step(params, zn, actions[n, t])
        np.testing.assert_allclose(returns[n], total, rtol=1e-4, atol=1e-5)
        if n == 0:  # with a value head: plus discount^H * alive after the last step * V(z_H)
            valued = dataclasses.replace(MODEL, value_coef=1.0)
            vparams = {**valued.init(jax.random.PRNGKey(0)), **params}  # same heads, plus a value head
            with_value = make_latent_objective(valued, discount=0.9)(vparams, frames)(jax.random.PRNGKey(2), actions)
            np.testing.assert_allclose(with_value[0], total + 0.9**4 * alive * float(valued.value(vparams, zn)),
                                       rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="discount"):
        make_latent_objective(MODEL, discount=0.0)


def test_an_unchanged_planner_optimises_it(setup):
    """CEM, blind to the model, finds a plan the latent model rates above every one of 2000 random plans."""
    params, frames = setup
    objective = jax.jit(make_latent_objective(MODEL)(params, frames))
    planner = make_planner("cem", 6, [-1.0, -1.0], [1.0, 1.0], population=200, elites=20, iterations=6)
    plan, _, _ = planner.plan(planner.init(jax.random.PRNGKey(3)), objective, jax.random.PRNGKey(4))
    random_plans = jax.random.uniform(jax.random.PRNGKey(5), (2000, 6, 2), minval=-1, maxval=1)
    random_returns = objective(jax.random.PRNGKey(6), random_plans)
    planned = float(objective(jax.random.PRNGKey(6), plan[None])[0])
    assert planned > float(random_returns.max())
