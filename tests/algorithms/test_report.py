"""``mbrlax report``: run folders grouped by env and method, finals and intervals as rliable computes them."""

import csv
import json

import numpy as np
import pytest

from mbrlax.algorithms.report import ReportConfig, method_name, run
from mbrlax.cli import main
from mbrlax.errors import ConfigError


def write_run(folder, env, seed, returns, steps=None):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"env": env, "seed": seed}))
    steps = steps or [1000 * (i + 1) for i in range(len(returns))]
    lines = ["env_steps,return,episode"] + [f"{s},{r},{i}" for i, (s, r) in enumerate(zip(steps, returns))]
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")


def test_report_aggregates_seeds_per_env_and_method(tmp_path):
    finals = {"pets": [10.0, 12.0, 14.0, 100.0], "sac": [1.0, 2.0, 3.0, 4.0]}
    for method, values in finals.items():
        for seed, final in enumerate(values):
            write_run(tmp_path / "sweep" / method / f"seed{seed}", "Pendulum-v1", seed, [0.0, final / 2, final])
    write_run(tmp_path / "other" / "pets-seed0", "Reacher-v5", 0, [-40.0, -10.0])
    (tmp_path / "sweep" / "notes").mkdir()  # not a run folder: ignored
    result = run(ReportConfig(dirs=(str(tmp_path / "sweep"), str(tmp_path / "other")), out=str(tmp_path / "out"), reps=500))
    rows = {(r["env"], r["method"]): r for r in result["rows"]}
    assert set(rows) == {("Pendulum-v1", "pets"), ("Pendulum-v1", "sac"), ("Reacher-v5", "pets")}
    pets = rows[("Pendulum-v1", "pets")]
    assert pets["seeds"] == 4 and pets["final_per_seed"] == "10 12 14 100"
    assert pets["mean"] == pytest.approx(34.0)
    assert pets["iqm"] == pytest.approx(13.0)  # the middle half (12, 14): the outlier seed does not move it
    assert pets["mean_low"] <= 34.0 <= pets["mean_high"] and pets["iqm_low"] <= 13.0 <= pets["iqm_high"]
    assert rows[("Reacher-v5", "pets")]["final_per_seed"] == "-10"
    with open(tmp_path / "out" / "summary.csv") as f:
        assert len(list(csv.DictReader(f))) == 3
    assert (tmp_path / "out" / "curves_Pendulum-v1.png").exists() and (tmp_path / "out" / "summary.md").exists()


def test_curves_interpolate_seeds_that_logged_at_different_steps():
    from mbrlax.algorithms.report import Run, curve_estimates

    a = Run(None, "E", "m", 0, np.array([1000.0, 2000.0, 3000.0]), np.array([0.0, 10.0, 20.0]))
    b = Run(None, "E", "m", 1, np.array([1001.0, 2001.0, 3001.0]), np.array([0.0, 10.0, 20.0]))
    steps, iqm, ci = curve_estimates([a, b], reps=200, seed=0)
    assert steps.tolist() == [1001.0, 2000.0, 2001.0, 3000.0]  # the steps logged, in the range both cover
    assert iqm[steps == 2000.0][0] == pytest.approx((10.0 + 9.99) / 2)
    assert ci.shape == (2, 4) and np.all(ci[0] <= iqm + 1e-9) and np.all(iqm <= ci[1] + 1e-9)


def test_method_names_and_bad_input(tmp_path, capsys):
    assert method_name(tmp_path / "pets-seed3") == "pets" and method_name(tmp_path / "mbpo_s12") == "mbpo"
    assert method_name(tmp_path / "pets" / "seed3") == "pets" and method_name(tmp_path / "grad-mpc") == "grad-mpc"
    with pytest.raises(ConfigError, match="no run folder"):
        run(ReportConfig(dirs=(str(tmp_path),), out=str(tmp_path / "out")))
    assert main(["report", "--out", str(tmp_path / "o")]) == 2
    assert "at least one run folder" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "is not a folder" in capsys.readouterr().err
