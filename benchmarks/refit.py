"""Refits as a run's data grows: a fresh Adam per fit (what the loops do) against Adam continued.

    python benchmarks/refit.py --run runs/bench-learning/pusher/seed0 --every 100

Replays the growth of a finished MPC run's replay buffer: fits its model (the run's config.json) to the first
``--start`` transitions, then refits every ``--every`` transitions, once with a fresh optimiser
per fit and once passing ``FitResult.opt_state`` on. Prints per refit the epochs run, the epoch
of the best mean holdout error, the first epoch's train loss against the previous fit's last (and that jump in env units),
and the final holdout MSE; writes ``benchmarks/results/refit_<env>.json``. A fit that stops
after patience + 1 epochs kept only its first epoch: the fresh optimiser's first steps made
the warm-started model worse and it did not recover within the patience. Variant
``raw_targets`` fits Δobs in env units (``TrainerConfig.normalize_targets=False``, as PETS and
MBPO do); ``rebase`` / ``no_rebase`` rewrite the warm-start weights for each fit's new
normalisers or read them in the new units (``TrainerConfig.rebase_on_refit``). ``upcoming`` scores every fit on the next ``--every`` transitions (unseen; what the next episode
visits), with the elites' mean: ``scaled`` = squared error per dim over the variance of all the
run's Δobs, median over dims; ``raw`` = squared error in env units, mean over dims (dims that
never change left out). Note ``holdout_mse`` is in each fit's own target units, so it does not
compare across ``raw_targets`` and the others.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import jax
import numpy as np

from mbrlax.algorithms.mpc_loop import checkpoint_buffer_path
from mbrlax.data.buffer import Batch, ReplayBuffer
from mbrlax.envs import get_task, make_env
from mbrlax.models.config import ModelConfig
from mbrlax.models.dynamics import DynamicsModel, ModelState
from mbrlax.models.trainer import TrainerConfig, fit


def upcoming_errors(model: DynamicsModel, state: ModelState, upcoming: Batch, scale: np.ndarray) -> dict[str, float]:
    """Elites' mean-prediction errors of Δobs on the next, unseen transitions, over the dims that move.

    ``scaled``: per dim squared error over ``scale**2``, median over dims (the yardstick standardised
    training favours); ``raw``: squared error in env units, mean over dims (what raw training minimises).
    """
    elite = model.elite_state(state)
    M = model.num_members(elite)
    pred = model.predict(elite, np.broadcast_to(upcoming.obs, (M, *upcoming.obs.shape)),
                         np.broadcast_to(upcoming.action, (M, *upcoming.action.shape)))
    err = (np.asarray(pred.next_obs_mean) - upcoming.next_obs)[..., scale > 0]  # [M, B, moving dims]
    return {"scaled": float(np.median(np.mean((err / scale[scale > 0]) ** 2, axis=(0, 1)))),
            "raw": float(np.mean(err ** 2))}


def replay(run: Path, start: int, every: int, keep_adam: bool, seed: int, overrides: dict | None = None) -> list[dict]:
    """Fit on the buffer's first ``start`` transitions, then refit every ``every``; one row per fit.

    The run's own trainer settings, with ``overrides`` (TrainerConfig fields) applied."""
    saved = json.loads((run / "config.json").read_text())  # the run's own model and trainer settings
    trainer_cfg = dataclasses.replace(TrainerConfig(**saved["trainer"]), **(overrides or {}))
    env = make_env(saved["env"])
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    task = get_task(saved["env"])
    model = ModelConfig(**saved["model"]).build_for_task(obs_dim, act_dim, task)
    data = ReplayBuffer.load(checkpoint_buffer_path(run)).all()
    scale = (data.next_obs - data.obs).std(axis=0)  # one yardstick for every fit: all the run's data
    scale = np.where(scale > 1e-6, scale, 0.0)  # dims that never change (Pusher's goal) are not scored
    key = jax.random.PRNGKey(seed)
    state, opt_state, rows, last_loss = model.init(key), None, [], None
    for n in range(start, len(data.obs) + 1, every):
        key, k = jax.random.split(key)
        prefix = data.index(np.s_[:n])
        res = fit(model, state, prefix, k, trainer_cfg, opt_state=opt_state if keep_adam else None)
        mean_mse = [h["holdout_mse"] for h in res.history]  # mean over members, per epoch
        # the Gaussian loss is in the fit's target units; the same model scores E * mean_g 2 log(s_old / s_new)
        # higher in new ones (a deterministic model's MSE scales instead, so no jump is reported for it)
        units = model.cfg.ensemble_size * 2 * float(np.mean(np.log(np.asarray(res.state.target_norm.std)
                                                                     / np.asarray(state.target_norm.std))))
        rows.append({"transitions": n, "epochs": len(res.history), "best_epoch": int(np.argmin(mean_mse)) + 1,
                     "first_train_loss": res.history[0]["train_loss"], "previous_last_train_loss": last_loss,
                     "first_epoch_jump_env_units": None if last_loss is None or not model.cfg.probabilistic
                     else res.history[0]["train_loss"] - last_loss + units,
                     "holdout_mse": float(np.mean(res.holdout_mse)),
                     "upcoming": upcoming_errors(model, res.state, data.index(np.s_[n:n + every]), scale)
                     if n < len(data.obs) else None})
        state, opt_state, last_loss = res.state, res.opt_state, res.history[-1]["train_loss"]
    return rows


