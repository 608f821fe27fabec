"""MBPO: InvertedPendulum learning curves, time per epoch by phase, and a long Hopper run.

    python benchmarks/mbpo.py                        # (a) IP curves + (b) phase times
    python benchmarks/mbpo.py --curves --minutes 10  # (a) only: as many seeds as fit in 10 minutes
    python benchmarks/mbpo.py --phases               # (b) only
    python benchmarks/mbpo.py --env Hopper-v5 --steps 100000   # (c) long run, checkpointed, resumable

(a) runs ``mbpo_preset("InvertedPendulum-v5")`` (the paper's IP settings) for 5000 env steps
per seed (500 random + 18 epochs of 250) and records the deterministic eval return after every
epoch and the first env step where it reached 1000. ``--light`` shrinks the networks (SAC 64x64,
model 3x64) and the rollout batch (20k per fit) so a seed fits in a few CPU minutes.

(b) times each phase of an MBPO epoch and compares the library's implementation with the
straightforward one it replaced:

- rollouts: one jitted ``lax.scan`` over the k steps of the whole rollout batch, versus a
  Python loop of per-step jitted calls (policy, model) with the termination mask and the
  filtering of ended rollouts done on the host after every step, as MBPO's reference code does;
- policy updates: the G updates of one env step as one ``update_many`` call (one ``lax.scan``,
  one host->device copy of the G batches), versus G ``update`` calls, each with its own
  sampled batch;
- model fitting: :func:`mbrlax.models.trainer.fit`, split into its one-time compile, a fixed
  cost per call and the cost per epoch (on ``--real`` random-policy transitions).

Phase times are measured at the paper's shapes for IP (epoch 250 steps, G = 10, 100k
rollouts of k = 1) and Hopper (epoch 1000 steps, G = 20, 100k rollouts, k = 1 and k = 15) and
combined into seconds per epoch: ``env`` and ``policy`` x epoch_length, ``model`` and
``rollout`` x fits per epoch. Results go to ``benchmarks/results/mbpo.json``.

(c) runs ``mbpo_preset(ENV)`` for ``--steps`` env steps into ``--out`` with a checkpoint every
epoch; run the same command again to resume after a kill. Its summary is stored under
``runs[ENV]`` in the results file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mbrlax.agents.learner import TrainBatch
from mbrlax.agents.model_rollouts import ModelBuffer, make_branched_rollout
from mbrlax.agents.sac import SAC
from mbrlax.algorithms.mbpo import MBPOConfig, mbpo_preset, mixed_batches, run
from mbrlax.data.buffer import ReplayBuffer
from mbrlax.envs import action_bounds, get_task, make_env
from mbrlax.models.propagation import propagate_step
from mbrlax.models.trainer import TrainerConfig, fit

RESULTS = Path(__file__).parent / "results" / "mbpo.json"


def _load() -> dict:
    try:
        return json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        return {}


def _save(data: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")


def _machine() -> dict:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "jax": jax.__version__,
            "backend": jax.default_backend(), "load_avg_1min": load}


def light(cfg: MBPOConfig) -> MBPOConfig:
    """Smaller networks and rollout batch: the paper's algorithm at a CPU-friendly size."""
    return dataclasses.replace(
        cfg, rollout_batch_size=20_000,
        model=dataclasses.replace(cfg.model, hidden=64, depth=3),
        sac=dataclasses.replace(cfg.sac, hidden_sizes=(64, 64)),
        trainer=dataclasses.replace(cfg.trainer, max_epochs=20),
    )


