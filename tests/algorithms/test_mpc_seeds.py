"""Seeds batched in one process (``mpc_seeds.run``) against the single MPC loop (``mpc_loop.run``)."""

import csv
import dataclasses
import json
import shutil

import numpy as np
import pytest
from flax import serialization

from mbrlax.agents.mpc import MPCConfig
from mbrlax.agents.objective import ObjectiveConfig
from mbrlax.algorithms import mpc_loop
from mbrlax.algorithms.mpc_loop import MPCLoopConfig, PlannerConfig
from mbrlax.algorithms.mpc_seeds import MPCSeedsConfig, _episodes, pets_light_seeds_preset, run
from mbrlax.data.buffer import ReplayBuffer
from mbrlax.errors import ConfigError
from mbrlax.models.config import ModelConfig
from mbrlax.models.trainer import TrainerConfig
from mbrlax.utils.checkpoint import find_checkpoint

# 20 random steps, then 2 x (fit, 20-step MPC episode); these fit settings make the seeds' fits stop at
# different epochs (seen: 10 and 3 epochs in the first fit), so the per-seed early stopping is exercised
TINY = dict(env="cartpole-swingup", iterations=2, episode_steps=20, random_steps=0, video=False,
            model=ModelConfig(ensemble_size=2, num_elites=2, hidden=16, depth=2),
            trainer=TrainerConfig(batch_size=4, learning_rate=3e-3, max_epochs=10, patience=2,
                                  improvement_threshold=0.05, progress=False),
            planner=PlannerConfig(horizon=5, population=16, elites=4, iterations=2),
            objective=ObjectiveConfig(num_particles=2))
# the comparison with single runs is also made with a refit every 7 steps inside each episode, and with
# open-loop chunks of 3 actions whose plans restart cold (a fresh planner state drawn from the agent's key)
VARIANTS = {"tiny": {}, "retrain_every_7": {"retrain_every": 7, "iterations": 1},
            "replan_3_cold": {"mpc": MPCConfig(replan_every=3, warm_start=False)}}
