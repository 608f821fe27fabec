"""Seeds batched in one process (``train_sac_seeds``, ``mpc_seeds.run``) against one seed and against seeds run one after another.

    python benchmarks/seeds.py                 # both parts; writes benchmarks/results/seeds.json
    python benchmarks/seeds.py --part sac --reps 1 --sizes small
    python benchmarks/seeds.py --part pets     # only the PETS part (the SAC figures in the file are kept)
    python benchmarks/seeds.py --part mbpo     # only the MBPO part (the other parts' figures are kept)

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

MBPO (``--part mbpo``): ``mbrlax train mbpo``'s preset on Pendulum-v1 (the paper's networks: a 7-member
4x200 ensemble, SAC 2x256, batch 256) cut to a short budget, :data:`MBPO_SHORT`: 400 random steps, then
``--mbpo-epochs`` epochs of 200 steps with a fit and 4000 one-step rollouts every 100 steps and G = 5
updates per step. ``one`` (``mbpo.run`` for seed 0) against ``batched`` (``mbpo_seeds.run`` for seeds
0..N-1), each in a fresh process, alternated as PETS is; the split sums seed 0's ``time_*_s`` columns.

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
MBPO_ENV = "Pendulum-v1"
# the MBPO part's budget: mbpo_preset's networks and ratios, fewer and shorter epochs, smaller rollout batches
MBPO_SHORT = dict(init_steps=400, epoch_length=200, model_train_freq=100, rollout_batch_size=4000, updates_per_step=5,
                  eval_episodes=2)
MBPO_PHASES = ("env", "model", "rollout", "policy", "eval")


def _child(variant: str, size: str, steps: int, seeds: int, pets_iterations: int, mbpo_epochs: int) -> None:
    """Run one variant in this process and print ``{"wall_s": ...}``."""
    from mbrlax.utils.sharding import request_host_devices

    request_host_devices()  # as the CLI does
    if size == "pets":
        return _child_pets(variant, seeds, pets_iterations)
    if size == "mbpo":
        return _child_mbpo(variant, seeds, mbpo_epochs)
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
    from mbrlax.algorithms import mpc_loop, mpc_seeds

    cfg = dataclasses.replace(mpc_seeds.pets_light_seeds_preset(PETS_ENV), iterations=iterations, video=False,
                              seeds=tuple(range(seeds)))
    wall, res, rows = _time_variant(cfg, variant, mpc_loop.run, mpc_seeds.run)
    rows = [r for r in rows if r["policy"] == "mpc"]
    split = {c: round(sum(float(r[c]) for r in rows), 2) for c in ("fit_seconds", "episode_seconds")}
    split["plan_seconds_median"] = [round(float(r["plan_seconds_median"]), 4) for r in rows]
    print(json.dumps({"wall_s": wall, "final_returns": [r["final_return"] for r in res], **split}))


def _child_mbpo(variant: str, seeds: int, epochs: int) -> None:
    """One MBPO variant (:data:`MBPO_SHORT` on Pendulum-v1) in this process: print its wall time and phase split."""
    from mbrlax.algorithms import mbpo, mbpo_seeds

    cfg = dataclasses.replace(mbpo_seeds.mbpo_seeds_preset(MBPO_ENV), **MBPO_SHORT, epochs=epochs, progress=False,
                              seeds=tuple(range(seeds)))
    wall, res, rows = _time_variant(cfg, variant, mbpo.run, mbpo_seeds.run)
    split = {f"{p}_seconds": round(sum(float(r[f"time_{p}_s"]) for r in rows), 2) for p in MBPO_PHASES}
    print(json.dumps({"wall_s": wall, "final_returns": [r["final_return"] for r in res], **split}))


def _time_variant(cfg, variant: str, single_run, seeds_run) -> tuple[float, list, list[dict]]:
    """Run a seeds config in a temporary folder, seed 0 alone (``one``) or all batched: ``(wall seconds of the
    run call, results per seed, seed 0's metrics.csv rows)``."""
    import csv

    with tempfile.TemporaryDirectory() as tmp:
        cfg = dataclasses.replace(cfg, out=tmp)
        t0 = time.perf_counter()
        res = [single_run(cfg.single(0))] if variant == "one" else seeds_run(cfg)
        wall = time.perf_counter() - t0
        with open(Path(tmp) / "seed0" / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
    return wall, res, rows


def _run_child(args, variant: str, size: str) -> dict:
    load = os.getloadavg()[0]
    out = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--seeds", str(args.seeds),
                          "--pets-iterations", str(args.pets_iterations), "--mbpo-epochs", str(args.mbpo_epochs),
                          "--child", variant, size],
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
    p.add_argument("--part", choices=["sac", "pets", "mbpo", "all"], default="all")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--sizes", nargs="+", default=list(SIZES))
    p.add_argument("--pets-iterations", type=int, default=2, help="PETS: MPC episodes (200 steps) after the random one")
    p.add_argument("--mbpo-epochs", type=int, default=1, help="MBPO: epochs of 200 steps after the 400 random ones")
    p.add_argument("--child", nargs=2, metavar=("VARIANT", "SIZE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return _child(args.child[0], args.child[1], args.steps, args.seeds, args.pets_iterations, args.mbpo_epochs)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if args.part in ("sac", "all"):
        kept = {part: data[part] for part in ("pets", "mbpo") if part in data}  # the parts are timed separately
        data = {**_sac(args), **kept}
    if args.part in ("pets", "all"):
        data["pets"] = _pets(args)
    if args.part in ("mbpo", "all"):
        data["mbpo"] = _mbpo(args)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")


def _pets(args) -> dict:
    """The PETS part: one seed against N seeds batched."""
    return _one_vs_batched(args, "pets", ("fit_seconds", "episode_seconds"),
                           {"env": PETS_ENV, "preset": "pets_light_preset", "mpc_iterations": args.pets_iterations})


def _mbpo(args) -> dict:
    """The MBPO part: one seed against N seeds batched."""
    return _one_vs_batched(args, "mbpo", tuple(f"{p}_seconds" for p in MBPO_PHASES),
                           {"env": MBPO_ENV, "preset": "mbpo_preset", "settings": {**MBPO_SHORT, "epochs": args.mbpo_epochs}})


def _one_vs_batched(args, part: str, split: tuple[str, ...], settings: dict) -> dict:
    """One seed against N seeds batched for ``part`` (pets, mbpo), alternated A/B then B/A, each in a fresh
    process; the summary: ``settings``, the median wall times and ``split`` columns, and the ratios."""
    uptime_start = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    runs: dict = {"one": [], "batched": []}
    for rep in range(args.reps):
        for v in (["one", "batched"] if rep % 2 == 0 else ["batched", "one"]):
            rec = _run_child(args, v, part)
            runs[v].append(rec)
            parts = ", ".join(f"{c} {rec[c]}" for c in split)
            print(f"rep {rep} {part}  {v:10s} {rec['wall_s']:7.1f} s  ({parts})  load {rec['load_1min_before']:.2f}",
                  flush=True)
    med = {v: statistics.median(r["wall_s"] for r in by) for v, by in runs.items()}
    summary = {
        **settings, "seeds": args.seeds, "reps": args.reps,
        "median_wall_s": {v: round(t, 2) for v, t in med.items()},
        "median_split_s": {v: {c: statistics.median(r[c] for r in by) for c in split} for v, by in runs.items()},
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
