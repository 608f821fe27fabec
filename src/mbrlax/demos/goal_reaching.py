"""Goal reaching in the point maze: what ``mbrlax demo goals`` and ``mbrlax demo state-plans`` share.

    data      <- random actions from starts anywhere in the maze (episodes of 50 steps)
    tasks     <- (start, goal) pairs in plain sight of each other, and pairs with a wall in between
    baseline  <- CEM through a probabilistic ensemble fitted on the same data (as in ``demo maze``)
    episode   <- a controller acts until the point is within GOAL_RADIUS (0.4) of the goal (success) or
                 50 steps have passed; every call to the controller is timed

The models beyond the forward model see positions only: the goal in the observation
``[x, y, goal_x, goal_y]`` is a task setting, not a state (``GoalData.positions``,
:func:`position_buffer`). The forward model gets the whole observation; its task hands it the
position alone. Tasks and the baseline have random streams of their own, so both demos measure
the same baseline on the same goals for the same seed.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, NamedTuple

import jax
import numpy as np

from mbrlax.agents.mpc import MPCAgent, MPCConfig
from mbrlax.agents.objective import ObjectiveConfig
from mbrlax.data.buffer import Batch, ReplayBuffer
from mbrlax.data.rollout import collect, random_policy
from mbrlax.data.windows import window_starts, windows_at
from mbrlax.demos.common import Stopwatch, fit_on
from mbrlax.demos.maze import _clear_line, _draw_maze
from mbrlax.envs import get_task, make_env, make_vector_env
from mbrlax.envs.lessons import MAZE_ID, MAZE_STEPS, random_free_points
from mbrlax.models.config import ModelConfig
from mbrlax.models.conditional import ConditionalModel
from mbrlax.models.dynamics import ModelState
from mbrlax.models.kinds import fit_and_evaluate, window_rows
from mbrlax.models.trainer import TrainerConfig
from mbrlax.planning import make_planner
from mbrlax.utils.validate import check_nonempty, check_range, check_seed

GROUPS = ("in sight", "round a wall")
"""Task groups: the straight line from start to goal is clear, or a wall blocks it."""

Act = Callable[[np.ndarray], np.ndarray]  # obs [4] -> action [2]


@dataclass(frozen=True)
class GoalDemoSettings:
    """What the two goal demos (``goals``, ``state-plans``) share: the maze data, the repeats, the goals and
    the forward-model MPC baseline. Each demo's config adds its own models' settings."""

    seed: int = 0
    """Random seed of the first repeat (repeat i uses seed + i)."""
    out: str = "runs/demo-goals"
    """Output folder: the demo's PNG, results.json, config.json."""
    quick: bool = False
    """Shrink the run (one repeat, less data, shorter fits, fewer goals) for a fast check; the tests use it."""
    seeds: int = 3
    """Independent repeats: each collects its own data, fits its own models, draws its own goals."""
    data_steps: int = 8000
    """Random-action transitions per repeat (episodes of 50 steps started anywhere in the maze)."""
    collect_envs: int = 8
    """Parallel environments for data collection."""
    holdout_fraction: float = 0.1
    """Share of the episodes held out to measure the models' errors."""
    goals: int = 20
    """Tasks per group (in sight / round a wall) per repeat."""
    max_rows: int = 30000
    """Training rows per model, drawn from all the rows the data gives."""
    hidden: int = 64
    """Hidden width of the demo's own (inverse and state-space) models."""
    depth: int = 3
    """Hidden layers of the demo's own models."""
    ensemble_size: int = 5
    """Members of each ensemble (the demo's and the forward model's; all are elites)."""
    mpc_hidden: int = 64
    """Hidden width of the forward model (as in demo maze)."""
    mpc_depth: int = 3
    """Hidden layers of the forward model."""
    mpc_max_epochs: int = 80
    """Upper bound on training epochs of the forward model."""
    horizon: int = 12
    """CEM planning horizon."""
    population: int = 100
    """CEM candidate sequences per iteration."""
    cem_iterations: int = 3
    """CEM iterations per plan."""

    def __post_init__(self):
        check_nonempty(self, "out")
        check_seed(self)
        check_range(self, "seeds", "data_steps", "collect_envs", "goals", "max_rows", "hidden", "depth",
                    "ensemble_size", "mpc_hidden", "mpc_depth", "mpc_max_epochs", "horizon", "population",
                    "cem_iterations", ge=1)
        check_range(self, "holdout_fraction", gt=0, lt=1)


class Controller(NamedTuple):
    """Something that acts: ``act(obs[4]) -> action[2]``; ``reset()`` before each episode."""

    act: Act
    reset: Callable[[], None] = lambda: None


