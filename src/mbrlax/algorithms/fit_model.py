"""``mbrlax fit-model``: collect random data, fit an ensemble, report how well it predicts.

Reads top to bottom: collect → fit → evaluate on held-out real episodes → plot and save.
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
from mbrlax.models.config import ModelConfig
from mbrlax.models.diagnostics import horizon_errors, plot_horizon_errors
from mbrlax.models.trainer import TrainerConfig, fit
from mbrlax.utils.checkpoint import save_pytree
from mbrlax.utils.plots import plot_learning_curve
from mbrlax.utils.run_logger import RunLogger
from mbrlax.utils.validate import check_nonempty, check_range, check_seed


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
    """Longest open-loop prediction horizon evaluated."""
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self):
        check_nonempty(self, "env", "out")
        check_seed(self)
        check_range(self, "transitions", "num_envs", "eval_episodes", "eval_episode_steps", "horizon", ge=1)


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
    envs = make_vector_env(cfg.env, cfg.num_envs, seed=cfg.seed)
    buffer = ReplayBuffer(cfg.transitions, obs_dim, act_dim)
    collect(envs, random_policy(env.action_space, cfg.seed), cfg.transitions, buffer, seed=cfg.seed, progress=True)
    envs.close()
    buffer.save(out / "buffer.npz")
    t_collect = time.time() - t0

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
