"""Rebasing a fitted model onto new normalisers keeps its predictions in env units."""

import jax
import jax.numpy as jnp
import numpy as np

from mbrlax.models.dynamics import DynamicsModel
from mbrlax.models.ensemble import EnsembleConfig
from mbrlax.models.normalizer import Normalizer
from mbrlax.models.rebase import MAX_RESCALE, rebase


def _fitted_state(model: DynamicsModel, seed: int = 0):
    """A random-weight state with non-trivial normalisers (as after a fit)."""
    rng = np.random.default_rng(seed)
    state = model.init(jax.random.PRNGKey(seed))
    cfg = model.cfg
    return state.replace(
        input_norm=Normalizer(jnp.asarray(rng.normal(size=cfg.in_dim), jnp.float32),
                              jnp.asarray(rng.uniform(0.5, 2.0, cfg.in_dim), jnp.float32)),
        target_norm=Normalizer(jnp.asarray(rng.normal(size=cfg.gauss_dim), jnp.float32),
                               jnp.asarray(rng.uniform(0.1, 1.0, cfg.gauss_dim), jnp.float32)))


def _predict(model, state, obs, act):
    E = model.num_members(state)
    p = model.predict(state, jnp.broadcast_to(obs, (E, *obs.shape)), jnp.broadcast_to(act, (E, *act.shape)))
    return [np.asarray(a, np.float64) for a in (p.next_obs_mean, p.next_obs_var, p.reward_mean, p.reward_var, p.term_prob)]


def test_rebase_keeps_predictions_in_env_units():
    model = DynamicsModel(EnsembleConfig(3, 2, ensemble_size=4, hidden=16, depth=2, predict_reward=True,
                                         predict_termination=True), num_elites=2)
    state = _fitted_state(model)
    rng = np.random.default_rng(1)
    # new stats within MAX_RESCALE of the old: every rewrite is exact
    new_in = Normalizer(state.input_norm.mean + 0.3, state.input_norm.std * jnp.asarray(rng.uniform(0.2, 5.0, 5), jnp.float32))
    new_tgt = Normalizer(state.target_norm.mean - 0.2, state.target_norm.std * jnp.asarray(rng.uniform(0.2, 5.0, 4), jnp.float32))
    moved = rebase(model, state, new_in, new_tgt)
    obs, act = jnp.asarray(rng.normal(size=(50, 3)), jnp.float32), jnp.asarray(rng.normal(size=(50, 2)), jnp.float32)
    for before, after in zip(_predict(model, state, obs, act), _predict(model, moved, obs, act)):
        np.testing.assert_allclose(after, before, rtol=2e-4, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(moved.target_norm.std), np.asarray(new_tgt.std))


def test_a_target_that_starts_to_move_restarts_its_head():
    """Old std 1 (a constant target) -> 1e-4: mean at the old mean, unit variance in the new units, initial bounds."""
    model = DynamicsModel(EnsembleConfig(2, 1, ensemble_size=2, hidden=8, depth=2), num_elites=1)
    state = _fitted_state(model).replace(target_norm=Normalizer(jnp.zeros(2), jnp.ones(2)))
    new_tgt = Normalizer(jnp.asarray([0.0, 2e-5]), jnp.asarray([1.0, 1e-4]))
    assert 1.0 / 1e-4 > MAX_RESCALE
    moved = rebase(model, state, state.input_norm, new_tgt)
    obs, act = jnp.ones((7, 2)), jnp.ones((7, 1))
    (m0, v0, *_), (m1, v1, *_) = _predict(model, state, obs, act), _predict(model, moved, obs, act)
    np.testing.assert_allclose(m1[..., 0], m0[..., 0], rtol=1e-4, atol=1e-6)  # unchanged dim: exact
    np.testing.assert_allclose(v1[..., 0], v0[..., 0], rtol=1e-3)
    np.testing.assert_allclose(m1[..., 1] - np.asarray(obs)[:, 1], 0.0, atol=1e-7)  # the old normaliser's mean, 0
    assert np.all((v1[..., 1] > 0.3e-8) & (v1[..., 1] <= 1e-8))  # about unit variance in the new units
    np.testing.assert_allclose(np.asarray(moved.params["min_logvar"])[1], -10.0)
    np.testing.assert_allclose(np.asarray(moved.params["max_logvar"])[1], 0.5)
    assert np.abs(np.asarray(moved.params["layers"][-1]["w"])).max() < 10  # no blown-up weights


def test_an_input_whose_spread_grows_tenfold_is_frozen_at_its_old_mean():
    model = DynamicsModel(EnsembleConfig(2, 1, ensemble_size=2, hidden=8, depth=2, probabilistic=False), num_elites=1)
    state = _fitted_state(model)
    grown = state.input_norm.std.at[0].multiply(100.0)
    moved = rebase(model, state, Normalizer(state.input_norm.mean + 1.0, grown), state.target_norm)
    np.testing.assert_array_equal(np.asarray(moved.params["layers"][0]["w"])[:, 0], 0.0)
    # the other inputs keep their effect: same prediction as the old model with input 0 at its old mean
    rng = np.random.default_rng(2)
    obs, act = jnp.asarray(rng.normal(size=(20, 2)), jnp.float32), jnp.asarray(rng.normal(size=(20, 1)), jnp.float32)
    at_old_mean = obs.at[:, 0].set(state.input_norm.mean[0])
    np.testing.assert_allclose(_predict(model, moved, obs, act)[0][..., 1],
                               _predict(model, state, at_old_mean, act)[0][..., 1], rtol=2e-4, atol=1e-5)


def test_rebase_is_exact_for_a_deterministic_model():
    model = DynamicsModel(EnsembleConfig(3, 2, ensemble_size=3, hidden=16, depth=2, probabilistic=False), num_elites=2)
    state = _fitted_state(model)
    moved = rebase(model, state, Normalizer(state.input_norm.mean - 0.5, state.input_norm.std * 3.0),
                   Normalizer(state.target_norm.mean + 0.1, state.target_norm.std * 0.4))
    obs, act = jnp.ones((5, 3)), jnp.full((5, 2), -0.5)
    np.testing.assert_allclose(_predict(model, moved, obs, act)[0], _predict(model, state, obs, act)[0], rtol=2e-4, atol=1e-5)


def test_an_unfitted_state_only_takes_the_new_normalisers():
    model = DynamicsModel(EnsembleConfig(2, 1, ensemble_size=2, hidden=8, depth=2), num_elites=1)
    state = model.init(jax.random.PRNGKey(0))
    new = Normalizer(jnp.full(3, 5.0), jnp.full(3, 100.0))
    moved = rebase(model, state, new, Normalizer.identity(2))
    for a, b in zip(jax.tree.leaves(moved.params), jax.tree.leaves(state.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(moved.input_norm.std), 100.0)
