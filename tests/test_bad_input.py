"""Every bad input a user tried (issue 18, part 3) and a few more: exit status 2, exactly one
``mbrlax: error`` line naming the flag or file, no traceback, and no run folder for a config error.

Runs ``mbrlax.cli.main`` in-process (fast); a subprocess only where the process itself matters
(a closed stdout pipe).
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mbrlax
from mbrlax.cli import main
from mbrlax.errors import ConfigError, DataError


@pytest.fixture(autouse=True)
def _keep_xla_flags(monkeypatch):
    """main() asks XLA for host devices through XLA_FLAGS: keep that out of the other tests."""
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))


@pytest.fixture
def no_runs(monkeypatch):
    """Every command's run function fails at once: a check that lets bad input through fails its test
    quickly instead of starting a long run."""
    from mbrlax.cli import COMMANDS

    def reached(cfg):
        raise AssertionError(f"bad input reached the run: {cfg}")

    for spec, _ in COMMANDS.values():
        module_name, _, run_name = spec.split(":")[:3]
        monkeypatch.setattr(importlib.import_module(module_name), run_name, reached)


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("mbrlax: error")]
    assert len(lines) == 1, err
    return lines[0]


# (args after --out, words the one error line must contain)
CONFIG_ERRORS = [
    (["train", "pets", "--seed", "-1"], ["--seed", "-1"]),
    (["train", "pets", "--seed", "4294967296"], ["--seed"]),
    (["train", "pets", "--iterations", "-1"], ["--iterations", ">= 0"]),
    (["train", "pets", "--random-steps", "-10"], ["--random-steps"]),
    (["train", "pets", "--random-episodes", "0", "--random-steps", "0"], ["--random-episodes", "--random-steps"]),
    (["train", "pets", "--random-steps", "2000", "--buffer-capacity", "1000"], ["--random-steps", "--buffer-capacity"]),
    (["train", "pets", "--episode-steps", "-1"], ["--episode-steps"]),
    (["train", "pets", "--model.num-elites", "9"], ["--model.num-elites", "<= --model.ensemble-size (5)", "9"]),
    (["train", "pets", "--model.ensemble-size", "0"], ["--model.ensemble-size", ">= 1"]),
    (["train", "pets", "--model.activation", "swish"], ["--model.activation", "silu"]),
    (["train", "pets", "--trainer.holdout-fraction", "1.5"], ["--trainer.holdout-fraction", "[0, 1)"]),
    (["train", "pets", "--trainer.learning-rate", "-0.001"], ["--trainer.learning-rate", "> 0"]),
    (["train", "pets", "--trainer.learning-rate", "nan"], ["--trainer.learning-rate", "nan"]),
    (["train", "pets", "--trainer.weight-decay", "inf"], ["--trainer.weight-decay", "finite"]),
    (["train", "pets", "--trainer.batch-size", "0"], ["--trainer.batch-size"]),
    (["train", "pets", "--planner.name", "cmaes"], ["--planner.name", "cem"]),
    (["train", "pets", "--planner.elites", "300"], ["--planner.elites", "--planner.population (200)"]),
    (["train", "pets", "--planner.horizon", "0"], ["--planner.horizon"]),
    (["train", "pets", "--planner.alpha", "1.0"], ["--planner.alpha"]),
    (["train", "pets", "--objective.propagation", "ts2"], ["--objective.propagation", "tsinf"]),
    (["train", "pets", "--objective.discount", "nan"], ["--objective.discount"]),
    (["train", "pets", "--objective.num-particles", "0"], ["--objective.num-particles"]),
    (["train", "pets", "--objective.state-cost", "-1", "0", "0", "0", "0", "0"], ["--objective.state-cost"]),
    (["train", "pets", "--objective.uncertainty-penalty", "1", "--objective.propagation", "expectation"],
     ["--objective.uncertainty-penalty", "--objective.propagation"]),
    (["train", "pets", "--mpc.replan-every", "0"], ["--mpc.replan-every"]),
    (["train", "pddm", "--planner.beta", "0"], ["--planner.beta"]),
    (["train", "sac", "--total-steps", "0"], ["--total-steps"]),
    (["train", "sac", "--sac.actor-lr", "-1"], ["--sac.actor-lr"]),
    (["train", "sac", "--sac.batch-size", "0"], ["--sac.batch-size", ">= 1"]),
    (["train", "sac", "--sac.gamma", "1.5"], ["--sac.gamma", "[0, 1]"]),
    (["train", "sac", "--sac.log-std-min", "3"], ["--sac.log-std-min", "< --sac.log-std-max (2.0)"]),
    (["train", "mbpo", "--sac.tau", "0"], ["--sac.tau", "(0, 1]"]),
    (["train", "mbpo", "--real-ratio", "2"], ["--real-ratio", "[0, 1]"]),
    (["train", "mbpo", "--propagation", "ts2"], ["--propagation"]),
    (["train", "mbpo", "--model.num-elites", "8"], ["--model.num-elites", "--model.ensemble-size (7)"]),
    (["train", "mbpo", "--rollout-schedule", "20", "10", "1", "1"], ["--rollout-schedule"]),
    (["fit-model", "--transitions", "0"], ["--transitions"]),
    (["fit-model", "--trainer.patience", "0"], ["--trainer.patience"]),
    (["demo", "planners", "--planners", "cem", "cmaes"], ["--planners", "cmaes"]),
    (["demo", "cliff", "--cem-sampling", "box"], ["--cem-sampling"]),
    (["demo", "loop", "--elites", "200"], ["--elites", "--population"]),
    (["demo", "maze", "--grid-step", "0"], ["--grid-step"]),
    # tyro's own parse errors, as one line
    (["train", "pets", "--seed", "abc"], ["--seed", "abc"]),
    (["train", "pets", "--no-such-flag", "1"], ["--no-such-flag"]),
    # an env that is rejected: before anything is written
    (["train", "pets", "--env", "NoSuchEnv-v9"], ["NoSuchEnv-v9"]),
    (["train", "pets", "--env", "CartPole-v1"], ["CartPole-v1", "Box"]),
    (["fit-model", "--env", "no_such_module:Env-v0"], ["no_such_module"]),
]


@pytest.mark.parametrize("args, needles", CONFIG_ERRORS, ids=[" ".join(a) for a, _ in CONFIG_ERRORS])
def test_config_error_is_one_line_naming_the_flag_and_writes_nothing(capsys, tmp_path, no_runs, args, needles):
    out = tmp_path / "run"
    code, _, err = cli(capsys, *args, "--out", str(out))
    assert code == 2
    line = one_error_line(err)
    for needle in needles:
        assert needle in line, line
    assert "Config(" not in err and len(line) < 400  # no config dump
    assert not out.exists()


def test_library_users_get_a_config_error_naming_the_field():
    from mbrlax.agents.mpc import MPCConfig
    from mbrlax.agents.objective import ObjectiveConfig
    from mbrlax.algorithms.fit_model import FitModelConfig
    from mbrlax.algorithms.mbpo import MBPOConfig
    from mbrlax.algorithms.mpc_loop import MPCLoopConfig, PlannerConfig
    from mbrlax.algorithms.sac_train import SACTrainConfig
    from mbrlax.models.config import ModelConfig
    from mbrlax.models.trainer import TrainerConfig

    from mbrlax.agents.sac import SACConfig
    from mbrlax.models.ensemble import EnsembleConfig
    from mbrlax.planning import make_planner

    cases = [(ModelConfig, {"ensemble_size": 0}, "ModelConfig.ensemble_size"),
             (ModelConfig, {"hidden": 2.5}, "ModelConfig.hidden must be an integer"),
             (EnsembleConfig, {"obs_dim": 3, "act_dim": 1, "hidden": 0}, "EnsembleConfig.hidden must be >= 1, got 0$"),
             (SACConfig, {"batch_size": 0}, "SACConfig.batch_size"),
             (SACConfig, {"target_entropy": float("nan")}, "SACConfig.target_entropy"),
             (lambda **kw: make_planner("cem", 5, [-1.0], [1.0], **kw), {"population": 0}, "CEM.population"),
             (ModelConfig, {"ensemble_size": 5, "num_elites": 9}, "ModelConfig.num_elites"),
             (TrainerConfig, {"holdout_fraction": 1.5}, "TrainerConfig.holdout_fraction"),
             (TrainerConfig, {"learning_rate": float("nan")}, "TrainerConfig.learning_rate"),
             (PlannerConfig, {"name": "cmaes"}, "PlannerConfig.name"),
             (ObjectiveConfig, {"propagation": "ts2"}, "ObjectiveConfig.propagation"),
             (MPCConfig, {"replan_every": 0}, "MPCConfig.replan_every"),
             (MPCLoopConfig, {"seed": -1}, "MPCLoopConfig.seed"),
             (FitModelConfig, {"horizon": 0}, "FitModelConfig.horizon"),
             (SACTrainConfig, {"out": ""}, "SACTrainConfig.out"),
             (MBPOConfig, {"epochs": 0}, "MBPOConfig.epochs")]
    for cls, kwargs, needle in cases:
        with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
            cls(**kwargs)


def test_numpy_numbers_and_paths_are_accepted():
    import numpy as np

    from mbrlax.algorithms.mpc_loop import MPCLoopConfig, PlannerConfig
    from mbrlax.models.config import ModelConfig

    assert ModelConfig(ensemble_size=np.int64(5), num_elites=np.int32(5)).ensemble_size == 5
    assert PlannerConfig(alpha=np.float32(0.1), population=np.int64(100)).population == 100
    assert MPCLoopConfig(out=Path("runs") / "x").out == Path("runs/x")
    for bad in (True, np.bool_(True), 5.0):
        with pytest.raises(ConfigError, match="ModelConfig.ensemble_size must be an integer"):
            ModelConfig(ensemble_size=bad)


def test_a_rejected_env_leaves_no_folder_in_the_loop_demo(tmp_path):
    from mbrlax.demos.loop import LoopDemoConfig, run

    with pytest.raises(ConfigError, match="known task"):
        run(LoopDemoConfig(env="LunarLanderContinuous-v3", out=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------ commands and help
@pytest.mark.parametrize("group, name", [("train", "pets-paper"), ("demo", "planners")])
def test_a_group_without_a_name_lists_its_commands(capsys, group, name):
    code, out, err = cli(capsys, group, "--help")
    assert code == 0 and f"mbrlax {group} {name}" in out and "unknown" not in out + err
    code, _, err = cli(capsys, group)
    assert code == 2 and name in one_error_line(err)
    code, _, err = cli(capsys, group, "frobnicate")
    assert code == 2 and "frobnicate" in one_error_line(err)


def test_each_command_describes_itself(capsys):
    firsts = {}
    for name in ("pets", "pets-paper", "pddm"):
        code, out, _ = cli(capsys, "train", name, "--help")
        assert code == 0 and "--model.num-elites" in out
        firsts[name] = [line for line in out.splitlines() if line.strip()][1]  # the line after usage
    assert len(set(firsts.values())) == 3, firsts
    assert "paper" in firsts["pets-paper"] and "light" not in firsts["pets-paper"].lower()


def test_every_flag_help_is_one_line():
    """A setting's docstring is its --help line; notes belong in docs/settings.md."""
    long = []
    for path in Path(mbrlax.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Config"):
                for a, b in zip(node.body, node.body[1:]):
                    if (isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant)
                            and isinstance(b.value.value, str) and "\n" in b.value.value.strip()):
                        long.append(f"{path.name}:{node.name}.{a.target.id}")
    assert not long, long


