"""Checkpoints of pytrees (model states, agent states): one msgpack file, written atomically.

Loading needs a ``target`` pytree of the same structure (e.g. a freshly initialised state);
a corrupt or mismatched file raises :class:`~mbrlax.errors.DataError`.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

import jax
import numpy as np
from flax import serialization

from mbrlax.errors import ConfigError, DataError
from mbrlax.utils.atomic import atomic_write

T = TypeVar("T")


def save_pytree(path: str | os.PathLike, tree: Any) -> None:
    """Write ``tree`` (arrays become NumPy) to ``path`` atomically."""
    host = jax.tree_util.tree_map(np.asarray, tree)
    data = serialization.to_bytes(host)
    atomic_write(path, lambda f: f.write(data))


def load_pytree(path: str | os.PathLike, target: T) -> T:
    """Read a pytree saved by :func:`save_pytree` into the structure of ``target``."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        restored = serialization.from_bytes(target, data)
    except Exception as e:  # msgpack/structure errors come in many types
        raise DataError(f"checkpoint {path} is corrupt or does not match the expected structure ({type(e).__name__}: {e})") from e
    for got, want in zip(jax.tree_util.tree_leaves(restored), jax.tree_util.tree_leaves(target)):
        if np.shape(got) != np.shape(want):
            raise DataError(f"checkpoint {path} has an array of shape {np.shape(got)} where {np.shape(want)} was expected")
    return jax.tree_util.tree_map(lambda x: jax.numpy.asarray(x), restored)


def check_same_policy_input(saved: dict, policy_input: str, where: str) -> None:
    """Refuse to resume a learner whose checkpoint saw other observations (``saved["policy_input"]``).

    E.g. a run written before the policy saw the task's features would silently mix layouts.
    """
    if saved.get("policy_input") != policy_input:
        raise ConfigError(f"checkpoint in {where} was written with policy input "
                          f"{saved.get('policy_input', 'raw (unmarked)')}, this run's learner takes {policy_input}: "
                          "they cannot be mixed; start a new run folder")
