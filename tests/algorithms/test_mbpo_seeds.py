"""Seeds batched in one process (``mbpo_seeds.run``) against the single MBPO run (``mbpo.run``)."""

import dataclasses
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

from mbrlax.algorithms import mbpo, mbpo_seeds
from mbrlax.algorithms.mbpo import MBPOConfig
from mbrlax.algorithms.mbpo_seeds import MBPOSeedsConfig, check_batchable, mbpo_seeds_preset, run
from mbrlax.cli import main
from mbrlax.errors import ConfigError, TrainingDivergedError
from mbrlax.models.config import ModelConfig
from mbrlax.utils.checkpoint import find_checkpoint

from test_mbpo import _tiny
from test_mpc_seeds import _rows

# test_mbpo's tiny InvertedPendulum run (60 random steps, 2 epochs of 40 steps, G = 2) with two fits per
# epoch, each followed by 50 rollouts of k = 1 (then 2): its episodes end at different steps in each seed,
# and k changes the model buffer's size between the epochs
TINY = {**{f.name: getattr(_tiny("unused", epochs=2), f.name) for f in dataclasses.fields(MBPOConfig)
           if f.name not in ("seed", "out", "resume")}, "model_train_freq": 20}
EXACT = ("epoch", "env_steps", "updates", "rollout_length", "model_buffer_size", "model_fit_epochs",
         "rollout_transitions", "return", "return_std", "train_return")  # counters and env returns: equal as strings


def _checkpoint(folder):
    """A run folder's last checkpoint: its loop.json (without the wall times) and its learner's pytree keys."""
    pointed, loop = find_checkpoint(folder)
    learner = serialization.msgpack_restore((pointed / "learner.msgpack").read_bytes())
    return {k: v for k, v in loop.items() if k != "time_s"}, sorted(learner)


