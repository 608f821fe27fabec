"""Environments and tasks: make any Gymnasium env, and for known ones their reward in JAX.

Importing this package registers ``mbrlax/CartpoleSwingup-v0`` with Gymnasium and, on
headless Linux, defaults ``MUJOCO_GL`` to ``egl`` (offscreen rendering on CPU via Mesa; needs
the Debian packages ``libegl1 libgl1-mesa-dri``) before MuJoCo is imported.
"""

import os as _os
import sys as _sys

if (
    _sys.platform.startswith("linux")
    and not _os.environ.get("DISPLAY")
    and not _os.environ.get("WAYLAND_DISPLAY")
):
    _os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as _gymnasium  # noqa: E402

from mbrlax.envs.cartpole_swingup import (  # noqa: E402
    CARTPOLE_SWINGUP_ID,
    MAX_EPISODE_STEPS as _CARTPOLE_STEPS,
    CartpoleSwingupEnv,
)

if CARTPOLE_SWINGUP_ID not in _gymnasium.registry:
    _gymnasium.register(
        id=CARTPOLE_SWINGUP_ID,
        entry_point="mbrlax.envs.cartpole_swingup:CartpoleSwingupEnv",
        max_episode_steps=_CARTPOLE_STEPS,
    )

from mbrlax.envs.registry import (  # noqa: E402
    ALIASES,
    KNOWN_ENVS,
    KnownEnv,
    action_bounds,
    get_task,
    known_env_ids,
    make_env,
    make_vector_env,
    resolve_env_id,
    true_next_obs,
)
from mbrlax.envs.task import Task, never_terminates  # noqa: E402
from mbrlax.envs.tasks import TASKS  # noqa: E402
from mbrlax.envs import lessons as _lessons  # noqa: E402,F401  (registers the maze and the cliff)
from mbrlax.envs import hand as _hand  # noqa: E402,F401  (registers Baoding and the hand cube)
from mbrlax.envs.pixels import PixelObservation, make_pixel_env  # noqa: E402

__all__ = [
    "ALIASES",
    "CARTPOLE_SWINGUP_ID",
    "KNOWN_ENVS",
    "TASKS",
    "CartpoleSwingupEnv",
    "KnownEnv",
    "PixelObservation",
    "Task",
    "action_bounds",
    "get_task",
    "known_env_ids",
    "make_env",
    "make_pixel_env",
    "make_vector_env",
    "never_terminates",
    "resolve_env_id",
    "true_next_obs",
]
