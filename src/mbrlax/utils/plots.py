"""Plots that runs leave behind (PNG, Agg backend so they work without a display)."""

from __future__ import annotations

import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_learning_curve(rows: Sequence[dict], path: str | os.PathLike, x: str = "env_steps", y: str = "return",
                        title: str = "") -> None:
    """Line plot of ``y`` against ``x`` from metrics rows (rows lacking either are skipped)."""
    pts = [(float(r[x]), float(r[y])) for r in rows if r.get(x) not in (None, "") and r.get(y) not in (None, "")]
    fig, ax = plt.subplots(figsize=(6, 4))
    if pts:
        xs, ys = np.array(pts).T
        ax.plot(xs, ys, marker="o", ms=3)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
