"""Pixel observations for any MuJoCo environment: camera frames instead of the state.

:class:`PixelObservation` wraps an env made with ``render_mode="rgb_array"`` and
``width = height = size`` and returns its offscreen frames, uint8 ``[size, size, 3 * frame_stack]``
(channels last; the newest frame in the last 3 channels). The true low-dimensional observation
stays in ``info["state"]``, for diagnostics (e.g. a linear probe of a latent) only: an agent
that reads it is no longer learning from pixels.

- ``frame_stack = k``: the last k frames, oldest first; after ``reset`` the first frame fills
  all k slots (as in DrQ and TD-MPC's pixel setups). One frame cannot show velocities; two or
  three can.
- ``action_repeat = n``: each action is applied n times and only the last state is rendered;
  the rewards of the repeats are summed, and the repeats stop at the first terminated or
  truncated step (``info["repeats"]`` says how many ran). PlaNet (Hafner et al. 2019) uses
  n = 2..8 on the DeepMind Control tasks.

Shadows are the main cost of offscreen rendering on CPU. Measured through this wrapper at 64x64
(``env.render`` only, 200 frames, on 2 CPU cores shared with other jobs, load 7-9), the scene's
``mjRND_SHADOW`` and ``mjRND_REFLECTION`` flags off against on: HalfCheetah-v5 56-87 frames/s
against 5-6 (10-15x). The cart-pole swing-up and InvertedPendulum-v5 cast no shadows, so the flags
change nothing there (~200-250 and ~500-630 frames/s; single runs varied 4x with the load).
``make_env``'s ``fast_render`` turns the model's shadows and reflections off as well; the wrapper
sets the scene flags (``fast=True``) so that an env made another way renders fast too.

Several pixel envs in one process (a training and an evaluation env) work: each render makes
its env's GL context current, and :meth:`PixelObservation.close` (also run when the wrapper is
garbage-collected) frees MuJoCo's GL objects in their own context. Without both, a collected
env freed them in another env's context and that env rendered black frames from then on.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium
import numpy as np
from gymnasium.spaces import Box

from mbrlax.errors import ConfigError

__all__ = ["PixelObservation", "make_pixel_env", "render_scene_flags_off"]


def render_scene_flags_off(env: gymnasium.Env, shadows: bool = False, reflections: bool = False) -> bool:
    """Turn the offscreen scene's shadow (and reflection) rendering off; True if it is a MuJoCo env.

    Sets ``mujoco.mjtRndFlag.mjRND_SHADOW`` / ``mjRND_REFLECTION`` on the ``rgb_array`` viewer's
    ``MjvScene`` (created here if it does not exist yet). A non-MuJoCo env is left alone (False).
    """
    renderer = getattr(env.unwrapped, "mujoco_renderer", None)
    if renderer is None:
        return False
    import mujoco

    viewer = renderer._get_viewer("rgb_array")  # noqa: SLF001  (gymnasium keeps one viewer per mode)
    viewer.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = int(shadows)
    viewer.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = int(reflections)
    return True


class PixelObservation(gymnasium.Wrapper):
    """Frames ``uint8 [size, size, 3 * frame_stack]`` as observations; the state in ``info["state"]``.

    Args:
        env: a Gymnasium env with ``render_mode == "rgb_array"`` rendering ``size x size`` frames
            (use :func:`make_pixel_env`, or ``make_env(id, render_mode="rgb_array", width=size,
            height=size)``).
        size: frame height and width in pixels.
        frame_stack: number k >= 1 of most recent frames in an observation.
        action_repeat: number n >= 1 of env steps per action (rewards summed, see module doc).
        fast: turn shadows and reflections off (see the module doc for the speed-up).

    Raises ConfigError if the env does not render ``rgb_array`` frames of that size.
    """

    def __init__(self, env: gymnasium.Env, size: int = 64, frame_stack: int = 1, action_repeat: int = 1,
                 fast: bool = True):
        super().__init__(env)
        for name, value in (("size", size), ("frame_stack", frame_stack), ("action_repeat", action_repeat)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"PixelObservation.{name} must be an integer >= 1, got {value!r}")
        if env.render_mode != "rgb_array":
            raise ConfigError(f"PixelObservation needs an env made with render_mode='rgb_array', got "
                              f"{env.render_mode!r} (use make_pixel_env)")
        self.size, self.frame_stack, self.action_repeat = int(size), int(frame_stack), int(action_repeat)
        renderer = getattr(env.unwrapped, "mujoco_renderer", None)
        self._viewer = renderer._get_viewer("rgb_array") if renderer is not None else None  # noqa: SLF001
        if fast:
            render_scene_flags_off(env)
        self.state_space = env.observation_space
        self.observation_space = Box(0, 255, (self.size, self.size, 3 * self.frame_stack), np.uint8)
        self._frames: deque[np.ndarray] = deque(maxlen=self.frame_stack)

    def _render(self) -> np.ndarray:
        if self._viewer is not None:
            # Gymnasium's offscreen viewer renders into whichever GL context is current: the one made
            # last, or none once another env's viewer was freed (then frames came out black).
            self._viewer.make_context_current()
        frame = self.env.render()
        if not isinstance(frame, np.ndarray) or frame.shape != (self.size, self.size, 3):
            shape = getattr(frame, "shape", type(frame).__name__)
            raise ConfigError(f"PixelObservation(size={self.size}): the env rendered {shape}, expected "
                              f"({self.size}, {self.size}, 3); make it with width=height={self.size}")
        return np.asarray(frame, np.uint8)

    def close(self) -> None:
        """Close the env, first freeing MuJoCo's GL objects inside this env's own GL context.

        Otherwise they are freed when Python collects the viewer, in whichever context is current
        then: another env's, whose framebuffer has the same GL ids, so it rendered black after.
        """
        viewer, self._viewer = getattr(self, "_viewer", None), None
        if viewer is not None and getattr(viewer, "con", None) is not None:
            viewer.make_context_current()
            viewer.con.free()
        super().close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001  (interpreter shutdown: nothing left to free)
            pass

    def _observation(self) -> np.ndarray:
        return np.concatenate(self._frames, axis=-1)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        state, info = self.env.reset(seed=seed, options=options)
        frame = self._render()
        self._frames.clear()
        self._frames.extend([frame] * self.frame_stack)
        return self._observation(), {**info, "state": np.asarray(state)}

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        total, terminated, truncated, info, repeats = 0.0, False, False, {}, 0
        state = None
        for _ in range(self.action_repeat):
            state, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            repeats += 1
            if terminated or truncated:
                break
        self._frames.append(self._render())
        return self._observation(), total, bool(terminated), bool(truncated), {
            **info, "state": np.asarray(state), "repeats": repeats}


def make_pixel_env(env_id: str, seed: int | None = None, size: int = 64, frame_stack: int = 1,
                   action_repeat: int = 1, **kwargs: Any) -> PixelObservation:
    """``make_env(env_id, seed, render_mode="rgb_array", width=size, height=size, **kwargs)`` seen
    through a :class:`PixelObservation` camera (ids, aliases and ``module:Id`` as in ``make_env``).

    ``kwargs`` go to ``make_env`` (e.g. ``default_camera_config`` or ``camera_id`` to choose the view).
    Raises ConfigError for an env that cannot render ``rgb_array`` frames.
    """
    from mbrlax.envs import make_env

    try:
        env = make_env(env_id, seed, render_mode="rgb_array", width=int(size), height=int(size), **kwargs)
    except ConfigError as e:
        if "'width'" not in str(e):
            raise
        raise ConfigError(f"{env_id} cannot render frames of a chosen size (its constructor takes no width and "
                          "height): pixel observations need a MuJoCo environment") from None
    try:
        return PixelObservation(env, size=size, frame_stack=frame_stack, action_repeat=action_repeat)
    except Exception:
        env.close()
        raise
