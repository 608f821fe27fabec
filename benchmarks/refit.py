"""Refits as a run's data grows: a fresh Adam per fit (what the loops do) against Adam continued.

    python benchmarks/refit.py --run runs/bench-learning/pusher/seed0 --every 100

Replays the growth of a finished MPC run's replay buffer: fits its model (the run's config.json) to the first
``--start`` transitions, then refits every ``--every`` transitions, once with a fresh optimiser
per fit and once passing ``FitResult.opt_state`` on. Prints per refit the epochs run, the epoch
of the best mean holdout error, the first epoch's train loss against the previous fit's last,
and the final holdout MSE; writes ``benchmarks/results/refit_<env>.json``. A fit that stops
after patience + 1 epochs kept only its first epoch: the fresh optimiser's first steps made
the warm-started model worse and it did not recover within the patience.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import numpy as np

from mbrlax.data.buffer import ReplayBuffer
from mbrlax.envs import get_task, make_env
from mbrlax.models.config import ModelConfig
from mbrlax.models.trainer import TrainerConfig, fit


def replay(run: Path, start: int, every: int, keep_adam: bool, seed: int) -> list[dict]:
    """Fit on the buffer's first ``start`` transitions, then refit every ``every``; one row per fit."""
    saved = json.loads((run / "config.json").read_text())  # the run's own model and trainer settings
    trainer_cfg = TrainerConfig(**saved["trainer"])
    env = make_env(saved["env"])
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    task = get_task(saved["env"])
    model = ModelConfig(**saved["model"]).build(obs_dim, act_dim, learn_reward=task is None, task=task)
    data = ReplayBuffer.load(run / "checkpoint" / "buffer.npz").all()
    key = jax.random.PRNGKey(seed)
    state, opt_state, rows, last_loss = model.init(key), None, [], None
    for n in range(start, len(data.obs) + 1, every):
        key, k = jax.random.split(key)
        prefix = type(data)(*(f[:n] for f in data))
        res = fit(model, state, prefix, k, trainer_cfg, opt_state=opt_state if keep_adam else None)
        mean_mse = [h["holdout_mse"] for h in res.history]  # mean over members, per epoch
        rows.append({"transitions": n, "epochs": len(res.history), "best_epoch": int(np.argmin(mean_mse)) + 1,
                     "first_train_loss": res.history[0]["train_loss"], "previous_last_train_loss": last_loss,
                     "holdout_mse": float(np.mean(res.holdout_mse))})
        state, opt_state, last_loss = res.state, res.opt_state, res.history[-1]["train_loss"]
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/bench-learning/pusher/seed0", help="a finished `mbrlax train pets|pddm|...` run folder")
    p.add_argument("--start", type=int, default=200)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    run = Path(args.run)
    if not (run / "checkpoint" / "buffer.npz").exists():
        raise SystemExit(f"{run} has no checkpoint/buffer.npz: give the folder of a finished MPC run")
    result = {"run": str(run), "start": args.start, "every": args.every}
    for name, keep in (("fresh_adam", False), ("kept_adam", True)):
        rows = replay(run, args.start, args.every, keep, args.seed)
        result[name] = rows
        print(f"\n{name}: transitions, epochs, best epoch, first-epoch train loss (previous fit's last), holdout MSE")
        for r in rows:
            prev = "" if r["previous_last_train_loss"] is None else f" ({r['previous_last_train_loss']:.2f})"
            print(f"  {r['transitions']:6d} {r['epochs']:4d} {r['best_epoch']:4d} {r['first_train_loss']:9.2f}{prev} "
                  f"{r['holdout_mse']:.4f}")
    for name in ("fresh_adam", "kept_adam"):
        rows = result[name][1:]
        result[f"{name}_summary"] = {
            "refits": len(rows),
            "refits_keeping_only_epoch_1": sum(r["best_epoch"] == 1 for r in rows),
            "median_holdout_mse": float(np.median([r["holdout_mse"] for r in rows])),
            "median_epochs": float(np.median([r["epochs"] for r in rows]))}
        print(name, result[f"{name}_summary"])
    out = Path("benchmarks/results") / f"refit_{run.parent.name}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
