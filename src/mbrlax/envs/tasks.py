"""Rewards and terminations of the environments mbrlax knows, as pure batched JAX functions.

Every function takes ``obs[..., D], action[..., A], next_obs[..., D]`` and returns ``[...]``
(float reward or bool termination), broadcasting over any leading batch shape. The
observation layouts are the ones ``mbrlax.envs.make_env`` produces (see ``registry.py``),
which differ from the Gymnasium defaults where the default observation lacks something the
reward reads:

- HalfCheetah/Hopper/Walker2d/Ant-v5 keep the root x (and y) position
  (``exclude_current_positions_from_observation=False``).
- Ant-v5 appends the torso's ``xpos[:2]``, and InvertedDoublePendulum-v5 the tip site's
  ``(x, z)`` and the unclipped hinge velocities: those envs read body/site positions after
  ``mj_step``, which hold the kinematics of the last RK4 stage rather than of the final
  ``qpos`` (measured up to 0.066 in Ant's forward reward and 1.3e-4 in the pendulum tip
  height), so they cannot be recomputed from ``qpos`` exactly.

Each reward's docstring quotes the formula of the installed Gymnasium source file it mirrors
(gymnasium 1.x, ``gymnasium/envs/mujoco/*_v5.py`` and ``classic_control``). The tests in
``tests/envs`` check each against ``env.step`` on seeded random rollouts (float32 JAX).

Known, documented gaps (never hit in the tests' random rollouts):

- Hopper-v5's health check also requires the *unclipped* joint velocities to lie in
  (-100, 100); the observation clips them to [-10, 10], so that clause is invisible here.
- In float32, ``(x' - x) / dt`` loses about ``ulp(x) / dt`` (2e-5 at x = 10 for dt = 0.05);
  enable ``jax_enable_x64`` for long runs if this matters.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from mbrlax.envs.cartpole_swingup import (
    CARTPOLE_SWINGUP_ID,
    CTRL_COST_WEIGHT as _CP_CTRL,
    POLE_LENGTH as _CP_LEN,
    REWARD_LENGTH_SCALE as _CP_SCALE,
)
from mbrlax.envs.task import Task, never_terminates

__all__ = ["TASKS"]


def _sum_sq(x: jnp.ndarray) -> jnp.ndarray:
    """Sum of squares over the last axis: ``x[..., K] -> [...]``."""
    return jnp.sum(jnp.square(x), axis=-1)


def _norm(x: jnp.ndarray) -> jnp.ndarray:
    """Euclidean norm over the last axis with a finite gradient (zero) at the origin."""
    sq = _sum_sq(x)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def _inside(x: jnp.ndarray, low: float, high: float) -> jnp.ndarray:
    """Strictly inside the open interval ``(low, high)``; False for NaN."""
    return (x > low) & (x < high)


# --------------------------------------------------------------------------- HalfCheetah-v5
# obs (18): qpos[0:9] = [rootx, rootz, rooty, 6 joint angles], qvel[9:18]
HALF_CHEETAH_DT = 0.05  # frame_skip 5 * timestep 0.01


def half_cheetah_reward(obs, action, next_obs):
    """HalfCheetah-v5 ``_get_rew``: ``x_velocity - 0.1 * sum(action**2)``.

    ``x_velocity = (qpos[0]_after - qpos[0]_before) / dt`` with ``dt = 5 * 0.01``.
    """
    x_velocity = (next_obs[..., 0] - obs[..., 0]) / HALF_CHEETAH_DT
    return x_velocity - 0.1 * _sum_sq(action)


# --------------------------------------------------------------------------- Hopper-v5
# obs (12): qpos[0:6] = [rootx, rootz, rooty(angle), thigh, leg, foot], clip(qvel, -10, 10)[6:12]
HOPPER_DT = 0.008  # frame_skip 4 * timestep 0.002


def _hopper_healthy(next_obs):
    """Hopper-v5 ``is_healthy``: state_vector()[2:] in (-100, 100), z in (0.7, inf), angle in (-0.2, 0.2).

    ``state_vector()[2:]`` is ``qpos[2:]`` and the unclipped ``qvel``; we see the clipped one.
    """
    z, angle = next_obs[..., 1], next_obs[..., 2]
    state_ok = jnp.all(_inside(next_obs[..., 2:], -100.0, 100.0), axis=-1)
    return state_ok & _inside(z, 0.7, jnp.inf) & _inside(angle, -0.2, 0.2)


def hopper_reward(obs, action, next_obs):
    """Hopper-v5 ``_get_rew``: ``x_velocity + healthy_reward * is_healthy - 1e-3 * sum(action**2)``."""
    x_velocity = (next_obs[..., 0] - obs[..., 0]) / HOPPER_DT
    healthy = jnp.where(_hopper_healthy(next_obs), 1.0, 0.0)
    return x_velocity + healthy - 1e-3 * _sum_sq(action)


def hopper_termination(obs, action, next_obs):
    """Hopper-v5 ``step``: ``terminated = not is_healthy``."""
    return ~_hopper_healthy(next_obs)


# --------------------------------------------------------------------------- Walker2d-v5
# obs (18): qpos[0:9] = [rootx, rootz, rooty(angle), 6 joint angles], clip(qvel, -10, 10)[9:18]
WALKER2D_DT = 0.008  # frame_skip 4 * timestep 0.002


def _walker2d_healthy(next_obs):
    """Walker2d-v5 ``is_healthy``: z = qpos[1] in (0.8, 2.0) and angle = qpos[2] in (-1, 1)."""
    return _inside(next_obs[..., 1], 0.8, 2.0) & _inside(next_obs[..., 2], -1.0, 1.0)


def walker2d_reward(obs, action, next_obs):
    """Walker2d-v5 ``_get_rew``: ``x_velocity + healthy_reward * is_healthy - 1e-3 * sum(action**2)``."""
    x_velocity = (next_obs[..., 0] - obs[..., 0]) / WALKER2D_DT
    healthy = jnp.where(_walker2d_healthy(next_obs), 1.0, 0.0)
    return x_velocity + healthy - 1e-3 * _sum_sq(action)


def walker2d_termination(obs, action, next_obs):
    """Walker2d-v5 ``step``: ``terminated = not is_healthy``."""
    return ~_walker2d_healthy(next_obs)


# --------------------------------------------------------------------------- Ant-v5
# obs (109): qpos[0:15], qvel[15:29], clip(cfrc_ext[1:], -1, 1).ravel()[29:107],
#            torso xpos[:2] as left by mj_step [107:109] (appended by make_env)
ANT_DT = 0.05  # frame_skip 5 * timestep 0.01
ANT_NQ, ANT_NV = 15, 14
ANT_XY = slice(107, 109)


def _ant_healthy(next_obs):
    """Ant-v5 ``is_healthy``: ``isfinite(state_vector()).all() and 0.2 <= qpos[2] <= 1.0``."""
    state = next_obs[..., : ANT_NQ + ANT_NV]
    z = next_obs[..., 2]
    return jnp.all(jnp.isfinite(state), axis=-1) & (z >= 0.2) & (z <= 1.0)


def ant_reward(obs, action, next_obs):
    """Ant-v5 ``_get_rew``: ``x_velocity + is_healthy - 0.5 * sum(a**2) - 5e-4 * sum(clip(cfrc_ext, -1, 1)**2)``.

    ``x_velocity`` is the displacement of ``data.body(1).xpos[0]`` (torso) over ``dt = 5 * 0.01``;
    ``cfrc_ext[0]`` (the world body) is always zero, so the observed ``cfrc_ext[1:]`` suffice.
    """
    x_velocity = (next_obs[..., ANT_XY.start] - obs[..., ANT_XY.start]) / ANT_DT
    healthy = jnp.where(_ant_healthy(next_obs), 1.0, 0.0)
    contact_cost = 5e-4 * _sum_sq(next_obs[..., ANT_NQ + ANT_NV : ANT_XY.start])
    return x_velocity + healthy - 0.5 * _sum_sq(action) - contact_cost


def ant_termination(obs, action, next_obs):
    """Ant-v5 ``step``: ``terminated = not is_healthy``."""
    return ~_ant_healthy(next_obs)


# --------------------------------------------------------------------------- InvertedPendulum-v5
# obs (4): [cart x, pole angle, cart x_dot, pole angle_dot]


def inverted_pendulum_termination(obs, action, next_obs):
    """InvertedPendulum-v5 ``step``: ``not isfinite(obs).all() or abs(obs[1]) > 0.2``."""
    finite = jnp.all(jnp.isfinite(next_obs), axis=-1)
    return ~finite | (jnp.abs(next_obs[..., 1]) > 0.2)


def inverted_pendulum_reward(obs, action, next_obs):
    """InvertedPendulum-v5 ``step``: ``reward = int(not terminated)``."""
    return jnp.where(inverted_pendulum_termination(obs, action, next_obs), 0.0, 1.0)


# --------------------------------------------------------------------------- InvertedDoublePendulum-v5
# obs (13): [cart x, sin(q1), sin(q2), cos(q1), cos(q2), clip(qvel, -10, 10)(3),
#            clip(qfrc_constraint[0], -10, 10)] + appended [tip x, tip z, qvel[1], qvel[2]]
IDP_TIP_X, IDP_TIP_Z, IDP_V1, IDP_V2 = 9, 10, 11, 12


def inverted_double_pendulum_termination(obs, action, next_obs):
    """InvertedDoublePendulum-v5 ``step``: ``terminated = y <= 1`` with ``x, _, y = site_xpos[0]``."""
    return next_obs[..., IDP_TIP_Z] <= 1.0


def inverted_double_pendulum_reward(obs, action, next_obs):
    """InvertedDoublePendulum-v5 ``_get_rew``.

    ``10 * (not terminated) - (0.01 * x**2 + (y - 2)**2) - (1e-3 * v1**2 + 5e-3 * v2**2)``
    with ``(x, y)`` the tip site and ``v1, v2 = qvel[1:3]`` unclipped.
    """
    x, y = next_obs[..., IDP_TIP_X], next_obs[..., IDP_TIP_Z]
    v1, v2 = next_obs[..., IDP_V1], next_obs[..., IDP_V2]
    alive = jnp.where(y > 1.0, 1.0, 0.0)
    dist_penalty = 0.01 * x**2 + (y - 2.0) ** 2
    vel_penalty = 1e-3 * v1**2 + 5e-3 * v2**2
    return 10.0 * alive - dist_penalty - vel_penalty


# --------------------------------------------------------------------------- Reacher-v5
# obs (10): [cos q1, cos q2, sin q1, sin q2, target x, target y, q1_dot, q2_dot,
#            (fingertip - target)[x], (fingertip - target)[y]]


def reacher_reward(obs, action, next_obs):
    """Reacher-v5 ``_get_rew`` (after the step in v5): ``-||fingertip - target|| - sum(action**2)``.

    Both bodies sit at z = 0.01, so the planar ``next_obs[8:10]`` is the whole vector.
    """
    return -_norm(next_obs[..., 8:10]) - _sum_sq(action)


# --------------------------------------------------------------------------- Pusher-v5
# obs (23): qpos[:7], qvel[:7], tips_arm xyz [14:17], object xyz [17:20], goal xyz [20:23]


def pusher_reward(obs, action, next_obs):
    """Pusher-v5 ``_get_rew`` (after the step in v5).

    ``-0.5 * ||object - tips_arm|| - ||object - goal|| - 0.1 * sum(action**2)``.
    """
    tips, obj, goal = next_obs[..., 14:17], next_obs[..., 17:20], next_obs[..., 20:23]
    return -0.5 * _norm(obj - tips) - _norm(obj - goal) - 0.1 * _sum_sq(action)


# --------------------------------------------------------------------------- Pendulum-v1
# obs (3): [cos th, sin th, th_dot] (float32)


def pendulum_reward(obs, action, next_obs):
    """Pendulum-v1 ``step`` (cost of the state *before* the step).

    ``-(angle_normalize(th)**2 + 0.1 * thdot**2 + 0.001 * clip(u, -2, 2)**2)``.
    """
    th = jnp.arctan2(obs[..., 1], obs[..., 0])
    u = jnp.clip(action[..., 0], -2.0, 2.0)
    return -(th**2 + 0.1 * obs[..., 2] ** 2 + 0.001 * u**2)


# --------------------------------------------------------------------------- MountainCarContinuous-v0
# obs (2): [position, velocity] (float32)
_MC_GOAL_POSITION = np.float32(0.45)


def mountain_car_termination(obs, action, next_obs):
    """MountainCarContinuous-v0 ``step``: ``position >= 0.45 and velocity >= 0`` (float32 state)."""
    position = next_obs[..., 0].astype(jnp.float32)
    return (position >= _MC_GOAL_POSITION) & (next_obs[..., 1] >= 0)


def mountain_car_reward(obs, action, next_obs):
    """MountainCarContinuous-v0 ``step``: ``100 * terminated - 0.1 * action[0]**2`` (action unclipped)."""
    done = mountain_car_termination(obs, action, next_obs)
    return jnp.where(done, 100.0, 0.0) - 0.1 * action[..., 0] ** 2


# --------------------------------------------------------------------------- cart-pole swing-up
# obs (4): [cart x, pole angle (0 = upright, pi = hanging), x_dot, angle_dot]


def cartpole_swingup_reward(obs, action, next_obs):
    """PETS cart-pole swing-up (Chua et al. 2018; ``mbrlax.envs.cartpole_swingup``).

    ``exp(-||tip - (0, L)||**2 / L**2) - 0.01 * sum(action**2)`` at the new state, ``L = 0.6``,
    ``tip = (x + L sin(theta), L cos(theta))``.
    """
    x, theta = next_obs[..., 0], next_obs[..., 1]
    dx = x + _CP_LEN * jnp.sin(theta)
    dy = _CP_LEN * jnp.cos(theta) - _CP_LEN
    return jnp.exp(-(dx**2 + dy**2) / _CP_SCALE**2) - _CP_CTRL * _sum_sq(action)


# ------------------------------------------------------------- model-input features
# What a dynamics network should see: positions the dynamics do not depend on (the x of a
# runner, kept in the observation only so the reward can be computed) are dropped, and
# unwrapped angles become sin/cos (as the PETS code does for cart-pole and HalfCheetah).


def cartpole_features(obs):
    """``[x, sin θ, cos θ, ẋ, θ̇]`` from ``[x, θ, ẋ, θ̇]``."""
    return jnp.concatenate([obs[..., :1], jnp.sin(obs[..., 1:2]), jnp.cos(obs[..., 1:2]), obs[..., 2:]], axis=-1)


def half_cheetah_features(obs):
    """Drop the root x; the root pitch angle as sin/cos (18 -> 18)."""
    return jnp.concatenate([obs[..., 1:2], jnp.sin(obs[..., 2:3]), jnp.cos(obs[..., 2:3]), obs[..., 3:]], axis=-1)


def drop_root_x(obs):
    """Everything but the root x position (Hopper, Walker2d)."""
    return obs[..., 1:]


def ant_features(obs):
    """Drop the root (x, y) and the appended torso (x, y)."""
    return obs[..., 2:-2]


_FEATURES = {
    CARTPOLE_SWINGUP_ID: (cartpole_features, 5),
    "HalfCheetah-v5": (half_cheetah_features, 18),
    "Hopper-v5": (drop_root_x, 11),
    "Walker2d-v5": (drop_root_x, 17),
    "Ant-v5": (ant_features, 105),
}


# --------------------------------------------------------------------------- the table


def _task(env_id, obs_dim, act_dim, bound, reward_fn, termination_fn=never_terminates, steps=1000):
    low = np.full(act_dim, -bound, dtype=np.float32)
    high = np.full(act_dim, bound, dtype=np.float32)
    low.flags.writeable = False
    high.flags.writeable = False
    features, feature_dim = _FEATURES.get(env_id, (None, 0))
    return Task(env_id, obs_dim, act_dim, low, high, reward_fn, termination_fn, steps,
                obs_features=features, feature_dim=feature_dim,
                policy_features=features, policy_feature_dim=feature_dim)


TASKS: dict[str, Task] = {
    t.env_id: t
    for t in [
        _task("HalfCheetah-v5", 18, 6, 1.0, half_cheetah_reward),
        _task("Hopper-v5", 12, 3, 1.0, hopper_reward, hopper_termination),
        _task("Walker2d-v5", 18, 6, 1.0, walker2d_reward, walker2d_termination),
        _task("Ant-v5", 109, 8, 1.0, ant_reward, ant_termination),
        _task("InvertedPendulum-v5", 4, 1, 3.0, inverted_pendulum_reward, inverted_pendulum_termination),
        _task(
            "InvertedDoublePendulum-v5",
            13,
            1,
            1.0,
            inverted_double_pendulum_reward,
            inverted_double_pendulum_termination,
        ),
        _task("Reacher-v5", 10, 2, 1.0, reacher_reward, steps=50),
        _task("Pusher-v5", 23, 7, 2.0, pusher_reward, steps=100),
        _task("Pendulum-v1", 3, 1, 2.0, pendulum_reward, steps=200),
        _task(
            "MountainCarContinuous-v0", 2, 1, 1.0, mountain_car_reward, mountain_car_termination, steps=999
        ),
        _task(CARTPOLE_SWINGUP_ID, 4, 1, 3.0, cartpole_swingup_reward, steps=200),
    ]
}
"""Canonical Gymnasium id -> Task, for the observation layouts ``make_env`` produces."""
