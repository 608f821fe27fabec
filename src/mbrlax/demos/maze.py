"""Demo: coverage and model fidelity in a point-mass maze (``mbrlax demo maze``).

    D      <- random-action episodes that start in the left room (walls keep them there)
    model  <- an ensemble fitted on D
    figure <- where D is; the model's one-step error over the whole maze; ensemble disagreement
              against that error
    MPC    <- CEM through the model, to goals inside versus outside the covered room

Beyond the room's wall the maze floor turns every push by 90 degrees, which no model fitted in
the room can know. A control model, fitted on as much random data started anywhere in the maze,
separates "the model has not seen this place" from "this goal is hard to plan for". Writes PNGs
and ``results.json`` into ``cfg.out``; see ``docs/demos.md`` for how to read the figures.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import jax
import numpy as np

from mbrlax.agents.mpc import MPCAgent, MPCConfig
from mbrlax.agents.objective import ObjectiveConfig
from mbrlax.data.buffer import ReplayBuffer
from mbrlax.data.rollout import collect, random_policy
from mbrlax.demos.common import Stopwatch, ensemble_stats, fit_on, pearson, run_episode, spearman
from mbrlax.envs import get_task, make_env, make_vector_env
from mbrlax.envs.lessons import (GOAL_RADIUS, MAZE_ID, MAZE_SIZE, START_ROOM_X, free_mask, in_start_room, maze_step,
                                 maze_walls, random_free_points)
from mbrlax.models.config import ModelConfig
from mbrlax.models.trainer import TrainerConfig
from mbrlax.planning import make_planner
from mbrlax.utils.run_logger import RunLogger
from mbrlax.utils.validate import check_nonempty, check_range, check_seed


@dataclass(frozen=True)
class MazeDemoConfig:
    """Coverage and model fidelity in the point maze."""

    seed: int = 0
    """Random seed."""
    out: str = "runs/demo-maze"
    """Output folder: PNG figures, results.json, config.json."""
    quick: bool = False
    """Shrink the run (data, epochs, grid, goals, no control model) for a fast check; the tests use it."""
    data_steps: int = 4000
    """Transitions collected by the base policy (random actions from starts in the start room)."""
    collect_envs: int = 8
    """Parallel environments for data collection."""
    ensemble_size: int = 5
    """Ensemble members (all are elites)."""
    hidden: int = 64
    """Hidden width of the model."""
    depth: int = 3
    """Hidden layers of the model."""
    max_epochs: int = 80
    """Upper bound on training epochs per fit."""
    grid_step: float = 0.25
    """Spacing of the evaluation grid over the maze."""
    actions_per_point: int = 8
    """Random actions evaluated at each grid point."""
    goals: int = 10
    """MPC episodes per goal group (inside / outside the covered room)."""
    mpc_steps: int = 40
    """Steps per MPC episode."""
    horizon: int = 12
    """CEM planning horizon."""
    population: int = 100
    """CEM candidate sequences per iteration."""
    cem_iterations: int = 3
    """CEM iterations per plan."""
    control: bool = True
    """Also fit and plan with a model trained on data from the whole maze."""

    def __post_init__(self):
        check_nonempty(self, "out")
        check_seed(self)
        check_range(self, "data_steps", "collect_envs", "ensemble_size", "hidden", "depth", "max_epochs",
                    "actions_per_point", "goals", "mpc_steps", "horizon", "population", "cem_iterations", ge=1)
        check_range(self, "grid_step", gt=0)


def _quick(cfg: MazeDemoConfig) -> MazeDemoConfig:
    return replace(cfg, data_steps=2400, max_epochs=40, grid_step=0.5, actions_per_point=6, goals=5,
                   mpc_steps=32, control=False)


# --------------------------------------------------------------------------- data and model


def collect_data(steps: int, n_envs: int, seed: int, start_region: str) -> ReplayBuffer:
    """``steps`` random-action transitions from episodes started in ``start_region`` ("room" or "all")."""
    envs = make_vector_env(MAZE_ID, n_envs, seed=seed, start_region=start_region)
    buffer = ReplayBuffer(steps, 4, 2)
    collect(envs, random_policy(envs.single_action_space, seed), steps, buffer, seed=seed)
    envs.close()
    return buffer


def grid_points(step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell centres of a grid over the maze: ``(xs[nx], ys[ny], points[ny, nx, 2])``."""
    W, H = MAZE_SIZE
    xs, ys = np.arange(step / 2, W, step), np.arange(step / 2, H, step)
    return xs, ys, np.stack(np.meshgrid(xs, ys), axis=-1)


