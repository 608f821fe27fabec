"""An environment as a user writes it, in their own module (not shipped with mbrlax).

Importing this module registers ``UserBalance-v0``, so ``--env user_envs:UserBalance-v0`` reaches
it from the command line (with this folder on ``PYTHONPATH``), as Gymnasium's ``module:Id`` does.

UserBalance: balance a pole on a cart (the cart-pole dynamics of Barto et al. 1983, with a
continuous force). Reward 1 per step alive (an alive bonus: no shaping), the episode ends when the
pole passes 12 degrees or the cart leaves the track. Like much user code, its constructor takes no
``render_mode`` and it cannot render. No task in mbrlax knows it: reward and termination are learned.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Box

USER_BALANCE_ID = "UserBalance-v0"
MAX_EPISODE_STEPS = 100
ANGLE_LIMIT = 12 * 2 * np.pi / 360  # rad
X_LIMIT = 2.4


class UserBalanceEnv(gym.Env):
    """obs ``[x, theta, x_dot, theta_dot]``, action ``[force / 10]`` in [-1, 1]; reward 1 per step."""

    metadata = {"render_modes": []}

    def __init__(self):  # no render_mode: the MPC loop must run without its video
        high = np.array([2 * X_LIMIT, 2 * ANGLE_LIMIT, np.inf, np.inf], np.float32)
        self.observation_space = Box(-high, high, dtype=np.float32)
        self.action_space = Box(-1.0, 1.0, (1,), np.float32)
        self.state = np.zeros(4)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = self.np_random.uniform(-0.05, 0.05, 4)
        return self.state.astype(np.float32), {}

    def step(self, action):
        force = 10.0 * float(np.clip(np.asarray(action, np.float64).reshape(-1)[0], -1.0, 1.0))
        x, th, x_dot, th_dot = self.state
        gravity, m_cart, m_pole, half_len, tau = 9.8, 1.0, 0.1, 0.5, 0.02
        total = m_cart + m_pole
        cos, sin = np.cos(th), np.sin(th)
        temp = (force + m_pole * half_len * th_dot**2 * sin) / total
        th_acc = (gravity * sin - cos * temp) / (half_len * (4.0 / 3.0 - m_pole * cos**2 / total))
        x_acc = temp - m_pole * half_len * th_acc * cos / total
        x, x_dot = x + tau * x_dot, x_dot + tau * x_acc
        th, th_dot = th + tau * th_dot, th_dot + tau * th_acc
        self.state = np.array([x, th, x_dot, th_dot])
        terminated = bool(abs(x) > X_LIMIT or abs(th) > ANGLE_LIMIT)
        return self.state.astype(np.float32), 1.0, terminated, False, {}


if USER_BALANCE_ID not in gym.registry:
    gym.register(USER_BALANCE_ID, entry_point=UserBalanceEnv, max_episode_steps=MAX_EPISODE_STEPS)
