"""Split batched work across host devices (or GPUs) along one axis.

On a 2-core CPU, XLA drives ~1.2 cores on one device; with
``--xla_force_host_platform_device_count=2`` and the batch axis sharded across the two
devices, batched matmuls use both cores. With one device these functions do nothing.

How it is used: propagation marks the particle axis of its grouped layout with
:func:`shard_along` (measured 2x on a CEM plan on an idle machine: 0.51-0.63 of the matmul rate
against 0.25-0.30 on one device); XLA's SPMD partitioner propagates the split through the rest of the jitted
computation, including ``lax.scan`` bodies (checked in the compiled HLO: the per-step dots run on
``[M, B/M/2, ...]`` shards). Inputs need no ``device_put``: jit accepts unsharded arguments.
Under ``jit`` an axis that does not divide evenly is split unevenly (XLA pads the last shard):
before, 10,003 particles (10k states over 7 members) silently ran on one device. Training steps
are not split (see ``trainer``: one device was faster).
"""

from __future__ import annotations

import os

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

HOST_DEVICE_FLAG = "--xla_force_host_platform_device_count"


def request_host_devices(n: int | None = None) -> None:
    """Ask XLA for ``n`` CPU devices (default: one per core). Call before JAX is first used."""
    n = n or os.cpu_count() or 1
    flags = os.environ.get("XLA_FLAGS", "")
    if HOST_DEVICE_FLAG not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {HOST_DEVICE_FLAG}={n}".strip()


def _mesh() -> Mesh | None:
    devices = jax.devices()
    if len(devices) < 2:
        return None
    return Mesh(devices, ("batch",))


def shard_along(x: jax.Array, axis: int) -> jax.Array:
    """Constrain ``x`` to be split over all devices along ``axis``.

    Under ``jit`` an axis that does not divide evenly is split unevenly (XLA pads the last
    shard), so 10003 particles still use both devices; outside ``jit`` (where an array must
    split evenly) such an ``x`` is returned as it is. Axes shorter than the device count are
    never split.
    """
    mesh = _mesh()
    if mesh is None or x.ndim == 0 or x.shape[axis] < mesh.size:
        return x
    if x.shape[axis] % mesh.size and not isinstance(x, jax.core.Tracer):
        return x
    spec = [None] * x.ndim
    spec[axis] = "batch"
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, PartitionSpec(*spec)))


def device_count() -> int:
    return len(jax.devices())
