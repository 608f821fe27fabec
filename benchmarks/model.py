"""Model speed (issues 2 and 3): ensemble training and rollout throughput against the matmul rate.

Run: ``.venv/bin/python benchmarks/model.py`` (about 1-2 minutes). Prints a table and writes
``benchmarks/results/model.json``.

What is measured, each timed interleaved with a jitted 2048^2 float32 matmul (the machine's
rate, see ``common.py``), medians over repeats:

- **training**: Adam steps on the full loss as ``fit`` runs them (``trainer._make_epoch_fn``:
  one jitted ``lax.scan`` over minibatches, each member on its own bootstrap indices), E = 7,
  4 x 200 SiLU, batch 256 per member, HalfCheetah dims (obs 17 + act 6 -> Gaussian over 17).
  FLOPs per step = 3 x forward (forward + backward) = 3 x 7 x 256 x ``flops_per_sample()``.
- **rollout**: ``simulator.rollout`` (one jitted ``lax.scan``) of 10,000 states x 30 steps with
  TS1 through all 7 members (padded to 10,003 particles; only the 10,000 count as work).
  FLOPs = 10,000 x 30 x ``flops_per_sample()`` (each transition is one member's forward).
- **memory**: ``ReplayBuffer(1_000_000, 18, 6).nbytes`` for HalfCheetah-v5 (obs 18 with the x).

Goal: training and rollout FLOP/s >= 50% of the matmul rate.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (requests the host devices before JAX starts)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from mbrlax.data.buffer import ReplayBuffer  # noqa: E402
from mbrlax.envs.task import Task  # noqa: E402
from mbrlax.models.dynamics import DynamicsModel  # noqa: E402
from mbrlax.models.ensemble import EnsembleConfig  # noqa: E402
from mbrlax.models.simulator import rollout  # noqa: E402
from mbrlax.models.trainer import TrainerConfig, _make_epoch_fn  # noqa: E402

OBS, ACT = 17, 6  # HalfCheetah (Gymnasium default layout: x excluded)
TARGET = 0.5


def half_cheetah_17() -> Task:
    """HalfCheetah's reward on the 17-d observation (x velocity is obs[8])."""
    return Task("HalfCheetah-17", OBS, ACT, -np.ones(ACT), np.ones(ACT),
                reward_fn=lambda o, a, n: n[..., 8] - 0.1 * jnp.sum(a ** 2, axis=-1))


def bench_training(probe, repeats: int, steps: int = 20) -> dict:
    cfg = EnsembleConfig(OBS, ACT, ensemble_size=7, hidden=200, depth=4, activation="silu")
    model = DynamicsModel(cfg, num_elites=5)
    state = model.init(jax.random.PRNGKey(0))
    tcfg = TrainerConfig(batch_size=256)
    optimizer = optax.adam(tcfg.learning_rate)
    epoch = _make_epoch_fn(model, tcfg, optimizer)
    n = tcfg.batch_size * steps
    keys = jax.random.split(jax.random.PRNGKey(1), 4)
    x = jax.random.normal(keys[0], (n, cfg.in_dim))
    y = jax.random.normal(keys[1], (n, cfg.gauss_dim))
    t = jnp.zeros(n)
    boot = jax.random.randint(keys[2], (cfg.ensemble_size, n), 0, n)
    opt_state = optimizer.init(state.params)

    def run(params, opt_state, key):
        return epoch(params, opt_state, key, x, y, t, boot, n)

    flops = steps * 3 * cfg.ensemble_size * tcfg.batch_size * cfg.flops_per_sample()
    r = common.interleaved(probe, run, (state.params, opt_state, keys[3]), flops, repeats)
    r.update(steps_per_call=steps, steps_per_s=steps / r["seconds"], flops_per_step=flops / steps,
             config=dict(ensemble=7, hidden=200, depth=4, batch=256, obs=OBS, act=ACT))
    return r


def bench_rollout(probe, repeats: int, n_states: int = 10_000, horizon: int = 30) -> dict:
    cfg = EnsembleConfig(OBS, ACT, ensemble_size=7, hidden=200, depth=4, activation="silu")
    model = DynamicsModel(cfg, num_elites=7)
    state = model.init(jax.random.PRNGKey(0))
    task = half_cheetah_17()
    keys = jax.random.split(jax.random.PRNGKey(2), 3)
    obs0 = 0.1 * jax.random.normal(keys[0], (n_states, OBS))
    actions = jax.random.uniform(keys[1], (n_states, horizon, ACT), minval=-1.0, maxval=1.0)

    @jax.jit
    def run(state, obs0, actions, key):
        return rollout(model, state, obs0, actions, key, task, "ts1").reward.sum()

    flops = n_states * horizon * cfg.flops_per_sample()
    r = common.interleaved(probe, run, (state, obs0, actions, keys[2]), flops, repeats)
    r.update(transitions_per_s=n_states * horizon / r["seconds"],
             config=dict(states=n_states, horizon=horizon, members=7, propagation="ts1"))
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    t0 = time.time()
    probe = common.MatmulProbe()
    train = bench_training(probe, args.repeats)
    roll = bench_rollout(probe, args.repeats)
    buf = ReplayBuffer(1_000_000, 18, 6)
    memory = {"transitions": 1_000_000, "obs_dim": 18, "act_dim": 6, "bytes": buf.nbytes,
              "megabytes": buf.nbytes / 1e6, "limit_megabytes": 400, "ok": buf.nbytes < 400e6}
    matmul = {"n": probe.n, "flops_per_s": float(np.median([train["matmul_flops_per_s"], roll["matmul_flops_per_s"]])),
              "by_mode": {m: float(np.median([train["matmul_by_mode"][m], roll["matmul_by_mode"][m]]))
                          for m in train["matmul_by_mode"]}}
    payload = {"machine": common.machine_info(), "matmul": matmul, "training": train, "rollout": roll,
               "memory": memory, "target_fraction": TARGET, "seconds_total": time.time() - t0}
    path = common.save("model.json", payload)

    rows = [
        ["matmul 2048^2 (best mode)", common.fmt_rate(matmul["flops_per_s"]), "",
         ", ".join(f"{m}: {v / 1e9:.1f}" for m, v in matmul["by_mode"].items()), "", ""],
        ["training (E7, 4x200, b256)", common.fmt_rate(train["flops_per_s"]), f"{train['fraction']:.0%}",
         f"{train['steps_per_s']:.1f} steps/s", f"{train['cpu_fraction']:.0%}",
         "ok" if train["fraction"] >= TARGET else "BELOW"],
        ["rollout (10k x 30, TS1, E7)", common.fmt_rate(roll["flops_per_s"]), f"{roll['fraction']:.0%}",
         f"{roll['transitions_per_s'] / 1e3:.0f}k transitions/s", f"{roll['cpu_fraction']:.0%}",
         "ok" if roll["fraction"] >= TARGET else "BELOW"],
        ["replay buffer 1M (HalfCheetah)", "", "", f"{memory['megabytes']:.0f} MB (< 400)", "",
         "ok" if memory["ok"] else "BELOW"],
    ]
    common.print_table(f"model speed ({len(jax.devices())} devices, load {os.getloadavg()[0]:.1f}; "
                       f"{time.time() - t0:.0f} s)",
                       ["workload", "FLOP/s", "of matmul", "throughput", "per CPU-s", "goal 50%"], rows)
    print(f"\nsaved {path}")


if __name__ == "__main__":
    main()
