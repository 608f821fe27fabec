"""PDDM, PETS and SAC on PDDM's Shadow hand tasks (Baoding balls, cube), at equal env steps.

    python benchmarks/hand.py                            # 4000 env steps per method and task, from scratch
    nice -n 15 python benchmarks/hand.py --resume        # continue where the last invocation stopped
    python benchmarks/hand.py --report                   # table, JSON and PNG from the run folders only

Runs go round-robin in chunks (``--chunk`` env steps): every method on every task is brought to
``chunk``, then ``2 * chunk``, ..., ``--steps``, so an interrupted benchmark has comparable curves
for all six runs. Each run has its own run folder ``RUNS/<task>-<method>`` (the usual metrics.csv,
results.json, checkpoints) and continues from its checkpoint with ``--resume``.

Settings: PDDM is ``pddm_preset`` (PDDM's released settings for these tasks), PETS is
``pets_light_preset`` (5 probabilistic members of 3x128, CEM 200 x 4 iterations, H = 20, TS∞ with 5
particles), SAC is ``SACTrainConfig``'s defaults (2x256, 1 update per step) evaluated on
``--eval-episodes`` deterministic episodes every chunk (evaluation steps are not counted). All three
start from the same ``--random-steps`` uniformly random transitions (PDDM's release uses 3000; a
few-thousand-step budget would leave it no MPC episodes). An MPC row is one episode, so its curve is
noisier than SAC's mean over evaluation episodes. ``success`` is the task's success measure
(``Task.success_rate``: ``baoding_success`` / ``cube_success`` in ``mbrlax.envs.hand``), the fraction
of an episode's steps that succeed.

Writes ``OUT/hand.json`` (per run: the curve, its mean per chunk, wall seconds per 1k env steps with
the load average beside them) and ``OUT/hand.png`` (return and success against env steps, with the
level of one zero-action episode, i.e. holding the start pose: on Baoding that alone earns -36.2 and
success 0.13, so a curve must beat it to show tracking), ``OUT = benchmarks/results`` by default. Wall times are this process's, per chunk; the machine is
shared, so read them with the load average.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mbrlax.algorithms import presets  # noqa: E402
from mbrlax.algorithms.mpc_loop import run as run_mpc  # noqa: E402
from mbrlax.algorithms.sac_train import SACTrainConfig, train_sac  # noqa: E402
from mbrlax.envs import get_task, make_env  # noqa: E402
from mbrlax.errors import ConfigError  # noqa: E402
from mbrlax.utils.checkpoint import POINTER  # noqa: E402

TASKS = ("baoding", "hand-cube")
METHODS = ("pddm", "pets", "sac")
MPC_PRESETS = {"pddm": presets.pddm_preset, "pets": presets.pets_light_preset}


def _progress(folder: Path) -> tuple[int, int]:
    """``(iteration, env_steps)`` of the run's checkpoint (iteration 0 for SAC), ``(0, 0)`` if none."""
    try:
        pointer = json.loads((folder / POINTER).read_text())
    except (OSError, ValueError):
        return 0, 0
    return int(pointer.get("iteration", 0)), int(pointer.get("env_steps", 0))


def advance(method: str, task: str, folder: Path, target: int, args, resume: bool) -> None:
    """Run ``method`` on ``task`` in ``folder`` until at least ``target`` env steps (continuing its checkpoint if ``resume``)."""
    if method == "sac":
        train_sac(SACTrainConfig(env=task, seed=args.seed, out=str(folder), total_steps=target,
                                 start_steps=args.random_steps, eval_every=args.chunk,
                                 eval_episodes=args.eval_episodes, resume=resume, progress=False))
        return
    cfg = dataclasses.replace(MPC_PRESETS[method](task), seed=args.seed, out=str(folder), random_steps=args.random_steps,
                              random_episodes=1, video=False)
    episode = get_task(task).max_episode_steps
    while True:  # an episode ends early when the object drops: go on until the target is reached
        iteration, steps = _progress(folder) if resume else (0, 0)
        if resume and steps >= target:
            return
        iterations = iteration + math.ceil(max(target - max(steps, args.random_steps), 0) / episode)
        run_mpc(dataclasses.replace(cfg, iterations=iterations, resume=resume))
        resume = True


