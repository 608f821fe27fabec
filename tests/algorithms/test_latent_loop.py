"""MPC from pixels (``mbrlax train latent``) on a tiny budget: the run folder, an exact resume, and
one-line errors for bad settings. In-process runs (one compile cache), so numbers compare exactly."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from conftest import gl_problem

from mbrlax.cli import main

pytestmark = pytest.mark.skipif("gl_problem() is not None", reason="no offscreen OpenGL here")

TINY = ["train", "latent", "--env", "cartpole-swingup", "--seed", "2", "--episode-steps", "12",
        "--random-episodes", "2", "--model.size", "16", "--model.channels", "4", "4", "4", "4",
        "--model.hidden", "16", "--model.latent-dim", "8", "--model.frame-stack", "2", "--planner.population", "16",
        "--planner.elites", "4", "--planner.iterations", "2", "--planner.horizon", "4", "--fit.batch-size", "4",
        "--fit.length", "3", "--fit.first-updates", "6", "--fit.min-updates", "3", "--fit.updates-per-step", "0",
        "--model.value-coef", "0.1"]  # with a value head: its EMA target must be checkpointed too
TIMINGS = {"fit_seconds", "plan_seconds_median", "episode_seconds"}


def _rows(out: Path) -> list[dict]:
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    # NaN (a probe with too few frames) compares unequal to itself: compare its text
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("latent") / "ref"
    assert main([*TINY, "--iterations", "2", "--out", str(out)]) == 0
    return out


def test_run_folder(reference):
    rows = _rows(reference)
    assert [r["policy"] for r in rows] == ["random", "mpc", "mpc"]
    assert all(math.isfinite(float(r["return"])) and math.isfinite(float(r["fit_loss"])) for r in rows)
    assert float(rows[-1]["episode_steps"]) == 12 and int(rows[1]["fit_updates"]) == 3
    for name in ("config.json", "results.json", "learning_curve.png", "video.gif", "checkpoint.json"):
        assert (reference / name).exists(), name


def test_resume_continues_exactly(reference, tmp_path):
    out = tmp_path / "run"
    assert main([*TINY, "--iterations", "1", "--out", str(out)]) == 0
    assert main([*TINY, "--iterations", "2", "--out", str(out), "--resume"]) == 0
    assert _rows(out) == _rows(reference) and "fit_value" in _rows(out)[-1]


@pytest.mark.parametrize("flags, words", [
    (["--camera", "1", "2", "3"], "--camera takes 6 numbers"),
    (["--model.act-dim", "2"], "--model.act-dim is set from the environment"),
    (["--env", "Pendulum-v1"], "pixel observations need a MuJoCo environment"),
    (["--fit.length", "0"], "--fit.length must be >= 1"),
])
def test_bad_settings_are_one_line(flags, words, tmp_path, capsys):
    assert main([*TINY, "--out", str(tmp_path / "x"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "x" / "metrics.csv").exists()


@pytest.mark.slow
def test_a_short_pixel_run_on_inverted_pendulum_beats_random_data(tmp_path):
    """Issue 20's "a short latent run beats random data": the InvertedPendulum preset with 1000 first
    updates and a smaller CEM keeps the pole up in its 3 MPC episodes far longer than the random
    episodes did (measured 28, 72, 29 against a random mean of 5.3; ~2 min on 2 cores). Without the
    inverse-dynamics head (--model.inverse-coef 0) the same run gave 3, 2, 14, and this fails. It is not
    the target (1000 within 10 episodes), and doing nothing scores 26.7."""
    out = tmp_path / "ip"
    assert main(["train", "latent", "--env", "InvertedPendulum-v5", "--out", str(out), "--fit.first-updates", "1000",
                 "--fit.min-updates", "200", "--iterations", "3", "--planner.population", "200",
                 "--planner.iterations", "3", "--no-video", "--no-probe"]) == 0
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    random_return = float(rows[0]["return"])
    mpc = sorted(float(r["return"]) for r in rows if r["policy"] == "mpc")
    assert len(mpc) == 3 and mpc[1] >= 3 * random_return, (random_return, mpc)
