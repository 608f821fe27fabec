"""GPU timings (issue 21): PETS plans on HalfCheetah-v5 and the parts of an MBPO epoch on Hopper-v5.

    python benchmarks/gpu.py                  # paper settings; on a GPU a few minutes
    python benchmarks/gpu.py --quick          # tiny sizes: runs anywhere (CPU too) in under a minute
    python benchmarks/gpu.py --plans 20 --out /tmp/gpu.json

Prints the devices JAX placed the work on (``jax.devices()``) and their kind, then two tables, and
writes ``benchmarks/results/gpu_<device-kind>.json`` (``--out`` to put it elsewhere). Nothing here
is GPU-specific: with CUDA JAX installed (docs/gpu.md) JAX's default device is the GPU and every
array and jitted call below goes there; without it the same code runs on the CPU.

(a) PETS, one MPC step (:class:`mbrlax.agents.mpc.MPCAgent` ``act``: one jitted plan plus the
host round trip of the action) at ``pets_preset("HalfCheetah-v5")``: CEM population 500, 50 elites,
5 iterations, horizon 30, a probabilistic ensemble of 5 members of 4 x 200, TS-inf with 20
particles, random weights (speed does not depend on them). The first call is compiled and timed
apart; then ``--plans`` calls are timed interleaved with the matmul probe of ``common.py``
(``common.interleaved``), and the median seconds per plan and model FLOP/s as a fraction of the
matmul rate are reported. Model FLOPs count one member's forward pass per particle, step and CEM
iteration actually run, as ``benchmarks/planners.py`` does.

(b) MBPO, the parts of one epoch at ``mbpo_preset("Hopper-v5")`` (epoch of 1000 env steps, a model
fit and 100k branched rollouts every 250 steps, G = 20 SAC updates of batch 256 per env step),
measured by :func:`benchmarks.mbpo.phase_times` (the same code as the CPU benchmark, not a copy):
model fitting (a 20-epoch fit, from its fixed and per-epoch cost), model rollouts (k = 1 and the
schedule's final k = 15, as one jitted scan and as the naive per-step loop), SAC updates
(``update_many`` of G, and G separate calls) and env steps, combined into seconds per epoch.
One change to how it runs: fits that differ only in ``max_epochs`` share one compiled epoch
(:func:`_one_compile_per_trainer`), as every fit of a real run does, which saves the 4-epoch fit's
second compile (``phase_times`` warms that one up untimed, so it is not counted as training).

The matmul probe is a float32 ``N x N`` matmul at JAX's default precision (the precision the
models' matmuls use; on recent NVIDIA GPUs that allows TF32). N is 2048 on a CPU and 8192 on a
GPU, where a 2048 matmul takes well under a millisecond and mostly times the dispatch.

``--quick`` shrinks everything (population 20, 2 particles, horizon 5, 2 iterations, a 2 x 16
ensemble; MBPO with 16-unit networks, 64 rollouts of k = 1, 2000 real transitions, an
epoch of 20 steps) and has XLA compile without optimisations (``QUICK_XLA_FLAGS``), so
``tests/test_gpu_benchmark.py`` can run the script end to end on a CPU; its timings mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import sys
import time

# --quick checks that the script runs, not how fast: XLA then compiles without its optimisations
# (measured on 2 loaded CPU cores: 13 CPU-s for the whole run instead of 23, nearly all of it compiling).
# Set before JAX starts, so it is read from the command line here; main(["--quick"]) does not set it.
QUICK_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
if __name__ == "__main__" and "--quick" in sys.argv[1:]:
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {QUICK_XLA_FLAGS}".strip()

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (requests the host devices before JAX starts; a no-op for a GPU)

import jax  # noqa: E402
import numpy as np  # noqa: E402

import mbpo as mbpo_bench  # noqa: E402  (benchmarks/mbpo.py: its phase timings are reused as they are)
from mbrlax.agents.mpc import MPCAgent  # noqa: E402
from mbrlax.algorithms.mbpo import mbpo_preset  # noqa: E402
from mbrlax.algorithms.presets import pets_preset  # noqa: E402
from mbrlax.envs import get_task  # noqa: E402
from mbrlax.models import trainer  # noqa: E402

PETS_ENV = "HalfCheetah-v5"
MBPO_ENV = "Hopper-v5"


# ------------------------------------------------------------------------------------ the device
def device_info() -> dict:
    devices = jax.devices()
    return {"backend": jax.default_backend(), "kind": devices[0].device_kind, "devices": [str(d) for d in devices],
            "count": len(devices), "matmul_precision": str(jax.config.jax_default_matmul_precision or "default")}


def kind_slug(kind: str) -> str:
    """A device kind as a file-name part: 'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    return re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-") or "unknown"


