"""``mbrlax sweep``: the grid and its run folders (no Ray), then one sweep on a local Ray, killed once
and run again: finished trials are skipped, the rest complete, a failing arm is reported."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mbrlax import cli
from mbrlax.algorithms.sweep import (RESULTS_FILE, SUMMARY_FILE, TRIAL_LOG, SweepConfig, Trial, arm_tag, expand,
                                     parse_flags, trial_state)
from mbrlax.errors import ConfigError

MAIN = "import sys\nfrom mbrlax.cli import main\nsys.exit(main(sys.argv[1:]))\n"  # mbrlax, in this Python
# 20 random + 20 MPC steps of a tiny model and planner: seconds per trial, most of it start-up
TINY = ("iterations=1 random-episodes=1 random-steps=0 episode-steps=20 no-video model.hidden=16 model.depth=2 "
        "model.ensemble-size=2 model.num-elites=2 planner.population=16 planner.elites=4 planner.iterations=2 "
        "planner.horizon=5 objective.num-particles=2 trainer.max-epochs=3")


@pytest.fixture(autouse=True)
def _keep_xla_flags(monkeypatch):
    """main() asks XLA for host devices through XLA_FLAGS: keep that out of the other tests."""
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))


class FakeProcess:
    """subprocess.Popen for run_trial: records its arguments, writes one stdout line, yields
    ``stderr`` lines, calls ``then(out)`` when waited for and returns ``code``."""

    seen: dict = {}

    def __init__(self, code: int, stderr=(), then=lambda out: None):
        self.code, self.lines, self.then = code, list(stderr), then

    def __call__(self, args, stdout, env, **kw):
        FakeProcess.seen = {"args": args, "env": env}
        stdout.write("some output\n")
        stdout.flush()
        self.stderr = iter(self.lines)
        return self

    def wait(self):
        self.then(Path(FakeProcess.seen["args"][-1].removeprefix("--out=")))
        return self.code


def test_grid_expands_into_ordinary_commands_and_run_folders(tmp_path):
    cfg = SweepConfig(commands=("train pets", "train sac"), envs=("cartpole-swingup", "mbrlax/Maze-v0"), seeds=(0, 7),
                      overrides=("", "planner.horizon=15 objective.state-cost=0.3,0"), flags="iterations=2 no-video",
                      out=str(tmp_path / "sw"))
    trials = expand(cfg)
    assert len(trials) == 2 * 2 * 2 * 2
    first = trials[0]
    assert first == Trial("train pets", "cartpole-swingup", 0, "", "pets", str(tmp_path / "sw/train-pets/cartpole-swingup/pets/seed0"),
                          ("train", "pets", "--env=cartpole-swingup", "--seed=0", f"--out={first.out}",
                           "--iterations", "2", "--no-video"))
    arm = trials[3]  # commands, envs, arms, seeds: the second arm's second seed
    assert arm.seed == 7 and arm.tag == "pets_planner.horizon=15_objective.state-cost=0.3,0"
    assert arm.out == str(tmp_path / "sw/train-pets/cartpole-swingup" / arm.tag / "seed7")
    assert arm.argv[5:] == ("--iterations", "2", "--no-video", "--planner.horizon", "15", "--objective.state-cost", "0.3", "0")
    maze = [t for t in trials if t.env == "mbrlax/Maze-v0"][0]
    assert "/train-pets/mbrlax_Maze-v0/pets/seed0" in maze.out  # an id's slash is not a folder level
    assert {t.tag for t in trials if t.command == "train sac"} == {"sac", "sac_planner.horizon=15_objective.state-cost=0.3,0"}
    assert len({t.out for t in trials}) == len(trials)
    # report's method name is the folder above seed<S>: arms and commands stay apart
    from mbrlax.algorithms.report import method_name
    assert {method_name(Path(t.out)) for t in trials} == {"pets", "sac", arm.tag, "sac" + arm.tag[4:]}


def test_flags_and_tags():
    assert parse_flags("a.b=1 c=x,y flag e=") == ["--a.b", "1", "--c", "x", "y", "--flag", "--e", ""]
    assert parse_flags(" --planner.horizon 15 --name 'a b'") == ["--planner.horizon", "15", "--name", "a b"]
    assert parse_flags("") == [] and arm_tag("train pets", "") == "pets"
    assert arm_tag("train pets", "--planner.horizon 15 --no-video") == "pets_planner.horizon=15_no-video"
    assert arm_tag("fit-model", "env=a/b:c") == "fit-model_env=a_b_c"
    long = arm_tag("train pets", " ".join(f"flag{i}=value{i}" for i in range(30)))
    assert len(long) <= 120 and long != arm_tag("train pets", " ".join(f"flag{i}=value{i}" for i in range(31)))
    with pytest.raises(ConfigError, match="not NAME=VALUE"):
        parse_flags("1=2", "SweepConfig.overrides")


def test_skip_and_resume_decisions(tmp_path):
    (t,) = expand(SweepConfig(envs=("cartpole-swingup",), seeds=(0,), out=str(tmp_path)))
    assert SweepConfig().envs == ()  # no env by default: a sweep names its envs
    assert trial_state(t, "checkpoint.json") == "new"
    Path(t.out).mkdir(parents=True)
    (Path(t.out) / TRIAL_LOG).write_text("=== an attempt that died before its first checkpoint\n")
    assert trial_state(t, "checkpoint.json") == "new"
    (Path(t.out) / "checkpoint.json").write_text("{}")
    assert trial_state(t, "checkpoint.json") == "resume"
    assert trial_state(t, None) == "new"  # a command that cannot resume starts over
    (Path(t.out) / RESULTS_FILE).write_text("{}")
    assert trial_state(t, "checkpoint.json") == "done" and trial_state(t, None) == "done"


def test_run_trial_resumes_logs_and_reports_a_failure_without_ray(tmp_path, monkeypatch):
    from mbrlax.algorithms import sweep

    # the command: one stdout line, a progress bar left half-written, then an error
    stderr = ["step 1/3\n", "mbrlax: error: --planner.horizon must be >= 1, got 0\n", "\n"]
    monkeypatch.setattr(sweep.subprocess, "Popen", FakeProcess(2, stderr))
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8 --xla_other=1")
    (t,) = expand(SweepConfig(envs=("Pendulum-v1",), seeds=(3,), out=str(tmp_path)))
    Path(t.out).mkdir(parents=True)
    (Path(t.out) / "checkpoint.json").write_text("{}")
    (Path(t.out) / TRIAL_LOG).write_text("=== an earlier attempt\nprogress 40%")  # killed mid-line
    rec = sweep.run_trial(t, "checkpoint.json", cpus=2)
    seen = FakeProcess.seen
    assert seen["args"][:2] == [sys.executable, "-c"] and seen["args"][3:] == [*t.argv, "--resume"]
    assert seen["env"]["XLA_FLAGS"].split() == ["--xla_other=1", "--xla_force_host_platform_device_count=2"]
    assert "XLA_PYTHON_CLIENT_MEM_FRACTION" not in seen["env"]  # no GPU reserved: kept off every GPU
    assert seen["env"]["CUDA_VISIBLE_DEVICES"] == "" and seen["env"]["JAX_PLATFORMS"] == "cpu"
    assert rec["status"] == "failed" and rec["returncode"] == 2 and rec["resumed"]
    assert rec["last_stderr"] == "mbrlax: error: --planner.horizon must be >= 1, got 0"
    log = (Path(t.out) / TRIAL_LOG).read_text().splitlines()
    assert log[:2] == ["=== an earlier attempt", "progress 40%"] and log[2].startswith("=== ")
    assert log[2].endswith(f"resumed on {rec['host']}: mbrlax train pets --env=Pendulum-v1 --seed=3 --out={t.out} --resume")
    assert log[3:] == ["some output", "step 1/3", rec["last_stderr"], ""]
    (Path(t.out) / RESULTS_FILE).write_text("{}")
    assert sweep.run_trial(t, "checkpoint.json")["status"] == "skipped"  # finished: not run again
    assert len([line for line in (Path(t.out) / TRIAL_LOG).read_text().splitlines() if line.startswith("=== ")]) == 2


def test_run_trial_finishes_only_with_results_that_parse(tmp_path, monkeypatch):
    from mbrlax.algorithms import sweep

    (t,) = expand(SweepConfig(envs=("-odd-id",), seeds=(0,), out=str(tmp_path)))
    assert "--env=-odd-id" in t.argv  # an id that starts with "-" is not read as a flag
    write = {"none": lambda out: None, "half": lambda out: (out / RESULTS_FILE).write_text('{"return": 1'),
             "whole": lambda out: (out / RESULTS_FILE).write_text('{"return": 1}')}
    for name in ("none", "half", "whole"):  # exit 0, then results.json absent, cut short, written
        monkeypatch.setattr(sweep.subprocess, "Popen", FakeProcess(0, ["done\n"], write[name]))
        rec = sweep.run_trial(t, "checkpoint.json", gpus=0.25)
        assert rec["returncode"] == 0 and not rec["resumed"], name
        assert FakeProcess.seen["env"]["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.225"  # a share of the GPU
        if name == "whole":
            assert rec["status"] == "finished" and rec["last_stderr"] == ""
        else:
            assert rec["status"] == "failed" and rec["last_stderr"] == f"exited 0 without writing {RESULTS_FILE}"
    assert json.loads((Path(t.out) / "trial.json").read_text()) == {"argv": list(t.argv)}
    (Path(t.out) / "checkpoint.json").write_text("{}")
    for half in ("", '{"ret'):  # a results.json cut short is not finished: the trial resumes
        (Path(t.out) / RESULTS_FILE).write_text(half)
        assert trial_state(t, "checkpoint.json") == "resume"


def test_results_are_written_atomically(tmp_path):
    from mbrlax.utils.run_logger import RunLogger

    logger = RunLogger(tmp_path, tensorboard=False)
    logger.write_json(RESULTS_FILE, {"return": 1.5})
    with pytest.raises(TypeError):  # fails while writing: the earlier file stays whole
        logger.write_json(RESULTS_FILE, {"return": object()})
    assert json.loads((tmp_path / RESULTS_FILE).read_text()) == {"return": 1.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv", RESULTS_FILE]


def test_changed_flags_refuse_to_run_over_earlier_trials(tmp_path, capsys, monkeypatch):
    from mbrlax.algorithms import sweep

    out = tmp_path / "sw"
    args = ["sweep", "--envs", "Pendulum-v1", "--seeds", "0", "1", "--out", str(out), "--dry-run"]
    first = expand(SweepConfig(envs=("Pendulum-v1",), seeds=(0, 1), flags="iterations=2", out=str(out)))
    with monkeypatch.context() as m:  # (subprocess is everyone's: the CLI below starts processes too)
        m.setattr(sweep.subprocess, "Popen", FakeProcess(1))
        sweep.run_trial(first[1], None)  # one attempt, with --iterations 2: trial.json records it
    assert cli.main([*args, "--flags", "iterations=2"]) == 0 and "2 to start" in capsys.readouterr().out
    assert cli.main([*args, "--flags", "iterations=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mbrlax: error: --flags: 1 run folder(s) ran with another command line") and err.count("\n") == 1
    assert f"the first {first[1].out} (trial.json: mbrlax train pets --env=Pendulum-v1 --seed=1 --iterations 2)" in err
    assert (Path(first[1].out) / "trial.json").exists()  # nothing deleted
    moved = tmp_path / "moved"
    out.rename(moved)  # a sweep folder that was moved keeps its trials
    assert cli.main([*args[:-2], str(moved), "--dry-run", "--flags", "iterations=2"]) == 0


def test_a_second_sweep_into_the_same_folder_is_refused(tmp_path, capsys, monkeypatch):
    import fcntl
    import types

    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace())  # refused before Ray is used
    out = tmp_path / "sw"
    out.mkdir()
    with open(out / ".sweep.lock", "a") as held:  # as a running sweep holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert cli.main(["sweep", "--envs", "Pendulum-v1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mbrlax: error: --out: another mbrlax sweep is running in ") and err.count("\n") == 1


def test_ray_session_and_node_sizes(monkeypatch, capsys):
    from mbrlax.algorithms import sweep

    class FakeRay:  # the part of ray that _start_ray uses
        def __init__(self, initialized):
            self.initialized, self.calls = initialized, []

        def is_initialized(self):
            return self.initialized

        def init(self, **kw):
            self.calls.append(kw)

    cfg = SweepConfig(envs=("Pendulum-v1",), cpus_per_trial=4, gpus_per_trial=0.5)
    for initialized in (True, False):
        fake = FakeRay(initialized)
        monkeypatch.setitem(sys.modules, "ray", fake)
        assert sweep._find_ray(cfg) is fake
        assert sweep._start_ray(fake, cfg) is not initialized  # a session of the caller's: used, not ours to end
    (kw,) = fake.calls
    assert kw["num_cpus"] == len(os.sched_getaffinity(0)) and "ignore_reinit_error" not in kw
    node = {"Alive": True, "Resources": {"CPU": 4.0, "GPU": 1.0}}
    sweep.check_fits(cfg, [node, {"Alive": False, "Resources": {"CPU": 64.0}}])
    for resources, message in (({"CPU": 2.0, "GPU": 1.0}, "cpus_per_trial is 4, but the largest Ray node has 2 CPUs"),
                               ({"CPU": 8.0}, "gpus_per_trial is 0.5, but the largest Ray node has 0 GPUs")):
        with pytest.raises(ConfigError, match=message):
            sweep.check_fits(cfg, [{"Alive": True, "Resources": resources}])

    def unwritable(cfg):
        raise PermissionError(13, "Permission denied", cfg.out)

    monkeypatch.setattr("mbrlax.algorithms.report.run", unwritable)
    assert sweep._report(["x"], Path("r"), "return", 200) is None and "sweep: no report" in capsys.readouterr().out


def test_bad_input_is_one_line_naming_the_flag(tmp_path, capsys, monkeypatch):
    out = ["--out", str(tmp_path / "sw")]
    one_env = ["--envs", "cartpole-swingup"]
    cases = [(["--commands", "train nope"], "--commands has unknown command 'train nope'"),
             (["--commands", "report"], "--commands has unknown command 'report'"),
             (["--commands", "demo maze"], "--commands: 'mbrlax demo maze' has no --env"),
             (["--envs"], "--envs must not be empty"),
             (["--seeds"], "--seeds must not be empty"),
             (["--seeds", "1", "1"], "--seeds lists a value twice"),
             (["--overrides", "a=1", "a=1"], "--overrides: the arms 'a=1' and 'a=1' would share a run folder"),
             (["--overrides", "a=x/y", "a=x_y"], "--overrides: the arms 'a=x/y' and 'a=x_y' would share a run folder"),
             (["--commands", "train pets", "train  pets"], "--commands lists a value twice"),
             (["--envs", ".."], "--envs: '..' cannot name a run folder"),
             (["--overrides", "1x=2"], "--overrides: '1x=2' is not NAME=VALUE"),
             (["--flags", "'x"], "--flags cannot be split"),
             (["--address", "127.0.0.1:1"], "--address: cannot reach a Ray cluster at 127.0.0.1:1")]
    for args, message in cases:
        assert cli.main(["sweep", *one_env, *args, *out]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("mbrlax: error: ") and message in err and err.count("\n") == 1, (args, err)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    assert cli.main(["sweep", *one_env, *out]) == 2
    assert capsys.readouterr().err == "mbrlax: error: mbrlax sweep needs ray: pip install 'mbrlax[sweep]'\n"
    monkeypatch.delitem(sys.modules, "ray")
    (tmp_path / "file").write_text("")
    assert cli.main(["sweep", *one_env, "--out", str(tmp_path / "file" / "sw")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert cli.main(["sweep", "--envs", "cartpole-swingup", "Pendulum-v1", "--seeds", "0", "1", "--dry-run", *out]) == 0
    printed = capsys.readouterr().out
    assert "4 to start" in printed and printed.count("  new    mbrlax train pets --env=") == 4
    assert not (tmp_path / "sw").exists()  # a dry run writes nothing


def _sweep(out: Path, *more: str, **popen) -> subprocess.Popen:
    args = ["sweep", "--envs", "cartpole-swingup", "Pendulum-v1", "--seeds", "0", "1", "--flags", TINY,
            "--report-reps", "200", "--out", str(out), *more]
    return subprocess.Popen([sys.executable, "-c", MAIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)


def _processes_writing(out: Path) -> list[str]:
    """Command lines of the running processes that name ``out`` (trials of a sweep into it)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = (Path("/proc") / pid / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(out) in cmd and int(pid) != os.getpid():
            found.append(f"{pid}: {cmd[:200]}")
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the trials' processes in /proc")
def test_a_sweep_on_local_ray_runs_its_trials_and_reports_them(tmp_path):
    """The default suite's Ray test (the kill-and-resume one below is ``slow``): 1 env x 2 seeds of a tiny
    PETS run two at a time on local Ray; both finish with their own run folders, the report has both
    seeds, and a second sweep skips both."""
    pytest.importorskip("ray")
    out = tmp_path / "sw"
    args = ["sweep", "--envs", "Pendulum-v1", "--seeds", "0", "1", "--flags", TINY, "--report-reps", "200",
            "--out", str(out)]
    for attempt in range(2):
        done = subprocess.run([sys.executable, "-c", MAIN, *args], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        summary = json.loads((out / SUMMARY_FILE).read_text())
        assert summary["trials"] == 2 and summary["failed"] == 0
        assert summary["finished" if attempt == 0 else "skipped"] == 2, summary
    assert sorted(p.parent.name for p in out.rglob(RESULTS_FILE)) == ["seed0", "seed1"]
    with open(out / "report" / "summary.csv") as f:
        assert {(r["env"], r["method"]): r["seeds"] for r in csv.DictReader(f)} == {("Pendulum-v1", "pets"): "2"}


@pytest.mark.slow  # ~60 s idle, 167 s at load 7: two sweeps of 4 trials each (make test-all)
def test_sweep_killed_then_resumed_skips_finished_trials_and_reports(tmp_path):
    """2 envs x 2 seeds of a tiny PETS; one trial has a corrupt checkpoint, so it fails (exit 2)."""
    pytest.importorskip("ray")
    out = tmp_path / "sw"
    broken = out / "train-pets" / "Pendulum-v1" / "pets" / "seed1"
    broken.mkdir(parents=True)
    (broken / "checkpoint.json").write_text("{not json")

    def interrupted() -> set[Path]:  # trials that had begun and would resume: a checkpoint, no results
        return {p.parent for p in out.rglob("checkpoint.json") if not (p.parent / RESULTS_FILE).exists()} - {broken}

    # 1. a sweep, one trial at a time, killed as its first trial has finished and its second has a checkpoint
    first = _sweep(out, "--max-concurrent", "1", start_new_session=True)
    deadline = time.time() + 240
    while not (list(out.rglob(RESULTS_FILE)) and interrupted()):
        assert first.poll() is None, first.communicate()
        assert time.time() < deadline, "no trial finished in 240 s"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)  # the driver and the Ray it started
    for line in _processes_writing(out):  # the trials too, at once, as a crash would (the sweep's own way
        os.kill(int(line.split(":")[0]), signal.SIGKILL)  # of ending them, with their Ray workers, takes seconds)
    first.communicate()
    deadline = time.time() + 30
    while _processes_writing(out):
        assert time.time() < deadline, f"trials still running 30 s after the sweep was killed: {_processes_writing(out)}"
        time.sleep(0.2)
    finished_before, resumable = {p.parent for p in out.rglob(RESULTS_FILE)}, interrupted()
    assert finished_before and resumable

    # 2. run again: the finished trial is skipped, the interrupted one resumes, the rest start, the broken one fails
    second = _sweep(out)
    stdout, stderr = second.communicate(timeout=300)
    assert second.returncode == 2, (stdout, stderr)
    assert stderr.strip().splitlines()[-1].startswith("mbrlax: error: 1 of 4 trials failed"), stderr
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary["trials"] == 4 and summary["failed"] == 1
    assert summary["skipped"] == len(finished_before) and summary["finished"] == 3 - len(finished_before)
    for r in summary["records"]:
        log = (Path(r["out"]) / TRIAL_LOG).read_text()
        attempts = [line for line in log.splitlines() if line.startswith("=== ")]  # a header line each
        if Path(r["out"]) == broken:  # reported with the command's exit status and its one-line error
            assert r["status"] == "failed" and r["returncode"] == 2 and r["resumed"]
            assert r["last_stderr"].startswith("mbrlax: error: ") and "checkpoint.json is corrupt" in r["last_stderr"]
            assert r["last_stderr"] in stdout and r["last_stderr"] in log
            continue
        assert (Path(r["out"]) / RESULTS_FILE).exists()
        if Path(r["out"]) in finished_before:  # ran once, in the first sweep
            assert r["status"] == "skipped" and len(attempts) == 1
        else:
            assert r["status"] == "finished" and r["returncode"] == 0
        if Path(r["out"]) in resumable:  # continued from its checkpoint
            assert r["resumed"] and len(attempts) == 2 and " resumed on " in attempts[1] and "--resume" in attempts[1]
            assert "resuming " in log.split(" resumed on ")[1]
        else:
            assert not r["resumed"] and len(attempts) == 1
    # 3. the report of the finished trials: one row per env
    with open(out / "report" / "summary.csv") as f:
        rows = {(r["env"], r["method"]): r["seeds"] for r in csv.DictReader(f)}
    assert rows == {("cartpole-swingup", "pets"): "2", ("Pendulum-v1", "pets"): "1"}
