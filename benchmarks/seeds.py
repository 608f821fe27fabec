"""Seeds batched in one process (``train_sac_seeds``) against one seed and against seeds run one after another.

    python benchmarks/seeds.py                 # writes benchmarks/results/seeds.json
    python benchmarks/seeds.py --reps 1 --sizes small

SAC on Pendulum-v1, ``--steps`` env steps per seed (1000 random start steps, then one update per
step in calls of 50, evaluations of 5 episodes every 1000 steps), for two network sizes: the
paper's 2x256 with batch 256 ("paper") and 2x64 with batch 64 ("small"). Three variants, each
timed in a fresh process (so each pays its own compilation, as a command would), interleaved
A/B/C within every repeat with the rotation changing between repeats:

- ``one``: ``train_sac`` for seed 0;
- ``sequential``: ``train_sac`` for seeds 0..N-1 one after another in one process (compiled once);
- ``batched``: ``train_sac_seeds`` for the same N seeds (vmapped updates and acts).

Reported: wall seconds of the training call (medians over repeats), ``batched / one`` (the
target: <= 2.5) and ``sequential / batched``, with the 1-minute load average before each run.
The machine (2 cores) is shared with another benchmark, so timings drift; the medians and the
per-repeat ratios are what to read.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "seeds.json"
SIZES = {"paper": ((256, 256), 256), "small": ((64, 64), 64)}


def _child(variant: str, size: str, steps: int, seeds: int) -> None:
    """Run one variant in this process and print ``{"wall_s": ...}``."""
    from mbrlax.utils.sharding import request_host_devices

    request_host_devices()  # as the CLI does
    from mbrlax.agents.sac import SACConfig
    from mbrlax.algorithms.sac_seeds import train_sac_seeds
    from mbrlax.algorithms.sac_train import SACTrainConfig, train_sac

    hidden, batch = SIZES[size]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SACTrainConfig(env="Pendulum-v1", out=tmp, total_steps=steps, start_steps=1000, update_every=50,
                             eval_every=1000, eval_episodes=5, sac=SACConfig(hidden_sizes=hidden, batch_size=batch),
                             progress=False)
        t0 = time.perf_counter()
        if variant == "one":
            res = [train_sac(dataclasses.replace(cfg, out=f"{tmp}/one"))]
        elif variant == "sequential":
            res = [train_sac(dataclasses.replace(cfg, seed=s, out=f"{tmp}/seed{s}")) for s in range(seeds)]
        else:
            res = train_sac_seeds(cfg, tuple(range(seeds)))
        wall = time.perf_counter() - t0
    print(json.dumps({"wall_s": wall, "final_returns": [r["final_return"] for r in res]}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--sizes", nargs="+", default=list(SIZES))
    p.add_argument("--child", nargs=2, metavar=("VARIANT", "SIZE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return _child(args.child[0], args.child[1], args.steps, args.seeds)

    variants = ["one", "sequential", "batched"]
    runs: dict = {size: {v: [] for v in variants} for size in args.sizes}
    for rep in range(args.reps):
        order = variants[rep % 3:] + variants[:rep % 3]
        for size in args.sizes:
            for v in order:
                load = os.getloadavg()[0]
                out = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--seeds", str(args.seeds),
                                      "--child", v, size], capture_output=True, text=True, check=True)
                rec = json.loads(out.stdout.strip().splitlines()[-1])
                rec["load_1min_before"] = round(load, 2)
                runs[size][v].append(rec)
                print(f"rep {rep} {size:5s} {v:10s} {rec['wall_s']:7.1f} s  load {load:.2f}", flush=True)

    summary = {}
    for size, by in runs.items():
        med = {v: statistics.median(r["wall_s"] for r in by[v]) for v in variants}
        per_rep = [b["wall_s"] / o["wall_s"] for b, o in zip(by["batched"], by["one"])]
        summary[size] = {
            "hidden_sizes": SIZES[size][0], "batch_size": SIZES[size][1],
            "median_wall_s": {v: round(t, 2) for v, t in med.items()},
            "batched_over_one": round(med["batched"] / med["one"], 2),
            "batched_over_one_per_rep": [round(x, 2) for x in per_rep],
            "sequential_over_batched": round(med["sequential"] / med["batched"], 2),
            "runs": by,
        }
    data = {
        "env": "Pendulum-v1", "env_steps_per_seed": args.steps, "seeds": args.seeds, "reps": args.reps,
        "summary": summary,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "load_average_end": os.getloadavg(),
                    "note": "2 cores shared with a background benchmark: timings are noisy"},
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps({s: {k: v for k, v in d.items() if k != "runs"} for s, d in summary.items()}, indent=1))


if __name__ == "__main__":
    main()