# ------------------------------------------------------------------------------------ (a) PETS
def pets_config(quick: bool):
    cfg = pets_preset(PETS_ENV)
    if quick:
        cfg = dataclasses.replace(
            cfg, model=dataclasses.replace(cfg.model, hidden=16, depth=2),
            planner=dataclasses.replace(cfg.planner, population=20, elites=4, iterations=2, horizon=5),
            objective=dataclasses.replace(cfg.objective, num_particles=2))
    return cfg


def bench_pets(probe: common.MatmulProbe, plans: int, quick: bool) -> dict:
    cfg = pets_config(quick)
    task = get_task(PETS_ENV)
    model = cfg.model.build(task.obs_dim, task.act_dim, task=task)
    planner = cfg.planner.build(task.action_low, task.action_high)
    agent = MPCAgent(planner, model, task, cfg.objective, cfg.mpc, seed=0)
    agent.set_model(model.init(jax.random.PRNGKey(0)))
    obs = 0.1 * np.random.default_rng(0).standard_normal(task.obs_dim).astype(np.float32)
    t0 = time.perf_counter()
    agent.act(obs)  # compile
    first_s = time.perf_counter() - t0
    iters = int(agent.last_info["iterations"])
    particles = cfg.objective.num_particles
    flops = planner.population * particles * planner.horizon * iters * model.cfg.flops_per_sample()
    r = common.interleaved(probe, agent.act, (obs,), flops, repeats=plans)
    r.update(first_call_s=first_s, model_flops_per_plan=flops, iterations=iters, config=dict(
        env=PETS_ENV, planner=cfg.planner.name, population=planner.population, elites=cfg.planner.elites,
        iterations=cfg.planner.iterations, horizon=planner.horizon, propagation=cfg.objective.propagation,
        particles=particles, ensemble=model.cfg.ensemble_size, hidden=model.cfg.hidden, depth=model.cfg.depth))
    print(f"PETS {PETS_ENV}: {r['seconds']:.4f} s/plan (median of {plans}), "
          f"{r['fraction']:.1%} of the matmul rate; first call (compile + one plan) {first_s:.1f} s", flush=True)
    return r


# ------------------------------------------------------------------------------------ (b) MBPO
def mbpo_quick_config(env_id: str):
    cfg = mbpo_preset(env_id)
    return dataclasses.replace(
        cfg, epoch_length=20, model_train_freq=10, rollout_batch_size=64, updates_per_step=2,
        model=dataclasses.replace(cfg.model, hidden=16, depth=2),
        sac=dataclasses.replace(cfg.sac, hidden_sizes=(16, 16), batch_size=32))


@contextlib.contextmanager
def _preset(fn):
    """Make ``benchmarks/mbpo.py``'s ``phase_times`` build its settings with ``fn`` instead of the paper's."""
    saved = mbpo_bench.mbpo_preset
    mbpo_bench.mbpo_preset = fn
    try:
        yield
    finally:
        mbpo_bench.mbpo_preset = saved


@contextlib.contextmanager
def _one_compile_per_trainer():
    """Let fits that differ only in ``max_epochs`` share one compiled epoch, as the fits of a run do.

    ``phase_times`` derives the cost per fit epoch from a 1-epoch and a 4-epoch fit; the trainer
    compiles once per (model, TrainerConfig), so the 4-epoch fit compiled again and its compile
    time (seconds, against milliseconds per epoch on a GPU) was counted as 3 epochs of training.
    ``max_epochs`` only bounds the Python loop over epochs, never the compiled code.
    """
    saved = trainer._compiled
    trainer._compiled = lambda model, cfg: saved(model, dataclasses.replace(cfg, max_epochs=1))
    try:
        yield
    finally:
        trainer._compiled = saved


