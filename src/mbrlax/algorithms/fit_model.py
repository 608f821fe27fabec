"""``mbrlax fit-model``: collect random data, fit a model, report how well it predicts.

Reads top to bottom: collect → fit → evaluate on held-out real episodes → plot and save.
``--kind forward`` (the default) fits the dynamics ensemble the planners use and measures its
open-loop error against the horizon. Any other kind (:mod:`mbrlax.models.kinds`: inverse,
multi-step and sequence inverse, action-free, interpolation, joint) is fitted once per window
length n in (1, 2, 5, 10, 20, ...) up to ``--horizon`` (once, n = 1, for kinds without n), and
its held-out error and NLL on the windows of fresh real episodes are reported against n.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np

from mbrlax.data.buffer import ReplayBuffer
from mbrlax.data.rollout import collect, collect_episodes, random_policy
from mbrlax.envs import get_task, make_env, make_vector_env
from mbrlax.models.conditional import HEADS, ConditionalModel
from mbrlax.models.config import ModelConfig
from mbrlax.models.diagnostics import horizon_errors, plot_horizon_errors
from mbrlax.models.kinds import KINDS, build_model, fit_and_evaluate, get_kind, window_rows
from mbrlax.models.trainer import FitResult, TrainerConfig, fit
from mbrlax.utils.checkpoint import save_pytree
from mbrlax.utils.plots import plot_learning_curve
from mbrlax.utils.run_logger import RunLogger
from mbrlax.utils.validate import check_choice, check_nonempty, check_range, check_seed

WINDOW_LENGTHS = (1, 2, 5, 10, 20)
"""The n at which a kind with a horizon is fitted and scored (those up to ``--horizon``, and the horizon)."""


@dataclass(frozen=True)
class FitModelConfig:
    """Fit a dynamics model on random-policy data and measure its multi-step error."""

    env: str = "HalfCheetah-v5"
    """Gymnasium environment id (any env with a Box action space)."""
    seed: int = 0
    """Random seed for data, initialisation and training."""
    out: str = "runs/fit-model"
    """Output folder: config.json, metrics.csv, plots, checkpoint."""
    transitions: int = 10_000
    """Random-policy transitions to collect for training."""
    num_envs: int = 4
    """Parallel environments used for collection."""
    eval_episodes: int = 4
    """Held-out real episodes (fresh seeds) for the multi-step error."""
    eval_episode_steps: int = 200
    """Steps kept per held-out episode."""
    horizon: int = 30
    """Longest open-loop horizon (forward) or largest window length n (other kinds) evaluated."""
    kind: str = "forward"
    """Model kind: forward, inverse, inverse-multistep, inverse-sequence, action-free, interpolation, joint."""
    head: str = "gaussian"
    """Output head of the other kinds: gaussian, mixture, flow or deterministic (forward: --model.probabilistic)."""
    components: int = 5
    """Mixture components (--head mixture)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self):
        check_nonempty(self, "env", "out")
        check_seed(self)
        check_range(self, "transitions", "num_envs", "eval_episodes", "eval_episode_steps", "horizon", "components", ge=1)
        check_choice(self, "kind", KINDS)
        check_choice(self, "head", HEADS)


def run(cfg: FitModelConfig) -> dict:
    """Collect, fit, evaluate; write everything to ``cfg.out`` and return the summary numbers."""
    out = Path(cfg.out)
    logger = RunLogger(out, cfg)
    env = make_env(cfg.env, seed=cfg.seed)
    task = get_task(cfg.env)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    model = cfg.model.build_for_task(obs_dim, act_dim, task)
    key = jax.random.PRNGKey(cfg.seed)

    t0 = time.time()
    buffer = random_data(cfg.env, cfg.transitions, cfg.num_envs, cfg.seed, progress=True)
    buffer.save(out / "buffer.npz")
    t_collect = time.time() - t0

    if cfg.kind != "forward":
        return _run_kind(cfg, env, buffer, logger, key, t_collect)
    key, k_init, k_fit = jax.random.split(key, 3)
    result = fit(model, model.init(k_init), buffer.all(), k_fit, cfg.trainer)
    for row in result.history:
        logger.log({**row, "env_steps": len(buffer)}, step_key="epoch")
    save_pytree(out / "model.ckpt", result.state)

    episodes = collect_episodes(env, random_policy(env.action_space, cfg.seed + 10_000), cfg.eval_episodes,
                                seed=cfg.seed + 10_000, max_steps=cfg.eval_episode_steps)
    horizon = min(cfg.horizon, min(len(a) for _, a in episodes))
    errors = horizon_errors(model, result.state, episodes, horizon)
    plot_horizon_errors(errors, out / "model_error_vs_horizon.png", title=f"{cfg.env}: {len(buffer)} random transitions")
    plot_learning_curve(logger.rows, out / "training_curve.png", x="epoch", y="holdout_mse", title="holdout MSE (normalised)")

    picks = [h for h in (1, 5, 10, 20, 30) if h <= horizon]
    summary = {
        "env": cfg.env, "transitions": len(buffer), "epochs": len(result.history),
        "collect_seconds": t_collect, "fit_seconds": result.history[-1]["seconds"] if result.history else 0.0,
        "holdout_one_step_normalised_mse": float(np.mean(np.sort(result.holdout_mse)[: model.num_elites])),
        "ensemble_error_at_horizon": {h: float(errors.ensemble[h - 1]) for h in picks},
        "member_error_at_horizon": {h: errors.per_member[:, h - 1].tolist() for h in picks},
        "disagreement_at_horizon": {h: float(errors.disagreement[h - 1]) for h in picks},
        "disagreement_error_log_correlation": errors.correlation,
    }
    logger.write_json("results.json", summary)
    logger.close()
    print(f"\n{cfg.env}: fitted on {len(buffer)} transitions in {summary['fit_seconds']:.1f}s "
          f"({summary['epochs']} epochs); holdout one-step normalised MSE (elites) = "
          f"{summary['holdout_one_step_normalised_mse']:.4f}")
    print("held-out episodes, open-loop normalised MSE:")
    for h in picks:
        print(f"  horizon {h:>2}: ensemble {errors.ensemble[h - 1]:.4f}   members "
              f"{np.min(errors.per_member[:, h - 1]):.4f}..{np.max(errors.per_member[:, h - 1]):.4f}   "
              f"disagreement {errors.disagreement[h - 1]:.4f}")
    print(f"log-corr(disagreement, error) one step: {errors.correlation:.2f}")
    print(f"wrote {out}/model_error_vs_horizon.png, results.json, metrics.csv, model.ckpt")
    return summary


