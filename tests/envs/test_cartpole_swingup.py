"""The PETS cart-pole swing-up env: Gymnasium API, episode length, start state, reward."""

import warnings

import numpy as np
from gymnasium.utils.env_checker import check_env

from mbrlax.envs import CARTPOLE_SWINGUP_ID, get_task, make_env
from mbrlax.envs.cartpole_swingup import tip_position


def test_passes_gymnasium_env_checker():
    env = make_env("cartpole-swingup")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # [-3, 3] actions and infinite obs bounds are intended
        check_env(env.unwrapped, skip_render_check=True)


def test_episode_is_200_steps_and_never_terminates():
    env = make_env("cartpole-swingup", seed=0)
    assert env.spec.id == CARTPOLE_SWINGUP_ID
    obs, _ = env.reset()
    rewards = []
    for t in range(1, 201):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        rewards.append(reward)
        assert not terminated
        assert truncated == (t == 200)
    assert -0.09 - 1e-9 <= min(rewards) and max(rewards) <= 1.0


def test_starts_hanging_down_with_small_noise():
    env = make_env("cartpole-swingup", seed=1)
    starts = np.array([env.reset()[0] for _ in range(50)])
    assert np.all(np.abs(starts[:, 1] - np.pi) < 0.5)
    assert np.all(np.abs(starts[:, 0]) < 0.5)
    assert 0.03 < starts[:, 1].std() < 0.3


def test_tip_and_reward_conventions():
    env = make_env("cartpole-swingup", seed=2)
    sim = env.unwrapped
    for qpos in ([0.0, 0.0], [0.7, 0.4], [-1.0, np.pi], [0.2, -2.0]):
        sim.set_state(np.array(qpos), np.zeros(2))
        site = sim.data.site_xpos[0]
        np.testing.assert_allclose(tip_position(np.array(qpos + [0.0, 0.0])), site[[0, 2]], atol=1e-12)
    task = get_task("cartpole-swingup")
    upright = np.array([0.0, 0.0, 0.0, 0.0])
    hanging = np.array([0.0, np.pi, 0.0, 0.0])
    zero = np.zeros(1)
    assert abs(float(task.reward_fn(upright, zero, upright)) - 1.0) < 1e-6
    assert abs(float(task.reward_fn(upright, zero, hanging)) - np.exp(-1.44 / 0.36)) < 1e-6
    assert abs(float(task.reward_fn(upright, np.array([3.0]), upright)) - (1.0 - 0.09)) < 1e-6
