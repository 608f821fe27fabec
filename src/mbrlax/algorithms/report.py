"""``mbrlax report DIR... --out OUT``: run folders aggregated over seeds as papers report them.

Reads every run folder under the given directories (a folder with ``config.json`` and
``metrics.csv``, as every training command writes), groups them by environment (``config.json``'s
``env``) and method, and writes into OUT:

- ``summary.csv`` / ``summary.md``: per (env, method) the number of seeds, each seed's final score,
  and the mean and the interquartile mean (IQM) over seeds with 95 % stratified-bootstrap
  confidence intervals, computed by rliable (Agarwal et al. 2021, "Deep RL at the edge of the
  statistical precipice");
- ``curves_ENV.png``: per environment, each method's learning curve (IQM over seeds, each seed
  interpolated onto the steps any seed logged, within the range all cover) with its 95 % interval.

The final score of a run is its metric (``--metric``, default ``return``) in the last row that
has one. The method of a run is its folder's name with a trailing seed suffix removed
(``pets-seed3``, ``pets_s3`` -> ``pets``); a folder named only ``seed3`` takes its parent's name
(the layout ``DIR/METHOD/seed3``). Bootstrap resampling is seeded, so a report is reproducible.
"""

from __future__ import annotations

import csv
import json
import re
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tyro

from mbrlax.errors import ConfigError, DataError
from mbrlax.utils.validate import check_nonempty, check_range, check_seed, read_csv_rows

_SEED_SUFFIX = re.compile(r"[-_.]?(seed|s)[-_]?\d+$")


@dataclass(frozen=True)
class ReportConfig:
    """Aggregate run folders over seeds: IQM and mean with 95 % bootstrap intervals (rliable)."""

    dirs: tyro.conf.Positional[tuple[str, ...]] = ()
    """Run folders, or folders searched recursively for them."""
    out: str = "runs/report"
    """Output folder: summary.csv, summary.md, curves_ENV.png."""
    metric: str = "return"
    """Column of metrics.csv to aggregate (the final score is its last value)."""
    x: str = "env_steps"
    """Column of metrics.csv for the learning curves' x axis."""
    reps: int = 2000
    """Bootstrap resamples per confidence interval."""
    seed: int = 0
    """Seed of the bootstrap resampling."""

    def __post_init__(self):
        check_nonempty(self, "out", "metric", "x")
        check_seed(self)
        check_range(self, "reps", ge=100)


class Run(NamedTuple):
    path: Path
    env: str
    method: str
    seed: int | None
    steps: np.ndarray  # [T] x of each logged value
    values: np.ndarray  # [T] the metric


def method_name(run_dir: Path) -> str:
    """``DIR/pets-seed3`` -> ``pets``; ``DIR/pets/seed3`` -> ``pets``."""
    name = _SEED_SUFFIX.sub("", run_dir.name)
    return name if name else run_dir.parent.name


def find_runs(dirs: tuple[str, ...], metric: str, x: str) -> list[Run]:
    """Every run folder under ``dirs`` that logged ``metric``; folders without it are skipped."""
    runs = []
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            raise ConfigError(f"{d} is not a folder")
        for cfg_path in sorted([root / "config.json", *root.rglob("*/config.json")]):
            run_dir = cfg_path.parent
            if not cfg_path.exists() or not (run_dir / "metrics.csv").exists():
                continue
            try:
                config = json.loads(cfg_path.read_text())
            except ValueError as e:
                raise DataError(f"{cfg_path}: not valid JSON ({e})") from None
            rows = [r for r in read_csv_rows(run_dir / "metrics.csv") if _number(r.get(metric)) is not None]
            if not rows:
                continue
            steps = np.array([_first_number(r.get(x), i + 1) for i, r in enumerate(rows)])  # row number if no x
            runs.append(Run(run_dir, str(config.get("env", "?")), method_name(run_dir), config.get("seed"),
                            steps.astype(float), np.array([_number(r[metric]) for r in rows], float)))
    if not runs:
        raise ConfigError(f"no run folder (config.json + metrics.csv with a {metric!r} column) under "
                          + ", ".join(dirs))
    return runs


def _first_number(v, default: float) -> float:
    n = _number(v)
    return default if n is None else n


def _number(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def interval_estimates(scores: dict[str, np.ndarray], reps: int, seed: int) -> dict[str, dict[str, float]]:
    """Mean and IQM with 95 % stratified-bootstrap intervals (rliable) of ``scores[method] = [runs, tasks]``."""
    from rliable import library as rly
    from rliable import metrics

    def both(s: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_mean(s), metrics.aggregate_iqm(s)])

    with warnings.catch_warnings():  # arch's notice that RandomState will give way to Generator
        warnings.simplefilter("ignore", FutureWarning)
        point, interval = rly.get_interval_estimates(scores, both, reps=reps, random_state=np.random.RandomState(seed))
    return {m: {"mean": float(point[m][0]), "mean_low": float(interval[m][0, 0]), "mean_high": float(interval[m][1, 0]),
                "iqm": float(point[m][1]), "iqm_low": float(interval[m][0, 1]), "iqm_high": float(interval[m][1, 1])}
            for m in scores}


