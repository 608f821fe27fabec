"""Plots that runs leave behind (PNG). Drawn on a bare ``matplotlib.figure.Figure``, not pyplot:
no display needed, no global backend switched, and matplotlib is imported only when a plot is made."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np


def plot_learning_curve(rows: Sequence[dict], path: str | os.PathLike, x: str = "env_steps", y: str = "return",
                        title: str = "", target: tuple[float, str] | None = None):
    """Plot ``y`` against ``x`` from metrics rows (rows lacking either are skipped).

    Rows with ``policy == "random"`` (the random-policy data an MPC loop starts from) are drawn as
    separate grey squares, the others as the learning curve; ``target=(value, label)`` adds a
    dashed horizontal line at ``value``, in the legend as "target: label" (the label names the
    number and its source, e.g. ``"≈ 4200 at 50k steps (PETS, Chua et al. 2018)"``).
    Returns the ``matplotlib.figure.Figure``, already saved.
    """
    from matplotlib.figure import Figure

    def points(keep) -> np.ndarray:
        pts = [(float(r[x]), float(r[y])) for r in rows
               if keep(r) and r.get(x) not in (None, "") and r.get(y) not in (None, "")]
        return np.array(pts, dtype=float).reshape(-1, 2)

    random_pts = points(lambda r: r.get("policy") == "random")
    learned = points(lambda r: r.get("policy") != "random")
    fig = Figure(figsize=(6.4, 4))
    ax = fig.subplots()
    if len(learned):
        label = "MPC episodes" if any(r.get("policy") == "mpc" for r in rows) else y.replace("_", " ")
        ax.plot(learned[:, 0], learned[:, 1], marker="o", ms=4, color="C0", label=label, zorder=3)
    if len(random_pts):
        ax.plot(random_pts[:, 0], random_pts[:, 1], ls="none", marker="s", ms=6, color="0.45",
                label="random-policy data", zorder=3)
    if target is not None:
        value, source = target
        ax.axhline(value, ls="--", lw=1.2, color="C3", label=f"target: {source}", zorder=2)
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(y.replace("_", " "))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0] and (len(random_pts) or target is not None):
        ax.legend(loc="best", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


def save_frame_strip(rows: dict[str, np.ndarray], path: str | os.PathLike, scale: int = 3) -> None:
    """Rows of frames side by side in one PNG, e.g. ``{"real": [T, H, W, 3], "imagined": [T, H, W, 3]}``
    (uint8), each row labelled, frames enlarged ``scale`` times (nearest) so small ones can be seen."""
    from matplotlib.figure import Figure

    names = list(rows)
    T = max(len(v) for v in rows.values())
    H, W = next(iter(rows.values())).shape[1:3]
    fig = Figure(figsize=(T * W * scale / 100 + 1.0, len(names) * H * scale / 100 + 0.4), dpi=100)
    for i, name in enumerate(names):
        ax = fig.add_subplot(len(names), 1, i + 1)
        strip = np.concatenate(list(rows[name]), axis=1)
        ax.imshow(np.repeat(np.repeat(strip, scale, axis=0), scale, axis=1), interpolation="nearest")
        ax.set_yticks([])
        ax.set_xticks([(t + 0.5) * W * scale for t in range(len(rows[name]))], [str(t) for t in range(len(rows[name]))])
        ax.set_ylabel(name)
    fig.tight_layout()
    fig.savefig(path)