class GoalData(NamedTuple):
    """Complete random-action episodes of the maze."""

    obs: np.ndarray  # [B, T+1, 4] each episode's observations [x, y, goal_x, goal_y]
    actions: np.ndarray  # [B, T, 2]
    rewards: np.ndarray  # [B, T]

    @property
    def positions(self) -> np.ndarray:
        """``[B, T+1, 2]``: the states the models beyond the forward model see."""
        return self.obs[..., :2]


# --------------------------------------------------------------------------- data


def collect_random(steps: int, n_envs: int, seed: int) -> GoalData:
    """The complete episodes among ``steps`` random-action transitions started anywhere in the maze."""
    envs = make_vector_env(MAZE_ID, n_envs, seed=seed, start_region="all")
    buffer = ReplayBuffer(steps, 4, 2)
    collect(envs, random_policy(envs.single_action_space, seed), steps, buffer, seed=seed)
    envs.close()
    w = windows_at(buffer, window_starts(buffer, MAZE_STEPS), MAZE_STEPS)  # one window per complete episode
    return GoalData(np.concatenate([w.obs[:, None], w.next_obs], axis=1), w.actions, w.rewards)


def split_episodes(data: GoalData, holdout_fraction: float) -> tuple[GoalData, GoalData]:
    """``(train, held out)``: the last episodes are held out (to measure the models' errors)."""
    cut = len(data.actions) - max(1, int(round(holdout_fraction * len(data.actions))))
    return GoalData(*(a[:cut] for a in data)), GoalData(*(a[cut:] for a in data))


def transitions(data: GoalData) -> Batch:
    """The episodes' transitions as one batch (the forward model's data)."""
    B, T = data.actions.shape[:2]
    last = np.broadcast_to(np.arange(T) == T - 1, (B, T))
    return Batch(data.obs[:, :-1].reshape(B * T, -1), data.actions.reshape(B * T, -1), data.rewards.reshape(-1),
                 data.obs[:, 1:].reshape(B * T, -1), np.zeros(B * T, bool), last.reshape(-1))


def position_buffer(data: GoalData) -> ReplayBuffer:
    """A buffer of position-only transitions, episode after episode (for the kinds that need actions)."""
    batch = transitions(data)
    buf = ReplayBuffer(len(batch.obs), 2, 2)
    buf.add_batch(batch.obs[:, :2], batch.action, batch.reward, batch.next_obs[:, :2], batch.terminated,
                  batch.truncated)
    return buf


def subsample(x: np.ndarray, y: np.ndarray, max_rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_rows`` rows, drawn without replacement."""
    if len(x) <= max_rows:
        return x, y
    idx = rng.choice(len(x), max_rows, replace=False)
    return x[idx], y[idx]


def fit_kind(model: ConditionalModel, x: np.ndarray, y: np.ndarray, key: jax.Array, trainer: TrainerConfig,
             held: tuple[np.ndarray, np.ndarray]) -> tuple[ModelState, dict]:
    """Fit ``model`` on ``(x, y)``; returns its state and its error on held-out rows (NaN NLL as None)."""
    fitted, ev = fit_and_evaluate(model, x, y, held, key, trainer)
    ev = {k: (None if math.isnan(v) else v) for k, v in ev.items()}
    return fitted.state, {**ev, "epochs": len(fitted.history), "rows": len(x)}


def hindsight_rows(buffer: ReplayBuffer, max_n: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-multistep rows ``x = [s_t, s_t+n]``, ``y = a_t`` for every n in 1..max_n: each goal is a
    state the data actually reached n steps later (hindsight relabelling)."""
    rows = [window_rows("inverse-multistep", buffer, n) for n in range(1, max_n + 1)]
    return np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows])


# --------------------------------------------------------------------------- tasks and episodes


def task_rng(seed: int) -> np.random.Generator:
    """The tasks' own random stream: both demos draw the same goals for the same seed."""
    return np.random.default_rng([seed, 1])


def make_tasks(rng: np.random.Generator, n: int, near: tuple[float, float] = (1.5, 4.0),
               blocked: tuple[float, float] = (1.0, 3.0)) -> dict[str, np.ndarray]:
    """``n`` (start, goal) pairs ``[n, 2, 2]`` per group: "in sight" pairs ``near`` apart with a clear
    straight line between them; "round a wall" pairs ``blocked`` apart with a wall on that line."""

    def pairs(dist, clear):
        out = []
        while len(out) < n:
            s, g = random_free_points(rng, 2, margin=0.3)
            if dist[0] < np.linalg.norm(g - s) < dist[1] and _clear_line(s, g) == clear:
                out.append((s, g))
        return np.array(out)

    return {"in sight": pairs(near, True), "round a wall": pairs(blocked, False)}


