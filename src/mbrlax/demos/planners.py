"""Demo: gradient-based versus sampling-based planners as the action space grows (``mbrlax demo planners``).

    problem  <- a point mass in d dimensions (double integrator, actions in [-1, 1]^d), start
                state x0 random, reward -(x' Q x + u' R u): a known, exactly differentiable JAX model
    optimum  <- finite-horizon LQR (backward Riccati recursion); x0 is scaled so that the optimal
                actions stay inside the bounds, so the Riccati solution is also the exact optimum
                of the box-constrained problem
    for each d in dims and each planner (rs, cem, icem, mppi, grad, cem-grad):
        plan once with the same budget of model evaluations; score the plan it returns
    figures  <- normalised return against d (matched compute), against the horizon, and the best
                return seen against model evaluations (anytime curves)

The normalised return is ``(J - J0) / (J* - J0)``: 0 is the all-zero plan (every planner's
starting point, the centre of the bounds), 1 the optimum. The objective hands planners returns
divided by the zero plan's cost (so J0 = -1 whatever d, H or x0), which fixes MPPI's temperature
scale; ranking planners and Adam are unaffected by the scale.

Compute: "model evaluations" count one-step evaluations of the dynamics for one action sequence;
a gradient step counts two per sequence and step (forward and backward pass), so the planners
get matched budgets of ``budget`` sequence evaluations each. Seconds are wall-clock per plan after
compilation, on whatever machine runs the demo. Writes PNGs and ``results.json`` into ``cfg.out``;
``docs/demos_loop_planners.md`` explains how to read them.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mbrlax.errors import ConfigError
from mbrlax.planning import PLANNER_NAMES, make_planner
from mbrlax.utils.run_logger import RunLogger
from mbrlax.utils.validate import check_choice, check_nonempty, check_range, check_seed

PLANNER_LABELS = {"rs": "random shooting", "cem": "CEM", "icem": "iCEM", "mppi": "MPPI",
                  "grad": "gradient (Adam)", "cem-grad": "CEM + gradient"}


@dataclass(frozen=True)
class PlannersDemoConfig:
    """Gradient-based versus sampling-based planners on a d-dimensional point mass with a known optimum."""

    seed: int = 0
    """Random seed (start states and planner keys)."""
    out: str = "runs/demo-planners"
    """Output folder: PNG figures, results.json, config.json."""
    quick: bool = False
    """Shrink the sweep to the largest dimension, no horizon sweep, 2 problems: a fast check for the tests."""
    dims: tuple[int, ...] = (1, 2, 6, 12, 24)
    """Action dimensions d of the point mass (state dimension 2d)."""
    horizon: int = 20
    """Planning horizon of the dimension sweep."""
    horizons: tuple[int, ...] = (10, 50)
    """Extra horizons of the horizon sweep (run at ``horizon_dim``; ``horizon`` is added)."""
    horizon_dim: int = 6
    """Action dimension of the horizon sweep."""
    planners: tuple[str, ...] = ("rs", "cem", "icem", "mppi", "grad", "cem-grad")
    """Planners to compare."""
    budget: int = 2000
    """Sequence evaluations per plan (a gradient step costs 2 per candidate); times H = model evaluations."""
    problems: int = 4
    """Random start states per setting (the mean and spread over them are reported)."""
    dt: float = 0.1
    """Time step of the double integrator."""
    velocity_cost: float = 0.1
    """Weight of the squared velocity in the cost (the position weight is 1)."""
    action_cost: float = 0.01
    """Weight of the squared action in the cost."""
    peak_action: float = 0.8
    """x0 is scaled so the optimal plan's largest |action| is this, in (0, 1) (the bounds stay inactive)."""

    def __post_init__(self):
        check_nonempty(self, "out")
        check_seed(self)
        if not self.dims or not self.planners:
            raise ConfigError("PlannersDemoConfig.dims and PlannersDemoConfig.planners need at least one entry")
        check_choice(self, "planners", PLANNER_NAMES)
        check_range(self, "dims", "horizon", "horizons", "horizon_dim", "problems", ge=1)
        check_range(self, "budget", ge=20)
        check_range(self, "dt", gt=0)
        check_range(self, "velocity_cost", "action_cost", ge=0)
        check_range(self, "peak_action", gt=0, lt=1)


# --------------------------------------------------------------------------- the problem


