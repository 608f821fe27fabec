"""The run folder every command writes: config.json, metrics.csv, TensorBoard events, plots.

One convention for every command: ``mbrlax COMMAND --env ID --seed N --out DIR``; DIR gets
``config.json`` (the full resolved configuration), ``metrics.csv`` (one row per episode or
epoch), TensorBoard events under ``tb/``, PNG plots, and for training commands a checkpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from mbrlax.utils.atomic import atomic_write
from mbrlax.utils.validate import read_csv_rows


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, NumPy values and paths as plain JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "item") and getattr(obj, "shape", None) == ():
        return obj.item()
    return obj


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


class RunLogger:
    """Writes metrics rows to ``metrics.csv`` (header grows as new keys appear) and TensorBoard.

    ``resume=True`` appends to an existing ``metrics.csv`` instead of starting it over;
    ``keep_rows=n`` then keeps only its first ``n`` rows (those a checkpoint covers: rows logged
    after it belong to work a killed run lost and will redo) and hides the TensorBoard events
    logged for the dropped rows (tensorboardX's ``purge_step`` at the first dropped row's step).
    """

    def __init__(self, out_dir: str | os.PathLike, config: Any = None, tensorboard: bool = True, resume: bool = False,
                 keep_rows: int | None = None, step_key: str = "env_steps"):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.out_dir / "metrics.csv"
        self._rows: list[dict[str, Any]] = []
        if resume and self.csv_path.exists():
            self._rows = read_csv_rows(self.csv_path)  # DataError naming the file if it is corrupt
        purge_step = None
        if keep_rows is not None and len(self._rows) > keep_rows:
            dropped, self._rows = self._rows[keep_rows:], self._rows[:keep_rows]
            purge_step = min(self._step(r, step_key, keep_rows + i + 1) for i, r in enumerate(dropped))
        if config is not None:
            config_json = to_jsonable(config)
            if resume:
                self._record_config_changes(config_json)
            with open(self.out_dir / "config.json", "w") as f:
                json.dump(config_json, f, indent=2, sort_keys=True)
        self._tb = None
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter

                # tensorboardX names the file by the second: a writer started in the same second as the
                # last one (a quick resume) would overwrite its events, so the name gets the nanoseconds too
                self._tb = SummaryWriter(str(self.out_dir / "tb"), purge_step=purge_step,
                                         filename_suffix=f".{time.time_ns()}")
            except ImportError:  # TensorBoard is optional; CSV is the record
                self._tb = None
        self._rewrite()

    def _record_config_changes(self, new: dict) -> None:
        """On resume, settings that differ from the saved ``config.json`` go to ``config_changes.jsonl``
        (with the number of rows logged before them) and to a warning, so a changed run leaves a trace."""
        path = self.out_dir / "config.json"
        if not path.exists():
            return
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):  # unreadable, not UTF-8 or not JSON: every setting counts as changed
            old = {}
        was, now = _flatten(old), _flatten(new)
        changes = {k: {"was": was.get(k, "(absent)"), "now": now.get(k, "(absent)")}
                   for k in sorted(set(was) | set(now)) if k != "resume" and was.get(k, "(absent)") != now.get(k, "(absent)")}
        if not changes:
            return
        with open(self.out_dir / "config_changes.jsonl", "a") as f:
            f.write(json.dumps({"after_rows": len(self._rows), "changes": changes}) + "\n")
        warnings.warn(f"resuming {self.out_dir} with changed settings (recorded in config_changes.jsonl): "
                      + ", ".join(f"{k}: {v['was']} -> {v['now']}" for k, v in changes.items()))

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Every row logged so far (including those read back on resume)."""
        return self._rows

    def log(self, row: Mapping[str, Any], step_key: str = "env_steps") -> None:
        """Append one row; numbers also go to TensorBoard at ``row[step_key]``."""
        row = {k: to_jsonable(v) for k, v in row.items()}
        self._rows.append(row)
        self._rewrite()
        if self._tb is not None:
            step = self._step(row, step_key, len(self._rows))
            for k, v in row.items():
                if isinstance(v, (int, float)) and k != step_key:
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()

    @staticmethod
    def _step(row: Mapping[str, Any], step_key: str, default: int) -> int:
        """TensorBoard step of a row: ``row[step_key]``, else its 1-based row number."""
        try:
            return int(float(row[step_key]))
        except (KeyError, TypeError, ValueError, OverflowError):  # absent, empty or garbled
            return default

    def _rewrite(self) -> None:
        keys: list[str] = []
        for r in self._rows:
            keys.extend(k for k in r if k not in keys)
        tmp = self.csv_path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self._rows)
        os.replace(tmp, self.csv_path)

    def write_json(self, name: str, data: Any) -> Path:
        """Write ``data`` as ``DIR/name`` (e.g. ``results.json``), atomically: a run killed meanwhile
        leaves the previous file or none, never half of one."""
        path = self.out_dir / name
        text = json.dumps(to_jsonable(data), indent=2)
        atomic_write(path, lambda f: f.write(text.encode()))
        return path

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
