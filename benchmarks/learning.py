"""Sample efficiency of the MPC presets: return per episode over several seeds (median and spread).

    python benchmarks/learning.py --suite cartpole --seeds 3          # PETS (light) cart-pole swing-up, 10 episodes
    python benchmarks/learning.py --suite cartpole-paper --seeds 1    # the same at the paper's settings (~1.6 h)
    python benchmarks/learning.py --suite invpend --seeds 3           # PETS InvertedPendulum-v5, 3 episodes
    python benchmarks/learning.py --suite invpend-env-reward --seeds 3  # the same with CEM, no cart cost
    python benchmarks/learning.py --suite reacher --seeds 2
    python benchmarks/learning.py --suite pusher --seeds 1
    python benchmarks/learning.py --suite halfcheetah-pets --seeds 1  # long: run in the background
    python benchmarks/learning.py --suite halfcheetah-pets-no-prior --seeds 1  # without its pitch cost
    python benchmarks/learning.py --suite halfcheetah-pddm --seeds 1
    python benchmarks/learning.py --suite invpend --seeds 3 --raw-targets  # model targets in env units
    python benchmarks/learning.py --suite pusher --seeds 5 --rebase       # refits keep the model's function

Targets (issue 3): cart-pole >= 180 (of 200) by episode 10; InvertedPendulum 1000 within 3
episodes; HalfCheetah published PETS ≈ 4200 at 50k steps. Writes
``benchmarks/results/learning_<suite>.json`` and ``.png``; each run's own folder is under
``runs/bench-learning/`` (resumable with ``--resume``); with ``--raw-targets`` the suite's name gets
the suffix ``-raw-targets`` in both, with ``--rebase`` the suffix ``-rebase``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
from pathlib import Path

from mbrlax.utils.sharding import request_host_devices

request_host_devices()

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mbrlax.algorithms import presets  # noqa: E402
from mbrlax.algorithms.mpc_loop import checkpoint_buffer_path, run  # noqa: E402

# published PETS on HalfCheetah: ≈ 4200 at 50k steps (Chua et al. 2018, Fig. 3); as a level, not one episode
_HALF_CHEETAH_TARGET = "published PETS ≈ 4200 at 50k steps: median of episodes 41-50 >= 4200"


def _at_published_level(returns: list[float]) -> bool:
    return len(returns) >= 50 and float(np.median(returns[40:50])) >= 4200


# suite -> (preset function, env, iterations, episode_steps, target description, target check)
SUITES = {
    "cartpole": (presets.pets_light_preset, "cartpole-swingup", 10, 0, ">= 180 by episode 10",
                 lambda r: max(r[:10]) >= 180),
    "cartpole-paper": (presets.pets_preset, "cartpole-swingup", 10, 0, ">= 180 by episode 10",
                       lambda r: max(r[:10]) >= 180),
    "invpend": (presets.pets_light_preset, "InvertedPendulum-v5", 3, 0, "1000 within 3 episodes",
                lambda r: max(r[:3]) >= 1000),
    # the same without the preset's planning prior: CEM on the environment's alive-bonus reward alone
    "invpend-env-reward": (presets.pets_light_without_prior, "InvertedPendulum-v5", 3, 0, "1000 within 3 episodes",
                           lambda r: max(r[:3]) >= 1000),
    "reacher": (presets.pets_light_preset, "Reacher-v5", 15, 0, "curve", None),
    "pusher": (presets.pets_light_preset, "Pusher-v5", 10, 0, "curve", None),
    # the light preset, which on HalfCheetah plans with a cost 1.0·pitch² on the body's pitch (obs[2])
    "halfcheetah-pets": (presets.pets_light_preset, "HalfCheetah-v5", 50, 1000, _HALF_CHEETAH_TARGET, _at_published_level),
    # the same on the environment's reward alone: the light preset before the pitch cost (its figures
    # were measured as "halfcheetah-pets")
    "halfcheetah-pets-no-prior": (presets.pets_light_without_prior, "HalfCheetah-v5", 50, 1000,
                                  _HALF_CHEETAH_TARGET, _at_published_level),
    "halfcheetah-pddm": (presets.pddm_preset, "HalfCheetah-v5", 50, 1000, "curve", None),
}


# envs whose body can end on its back: index of the pitch angle in the MPC loop's observation
_PITCH_INDEX = {"HalfCheetah-v5": 2}


def _flips(buffer_file: Path, pitch_index: int, random_steps: int) -> dict:
    """Per MPC episode in a run's replay buffer: the fraction of its steps on its back (cos(pitch) < 0)."""
    with np.load(buffer_file) as d:
        pitch, ends = d["obs"][:, pitch_index], d["terminated"] | d["truncated"]
    on_back, start = [], 0
    for end in np.flatnonzero(ends):
        if start >= random_steps:
            on_back.append(round(float(np.mean(np.cos(pitch[start:end + 1]) < 0)), 3))
        start = end + 1
    return {"fraction_of_steps_on_back": on_back, "episodes_on_back": sum(f > 0 for f in on_back),
            "episodes_on_back_most_of_the_time": sum(f >= 0.5 for f in on_back)}


