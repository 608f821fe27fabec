"""Checkpoints: pytrees (model states, agent states) as one msgpack file each, written atomically,
and a training loop's checkpoint as a folder of such files behind one pointer.

Loading a pytree needs a ``target`` of the same structure (e.g. a freshly initialised state);
a corrupt or mismatched file raises :class:`~mbrlax.errors.DataError` naming the file.

A loop's checkpoint (:func:`save_checkpoint`) is ``OUT/ckpt/NAME/`` holding its pytrees, buffers
and ``loop.json``; only when every file is written does ``OUT/checkpoint.json`` (replaced
atomically) point at it, then older folders go. A run killed at any moment leaves the pointer on
a complete checkpoint (the previous one while a new one is being written). A run that starts over
in a used folder first removes the previous run's checkpoint (:func:`clear_checkpoint`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Protocol, TypeVar

import jax
import numpy as np
from flax import serialization

from mbrlax.errors import ConfigError, DataError
from mbrlax.utils.atomic import atomic_write

T = TypeVar("T")

POINTER = "checkpoint.json"
"""The file in a run folder that names its current checkpoint folder."""


def save_pytree(path: str | os.PathLike, tree: Any) -> None:
    """Write ``tree`` (arrays become NumPy) to ``path`` atomically."""
    host = jax.tree_util.tree_map(np.asarray, tree)
    data = serialization.to_bytes(host)
    atomic_write(path, lambda f: f.write(data))


def load_pytree(path: str | os.PathLike, target: T) -> T:
    """Read a pytree saved by :func:`save_pytree` into the structure of ``target``."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"checkpoint {path} is unreadable ({type(e).__name__}: {e})") from e
    try:
        restored = serialization.from_bytes(target, data)
    except Exception as e:  # msgpack/structure errors come in many types
        raise DataError(f"checkpoint {path} is corrupt or does not match the expected structure ({type(e).__name__}: {e})") from e
    for got, want in zip(jax.tree_util.tree_leaves(restored), jax.tree_util.tree_leaves(target)):
        if np.shape(got) != np.shape(want):
            raise DataError(f"checkpoint {path} has an array of shape {np.shape(got)} where {np.shape(want)} was expected")
    return jax.tree_util.tree_map(lambda x: jax.numpy.asarray(x), restored)


class _Saveable(Protocol):
    def save(self, path: str | os.PathLike) -> None: ...


def save_checkpoint(out: str | os.PathLike, name: str, loop: Mapping[str, Any], trees: Mapping[str, Any] = {},
                    files: Mapping[str, _Saveable] = {}, pointer: Mapping[str, Any] = {}) -> Path:
    """Write a loop's checkpoint ``OUT/ckpt/NAME/``, then point ``OUT/checkpoint.json`` at it.

    ``trees``: ``{file name: pytree}`` (:func:`save_pytree`); ``files``: ``{file name: object with
    .save(path)}`` (replay buffers); ``loop``: JSON counters and RNG states, as ``loop.json``;
    ``pointer``: extra JSON fields of ``checkpoint.json`` (e.g. the epoch, for a reader's eye).
    Returns the folder. A stale folder of the same name (from a write that was killed) is cleared
    first. The folder the pointer names is never written into: if it is ``ckpt/NAME`` itself, the
    new checkpoint goes to ``ckpt/NAME.new`` and the pointer moves there (nothing is raised).
    """
    out = Path(out)
    rel = Path("ckpt") / name
    current = _pointed_folder(out)
    if current is not None and current.resolve() == (out / rel).resolve():
        rel = Path("ckpt") / f"{name}.new"
    folder = out / rel
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for file, tree in trees.items():
        save_pytree(folder / file, tree)
    for file, obj in files.items():
        obj.save(folder / file)
    loop_json = json.dumps(loop).encode()
    atomic_write(folder / "loop.json", lambda f: f.write(loop_json))
    data = json.dumps({"path": rel.as_posix(), **pointer}).encode()
    atomic_write(out / POINTER, lambda f: f.write(data))
    for old in (out / "ckpt").iterdir():
        if old.name != rel.name:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def clear_checkpoint(out: str | os.PathLike) -> None:
    """Remove a previous run's checkpoint (``OUT/checkpoint.json``, then ``OUT/ckpt/``) from a run
    folder, so that neither this run's checkpoints nor a later ``resume`` meet it. Call it when a run
    starts without resuming, before it does any work; prints one line when it replaces a previous
    run's checkpoint or metrics."""
    out = Path(out)
    metrics = out / "metrics.csv"
    old = [name for name in (POINTER, "ckpt") if (out / name).exists()]
    if metrics.is_file() and len(metrics.read_bytes().splitlines()) > 1:  # a header and rows
        old.append("metrics.csv")
    if old:
        print(f"starting over in {out}: replacing the previous run's {', '.join(old)}")
    (out / POINTER).unlink(missing_ok=True)  # first: without the pointer the folder holds no checkpoint
    shutil.rmtree(out / "ckpt", ignore_errors=True)


def _pointed_folder(out: Path) -> Path | None:
    try:
        return out / json.loads((out / POINTER).read_text())["path"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_checkpoint(out: str | os.PathLike) -> tuple[Path, dict] | None:
    """``(folder, loop)`` of the checkpoint ``OUT/checkpoint.json`` points at, or None if there is no
    pointer; :class:`DataError` naming the file if the pointer or the folder's ``loop.json`` is
    unreadable. Read the folder's other files with :func:`load_pytree` and their own loaders."""
    out = Path(out)
    pointer = out / POINTER
    if not pointer.exists():
        return None
    try:
        rel = json.loads(pointer.read_text())["path"]
        if not isinstance(rel, str):
            raise TypeError(f"path is {rel!r}")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"checkpoint pointer {pointer} is unreadable ({type(e).__name__}: {e})") from e
    folder = out / rel
    try:
        loop = json.loads((folder / "loop.json").read_text())
        if not isinstance(loop, dict):
            raise TypeError("not a JSON object")
    except (OSError, ValueError, TypeError) as e:
        raise DataError(f"checkpoint file {folder / 'loop.json'} is unreadable ({type(e).__name__}: {e})") from e
    return folder, loop


def check_same_policy_input(saved: dict, policy_input: str, where: str) -> None:
    """Refuse to resume a learner whose checkpoint saw other observations (``saved["policy_input"]``).

    E.g. a run written before the policy saw the task's features would silently mix layouts.
    """
    if saved.get("policy_input") != policy_input:
        raise ConfigError(f"checkpoint in {where} was written with policy input "
                          f"{saved.get('policy_input', 'raw (unmarked)')}, this run's learner takes {policy_input}: "
                          "they cannot be mixed; start a new run folder")