@dataclass(frozen=True)
class PointMass:
    """``x = [p (d), v (d)]``; ``v' = v + dt u``, ``p' = p + dt v'`` (semi-implicit Euler)."""

    dim: int
    dt: float
    velocity_cost: float
    action_cost: float

    def matrices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``A [2d, 2d]``, ``B [2d, d]``, ``Q [2d, 2d]``, ``R [d, d]`` in float64."""
        d, dt, eye = self.dim, self.dt, np.eye(self.dim)
        A = np.block([[eye, dt * eye], [np.zeros((d, d)), eye]])
        B = np.vstack([dt * dt * eye, dt * eye])
        Q = np.diag(np.concatenate([np.ones(d), np.full(d, self.velocity_cost)]))
        R = self.action_cost * eye
        return A, B, Q, R

    def lqr(self, x0: np.ndarray, horizon: int) -> tuple[np.ndarray, float]:
        """Optimal actions ``[H, d]`` and cost of ``sum_t x_{t+1}' Q x_{t+1} + u_t' R u_t`` (Riccati)."""
        A, B, Q, R = self.matrices()
        P, gains = np.zeros_like(Q), []  # value x' P x of the cost-to-go; zero after the horizon
        for _ in range(horizon):
            S = Q + P
            K = np.linalg.solve(R + B.T @ S @ B, B.T @ S @ A)
            P = A.T @ S @ A - A.T @ S @ B @ K
            gains.append(K)
        x, actions = x0.copy(), []
        for K in reversed(gains):
            u = -K @ x
            actions.append(u)
            x = A @ x + B @ u
        return np.array(actions), float(x0 @ P @ x0)

    def cost(self, x0: np.ndarray, actions: np.ndarray) -> float:
        """Cost of ``actions [H, d]`` from ``x0`` (NumPy, float64)."""
        A, B, Q, R = self.matrices()
        x, total = x0.copy(), 0.0
        for u in actions:
            x = A @ x + B @ u
            total += x @ Q @ x + u @ R @ u
        return float(total)

    def objective(self, x0: jax.Array, scale: jax.Array, key: jax.Array, actions: jax.Array) -> jax.Array:
        """``actions [N, H, d] -> [N]``: minus the cost divided by ``scale`` (the zero plan's cost).

        Deterministic (``key`` unused) and exactly differentiable.
        """
        del key
        A, B, Q, R = (jnp.asarray(m, jnp.float32) for m in self.matrices())

        def step(x, u):  # x [N, 2d], u [N, d]
            x = x @ A.T + u @ B.T
            c = jnp.einsum("ni,ij,nj->n", x, Q, x) + jnp.einsum("ni,ij,nj->n", u, R, u)
            return x, c

        x = jnp.broadcast_to(x0, (actions.shape[0], x0.shape[-1]))
        _, costs = jax.lax.scan(step, x, jnp.swapaxes(actions, 0, 1))  # [H, N]
        return -costs.sum(0) / scale


def make_problem(system: PointMass, horizon: int, peak_action: float, rng: np.random.Generator) -> dict:
    """A start state scaled so the optimal plan peaks at ``peak_action``; its optimum and zero-plan cost."""
    d = system.dim
    x0 = np.concatenate([rng.normal(size=d), 0.5 * rng.normal(size=d)])
    u_star, _ = system.lqr(x0, horizon)
    x0 = x0 * peak_action / np.max(np.abs(u_star))
    u_star, c_star = system.lqr(x0, horizon)
    c_zero = system.cost(x0, np.zeros((horizon, d)))
    assert abs(system.cost(x0, u_star) - c_star) < 1e-6 * max(c_zero, 1.0)
    return {"x0": x0, "u_star": u_star, "cost_star": c_star, "cost_zero": c_zero,
            # normalised units of the objective: J0 = -1, J* = -c*/c0
            "return_star": -c_star / c_zero}


# --------------------------------------------------------------------------- planners at one budget


RS_ROUNDS = 8  # random shooting runs as this many rounds of budget / RS_ROUNDS samples (for its curve)


def build_planner(name: str, horizon: int, dim: int, budget: int):
    """Planner ``name`` with settings that spend about ``budget`` sequence evaluations per plan.

    Random shooting gets ``budget / RS_ROUNDS`` samples per round; :func:`run_setting` runs
    ``RS_ROUNDS`` rounds and keeps the best, which is random shooting with the whole budget.
    """
    low, high = [-1.0] * dim, [1.0] * dim
    if name == "rs":
        return make_planner("rs", horizon, low, high, population=max(budget // RS_ROUNDS, 1))
    if name == "cem":
        pop = max(budget // 10, 10)
        return make_planner("cem", horizon, low, high, population=pop, elites=max(pop // 10, 2), iterations=10)
    if name == "icem":
        # iCEM's populations decay by 1.25 per iteration: 4 iterations sum to ~2.95 first populations
        pop = max(int(budget / 2.95), 20)
        return make_planner("icem", horizon, low, high, population=pop, elites=max(pop // 10, 4), iterations=4)
    if name == "mppi":
        # PDDM's Baoding noise (0.9 half ranges) and filter (beta 0.6) fail on this problem
        # (normalised returns -11 and -22 at d = 24): its optimum needs small, smooth corrections.
        # A small sweep on d = 2 and 24 picked noise 0.1, no filter, gamma 20 (returns in units
        # of the zero plan's cost); see docs/demos_loop_planners.md.
        return make_planner("mppi", horizon, low, high, population=max(budget // 10, 10), iterations=10,
                            noise_std=0.1, beta=1.0, gamma=20.0)
    if name == "grad":
        return make_planner("grad", horizon, low, high, candidates=10, steps=max(budget // 20, 1))
    if name == "cem-grad":
        pop = max(budget // 20, 10)
        return make_planner("cem-grad", horizon, low, high,
                            cem=dict(population=pop, elites=max(pop // 10, 2), iterations=10),
                            grad=dict(candidates=5, steps=max(budget // 20, 1)))
    raise ConfigError(f"unknown planner {name!r}; choose from {PLANNER_NAMES}")


def evaluations(name: str, planner, info: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per iteration: cumulative sequence evaluations ``[I]`` and the best return seen so far ``[I]``.

    A gradient step counts 2 per candidate (forward + backward); iterations that did not run
    (CEM's early stop) are dropped.
    """
    def hist(planner, info, per_iter):
        best = np.asarray(info["max_return"], np.float64)
        n = int(info["iterations"])
        return np.cumsum(np.asarray(per_iter[:n], np.float64)), best[:n]

    if name == "rs":  # info["max_return"]: [RS_ROUNDS, 1], one round per row
        best = np.asarray(info["max_return"], np.float64).reshape(-1)
        return planner.population * np.arange(1.0, len(best) + 1), best
    if name in ("cem", "mppi"):
        return hist(planner, info, [planner.population] * planner.iterations)
    if name == "icem":
        return hist(planner, info, [n + planner.n_keep for n in planner.populations])
    if name == "grad":
        return hist(planner, info, [2 * planner.candidates] * planner.steps)
    if name == "cem-grad":
        e1, b1 = hist(planner.cem, info["cem"], [planner.cem.population] * planner.cem.iterations)
        e2, b2 = hist(planner.grad, info["grad"], [2 * planner.grad.candidates] * planner.grad.steps)
        return np.concatenate([e1, e1[-1] + e2]), np.concatenate([b1, b2])
    raise ConfigError(f"unknown planner {name!r}")


def run_setting(name: str, system: PointMass, horizon: int, budget: int, problems: list[dict],
                key: jax.Array) -> dict:
    """Plan once per problem with one planner; score the returned plans; time the plans."""
    planner = build_planner(name, horizon, system.dim, budget)

    @jax.jit
    def plan(x0, scale, key):
        objective = partial(system.objective, x0, scale)
        k_init, k_plan = jax.random.split(key)
        if name != "rs":
            actions, _, info = planner.plan(planner.init(k_init), objective, k_plan)
        else:  # RS_ROUNDS rounds of random shooting; the best of all of them wins
            def one_round(_, k):
                actions, _, info = planner.plan(planner.init(k_init), objective, k)
                return None, (actions, info)

            _, (all_actions, info) = jax.lax.scan(one_round, None, jax.random.split(k_plan, RS_ROUNDS))
            actions = all_actions[jnp.argmax(info["best_return"])]
        return actions, info

    scores, seconds, curves, compile_s = [], [], [], 0.0
    for i, p in enumerate(problems):
        args = (jnp.asarray(p["x0"], jnp.float32), jnp.float32(p["cost_zero"]), jax.random.fold_in(key, i))
        if i == 0:
            t0 = time.perf_counter()
            jax.block_until_ready(plan(*args))
            compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        actions, info = jax.block_until_ready(plan(*args))
        seconds.append(time.perf_counter() - t0)
        # score the returned plan in float64 (the objective's float32 agrees to ~1e-6 relative)
        cost = system.cost(p["x0"], np.asarray(actions, np.float64))
        scores.append(normalise(-cost / p["cost_zero"], p["return_star"]))
        evals, best = evaluations(name, planner, info)
        curves.append((evals, normalise(np.maximum.accumulate(best), p["return_star"])))
    evals = curves[0][0]
    return {"planner": name, "dim": system.dim, "horizon": horizon,
            "score_mean": float(np.mean(scores)), "score_min": float(np.min(scores)),
            "score_max": float(np.max(scores)), "scores": [float(s) for s in scores],
            "sequence_evaluations": float(evals[-1]), "model_evaluations": float(evals[-1] * horizon),
            "seconds_per_plan": float(np.median(seconds)), "compile_seconds": compile_s,
            "curve_model_evaluations": (evals * horizon).tolist(),
            "curve_score": np.mean([c[1] for c in curves], axis=0).tolist()}


def normalise(ret, ret_star):
    """``(J - J0) / (J* - J0)`` with ``J0 = -1`` (returns in units of the zero plan's cost)."""
    return (np.asarray(ret, np.float64) + 1.0) / (ret_star + 1.0)


# --------------------------------------------------------------------------- figures


def _plot(results: list[dict], cfg: PlannersDemoConfig, horizons: list[int], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = dict(zip(PLANNER_LABELS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    files = []

    styles = {"rs": ("o", "-"), "cem": ("s", "-"), "icem": ("^", "-"), "mppi": ("D", "-"),
              "grad": ("o", "--"), "cem-grad": ("x", ":")}
    floor = -1.0  # the y axis stops here; points below it are drawn on it as down-triangles

    def sweep(ax, key, values, fixed):
        for index, name in enumerate(cfg.planners):
            rows = sorted((r for r in results if r["planner"] == name and r[fixed[0]] == fixed[1]
                           and r[key] in values), key=lambda r: r[key])
            if not rows:
                continue
            x = np.array([r[key] for r in rows])
            y = np.array([r["score_mean"] for r in rows])
            lo = np.array([r["score_min"] for r in rows])
            hi = np.array([r["score_max"] for r in rows])
            marker, ls = styles.get(name, ("o", "-"))
            shown = np.maximum(y, floor)
            ax.errorbar(x, shown, yerr=[shown - np.maximum(lo, floor), np.maximum(hi, floor) - shown],
                        marker=marker, ls=ls, capsize=3, label=PLANNER_LABELS[name], color=colours[name])
            below = y < floor
            if below.any():
                ax.scatter(x[below], np.full(below.sum(), floor), marker="v", s=60, color=colours[name], zorder=3)
                for xi, yi in zip(x[below], y[below]):
                    ax.annotate(f"{yi:.1f}", (xi, floor), textcoords="offset points", xytext=(4, 6 + 9 * index),
                                fontsize=7, color=colours[name])
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.axhline(0.0, color="grey", lw=0.8, ls=":")
        ax.set_ylim(floor - 0.05, 1.1)
        ax.set_ylabel("normalised return (1 = LQR optimum, 0 = zero plan)")
        ax.grid(alpha=0.3)

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    sweep(ax, "dim", cfg.dims, ("horizon", cfg.horizon))
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(cfg.dims), [str(d) for d in cfg.dims])
    ax.set_xlabel("action dimension d")
    ax.set_title(f"Point mass, H = {cfg.horizon}, {cfg.budget} sequence evaluations per plan")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "return_vs_dimension.png", dpi=110)
    plt.close(fig)
    files.append("return_vs_dimension.png")

    if len(horizons) > 1:
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        sweep(ax, "horizon", horizons, ("dim", cfg.horizon_dim))
        ax.set_xlabel("horizon H")
        ax.set_title(f"Point mass, d = {cfg.horizon_dim}, {cfg.budget} sequence evaluations per plan")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "return_vs_horizon.png", dpi=110)
        plt.close(fig)
        files.append("return_vs_horizon.png")

    curve_dims = sorted({min(cfg.dims), max(cfg.dims)})
    fig, axes = plt.subplots(1, len(curve_dims), figsize=(6 * len(curve_dims), 4.5), squeeze=False)
    for ax, d in zip(axes[0], curve_dims):
        lowest = 1.0
        for name in cfg.planners:
            row = next((r for r in results if r["planner"] == name and r["dim"] == d
                        and r["horizon"] == cfg.horizon), None)
            if row is None:
                continue
            x, y = row["curve_model_evaluations"], row["curve_score"]
            ax.plot(x, y, marker="o" if len(x) == 1 else None, ms=6, label=PLANNER_LABELS[name],
                    color=colours[name], ls=styles.get(name, ("o", "-"))[1])
            # the plan the planner returns (CEM and MPPI return a mean, not the best sample)
            ax.scatter([row["model_evaluations"]], [max(row["score_mean"], floor)], marker="*", s=120,
                       color=colours[name], edgecolors="k", linewidths=0.5, zorder=3)
            lowest = min(lowest, row["score_mean"], *y)
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_ylim(max(floor, lowest) - 0.05, 1.05)
        ax.set_xlabel("model evaluations (one-step, per sequence; gradient: forward + backward)")
        ax.set_ylabel("best normalised return seen (star: returned plan)")
        ax.set_title(f"d = {d}, H = {cfg.horizon}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "return_vs_evaluations.png", dpi=110)
    plt.close(fig)
    files.append("return_vs_evaluations.png")
    return files


# --------------------------------------------------------------------------- the demo


def run(cfg: PlannersDemoConfig) -> dict:
    """Run the sweeps; print the table; write ``results.json`` and the figures into ``cfg.out``."""
    start, cpu_start = time.perf_counter(), time.process_time()
    dims, horizons, n_problems = cfg.dims, sorted({cfg.horizon, *cfg.horizons}), cfg.problems
    if cfg.quick:
        dims, horizons, n_problems = (max(cfg.dims),), [cfg.horizon], min(cfg.problems, 2)
    cfg_run = cfg if not cfg.quick else dataclasses.replace(cfg, dims=tuple(dims), horizons=(), problems=n_problems)
    out = Path(cfg.out)
    logger = RunLogger(out, cfg, tensorboard=False)
    settings = [(d, cfg.horizon) for d in dims]
    if not cfg.quick:
        settings += [(cfg.horizon_dim, h) for h in horizons if (cfg.horizon_dim, h) not in settings]

    results = []
    key = jax.random.PRNGKey(cfg.seed)
    for si, (d, h) in enumerate(settings):
        system = PointMass(d, cfg.dt, cfg.velocity_cost, cfg.action_cost)
        rng = np.random.default_rng([cfg.seed, d, h])
        problems = [make_problem(system, h, cfg.peak_action, rng) for _ in range(n_problems)]
        for pi, name in enumerate(cfg.planners):
            row = run_setting(name, system, h, cfg.budget, problems, jax.random.fold_in(key, 1000 * si + pi))
            results.append(row)
            logger.log({k: v for k, v in row.items() if not isinstance(v, list)}, step_key="dim")
            print(f"d={d:3d} H={h:3d} {name:9s} normalised return {row['score_mean']:7.3f} "
                  f"[{row['score_min']:6.3f}, {row['score_max']:6.3f}]  "
                  f"{row['model_evaluations']:9.0f} model evals  {1000 * row['seconds_per_plan']:7.1f} ms/plan "
                  f"(compile {row['compile_seconds']:.1f} s)")

    files = _plot(results, cfg_run, [h for h in horizons], out)
    top = max(dims)
    at_top = {r["planner"]: r["score_mean"] for r in results if r["dim"] == top and r["horizon"] == cfg.horizon}
    summary = {"dims": list(dims), "horizon": cfg.horizon, "horizons": horizons, "budget": cfg.budget,
               "problems": n_problems, "results": results,
               "score_at_max_dim": at_top,
               "score_by_dim": {name: {str(r["dim"]): r["score_mean"] for r in results
                                       if r["planner"] == name and r["horizon"] == cfg.horizon}
                                for name in cfg.planners},
               "figures": files, "seconds": round(time.perf_counter() - start, 1),
               "cpu_seconds": round(time.process_time() - cpu_start, 1)}
    logger.write_json("results.json", summary)
    logger.close()
    print(f"normalised return at d = {top}, H = {cfg.horizon} (1 = optimum): "
          + ", ".join(f"{k} {v:.3f}" for k, v in at_top.items()))
    print(f"wrote {out}/results.json and {', '.join(files)} in {summary['seconds']} s "
          f"({summary['cpu_seconds']} s of CPU)")
    return summary

