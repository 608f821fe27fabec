"""Demo: distribution mismatch, fixed by data aggregation (``mbrlax demo cliff``).

    D0     <- a scripted policy drives right and stops somewhere safe (never near the edge)
    for each arm in (without aggregation, with aggregation):
        D <- D0; model <- fit(D)
        for each iteration:
            run MPC episodes (CEM through the model) in the real cliff env
            with aggregation: D <- D + their transitions; model <- fit(D)

The task knows that going over the edge costs ``FALL_PENALTY``; the model must learn the slope
before the edge, where the cart slides whatever it does. Fitted on D0 alone, the model
extrapolates flat ground, so the planner heads for the edge and falls, every time. With
aggregation the falls themselves become data: the refitted model predicts the slide and the
agent learns to stop before the slope. Writes PNGs and ``results.json`` into ``cfg.out``.

Two departures from PETS, both measured (see ``docs/demos.md``): the ensemble is deterministic
(a Gaussian one explains the few slope transitions away as noise), and CEM samples by clipping
(PETS's truncated sampling has no variance left once a warm-started plan sits on a bound).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import jax
import numpy as np

from mbrlax.agents.mpc import MPCAgent, MPCConfig
from mbrlax.agents.objective import ObjectiveConfig
from mbrlax.data.buffer import ReplayBuffer
from mbrlax.demos.common import Stopwatch, ensemble_stats, fit_on, run_episode
from mbrlax.envs import get_task, make_env
from mbrlax.envs.lessons import CLIFF_ID, CLIFF_STEPS, EDGE, SLOPE_START, cliff_step
from mbrlax.models.config import ModelConfig
from mbrlax.models.trainer import TrainerConfig
from mbrlax.planning import make_planner
from mbrlax.utils.run_logger import RunLogger
from mbrlax.utils.validate import check_choice, check_nonempty, check_range, check_seed


@dataclass(frozen=True)
class CliffDemoConfig:
    """Distribution mismatch on the cliff, and data aggregation."""

    seed: int = 0
    """Random seed."""
    out: str = "runs/demo-cliff"
    """Output folder: PNG figures, results.json, metrics.csv, config.json."""
    quick: bool = False
    """Shrink everything for a fast check; the tests use it."""
    initial_episodes: int = 20
    """Episodes of the scripted base policy (drive right, stop at a random point before the slope)."""
    initial_episode_steps: int = 40
    """Steps per base-policy episode."""
    iterations: int = 5
    """Iterations of each arm (MPC episodes, then a refit with aggregation)."""
    episodes_per_iteration: int = 2
    """MPC episodes per iteration."""
    ensemble_size: int = 5
    """Ensemble members (all are elites)."""
    hidden: int = 64
    """Hidden width of the model."""
    depth: int = 2
    """Hidden layers of the model."""
    max_epochs: int = 300
    """Upper bound on training epochs per fit (the slope is a small share of the data: fit long)."""
    patience: int = 30
    """Stop a fit after this many epochs without holdout improvement."""
    horizon: int = 25
    """CEM planning horizon (2.5 s: long enough to see a slow slide over the edge)."""
    population: int = 100
    """CEM candidate sequences per iteration."""
    cem_iterations: int = 3
    """CEM iterations per plan."""
    cem_sampling: str = "clip"
    """CEM sampling: "clip" (Gaussian, clipped) or "truncated" (PETS; stuck once a plan hits a bound)."""

    def __post_init__(self):
        check_nonempty(self, "out")
        check_seed(self)
        check_range(self, "initial_episodes", "initial_episode_steps", "iterations", "episodes_per_iteration",
                    "ensemble_size", "hidden", "depth", "max_epochs", "patience", "horizon", "population",
                    "cem_iterations", ge=1)
        check_choice(self, "cem_sampling", ("clip", "truncated"))


def _quick(cfg: CliffDemoConfig) -> CliffDemoConfig:
    return replace(cfg, initial_episodes=12, iterations=4, episodes_per_iteration=2, max_epochs=150,
                   patience=20, population=80, cem_iterations=3)


def base_policy(rng: np.random.Generator):
    """Drive right to a random stopping point in ``[1, 2.8]`` (before the slope) with noisy PD control."""
    target = rng.uniform(1.0, 2.8)

    def act(obs: np.ndarray) -> np.ndarray:
        x, v = float(obs[0]), float(obs[1])
        return np.clip([2.0 * (target - x) - 1.5 * v + rng.normal(0.0, 0.4)], -1.0, 1.0)

    return act


def initial_data(env, cfg: CliffDemoConfig, rng: np.random.Generator) -> ReplayBuffer:
    capacity = cfg.initial_episodes * cfg.initial_episode_steps + 2 * cfg.iterations * cfg.episodes_per_iteration \
        * CLIFF_STEPS
    buffer = ReplayBuffer(capacity, 2, 1)
    for i in range(cfg.initial_episodes):
        run_episode(env, base_policy(rng), cfg.initial_episode_steps, seed=cfg.seed + i, on_transition=buffer.add)
    return buffer


def copy_buffer(buffer: ReplayBuffer) -> ReplayBuffer:
    new = ReplayBuffer(buffer.capacity, buffer.obs_dim, buffer.act_dim)
    new.add_batch(*buffer.all())
    return new


def run_arm(aggregate: bool, buffer: ReplayBuffer, model, task, cfg: CliffDemoConfig, key: jax.Array, env,
            watch: Stopwatch) -> dict:
    """One arm: ``iterations`` rounds of MPC episodes, refitting on the grown data when ``aggregate``.

    Returns per-iteration rows, the first episode's positions per iteration, the model fitted on
    the initial data (``first_state``) and the one that planned the last iteration (``last_state``).
    """
    trainer = TrainerConfig(batch_size=64, max_epochs=cfg.max_epochs, patience=cfg.patience, progress=False)
    # sampling="clip" by default: PETS's truncated sampling has zero variance where the mean sits on a
    # bound, so a warm-started "full throttle" plan would never be questioned again
    planner = make_planner("cem", cfg.horizon, task.action_low, task.action_high, population=cfg.population,
                           elites=max(cfg.population // 10, 5), iterations=cfg.cem_iterations,
                           sampling=cfg.cem_sampling)
    agent = MPCAgent(planner, model, task, ObjectiveConfig(propagation="mean", num_particles=cfg.ensemble_size),
                     MPCConfig(), seed=cfg.seed + int(aggregate))
    key, k = jax.random.split(key)
    with watch("fit"):
        state = fit_on(model, buffer.all(), k, trainer).state
    first_state = state
    rows, paths = [], []
    for it in range(cfg.iterations):
        agent.set_model(state)
        episodes = []
        with watch("plan"):
            for e in range(cfg.episodes_per_iteration):
                agent.reset()
                add = buffer.add if aggregate else None
                episodes.append(run_episode(env, agent.act, CLIFF_STEPS, seed=cfg.seed + 1000 * (it + 1) + e,
                                            on_transition=add))
        rows.append({"iteration": it + 1, "return": float(np.mean([ep["return"] for ep in episodes])),
                     "falls": int(sum(ep["terminated"] for ep in episodes)),
                     "max_x": float(max(ep["obs"][:, 0].max() for ep in episodes)),
                     "final_x": float(np.mean([ep["obs"][-1, 0] for ep in episodes])),
                     "transitions": len(buffer)})
        paths.append(episodes[0]["obs"][:, 0])
        if aggregate and it < cfg.iterations - 1:
            key, k = jax.random.split(key)
            with watch("fit"):
                state = fit_on(model, buffer.all(), k, trainer, state=state).state
    return {"rows": rows, "paths": paths, "first_state": first_state, "last_state": state,
            "data_x": buffer.all().obs[:, 0]}


def edge_predictions(model, state, xs: np.ndarray, v: float, a: float) -> tuple[np.ndarray, np.ndarray]:
    """Ensemble mean and disagreement of the next velocity at ``(x, v)`` for ``x in xs`` under action ``a``."""
    obs = np.stack([xs, np.full_like(xs, v)], axis=1)
    act = np.full((len(xs), 1), a)
    mean, spread = ensemble_stats(model, state, obs, act)
    return mean[:, 1], spread[:, 1]


def plot_iterations(out: Path, arms: dict[str, dict], cfg: CliffDemoConfig) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    colors = {"without aggregation": "tab:red", "with aggregation": "tab:green"}
    for name, arm in arms.items():
        it = [r["iteration"] for r in arm["rows"]]
        axes[0].plot(it, [r["return"] for r in arm["rows"]], "o-", color=colors[name], label=name)
        axes[1].plot(it, [r["falls"] for r in arm["rows"]], "o-", color=colors[name], label=name)
    axes[0].set_ylabel("mean episode return")
    axes[1].set_ylabel(f"falls (of {cfg.episodes_per_iteration} episodes)")
    axes[1].set_ylim(-0.2, cfg.episodes_per_iteration + 0.2)
    for ax in axes[:2]:
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[2]
    for name, arm in arms.items():
        for i, path in enumerate(arm["paths"]):
            ax.plot(np.arange(len(path)) * 0.1, path, color=colors[name], alpha=0.3 + 0.7 * (i + 1) / len(arm["paths"]),
                    lw=1.2, label=name if i == len(arm["paths"]) - 1 else None)
    ax.axhspan(SLOPE_START, EDGE, color="tab:brown", alpha=0.2, label="slope")
    ax.axhline(EDGE, color="k", lw=1)
    ax.set_ylim(0, EDGE + 0.5)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("position x")
    ax.set_title("first episode of each iteration (darker = later)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    axes[0].set_title("return per iteration", fontsize=10)
    axes[1].set_title("falls per iteration", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_model_near_edge(out: Path, model, agg: dict, v: float, a: float) -> dict:
    """Predicted vs true next velocity along the track, before and after aggregation; returns the errors."""
    import matplotlib.pyplot as plt

    xs = np.linspace(2.0, EDGE - 0.01, 120)
    _, v_true = cliff_step(xs, np.full_like(xs, v), np.full_like(xs, a))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    ax = axes[0]
    ax.plot(xs, v_true, "k-", lw=2, label="truth")
    errors = {}
    slope = xs >= SLOPE_START
    for label, state, color in (("before aggregation", agg["first_state"], "tab:red"),
                                ("after aggregation", agg["last_state"], "tab:green")):
        mean, std = edge_predictions(model, state, xs, v, a)
        ax.plot(xs, mean, color=color, label=f"model {label}")
        ax.fill_between(xs, mean - 2 * std, mean + 2 * std, color=color, alpha=0.2)
        errors[label] = float(np.abs(mean - v_true)[slope].mean())
    ax.axvspan(SLOPE_START, EDGE, color="tab:brown", alpha=0.15, label="slope")
    ax.set_xlabel("position x")
    ax.set_ylabel(f"next velocity (v = {v}, full brake a = {a})")
    ax.set_title("model prediction vs truth near the edge (band: ±2 std across members)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[1]
    bins = np.linspace(0, EDGE + 0.5, 45)
    ax.hist(agg["initial_x"], bins=bins, color="tab:red", alpha=0.6, label="initial data")
    ax.hist(agg["data_x"][len(agg["initial_x"]):], bins=bins, color="tab:green", alpha=0.6, label="aggregated")
    ax.axvspan(SLOPE_START, EDGE, color="tab:brown", alpha=0.15)
    ax.set_xlabel("position x of a transition")
    ax.set_ylabel("transitions")
    ax.set_title("where the data is", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return errors


def run(cfg: CliffDemoConfig) -> dict:
    """Run both arms; returns the numbers written to ``results.json``."""
    if cfg.quick:
        cfg = _quick(cfg)
    watch = Stopwatch()
    out = Path(cfg.out)
    logger = RunLogger(out, cfg, tensorboard=False)
    env = make_env(CLIFF_ID, seed=cfg.seed)
    task = get_task(CLIFF_ID)
    model = ModelConfig(ensemble_size=cfg.ensemble_size, num_elites=cfg.ensemble_size, hidden=cfg.hidden,
                        depth=cfg.depth, probabilistic=False).build(2, 1, task=task)
    with watch("initial data"):
        buffer = initial_data(env, cfg, np.random.default_rng(cfg.seed))
    initial_x = buffer.all().obs[:, 0].copy()
    key = jax.random.PRNGKey(cfg.seed)
    arms = {}
    for name, aggregate in (("without aggregation", False), ("with aggregation", True)):
        key, k = jax.random.split(key)
        arms[name] = run_arm(aggregate, copy_buffer(buffer), model, task, cfg, k, env, watch)
        for row in arms[name]["rows"]:
            logger.log({"arm": name, **row}, step_key="iteration")
    arms["with aggregation"]["initial_x"] = initial_x
    plot_iterations(out / "cliff_iterations.png", arms, cfg)
    errors = plot_model_near_edge(out / "cliff_model_near_edge.png", model, arms["with aggregation"], v=1.0, a=-1.0)

    last = max(1, cfg.iterations // 2)  # "the last iterations": the second half
    results = {
        "env": CLIFF_ID,
        "initial_data": {"transitions": int(len(initial_x)), "max_x": float(initial_x.max()),
                         "slope_start": SLOPE_START, "edge": EDGE},
        "arms": {name: {"per_iteration": arm["rows"],
                        "falls_total": int(sum(r["falls"] for r in arm["rows"])),
                        "falls_last_iterations": int(sum(r["falls"] for r in arm["rows"][-last:])),
                        "return_last_iterations": float(np.mean([r["return"] for r in arm["rows"][-last:]]))}
                 for name, arm in arms.items()},
        "slope_velocity_error": {"before_aggregation": errors["before aggregation"],
                                 "after_aggregation": errors["after aggregation"]},
        "last_iterations": last,
        "seconds": watch.summary(),
    }
    logger.write_json("results.json", results)
    logger.close()
    for name, arm in results["arms"].items():
        print(f"cliff: {name}: falls per iteration {[r['falls'] for r in arm['per_iteration']]} "
              f"(of {cfg.episodes_per_iteration}), returns {[round(r['return'], 1) for r in arm['per_iteration']]}")
    e = results["slope_velocity_error"]
    print(f"cliff: model error on the slope (next velocity): {e['before_aggregation']:.3f} before aggregation, "
          f"{e['after_aggregation']:.3f} after")
    print(f"cliff: wrote {out}/cliff_iterations.png, cliff_model_near_edge.png, results.json "
          f"({results['seconds']['total']:.0f} s)")
    return results
