"""Helpers the loops share: host-device sharding, checkpoints, atomic writes, run logs, plots, video.

Names load on first use (PEP 562): the CLI imports :mod:`~mbrlax.utils.sharding` before JAX
starts, and must not pull in plotting or TensorBoard to do so.
"""

from mbrlax._lazy import lazy_exports

_EXPORTS = {
    "request_host_devices": ".sharding:request_host_devices",
    "device_count": ".sharding:device_count",
    "save_pytree": ".checkpoint:save_pytree",
    "load_pytree": ".checkpoint:load_pytree",
    "atomic_write": ".atomic:atomic_write",
    "RunLogger": ".run_logger:RunLogger",
    "plot_learning_curve": ".plots:plot_learning_curve",
    "save_video": ".video:save_video",
}

__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