def one_step_errors(model, state, points: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over ``actions[K, 2]`` of the model's position error and disagreement at each ``points[P, 2]``."""
    P, K = len(points), len(actions)
    pos = np.repeat(points, K, axis=0)
    act = np.tile(actions, (P, 1))
    obs = np.concatenate([pos, np.zeros_like(pos)], axis=1)  # the goal does not enter the model
    true_next = maze_step(pos, act)
    mean, spread = ensemble_stats(model, state, obs, act)
    err = np.linalg.norm(mean[:, :2] - true_next, axis=1).reshape(P, K).mean(1)
    dis = np.linalg.norm(spread[:, :2], axis=1).reshape(P, K).mean(1)
    return err, dis


def evaluate_model(model, state, cfg: MazeDemoConfig, rng: np.random.Generator) -> dict:
    """One-step error and disagreement on the grid; summary numbers inside / outside the start room."""
    xs, ys, pts = grid_points(cfg.grid_step)
    free = free_mask(pts)
    actions = rng.uniform(-1, 1, (cfg.actions_per_point, 2))
    err, dis = one_step_errors(model, state, pts[free], actions)
    err_map, dis_map = np.full(free.shape, np.nan), np.full(free.shape, np.nan)
    err_map[free], dis_map[free] = err, dis
    inside = in_start_room(pts[free])
    return {
        "xs": xs, "ys": ys, "error_map": err_map, "disagreement_map": dis_map, "error": err, "disagreement": dis,
        "inside": inside,
        "summary": {
            "error_inside": float(err[inside].mean()), "error_outside": float(err[~inside].mean()),
            "error_ratio_outside_inside": float(err[~inside].mean() / err[inside].mean()),
            "disagreement_inside": float(dis[inside].mean()), "disagreement_outside": float(dis[~inside].mean()),
            "corr_pearson_log": pearson(np.log(dis + 1e-6), np.log(err + 1e-6)),
            "corr_spearman": spearman(dis, err),
        },
    }


# --------------------------------------------------------------------------- planning


def _clear_line(start: np.ndarray, goal: np.ndarray) -> bool:
    """The straight segment from start to goal keeps 0.2 clear of every wall."""
    seg = start + np.linspace(0, 1, 60)[:, None] * (goal - start)
    return all(free_mask(seg + d).all() for d in ((0.2, 0.2), (0.2, -0.2), (-0.2, 0.2), (-0.2, -0.2)))


def make_tasks(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Start/goal pairs ``[n, 2, 2]`` at least 2 apart in plain sight of each other (no wall in
    between), both in the start room ("inside") or both beyond its wall ("outside")."""

    def pairs(x_range):
        out = []
        while len(out) < n:
            s, g = random_free_points(rng, 2, x_range, margin=0.3)
            if np.linalg.norm(g - s) > 2.0 and _clear_line(s, g):
                out.append((s, g))
        return np.array(out)

    return {"inside": pairs((0.3, START_ROOM_X - 0.3)), "outside": pairs((5.3, MAZE_SIZE[0] - 0.3))}


def plan_episodes(agent: MPCAgent, env, pairs: np.ndarray, steps: int) -> list[dict]:
    """An MPC episode per (start, goal) pair; success = came within GOAL_RADIUS of the goal."""
    episodes = []
    for start, goal in pairs:
        agent.reset()
        ep = run_episode(env, agent.act, steps, reset_options={"start": start, "goal": goal})
        dist = np.array([i["distance"] for i in ep["infos"]])
        episodes.append({"path": ep["obs"][:, :2], "start": start, "goal": goal,
                         "success": bool((dist < GOAL_RADIUS).any()), "final_distance": float(dist[-1])})
    return episodes


def success_rates(episodes: dict[str, list[dict]]) -> dict[str, float]:
    return {group: float(np.mean([e["success"] for e in eps])) for group, eps in episodes.items()}


# --------------------------------------------------------------------------- figures


def _draw_maze(ax) -> None:
    """Walls in grey, the twisted floor beyond the dividing wall tinted blue."""
    W, H = MAZE_SIZE
    walls = maze_walls()
    ax.axvspan(START_ROOM_X + 1, W, color="tab:blue", alpha=0.06, zorder=0)
    ax.imshow(np.where(walls, 1.0, np.nan), extent=(0, W, 0, H), origin="lower", cmap="Greys", vmin=0, vmax=1.3,
              zorder=3)
    ax.set_xlim(0, W)
    ax.set_ylim(0, H)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_data_and_error(out: Path, data_xy: np.ndarray, ev: dict, title_suffix: str = "") -> None:
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    W, H = MAZE_SIZE
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    ax = axes[0]
    ax.scatter(data_xy[:, 0], data_xy[:, 1], s=1, alpha=0.4, color="tab:blue")
    _draw_maze(ax)
    ax.set_title(f"(a) training data: {len(data_xy)} transitions")
    s = ev["summary"]
    for ax, key, title in ((axes[1], "error_map", f"(b) one-step error (inside {s['error_inside']:.3f}, "
                            f"outside {s['error_outside']:.3f})"),
                           (axes[2], "disagreement_map", "ensemble disagreement")):
        vals = ev[key][np.isfinite(ev[key])]
        im = ax.imshow(ev[key], extent=(0, W, 0, H), origin="lower", cmap="magma",
                       norm=LogNorm(vmin=max(vals.min(), 1e-4), vmax=vals.max()))
        _draw_maze(ax)
        ax.set_title(title, fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.035)
    fig.suptitle(f"Point maze: the model is good where the data is{title_suffix}")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_disagreement_vs_error(out: Path, ev: dict) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    inside = ev["inside"]
    ax.scatter(ev["disagreement"][inside], ev["error"][inside], s=6, alpha=0.6, label="start room (covered)")
    ax.scatter(ev["disagreement"][~inside], ev["error"][~inside], s=6, alpha=0.6, label="rest of the maze")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("ensemble disagreement (std of member means)")
    ax.set_ylabel("true one-step error")
    s = ev["summary"]
    ax.set_title(f"(c) Pearson(log) = {s['corr_pearson_log']:.2f}, Spearman = {s['corr_spearman']:.2f}",
                 fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_planning(out: Path, runs: dict[str, dict[str, list[dict]]]) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs) + 1, figsize=(5.5 * len(runs) + 4.5, 4.2))
    colors = {"inside": "tab:green", "outside": "tab:red"}
    for ax, (name, episodes) in zip(axes, runs.items()):
        for group, eps in episodes.items():
            for e in eps:
                ax.plot(e["path"][:, 0], e["path"][:, 1], color=colors[group], lw=1, alpha=0.8)
                ax.plot(*e["goal"], marker="*" if e["success"] else "x", color=colors[group], ms=9 if e["success"]
                        else 7, mec="k", mew=0.5)
                ax.plot(*e["start"], "o", color="k", ms=2)
        _draw_maze(ax)
        rates = success_rates(episodes)
        ax.set_title(f"{name}: success inside {rates['inside']:.0%}, outside {rates['outside']:.0%}", fontsize=10)
    ax = axes[-1]
    width = 0.8 / len(runs)
    for i, (name, episodes) in enumerate(runs.items()):
        rates = success_rates(episodes)
        ax.bar(np.arange(2) + i * width, [rates["inside"], rates["outside"]], width, label=name)
    ax.set_xticks(np.arange(2) + width * (len(runs) - 1) / 2, ["goals inside\nstart room", "goals outside"])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate")
    ax.legend(fontsize=8)
    ax.set_title("(d) MPC (CEM through the model)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- the demo


def run(cfg: MazeDemoConfig) -> dict:
    """Run the demo; returns the numbers written to ``results.json``."""
    if cfg.quick:
        cfg = _quick(cfg)
    watch = Stopwatch()
    out = Path(cfg.out)
    logger = RunLogger(out, cfg, tensorboard=False)
    rng = np.random.default_rng(cfg.seed)
    key = jax.random.PRNGKey(cfg.seed)
    task = get_task(MAZE_ID)
    model = ModelConfig(ensemble_size=cfg.ensemble_size, num_elites=cfg.ensemble_size, hidden=cfg.hidden,
                        depth=cfg.depth).build(4, 2, task=task)
    trainer = TrainerConfig(batch_size=128, max_epochs=cfg.max_epochs, patience=8, progress=False)
    datasets = {"room data": "room"} | ({"whole-maze data": "all"} if cfg.control else {})

    results: dict = {"env": MAZE_ID, "models": {}}
    runs: dict[str, dict[str, list[dict]]] = {}
    pairs = make_tasks(rng, cfg.goals)
    eval_rng_seed = cfg.seed + 17
    env = make_env(MAZE_ID, seed=cfg.seed)
    planner = make_planner("cem", cfg.horizon, task.action_low, task.action_high, population=cfg.population,
                           elites=max(cfg.population // 10, 5), iterations=cfg.cem_iterations)
    objective = ObjectiveConfig(propagation="tsinf", num_particles=cfg.ensemble_size)
    for i, (name, region) in enumerate(datasets.items()):
        with watch(f"collect {name}"):
            buffer = collect_data(cfg.data_steps, cfg.collect_envs, cfg.seed + 100 * i, region)
        data = buffer.all()
        key, k = jax.random.split(key)
        with watch(f"fit {name}"):
            fitted = fit_on(model, data, k, trainer)
        with watch(f"evaluate {name}"):
            ev = evaluate_model(model, fitted.state, cfg, np.random.default_rng(eval_rng_seed))
        with watch(f"plan {name}"):
            agent = MPCAgent(planner, model, task, objective, MPCConfig(), seed=cfg.seed + i)
            agent.set_model(fitted.state)
            episodes = {g: plan_episodes(agent, env, pairs[g], cfg.mpc_steps) for g in ("inside", "outside")}
        runs[name] = episodes
        xy = data.obs[:, :2]
        tag = "room" if region == "room" else "all"
        plot_data_and_error(out / f"maze_coverage_{tag}.png", xy, ev,
                            "" if region == "room" else " (control: data everywhere)")
        if region == "room":
            plot_disagreement_vs_error(out / "maze_disagreement_vs_error.png", ev)
        results["models"][name] = {
            "data_fraction_in_start_room": float(in_start_room(xy).mean()),
            "fit_epochs": len(fitted.history),
            **ev["summary"],
            "success_inside": success_rates(episodes)["inside"],
            "success_outside": success_rates(episodes)["outside"],
            "final_distance_inside": float(np.mean([e["final_distance"] for e in episodes["inside"]])),
            "final_distance_outside": float(np.mean([e["final_distance"] for e in episodes["outside"]])),
        }
    plot_planning(out / "maze_planning.png", runs)
    results["seconds"] = watch.summary()
    logger.write_json("results.json", results)
    logger.close()

    r = results["models"]["room data"]
    print(f"maze: one-step error inside the covered room {r['error_inside']:.3f}, outside {r['error_outside']:.3f} "
          f"({r['error_ratio_outside_inside']:.1f}x); disagreement-error correlation (Spearman) "
          f"{r['corr_spearman']:.2f}")
    for name, m in results["models"].items():
        print(f"maze: MPC with the {name} model: success inside {m['success_inside']:.0%}, "
              f"outside {m['success_outside']:.0%}")
    print(f"maze: wrote {out}/maze_coverage_room.png, maze_disagreement_vs_error.png, maze_planning.png, "
          f"results.json ({results['seconds']['total']:.0f} s)")
    return results
