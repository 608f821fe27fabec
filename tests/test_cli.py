"""The command line: one convention, one-line errors without tracebacks, a working fit-model run."""

import json
import math
import subprocess
import sys

import pytest

from mbrlax.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mbrlax.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("args, needle", [
    (["fit-model", "--env", "NoSuchEnv-v9"], "NoSuchEnv-v9"),
    (["fit-model", "--env", "CartPole-v1"], "Box"),
])
def test_bad_input_is_one_line_without_traceback(args, needle):
    proc = run_cli(*args)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    err_lines = [l for l in proc.stderr.strip().splitlines() if l.startswith("mbrlax: error")]
    assert len(err_lines) == 1 and needle in err_lines[0]


def test_python_dash_m_mbrlax_is_the_command():
    """``python -m mbrlax`` works where the ``mbrlax`` script is not on PATH, exit status included."""
    proc = subprocess.run([sys.executable, "-m", "mbrlax", "frobnicate"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "unknown command 'frobnicate'" in proc.stderr


def test_unknown_command_is_named(capsys):
    assert main(["frobnicate"]) == 2
    assert capsys.readouterr().err.startswith("mbrlax: error: unknown command 'frobnicate'")


def test_help_lists_every_setting():
    proc = run_cli("fit-model", "--help")
    assert proc.returncode == 0
    for flag in ("--env", "--seed", "--out", "--transitions", "--model.hidden", "--trainer.learning-rate"):
        assert flag in proc.stdout


def test_fit_model_writes_the_run_folder(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("fit-model", "--env", "Pendulum-v1", "--seed", "1", "--out", str(out), "--transitions", "600",
                   "--num-envs", "2", "--eval-episodes", "2", "--eval-episode-steps", "40", "--horizon", "10",
                   "--model.ensemble-size", "3", "--model.num-elites", "2", "--model.hidden", "32", "--model.depth", "2",
                   "--trainer.max-epochs", "3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = json.loads((out / "config.json").read_text())
    assert config["env"] == "Pendulum-v1" and config["seed"] == 1 and config["model"]["hidden"] == 32
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "env_steps" in header and "holdout_mse" in header
    results = json.loads((out / "results.json").read_text())
    # a plumbing test (3 short epochs): the learning threshold lives in test_halfcheetah_model.py
    assert results["transitions"] == 600 and math.isfinite(results["holdout_one_step_normalised_mse"])
    assert len(results["ensemble_error_at_horizon"]) == 3  # horizons 1, 5, 10
    for name in ("model_error_vs_horizon.png", "training_curve.png", "model.ckpt", "buffer.npz"):
        assert (out / name).stat().st_size > 0


@pytest.mark.parametrize("command, single", [("sac-seeds", "sac"), ("pets-seeds", "pets"), ("mbpo-seeds", "mbpo")])
def test_seeds_commands_refuse_resume_saying_how_to_continue_one_seed(command, single, capsys):
    assert main(["train", command, "--seeds", "0", "1", "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"mbrlax train {single} --seed K --out OUT/seedK --resume" in err[0]
