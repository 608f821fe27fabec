"""Timing helpers shared by the benchmarks: the machine's matmul rate and interleaved timings.

The machine here is shared (2 cores, other jobs running), so absolute timings drift by 2x from
one minute to the next. Every benchmark therefore measures its workload *interleaved* with a
reference matmul: each repeat times the matmul and then the workload back to back, the
workload's FLOP/s is divided by the matmul rate of the same repeat, and we report medians over
repeats. The ratio is what the speed targets are about; the absolute numbers are context.

The reference is a jitted float32 ``2048 x 2048 @ 2048 x 2048`` (17.2 GFLOP), timed two ways:
on one device (XLA's own intra-op threads) and split by rows across all host devices
(``--xla_force_host_platform_device_count``, rows of A sharded, B replicated). The better of
the two in each repeat is the machine's rate.

Import this module before anything imports JAX's backend: it calls
:func:`mbrlax.utils.sharding.request_host_devices` at import.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

from mbrlax.utils.sharding import request_host_devices

request_host_devices()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: E402

MATMUL_N = 2048
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def block(x):
    return jax.block_until_ready(x)


def time_once(fn: Callable, *args) -> float:
    """Seconds for one call of ``fn(*args)``, waiting for the result."""
    return time_and_cpu(fn, *args)[0]


def time_and_cpu(fn: Callable, *args) -> tuple[float, float]:
    """Wall seconds and CPU seconds (all threads of this process) of one call of ``fn(*args)``."""
    c0, t0 = time.process_time(), time.perf_counter()
    block(fn(*args))
    return time.perf_counter() - t0, time.process_time() - c0


class MatmulProbe:
    """A jitted float32 ``N x N`` matmul on one device and sharded over all host devices."""

    def __init__(self, n: int = MATMUL_N):
        self.n = n
        self.flops = 2.0 * n ** 3
        k1, k2 = jax.random.split(jax.random.PRNGKey(0))
        a = jax.random.normal(k1, (n, n), jnp.float32)
        b = jax.random.normal(k2, (n, n), jnp.float32)
        self._fn = jax.jit(jnp.matmul)
        self._args = {"one device": (a, b)}
        devices = jax.devices()
        if len(devices) > 1 and n % len(devices) == 0:
            mesh = Mesh(devices, ("d",))
            self._args[f"{len(devices)} devices"] = (
                jax.device_put(a, NamedSharding(mesh, PartitionSpec("d", None))),
                jax.device_put(b, NamedSharding(mesh, PartitionSpec())))
        for args in self._args.values():  # compile and warm up
            block(self._fn(*args))

    def rates(self) -> dict[str, float]:
        """FLOP/s of one matmul in each mode (timed now)."""
        return {mode: self.flops / time_once(self._fn, *args) for mode, args in self._args.items()}

    def cpu_rate(self) -> float:
        """FLOPs per CPU-second of the one-device matmul (timed now)."""
        return self.flops / time_and_cpu(self._fn, *self._args["one device"])[1]


def interleaved(probe: MatmulProbe, fn: Callable, args: tuple, flops: float, repeats: int = 5,
                warmup: int = 1) -> dict:
    """Time ``fn(*args)`` (``flops`` of model work per call) alternating with the matmul probe.

    Returns medians: ``seconds`` per call, ``flops_per_s``, ``matmul_flops_per_s`` (best mode),
    ``fraction`` (per-repeat ratio of the two, then the median), plus the raw lists. Also the
    same per CPU-second (``cpu_flops_per_s``, ``matmul_cpu_flops_per_s``, ``cpu_fraction``):
    the work done per core-second, which contention from other processes barely changes; the
    wall-clock ``fraction`` also needs both cores busy, so it is the one the targets are about.
    """
    for _ in range(warmup):
        block(fn(*args))
    secs, cpus, mm, mm_cpu, mm_modes, frac = [], [], [], [], [], []
    for _ in range(repeats):
        rates = probe.rates()
        best = max(rates.values())
        mm_cpu.append(probe.cpu_rate())
        s, c = time_and_cpu(fn, *args)
        secs.append(s)
        cpus.append(c)
        mm.append(best)
        mm_modes.append(rates)
        frac.append(flops / s / best)
    med = statistics.median
    return {
        "seconds": med(secs),
        "flops_per_s": flops / med(secs),
        "matmul_flops_per_s": med(mm),
        "matmul_by_mode": {m: med([r[m] for r in mm_modes]) for m in mm_modes[0]},
        "fraction": med(frac),
        "cpu_flops_per_s": flops / med(cpus),
        "matmul_cpu_flops_per_s": med(mm_cpu),
        "cpu_fraction": flops / med(cpus) / med(mm_cpu),
        "fractions": frac,
        "seconds_all": secs,
        "repeats": repeats,
    }


def machine_info() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_average": os.getloadavg(),
    }


def save(name: str, payload: dict) -> str:
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, name)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, default=float)
    return path


def fmt_rate(x: float) -> str:
    return f"{x / 1e9:7.1f} GFLOP/s"


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(f"\n{title}")
    print(line.format(*header))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line.format(*(str(c) for c in r)))


def metrics_rows(out: str | Path) -> list[dict]:
    """A run folder's metrics.csv rows (as csv reads them: strings); [] before its first row is written."""
    path = Path(out) / "metrics.csv"
    if not path.is_file():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def round_robin(runs: list[tuple[Path, int, Callable[[int], object]]], chunk: int, after_chunk: Callable[[], None]) -> None:
    """Advance resumable MPC-style runs in turn, ``chunk`` MPC episodes at a time, until each has its budget,
    so that a benchmark stopped at any point has comparable curves. ``runs``: (run folder, MPC episodes
    wanted, ``start(iterations)`` that runs it, resuming, to that many); ``after_chunk`` after each turn."""
    advanced = True
    while advanced:
        advanced = False
        for out, budget, start in runs:
            done = sum(r["policy"] == "mpc" for r in metrics_rows(out))
            if done < budget:
                start(min(done + chunk, budget))
                advanced = True
                after_chunk()
