"""Demo: plan in state space, act with inverse dynamics (``mbrlax demo state-plans``).

    D         <- random actions from starts anywhere in the point maze (as in ``demo goals``)
    video     <- D without its actions: position-only episodes, like the frames of a video
    futures   <- p(s_t+1:t+H | s_t), fitted on the video: where the point can be in H steps
    between   <- p(s_t+1:t+H-1 | s_t, s_t+H), fitted on the video: how to get from here to a keyframe
    actions   <- p(a_t | s_t, s_t+1), fitted on D (the only model that needs actions)

At each step the agent samples K futures, keeps the one whose end is closest to the goal as a
keyframe (or takes the goal itself once some future reaches as far), fills in the states up to
it, and asks the inverse model for the action to the first of them: the route a video model
takes to control. Compared with CEM through a forward model fitted on the same D, on the same
goals as ``demo goals``, and with the ablation that always takes the goal as the keyframe (on
this maze it does as well: both are greedy, and the futures do not see round a wall). Writes
``state_plans.png`` and ``results.json`` into ``cfg.out``; see
``docs/demo_goals.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mbrlax.demos.common import Stopwatch
from mbrlax.demos.goal_reaching import (GROUPS, Controller, GoalDemoSettings, collect_random, fit_kind, position_buffer, print_rates,
                                        repeat, run_controllers, save_figure, split_episodes, subsample,
                                        with_baselines)
from mbrlax.envs.lessons import MAZE_ID
from mbrlax.models.conditional import HEADS
from mbrlax.models.kinds import KINDS, build_model, window_rows
from mbrlax.models.trainer import TrainerConfig
from mbrlax.utils.run_logger import RunLogger
from mbrlax.utils.validate import check_choice, check_range


@dataclass(frozen=True)
class StatePlansDemoConfig(GoalDemoSettings):
    """Plan in state space (action-free + interpolation models), act with an inverse model."""

    out: str = "runs/demo-state-plans"
    """Output folder: state_plans.png, results.json, config.json."""
    plan_steps: int = 10
    """H: the action-free model predicts H states; the interpolation model fills the H - 1 before a keyframe."""
    futures: int = 64
    """K: futures sampled per step to choose the keyframe from."""
    future_head: str = "gaussian"
    """Output head of the action-free model (its samples are the proposals)."""
    fill_head: str = "gaussian"
    """Output head of the interpolation model (the agent follows its mode)."""
    max_epochs: int = 200
    """Upper bound on training epochs of the state-space and inverse models (patience 8 stops most far earlier)."""

    def __post_init__(self):
        super().__post_init__()
        check_range(self, "futures", "max_epochs", ge=1)
        check_range(self, "plan_steps", ge=2)
        check_choice(self, "future_head", HEADS)
        check_choice(self, "fill_head", HEADS)


def _quick(cfg: StatePlansDemoConfig) -> StatePlansDemoConfig:
    return replace(cfg, seeds=1, data_steps=4000, goals=10, max_epochs=100, mpc_max_epochs=30, population=50,
                   cem_iterations=2)


def state_plan_controller(future, future_state, fill, fill_state, inverse, inverse_state, H: int, K: int,
                          seed: int, use_futures: bool = True) -> Controller:
    """The agent: K futures -> keyframe -> filled plan -> action to the plan's first state; one jitted
    call per action. ``use_futures=False`` is the ablation that always takes the goal as the keyframe."""
    af, interp = KINDS["action-free"], KINDS["interpolation"]

    @jax.jit
    def plan_and_act(obs, key):  # obs [4] -> action [2]
        s, goal = obs[None, :2], obs[None, 2:]  # [1, 2]
        keyframe = goal
        if use_futures:
            sk = jnp.repeat(s, K, 0)  # [K, 2]
            ends = af.states_from(sk, future.sample(future_state, sk, key), H)[:, -1]  # [K, 2]
            best = ends[jnp.argmin(jnp.linalg.norm(ends - goal, axis=-1))][None]
            reach = jnp.linalg.norm(ends - s, axis=-1).max()  # the goal is within H steps: aim at it
            keyframe = jnp.where(jnp.linalg.norm(goal - s) <= reach, goal, best)
        first = interp.states_from(s, fill.mode(fill_state, jnp.concatenate([s, keyframe], 1)), H - 1)[:, 0]  # [1, 2]
        return inverse.mode(inverse_state, jnp.concatenate([s, first], 1))[0]

    keys = {"key": jax.random.PRNGKey(seed)}

    def act(obs):
        keys["key"], k = jax.random.split(keys["key"])
        return np.asarray(plan_and_act(jnp.asarray(obs, jnp.float32), k))

    return Controller(act)


def one_seed(cfg: StatePlansDemoConfig, seed: int, watch: Stopwatch) -> tuple[dict, dict]:
    """Data, models and episodes of one repeat: ``({method: episodes}, {model: held-out errors})``."""
    key = jax.random.PRNGKey(seed)
    rng = np.random.default_rng(seed)
    H = cfg.plan_steps
    with watch("collect"):
        train, held = split_episodes(collect_random(cfg.data_steps, cfg.collect_envs, seed), cfg.holdout_fraction)
        video, held_video = list(train.positions), list(held.positions)  # no actions: what a video model gets
        rows = {  # (train rows, held-out rows) per model
            "future": (window_rows("action-free", video, H), window_rows("action-free", held_video, H)),
            "fill": (window_rows("interpolation", video, H - 1), window_rows("interpolation", held_video, H - 1)),
            "inverse": (window_rows("inverse", position_buffer(train)), window_rows("inverse", position_buffer(held))),
        }
    specs = {"future": ("action-free", H, cfg.future_head), "fill": ("interpolation", H - 1, cfg.fill_head),
             "inverse": ("inverse", 1, "gaussian")}
    trainer = TrainerConfig(batch_size=64, learning_rate=2e-3, max_epochs=cfg.max_epochs, patience=8,
                            progress=False)
    models, errors = {}, {}
    for name, (kind, n, head) in specs.items():
        model = build_model(kind, 2, 2, n, head=head, hidden=cfg.hidden, depth=cfg.depth,
                            ensemble_size=cfg.ensemble_size, num_elites=cfg.ensemble_size)
        (x, y), held_rows = rows[name]
        key, k = jax.random.split(key)
        with watch(f"fit {name}"):
            state, errors[f"{kind} ({head})"] = fit_kind(model, *subsample(x, y, cfg.max_rows, rng), k, trainer,
                                                         subsample(*held_rows, 5000, rng))
        models[name] = (model, state)
    parts = (*models["future"], *models["fill"], *models["inverse"], H, cfg.futures, seed)
    controllers = {"state plan": state_plan_controller(*parts),
                   "fill to goal": state_plan_controller(*parts, use_futures=False)}
    with_baselines(controllers, errors, train, seed, cfg, watch)
    return run_controllers(controllers, seed, cfg.goals, watch), errors


def run(cfg: StatePlansDemoConfig) -> dict:
    """Run the demo; returns the numbers written to ``results.json``."""
    if cfg.quick:
        cfg = _quick(cfg)
    watch = Stopwatch()
    out = Path(cfg.out)
    logger = RunLogger(out, cfg, tensorboard=False)
    summaries, first, errors = repeat(lambda s: one_seed(cfg, s, watch), cfg.seed, cfg.seeds)
    results = {"env": MAZE_ID, "groups": list(GROUPS), "methods": summaries, "model_errors": errors,
               "seconds": watch.summary()}
    examples = {n: first[n] for n in ("state plan", "fill to goal", "forward MPC")}
    save_figure(out / "state_plans.png", summaries, examples,
                "Reaching goals: state-space plans + inverse model vs forward-model MPC")
    logger.write_json("results.json", results)
    logger.close()

    print_rates("state-plans", summaries)
    print(f"state-plans: wrote {out}/state_plans.png, results.json ({results['seconds']['total']:.0f} s)")
    return results