def run_goal_episode(env, controller: Controller, start: np.ndarray, goal: np.ndarray, steps: int = MAZE_STEPS) -> dict:
    """One episode to ``goal``; stops at success. ``seconds``: wall time of each controller call."""
    controller.reset()
    obs, _ = env.reset(options={"start": start, "goal": goal})
    path, seconds, success = [obs[:2]], [], False
    for _ in range(steps):
        t0 = time.perf_counter()
        action = np.asarray(controller.act(obs), np.float32)
        seconds.append(time.perf_counter() - t0)
        obs, _, _, _, info = env.step(action)
        path.append(obs[:2])
        if info["success"]:
            success = True
            break
    return {"path": np.array(path), "start": start, "goal": goal, "success": success, "steps": len(seconds),
            "seconds": seconds}


def run_tasks(env, controller: Controller, tasks: dict[str, np.ndarray]) -> dict[str, list[dict]]:
    """Every task of every group; the controller is called once beforehand (compile, warm-up)."""
    controller.reset()
    controller.act(np.concatenate([tasks[GROUPS[0]][0, 0], tasks[GROUPS[0]][0, 1]]).astype(np.float32))
    return {g: [run_goal_episode(env, controller, s, goal) for s, goal in pairs] for g, pairs in tasks.items()}


def episode_summary(episodes: dict[str, list[dict]]) -> dict:
    """Success rate per group and overall, and the median seconds per action."""
    rates = {g: float(np.mean([e["success"] for e in eps])) for g, eps in episodes.items()}
    every = [e for eps in episodes.values() for e in eps]
    rates["all"] = float(np.mean([e["success"] for e in every]))
    return {"success": rates, "seconds_per_action": float(np.median([s for e in every for s in e["seconds"]]))}


def over_seeds(per_seed: list[dict]) -> dict:
    """Mean, std and per-seed values of the success rates; the median of the seconds per action."""
    out = {}
    for g in (*GROUPS, "all"):
        vals = [s["success"][g] for s in per_seed]
        out[g] = {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "per_seed": vals}
    return {"success": out, "seconds_per_action": float(np.median([s["seconds_per_action"] for s in per_seed]))}


# --------------------------------------------------------------------------- controllers


def random_controller(seed: int) -> Controller:
    """Uniform random actions (the behaviour policy of the data)."""
    rng = np.random.default_rng(seed)
    return Controller(lambda obs: rng.uniform(-1, 1, 2).astype(np.float32))


