"""Test-wide settings: CPU JAX, quiet MuJoCo rendering backend, and a persistent XLA compilation cache.

The cache (``.cache/jax-tests``, git-ignored) lets a test reuse what an earlier test, or an earlier
run of the suite, compiled for the same computation: measured on tests/demos + test_sac.py, a
warm cache halves the wall time (122 s vs 295 s at load ~10); a cold one, as on CI's fresh clone,
still saves ~15 % because tests and the CLI subprocesses they start compile the same programs.
Compiled results are the same programs, so the numbers do not change (checked bitwise on the MPC
loop's resume test). ``MBRLAX_TEST_JAX_CACHE=0`` turns it off.
"""

import functools
import os
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MUJOCO_GL", "egl")
if os.environ.get("MBRLAX_TEST_JAX_CACHE", "1") != "0":
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "jax-tests"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")


@functools.lru_cache(maxsize=1)
def gl_problem() -> str | None:
    """Why no offscreen OpenGL context can be made here (``MUJOCO_GL``; mbrlax.envs sets egl), or None.

    Tests that render skip with this reason (``from conftest import gl_problem``)."""
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
        return f"no OpenGL context with MUJOCO_GL={backend} ({type(e).__name__}: {e}); install libegl1 libgl1-mesa-dri"
    return None