# ------------------------------------------------------------------------------------ (a) curves
def ip_curves(seeds: list[int], minutes: float, steps: int, use_light: bool, propagation: str, out_root: str) -> dict:
    """Eval return after every epoch for each seed, until the time budget would be exceeded."""
    base = mbpo_preset("InvertedPendulum-v5")
    epochs = math.ceil((steps - base.init_steps) / base.epoch_length)
    base = dataclasses.replace(base, epochs=epochs, eval_episodes=5, checkpoint=False, progress=False,
                               propagation=propagation)
    if use_light:
        base = light(base)
    runs, t_start, last = {}, time.perf_counter(), 0.0
    for seed in seeds:
        elapsed = time.perf_counter() - t_start
        if runs and elapsed + last > 60 * minutes:
            break
        t0 = time.perf_counter()
        res = run(dataclasses.replace(base, seed=seed, out=f"{out_root}/ip_seed{seed}"))
        last = time.perf_counter() - t0
        curve = [[int(s), round(r, 1)] for s, r in res["eval_returns"]]
        reached = next((s for s, r in curve if r >= 1000.0), None)
        runs[str(seed)] = {"curve": curve, "first_step_at_1000": reached, "wall_s": round(last, 1),
                           "phase_s": res["time_s"]}
        print(f"seed {seed}: {[r for _, r in curve]} (1000 at {reached}), {last:.0f}s")
    return {"env": "InvertedPendulum-v5", "settings": "light" if use_light else "paper", "propagation": propagation,
            "env_steps": steps,
            "config": {k: v for k, v in dataclasses.asdict(base).items() if k not in ("out", "seed")},
            "seeds": runs,
            "reached_1000_within_budget": sum(r["first_step_at_1000"] is not None for r in runs.values())}


# ------------------------------------------------------------------------------------ (b) phases
def naive_rollout(model, learner, task, model_state, learner_state, start_obs: np.ndarray, key, k: int,
                  buf: ModelBuffer) -> int:
    """The straightforward loop (as MBPO's reference code): per step one policy call and one model call,
    then termination, masking and storing on the host. Shapes stay fixed (ended rollouts are masked,
    not dropped) so nothing recompiles."""
    elite = model.elite_state(model_state)
    step = _naive_step(model)
    n = len(start_obs)
    pad = (-n) % model.num_elites
    obs = jnp.asarray(np.concatenate([start_obs, np.repeat(start_obs[:1], pad, axis=0)]))
    alive = np.arange(n + pad) < n
    added = 0
    for _ in range(k):
        key, k_act, k_model = jax.random.split(key, 3)
        action = learner.act(learner_state, obs, k_act)
        next_obs, reward = step(elite, obs, action, k_model)
        o, a, r, o2 = (np.asarray(x) for x in (obs, action, reward, next_obs))
        done = np.asarray(task.termination_fn(o, a, o2))
        buf.add(o[alive], a[alive], r[alive], o2[alive], done[alive])
        added += int(alive.sum())
        alive = alive & ~done
        obs = jnp.asarray(np.where(alive[:, None], o2, o))
    return added


_STEP_FNS: dict = {}


def _naive_step(model):
    if model not in _STEP_FNS:
        _STEP_FNS[model] = jax.jit(lambda s, o, a, k: propagate_step(model, s, o, a, k, "ts1")[:2])
    return _STEP_FNS[model]