def _rows(folder: Path) -> list[dict]:
    """metrics.csv rows as ``{env_steps, return, success}`` floats (NaN where missing)."""
    path = folder / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: float(r[k]) if r.get(k) not in (None, "") else float("nan") for k in ("env_steps", "return", "success")}
                for r in csv.DictReader(f)]


def hold_still(task: str) -> dict:
    """Return and success of one episode of zero actions (holding the start pose): the level a learner
    must beat to show it does more than keep the object still (on Baoding that is most of the reward)."""
    env, spec = make_env(task, seed=0), get_task(task)
    env.reset(seed=0)
    total, visited = 0.0, []
    for _ in range(spec.max_episode_steps):
        obs, reward, terminated, truncated, _ = env.step(np.zeros(env.action_space.shape, np.float32))
        total += float(reward)
        visited.append(obs)
        if terminated or truncated:
            break
    return {"return": total, "success": spec.success_rate(np.stack(visited), spec.max_episode_steps)}


def chunk_means(rows: list[dict], chunk: int) -> list[dict]:
    """Mean return and success of the rows nearest each multiple ``k * chunk`` of env steps (an MPC run
    stops a little past its target, when its episode ends): an MPC row is one episode, so its curve
    is read per chunk."""
    def bucket(r: dict) -> int:
        return max(1, round(r["env_steps"] / chunk))

    out = []
    for k in sorted({bucket(r) for r in rows}):
        inside = [r for r in rows if bucket(r) == k]
        out.append({"env_steps": k * chunk, "episodes": len(inside),
                    **{key: float(np.nanmean([r[key] for r in inside])) for key in ("return", "success")}})
    return out


