"""Seeds batched in one process (``train_sac_seeds``, ``mpc_seeds.run``) against one seed and against seeds run one after another.

    python benchmarks/seeds.py                 # both parts; writes benchmarks/results/seeds.json
    python benchmarks/seeds.py --part sac --reps 1 --sizes small
    python benchmarks/seeds.py --part pets     # only the PETS part (the SAC figures in the file are kept)

SAC on Pendulum-v1, ``--steps`` env steps per seed (1000 random start steps, then one update per
step in calls of 50, evaluations of 5 episodes every 1000 steps), for two network sizes: the
paper's 2x256 with batch 256 ("paper") and 2x64 with batch 64 ("small"). Three variants, each
timed in a fresh process (so each pays its own compilation, as a command would), interleaved
A/B/C within every repeat with the rotation changing between repeats:

- ``one``: ``train_sac`` for seed 0;
- ``sequential``: ``train_sac`` for seeds 0..N-1 one after another in one process (compiled once);
- ``batched``: ``train_sac_seeds`` for the same N seeds (vmapped updates and acts).

PETS (``--part pets``): ``mbrlax train pets``'s light preset on the cart-pole swing-up (one random
episode, then ``--pets-iterations`` fits and 200-step MPC episodes), no video. Two variants, each in
a fresh process, alternated A/B then B/A between repeats: ``one`` (``mpc_loop.run`` for seed 0) and
``batched`` (``mpc_seeds.run`` for seeds 0..N-1); N separate runs one after another cost N x ``one``
(each a command with its own compile), so ``sequential_estimate_over_batched`` is N x one / batched.
Each record splits the wall time into fits and episodes (seed 0's ``fit_seconds`` and
``episode_seconds`` summed from its metrics.csv; the batched run's are shared by its seeds).

Reported: wall seconds of the training call (medians over repeats), ``batched / one`` (the
target: <= 2.5) and ``sequential / batched``, with the 1-minute load average before each run, the
CPU model and ``uptime``. The machine (2 cores) is shared with other work, so timings drift; the
medians and the per-repeat ratios are what to read.
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
PETS_ENV = "cartpole-swingup"


def _child(variant: str, size: str, steps: int, seeds: int, pets_iterations: int) -> None:
    """Run one variant in this process and print ``{"wall_s": ...}``."""
    from mbrlax.utils.sharding import request_host_devices

    request_host_devices()  # as the CLI does
    if size == "pets":
        return _child_pets(variant, seeds, pets_iterations)
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


def _child_pets(variant: str, seeds: int, iterations: int) -> None:
    """One PETS variant (light preset, cart-pole swing-up) in this process: print its wall time and split."""
    import csv

    from mbrlax.algorithms import mpc_loop, mpc_seeds

    cfg = dataclasses.replace(mpc_seeds.pets_light_seeds_preset(PETS_ENV), iterations=iterations, video=False)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = dataclasses.replace(cfg, out=tmp, seeds=tuple(range(seeds)))
        t0 = time.perf_counter()
        res = [mpc_loop.run(cfg.single(0))] if variant == "one" else mpc_seeds.run(cfg)
        wall = time.perf_counter() - t0
        with open(Path(tmp) / "seed0" / "metrics.csv") as f:
            rows = [r for r in csv.DictReader(f) if r["policy"] == "mpc"]
    split = {c: round(sum(float(r[c]) for r in rows), 2) for c in ("fit_seconds", "episode_seconds")}
    split["plan_seconds_median"] = [round(float(r["plan_seconds_median"]), 4) for r in rows]
    print(json.dumps({"wall_s": wall, "final_returns": [r["final_return"] for r in res], **split}))


def _run_child(args, variant: str, size: str) -> dict:
    load = os.getloadavg()[0]
    out = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--seeds", str(args.seeds),
                          "--pets-iterations", str(args.pets_iterations), "--child", variant, size],
                         capture_output=True, text=True)
    if out.returncode != 0:  # show why the child failed (its traceback), then stop as check=True would
        print(f"child {variant} {size} failed (exit {out.returncode}); its stderr:\n{out.stderr}", file=sys.stderr, flush=True)
        out.check_returncode()
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    rec["load_1min_before"] = round(load, 2)
    return rec


def _machine() -> dict:
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
    return {"platform": platform.platform(), "cpu_model": model, "cpu_count": os.cpu_count(),
            "uptime_end": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
            "load_average_end": os.getloadavg(),
            "note": "2 cores shared with other work (background benchmarks paused while timing): timings are noisy"}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--part", choices=["sac", "pets", "all"], default="all")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--sizes", nargs="+", default=list(SIZES))
    p.add_argument("--pets-iterations", type=int, default=2, help="PETS: MPC episodes (200 steps) after the random one")
    p.add_argument("--child", nargs=2, metavar=("VARIANT", "SIZE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return _child(args.child[0], args.child[1], args.steps, args.seeds, args.pets_iterations)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if args.part in ("sac", "all"):
        pets = data.get("pets")  # kept: the parts are timed separately
        data = _sac(args)
        if pets is not None:
            data["pets"] = pets
    if args.part in ("pets", "all"):
        data["pets"] = _pets(args)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")


def _pets(args) -> dict:
    """The PETS part: one seed against N seeds batched, alternated, in fresh processes."""
    uptime_start = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    runs: dict = {"one": [], "batched": []}
    for rep in range(args.reps):
        for v in (["one", "batched"] if rep % 2 == 0 else ["batched", "one"]):
            rec = _run_child(args, v, "pets")
            runs[v].append(rec)
            print(f"rep {rep} pets  {v:10s} {rec['wall_s']:7.1f} s  (fits {rec['fit_seconds']} s, episodes "
                  f"{rec['episode_seconds']} s)  load {rec['load_1min_before']:.2f}", flush=True)
    med = {v: statistics.median(r["wall_s"] for r in by) for v, by in runs.items()}
    split = {v: {c: statistics.median(r[c] for r in by) for c in ("fit_seconds", "episode_seconds")}
             for v, by in runs.items()}
    summary = {
        "env": PETS_ENV, "preset": "pets_light_preset", "mpc_iterations": args.pets_iterations, "seeds": args.seeds,
        "reps": args.reps,
        "median_wall_s": {v: round(t, 2) for v, t in med.items()},
        "median_split_s": split,
        "batched_over_one": round(med["batched"] / med["one"], 2),
        "batched_over_one_per_rep": [round(b["wall_s"] / o["wall_s"], 2) for b, o in zip(runs["batched"], runs["one"])],
        "sequential_estimate_over_batched": round(args.seeds * med["one"] / med["batched"], 2),
        "runs": runs, "uptime_start": uptime_start, "machine": _machine(),
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=1))
    return summary


def _sac(args) -> dict:
    """The SAC part: one seed, N seeds one after another and N batched, per network size."""
    variants = ["one", "sequential", "batched"]
    runs: dict = {size: {v: [] for v in variants} for size in args.sizes}
    for rep in range(args.reps):
        order = variants[rep % 3:] + variants[:rep % 3]
        for size in args.sizes:
            for v in order:
                rec = _run_child(args, v, size)
                runs[size][v].append(rec)
                print(f"rep {rep} {size:5s} {v:10s} {rec['wall_s']:7.1f} s  load {rec['load_1min_before']:.2f}", flush=True)

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
    print(json.dumps({s: {k: v for k, v in d.items() if k != "runs"} for s, d in summary.items()}, indent=1))
    return {
        "env": "Pendulum-v1", "env_steps_per_seed": args.steps, "seeds": args.seeds, "reps": args.reps,
        "summary": summary, "machine": _machine(), "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }


if __name__ == "__main__":
    main()