def random_data(env_id: str, steps: int, num_envs: int, seed: int, progress: bool = False) -> ReplayBuffer:
    """``steps`` random-policy transitions from ``num_envs`` parallel copies of the env, seeded by ``seed``."""
    envs = make_vector_env(env_id, num_envs, seed=seed)
    buffer = ReplayBuffer(steps, envs.single_observation_space.shape[0], envs.single_action_space.shape[0])
    collect(envs, random_policy(envs.single_action_space, seed), steps, buffer, seed=seed, progress=progress)
    envs.close()
    return buffer


def window_lengths(kind: str, horizon: int) -> list[int]:
    """The n a kind is fitted at: 1 for kinds without n, else ``WINDOW_LENGTHS`` up to ``horizon``, and ``horizon``."""
    if get_kind(kind).fixed_n:
        return [1]
    return sorted({n for n in WINDOW_LENGTHS if n <= horizon} | {horizon})


def fit_kind(kind: str, obs_dim: int, act_dim: int, n: int, train, test, key: jax.Array, trainer: TrainerConfig,
             **settings) -> tuple[ConditionalModel, FitResult, dict]:
    """Fit ``kind`` at window length n on ``train`` (a buffer or observation episodes) and score it on
    the windows of ``test``: returns the model, the fit and ``{"mse", "nll", "epochs", "fit_seconds", ...}``."""
    model = build_model(kind, obs_dim, act_dim, n, **settings)
    x, y = window_rows(kind, train, n)
    xt, yt = window_rows(kind, test, n)
    t0 = time.time()
    result, scores = fit_and_evaluate(model, x, y, (xt, yt), key, trainer)
    return model, result, {"n": n, **scores, "epochs": len(result.history), "fit_seconds": time.time() - t0,
                           "train_rows": len(x), "test_rows": len(xt)}


def _run_kind(cfg: FitModelConfig, env, buffer: ReplayBuffer, logger: RunLogger, key: jax.Array, t_collect: float) -> dict:
    """Fit a model kind at each window length and score it on windows of fresh real episodes."""
    out = Path(cfg.out)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    test = random_data(cfg.env, cfg.eval_episodes * cfg.eval_episode_steps, cfg.num_envs, cfg.seed + 10_000)  # other seeds
    m = cfg.model
    settings = dict(head=cfg.head, components=cfg.components, ensemble_size=m.ensemble_size,
                    num_elites=m.num_elites, hidden=m.hidden, depth=m.depth, activation=m.activation)
    rows = []
    for n in window_lengths(cfg.kind, cfg.horizon):
        key, k = jax.random.split(key)
        _, result, scores = fit_kind(cfg.kind, obs_dim, act_dim, n, buffer, test, k, cfg.trainer, **settings)
        for row in result.history:
            logger.log({**row, "n": n}, step_key="epoch")
        save_pytree(out / f"model_n{n}.ckpt", result.state)
        rows.append(scores)
        print(f"{cfg.kind} n={n:>2}: held-out normalised MSE {scores['mse']:.4f}, NLL/dim {scores['nll']:.3f} "
              f"({scores['epochs']} epochs, {scores['fit_seconds']:.1f}s)")
    plot_kind_errors(rows, out / "model_error_vs_n.png", f"{cfg.env}: {KINDS[cfg.kind].formula}, {cfg.head} head")
    summary = {"env": cfg.env, "kind": cfg.kind, "formula": KINDS[cfg.kind].formula, "head": cfg.head,
               "transitions": len(buffer), "collect_seconds": t_collect, "by_n": rows}
    logger.write_json("results.json", summary)
    logger.close()
    print(f"wrote {out}/model_error_vs_n.png, results.json, metrics.csv, model_n*.ckpt")
    return summary


def plot_kind_errors(rows: list[dict], path: Path, title: str) -> None:
    """Held-out MSE and NLL against the window length n (one marker per fitted n)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["n"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, k, label in zip(axes, ("mse", "nll"), ("held-out MSE (normalised)", "held-out NLL per dim (normalised)")):
        ax.plot(n, [r[k] for r in rows], "o-")
        ax.set_xlabel("window length n")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