VARIANTS = {"fresh_adam": (False, {}), "kept_adam": (True, {}),
            "raw_targets": (False, {"normalize_targets": False}),
            "rebase": (False, {"rebase_on_refit": True}), "no_rebase": (False, {"rebase_on_refit": False})}
"""name -> (continue Adam across fits, TrainerConfig fields changed from the run's own)"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/bench-learning/pusher/seed0", help="a finished `mbrlax train pets|pddm|...` run folder")
    p.add_argument("--start", type=int, default=200)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = p.parse_args()
    run = Path(args.run)
    if checkpoint_buffer_path(run) is None:
        raise SystemExit(f"{run} has no checkpoint with a buffer.npz: give the folder of a finished MPC run")
    out = Path("benchmarks/results") / f"refit_{run.parent.name}.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    same_replay = all(previous.get(k) == v for k, v in (("run", str(run)), ("start", args.start), ("every", args.every)))
    result = previous if same_replay else {}  # variants not rerun keep their figures only if from this same replay
    result.update({"run": str(run), "start": args.start, "every": args.every})
    for name in args.variants:
        keep, overrides = VARIANTS[name]
        rows = replay(run, args.start, args.every, keep, args.seed, overrides)
        result[name] = rows
        print(f"\n{name}: transitions, epochs, best epoch, first-epoch train loss (previous fit's last), "
              "holdout MSE (fit's own units), error on the next transitions (scaled, raw)")
        for r in rows:
            jump = r["first_epoch_jump_env_units"]
            prev = "" if r["previous_last_train_loss"] is None else f" ({r['previous_last_train_loss']:.2f}" + \
                ("" if jump is None else f"; jump {jump:.1f} in env units") + ")"
            upcoming = "" if r.get("upcoming") is None else f" {r['upcoming']['scaled']:.4f} {r['upcoming']['raw']:.3g}"
            print(f"  {r['transitions']:6d} {r['epochs']:4d} {r['best_epoch']:4d} {r['first_train_loss']:9.2f}{prev} "
                  f"{r['holdout_mse']:.4f}{upcoming}")
        rows = rows[1:]
        upcoming = [r["upcoming"] for r in rows if r.get("upcoming") is not None]
        result[f"{name}_summary"] = {
            "refits": len(rows),
            "refits_keeping_only_epoch_1": sum(r["best_epoch"] == 1 for r in rows),
            "max_first_epoch_jump_env_units": max((r["first_epoch_jump_env_units"] for r in rows
                                                   if r["first_epoch_jump_env_units"] is not None), default=None),
            "median_holdout_mse": float(np.median([r["holdout_mse"] for r in rows])),
            "median_upcoming_scaled": float(np.median([u["scaled"] for u in upcoming])) if upcoming else None,
            "median_upcoming_raw": float(np.median([u["raw"] for u in upcoming])) if upcoming else None,
            "seed": args.seed, "start": args.start, "every": args.every,
            "median_epochs": float(np.median([r["epochs"] for r in rows]))}
        print(name, result[f"{name}_summary"])
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
