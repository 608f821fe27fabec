"""Check functions for config dataclasses (called from their ``__post_init__``) and for run folders.

A failed check raises :class:`~mbrlax.errors.ConfigError` (or :class:`~mbrlax.errors.DataError`
for a file) in one line that names the setting as ``Class.field`` and says what is allowed, e.g.
``ModelConfig.num_elites must be <= ModelConfig.ensemble_size (5), got 9``; the CLI rewrites these
names into its flags (``--model.num-elites``), so the same message serves library and CLI users.
A number is any real number but a bool (NumPy scalars included); a field annotated ``int`` (or a
tuple of ints) needs an integer. :func:`check_range` also wants it finite: NaN and inf fail it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import numbers
import os
from pathlib import Path
from typing import Any, Iterable

from mbrlax.errors import ConfigError, DataError

MAX_SEED = 2**32 - 1


def setting(cfg: Any, field: str) -> str:
    """``Class.field``: how an error names a setting (the CLI turns it into ``--prefix.field``)."""
    return f"{type(cfg).__name__}.{field}"


def _show(v: Any) -> str:
    return repr(v) if isinstance(v, str) else str(v)


def _is_number(v: Any, integer: bool = False) -> bool:
    """A real number (NumPy's too), not a bool; with ``integer``, an integral one (int, NumPy ints)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return False
    return isinstance(v, numbers.Integral) if integer else True


def _wants_int(cfg: Any, field: str) -> bool:
    """Whether the dataclass field is annotated ``int`` or a tuple of ints."""
    f = next((f for f in dataclasses.fields(cfg) if f.name == field), None) if dataclasses.is_dataclass(cfg) else None
    if f is None:
        return False
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", None) or str(f.type)
    return kind == "int" or kind.replace(" ", "").startswith("tuple[int")


def check_range(cfg: Any, *fields: str, ge: float | None = None, gt: float | None = None,
                le: float | None = None, lt: float | None = None) -> None:
    """Each field (a number, or a tuple whose every entry is checked) is finite and within the bounds
    given; an integer if the field is annotated ``int`` (or a tuple of ints)."""
    lo, lo_open = (gt, True) if gt is not None else (ge, False)
    hi, hi_open = (lt, True) if lt is not None else (le, False)
    if lo is not None and hi is not None:
        rule = f"in {'(' if lo_open else '['}{_show(lo)}, {_show(hi)}{')' if hi_open else ']'}"
    else:
        rule = f"{'>' if lo_open else '>='} {_show(lo)}" if lo is not None else f"{'<' if hi_open else '<='} {_show(hi)}"
    for field in fields:
        value = getattr(cfg, field)
        entries = value if isinstance(value, tuple) else (value,)
        integer = _wants_int(cfg, field)
        for v in entries:
            ok = _is_number(v, integer) and math.isfinite(v)
            ok = ok and (lo is None or (v > lo if lo_open else v >= lo)) and (hi is None or (v < hi if hi_open else v <= hi))
            if not ok:
                what = "must have every entry" if isinstance(value, tuple) else "must be"
                kind = "an integer " if integer and not _is_number(v, integer=True) else ""
                finite = "finite and " if _is_number(v) and math.isinf(v) else ""
                raise ConfigError(f"{setting(cfg, field)} {what} {kind}{finite}{rule}, got {_show(value)}")


def check_finite(cfg: Any, *fields: str) -> None:
    """Each field (number or tuple of numbers) is finite (no NaN or inf)."""
    for field in fields:
        value = getattr(cfg, field)
        if value is None:
            continue
        if not all(_is_number(v) and math.isfinite(v) for v in (value if isinstance(value, tuple) else (value,))):
            raise ConfigError(f"{setting(cfg, field)} must be finite, got {_show(value)}")


def check_choice(cfg: Any, field: str, choices: Iterable[str]) -> None:
    """The field (a string, or a tuple of strings) is one of ``choices``."""
    choices = tuple(choices)
    value = getattr(cfg, field)
    for v in value if isinstance(value, tuple) else (value,):
        if v not in choices:
            raise ConfigError(f"{setting(cfg, field)} must be one of {', '.join(map(str, choices))}; got {_show(v)}")


def check_le(cfg: Any, field: str, other: str, strict: bool = False) -> None:
    """``cfg.field <= cfg.other`` (``<`` with ``strict``): a cross-field check."""
    v, o = getattr(cfg, field), getattr(cfg, other)
    if not (v < o if strict else v <= o):
        rule = "<" if strict else "<="
        raise ConfigError(f"{setting(cfg, field)} must be {rule} {setting(cfg, other)} ({_show(o)}), got {_show(v)}")


def check_nonempty(cfg: Any, *fields: str) -> None:
    """Each field is a non-empty string or path (an env id, an output folder)."""
    for field in fields:
        value = getattr(cfg, field)
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{setting(cfg, field)} must be a non-empty string, got {_show(value)}")


def check_seed(cfg: Any, field: str = "seed") -> None:
    """A seed Gymnasium, NumPy and JAX all accept: an integer in [0, 2**32 - 1]."""
    check_range(cfg, field, ge=0, le=MAX_SEED)


def check_seeds(cfg, field: str = "seeds") -> None:
    """``cfg.<field>`` (the seeds of a seeds-batched run: ``mbrlax train pets-seeds``/``sac-seeds``) is a
    non-empty tuple of distinct seeds, each one :func:`check_seed` accepts."""
    seeds = getattr(cfg, field)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"{setting(cfg, field)} must be distinct and non-empty, got {seeds}")
    check_seed(cfg, field)


