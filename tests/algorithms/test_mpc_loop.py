"""The MPC loop through the command line, on a tiny budget: a run killed with SIGKILL at seeded random
moments and resumed each time ends with the uninterrupted run's metrics; TensorBoard events hold
every row's return; the last episode's video has one frame per step.

The runs are subprocesses sharing one JAX persistent compilation cache (a cached executable is the
one a compile would give, so the numbers stay bitwise equal; the tests compare them exactly).
"""

from __future__ import annotations

import csv
import os
import queue
import random
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

EPISODE_STEPS = 20  # 20 random + 3 x 20 MPC steps: every fit in one padded size (one compile)
ITERATIONS = 3
TINY = ["train", "pets", "--env", "cartpole-swingup", "--seed", "3", "--iterations", str(ITERATIONS),
        "--episode-steps", str(EPISODE_STEPS), "--random-steps", "0", "--model.hidden", "16", "--model.depth", "2",
        "--model.ensemble-size", "2", "--model.num-elites", "2", "--planner.population", "16",
        "--planner.elites", "4", "--planner.iterations", "2", "--planner.horizon", "5",
        "--objective.num-particles", "2", "--trainer.max-epochs", "3"]
TIMING_COLUMNS = {"fit_seconds", "plan_seconds_median", "episode_seconds"}

