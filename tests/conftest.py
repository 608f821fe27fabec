"""Test-wide settings: CPU JAX, quiet MuJoCo rendering backend, deterministic seeds in each test."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MUJOCO_GL", "egl")