def check_seeds_config(cfg, single_command: str) -> None:
    """A seeds-batched config (``mbrlax train pets-seeds``, ``sac-seeds``, ``mbpo-seeds``): its ``seeds`` made a tuple of ints
    and checked (:func:`check_seeds`), and ``resume`` refused with how to continue one seed instead."""
    object.__setattr__(cfg, "seeds", tuple(int(s) for s in cfg.seeds))
    check_seeds(cfg)
    if cfg.resume:
        raise ConfigError(f"{setting(cfg, 'resume')} is not supported: continue one seed with "
                          f"`{single_command} --seed K --out OUT/seedK --resume`")


def check_env(env_id: str) -> None:
    """Make the env once (and close it) so a rejected id or action space fails before a run writes anything.

    Raises ConfigError for an unknown id, a module that cannot be imported, a missing dependency, an
    action space that is not a bounded 1-D Box, or an observation space that is not a 1-D Box.
    """
    from gymnasium.spaces import Box

    from mbrlax.envs import action_bounds, make_env

    env = make_env(env_id)
    try:
        action_bounds(env)
        space = env.observation_space
        if not isinstance(space, Box) or len(space.shape) != 1:
            raise ConfigError(f"environment {env_id!r} has observation space {space}; mbrlax needs a 1-D Box")
    finally:
        env.close()


def check_writable_dir(out: str | os.PathLike) -> None:
    """ConfigError unless ``out`` is, or can be made as, a folder this process may write into."""
    path = Path(out).absolute()
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ConfigError(f"cannot write the run folder {out}: {folder} is not a folder")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise ConfigError(f"cannot write the run folder {out}: {folder} is not writable")
            return


def read_json(path: str | os.PathLike) -> Any:
    """The JSON value in ``path``; DataError naming the file if it is not valid UTF-8 JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path} is corrupt ({type(e).__name__}: {e}); delete it, or the run folder to start over") from e


def read_csv_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a CSV file with a header; DataError naming the file if it is not valid UTF-8 CSV."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [dict(r) for r in csv.DictReader(f)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path} is corrupt ({type(e).__name__}: {e}); delete it, or the run folder to start over") from e


def check_resume(out: str | os.PathLike, checkpoint: str | os.PathLike) -> bool:
    """Whether a ``--resume`` run in ``out`` continues (True) or starts fresh (False), given the
    file whose presence marks the command's checkpoint (relative to ``out``). The one resume check:
    the CLI calls it before a run, and the training loops when called with ``resume=True``.

    With a checkpoint, the marker (if JSON) and ``metrics.csv`` must be readable: DataError naming
    the corrupt file. Without one, a folder with logged rows in ``metrics.csv`` is a run that cannot
    be continued: ConfigError rather than overwrite it; a new or empty folder starts fresh with a
    one-line notice.
    """
    out = Path(out)
    metrics = out / "metrics.csv"
    rows = read_csv_rows(metrics) if metrics.is_file() else []
    if (out / checkpoint).exists():
        if str(checkpoint).endswith(".json"):
            read_json(out / checkpoint)
        return True
    if rows:
        old = (" (its checkpoint/ folder is from an earlier mbrlax, which cannot resume exactly)"
               if (out / "checkpoint" / "progress.json").exists() else "")
        raise ConfigError(f"cannot resume {out}: metrics.csv has {len(rows)} rows but there is no {checkpoint}{old}; "
                          "use another --out, or drop --resume to start over")
    print(f"mbrlax: nothing to resume in {out} (no checkpoint); starting a new run")
    return False
