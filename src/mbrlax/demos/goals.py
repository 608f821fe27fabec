"""Demo: reach goals with a multi-step inverse model instead of planning (``mbrlax demo goals``).

    D        <- random actions from starts anywhere in the point maze
    rows     <- hindsight: every window of D says "from s_t, the action a_t led to s_t+n", for
                n = 1 .. max_n, so the state reached n steps later is a goal and a_t an action towards it
    policy   <- p(a_t | s_t, s_t+n) fitted on those rows, with a Gaussian, mixture or flow head;
                at each step it is asked once, with the goal in place of s_t+n, and the agent acts on its mode
    baseline <- CEM through a forward-model ensemble fitted on the same D (no goal relabelling, but
                a planner that searches 100 x 3 action sequences per step)

The inverse model needs no planner at act time: one network call per action. The question is
what it gives up. Goals come in two groups: in plain sight of the start, and behind a wall
(the straight push runs into it). What the agent acts on matters: p(a_t | s_t, goal) from random
data is broad and only tilted towards the goal, so its mean is a push towards the goal and one
sample (the flow head's mode) is mostly noise. Writes ``goals.png`` and ``results.json`` into
``cfg.out``; see ``docs/demo_goals.md`` for how to read them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mbrlax.demos.common import Stopwatch
from mbrlax.demos.goal_reaching import (GROUPS, Controller, GoalDemoSettings, collect_random, fit_kind, hindsight_rows, position_buffer,
                                        print_rates, repeat, run_controllers, save_figure, split_episodes, subsample,
                                        with_baselines)
from mbrlax.envs.lessons import MAZE_ID
from mbrlax.errors import ConfigError
from mbrlax.models.conditional import HEADS
from mbrlax.models.kinds import build_model
from mbrlax.models.trainer import TrainerConfig
from mbrlax.utils.run_logger import RunLogger
from mbrlax.utils.validate import check_choice, check_range, setting


@dataclass(frozen=True)
class GoalsDemoConfig(GoalDemoSettings):
    """Goal reaching with a multi-step inverse model, against forward-model MPC."""

    out: str = "runs/demo-goals"
    """Output folder: goals.png, results.json, config.json."""
    heads: tuple[str, ...] = ("gaussian", "mixture", "flow")
    """Output heads of the inverse model to compare (quick: no flow head)."""
    act_on_mean: bool = True
    """Also run the mixture and flow heads acting on their mean, not their mode: the statistic, not the head."""
    max_n: int = 5
    """Hindsight horizons: rows for every n in 1..max_n train one model (n is not an input)."""
    max_epochs: int = 60
    """Upper bound on training epochs of the inverse model."""

    def __post_init__(self):
        super().__post_init__()
        check_range(self, "max_n", "max_epochs", ge=1)
        check_choice(self, "heads", HEADS)
        if not self.heads:
            raise ConfigError(f"{setting(self, 'heads')} must name at least one head, got ()")


def _quick(cfg: GoalsDemoConfig) -> GoalsDemoConfig:
    return replace(cfg, seeds=1, data_steps=4000, goals=10, heads=("gaussian", "mixture"), max_rows=8000,
                   max_epochs=20, mpc_max_epochs=30, population=50, cem_iterations=2)


def inverse_controller(model, state, statistic: str = "mode") -> Controller:
    """Act on the mode (or mean) of p(a_t | s_t, s_t+n = goal): one jitted call per action. The obs
    ``[x, y, goal_x, goal_y]`` is already the model's input ``[s_t, s_t+n]``."""
    if statistic == "mode":
        f = jax.jit(lambda s, x: model.mode(s, x))
    else:  # the flow head's mean averages 32 draws; a fixed key keeps the controller deterministic
        f = jax.jit(lambda s, x: model.mean(s, x, jax.random.PRNGKey(0)))
    return Controller(lambda obs: np.asarray(f(state, jnp.asarray(obs[None], jnp.float32)))[0])


def one_seed(cfg: GoalsDemoConfig, seed: int, watch: Stopwatch) -> tuple[dict, dict]:
    """Data, models and episodes of one repeat: ``({method: episodes}, {model: held-out errors})``."""
    key = jax.random.PRNGKey(seed)
    rng = np.random.default_rng(seed)
    with watch("collect"):
        train, held = split_episodes(collect_random(cfg.data_steps, cfg.collect_envs, seed), cfg.holdout_fraction)
        x, y = subsample(*hindsight_rows(position_buffer(train), cfg.max_n), cfg.max_rows, rng)
        held_rows = subsample(*hindsight_rows(position_buffer(held), cfg.max_n), 5000, rng)
    trainer = TrainerConfig(batch_size=256, learning_rate=2e-3, max_epochs=cfg.max_epochs, patience=5,
                            progress=False)
    controllers, errors = {}, {}
    for head in cfg.heads:
        model = build_model("inverse-multistep", 2, 2, cfg.max_n, head=head, hidden=cfg.hidden, depth=cfg.depth,
                            ensemble_size=cfg.ensemble_size, num_elites=cfg.ensemble_size)
        key, k = jax.random.split(key)
        with watch(f"fit inverse {head}"):
            state, errors[f"inverse {head}"] = fit_kind(model, x, y, k, trainer, held_rows)
        controllers[f"inverse ({head})"] = inverse_controller(model, state)
        if cfg.act_on_mean and head in ("mixture", "flow"):  # a Gaussian's mode is its mean
            controllers[f"inverse ({head}, mean)"] = inverse_controller(model, state, "mean")
    with_baselines(controllers, errors, train, seed, cfg, watch)
    return run_controllers(controllers, seed, cfg.goals, watch), errors


def run(cfg: GoalsDemoConfig) -> dict:
    """Run the demo; returns the numbers written to ``results.json``."""
    if cfg.quick:
        cfg = _quick(cfg)
    watch = Stopwatch()
    out = Path(cfg.out)
    logger = RunLogger(out, cfg, tensorboard=False)
    summaries, first, errors = repeat(lambda s: one_seed(cfg, s, watch), cfg.seed, cfg.seeds)
    heads = [f"inverse ({h})" for h in cfg.heads]
    winner = max(heads, key=lambda h: summaries[h]["success"]["all"]["mean"])  # acting on the mode, as asked
    results = {"env": MAZE_ID, "groups": list(GROUPS), "winner": winner, "methods": summaries,
               "model_errors": errors, "seconds": watch.summary()}
    save_figure(out / "goals.png", summaries, {name: first[name] for name in (*heads, "forward MPC")},
                "Reaching goals: inverse model (no planning) vs forward-model MPC")
    logger.write_json("results.json", results)
    logger.close()

    print_rates("goals", summaries)
    w, m = summaries[winner], summaries["forward MPC"]
    print(f"goals: best head {winner}: {w['success']['all']['mean']:.0%} of all goals at "
          f"{1000 * w['seconds_per_action']:.2f} ms/action; forward MPC {m['success']['all']['mean']:.0%} at "
          f"{1000 * m['seconds_per_action']:.1f} ms/action")
    print(f"goals: wrote {out}/goals.png, results.json ({results['seconds']['total']:.0f} s)")
    return results
