"""SAC speed and a full training run.

    python benchmarks/sac.py                                  # updates/s, HalfCheetah-sized dims
    python benchmarks/sac.py --env HalfCheetah-v5 --steps 100000   # full training run

The speed mode times ``SAC.update_many`` (2x256 networks, batch 256, obs 18 as make_env("HalfCheetah-v5") gives, act 6) for several
scan lengths ``G`` (G=1 is one dispatch per update, as a naive 1:1 loop would do), then, for the
largest G, its FLOP/s (XLA's count of one update) as a fraction of the machine's matmul rate timed
alternately with it (``common.interleaved``); it writes ``benchmarks/results/sac.json``. The training mode runs ``train_sac`` (settings below, after
Haarnoja et al. 2018b: 1 update per step; 5k random start steps as CleanRL and ``SACTrainConfig``,
which beat Spinning Up's 10k on all three HalfCheetah seeds tried: 6306/4936/4933 against
5543/4722/4651 at 100k) and records its summary in the same file under ``training[ENV]``
(``training["ENV seed N"]`` for seed N > 0, `` (LABEL)`` appended with ``--label``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mbrlax.agents.learner import TrainBatch
import mbrlax.agents.sac as sac_module
from mbrlax.agents.sac import SAC, SACConfig
from mbrlax.algorithms.sac_train import SACTrainConfig, train_sac

RESULTS = Path(__file__).parent / "results" / "sac.json"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/common.py, imported in speed mode


def _load() -> dict:
    try:
        return json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        return {}


def _save(data: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")


def _random_batches(rng: np.random.Generator, g: int, batch_size: int, obs_dim: int, act_dim: int) -> TrainBatch:
    """``[g, batch_size, ...]`` synthetic transitions (actions in [-1, 1], nothing terminated)."""
    return TrainBatch(
        jnp.asarray(rng.normal(size=(g, batch_size, obs_dim)), jnp.float32),
        jnp.asarray(rng.uniform(-1, 1, (g, batch_size, act_dim)), jnp.float32),
        jnp.asarray(rng.normal(size=(g, batch_size)), jnp.float32),
        jnp.asarray(rng.normal(size=(g, batch_size, obs_dim)), jnp.float32),
        jnp.zeros((g, batch_size), jnp.float32),
    )


def bench_updates(obs_dim: int, act_dim: int, scan_lengths: list[int], seconds: float, batch_size: int = 256) -> dict:
    """Updates per second of ``update_many`` for each scan length ``G`` (data already on device)."""
    sac = SAC(obs_dim, act_dim, -1.0, 1.0, SACConfig(batch_size=batch_size))
    state = sac.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    out = {}
    for g in scan_lengths:
        batches = _random_batches(rng, g, batch_size, obs_dim, act_dim)
        t0 = time.perf_counter()
        state, m = sac.update_many(state, batches, jax.random.PRNGKey(1))  # compile + first run
        jax.block_until_ready(m)
        compile_s = time.perf_counter() - t0
        calls, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds or calls < 2:
            state, m = sac.update_many(state, batches, jax.random.PRNGKey(calls))
            calls += 1
        jax.block_until_ready(state)
        dt = time.perf_counter() - t0
        out[str(g)] = {"updates_per_s": round(calls * g / dt, 1), "ms_per_update": round(1e3 * dt / (calls * g), 3),
                       "compile_s": round(compile_s, 2)}
        print(f"G={g:5d}: {calls * g / dt:8.1f} updates/s ({1e3 * dt / (calls * g):.2f} ms/update, compile {compile_s:.1f}s)")
    return out


def updates_vs_matmul(obs_dim: int, act_dim: int, g: int, batch_size: int = 256) -> dict:
    """One ``update_many`` call of ``g`` updates timed alternately with the reference matmul:
    FLOPs per update as XLA counts them, FLOP/s and the fraction of the matmul rate (medians)."""
    import common  # the matmul probe (the host devices were requested in main)

    sac = SAC(obs_dim, act_dim, -1.0, 1.0, SACConfig(batch_size=batch_size))
    state = sac.init(jax.random.PRNGKey(0))
    batches = _random_batches(np.random.default_rng(0), g, batch_size, obs_dim, act_dim)
    one = jax.tree.map(lambda x: x[0], batches)  # XLA counts a scan body once: lower a single update
    cost = sac_module._jit_update.lower(sac, state, one, jax.random.PRNGKey(0)).compile().cost_analysis()
    flops = (cost[0] if isinstance(cost, list) else cost)["flops"]
    res = common.interleaved(common.MatmulProbe(), lambda s, b: sac.update_many(s, b, jax.random.PRNGKey(1))[0],
                             (state, batches), flops * g, repeats=7)
    print(f"G={g}: {flops / 1e6:.0f} MFLOP per update, {res['flops_per_s'] / 1e9:.1f} GFLOP/s, "
          f"{res['fraction']:.2f} of the matmul rate ({res['matmul_flops_per_s'] / 1e9:.0f} GFLOP/s)")
    return {"mflop_per_update": round(flops / 1e6, 1), "updates_per_s": round(g / res["seconds"], 1),
            "flops_per_s": res["flops_per_s"], "matmul_flops_per_s": res["matmul_flops_per_s"],
            "fraction_of_matmul": round(res["fraction"], 3), "fractions": [round(f, 3) for f in res["fractions"]],
            "machine": common.machine_info()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default=None, help="run full training on this env instead of the speed benchmark")
    p.add_argument("--steps", type=int, default=100_000, help="env steps of the training run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run folder of the training run (default runs/bench_sac_ENV, _seedN appended for N > 0)")
    p.add_argument("--start-steps", type=int, default=SACTrainConfig.start_steps,
                   help="random steps before learning (CleanRL and SACTrainConfig: 5k; Spinning Up: 10k)")
    p.add_argument("--eval-every", type=int, default=5_000)
    p.add_argument("--label", default="", help="suffix of the results entry (keeps variants apart from the default runs)")
    p.add_argument("--obs-dim", type=int, default=18, help="speed mode: observation size (make_env(\"HalfCheetah-v5\"): 18)")
    p.add_argument("--act-dim", type=int, default=6, help="speed mode: action size (HalfCheetah-v5: 6)")
    p.add_argument("--scan", type=int, nargs="+", default=[1, 50, 250], help="speed mode: scan lengths G")
    p.add_argument("--seconds", type=float, default=5.0, help="speed mode: seconds timed per G")
    args = p.parse_args()
    if args.env is None:  # the matmul probe compares against both cores: ask for the host devices first
        from mbrlax.utils.sharding import request_host_devices
        request_host_devices()

    data = _load()
    meta = {"jax": jax.__version__, "device": str(jax.devices()[0]), "platform": platform.platform(),
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "cpu_count": os.cpu_count(), "load_avg_1min_at_start": round(os.getloadavg()[0], 2)}
    if args.env is None:
        print(f"SAC update_many, 2x256, batch 256, obs {args.obs_dim}, act {args.act_dim} on {jax.devices()[0]}")
        data["updates"] = {"obs_dim": args.obs_dim, "act_dim": args.act_dim, "hidden": [256, 256], "batch_size": 256,
                           "by_scan_length": bench_updates(args.obs_dim, args.act_dim, args.scan, args.seconds),
                           "vs_matmul": updates_vs_matmul(args.obs_dim, args.act_dim, max(args.scan)), **meta}
    else:
        config = SACTrainConfig(env=args.env, seed=args.seed, total_steps=args.steps,
                                start_steps=min(args.start_steps, args.steps), eval_every=args.eval_every,
                                eval_episodes=5, out=args.out or f"runs/bench_sac_{args.env}" + (f"_seed{args.seed}" if args.seed else ""))
        t0 = time.perf_counter()
        res = train_sac(config)
        wall = time.perf_counter() - t0
        print(f"{args.env}: {res['env_steps']} steps, final eval return {res['final_return']:.1f}, "
              f"best {res['best_return']:.1f}, {wall:.0f}s")
        key = (args.env if args.seed == 0 else f"{args.env} seed {args.seed}") + (f" ({args.label})" if args.label else "")
        data = _load()  # re-read: another seed's run may have written meanwhile
        data.setdefault("training", {})[key] = {**res, "wall_s": round(wall, 1), **meta}
    _save(data)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
