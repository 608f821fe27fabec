"""What the seeds-batched commands (``sac-seeds``, ``pets-seeds``, ``mbpo-seeds``) share: pytrees
stacked along a leading seed axis, and their configs mapped to and from the single commands'."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np


def stack(trees: list):
    """``N`` pytrees -> one pytree with a leading seed axis ``[N, ...]``, stacked on the host (no compiles)."""
    return jax.tree.map(lambda *xs: np.stack(xs), *jax.device_get(trees))


def stack_on_device(trees: list):
    """``N`` pytrees of device arrays -> one pytree ``[N, ...]`` stacked on the device (no host round trip)."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def unstack(tree, n: int) -> list:
    """A host pytree with a leading seed axis -> ``n`` pytrees."""
    return [jax.tree.map(lambda x: x[k], tree) for k in range(n)]


def seed_config(cfg, single_cls: type, seed: int):
    """Seed ``seed``'s run of the seeds-batched ``cfg`` as the single command's config ``single_cls``: the
    shared settings, ``seed`` and ``out=OUT/seed<seed>``."""
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(single_cls)}
    return single_cls(**{**fields, "seed": seed, "out": str(Path(cfg.out) / f"seed{seed}")})


def seeds_preset(single_cfg, seeds_cls: type):
    """A single command's preset ``single_cfg`` as the seeds-batched config ``seeds_cls`` (out: ``<its out>-seeds``)."""
    fields = {f.name: getattr(single_cfg, f.name) for f in dataclasses.fields(single_cfg) if f.name not in ("seed", "out")}
    return seeds_cls(**fields, out=f"{single_cfg.out}-seeds")
