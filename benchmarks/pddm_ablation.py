"""Why PDDM trails PETS on HalfCheetah-v5 (issue 22, item 4): swap one part of PDDM for light PETS's at a time.

Run: ``.venv/bin/python benchmarks/pddm_ablation.py [--episodes 10] [--chunk 2] [--seed 0]``
(``--report``: only summarise). The loop is the same for every arm (``mbrlax.algorithms.mpc_loop``);
the arms differ only in the part named:

=================  ===========================================================================
arm                what differs from PDDM (``presets.pddm_preset``)
=================  ===========================================================================
pddm               nothing: 3 deterministic 2x250 members, mean propagation, MPPI (N 700, H 7,
                   gamma 10, beta 0.6), fit batch 500, at most 40 epochs
pddm+pets-model    light PETS's model: 5 probabilistic 3x128 members, TS-inf with 5 particles
pddm+pets-fit      light PETS's fit: batch 64, weight decay 5e-5, at most 200 epochs
pddm+cem           light PETS's planner: CEM, N 200, 20 elites, 4 iterations, alpha 0.1 (H 7 kept)
pddm+horizon20     light PETS's horizon, 20 (MPPI kept)
pets-light         every part swapped: light PETS on the environment's reward alone (no pitch
                   prior), ``presets.pets_light_without_prior``
pets-light+pddm-*  the reverse: light PETS with one part of PDDM's (``model``: its 3
                   deterministic 2x250 members and mean propagation; ``fit``; ``mppi``: its
                   planner, H 20 kept; ``horizon7``)
=================  ===========================================================================

The forward arms ask which single part of PETS rescues PDDM; the reverse ones which single part of
PDDM breaks PETS.

Arms advance round-robin, ``--chunk`` MPC episodes at a time, each resumed from its checkpoint, so
the script can be killed and rerun (across sessions) and all arms stay at about the same step. Each
arm's run folder is ``--root/<arm>/seed<k>``; after every chunk it writes
``benchmarks/results/pddm_ablation.json`` and ``.png``: the returns per episode per arm, the median
of each arm's last 5 episodes, seconds per episode and per plan, the load average and the CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa: E402

from mbrlax.algorithms import presets  # noqa: E402
from mbrlax.algorithms.mpc_loop import MPCLoopConfig, run  # noqa: E402

ENV = "HalfCheetah-v5"


def _arms() -> dict[str, MPCLoopConfig]:
    """Each arm's config: PDDM with one part replaced by light PETS's (module docstring)."""
    pddm, pets = presets.pddm_preset(ENV), presets.pets_light_without_prior(ENV)
    return {
        "pddm": pddm,
        "pddm+pets-model": dataclasses.replace(pddm, model=pets.model, objective=pets.objective),
        "pddm+pets-fit": dataclasses.replace(pddm, trainer=pets.trainer),
        "pddm+cem": dataclasses.replace(pddm, planner=dataclasses.replace(pets.planner, horizon=pddm.planner.horizon)),
        "pddm+horizon20": dataclasses.replace(pddm, planner=dataclasses.replace(pddm.planner, horizon=pets.planner.horizon)),
        "pets-light": pets,
        "pets-light+pddm-model": dataclasses.replace(pets, model=pddm.model, objective=pddm.objective),
        "pets-light+pddm-fit": dataclasses.replace(pets, trainer=pddm.trainer),
        "pets-light+pddm-mppi": dataclasses.replace(pets, planner=dataclasses.replace(pddm.planner, horizon=pets.planner.horizon)),
        "pets-light+pddm-horizon7": dataclasses.replace(pets, planner=dataclasses.replace(pets.planner, horizon=pddm.planner.horizon)),
    }


def summarise(root: Path, seed: int) -> dict:
    """Per arm: returns per MPC episode, the median of the last 5, seconds per episode and per plan."""
    arms = {}
    for arm in _arms():
        rows = [r for r in common.metrics_rows(root / arm / f"seed{seed}") if r["policy"] == "mpc"]
        returns = [round(float(r["return"]), 1) for r in rows]
        arms[arm] = {
            "returns": returns,
            "median_last5": round(float(np.median(returns[-5:])), 1) if returns else None,
            "seconds_per_episode_median": round(float(np.median(
                [float(r["fit_seconds"]) + float(r["episode_seconds"]) for r in rows])), 1) if rows else None,
            "plan_seconds_median": round(float(np.median([float(r["plan_seconds_median"]) for r in rows])), 3)
            if rows else None,
        }
    return {"env": ENV, "seed": seed, "episode_steps": 1000, "arms": arms,
            "machine": common.machine_info()}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for arm, r in result["arms"].items():
        if r["returns"]:
            ax.plot(np.arange(1, len(r["returns"]) + 1), r["returns"], marker="o", ms=3, label=arm)
    ax.set(title=f"{ENV}: PDDM with one part of light PETS (seed {result['seed']})", xlabel="MPC episode (1000 steps)",
           ylabel="return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10, help="MPC episodes per arm")
    parser.add_argument("--chunk", type=int, default=2, help="MPC episodes an arm advances before the next arm's turn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arms", nargs="+", default=list(_arms()), choices=list(_arms()))
    parser.add_argument("--root", default="runs/bench-pddm-ablation")
    parser.add_argument("--report", action="store_true", help="only summarise the run folders as they are")
    args = parser.parse_args()
    root, arms = Path(args.root), _arms()
    def start(arm: str, iterations: int) -> None:
        run(dataclasses.replace(arms[arm], seed=args.seed, out=str(root / arm / f"seed{args.seed}"), resume=True,
                                video=False, episode_steps=1000, iterations=iterations))

    def after_chunk() -> None:
        result = summarise(root, args.seed)
        common.save("pddm_ablation.json", result)
        plot(result, Path(common.RESULTS_DIR) / "pddm_ablation.png")

    if not args.report:
        common.round_robin([(root / arm / f"seed{args.seed}", args.episodes, functools.partial(start, arm))
                            for arm in args.arms], args.chunk, after_chunk)
    result = summarise(root, args.seed)
    print(common.save("pddm_ablation.json", result))
    plot(result, Path(common.RESULTS_DIR) / "pddm_ablation.png")
    for arm, r in result["arms"].items():
        print(f"{arm:16s} returns {r['returns']}  median of last 5 {r['median_last5']}  "
              f"{r['seconds_per_episode_median']} s/episode, {r['plan_seconds_median']} s/plan")


if __name__ == "__main__":
    main()