def bench_mbpo(quick: bool) -> dict:
    t0 = time.perf_counter()
    with _one_compile_per_trainer():
        if quick:
            with _preset(mbpo_quick_config):
                out = mbpo_bench.phase_times(MBPO_ENV, [1], repeats=1, real_size=2000)
        else:
            out = mbpo_bench.phase_times(MBPO_ENV, sorted({1, mbpo_bench.rollout_k_max(MBPO_ENV)}))
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    # the library's variant (jitted rollout scan, update_many) under the names of the epoch's parts
    out["epoch_parts_s"] = {
        key.split("/")[0]: {"model_fit": p["model"], "model_rollouts": p["rollout"], "sac_updates": p["policy"],
                            "env_steps": p["env"], "total": p["total"]}
        for key, p in out["epoch_s_assuming_20_fit_epochs"].items() if key.endswith("/fast")}
    return out


# ------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a CPU check of the script, not a benchmark)")
    ap.add_argument("--plans", type=int, default=None, help="timed plans after the warm-up (default 10; 3 with --quick)")
    ap.add_argument("--matmul-n", type=int, default=None,
                    help="size of the probe matmul (default 8192 on a GPU, 2048 on a CPU, 512 with --quick)")
    ap.add_argument("--skip-pets", action="store_true")
    ap.add_argument("--skip-mbpo", action="store_true")
    ap.add_argument("--out", default=None, help="result file (default benchmarks/results/gpu_<device-kind>.json)")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    dev = device_info()
    print(f"jax.devices(): {jax.devices()}")
    print(f"device kind: {dev['kind']} (backend {dev['backend']}, {dev['count']} device(s))", flush=True)
    if dev["backend"] == "cpu" and not args.quick:
        print("warning: JAX found no GPU; these are CPU timings (docs/gpu.md: installing JAX for a GPU)", flush=True)
    n = args.matmul_n or (512 if args.quick else 2048 if dev["backend"] == "cpu" else 8192)
    plans = args.plans or (3 if args.quick else 10)

    probe = common.MatmulProbe(n)
    matmul = probe.rates()
    print(f"matmul probe ({n} x {n} float32): " + ", ".join(f"{m} {common.fmt_rate(r)}" for m, r in matmul.items()),
          flush=True)
    payload = {"machine": common.machine_info(), "device": dev, "quick": args.quick,
               "matmul": {"n": n, "flops_per_s": matmul}}
    if not args.skip_pets:
        payload["pets"] = bench_pets(probe, plans, args.quick)
    if not args.skip_mbpo:
        payload["mbpo"] = bench_mbpo(args.quick)
    payload["machine"]["load_average_end"] = os.getloadavg()
    payload["seconds_total"] = round(time.perf_counter() - t_start, 1)

    path = args.out or os.path.join(common.RESULTS_DIR, f"gpu_{kind_slug(dev['kind'])}.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, default=float)

    title = f"{dev['kind']} ({dev['backend']}{', quick' if args.quick else ''}; load {os.getloadavg()[0]:.1f})"
    if "pets" in payload:
        r = payload["pets"]
        c = r["config"]
        common.print_table(
            f"PETS plan, {PETS_ENV}, on {title}",
            ["setting", "s/plan", "1st call s (compile+plan)", "model FLOP/s", "matmul FLOP/s", "of matmul"],
            [[f"CEM {c['population']} x {c['iterations']} it, H {c['horizon']}, {c['propagation']} "
              f"{c['particles']} particles, {c['ensemble']} x ({c['depth']} x {c['hidden']})",
              f"{r['seconds']:.4f}", f"{r['first_call_s']:.1f}", common.fmt_rate(r["flops_per_s"]),
              common.fmt_rate(r["matmul_flops_per_s"]), f"{r['fraction']:.1%}"]])
    if "mbpo" in payload:
        m = payload["mbpo"]
        rows = [[k, p["model_fit"], p["model_rollouts"], p["sac_updates"], p["env_steps"], p["total"]]
                for k, p in m["epoch_parts_s"].items()]
        common.print_table(
            f"MBPO epoch parts, {MBPO_ENV} ({m['epoch_length']} env steps, {m['fits_per_epoch']} fits of 20 epochs, "
            f"{m['rollout_batch_size']} rollouts per fit, G = {m['updates_per_step']}), seconds per epoch, on {title}",
            ["rollout k", "model fit", "model rollouts", "SAC updates", "env steps", "total"], rows)
    print(f"\nsaved {path} ({payload['seconds_total']:.0f} s)")
    return payload


if __name__ == "__main__":
    main()
