"""Propagation semantics (TS1, TS∞, mean, expectation) and the differentiable rollout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrlax.envs.task import Task
from mbrlax.errors import ConfigError
from mbrlax.models.dynamics import DynamicsModel
from mbrlax.models.ensemble import EnsembleConfig
from mbrlax.models.propagation import propagate_step
from mbrlax.models.simulator import rollout


def constant_members(E=3, probabilistic=False, logvar=-20.0):
    """Member e adds e to the observation, whatever the input (weights zeroed, bias = e); a
    probabilistic model has log-variance ``logvar`` (clipped to the bounds; -20: std e^-5)."""
    model = DynamicsModel(EnsembleConfig(1, 1, ensemble_size=E, hidden=4, depth=1, probabilistic=probabilistic), num_elites=E)
    state = model.init(jax.random.PRNGKey(0))
    layers = [dict(l) for l in state.params["layers"]]
    layers[-1]["w"] = jnp.zeros_like(layers[-1]["w"])
    bias = jnp.zeros_like(layers[-1]["b"]).at[:, 0, 0].set(jnp.arange(E, dtype=jnp.float32))
    if probabilistic:
        bias = bias.at[:, 0, 1].set(logvar)
    layers[-1]["b"] = bias
    return model, state.replace(params={**state.params, "layers": layers})


def _steps(model, state, method, B=12, T=5):
    """``obs[B]`` after T steps from 0 (member e adds e per step), one key per step (one compile)."""
    def run(state):
        obs = jnp.zeros((B, 1))
        for t in range(T):
            obs = propagate_step(model, state, obs, jnp.zeros((B, 1)), jax.random.PRNGKey(t), method).next_obs
        return obs[:, 0]
    return np.asarray(jax.jit(run)(state))


def test_tsinf_keeps_each_particle_on_its_member():
    """TS∞: particle i stays with member i % M for the whole rollout, and is sampled (std 0.05 a step)."""
    model, state = constant_members(probabilistic=True, logvar=2 * np.log(0.05))
    x = _steps(model, state, "tsinf")
    own = 5.0 * (np.arange(12) % 3)  # 5 steps on member i % 3
    noise = x - own
    assert np.abs(noise).max() < 0.5, x  # TS1 would move particles across members: sums like 0+1+2+...
    assert 0.05 < noise.std() < 0.25, noise  # sampled: sqrt(5) x 0.05 ~ 0.11, not the mean
    assert len(set(np.round(noise, 6))) == 12  # each particle its own noise


def test_mean_keeps_each_particle_on_its_member_without_sampling():
    model, state = constant_members(probabilistic=True, logvar=2 * np.log(0.05))
    np.testing.assert_allclose(_steps(model, state, "mean"), 5.0 * (np.arange(12) % 3), atol=1e-5)


def test_ts1_resamples_members_every_step():
    model, state = constant_members()
    obs, act = jnp.zeros((30, 1)), jnp.zeros((30, 1))
    a = propagate_step(model, state, obs, act, jax.random.PRNGKey(1), "ts1").next_obs[:, 0]
    b = propagate_step(model, state, obs, act, jax.random.PRNGKey(2), "ts1").next_obs[:, 0]
    assert set(np.round(np.asarray(a), 3)) <= {0.0, 1.0, 2.0}
    assert np.bincount(np.asarray(a).round().astype(int)).tolist() == [10, 10, 10]  # each member gets B/M
    assert not np.array_equal(a, b)


def test_expectation_averages_members():
    model, state = constant_members()
    out = propagate_step(model, state, jnp.zeros((4, 1)), jnp.zeros((4, 1)), jax.random.PRNGKey(0), "expectation")
    np.testing.assert_allclose(out.next_obs[:, 0], 1.0, atol=1e-6)


def test_unknown_propagation_and_bad_particle_count():
    model, state = constant_members()
    with pytest.raises(ConfigError, match="unknown propagation"):
        propagate_step(model, state, jnp.zeros((3, 1)), jnp.zeros((3, 1)), jax.random.PRNGKey(0), "ts2")
    with pytest.raises(ConfigError, match="multiple"):
        propagate_step(model, state, jnp.zeros((4, 1)), jnp.zeros((4, 1)), jax.random.PRNGKey(0), "ts1")


def _task():
    return Task("toy", 1, 1, np.array([-1.0]), np.array([1.0]),
                reward_fn=lambda o, a, n: -(n[..., 0] ** 2) - 0.1 * a[..., 0] ** 2,
                termination_fn=lambda o, a, n: n[..., 0] > 3.5)


def test_rollout_pads_particles_and_stops_reward_after_termination():
    model, state = constant_members(probabilistic=True)
    traj = rollout(model, state, jnp.zeros((5, 1)), jnp.zeros((5, 4, 1)), jax.random.PRNGKey(0), _task(), "tsinf")
    assert traj.obs.shape == (5, 5, 1) and traj.reward.shape == (5, 4)
    # particle 2 (member 2: +2 per step) passes 3.5 at step 2 and then stays frozen, earning nothing
    np.testing.assert_allclose(traj.obs[2, :, 0], [0, 2, 4, 4, 4], atol=0.05)  # std >= e^-5 (min log-variance)
    assert traj.terminated[2].tolist() == [False, True, True, True]
    np.testing.assert_allclose(traj.reward[2, 2:], 0.0)


def test_rollout_is_differentiable_in_actions():
    model = DynamicsModel(EnsembleConfig(2, 1, ensemble_size=2, hidden=8, depth=2), num_elites=2)
    state = model.init(jax.random.PRNGKey(0))
    task = Task("toy2", 2, 1, np.array([-1.0]), np.array([1.0]), reward_fn=lambda o, a, n: -(n ** 2).sum(-1))
    def total(actions):
        return rollout(model, state, jnp.ones((4, 2)), actions, jax.random.PRNGKey(0), task, "ts1").reward.sum()
    g = jax.grad(total)(jnp.zeros((4, 6, 1)))
    assert g.shape == (4, 6, 1) and np.isfinite(np.asarray(g)).all() and np.abs(np.asarray(g)).sum() > 0