def curve_estimates(runs: list[Run], reps: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IQM over seeds along the steps, with its 95 % interval: ``(steps[K], iqm[K], ci[2, K])``.

    Seeds log at slightly different steps (an episode that ends early shifts every later count), so
    each seed's curve is interpolated linearly onto the union of all seeds' steps, within the range
    every seed covers."""
    from rliable import library as rly
    from rliable import metrics

    lo, hi = max(r.steps.min() for r in runs), min(r.steps.max() for r in runs)
    common = np.array(sorted({s for r in runs for s in r.steps.tolist() if lo <= s <= hi}))
    if not len(common):
        return np.zeros(0), np.zeros(0), np.zeros((2, 0))
    values = np.stack([np.interp(common, *_increasing(r.steps, r.values)) for r in runs])  # [seeds, K]

    def iqm_at_each_step(s: np.ndarray) -> np.ndarray:  # s: [seeds, 1, K]
        return np.array([metrics.aggregate_iqm(s[:, :, k]) for k in range(s.shape[-1])])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        point, interval = rly.get_interval_estimates({"m": values[:, None, :]}, iqm_at_each_step, reps=reps,
                                                     random_state=np.random.RandomState(seed))
    return np.array(common), point["m"], interval["m"]


def _increasing(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Steps sorted, the last value kept where a step repeats (a resumed run may log one twice)."""
    order = np.argsort(steps, kind="stable")
    steps, values = steps[order], values[order]
    last = np.r_[steps[1:] != steps[:-1], True]
    return steps[last], values[last]


def run(cfg: ReportConfig) -> dict:
    """Find the runs, aggregate them per (env, method), write the table and the curves."""
    try:
        import rliable  # noqa: F401
    except ImportError:
        raise ConfigError("mbrlax report needs rliable: pip install 'mbrlax[report]'") from None
    if not cfg.dirs:
        raise ConfigError("give at least one run folder: mbrlax report DIR... --out OUT")
    runs = find_runs(cfg.dirs, cfg.metric, cfg.x)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    groups: dict[str, dict[str, list[Run]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        groups[r.env][r.method].append(r)

    rows = []
    for env, methods in sorted(groups.items()):
        finals = {m: np.array([[r.values[-1]] for r in rs]) for m, rs in sorted(methods.items())}  # [seeds, 1]
        stats = interval_estimates(finals, cfg.reps, cfg.seed)
        for m, rs in sorted(methods.items()):
            rows.append({"env": env, "method": m, "seeds": len(rs), **{k: round(v, 4) for k, v in stats[m].items()},
                         "final_per_seed": " ".join(f"{r.values[-1]:.4g}" for r in sorted(rs, key=_seed_order)),
                         "runs": " ".join(str(r.path) for r in sorted(rs, key=_seed_order))})
        plot_curves(env, methods, cfg, out / f"curves_{_safe(env)}.png")

    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [f"| env | method | seeds | mean [95% CI] | IQM [95% CI] | final {cfg.metric} per seed |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['env']} | {r['method']} | {r['seeds']} | {r['mean']:.4g} [{r['mean_low']:.4g}, {r['mean_high']:.4g}] | "
              f"{r['iqm']:.4g} [{r['iqm_low']:.4g}, {r['iqm_high']:.4g}] | {r['final_per_seed']} |" for r in rows]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"report: {len(runs)} runs; wrote {out}/summary.csv, summary.md, curves_*.png")
    return {"rows": rows, "runs": len(runs)}


def _seed_order(r: Run):
    return (r.seed is None, r.seed if isinstance(r.seed, int) else 0, str(r.path))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def plot_curves(env: str, methods: dict[str, list[Run]], cfg: ReportConfig, path: Path) -> None:
    """Each method's IQM learning curve over seeds with its 95 % interval shaded."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, (m, rs) in enumerate(sorted(methods.items())):
        steps, iqm, ci = curve_estimates(rs, cfg.reps, cfg.seed)
        if len(steps):
            ax.plot(steps, iqm, "o-" if len(steps) < 30 else "-", ms=3, color=f"C{i}", label=f"{m} ({len(rs)} seeds)")
            ax.fill_between(steps, ci[0], ci[1], color=f"C{i}", alpha=0.2)
    ax.set_xlabel(cfg.x)
    ax.set_ylabel(f"{cfg.metric} (IQM over seeds, 95% CI)")
    ax.set_title(env)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