def _assert_same_trees(folder_b, folder_s):
    """The last checkpoints' learner and model pytrees: same structure, values equal up to float rounding."""
    pointed_b, pointed_s = find_checkpoint(folder_b)[0], find_checkpoint(folder_s)[0]
    for name in ("learner.msgpack", "model.msgpack"):
        tree_b, tree_s = (serialization.msgpack_restore((p / name).read_bytes()) for p in (pointed_b, pointed_s))
        assert jax.tree.structure(tree_b) == jax.tree.structure(tree_s), name
        for (path, b), s in zip(jax.tree_util.tree_flatten_with_path(tree_b)[0], jax.tree.leaves(tree_s)):
            np.testing.assert_allclose(np.asarray(b, np.float64), np.asarray(s, np.float64), rtol=1e-4, atol=1e-5,
                                       err_msg=f"{name}{jax.tree_util.keystr(path)}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Seeds 0 and 1 batched in ``out/batched``, and each alone in ``out/single<k>``; made once."""
    out = tmp_path_factory.mktemp("mbpo_seeds")
    batched = run(MBPOSeedsConfig(**TINY, seeds=(0, 1), out=str(out / "batched")))
    singles = {s: mbpo.run(MBPOConfig(**TINY, seed=s, out=str(out / f"single{s}"))) for s in (0, 1)}
    return out, batched, singles


@pytest.mark.parametrize("seed", [0, 1])
def test_two_seeds_batched_match_the_single_run(runs, seed):
    """Seed k's folder is what ``mbrlax train mbpo --seed k`` writes, with its numbers up to float rounding
    (both seeds: a slip of one seed's index, say seed 0 logged or checkpointed with seed 1's returns or
    model, fails only that seed).

    Not bitwise: ``vmap`` over the seeds turns every matmul of the fits, rollouts and updates into a
    batched one, which XLA's CPU kernels sum in another order. Everything the host draws (random
    actions, rollout starts, policy batches, holdout splits, keys) is the same, so counters, episodes and
    returns agree exactly here and the losses and policy actions to ~2e-7 relative (seen: holdout MSE 5e-8, critic_loss 9e-8,
    alpha_loss 4e-7, the episode's actions 2e-7; most columns equal). rtol 1e-5 is far below what a wrong key gives: swapping the two seeds' loop keys
    fails it (seen: the first return 16 against 17), as does swapping their rollout keys.
    """
    out, batched, singles = runs
    folder, single_folder, single = out / "batched" / f"seed{seed}", out / f"single{seed}", singles[seed]
    for name in ("config.json", "metrics.csv", "results.json", "learning_curve.png", "checkpoint.json", "tb"):
        assert (folder / name).exists(), name
    config = json.loads((folder / "config.json").read_text())
    assert (config["seed"], config["out"]) == (seed, str(folder))
    rows_b, rows_s = _rows(folder / "metrics.csv"), _rows(single_folder / "metrics.csv")
    assert list(rows_b[0]) == list(rows_s[0]) and len(rows_b) == len(rows_s) == 2  # same columns, same order
    for rb, rs in zip(rows_b, rows_s):
        for col in rs:
            if col in EXACT:
                assert rb[col] == rs[col], col
            elif not col.startswith("time_"):  # the batched run's own wall times
                np.testing.assert_allclose(float(rb[col]), float(rs[col]), rtol=1e-5, atol=1e-7, err_msg=col)
    assert batched[seed]["seed"] == seed
    assert set(batched[seed]) == set(single) and batched[seed]["eval_returns"] == single["eval_returns"]
    # the checkpoint's keys, generator and counters are the single run's exactly, its learner and model
    # agree up to rounding, and the episode in progress has the same length (its policy actions up to rounding)
    (loop_b, tree_b), (loop_s, tree_s) = _checkpoint(folder), _checkpoint(single_folder)
    assert tree_b == tree_s
    _assert_same_trees(folder, single_folder)
    episode_b, episode_s = loop_b.pop("episode"), loop_s.pop("episode")
    assert loop_b == loop_s
    assert (episode_b["index"], episode_b["return"]) == (episode_s["index"], episode_s["return"])
    for name in ("actions", "obs"):
        np.testing.assert_allclose(episode_b[name], episode_s[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_the_seeds_are_other_runs_whose_episodes_end_at_other_steps(runs):
    """The premise of the comparison above: the two seeds are different runs, and their real episodes end at
    different env steps (InvertedPendulum's return is its episode's length), which lockstep must not tie."""
    out = runs[0]
    loops = [_checkpoint(out / "batched" / f"seed{s}")[0] for s in (0, 1)]
    assert loops[0]["train_returns"] != loops[1]["train_returns"]
    assert _rows(out / "batched" / "seed0" / "metrics.csv") != _rows(out / "batched" / "seed1" / "metrics.csv")


def test_a_seed_folder_continues_alone_with_resume(runs, tmp_path):
    """``mbrlax train mbpo --resume`` continues a seed folder as it continues the single run's folder
    (copies are resumed: the module's folders stay as the other test reads them)."""
    out, batched, _ = runs
    resumed = {}
    for name, folder in (("batched", out / "batched" / "seed1"), ("single", out / "single1")):
        shutil.copytree(folder, tmp_path / name)
        with pytest.warns(UserWarning, match="epochs: 2 -> 3"):
            resumed[name] = mbpo.run(MBPOConfig(**{**TINY, "epochs": 3}, seed=1, out=str(tmp_path / name), resume=True))
    more = resumed["batched"]
    assert (more["epochs"], more["env_steps"], more["updates"]) == (3, 60 + 3 * 40, 3 * 40 * 2)
    assert _checkpoint(tmp_path / "batched")[0]["model_fits"] == 3 * 2
    assert more["eval_returns"] == resumed["single"]["eval_returns"]
    assert more["eval_returns"][:2] == batched[1]["eval_returns"]
    rows_b, rows_s = _rows(tmp_path / "batched" / "metrics.csv"), _rows(tmp_path / "single" / "metrics.csv")
    assert [r["epoch"] for r in rows_b] == ["1", "2", "3"]
    for col in ("critic_loss", "actor_loss", "model_holdout_mse"):  # the resumed epoch
        np.testing.assert_allclose(float(rows_b[2][col]), float(rows_s[2][col]), rtol=1e-5, err_msg=col)
    loops = [_checkpoint(tmp_path / name)[0] for name in ("batched", "single")]
    assert loops[0]["jax_key"] == loops[1]["jax_key"] and loops[0]["np_rng"] == loops[1]["np_rng"]


def test_a_non_finite_loss_in_one_seed_stops_the_run_naming_it(tmp_path, monkeypatch):
    """Seed 1's critic loss made NaN in its updates: the run stops after the epoch's evaluation, naming seed 1
    only, before logging or checkpointing that epoch; every seed folder keeps its last good checkpoint."""
    update_seeds = mbpo_seeds.update_seeds

    def nan_in_seed_1(learner, states, batches, keys):
        states, metrics = update_seeds(learner, states, batches, keys)
        return states, {**metrics, "critic_loss": metrics["critic_loss"].at[1].set(jnp.nan)}

    monkeypatch.setattr(mbpo_seeds, "update_seeds", nan_in_seed_1)
    with pytest.raises(TrainingDivergedError, match=r"diverged in epoch 0 for seeds \[1\]"):
        run(MBPOSeedsConfig(**{**TINY, "epochs": 1}, seeds=(0, 1), out=str(tmp_path)))
    for seed in (0, 1):
        assert find_checkpoint(tmp_path / f"seed{seed}")[1]["epoch"] == 0, seed  # the exploration's checkpoint
        assert _rows(tmp_path / f"seed{seed}" / "metrics.csv") == [], seed


def test_bad_settings_are_one_line_naming_the_flag(tmp_path, capsys):
    with pytest.raises(ConfigError, match="seeds must be distinct"):
        MBPOSeedsConfig(seeds=(1, 1))
    with pytest.raises(ConfigError, match="resume is not supported: continue one seed with `mbrlax train mbpo"):
        MBPOSeedsConfig(resume=True)
    cfg = MBPOSeedsConfig(**{**TINY, "model": ModelConfig(predict_termination=True)})
    with pytest.raises(ConfigError, match="predict_termination is set"):
        check_batchable(cfg, cfg.model.build_for_task(4, 1, None))
    for flags, needle in ((["--seeds", "0", "0"], "--seeds must be distinct"),
                          (["--resume"], "--resume is not supported"),
                          (["--env", "Pendulum-v1", "--model.predict-termination"], "--model.predict-termination is set"),
                          (["--env", "Swimmer-v5", "--seeds", "0", "1", "--eval-episodes", "1"],
                           "--env Swimmer-v5 has no known task")):
        assert main(["train", "mbpo-seeds", "--out", str(tmp_path / "cli"), *flags]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mbrlax: error: ") and needle in lines[0], lines
        assert not (tmp_path / "cli").exists()  # refused before any seed folder is written
    preset = mbpo_seeds_preset("InvertedPendulum-v5")
    assert (preset.epoch_length, preset.out) == (250, "runs/mbpo-InvertedPendulum-v5-seeds")
    assert dataclasses.replace(preset, seeds=(3,)).single(3).seed == 3