def _seconds_per_episode(metrics: Path) -> float | None:
    """Median fit + episode wall time over the MPC episodes a run logged (also right for resumed runs)."""
    with open(metrics) as f:
        rows = [r for r in csv.DictReader(f) if r.get("policy") == "mpc"]
    return float(np.median([float(r["fit_seconds"]) + float(r["episode_seconds"]) for r in rows])) if rows else None


def _median_or_none(values: list) -> float | None:
    known = [v for v in values if v is not None]
    return round(float(np.median(known)), 1) if known else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", choices=sorted(SUITES), default="cartpole")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0,
                   help="run seeds first-seed .. first-seed + seeds - 1; results as <suite>-from-seed<K> when K > 0")
    p.add_argument("--iterations", type=int, default=0, help="override the suite's episode count")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--raw-targets", action="store_true",
                   help="fit the model's targets (Δobs, and a learned reward) in env units "
                        "(TrainerConfig.normalize_targets=False); results as <suite>-raw-targets")
    p.add_argument("--rebase", action="store_true",
                   help="refits rewrite the warm-start weights for the new normalisers' units "
                        "(TrainerConfig.rebase_on_refit=True); results as <suite>-rebase")
    args = p.parse_args(argv)
    name = args.suite + ("-raw-targets" if args.raw_targets else "") + ("-rebase" if args.rebase else "")
    name += f"-from-seed{args.first_seed}" if args.first_seed else ""
    preset, env, iters, ep_steps, target, check = SUITES[args.suite]
    iters = args.iterations or iters
    curves, seconds, flips = [], [], []
    trainer_overrides = ({"normalize_targets": False} if args.raw_targets else {}) | \
        ({"rebase_on_refit": True} if args.rebase else {})
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        cfg = preset(env)
        cfg = dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, **trainer_overrides), seed=seed,
                                  iterations=iters, episode_steps=ep_steps, video=False, resume=args.resume,
                                  out=f"runs/bench-learning/{name}/seed{seed}")
        summary = run(cfg)
        seconds.append(_seconds_per_episode(Path(cfg.out) / "metrics.csv"))
        curves.append(summary["returns"])
        if env in _PITCH_INDEX:
            flips.append(_flips(checkpoint_buffer_path(cfg.out), _PITCH_INDEX[env], cfg.random_steps))
    n = min(len(c) for c in curves)
    arr = np.array([c[:n] for c in curves])
    med, lo, hi = np.median(arr, 0), arr.min(0), arr.max(0)
    met = [bool(check(c)) for c in curves] if check else None
    result = {"suite": name, "env": env, "seeds": args.seeds, "first_seed": args.first_seed, "target": target, "target_met_per_seed": met,
              "median_return_per_episode": med.tolist(), "min": lo.tolist(), "max": hi.tolist(),
              "returns_per_seed": curves, "wall_seconds_per_episode_median": _median_or_none(seconds),
              "wall_seconds_per_episode_per_seed": seconds, "state_cost": list(cfg.objective.state_cost)}
    if flips:
        result["on_back_per_seed"] = flips
    out = Path("benchmarks/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"learning_{name}.json").write_text(json.dumps(result, indent=2))
    fig, ax = plt.subplots(figsize=(6, 4))
    ep = np.arange(1, n + 1)
    ax.plot(ep, med, marker="o", label=f"median of {args.seeds} seeds")
    ax.fill_between(ep, lo, hi, alpha=0.25, label="min–max")
    ax.set_xlabel("MPC episode")
    ax.set_ylabel("return")
    ax.set_title(f"{name}: {env}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / f"learning_{name}.png", dpi=100)
    print(f"\n{name} ({env}), {args.seeds} seeds: median return per episode {np.round(med, 1).tolist()}")
    if flips:
        print("MPC episodes on their back (any step / most steps) per seed: "
              + ", ".join(f"{f['episodes_on_back']} / {f['episodes_on_back_most_of_the_time']}" for f in flips))
    print(f"target {target}: met per seed {met}; fit + episode wall time (median) {result['wall_seconds_per_episode_median']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
