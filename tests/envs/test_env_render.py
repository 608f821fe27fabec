"""Offscreen rgb_array rendering of MuJoCo envs (EGL on headless Linux)."""


import numpy as np
import pytest
from conftest import gl_problem as _gl_problem

from mbrlax.envs import make_env




@pytest.mark.parametrize("env_id", ["cartpole-swingup", "HalfCheetah-v5", "baoding", "hand-cube"])
def test_rgb_array_render_returns_an_image(env_id):
    if _gl_problem():
        pytest.skip(_gl_problem())
    env = make_env(env_id, seed=0, render_mode="rgb_array", width=96, height=64)
    env.step(env.action_space.sample())
    frame = env.render()
    env.close()
    assert isinstance(frame, np.ndarray)
    assert frame.shape == (64, 96, 3) and frame.dtype == np.uint8 and frame.std() > 1.0  # not a blank frame
    assert frame.std() > 1.0, "the frame should not be blank"
