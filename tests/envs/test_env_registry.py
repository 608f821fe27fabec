"""make_env / get_task / action_bounds / make_vector_env: ids, aliases, errors, autoreset."""

import gymnasium
import numpy as np
import pytest
from gymnasium.spaces import Box, Discrete

from mbrlax.envs import (
    CARTPOLE_SWINGUP_ID,
    action_bounds,
    get_task,
    known_env_ids,
    make_env,
    make_vector_env,
    resolve_env_id,
    true_next_obs,
)
from mbrlax.errors import ConfigError


class _UnboundedEnv(gymnasium.Env):
    """A one-step toy env whose actions have no bounds."""

    observation_space = Box(-1.0, 1.0, (2,), np.float32)
    action_space = Box(-np.inf, np.inf, (3,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, True, False, {}


_UNBOUNDED_ID = "mbrlax-test/Unbounded-v0"
if _UNBOUNDED_ID not in gymnasium.registry:
    gymnasium.register(_UNBOUNDED_ID, entry_point=_UnboundedEnv)


def test_known_ids_cover_the_brief():
    expected = {
        "HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "InvertedPendulum-v5",
        "InvertedDoublePendulum-v5", "Reacher-v5", "Pusher-v5", "Pendulum-v1",
        "MountainCarContinuous-v0", CARTPOLE_SWINGUP_ID,
    }
    assert expected <= set(known_env_ids())  # the lesson demos add their own envs (maze, cliff)


@pytest.mark.parametrize(
    "name, canonical",
    [
        ("cartpole-swingup", CARTPOLE_SWINGUP_ID),
        ("CartPole_SwingUp", CARTPOLE_SWINGUP_ID),
        ("halfcheetah", "HalfCheetah-v5"),
        ("walker", "Walker2d-v5"),
        ("halfcheetah-v5", "HalfCheetah-v5"),
        ("Swimmer-v5", "Swimmer-v5"),
    ],
)
def test_aliases_resolve(name, canonical):
    assert resolve_env_id(name) == canonical


def test_unknown_id_names_it_and_suggests_close_ids():
    with pytest.raises(ConfigError, match="HalfCheeta-v5") as e:
        make_env("HalfCheeta-v5")
    assert "HalfCheetah-v5" in str(e.value)
    with pytest.raises(ConfigError, match="unknown environment id"):
        get_task("NoSuchEnv-v0")
    with pytest.raises(ConfigError):
        make_env("")


def test_env_without_task_gets_none():
    assert get_task("Swimmer-v5") is None
    assert get_task("cartpole-swingup").env_id == CARTPOLE_SWINGUP_ID


def test_discrete_action_space_is_rejected():
    with pytest.raises(ConfigError, match="Discrete"):
        make_env("CartPole-v1")
    with pytest.raises(ConfigError, match="Box"):
        action_bounds(Discrete(3))


def test_unbounded_action_space_is_rejected():
    env = make_env(_UNBOUNDED_ID, seed=0)
    with pytest.raises(ConfigError, match="unbounded"):
        action_bounds(env)
    with pytest.raises(ConfigError, match=r"\[1\]"):
        action_bounds(Box(np.array([-1.0, -np.inf], np.float32), np.array([1.0, 1.0], np.float32)))


def test_action_bounds_of_a_known_env():
    low, high = action_bounds(make_env("Pusher-v5"))
    assert low.dtype == np.float32 and low.shape == (7,)
    np.testing.assert_array_equal(high, 2.0)


def test_seed_makes_resets_reproducible():
    a = make_env("Hopper-v5", seed=3)
    b = make_env("Hopper-v5", seed=3)
    np.testing.assert_array_equal(a.reset()[0], b.reset()[0])
    np.testing.assert_array_equal(a.action_space.sample(), b.action_space.sample())


def test_reward_changing_kwargs_warn():
    with pytest.warns(UserWarning, match="ctrl_cost_weight"):
        make_env("HalfCheetah-v5", ctrl_cost_weight=0.5)
    with pytest.raises(ConfigError, match="keyword"), pytest.warns(UserWarning, match="no_such_option"):
        make_env("Pendulum-v1", no_such_option=1)


def test_vector_env_same_step_autoreset_gives_true_final_obs():
    num_envs = 3
    venv = make_vector_env("InvertedPendulum-v5", num_envs, seed=1)
    assert venv.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.SAME_STEP
    task = get_task("InvertedPendulum-v5")
    obs, _ = venv.reset()
    ends = 0
    for _ in range(60):
        action = venv.action_space.sample()
        next_obs, reward, terminated, truncated, info = venv.step(action)
        s_next = true_next_obs(next_obs, terminated, truncated, info)
        np.testing.assert_array_equal(np.asarray(task.termination_fn(obs, action, s_next)), terminated)
        np.testing.assert_allclose(np.asarray(task.reward_fn(obs, action, s_next)), reward, atol=1e-6)
        ends += int(np.sum(terminated | truncated))
        obs = next_obs
    assert ends > 0
    with pytest.raises(ConfigError, match="num_envs"):
        make_vector_env("Pendulum-v1", 0)


def test_vector_env_seed_is_reproducible():
    a = make_vector_env("Pendulum-v1", 2, seed=5).reset()[0]
    b = make_vector_env("Pendulum-v1", 2, seed=5).reset()[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[0], a[1])
