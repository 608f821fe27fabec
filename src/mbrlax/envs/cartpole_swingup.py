"""The PETS cart-pole swing-up (Chua et al. 2018) as a Gymnasium MuJoCo environment.

Registered as ``mbrlax/CartpoleSwingup-v0`` (alias ``"cartpole-swingup"``) when
``mbrlax.envs`` is imported; episodes are truncated after 200 steps (8 s at dt = 0.04).

- Observation ``[x, theta, x_dot, theta_dot]`` (float64): the raw MuJoCo state. ``theta = 0``
  is upright and ``theta = pi`` hangs down; the angle is not wrapped (feed sin/cos to models).
- Action: motor command in ``[-3, 3]`` (gear 100, so up to 300 N on the cart).
- Reward, from the state *after* the step as in the paper's code:
  ``exp(-||tip - (0, L)||^2 / L^2) - 0.01 * ||a||^2``, ``L = 0.6`` (so ``/ 0.36``),
  ``tip = (x + L sin(theta), L cos(theta))``; the action is not clipped in the cost.
- Reset: ``qpos = [0, pi] + N(0, 0.1^2)``, ``qvel = N(0, 0.1^2)`` (PETS perturbs both by 0.1).
- Never terminates.

The model file (``assets/cartpole_swingup.xml``) documents the physical constants.
"""

from __future__ import annotations

import os

import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco import MujocoEnv
from gymnasium.spaces import Box

CARTPOLE_SWINGUP_ID = "mbrlax/CartpoleSwingup-v0"
POLE_LENGTH = 0.6
REWARD_LENGTH_SCALE = 0.6  # the cost's length scale: exp(-d^2 / 0.6^2)
CTRL_COST_WEIGHT = 0.01
MAX_EPISODE_STEPS = 200
FRAME_SKIP = 2

_XML = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "cartpole_swingup.xml")
_CAMERA = {"distance": 5.0, "lookat": np.array([0.0, 0.0, 0.0]), "elevation": -5.0, "azimuth": 90.0}


def tip_position(obs: np.ndarray) -> np.ndarray:
    """Pole tip ``(x, z)`` of observations ``obs[..., 4] -> [..., 2]`` (NumPy)."""
    x, theta = obs[..., 0], obs[..., 1]
    return np.stack([x + POLE_LENGTH * np.sin(theta), POLE_LENGTH * np.cos(theta)], axis=-1)


class CartpoleSwingupEnv(MujocoEnv, utils.EzPickle):
    """PETS cart-pole swing-up; see the module docstring for spaces, reward and reset."""

    metadata = {
        "render_modes": ["human", "rgb_array", "depth_array", "rgbd_tuple"],
        "render_fps": 25,
    }

    def __init__(
        self,
        reset_noise_scale: float = 0.1,
        render_mode: str | None = None,
        width: int = 480,
        height: int = 480,
        default_camera_config: dict | None = None,
        **kwargs,
    ):
        utils.EzPickle.__init__(self, reset_noise_scale, render_mode, width, height, default_camera_config, **kwargs)
        self._reset_noise_scale = float(reset_noise_scale)
        observation_space = Box(low=-np.inf, high=np.inf, shape=(4,), dtype=np.float64)
        MujocoEnv.__init__(
            self,
            _XML,
            FRAME_SKIP,
            observation_space=observation_space,
            render_mode=render_mode,
            width=width,
            height=height,
            default_camera_config=_CAMERA if default_camera_config is None else default_camera_config,
            **kwargs,
        )

    def _get_obs(self) -> np.ndarray:
        return np.concatenate([self.data.qpos, self.data.qvel]).astype(np.float64)

    def step(self, action):
        action = np.asarray(action)
        self.do_simulation(action, self.frame_skip)
        obs = self._get_obs()
        tip = tip_position(obs)
        dist_sq = tip[0] ** 2 + (tip[1] - POLE_LENGTH) ** 2
        reward_tip = float(np.exp(-dist_sq / REWARD_LENGTH_SCALE**2))
        reward_ctrl = -CTRL_COST_WEIGHT * float(np.sum(np.square(action)))
        info = {"reward_tip": reward_tip, "reward_ctrl": reward_ctrl, "tip": tip}
        if self.render_mode == "human":
            self.render()
        return obs, reward_tip + reward_ctrl, False, False, info

    def reset_model(self) -> np.ndarray:
        noise = self._reset_noise_scale
        qpos = self.init_qpos + np.array([0.0, np.pi]) + self.np_random.normal(0.0, noise, self.model.nq)
        qvel = self.init_qvel + self.np_random.normal(0.0, noise, self.model.nv)
        self.set_state(qpos, qvel)
        return self._get_obs()