EXACT = ("iteration", "env_steps", "policy", "episode_steps", "fit_epochs")  # counters: equal as strings
TIMINGS = ("fit_seconds", "plan_seconds_median", "episode_seconds")  # wall times: the batched run's own


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _checkpoint_keys(folder):
    """The loop key and the agent key of a run folder's checkpoint (its last iteration's)."""
    pointed, loop = find_checkpoint(folder)
    agent = serialization.msgpack_restore((pointed / "agent.msgpack").read_bytes())
    return loop["iteration"], loop["key"], np.asarray(agent["key"]).tolist()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``runs(variant) -> (folder, batched results, single results)``: seeds 0 and 1 batched in
    ``folder/batched`` and each run alone in ``folder/single<k>``, made once per module."""
    made = {}

    def get(variant):
        if variant not in made:
            out, cfg = tmp_path_factory.mktemp(variant), {**TINY, **VARIANTS[variant]}
            batched = run(MPCSeedsConfig(**cfg, seeds=(0, 1), out=str(out / "batched")))
            singles = [mpc_loop.run(MPCLoopConfig(**cfg, seed=k, out=str(out / f"single{k}"))) for k in (0, 1)]
            made[variant] = out, batched, singles
        return made[variant]

    return get


@pytest.fixture(scope="module")
def batched(runs):
    out, results, _ = runs("tiny")
    return out / "batched", results


def test_each_seed_folder_is_what_the_single_run_writes(batched):
    out, results = batched
    for k in (0, 1):
        folder = out / f"seed{k}"
        for name in ("config.json", "metrics.csv", "results.json", "learning_curve.png", "checkpoint.json", "tb"):
            assert (folder / name).exists(), name
        config = json.loads((folder / "config.json").read_text())
        assert (config["seed"], config["out"]) == (k, str(folder))
        assert set(json.loads((folder / "results.json").read_text())) == set(results[k])
        assert [r["iteration"] for r in _rows(folder / "metrics.csv")] == ["0", "1", "2"]
    assert [len(r["returns"]) for r in results] == [2, 2]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_two_seeds_batched_match_single_runs(runs, variant):
    """Each seed's metrics are its single run's, up to float rounding.

    Not bitwise: ``vmap`` over seeds adds a batch axis to every matmul of the fit and the plan, which
    XLA's CPU kernels sum in another order. Everything else is identical (reset seeds, random actions,
    data splits, keys), so counters agree exactly (fit_epochs too: each seed stops on its own patience)
    and the metrics to ~2e-7 relative (seen: train_loss and holdout_mse 1e-7 to 2e-7, planned return
    5e-8, returns 2e-9). Long runs amplify the rounding: a fit of 40-80 epochs (the light preset's) ends
    1e-3 to 1e-2 apart and can stop at another epoch, and CEM can pick other elites once two candidates
    nearly tie; from there the runs part. Tiny fits and 20-step episodes on a small model stay together.
    The tolerance is far below what a wrong key or mask gives: swapping the two seeds' plan keys fails
    (a return off by 2e-2 relative), as did a fit that let a stopped seed's logvar bounds
    train on (holdout_mse off by 2e-2).
    """
    out, results, singles = runs(variant)
    epochs = {}
    for k in (0, 1):
        rows_b, rows_s = _rows(out / "batched" / f"seed{k}" / "metrics.csv"), _rows(out / f"single{k}" / "metrics.csv")
        assert list(rows_b[0]) == list(rows_s[0])  # same columns in the same order
        assert len(rows_b) == len(rows_s) == VARIANTS[variant].get("iterations", TINY["iterations"]) + 1
        for rb, rs in zip(rows_b, rows_s):
            for col in rs:
                if col in EXACT or rs[col] == "":
                    assert rb[col] == rs[col], col
                elif col not in TIMINGS:
                    np.testing.assert_allclose(float(rb[col]), float(rs[col]), rtol=1e-5, atol=1e-7, err_msg=col)
        np.testing.assert_allclose(results[k]["returns"], singles[k]["returns"], rtol=1e-5)
        # keys are not touched by float rounding: each seed's loop and agent keys are its single run's
        assert _checkpoint_keys(out / "batched" / f"seed{k}") == _checkpoint_keys(out / f"single{k}")
        epochs[k] = [r["fit_epochs"] for r in rows_s[1:]]
    if variant == "tiny":
        assert epochs[0] != epochs[1]  # the seeds' fits stopped at different epochs: the masking was used
    assert results[0]["returns"] != results[1]["returns"]  # seed 0 is a different run, not a copy of seed 1


def test_a_seed_folder_continues_alone_with_resume(runs, tmp_path):
    """Each seed folder's checkpoint is the single run's: ``mpc_loop.run --resume`` continues it as
    the single run goes on (a copy is resumed: the module's folders stay as the other tests read them)."""
    out, _, _ = runs("tiny")
    assert _checkpoint_keys(out / "batched" / "seed1") == _checkpoint_keys(out / "single1")  # iteration 2's
    shutil.copytree(out / "batched" / "seed1", tmp_path / "resumed")
    three = {**TINY, "iterations": 3}
    with pytest.warns(UserWarning, match="iterations: 2 -> 3"):
        resumed = mpc_loop.run(MPCLoopConfig(**three, seed=1, out=str(tmp_path / "resumed"), resume=True))
    alone = mpc_loop.run(MPCLoopConfig(**three, seed=1, out=str(tmp_path / "alone")))
    assert len(resumed["returns"]) == len(alone["returns"]) == 3
    np.testing.assert_allclose(resumed["returns"][2], alone["returns"][2], rtol=1e-4)  # the resumed episode
    assert _checkpoint_keys(tmp_path / "resumed") == _checkpoint_keys(tmp_path / "alone")  # iteration 3's


def test_bad_settings_are_one_line_naming_the_flag():
    with pytest.raises(ConfigError, match="seeds must be distinct"):
        MPCSeedsConfig(seeds=(1, 1))
    with pytest.raises(ConfigError, match="resume is not supported"):
        MPCSeedsConfig(resume=True)
    with pytest.raises(ConfigError, match=r"env InvertedPendulum-v5 can terminate episodes early"):
        run(MPCSeedsConfig(**{**TINY, "env": "InvertedPendulum-v5"}, seeds=(0, 1)))
    cfg = pets_light_seeds_preset("cartpole-swingup")
    assert dataclasses.replace(cfg, seeds=(3,)).single(3).seed == 3 and cfg.planner.population == 200


class _FakeEnv:
    """A 1-D env whose episodes last ``length`` steps; ``render`` fails when ``renders`` is False."""

    def __init__(self, length: int, renders: bool = True):
        self.length, self.renders, self.t = length, renders, 0

    def reset(self, seed=None):
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.full(1, self.t, np.float32), 1.0, self.t >= self.length, False, {}

    def render(self):
        if not self.renders:
            raise RuntimeError("no OpenGL")
        return np.zeros((2, 2, 3), np.uint8)


def _lockstep_episodes(envs):
    buffers = [ReplayBuffer(100, 1, 1) for _ in envs]
    return _episodes(envs, lambda obs: np.zeros((len(envs), 1)), 10, buffers, [0] * len(envs), render=True,
                     on_step=None, records=[[] for _ in envs])


def test_an_env_that_cannot_render_loses_only_its_own_video(capsys):
    returns, steps, frames = _lockstep_episodes([_FakeEnv(5), _FakeEnv(5, renders=False), _FakeEnv(5)])
    assert (returns, steps) == ([5.0] * 3, 5)
    assert [len(f) for f in frames] == [5, 0, 5]
    assert capsys.readouterr().err.count("rendering failed") == 1  # said once, not at every step


def test_episodes_out_of_lockstep_are_an_internal_error():
    with pytest.raises(RuntimeError, match=r"internal error: the seeds' episodes ended at different steps \(3\)"):
        _lockstep_episodes([_FakeEnv(5), _FakeEnv(3)])
