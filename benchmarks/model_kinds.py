"""Held-out error of every model kind against the window length n, Gaussian vs multimodal heads (issue 19).

Run: ``.venv/bin/python benchmarks/model_kinds.py [--envs HalfCheetah-v5 Reacher-v5] [--quick]``.
Writes ``benchmarks/results/model_kinds.json`` (rows appended as they finish: an interrupted run
resumes where it stopped) and ``model_kinds.png``, and prints a table.

For each environment: random-policy data (``--transitions``, 4 envs) to train on and fresh
random-policy data (other seeds) to score on; for each kind (:mod:`mbrlax.models.kinds`) and n in
(1, 2, 5, 10, 20) (n = 1 only for inverse and joint; the multi-step inverse kinds at n = 1 are
``inverse``), one fit per head with the same trainer
(:func:`mbrlax.algorithms.fit_model.fit_kind`). Scores: held-out normalised MSE of the mean
prediction (1.0 = no better than the data's mean) and NLL per target dimension (normalised
units; lower is better; the flow head has none). Random actions make the multi-step inverse
targets genuinely spread (many action sequences reach s_t+n), which is where the heads differ.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax
import numpy as np

from mbrlax.algorithms.fit_model import fit_kind, random_data, window_lengths
from mbrlax.models.trainer import TrainerConfig

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
KIND_ORDER = ("inverse", "inverse-multistep", "inverse-sequence", "action-free", "interpolation", "joint")


def cpu_model() -> str:
    """The CPU's name (timings differ between the machines' Intel and AMD CPUs)."""
    try:
        return next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", nargs="+", default=["Reacher-v5", "HalfCheetah-v5"])
    ap.add_argument("--kinds", nargs="+", default=list(KIND_ORDER))
    ap.add_argument("--heads", nargs="+", default=["gaussian", "mixture"])
    ap.add_argument("--horizon", type=int, default=20)
    ap.add_argument("--transitions", type=int, default=10_000)
    ap.add_argument("--test-transitions", type=int, default=4_000)
    ap.add_argument("--max-epochs", type=int, default=40)
    ap.add_argument("--quick", action="store_true", help="a few hundred transitions, 2 epochs: checks the script runs")
    ap.add_argument("--out", default=os.path.join(RESULTS, "model_kinds.json"))
    args = ap.parse_args()
    if args.quick:
        args.transitions, args.test_transitions, args.max_epochs, args.horizon = 600, 300, 2, 2
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    done = json.load(open(args.out)) if os.path.exists(args.out) and not args.quick else {"rows": []}
    done.update(machine=cpu_model(), cpus=os.cpu_count())
    seen = {(r["env"], r["kind"], r["head"], r["n"]) for r in done["rows"]}
    trainer = TrainerConfig(max_epochs=args.max_epochs, patience=10, learning_rate=2e-3, progress=False)
    settings = dict(ensemble_size=3, num_elites=3, hidden=200, depth=3)
    for env_id in args.envs:
        train, test = random_data(env_id, args.transitions, 4, 0), random_data(env_id, args.test_transitions, 4, 10_000)
        D, A = train.obs_dim, train.act_dim
        for kind in args.kinds:
            heads = args.heads + (["flow"] if kind == "joint" and "flow" not in args.heads else [])
            for n in window_lengths(kind, args.horizon):
                if n == 1 and kind in ("inverse-multistep", "inverse-sequence"):
                    continue  # the same rows as "inverse"
                for head in heads:
                    if (env_id, kind, head, n) in seen:
                        continue
                    t0 = time.time()
                    _, _, scores = fit_kind(kind, D, A, n, train, test, jax.random.PRNGKey(n), trainer,
                                            head=head, **settings)
                    row = {"env": env_id, "kind": kind, "head": head, **scores, "load": os.getloadavg()[0],
                           "seconds": time.time() - t0}
                    done["rows"].append(row)
                    print(f"{env_id:15s} {kind:18s} n={n:>2} {head:9s} mse {row['mse']:.4f}  nll {row['nll']:7.3f}  "
                          f"({row['epochs']} ep, {row['seconds']:.0f}s, load {row['load']:.1f})", flush=True)
                    with open(args.out + ".tmp", "w") as f:
                        json.dump(done, f, indent=1)
                    os.replace(args.out + ".tmp", args.out)
    plot(done["rows"], args.out.replace(".json", ".png"))


def plot(rows: list[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({r["env"] for r in rows})
    kinds = [k for k in KIND_ORDER if any(r["kind"] == k for r in rows)]
    fig, axes = plt.subplots(len(envs), 2, figsize=(11, 3.6 * len(envs)), squeeze=False)
    for i, env in enumerate(envs):
        for j, metric in enumerate(("mse", "nll")):
            ax = axes[i, j]
            for c, kind in enumerate(kinds):
                for head, style in (("gaussian", "o-"), ("mixture", "s--"), ("flow", "^:")):
                    pts = sorted((r["n"], r[metric]) for r in rows if r["env"] == env and r["kind"] == kind
                                 and r["head"] == head and np.isfinite(r[metric]))
                    if pts:
                        ax.plot(*zip(*pts), style, color=f"C{c}", label=f"{kind} ({head})", ms=4)
            ax.set_xscale("log")
            ax.set_xlabel("window length n")
            ax.set_ylabel(f"held-out {metric.upper()} (normalised)")
            ax.set_title(env, fontsize=9)
            ax.grid(alpha=0.3)
    axes[0, 1].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
