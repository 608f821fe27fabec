"""Offscreen rgb_array rendering of MuJoCo envs (EGL on headless Linux)."""

import functools
import os

import numpy as np
import pytest

from mbrlax.envs import make_env


@functools.lru_cache(maxsize=1)
def _gl_problem() -> str | None:
    """Why no offscreen OpenGL context can be made here, or None if one can."""
    backend = os.environ.get("MUJOCO_GL", "egl")
    try:
        if backend == "egl":
            from mujoco.egl import GLContext
        elif backend == "osmesa":
            from mujoco.osmesa import GLContext
        else:
            from mujoco.glfw import GLContext
        ctx = GLContext(16, 16)
        ctx.make_current()
        ctx.free()
    except Exception as e:  # noqa: BLE001 - any failure means "no GL here"
        return (
            f"no OpenGL context with MUJOCO_GL={backend} ({type(e).__name__}: {e}); "
            "install libegl1 libgl1-mesa-dri"
        )
    return None


@pytest.mark.parametrize("env_id", ["cartpole-swingup", "HalfCheetah-v5"])
def test_rgb_array_render_returns_an_image(env_id):
    if _gl_problem():
        pytest.skip(_gl_problem())
    env = make_env(env_id, seed=0, render_mode="rgb_array", width=96, height=64)
    env.step(env.action_space.sample())
    frame = env.render()
    env.close()
    assert isinstance(frame, np.ndarray)
    assert frame.shape == (64, 96, 3) and frame.dtype == np.uint8
    assert frame.std() > 1.0, "the frame should not be blank"