def report(args, timing: dict) -> dict:
    """Write ``hand.json`` and ``hand.png`` from the run folders and the timings; print the table."""
    runs, still = {}, {task: hold_still(task) for task in args.tasks}
    for task in args.tasks:
        for method in args.methods:
            name = f"{task}-{method}"
            rows = _rows(Path(args.runs) / name)
            chunks = timing.get(name, [])
            steps, wall = sum(c["steps"] for c in chunks), sum(c["wall_s"] for c in chunks)
            means = chunk_means(rows, args.chunk)
            runs[name] = {"task": task, "method": method, "curve": rows, "chunk_means": means,
                          "latest": means[-1] if means else None,
                          "wall_s_per_1k_steps": round(1000 * wall / steps, 1) if steps else None,
                          "load_avg_1min": [c["load_avg_1min"] for c in chunks], "chunks": chunks}
    payload = {"steps": args.steps, "chunk": args.chunk, "random_steps": args.random_steps, "seed": args.seed,
               "eval_episodes": args.eval_episodes, "hold_still": still, "runs_folder": str(args.runs), "date": time.strftime("%Y-%m-%d %H:%M"),
               "machine": {"cpu_count": os.cpu_count(), "load_avg_now": [round(x, 2) for x in os.getloadavg()]},
               "runs": runs}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "hand.json").write_text(json.dumps(payload, indent=2) + "\n")

    fig, axes = plt.subplots(len(args.tasks), 2, figsize=(11, 3.8 * len(args.tasks)), squeeze=False)
    for i, task in enumerate(args.tasks):
        for method in args.methods:
            curve, means = runs[f"{task}-{method}"]["curve"], runs[f"{task}-{method}"]["chunk_means"]
            for j, key in enumerate(("return", "success")):
                line, = axes[i, j].plot([r["env_steps"] for r in means], [r[key] for r in means], marker="o", label=method)
                axes[i, j].plot([r["env_steps"] for r in curve], [r[key] for r in curve], ".", color=line.get_color(),
                                alpha=0.3)
        for j, key in enumerate(("return", "success")):
            axes[i, j].axhline(still[task][key], color="gray", ls="--", label="zero action (hold still)")
            axes[i, j].set(title=f"{task}: {key}", xlabel="env steps", ylabel=key)
            axes[i, j].legend()
    fig.suptitle(f"dots: MPC episodes, SAC evaluations; lines: their mean per {args.chunk} env steps (seed {args.seed})")
    fig.tight_layout()
    fig.savefig(out / "hand.png", dpi=100)
    plt.close(fig)

    print(f"\n{'run (last chunk)':<18} {'env steps':>9} {'episodes':>8} {'return':>8} {'success':>8} {'s/1k steps':>10}"
          "  load (1 min) per chunk")
    for name, r in runs.items():
        last = r["latest"] or {"env_steps": 0, "episodes": 0, "return": float("nan"), "success": float("nan")}
        print(f"{name:<18} {last['env_steps']:>9.0f} {last['episodes']:>8} {last['return']:>8.1f} {last['success']:>8.2f} "
              f"{r['wall_s_per_1k_steps'] if r['wall_s_per_1k_steps'] is not None else '-':>10}  "
              f"{[round(x, 1) for x in r['load_avg_1min']]}")
    print("zero action (hold still): " + ", ".join(f"{t} return {v['return']:.1f}, success {v['success']:.2f}"
                                                  for t, v in still.items()))
    print(f"wrote {out / 'hand.json'} and {out / 'hand.png'}")
    return payload


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=4000, help="env steps per method and task")
    p.add_argument("--chunk", type=int, default=500, help="env steps each run advances per round (and SAC's eval interval)")
    p.add_argument("--random-steps", type=int, default=1000, help="random transitions every method starts from")
    p.add_argument("--eval-episodes", type=int, default=3, help="SAC's deterministic evaluation episodes per chunk")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tasks", nargs="+", default=list(TASKS), help=f"any of {', '.join(TASKS)}")
    p.add_argument("--methods", nargs="+", default=list(METHODS), help=f"any of {', '.join(METHODS)}")
    p.add_argument("--runs", default="runs/bench-hand", help="folder of the run folders (RUNS/<task>-<method>)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"), help="folder of hand.json and hand.png")
    p.add_argument("--resume", action="store_true", help="continue every run from its checkpoint")
    p.add_argument("--report", action="store_true", help="only write the table, JSON and PNG from the run folders")
    args = p.parse_args()
    try:
        for flag in ("steps", "chunk", "random_steps", "eval_episodes"):
            if getattr(args, flag) < 1:
                raise ConfigError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
        for flag, allowed in (("tasks", TASKS), ("methods", METHODS)):
            bad = [x for x in getattr(args, flag) if x not in allowed]
            if bad:
                raise ConfigError(f"--{flag}: unknown {bad}, choose from {', '.join(allowed)}")
    except ConfigError as e:  # one line and status 2, as the mbrlax command's bad input
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)

    timing_path = Path(args.runs) / "timing.json"
    timing = json.loads(timing_path.read_text()) if (args.resume or args.report) and timing_path.is_file() else {}
    if not args.report:
        timing_path.parent.mkdir(parents=True, exist_ok=True)
        started = set()
        for target in list(range(args.chunk, args.steps, args.chunk)) + [args.steps]:
            for task in args.tasks:
                for method in args.methods:
                    name = f"{task}-{method}"
                    folder = Path(args.runs) / name
                    resume = args.resume or name in started
                    before = _progress(folder)[1] if resume else 0
                    if resume and before >= target:
                        continue
                    print(f"--- {name}: to {target} env steps (now {before})", flush=True)
                    t0 = time.perf_counter()
                    advance(method, task, folder, target, args, resume)
                    started.add(name)
                    steps = _progress(folder)[1] - before
                    timing.setdefault(name, []).append({"to_env_steps": before + steps, "steps": steps,
                                                        "wall_s": round(time.perf_counter() - t0, 1),
                                                        "load_avg_1min": round(os.getloadavg()[0], 2)})
                    timing_path.write_text(json.dumps(timing, indent=1) + "\n")
            report(args, timing)  # after every round: an interrupted benchmark still leaves its figures
    else:
        report(args, timing)


if __name__ == "__main__":
    main()
