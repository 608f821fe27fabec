"""``mbrlax fit-model``'s diagnostics: the numbers are the right ones, not just finite.

A hand-built ensemble with known predictions on a known system gives every number of
:func:`horizon_errors` in closed form; a short run checks that the summary reports them at the
horizons it names.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrlax.algorithms import fit_model
from mbrlax.models.diagnostics import horizon_errors
from mbrlax.models.dynamics import DynamicsModel
from mbrlax.models.config import ModelConfig
from mbrlax.models.ensemble import EnsembleConfig
from mbrlax.models.normalizer import Normalizer
from mbrlax.models.trainer import TrainerConfig

SLOPES = np.array([0.0, 0.1, 0.3])  # member e predicts s' = s + DRIFT + SLOPES[e] * s
DRIFT, TRUE_DRIFT, SIGMA = 0.1, 0.15, 2.0  # true system: s' = s + TRUE_DRIFT; the training data's obs std SIGMA


def linear_members():
    """3 deterministic ReLU members computing ``Δ = DRIFT + SLOPES[e] s`` exactly (relu(z) - relu(-z) = z),
    with an input normaliser of std SIGMA (the diagnostics' unit of error)."""
    model = DynamicsModel(EnsembleConfig(1, 1, ensemble_size=3, hidden=2, depth=1, activation="relu",
                                         probabilistic=False), num_elites=3)
    state = model.init(jax.random.PRNGKey(0))
    w0 = jnp.zeros((3, 2, 2)).at[:, 0, 0].set(1.0).at[:, 0, 1].set(-1.0)  # input (s/SIGMA, action)
    w1 = jnp.zeros((3, 2, 1)).at[:, 0, 0].set(SLOPES * SIGMA).at[:, 1, 0].set(-SLOPES * SIGMA)
    layers = [{"w": w0, "b": jnp.zeros((3, 1, 2))}, {"w": w1, "b": jnp.full((3, 1, 1), DRIFT)}]
    state = state.replace(params={**state.params, "layers": layers},
                          input_norm=Normalizer(jnp.zeros(2), jnp.array([SIGMA, 1.0])))
    return model, state


def episodes(starts=(-1.0, 0.5, 2.0), T=6):
    """Real episodes ``(obs[T+1, 1], actions[T, 1])`` of the true system."""
    return [((s0 + TRUE_DRIFT * np.arange(T + 1))[:, None].astype(np.float32), np.zeros((T, 1), np.float32))
            for s0 in starts]


def test_horizon_errors_match_the_closed_form():
    model, state = linear_members()
    H = 3
    errors = horizon_errors(model, state, episodes(), H)
    # by hand: every window start s (4 per episode), every member's open-loop prediction
    starts = np.concatenate([obs[: len(obs) - H, 0] for obs, _ in episodes()])  # [12]
    pred = np.zeros((len(starts), 3, H))
    s = np.repeat(starts[:, None], 3, 1)
    for h in range(H):
        s = s + DRIFT + SLOPES * s
        pred[:, :, h] = s
    truth = starts[:, None] + TRUE_DRIFT * np.arange(1, H + 1)  # [12, H]
    per_member = ((pred - truth[:, None]) ** 2).mean(0) / SIGMA**2
    np.testing.assert_allclose(errors.per_member, per_member, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(errors.per_member[0], (0.05 * np.arange(1, H + 1)) ** 2 / SIGMA**2, rtol=1e-4)
    np.testing.assert_allclose(errors.ensemble, ((pred.mean(1) - truth) ** 2).mean(0) / SIGMA**2, rtol=1e-4)
    np.testing.assert_allclose(errors.disagreement, pred.var(1).mean(0) / SIGMA**2, rtol=1e-4)
    assert np.all(np.diff(errors.ensemble) > 0)  # open-loop error grows with the horizon
    # one step: error (mean slope x s - 0.05)^2, disagreement var(slopes) s^2; their logs' correlation
    e1, d1 = (SLOPES.mean() * starts - 0.05) ** 2 / SIGMA**2, SLOPES.var() * starts**2 / SIGMA**2
    np.testing.assert_allclose(errors.one_step_error, e1, rtol=1e-3)
    np.testing.assert_allclose(errors.one_step_disagreement, d1, rtol=1e-3)
    assert errors.correlation == pytest.approx(np.corrcoef(np.log(d1), np.log(e1))[0, 1], abs=1e-3)
    assert abs(errors.correlation - np.corrcoef(d1, e1)[0, 1]) > 0.05  # log, not linear, correlation


def test_fit_model_summary_reports_the_diagnostics_at_the_horizons_it_names(tmp_path, monkeypatch):
    seen = {}

    def recording(*args, **kwargs):
        seen["errors"] = horizon_errors(*args, **kwargs)
        return seen["errors"]

    monkeypatch.setattr(fit_model, "horizon_errors", recording)
    cfg = fit_model.FitModelConfig(
        env="Pendulum-v1", seed=0, out=str(tmp_path), transitions=400, num_envs=2, eval_episodes=2,
        eval_episode_steps=30, horizon=10,
        model=ModelConfig(ensemble_size=3, num_elites=2, hidden=32, depth=2),
        trainer=TrainerConfig(max_epochs=30, patience=30, batch_size=32, progress=False))
    summary = fit_model.run(cfg)
    errors = seen["errors"]
    assert json.loads((tmp_path / "results.json").read_text()) == json.loads(json.dumps(summary))
    for h in (1, 5, 10):
        assert summary["ensemble_error_at_horizon"][h] == pytest.approx(float(errors.ensemble[h - 1]))
        assert summary["member_error_at_horizon"][h] == pytest.approx(errors.per_member[:, h - 1].tolist())
        assert summary["disagreement_at_horizon"][h] == pytest.approx(float(errors.disagreement[h - 1]))
    assert set(summary["ensemble_error_at_horizon"]) == {1, 5, 10}
    assert summary["disagreement_error_log_correlation"] == pytest.approx(errors.correlation)
    # a model fitted on 320 random transitions predicts one step far better than the data mean (1.0)
    assert summary["holdout_one_step_normalised_mse"] < 0.2, summary
    assert summary["ensemble_error_at_horizon"][1] < summary["ensemble_error_at_horizon"][10]


def test_fit_model_other_kinds_report_error_against_n(tmp_path):
    """``--kind inverse-multistep --horizon 5``: one fit per n in (1, 2, 5), each scored on fresh episodes;
    the further away s_t+n is, the less it tells about a_t (random actions follow): the error grows with n."""
    cfg = fit_model.FitModelConfig(
        env="Pendulum-v1", seed=0, out=str(tmp_path), transitions=2000, num_envs=2, eval_episodes=2,
        eval_episode_steps=200, horizon=5, kind="inverse-multistep",
        model=ModelConfig(ensemble_size=2, num_elites=2, hidden=64, depth=2),
        trainer=TrainerConfig(max_epochs=60, patience=15, learning_rate=3e-3, progress=False))
    summary = fit_model.run(cfg)
    rows = summary["by_n"]
    assert [r["n"] for r in rows] == [1, 2, 5]
    assert rows[0]["mse"] < 0.05 and rows[0]["mse"] < rows[1]["mse"] < rows[2]["mse"] and rows[2]["mse"] > 0.5
    assert all(np.isfinite(r["nll"]) for r in rows)
    assert (tmp_path / "model_error_vs_n.png").exists() and (tmp_path / "model_n5.ckpt").exists()
    assert json.loads((tmp_path / "results.json").read_text())["kind"] == "inverse-multistep"
    assert fit_model.window_lengths("inverse", 20) == [1] and fit_model.window_lengths("interpolation", 7) == [1, 2, 5, 7]
