"""Demo: open- versus closed-loop MPC under model error (``mbrlax demo loop``).

    D      <- random-action transitions from the nominal environment
    model  <- an ensemble fitted on D, once
    real   <- the same environment with heavier bodies (``mass_scale``) and noise on every
              executed action (``action_noise``): the model is now wrong, as models are
    for each CEM flavour, schedule (open loop, replan every k, replan every step), warm/cold start:
        run the same seeded episodes in the real environment with the MPC agent
    table  <- return, plans, plan seconds and model evaluations per executed step
    figure <- return per variant; return against model evaluations per step

The episode is exactly one horizon long (``horizon`` steps), so open loop executes one plan from
the first observation to the end, "every k" executes k actions of each plan, and closed loop
replans at every step. Warm start begins each plan from the previous one shifted in time (the
MPC agent's ``warm_start``); cold start from the centre of the bounds. With a single plan per
episode open loop has nothing to warm-start from, so its two rows differ only by chance.

All variants of one CEM flavour share one agent (one compiled plan): the demo switches the
agent's ``cfg`` between variants instead of building six agents, since ``act`` reads it on every
call. Compilation is excluded from the timings (a warm-up plan runs first). "Model evaluations"
count one-step predictions of one ensemble member for one particle of one candidate sequence.
Writes PNGs and ``results.json`` into ``cfg.out``; ``docs/demos_loop_planners.md`` explains them.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from mbrlax.agents.mpc import MPCAgent, MPCConfig
from mbrlax.agents.objective import ObjectiveConfig
from mbrlax.data.buffer import ReplayBuffer
from mbrlax.data.rollout import collect, random_policy
from mbrlax.demos.common import Stopwatch, fit_on, run_episode
from mbrlax.envs import action_bounds, get_task, make_env, make_vector_env
from mbrlax.errors import ConfigError
from mbrlax.models.config import ModelConfig
from mbrlax.models.trainer import TrainerConfig
from mbrlax.planning import make_planner
from mbrlax.utils.run_logger import RunLogger
from mbrlax.utils.validate import check_choice, check_le, check_nonempty, check_range, check_seed


@dataclass(frozen=True)
class LoopDemoConfig:
    """Open- versus closed-loop MPC, with and without warm start, under model error."""

    seed: int = 0
    """Random seed."""
    out: str = "runs/demo-loop"
    """Output folder: PNG figures, results.json, config.json."""
    quick: bool = False
    """Shrink data, training and episodes for a fast check; the tests use it."""
    env: str = "InvertedPendulum-v5"
    """A MuJoCo environment with a known task (reward and termination in JAX)."""
    data_steps: int = 600
    """Random-action transitions from the nominal environment to fit the model on."""
    ensemble_size: int = 3
    """Ensemble members (all are elites; one particle per member)."""
    hidden: int = 64
    """Hidden width of the model."""
    depth: int = 2
    """Hidden layers of the model."""
    max_epochs: int = 40
    """Upper bound on training epochs."""
    horizon: int = 40
    """Planning horizon H, also the episode length: open loop is exactly one plan."""
    replan_every: tuple[int, ...] = (0, 5, 1)
    """Schedules: execute this many actions of each plan (0 or >= horizon: open loop; 1: closed loop)."""
    population: int = 100
    """CEM samples per iteration."""
    elites: int = 10
    """CEM elites."""
    iterations: int = 1
    """CEM iterations per plan (few: warm start is then the planner's memory across steps)."""
    samplings: tuple[str, ...] = ("truncated", "clip")
    """CEM flavours: "truncated" (PETS: variance capped near the bounds) and/or "clip"."""
    mass_scale: float = 2.0
    """Masses of all bodies in the real environment, relative to the environment the data came from."""
    action_noise: float = 0.5
    """Standard deviation of Gaussian noise added to each executed action (in action units)."""
    episodes: int = 12
    """Seeded episodes per variant (the same start states and noise for every variant)."""

    def __post_init__(self):
        check_nonempty(self, "env", "out")
        check_seed(self)
        check_range(self, "data_steps", "ensemble_size", "hidden", "depth", "max_epochs", "horizon", "population",
                    "elites", "iterations", "episodes", ge=1)
        check_le(self, "elites", "population")
        if not self.replan_every:
            raise ConfigError("LoopDemoConfig.replan_every needs at least one schedule")
        check_range(self, "replan_every", ge=0)
        if not self.samplings:
            raise ConfigError("LoopDemoConfig.samplings needs at least one CEM flavour")
        check_choice(self, "samplings", ("truncated", "clip"))
        check_range(self, "mass_scale", gt=0)
        check_range(self, "action_noise", ge=0)


def _variant_name(sampling: str, every: int, horizon: int, warm: bool) -> str:
    schedule = "open loop" if every >= horizon else ("closed loop" if every == 1 else f"every {every}")
    return f"{sampling}/{schedule}/{'warm' if warm else 'cold'}"


def _perturb(env, mass_scale: float) -> None:
    """Scale every body's mass of a MuJoCo env in place."""
    model = getattr(env.unwrapped, "model", None)
    if mass_scale != 1.0:
        if model is None or not hasattr(model, "body_mass"):
            raise ConfigError(f"mass_scale needs a MuJoCo environment, got {type(env.unwrapped).__name__}")
        model.body_mass[:] = model.body_mass * mass_scale


def _episodes(agent: MPCAgent, env, cfg: LoopDemoConfig, low: np.ndarray, high: np.ndarray,
              evals_per_iteration: int) -> dict:
    """The seeded episodes of one variant; returns, plan counts, plan seconds and model evaluations."""
    returns, steps, plans, evals, seconds = [], 0, 0, 0, 0.0
    for ep in range(cfg.episodes):
        agent.reset()
        agent.plan_seconds.clear()
        rng = np.random.default_rng([cfg.seed, ep])
        n_iter = []

        def act(obs):
            before = len(agent.plan_seconds)
            action = agent.act(obs)
            if len(agent.plan_seconds) > before:
                n_iter.append(int(agent.last_info["iterations"]))
            noisy = action + cfg.action_noise * rng.standard_normal(action.shape)
            return np.clip(noisy, low, high).astype(np.float32)

        result = run_episode(env, act, cfg.horizon, seed=cfg.seed * 1000 + 100 + ep)
        returns.append(result["return"])
        steps += result["steps"]
        plans += len(agent.plan_seconds)
        seconds += float(np.sum(agent.plan_seconds))
        evals += sum(n_iter) * evals_per_iteration
    return {"returns": returns, "return_mean": float(np.mean(returns)), "return_std": float(np.std(returns)),
            "steps": steps, "plans": plans, "plans_per_step": plans / steps,
            "plan_ms_per_step": 1000 * seconds / steps, "plan_ms_per_plan": 1000 * seconds / max(plans, 1),
            "model_evals_per_step": evals / steps}


def _plot(rows: list[dict], cfg: LoopDemoConfig, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    schedules = list(dict.fromkeys(r["schedule"] for r in rows))
    groups = [(s, w) for s in cfg.samplings for w in (True, False)]
    width = 0.8 / len(groups)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for gi, (sampling, warm) in enumerate(groups):
        sel = [next(r for r in rows if r["sampling"] == sampling and r["warm_start"] == warm
                    and r["schedule"] == s) for s in schedules]
        x = np.arange(len(schedules)) + (gi - (len(groups) - 1) / 2) * width
        label = f"CEM {sampling}, {'warm' if warm else 'cold'} start"
        ax1.bar(x, [r["return_mean"] for r in sel], width, yerr=[r["return_std"] for r in sel], capsize=3,
                color=colours[gi % len(colours)], label=label, alpha=0.9 if warm else 0.55,
                hatch=None if warm else "//")
        ax2.plot([r["model_evals_per_step"] for r in sel], [r["return_mean"] for r in sel], marker="o",
                 color=colours[gi % len(colours)], ls="-" if warm else "--", label=label)
        if gi == 0:  # one label per schedule is enough: all groups spend the same per plan
            for r in sel:
                ax2.annotate(r["schedule"], (r["model_evals_per_step"], r["return_mean"]), fontsize=8,
                             textcoords="offset points", xytext=(6, -12))
    ax1.axhline(cfg.horizon, color="k", lw=0.8, ls="--")
    ax1.set_xticks(np.arange(len(schedules)), schedules)
    ax1.set_ylabel(f"return (alive steps out of {cfg.horizon})" if "Pendulum" in cfg.env else "return")
    ax1.set_title(f"{cfg.env}: masses x{cfg.mass_scale}, action noise {cfg.action_noise}")
    ax1.legend(fontsize=8, loc="lower right")
    ax1.grid(alpha=0.3, axis="y")
    ax2.set_xscale("log")
    ax2.set_xlabel("model evaluations per executed step")
    ax2.set_ylabel("mean return")
    ax2.set_title("What replanning buys, and what it costs")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(cfg: LoopDemoConfig) -> dict:
    """Fit once, run every variant on the same seeded episodes; print and save the table and figure."""
    if cfg.quick:
        cfg = _quick(cfg)
    task = get_task(cfg.env)
    if task is None:  # before the run folder is written
        raise ConfigError(f"the loop demo needs an environment with a known task; {cfg.env!r} has none")
    out = Path(cfg.out)
    logger = RunLogger(out, cfg, tensorboard=False)
    watch, cpu_start = Stopwatch(), time.process_time()

    with watch("collect"):
        env = make_env(cfg.env, seed=cfg.seed)
        low, high = action_bounds(env)
        obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
        envs = make_vector_env(cfg.env, 4, seed=cfg.seed)
        buffer = ReplayBuffer(cfg.data_steps, obs_dim, act_dim)
        collect(envs, random_policy(envs.single_action_space, cfg.seed), cfg.data_steps, buffer, seed=cfg.seed)
        envs.close()
    with watch("fit"):
        model = ModelConfig(ensemble_size=cfg.ensemble_size, num_elites=cfg.ensemble_size, hidden=cfg.hidden,
                            depth=cfg.depth).build(obs_dim, act_dim, task=task)
        trainer = TrainerConfig(batch_size=32, max_epochs=cfg.max_epochs, patience=5, progress=False)
        fitted = fit_on(model, buffer.all(), jax.random.PRNGKey(cfg.seed), trainer)
    _perturb(env, cfg.mass_scale)  # the real environment from now on

    objective = ObjectiveConfig(propagation="mean", num_particles=cfg.ensemble_size)
    evals_per_iteration = cfg.population * cfg.ensemble_size * cfg.horizon
    rows = []
    for si, sampling in enumerate(cfg.samplings):
        planner = make_planner("cem", cfg.horizon, low, high, population=cfg.population, elites=cfg.elites,
                               iterations=cfg.iterations, sampling=sampling)
        agent = MPCAgent(planner, model, task, objective, MPCConfig(), seed=cfg.seed + si)
        agent.set_model(fitted.state)
        with watch("compile"):
            # compile the plan from a fresh state and from a shifted one (a warm start's state
            # can differ in placement from a fresh one and trigger a second compile)
            agent.cfg = MPCConfig(replan_every=1, warm_start=True)
            obs = env.reset(seed=cfg.seed)[0]
            agent.act(obs)
            agent.act(obs)
        for every in cfg.replan_every:
            every = cfg.horizon if every == 0 else min(every, cfg.horizon)
            for warm in (True, False):
                agent.cfg = MPCConfig(replan_every=every, warm_start=warm)  # same compiled plan
                with watch("episodes"):
                    stats = _episodes(agent, env, cfg, low, high, evals_per_iteration)
                name = _variant_name(sampling, every, cfg.horizon, warm)
                row = {"variant": name, "sampling": sampling, "replan_every": every,
                       "schedule": name.split("/")[1], "warm_start": warm, **stats}
                rows.append(row)
                logger.log({k: v for k, v in row.items() if k != "returns"}, step_key="replan_every")
                print(f"{name:32s} return {stats['return_mean']:6.1f} ± {stats['return_std']:4.1f}   "
                      f"plans/step {stats['plans_per_step']:5.3f}   plan ms/step {stats['plan_ms_per_step']:6.2f}   "
                      f"model evals/step {stats['model_evals_per_step']:9.0f}")

    env.close()
    _plot(rows, cfg, out / "loop.png")
    best = {s: max((r for r in rows if r["schedule"] == s), key=lambda r: r["return_mean"])
            for s in dict.fromkeys(r["schedule"] for r in rows)}
    summary = {"env": cfg.env, "mass_scale": cfg.mass_scale, "action_noise": cfg.action_noise,
               "horizon": cfg.horizon, "episodes": cfg.episodes,
               "model_holdout_mse": float(np.mean(fitted.holdout_mse)), "rows": rows,
               "best_return_by_schedule": {s: r["return_mean"] for s, r in best.items()},
               "figures": ["loop.png"], "seconds": watch.summary(),
               "cpu_seconds": round(time.process_time() - cpu_start, 1)}
    logger.write_json("results.json", summary)
    logger.close()
    print("best mean return per schedule: " + ", ".join(f"{s} {v:.1f}" for s, v in
                                                       summary["best_return_by_schedule"].items()))
    print(f"wrote {out}/results.json and loop.png; seconds: {summary['seconds']} "
          f"({summary['cpu_seconds']} s of CPU)")
    return summary


def _quick(cfg: LoopDemoConfig) -> LoopDemoConfig:
    return dataclasses.replace(cfg, data_steps=min(cfg.data_steps, 400), max_epochs=min(cfg.max_epochs, 25),
                               episodes=min(cfg.episodes, 4))
