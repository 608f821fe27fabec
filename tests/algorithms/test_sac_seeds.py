"""Seeds batched in one process (``train_sac_seeds``) against the single run (``train_sac``)."""

import csv
import dataclasses
import json

import numpy as np
import pytest

from mbrlax.agents.sac import SACConfig
from mbrlax.algorithms.sac_seeds import SACSeedsConfig, train_sac_seeds
from mbrlax.algorithms.sac_train import SACTrainConfig, train_sac
from mbrlax.errors import ConfigError

# 200 random steps, then one update call (50 updates) and an evaluation at every 200 steps
TINY = SACTrainConfig(env="Pendulum-v1", total_steps=400, start_steps=200, update_every=50, eval_every=200,
                      eval_episodes=1, sac=SACConfig(hidden_sizes=(32, 32), batch_size=32), progress=False)


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_two_seeds_batched_match_single_runs(tmp_path):
    """Two seeds batched write the run folders ``train_sac`` writes, with the single run's numbers.

    Not bitwise: ``vmap`` turns each matmul into a batched matmul, which XLA's CPU kernels sum in
    another order, so the first update already differs in the last float32 bits (seen: q_mean
    -0.73951054 vs -0.73951066). Everything the host draws is identical (random start actions, replay
    batches, PRNG keys), so episodes and counters agree exactly and every metric agrees to ~1e-6
    relative over these 250 updates; the tolerance 1e-4 is far below what a wrong key, batch or
    seed gives (the test fails, by 32 to 390 in a return, when one seed's PRNG key or NumPy generator
    is used for both seeds).
    """
    out = tmp_path / "batched"
    results = train_sac_seeds(dataclasses.replace(TINY, out=str(out)), (0, 1))
    assert [r["seed"] for r in results] == [0, 1]
    for k in (0, 1):
        folder = out / f"seed{k}"
        for name in ("config.json", "metrics.csv", "results.json", "learning_curve.png", "checkpoint.json"):
            assert (folder / name).exists(), name
        assert json.loads((folder / "config.json").read_text())["seed"] == k

    single = train_sac(dataclasses.replace(TINY, seed=1, out=str(tmp_path / "single1")))
    batched, alone = _rows(out / "seed1" / "metrics.csv"), _rows(tmp_path / "single1" / "metrics.csv")
    assert list(batched[0]) == list(alone[0])  # same columns, same order
    assert len(batched) == len(alone) == 2
    for rb, ra in zip(batched, alone):
        for col in ("env_steps", "episodes", "updates"):
            assert rb[col] == ra[col], col
        for col in ra:
            if col not in ("env_steps", "episodes", "updates", "time_s"):
                np.testing.assert_allclose(float(rb[col]), float(ra[col]), rtol=1e-4, atol=1e-6, err_msg=col)
    np.testing.assert_allclose(results[1]["final_return"], single["final_return"], rtol=1e-4)
    # seed 0 is a different run, not a copy of seed 1
    assert _rows(out / "seed0" / "metrics.csv")[0]["return"] != batched[0]["return"]

    # each seed folder's checkpoint is the single run's: train_sac continues it
    with pytest.warns(UserWarning, match="total_steps"):
        more = train_sac(dataclasses.replace(TINY, seed=1, out=str(out / "seed1"), total_steps=600, resume=True))
    assert more["updates"] == 9 * 50 and [s for s, _ in more["eval_returns"]] == [200, 400, 600]


def test_seeds_config_checks():
    with pytest.raises(ConfigError, match="seeds"):
        SACSeedsConfig(seeds=(1, 1))
    with pytest.raises(ConfigError, match="resume"):
        SACSeedsConfig(resume=True)
    assert SACSeedsConfig(seeds=(3,), env="Pendulum-v1").single().env == "Pendulum-v1"