def _timeit(fn, repeats: int) -> float:
    fn()  # warm up (compile)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def _ab(variants: dict, repeats: int) -> dict:
    """Fastest of ``repeats`` calls of each (already warm) variant, calls interleaved so load drifts hit all alike."""
    best = {name: float("inf") for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def phase_times(env_id: str, k_values: list[int], repeats: int = 3, real_size: int = 5000) -> dict:
    """Seconds per epoch by phase at the paper's settings for ``env_id``, fast and naive."""
    cfg = mbpo_preset(env_id)
    env = make_env(env_id, seed=0)
    task = get_task(env_id)
    low, high = action_bounds(env)
    D, A = env.observation_space.shape[0], env.action_space.shape[0]
    sac = SAC(D, A, low, high, cfg.sac)
    lstate = sac.init(jax.random.PRNGKey(0))
    model = dataclasses.replace(cfg.model, predict_reward=True).build_for_task(D, A, task)
    rng = np.random.default_rng(0)

    # real data: random-policy transitions
    real = ReplayBuffer(real_size, D, A)
    obs, _ = env.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(real_size):
        a = rng.uniform(low, high).astype(np.float32)
        nxt, r, term, trunc, _ = env.step(a)
        real.add(obs, a, r, nxt, term, trunc)
        obs = env.reset()[0] if term or trunc else nxt
    env_step_s = (time.perf_counter() - t0) / real_size
    act_s = _timeit(lambda: np.asarray(sac.act(lstate, obs[None].astype(np.float32), jax.random.PRNGKey(1))), 200)

    # model fitting: the first call compiles; later calls cost a fixed part plus one part per epoch. The
    # trainer compiles once per TrainerConfig, so the 4-epoch config is warmed up too (untimed): its compile
    # was once counted as 3 epochs of training (2.74 s per Hopper fit epoch where one compile gave 1.56 s)
    mstate = model.init(jax.random.PRNGKey(1))
    data = real.all()
    fit_s = {}
    for name, n_ep in (("first", 1), ("warm-up 4", 4), ("1", 1), ("4", 4)):
        t0 = time.perf_counter()
        res = fit(model, mstate, data, jax.random.PRNGKey(n_ep),
                  TrainerConfig(max_epochs=n_ep, patience=100, progress=False))
        fit_s[name] = time.perf_counter() - t0
    mstate = res.state
    per_epoch = (fit_s["4"] - fit_s["1"]) / 3
    fixed = max(fit_s["1"] - per_epoch, 0.0)
    compile_s = fit_s["first"] - fit_s["1"]

    # policy updates: one update_many(G) per env step vs G update calls
    G, B = cfg.updates_per_step, cfg.sac.batch_size
    mbuf = ModelBuffer(100_000, D, A)
    mbuf.add(*(np.asarray(x) for x in (data.obs, data.action, data.reward, data.next_obs, data.terminated)))

    def fast_updates():
        batches = mixed_batches(real, mbuf, G, B, cfg.real_ratio, rng)
        s, _ = sac.update_many(lstate, batches, jax.random.PRNGKey(2))
        jax.block_until_ready(s)

    def naive_updates():
        s = lstate
        for i in range(G):
            b = mixed_batches(real, mbuf, 1, B, cfg.real_ratio, rng)
            s, _ = sac.update(s, TrainBatch(*(x[0] for x in b)), jax.random.PRNGKey(i))
        jax.block_until_ready(s)

    fast_updates(), naive_updates()  # compile
    policy = _ab({"fast": fast_updates, "naive": naive_updates}, repeats=2 * repeats)
    policy_fast, policy_naive = policy["fast"], policy["naive"]

    # rollouts (the fast one compiled ahead of time; the naive one's per-step functions warmed with k = 1)
    rollout_fn = make_branched_rollout(model, sac, task)
    N = cfg.rollout_batch_size
    rollout = {}
    for k in k_values:
        start = jnp.asarray(real.sample(N, rng).obs)
        compiled = rollout_fn.lower(mstate, lstate, start, jax.random.PRNGKey(3), horizon=k).compile()

        def fast():
            ModelBuffer(N * k, D, A).add_rollouts(compiled(mstate, lstate, start, jax.random.PRNGKey(3)))

        def naive(k=k):
            naive_rollout(model, sac, task, mstate, lstate, np.asarray(start), jax.random.PRNGKey(3), k,
                          ModelBuffer(N * k, D, A))

        naive(1)
        t = _ab({"fast": fast, "naive": naive}, repeats=repeats if k == 1 else 1)
        rollout[str(k)] = {"fast_s": round(t["fast"], 3), "naive_s": round(t["naive"], 3)}
        print(f"{env_id} rollout k={k}: {rollout[str(k)]}", flush=True)

    fits = math.ceil(cfg.epoch_length / cfg.model_train_freq)
    fit_epochs = 20  # a typical early-stopped fit (patience 5) on this data
    epochs = {}
    for k in k_values:
        for variant in ("fast", "naive"):
            phases = {
                "env": cfg.epoch_length * (env_step_s + act_s),
                "model": fits * (fixed + fit_epochs * per_epoch),
                "rollout": fits * rollout[str(k)][f"{variant}_s"],
                "policy": cfg.epoch_length * (policy_fast if variant == "fast" else policy_naive),
            }
            phases = {p: round(v, 2) for p, v in phases.items()}
            phases["total"] = round(sum(phases.values()), 2)
            epochs[f"k={k}/{variant}"] = phases
    out = {
        "env": env_id, "epoch_length": cfg.epoch_length, "updates_per_step": G, "rollout_batch_size": N,
        "fits_per_epoch": fits, "real_transitions": real_size,
        "per_call_s": {"env_step": round(env_step_s, 6), "act": round(act_s, 6),
                       "policy_update_many_G": round(policy_fast, 4), "policy_G_updates": round(policy_naive, 4),
                       "model_fit_compile_once": round(compile_s, 2), "model_fit_fixed": round(fixed, 3),
                       "model_fit_per_epoch": round(per_epoch, 3),
                       "rollout": rollout},
        "epoch_s_assuming_20_fit_epochs": epochs,
    }
    print(json.dumps(out, indent=1))
    return out


# ------------------------------------------------------------------------------------ (c) long run
def long_run(env_id: str, steps: int, out: str, seed: int) -> dict:
    cfg = mbpo_preset(env_id)
    epochs = math.ceil((steps - cfg.init_steps) / cfg.epoch_length)
    cfg = dataclasses.replace(cfg, epochs=epochs, seed=seed, out=out, resume=True)
    res = run(cfg)
    return {"config": dataclasses.asdict(cfg), **res}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default=None, help="long checkpointed run on this env (mode c)")
    p.add_argument("--steps", type=int, default=100_000, help="env steps of the long run")
    p.add_argument("--out", default=None, help="run folder of the long run (default runs/bench_mbpo_ENV)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--curves", action="store_true", help="only (a)")
    p.add_argument("--phases", action="store_true", help="only (b)")
    p.add_argument("--minutes", type=float, default=10.0, help="time budget of (a)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--ip-steps", type=int, default=5000, help="env steps per seed in (a)")
    p.add_argument("--light", action="store_true", help="(a) with smaller networks and rollout batch")
    p.add_argument("--propagation", default="ts1", help="(a): ts1 (paper: a sampled step of a random elite) or mean")
    p.add_argument("--phase-envs", nargs="+", default=["InvertedPendulum-v5", "Hopper-v5"])
    p.add_argument("--real", type=int, default=5000, help="real transitions the phase timings fit and branch from")
    args = p.parse_args()

    data = _load()
    data["machine"] = _machine()
    if args.env is not None:
        out = args.out or f"runs/bench_mbpo_{args.env.split('/')[-1]}"
        data.setdefault("runs", {})[args.env] = long_run(args.env, args.steps, out, args.seed)
        _save(data)
        return
    both = not (args.curves or args.phases)
    if args.curves or both:
        settings = f"{'light' if args.light else 'paper'}-{args.propagation}"
        data.setdefault("ip_curves", {})[settings] = ip_curves(args.seeds, args.minutes, args.ip_steps, args.light,
                                                               args.propagation, "runs/bench_mbpo")
        _save(data)
    if args.phases or both:
        data["phase_times"] = {}
        for env_id in args.phase_envs:
            ks = sorted({1, rollout_k_max(env_id)})
            data["phase_times"][env_id] = phase_times(env_id, ks, real_size=args.real)
            _save(data)


def rollout_k_max(env_id: str) -> int:
    return int(mbpo_preset(env_id).rollout_schedule[3])


if __name__ == "__main__":
    main()