def forward_mpc(train: GoalData, seed: int, cfg) -> tuple[Controller, dict]:
    """The baseline: a probabilistic ensemble f(s, a) fitted on the same episodes, CEM through it
    (TS∞ propagation, replanning every step), as in ``demo maze``; sizes from the demo's ``cfg``
    (``ensemble_size``, ``mpc_hidden``, ``mpc_depth``, ``mpc_max_epochs``, ``horizon``,
    ``population``, ``cem_iterations``). Returns it and the model's normalised holdout MSE."""
    task = get_task(MAZE_ID)
    model = ModelConfig(ensemble_size=cfg.ensemble_size, num_elites=cfg.ensemble_size, hidden=cfg.mpc_hidden,
                        depth=cfg.mpc_depth).build(4, 2, task=task)
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 1)  # its own key: the same baseline in both demos
    fitted = fit_on(model, transitions(train), key,
                    TrainerConfig(batch_size=128, max_epochs=cfg.mpc_max_epochs, patience=8, progress=False))
    planner = make_planner("cem", cfg.horizon, task.action_low, task.action_high, population=cfg.population,
                           elites=max(cfg.population // 10, 5), iterations=cfg.cem_iterations)
    agent = MPCAgent(planner, model, task, ObjectiveConfig(propagation="tsinf", num_particles=cfg.ensemble_size),
                     MPCConfig(), seed=seed, notice_slow_plans=False)
    agent.set_model(fitted.state)
    return Controller(agent.act, agent.reset), {"holdout_mse": float(np.mean(fitted.holdout_mse)),
                                                 "epochs": len(fitted.history)}


def with_baselines(controllers: dict[str, Controller], errors: dict, train: GoalData, seed: int, cfg,
                   watch: Stopwatch) -> None:
    """Add forward-model MPC and the random policy to ``controllers`` (and the forward model's error)."""
    with watch("fit forward"):
        controllers["forward MPC"], errors["forward"] = forward_mpc(train, seed, cfg)
    controllers["random"] = random_controller(seed)


def run_controllers(controllers: dict[str, Controller], seed: int, goals: int,
                    watch: Stopwatch) -> dict[str, dict[str, list[dict]]]:
    """Every controller on the same ``goals`` tasks per group, drawn from :func:`task_rng` of ``seed``."""
    tasks = make_tasks(task_rng(seed), goals)
    env = make_env(MAZE_ID, seed=seed)
    episodes = {}
    for name, controller in controllers.items():
        with watch(f"episodes {name}"):
            episodes[name] = run_tasks(env, controller, tasks)
    env.close()
    return episodes


def repeat(one_seed: Callable[[int], tuple[dict, dict]], seed: int, seeds: int) -> tuple[dict, dict, dict]:
    """``one_seed(s) -> (episodes, errors)`` for s = seed .. seed + seeds - 1. Returns the summaries over
    seeds per method, the first seed's episodes (for the figure) and the model errors per seed."""
    per_seed, errors, first = {}, [], None
    for s in range(seed, seed + seeds):
        episodes, err = one_seed(s)
        first = first or episodes
        errors.append(err)
        for name, eps in episodes.items():
            per_seed.setdefault(name, []).append(episode_summary(eps))
    return ({name: over_seeds(v) for name, v in per_seed.items()}, first,
            {k: [e[k] for e in errors] for k in errors[0]})


def print_rates(prefix: str, summaries: dict[str, dict]) -> None:
    """One line per method: success per group (mean ± std over seeds) and ms per action."""
    width = max(len(n) for n in summaries)
    for name, s in summaries.items():
        rates = ", ".join(f"{g} {s['success'][g]['mean']:.0%} ± {s['success'][g]['std']:.0%}" for g in GROUPS)
        print(f"{prefix}: {name:{width}s}  success {rates}; {1000 * s['seconds_per_action']:.2f} ms per action")


# --------------------------------------------------------------------------- figures


def plot_success(ax, summaries: dict[str, dict], title: str) -> None:
    """Bars: mean success per group and method over seeds; dots: the seeds."""
    width = 0.8 / len(summaries)
    x = np.arange(len(GROUPS))
    for i, (name, s) in enumerate(summaries.items()):
        means = [s["success"][g]["mean"] for g in GROUPS]
        ax.bar(x + i * width, means, width, label=f"{name} ({1000 * s['seconds_per_action']:.2f} ms/action)")
        for j, g in enumerate(GROUPS):
            seeds = s["success"][g]["per_seed"]
            ax.plot(np.full(len(seeds), x[j] + i * width), seeds, "k.", ms=4)
    ax.set_xticks(x + width * (len(summaries) - 1) / 2, [f"goals {g}" for g in GROUPS])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate (bars: mean over seeds, dots: seeds)")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(title, fontsize=10)


def plot_paths(ax, episodes: dict[str, list[dict]], title: str) -> None:
    """Executed paths on the maze: green in sight, red round a wall; ★ reached, × missed."""
    colors = dict(zip(GROUPS, ("tab:green", "tab:red")))
    for g, eps in episodes.items():
        for e in eps:
            ax.plot(e["path"][:, 0], e["path"][:, 1], color=colors[g], lw=0.9, alpha=0.8)
            if e["success"]:
                ax.plot(*e["goal"], marker="*", color=colors[g], ms=8, mec="k", mew=0.5)
            else:
                ax.plot(*e["goal"], marker="x", color=colors[g], ms=6, mew=1.5)
            ax.plot(*e["start"], "o", color="k", ms=2)
    _draw_maze(ax)
    rates = episode_summary(episodes)["success"]
    ax.set_title(f"{title}: {rates[GROUPS[0]]:.0%} / {rates[GROUPS[1]]:.0%}", fontsize=9)


def save_figure(out: Path, summaries: dict[str, dict], examples: dict[str, dict[str, list[dict]]], title: str) -> None:
    """Success bars (left) and one seed's paths per method (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(examples)
    cols = math.ceil(math.sqrt(n)) if n > 3 else n
    rows = math.ceil(n / cols)
    fig = plt.figure(figsize=(7 + 4.2 * cols, max(3.2 * rows, 4.5) + 0.4))
    grid = fig.add_gridspec(rows, cols + 2)
    plot_success(fig.add_subplot(grid[:, :2]), summaries, title)
    for i, (name, eps) in enumerate(examples.items()):
        plot_paths(fig.add_subplot(grid[i // cols, 2 + i % cols]), eps, name)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
