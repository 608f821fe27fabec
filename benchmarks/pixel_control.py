"""Learning from pixels (issue 20's targets): latent MPC on the cart-pole swing-up and InvertedPendulum-v5, several seeds.

Run: ``.venv/bin/python benchmarks/pixel_control.py [--envs cartpole-swingup InvertedPendulum-v5]
[--seeds 0 1 2] [--episodes 30] [--chunk 5]`` (``--report``: only summarise the run folders). Each (env, seed) is ``mbrlax train latent`` with that
env's preset (:func:`mbrlax.algorithms.latent_loop.latent_preset`) in ``--root/<env>/seed<k>``. Seeds
advance round-robin, ``--chunk`` MPC episodes at a time, each run resumed from its checkpoint: kill
the script whenever, rerun the same command, and it goes on (across sessions too). After every chunk
it writes ``benchmarks/results/pixel_control.json`` and ``pixel_control.png``: per env and seed the
returns per MPC episode; per episode index the median, min and max over the seeds that got there; the
random data's and a zero-action policy's returns (the baselines);
the first episode where the median reaches the target (cart-pole 150 of 200 within 30 episodes,
InvertedPendulum 1000 within 10); the median wall seconds per MPC episode and per plan; the load
average and the CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa: E402

from mbrlax.algorithms.latent_loop import latent_preset, run  # noqa: E402
from mbrlax.envs import resolve_env_id  # noqa: E402

TARGETS = {"mbrlax/CartpoleSwingup-v0": (150.0, 30), "InvertedPendulum-v5": (1000.0, 10)}


@functools.lru_cache(maxsize=None)
def zero_action_return(env_id: str, episodes: int = 3) -> float:
    """Mean return of doing nothing (zero actions; the state env, which pays the same rewards): the
    baseline a planner must beat to show it uses the pictures, where a random policy's return is
    mostly its action cost (the cart-pole's 0.01 |a|^2) or its violence (InvertedPendulum's falls)."""
    from mbrlax.envs import make_env

    env = make_env(env_id, seed=0)
    total = 0.0
    for i in range(episodes):
        env.reset(seed=10_000 + i)
        done = False
        while not done:
            _, r, terminated, truncated, _ = env.step(np.zeros(env.action_space.shape, np.float32))
            total += float(r)
            done = terminated or truncated
    env.close()
    return total / episodes


def summarise(root: Path, envs: list[str], seeds: list[int]) -> dict:
    """The figures of every run folder under ``root`` (whatever each has got to)."""
    result = {"machine": common.machine_info(), "load_average": os.getloadavg(), "envs": {}}
    for env in envs:
        runs = {s: common.metrics_rows(root / env / f"seed{s}") for s in seeds}
        returns = {s: [float(r["return"]) for r in rows if r["policy"] == "mpc"] for s, rows in runs.items()}
        random = [float(r["return"]) for rows in runs.values() for r in rows if r["policy"] == "random"]
        n = max((len(v) for v in returns.values()), default=0)
        per_episode = [[v[i] for v in returns.values() if len(v) > i] for i in range(n)]
        median = [float(np.median(x)) for x in per_episode]
        target, within = TARGETS.get(resolve_env_id(env), (float("nan"), 0))
        reached = next((i + 1 for i, m in enumerate(median) if m >= target), None)
        mpc_rows = [r for rows in runs.values() for r in rows if r["policy"] == "mpc"]
        result["envs"][env] = {
            "returns": {str(s): v for s, v in returns.items()},
            "median": median, "min": [min(x) for x in per_episode], "max": [max(x) for x in per_episode],
            "seeds_per_episode": [len(x) for x in per_episode],
            "random_return_mean": float(np.mean(random)) if random else None,
            "zero_action_return_mean": zero_action_return(env),
            "target": target, "target_within_episodes": within, "median_reaches_target_at_episode": reached,
            "episode_seconds_median": float(np.median([float(r["episode_seconds"]) for r in mpc_rows])) if mpc_rows else None,
            "plan_seconds_median": float(np.median([float(r["plan_seconds_median"]) for r in mpc_rows])) if mpc_rows else None,
            "probe_r2_last": {str(s): float(rows[-1]["probe_r2_mean"]) for s, rows in runs.items()
                              if rows and rows[-1].get("probe_r2_mean", "") not in ("", "nan")},
        }
    return result


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = result["envs"]
    fig, axes = plt.subplots(1, len(envs), figsize=(5 * len(envs), 3.6), squeeze=False)
    for ax, (env, r) in zip(axes[0], envs.items()):
        x = np.arange(1, len(r["median"]) + 1)
        for s, v in r["returns"].items():
            ax.plot(np.arange(1, len(v) + 1), v, lw=0.8, alpha=0.5, label=f"seed {s}")
        if len(x):
            ax.plot(x, r["median"], "k", lw=2, label="median")
        if r["random_return_mean"] is not None:
            ax.axhline(r["random_return_mean"], color="grey", ls=":", label="random policy")
        ax.axhline(r["zero_action_return_mean"], color="C2", ls="-.", label="zero actions")
        ax.axhline(r["target"], color="C3", ls="--", label=f"target (within {r['target_within_episodes']})")
        ax.set(title=f"{env} from pixels", xlabel="MPC episode", ylabel="return")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["cartpole-swingup", "InvertedPendulum-v5"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=0, help="MPC episodes per run (0: the target's budget)")
    parser.add_argument("--chunk", type=int, default=5, help="MPC episodes a run advances before the next seed's turn")
    parser.add_argument("--root", default="benchmarks/results/pixel_control")
    parser.add_argument("--report", action="store_true", help="only summarise the run folders as they are")
    args = parser.parse_args()
    root = Path(args.root)
    budget = {env: args.episodes or TARGETS.get(resolve_env_id(env), (0, 30))[1] for env in args.envs}
    def start(env: str, seed: int, iterations: int) -> None:
        run(dataclasses.replace(latent_preset(env), seed=seed, out=str(root / env / f"seed{seed}"), resume=True,
                                iterations=iterations))

    def after_chunk() -> None:
        result = summarise(root, args.envs, args.seeds)
        print(common.save("pixel_control.json", result))
        plot(result, Path("benchmarks/results/pixel_control.png"))

    if not args.report:
        common.round_robin([(root / env / f"seed{seed}", budget[env], functools.partial(start, env, seed))
                            for env in args.envs for seed in args.seeds], args.chunk, after_chunk)
    result = summarise(root, args.envs, args.seeds)
    print(common.save("pixel_control.json", result))
    plot(result, Path("benchmarks/results/pixel_control.png"))
    for env, r in result["envs"].items():
        print(f"{env}: median return per MPC episode {np.round(r['median'], 1).tolist()}, random {r['random_return_mean']}, "
              f"zero actions {r['zero_action_return_mean']:.1f}, "
              f"target {r['target']} reached at episode {r['median_reaches_target_at_episode']}, "
              f"{r['episode_seconds_median']} s per episode")


if __name__ == "__main__":
    main()
