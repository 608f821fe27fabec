"""Planner speed (issues 2 and 3): seconds per plan and model FLOP/s against the matmul rate.

Run: ``.venv/bin/python benchmarks/planners.py`` (about 2-3 minutes). Prints a table and writes
``benchmarks/results/planners.json``.

PETS-HalfCheetah scale: an ensemble of 5, 4 x 200 SiLU, obs 17 + act 6, horizon 30, one
particle per candidate, TS1, random weights (speed does not depend on them). Each planner is
one jitted ``plan`` call, timed interleaved with the 2048^2 matmul (``common.py``); medians
after a warm-up. Model FLOPs count one member's forward (``flops_per_sample()``) per particle
and step actually evaluated (padding excluded):

- CEM: population 500, 50 elites, 5 iterations (times the iterations actually run);
- iCEM: population 500, 50 elites, 5 iterations, its population decay and kept elites;
- MPPI: population 500, 5 iterations;
- gradient: 500 candidates x 5 Adam steps at the same scale (forward + backward = 3x forward,
  plus the final forward evaluation), and its defaults (16 candidates x 100 steps), which are
  latency-bound: 16 particles per step are too few to fill two cores.

PETS cart-pole (the presets in ``mbrlax.algorithms.presets``), cost per environment step of
the MPC agent (one plan, closed loop): the paper's settings (population 400, 20 particles,
horizon 25, 5 iterations, ensemble 5 x (3 x 200), TS-inf) and the light default (population
200, 5 particles, horizon 20, 4 iterations, 3 x 128).

PDDM on its hand tasks (issue 22; ``pddm_preset``, the paper's settings): 3 deterministic members
of 2 x 250, every candidate through all 3 (reward averaged), MPPI horizon 7, one iteration,
population 700 (Baoding) or 1000 (cube); cost per env step of the MPC agent, as for cart-pole.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (requests the host devices before JAX starts)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from mbrlax.agents.mpc import MPCAgent  # noqa: E402
from mbrlax.agents.objective import ObjectiveConfig, make_objective  # noqa: E402
from mbrlax.algorithms.presets import pddm_preset, pets_light_preset, pets_preset  # noqa: E402
from mbrlax.envs import get_task  # noqa: E402
from mbrlax.models.dynamics import DynamicsModel  # noqa: E402
from mbrlax.models.ensemble import EnsembleConfig  # noqa: E402
from mbrlax.planning import make_planner  # noqa: E402

OBS, ACT, H = 17, 6, 30
CARTPOLE = "cartpole-swingup"
TARGET = 0.5


def half_cheetah_setup():
    from model import half_cheetah_17

    cfg = EnsembleConfig(OBS, ACT, ensemble_size=5, hidden=200, depth=4, activation="silu")
    model = DynamicsModel(cfg, num_elites=5)
    state = model.elite_state(model.init(jax.random.PRNGKey(0)))
    task = half_cheetah_17()
    objective = make_objective(model, task, ObjectiveConfig(propagation="ts1", num_particles=1))
    obs = 0.1 * jax.random.normal(jax.random.PRNGKey(1), (OBS,))
    return cfg, state, objective, obs, task


def planner_cases(task) -> dict:
    """name -> (planner, repeats scale): the slow latency-bound default gradient planner gets fewer repeats."""
    low, high = task.action_low, task.action_high
    return {
        "CEM": (make_planner("cem", H, low, high, population=500, elites=50, iterations=5), 1.0),
        "iCEM": (make_planner("icem", H, low, high, population=500, elites=50, iterations=5), 1.0),
        "MPPI": (make_planner("mppi", H, low, high, population=500, iterations=5), 1.0),
        "gradient (500 x 5 steps)": (make_planner("grad", H, low, high, candidates=500, steps=5), 0.6),
        "gradient (defaults 16 x 100)": (make_planner("grad", H, low, high), 0.6),
    }


def forward_evaluations(name: str, planner, info: dict) -> float:
    """Forward-pass-equivalents of sequences evaluated in one plan (backward counts 2)."""
    kind = type(planner).__name__
    if kind == "CEM":
        return planner.population * int(info["iterations"])
    if kind == "ICEM":
        return sum(n + planner.n_keep for n in planner.populations)
    if kind == "MPPI":
        return planner.population * planner.iterations
    if kind == "GradientPlanner":
        return planner.candidates * (3 * planner.steps + 1)
    raise ValueError(name)


def bench_half_cheetah(probe, repeats: int) -> dict:
    cfg, state, objective, obs, task = half_cheetah_setup()
    out = {}
    for name, (planner, scale) in planner_cases(task).items():
        plan = jax.jit(lambda ps, ms, obs, key, planner=planner: planner.plan(ps, objective(ms, obs), key))
        pstate = planner.init(jax.random.PRNGKey(2))
        args = (pstate, state, obs, jax.random.PRNGKey(3))
        info = plan(*args)[2]
        flops = forward_evaluations(name, planner, info) * H * cfg.flops_per_sample()
        r = common.interleaved(probe, plan, args, flops, max(3, round(repeats * scale)))
        r.update(model_flops_per_plan=flops, iterations=int(info["iterations"]))
        out[name] = r
        print(f"  {name}: {r['seconds']:.3f} s/plan, {r['fraction']:.0%} of matmul", flush=True)
    return out


def mpc_step(probe, env: str, preset, repeats: int) -> dict:
    """Cost of one MPC agent step (one plan, closed loop) of ``preset`` on ``env``, against the matmul rate."""
    task = get_task(env)
    model = preset.model.build(task.obs_dim, task.act_dim, task=task)
    planner = preset.planner.build(task.action_low, task.action_high)
    agent = MPCAgent(planner, model, task, preset.objective, preset.mpc, seed=0)
    agent.set_model(model.init(jax.random.PRNGKey(0)))
    obs = np.zeros(task.obs_dim, np.float32)
    agent.act(obs)  # compile
    P = preset.objective.num_particles
    iters = int(agent.last_info["iterations"])
    flops = planner.population * P * planner.horizon * iters * model.cfg.flops_per_sample()
    r = common.interleaved(probe, agent.act, (obs,), flops, repeats)
    r.update(model_flops_per_step=flops, iterations=iters,
             config=dict(planner=preset.planner.name, population=planner.population, particles=P,
                         horizon=planner.horizon, iterations=planner.iterations, ensemble=model.cfg.ensemble_size,
                         hidden=model.cfg.hidden, depth=model.cfg.depth, propagation=preset.objective.propagation,
                         obs_dim=task.obs_dim, act_dim=task.act_dim))
    return r


def bench_cartpole(probe, repeats: int) -> dict:
    out = {}
    for name, preset, reps in (("PETS full", pets_preset(CARTPOLE), 3), ("light default", pets_light_preset(CARTPOLE), repeats)):
        out[name] = r = mpc_step(probe, CARTPOLE, preset, reps)
        print(f"  cart-pole {name}: {r['seconds']:.3f} s per env step, {r['fraction']:.0%} of matmul", flush=True)
    return out


def bench_hand(probe, repeats: int) -> dict:
    """PDDM at the paper's settings on its hand tasks (issue 22): one plan per env step."""
    out = {}
    for env in ("baoding", "hand-cube"):
        out[env] = r = mpc_step(probe, env, pddm_preset(env), repeats)
        print(f"  {env} PDDM: {r['seconds']:.3f} s per env step, {r['fraction']:.0%} of matmul", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    t0 = time.time()
    probe = common.MatmulProbe()
    hc = bench_half_cheetah(probe, args.repeats)
    cp = bench_cartpole(probe, args.repeats)
    hand = bench_hand(probe, args.repeats)
    mm = [r["matmul_flops_per_s"] for r in (*hc.values(), *cp.values(), *hand.values())]
    payload = {"machine": common.machine_info(), "matmul_flops_per_s": float(np.median(mm)),
               "half_cheetah": hc, "cartpole": cp, "hand_pddm": hand, "target_fraction": TARGET,
               "seconds_total": time.time() - t0}
    path = common.save("planners.json", payload)

    rows = [[f"HalfCheetah {k}", f"{r['seconds']:.3f}", common.fmt_rate(r["flops_per_s"]),
             common.fmt_rate(r["matmul_flops_per_s"]), f"{r['fraction']:.0%}", f"{r['cpu_fraction']:.0%}",
             "ok" if r["fraction"] >= TARGET else "BELOW"] for k, r in hc.items()]
    rows += [[f"{label} (per env step)", f"{r['seconds']:.3f}", common.fmt_rate(r["flops_per_s"]),
              common.fmt_rate(r["matmul_flops_per_s"]), f"{r['fraction']:.0%}", f"{r['cpu_fraction']:.0%}", ""]
             for label, r in [*((f"cart-pole {k}", r) for k, r in cp.items()),
                              *((f"{k} PDDM", r) for k, r in hand.items())]]
    common.print_table(f"planner speed ({len(jax.devices())} devices, load {os.getloadavg()[0]:.1f}; "
                       f"{time.time() - t0:.0f} s)",
                       ["plan", "s/plan", "model FLOP/s", "matmul FLOP/s", "ratio", "per CPU-s", "goal 50%"], rows)
    print(f"\nsaved {path}")


if __name__ == "__main__":
    main()