def test_help_into_a_closed_pipe_prints_no_traceback():
    proc = subprocess.Popen([sys.executable, "-m", "mbrlax.cli", "train", "pets", "--help"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # like `| head` that has already exited
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err, err


# ------------------------------------------------------------------------------ resume and files
def _rows(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.csv").write_text("iteration,env_steps,return\n0,200,12.5\n")


MPC_FAST = ["train", "pets", "--env", "cartpole-swingup", "--no-video"]
# command line, module whose run function it calls
RESUMABLE = [(MPC_FAST, "mbrlax.algorithms.mpc_loop"), (["train", "sac"], "mbrlax.algorithms.sac_train"),
             (["train", "mbpo", "--env", "InvertedPendulum-v5"], "mbrlax.algorithms.mbpo")]


@pytest.fixture
def stub_run(monkeypatch):
    """Replace a command's run function by one that records its config (no test here trains)."""
    from mbrlax.cli import COMMANDS

    seen: list = []

    def stub(module_name: str):
        module = importlib.import_module(module_name)
        run_name = next(spec.split(":")[2] for spec, _ in COMMANDS.values() if spec.startswith(module_name + ":"))
        monkeypatch.setattr(module, run_name, seen.append)
        return module

    stub.seen = seen
    return stub


@pytest.mark.parametrize("command, module", RESUMABLE, ids=[c[1] for c, _ in RESUMABLE])
def test_resume_without_a_checkpoint_does_not_overwrite_logged_rows(capsys, tmp_path, stub_run, command, module):
    stub_run(module)
    _rows(tmp_path)
    before = (tmp_path / "metrics.csv").read_text()
    code, _, err = cli(capsys, *command, "--out", str(tmp_path), "--resume")
    assert code == 2 and "metrics.csv" in one_error_line(err) and "checkpoint" in one_error_line(err)
    assert (tmp_path / "metrics.csv").read_text() == before and not (tmp_path / "config.json").exists()
    assert not stub_run.seen


def test_resume_of_an_old_layout_says_so(capsys, tmp_path, stub_run):
    """One resume check for the CLI and the loop: the hint about the old checkpoint/ folder reaches the user."""
    stub_run("mbrlax.algorithms.mpc_loop")
    _rows(tmp_path)
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "progress.json").write_text("{}")
    code, _, err = cli(capsys, *MPC_FAST, "--out", str(tmp_path), "--resume")
    line = one_error_line(err)
    assert code == 2 and "earlier mbrlax" in line and "drop --resume" in line


@pytest.mark.parametrize("command, module", RESUMABLE, ids=[c[1] for c, _ in RESUMABLE])
def test_resume_in_a_new_folder_starts_fresh_with_a_notice(capsys, tmp_path, stub_run, command, module):
    stub_run(module)
    code, out, err = cli(capsys, *command, "--out", str(tmp_path / "new"), "--resume")
    assert code == 0 and "Traceback" not in err
    assert len(stub_run.seen) == 1 and stub_run.seen[0].resume is False
    assert "nothing to resume" in out and "starting a new run" in out


CORRUPT = b"\xff\xfe\x00garbage{"
# (the checkpoint marker's content, metrics.csv's content, the file the error must name)
RESUME_FILES = [(CORRUPT, None, "marker"), (b"{not json", None, "marker"), (b"{}", CORRUPT, "metrics.csv")]


@pytest.mark.parametrize("command, module", RESUMABLE, ids=[c[1] for c, _ in RESUMABLE])
@pytest.mark.parametrize("marker_bytes, metrics_bytes, named", RESUME_FILES, ids=["marker-utf8", "marker-json", "metrics"])
def test_resume_with_a_corrupt_file_names_it(capsys, tmp_path, stub_run, command, module, marker_bytes, metrics_bytes,
                                             named):
    marker = stub_run(module).CHECKPOINT_FILE
    (tmp_path / marker).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / marker).write_bytes(marker_bytes)
    if metrics_bytes is not None:
        (tmp_path / "metrics.csv").write_bytes(metrics_bytes)
    code, _, err = cli(capsys, *command, "--out", str(tmp_path), "--resume")
    assert code == 2 and Path(marker if named == "marker" else named).name in one_error_line(err)
    assert not stub_run.seen


def test_library_readers_raise_data_error_naming_the_file(tmp_path):
    from mbrlax.algorithms.mbpo import _load_checkpoint
    from mbrlax.algorithms.sac_train import load_checkpoint
    from mbrlax.utils.run_logger import RunLogger

    (tmp_path / "metrics.csv").write_bytes(CORRUPT)
    with pytest.raises(DataError, match="metrics.csv"):
        RunLogger(tmp_path, resume=True, tensorboard=False)
    (tmp_path / "checkpoint.json").write_bytes(CORRUPT)
    with pytest.raises(DataError, match="checkpoint.json"):
        load_checkpoint(tmp_path, None, 10)
    with pytest.raises(DataError, match="checkpoint.json"):
        _load_checkpoint(tmp_path, None, None, 10)
    (tmp_path / "checkpoint.json").write_text(json.dumps({"path": "ckpt/a"}))
    (tmp_path / "ckpt" / "a").mkdir(parents=True)
    (tmp_path / "ckpt" / "a" / "loop.json").write_bytes(CORRUPT)
    with pytest.raises(DataError, match="loop.json"):
        _load_checkpoint(tmp_path, None, None, 10)


def test_an_out_folder_that_cannot_be_written_is_one_line(capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, _, err = cli(capsys, "fit-model", "--env", "Pendulum-v1", "--out", str(blocker / "sub"))
    assert code == 2 and str(blocker) in one_error_line(err)
    code, _, err = cli(capsys, *MPC_FAST, "--iterations", "0", "--out", str(blocker / "sub"))
    assert code == 2 and str(blocker) in one_error_line(err)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_folder_is_one_line(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, _, err = cli(capsys, "fit-model", "--env", "Pendulum-v1", "--out", str(ro / "run"))
    finally:
        ro.chmod(0o700)
    assert code == 2 and str(ro) in one_error_line(err)


def test_an_os_error_during_the_run_is_one_line_naming_the_file(capsys, tmp_path, stub_run):
    module = stub_run("mbrlax.algorithms.fit_model")

    def full_disk(cfg):
        raise OSError(28, "No space left on device", str(tmp_path / "run" / "buffer.npz"))

    module.run = full_disk  # restored by stub_run's monkeypatch
    code, _, err = cli(capsys, "fit-model", "--env", "Pendulum-v1", "--out", str(tmp_path / "run"))
    assert code == 2 and "buffer.npz" in one_error_line(err) and "No space left" in one_error_line(err)