# Runs the CLI with each phase announced on stdout ("PHASE fit", "PHASE mpc-episode", "PHASE
# random-episode", "PHASE checkpoint") just before it starts, so the test can aim its kills at a
# phase. Works on earlier versions of mpc_loop too (names it lacks are skipped).
LAUNCHER = r"""
import sys
from mbrlax.utils.sharding import request_host_devices
request_host_devices()
from mbrlax.algorithms import mpc_loop

def announce(phase, fn):
    def wrapped(*args, **kwargs):
        name = phase
        if phase == "episode":
            name = "mpc-episode" if type(getattr(args[1], "__self__", None)).__name__ == "MPCAgent" else "random-episode"
        print("PHASE", name, flush=True)
        return fn(*args, **kwargs)
    return wrapped

for name, phase in [("fit", "fit"), ("_episode", "episode"), ("save_checkpoint", "checkpoint"), ("save_pytree", "checkpoint")]:
    if hasattr(mpc_loop, name):
        setattr(mpc_loop, name, announce(phase, getattr(mpc_loop, name)))
from mbrlax.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def subprocess_env():
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # with conftest's persistent compilation cache
    env.setdefault("JAX_PLATFORMS", "cpu")
    return env


def _start(out: Path, env: dict, *extra: str, stderr=subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", LAUNCHER, *TINY, "--out", str(out), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=stderr, text=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, subprocess_env):
    """The uninterrupted run (with its video)."""
    out = tmp_path_factory.mktemp("uninterrupted")
    proc = _start(out, subprocess_env)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    return out, stdout, stderr


def _rows(out: Path) -> list[dict]:
    with open(out / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _without_timings(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]


def _scalars(tb_dir: Path, tag: str) -> dict[int, float]:
    """``{step: value}`` of one scalar in a TensorBoard folder, read from its event files as
    TensorBoard reads them: files in name order; a session start with a step (tensorboardX's
    ``purge_step``) hides the events at that step and later logged before it."""
    from tensorboardX.proto import event_pb2

    events: list[tuple[int, float]] = []
    for path in sorted(tb_dir.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            if event.HasField("session_log") and event.session_log.status == event_pb2.SessionLog.START:
                events = [(s, v) for s, v in events if s < event.step]
            for value in event.summary.value:
                if value.tag == tag:
                    events.append((event.step, value.simple_value))
    steps = [s for s, _ in events]
    assert len(steps) == len(set(steps)), f"{tag} logged twice at a step: {sorted(steps)}"
    return dict(events)


def _assert_tensorboard_matches_csv(out: Path) -> None:
    import numpy as np

    rows = _rows(out)
    got = _scalars(out / "tb", "return")
    want = {int(r["env_steps"]): float(np.float32(float(r["return"]))) for r in rows}
    assert got == want


def test_tensorboard_events_hold_the_return_of_every_row(reference):
    out, _, _ = reference
    assert len(_rows(out)) == ITERATIONS + 1
    _assert_tensorboard_matches_csv(out)


def test_video_has_one_frame_per_step_of_the_last_episode(reference):
    out, stdout, stderr = reference
    video = out / "video.gif"
    if not video.exists():
        gl_problem = _gl_problem()
        if gl_problem:
            pytest.skip(gl_problem)
        pytest.fail(f"no video.gif although rendering works here:\n{stderr[-2000:]}")
    from PIL import Image

    last = _rows(out)[-1]
    with Image.open(video) as gif:
        assert gif.n_frames == int(last["episode_steps"]) == EPISODE_STEPS
        assert gif.size[0] > 16 and gif.size[1] > 16
    assert "video.gif" in stdout


def _gl_problem() -> str | None:
    """Why this machine cannot render offscreen (see ``tests/conftest.py``)."""
    from conftest import gl_problem

    return gl_problem()


def _run_until_killed(out: Path, env: dict, phase: str, occurrence: int, delay: float) -> str:
    """Run (resuming), SIGKILL it ``delay`` s after the ``occurrence``-th start of ``phase``; what happened."""
    stderr = tempfile.TemporaryFile("w+")  # not a pipe: nobody reads it while the run goes on
    proc = _start(out, env, "--resume", stderr=stderr)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    seen = 0
    while True:
        try:
            line = lines.get(timeout=0.05)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        if line.strip() == f"PHASE {phase}":
            seen += 1
            if seen == occurrence:
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return f"killed {1000 * delay:.1f} ms into {phase} #{occurrence}"
    proc.wait()
    stderr.seek(0)
    assert proc.returncode == 0, stderr.read()[-3000:]
    return "finished"


def test_run_killed_at_random_moments_and_resumed_ends_as_the_uninterrupted_one(reference, subprocess_env, tmp_path):
    ref_out, _, _ = reference
    rng = random.Random(18)
    # (phase, its occurrence in that process, longest delay): the first run is killed in its second
    # fit, after the first MPC episode's checkpoint, so the runs after it resume mid-run; the next in
    # an MPC episode; the last a few ms into a checkpoint (between its files, or between it and its
    # metrics row). Each phase comes up however far the run before got, with 3 MPC episodes.
    plan = [("fit", 2, 0.03), ("mpc-episode", 1, 0.03), ("checkpoint", 1, 0.004)]
    log = []
    for phase, occurrence, max_delay in plan:
        log.append(_run_until_killed(tmp_path, subprocess_env, phase, occurrence, rng.uniform(0, max_delay)))
    assert all(entry.startswith("killed") for entry in log), log  # else the run ended before a planned kill
    print("runs:", log)
    log.append(_run_until_killed(tmp_path, subprocess_env, "never", 1, 0.0))
    assert log[-1] == "finished"
    assert _without_timings(_rows(tmp_path)) == _without_timings(_rows(ref_out)), log
    _assert_tensorboard_matches_csv(tmp_path)


def test_a_checkpoint_killed_between_its_files_leaves_the_previous_one_in_force(tmp_path, monkeypatch):
    import numpy as np

    from mbrlax.data.buffer import ReplayBuffer
    from mbrlax.utils import checkpoint as ckpt

    def write(name, value):
        buf = ReplayBuffer(8, 1, 1)
        buf.add(np.zeros(1), np.zeros(1), value, np.zeros(1), False, False)
        return ckpt.save_checkpoint(tmp_path, name, {"value": value}, trees={"a.msgpack": {"w": np.full(3, value)}},
                                    files={"buffer.npz": buf}, pointer={"value": value})

    write("one", 1.0)
    real_save = ckpt.save_pytree
    calls = []

    def killed_after_first_file(path, tree):
        calls.append(path)
        if len(calls) > 1:
            raise KeyboardInterrupt  # the process dies here
        real_save(path, tree)

    monkeypatch.setattr(ckpt, "save_pytree", killed_after_first_file)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(tmp_path, "two", {"value": 2.0},
                             trees={"a.msgpack": {"w": np.full(3, 2.0)}, "b.msgpack": {"w": np.zeros(1)}})
    folder, loop = ckpt.find_checkpoint(tmp_path)
    assert folder.name == "one" and loop == {"value": 1.0}
    assert ckpt.load_pytree(folder / "a.msgpack", {"w": np.zeros(3)})["w"].tolist() == [1.0, 1.0, 1.0]
    monkeypatch.setattr(ckpt, "save_pytree", real_save)
    write("two", 2.0)  # the stale half-written folder is replaced, the old one removed
    assert ckpt.find_checkpoint(tmp_path)[0].name == "two" and sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["two"]


@pytest.mark.parametrize("damage", ["model.msgpack", "agent.msgpack", "loop.json", "buffer.npz"])
def test_resume_from_a_damaged_checkpoint_file_is_one_line_naming_it(reference, tmp_path, capsys, damage):
    import json
    import shutil

    from mbrlax.cli import main

    out = tmp_path / "run"
    shutil.copytree(reference[0], out)
    folder = out / json.loads((out / "checkpoint.json").read_text())["path"]
    if damage == "agent.msgpack":  # a well-formed file of the wrong structure
        from mbrlax.utils.checkpoint import save_pytree

        save_pytree(folder / damage, {"key": [1, 2, 3]})
    elif damage == "buffer.npz":
        (folder / damage).unlink()
    else:
        (folder / damage).write_bytes((folder / damage).read_bytes()[:20])
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert main([*TINY, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and damage in err[0], err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # nothing rewritten


def test_resume_refuses_metrics_rows_without_a_checkpoint(reference, tmp_path):
    import dataclasses
    import shutil

    from mbrlax.algorithms.mpc_loop import MPCLoopConfig, run
    from mbrlax.errors import ConfigError

    shutil.copy(reference[0] / "metrics.csv", tmp_path / "metrics.csv")
    cfg = dataclasses.replace(MPCLoopConfig(), out=str(tmp_path), resume=True)
    with pytest.raises(ConfigError, match="no checkpoint.json"):
        run(cfg)


def test_no_video_is_claimed_when_no_episode_was_rendered(tmp_path, capsys):
    from mbrlax.cli import main

    assert main([*TINY, "--out", str(tmp_path), "--iterations", "0"]) == 0
    out = capsys.readouterr().out
    wrote = next(line for line in out.splitlines() if line.startswith("wrote "))
    assert "video.gif" not in wrote and not (tmp_path / "video.gif").exists()
    assert "no video.gif: no MPC episode ran" in out


def test_learning_curve_marks_the_random_data_and_draws_the_presets_target(tmp_path):
    from mbrlax.algorithms.presets import target_return
    from mbrlax.utils.plots import plot_learning_curve

    assert target_return("cartpole-swingup")[0] == 180 and target_return("HalfCheetah-v5")[0] == 4200
    assert target_return("InvertedPendulum-v5")[0] == 1000 and target_return("Pendulum-v1") is None
    rows = [{"iteration": "0", "env_steps": "200", "return": "-4.8", "policy": "random"}] + \
        [{"iteration": str(i), "env_steps": str(200 * (i + 1)), "return": str(r), "policy": "mpc"}
         for i, r in enumerate([60.0, 160.0, 178.0], start=1)]
    fig = plot_learning_curve(rows, tmp_path / "curve.png", target=target_return("cartpole-swingup"))
    assert (tmp_path / "curve.png").stat().st_size > 0
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["random-policy data"].get_ydata()) == [-4.8]
    assert list(lines["MPC episodes"].get_xdata()) == [400, 600, 800]
    target = next(line for label, line in lines.items() if label.startswith("target: 180 of 200"))
    assert list(target.get_ydata()) == [180, 180] and target.get_linestyle() == "--"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(lines)
    # other commands' rows (no policy column) are one curve, without a legend
    fig = plot_learning_curve([{"env_steps": 1, "return": 2}], tmp_path / "plain.png")
    assert fig.axes[0].get_legend() is None and len(fig.axes[0].get_lines()) == 1


def test_a_checkpoint_under_the_current_name_goes_beside_it(tmp_path):
    """Saving under the name the pointer names (a run that starts over in its old folder) is no error."""
    from mbrlax.utils import checkpoint as ckpt

    for value in (1, 2, 3):
        ckpt.save_checkpoint(tmp_path, "iteration_00000", {"value": value})
        folder, loop = ckpt.find_checkpoint(tmp_path)
        assert loop == {"value": value} and [p.name for p in (tmp_path / "ckpt").iterdir()] == [folder.name]
    assert folder.name in ("iteration_00000", "iteration_00000.new")


def test_a_fresh_run_in_a_used_folder_starts_over(tmp_path, capsys, monkeypatch):
    """Without --resume, the previous run's checkpoint goes before any work: no clash with this run's
    first checkpoint, and no stale checkpoint beside an emptied metrics.csv if this run dies early."""
    from mbrlax.algorithms import mpc_loop
    from mbrlax.cli import main

    notices = []

    class Agent(mpc_loop.MPCAgent):  # the loop logs plan times itself: no slow-plan notice
        def __init__(self, *args, **kwargs):
            notices.append(kwargs.get("notice_slow_plans", True))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(mpc_loop, "MPCAgent", Agent)
    args = [*TINY, "--out", str(tmp_path), "--iterations", "0", "--no-video"]
    assert main(args) == 0 and (tmp_path / "checkpoint.json").exists()
    capsys.readouterr()
    assert main(args) == 0  # its first checkpoint is iteration_00000 again
    notice = f"starting over in {tmp_path}: replacing the previous run's checkpoint.json, ckpt, metrics.csv"
    assert notice in capsys.readouterr().out
    assert notices == [False, False]

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mpc_loop, "_episode", killed)  # dies in its first (random) episode
    assert main(args) == 130
    assert not (tmp_path / "checkpoint.json").exists() and not (tmp_path / "ckpt").exists()


def test_an_episode_goes_on_when_rendering_fails(capsys):
    import numpy as np

    from mbrlax.algorithms.mpc_loop import _episode
    from mbrlax.data.buffer import ReplayBuffer

    class NoGL:
        renders = 0

        def reset(self, seed=None):
            self.t = 0
            return np.zeros(1, np.float32), {}

        def step(self, action):
            self.t += 1
            return np.zeros(1, np.float32), 1.0, False, self.t >= 3, {}

        def render(self):
            self.renders += 1
            raise RuntimeError("cannot create an EGL context\nsecond line")

    env = NoGL()
    total, steps, frames = _episode(env, lambda obs: np.zeros(1), 0, ReplayBuffer(8, 1, 1), seed=0, render=True)
    assert (total, steps, frames, env.renders) == (3.0, 3, [], 1)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["rendering failed (RuntimeError: cannot create an EGL context); the run goes on without video.gif"]


def test_resuming_a_finished_run_names_its_video(tmp_path, capsys):
    from mbrlax.cli import main

    args = [*TINY, "--out", str(tmp_path), "--iterations", "0"]
    assert main(args) == 0
    (tmp_path / "video.gif").write_bytes(b"GIF89a")  # as the earlier invocation left it
    capsys.readouterr()
    assert main([*args, "--resume"]) == 0
    out = capsys.readouterr().out
    assert "no video.gif" not in out and f"{tmp_path}/video.gif is from an earlier invocation" in out


def test_resume_refuses_metrics_rows_that_do_not_fit_the_checkpoint(tmp_path):
    import json

    from mbrlax.algorithms.mpc_loop import resume_point
    from mbrlax.errors import DataError

    folder = tmp_path / "ckpt" / "iteration_00002"
    folder.mkdir(parents=True)
    (folder / "loop.json").write_text(json.dumps({"env_id": "cartpole-swingup", "iteration": 2, "env_steps": 60,
                                                  "rows": 3, "row": {"iteration": 2}, "key": [0, 1]}))
    (tmp_path / "checkpoint.json").write_text(json.dumps({"path": "ckpt/iteration_00002"}))
    good = "iteration,env_steps,return\n0,20,1.5\n1,40,2.5\n"
    (tmp_path / "metrics.csv").write_text(good)
    assert resume_point(tmp_path)[0] == folder
    for bad in (good.replace("2.5", "lots"), good.replace("\n1,", "\n7,"), good.replace(",40,", ",,")):
        (tmp_path / "metrics.csv").write_text(bad)
        with pytest.raises(DataError, match=r"metrics\.csv row 2 "):
            resume_point(tmp_path)
