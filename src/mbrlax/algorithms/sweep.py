"""``mbrlax sweep``: commands x envs x override arms x seeds, each trial the ordinary command, on Ray.

A trial is one ordinary invocation, ``mbrlax train pets --env=E --seed=S --out=RUN [flags] [arm]``,
run as a subprocess in a Ray task that reserves ``cpus_per_trial`` CPUs (1 by default), so a local
Ray runs as many trials at once as the machine has cores; ``address`` sends them to an existing
cluster instead (the output folder must then be on a file system every node shares). Sweeps hand
whole commands to Ray; they do not reimplement them (docs/sweeps.md).

Run folders: ``OUT/<command>/<env>/<tag>/seed<S>``, e.g. ``OUT/train-pets/cartpole-swingup/pets/seed0``
and ``OUT/train-pets/cartpole-swingup/pets_planner.horizon=15/seed0``. The tag is the command's
name followed by the arm's flags, so ``mbrlax report OUT`` (which names a method after the folder
above ``seed<S>``) tells both the arms and the commands apart. Each run folder also gets
``trial.log``: a header line per attempt (time, resumed or new, the command line), then the
command's stdout and stderr; and ``trial.json``: the command line of its first attempt. A sweep
whose flags would run a folder's trial with another command line than that refuses to start
(ConfigError naming the first such folder): nothing is skipped or resumed under changed flags.

Resuming is the default: a trial whose run folder has a ``results.json`` that parses is finished and
skipped; one with a checkpoint (:func:`mbrlax.cli.checkpoint_file`) runs again with ``--resume`` and
continues from it (the training commands reproduce an uninterrupted run exactly); any other runs
from the start. A trial that fails does not stop the others: ``OUT/sweep_summary.json`` lists every
trial with its status, exit code and the last line of its stderr, and the failures are printed.
At the end the finished trials are aggregated by :func:`mbrlax.algorithms.report.run` into
``OUT/report/`` (summary.md, summary.csv, curves), and the sweep exits with an error if a trial failed.
A sweep holds ``OUT/.sweep.lock`` while it runs, so a second sweep into the same folder is refused.

Flags and arms are written without the leading dashes, ``"planner.horizon=15 no-video"`` (tyro
would read a value that starts with ``--`` as a flag of the sweep itself): ``name=value`` becomes
``--name value`` (``name=a,b`` gives a flag several values), a bare ``name`` becomes ``--name``.
A string that starts with ``-`` is taken as literal command-line text instead (from Python, or
on the command line with a leading space: ``" --planner.horizon 15"``).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from mbrlax.errors import ConfigError, MbrlaxError
from mbrlax.utils.atomic import atomic_write
from mbrlax.utils.sharding import HOST_DEVICE_FLAG
from mbrlax.utils.validate import MAX_SEED, check_nonempty, check_range, check_writable_dir, setting

SUMMARY_FILE = "sweep_summary.json"
TRIAL_LOG = "trial.log"
TRIAL_FILE = "trial.json"  # the command line of a run folder's first attempt
LOCK_FILE = ".sweep.lock"  # held by the sweep running in OUT
RESULTS_FILE = "results.json"  # written last (atomically) by every training command: finished if it parses
REPORT_DIR = "report"
_NOT_IN_SWEEPS = {("sweep",), ("report",)}
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]+")


class SweepError(MbrlaxError):
    """Some trials of a sweep failed (all the others ran; the summary is attached as ``.summary``)."""

    def __init__(self, message: str, summary: dict | None = None):
        super().__init__(message)
        self.summary = summary


@dataclass(frozen=True)
class SweepConfig:
    """Run a grid of commands x envs x override arms x seeds on Ray, resumably; aggregate the finished runs."""

    commands: tuple[str, ...] = ("train pets",)
    """Commands to run, e.g. "train pets" "train sac" (each must take --env, --seed and --out)."""
    envs: tuple[str, ...] = ()
    """Environment ids (at least one); every command runs on every env."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds; every (command, env, arm) runs once per seed."""
    overrides: tuple[str, ...] = ("",)
    """Arms, each a set of flags, e.g. "" "planner.horizon=15" ("": the command's defaults)."""
    flags: str = ""
    """Flags given to every trial, e.g. "iterations=5 no-video" (an arm's flags come after, so they win)."""
    out: str = "runs/sweep"
    """Sweep folder: a run folder per trial, sweep_summary.json, report/."""
    address: str = ""
    """Ray cluster to run on: "auto" (the one this machine belongs to) or HOST:PORT; "" starts a local Ray."""
    max_concurrent: int = 0
    """Most trials running at once (0: as many as the CPUs allow)."""
    cpus_per_trial: int = 1
    """CPUs each trial reserves (its JAX gets as many host devices)."""
    gpus_per_trial: float = 0.0
    """GPUs each trial reserves (fractions share one)."""
    report: bool = True
    """Aggregate the finished trials into OUT/report/ at the end (mbrlax report)."""
    metric: str = "return"
    """The metrics.csv column the report aggregates."""
    report_reps: int = 2000
    """Bootstrap resamples per confidence interval of the report."""
    dry_run: bool = False
    """List the trials, their run folders and whether each would be skipped, resumed or started; run nothing."""

    def __post_init__(self):
        from mbrlax.cli import COMMANDS  # the commands a trial may run (imported here: algorithms/ sits below the CLI)

        check_nonempty(self, "out", "metric")
        object.__setattr__(self, "commands", tuple(" ".join(c.split()) for c in self.commands))  # "train  pets"
        for name in ("commands", "seeds", "overrides"):  # envs: checked by run (the default has none)
            if not getattr(self, name):
                raise ConfigError(f"{setting(self, name)} must not be empty")
        for cmd in self.commands:
            path = tuple(cmd.split())
            if path not in COMMANDS or path in _NOT_IN_SWEEPS:
                names = ", ".join(repr(" ".join(p)) for p in COMMANDS if p not in _NOT_IN_SWEEPS)
                raise ConfigError(f"{setting(self, 'commands')} has unknown command {cmd!r}; commands: {names}")
        for env in self.envs:
            if not env.strip():
                raise ConfigError(f"{setting(self, 'envs')} must not contain an empty env id")
            if _env_folder(env) in (".", ".."):
                raise ConfigError(f"{setting(self, 'envs')}: {env!r} cannot name a run folder")
        check_range(self, "seeds", ge=0, le=MAX_SEED)
        check_range(self, "max_concurrent", ge=0)
        check_range(self, "cpus_per_trial", ge=1)
        check_range(self, "gpus_per_trial", ge=0)
        check_range(self, "report_reps", ge=100)
        for name in ("commands", "envs", "seeds"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ConfigError(f"{setting(self, name)} lists a value twice: {values}")
        parse_flags(self.flags, setting(self, "flags"))
        arms: dict[str, str] = {}
        for override in self.overrides:
            tag = arm_tag("x", override, setting(self, "overrides"))
            if tag in arms:
                raise ConfigError(f"{setting(self, 'overrides')}: the arms {arms[tag]!r} and {override!r} "
                                  "would share a run folder")
            arms[tag] = override


class Trial(NamedTuple):
    """One run of the grid: the ordinary command line (without ``--resume``) and its run folder."""

    command: str  # "train pets"
    env: str
    seed: int
    override: str  # the arm as given ("" for the defaults)
    tag: str  # the arm's folder name: the command's name, then the arm's flags
    out: str  # the run folder
    argv: tuple[str, ...]  # arguments of ``mbrlax``


def parse_flags(text: str, where: str = "flags") -> list[str]:
    """``"planner.horizon=15 no-video"`` -> ``["--planner.horizon", "15", "--no-video"]``.

    ``name=a,b`` gives the flag several values; text that starts with ``-`` is command-line text,
    split as a shell would (``" --planner.horizon 15"``). ConfigError naming ``where`` if it cannot
    be split (an unclosed quote) or an item is not a flag name."""
    try:
        tokens = shlex.split(text)
    except ValueError as e:
        raise ConfigError(f"{where} cannot be split into flags ({e}): {text!r}") from None
    if text.strip().startswith("-"):
        return tokens
    argv = []
    for tok in tokens:
        name, eq, value = tok.partition("=")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", name):
            raise ConfigError(f"{where}: {tok!r} is not NAME=VALUE or NAME (a flag without its dashes), in {text!r}")
        argv.append(f"--{name}")
        if eq:
            argv += value.split(",") if value else [""]
    return argv


def _env_folder(env: str) -> str:
    return _UNSAFE.sub("_", env)


def arm_tag(command: str, override: str, where: str = "overrides") -> str:
    """Folder name of an arm: the command's name (``"train pets"`` -> ``pets``), then the arm's flags
    (``pets_planner.horizon=15``), characters a folder name should not have replaced by ``_``."""
    name = command.split()[-1]
    argv = parse_flags(override, where)
    if not argv:
        return name
    words, i = [], 0
    while i < len(argv):  # --name v1 v2 -> name=v1,v2
        flag, values = argv[i].lstrip("-"), []
        i += 1
        while i < len(argv) and not argv[i].startswith("--"):
            values.append(argv[i])
            i += 1
        words.append(f"{flag}={','.join(values)}" if values else flag)
    tag = _UNSAFE.sub("_", f"{name}_{'_'.join(words)}")
    if len(tag) > 120:  # file systems allow 255 bytes; keep names readable, and distinct by a hash
        import hashlib

        tag = f"{tag[:100]}~{hashlib.sha1(tag.encode()).hexdigest()[:10]}"
    return tag


def expand(cfg: SweepConfig) -> list[Trial]:
    """The grid, in the order commands, envs, arms, seeds: each trial's command line and run folder
    ``OUT/<command>/<env>/<tag>/seed<S>`` (``OUT`` made absolute, so that every worker writes
    where the driver looks)."""
    root = Path(cfg.out).absolute()
    extra = parse_flags(cfg.flags, setting(cfg, "flags"))
    trials = []
    for command in cfg.commands:
        for env in cfg.envs:
            for override in cfg.overrides:
                tag = arm_tag(command, override, setting(cfg, "overrides"))
                for seed in cfg.seeds:
                    out = root / "-".join(command.split()) / _env_folder(env) / tag / f"seed{seed}"
                    # --env=E: an id that starts with "-" is not read as a flag
                    argv = (*command.split(), f"--env={env}", f"--seed={seed}", f"--out={out}",
                            *extra, *parse_flags(override, setting(cfg, "overrides")))
                    trials.append(Trial(command, env, seed, override, tag, str(out), argv))
    if len({t.out for t in trials}) != len(trials):  # ids that differ only in characters a folder name drops
        raise ConfigError(f"{setting(cfg, 'envs')} has ids that would share run folders: {cfg.envs}")
    return trials


def _finished(out: Path) -> bool:
    """``out/results.json`` is there and parses (a run killed while writing it is not finished)."""
    try:
        json.loads((out / RESULTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def trial_state(trial: Trial, checkpoint_file: str | None) -> str:
    """``"done"`` (a ``results.json`` that parses: skip it), ``"resume"`` (a checkpoint is there and
    the command can resume: run it with ``--resume``) or ``"new"``."""
    out = Path(trial.out)
    if _finished(out):
        return "done"
    if checkpoint_file is not None and (out / checkpoint_file).exists():
        return "resume"
    return "new"


def _without_out(argv) -> list[str]:  # a sweep folder that was moved keeps its trials
    return [a for a in argv if not str(a).startswith("--out=")]


def check_unchanged(cfg: SweepConfig, trials: list[Trial]) -> None:
    """ConfigError naming the first run folder whose ``trial.json`` has another command line than
    its trial now (changed ``--flags``, or arms or env ids that map to the same folder): its results
    or checkpoint belong to other settings. Nothing is deleted."""
    changed = []
    for t in trials:
        path = Path(t.out) / TRIAL_FILE
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))["argv"]
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError):
            recorded = None
        if not isinstance(recorded, list) or _without_out(recorded) != _without_out(t.argv):
            changed.append((t, recorded))
    if changed:
        t, recorded = changed[0]
        was = f"mbrlax {shlex.join(_without_out(recorded))}" if isinstance(recorded, list) else "unreadable"
        raise ConfigError(f"{setting(cfg, 'flags')}: {len(changed)} run folder(s) ran with another command line than "
                          f"this sweep gives them, the first {t.out} ({TRIAL_FILE}: {was}); run the sweep with "
                          f"the flags they had, use another {setting(cfg, 'out')}, or delete those folders")


def command_checkpoint_files(commands: tuple[str, ...]) -> dict[str, str | None]:
    """Per command, its :func:`mbrlax.cli.checkpoint_file` (None if it cannot resume); ConfigError
    for a command whose config has no env, seed or out to set."""
    from dataclasses import fields

    from mbrlax.cli import checkpoint_file, load_command

    found = {}
    for command in commands:
        names = {f.name for f in fields(load_command(tuple(command.split()))[1])}
        missing = [f"--{n}" for n in ("env", "seed", "out") if n not in names]
        if missing:
            raise ConfigError(f"SweepConfig.commands: 'mbrlax {command}' has no {', '.join(missing)}, "
                              "which every trial of a sweep sets")
        found[command] = checkpoint_file(tuple(command.split()))
    return found


def _record(trial: Trial, status: str, **more) -> dict:
    """A trial's entry in the summary: the trial, its status (finished, skipped, failed, not run),
    exit code, last stderr line (failures), seconds, whether it resumed, and ``more``."""
    return {**trial._asdict(), "argv": list(trial.argv), "status": status, "returncode": None, "last_stderr": "",
            "seconds": 0.0, "resumed": False, **more}


_BOOT = ("import ctypes, os, signal, sys\n"
         "try:\n"  # die with the Ray worker that started us (Linux), so no orphan goes on writing the folder
         "    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"
         "except (OSError, AttributeError):\n"
         "    pass\n"
         "if os.getppid() != int(os.environ.pop('MBRLAX_SWEEP_PARENT', os.getppid())):\n"
         "    sys.exit(143)\n"
         "from mbrlax.cli import main\n"
         "sys.exit(main(sys.argv[1:]))\n")


def run_trial(trial: Trial, checkpoint_file: str | None, cpus: int = 1, gpus: float = 0.0) -> dict:
    """Run one trial to its end (in a Ray task, or directly): skipped if finished, resumed if it has
    a checkpoint. Its stdout and stderr go to ``RUN/trial.log`` after a header line, its command line
    to ``RUN/trial.json`` on its first attempt; returns its record for the summary (:func:`_record`)."""
    host = socket.gethostname()
    state = trial_state(trial, checkpoint_file)
    if state == "done":
        return _record(trial, "skipped", host=host)
    argv = [*trial.argv, "--resume"] if state == "resume" else list(trial.argv)
    out = Path(trial.out)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / TRIAL_FILE).exists():
        atomic_write(out / TRIAL_FILE, lambda f: f.write(json.dumps({"argv": list(trial.argv)}).encode()))
    env = dict(os.environ, PYTHONUNBUFFERED="1", MBRLAX_SWEEP_PARENT=str(os.getpid()))
    # one JAX host device per CPU reserved (the mbrlax CLI asked for one per core of the machine)
    xla = re.sub(rf"{HOST_DEVICE_FLAG}=\S*", "", env.get("XLA_FLAGS", ""))
    env["XLA_FLAGS"] = f"{xla} {HOST_DEVICE_FLAG}={cpus}".strip()
    if 0 < gpus < 1:  # trials that share a GPU: JAX would take 75 % of its memory each
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 * gpus:.3f}"
    elif gpus == 0:  # Ray 2.60 does not hide GPUs from a task that reserved none: every such trial
        env["CUDA_VISIBLE_DEVICES"] = ""  # would land on GPU 0 and take 75 % of its memory; run it on CPU
        env["JAX_PLATFORMS"] = "cpu"
    t0, last = time.time(), ""
    broken = False  # an attempt that was killed may have left half a line (a progress bar)
    if (out / TRIAL_LOG).is_file() and (out / TRIAL_LOG).stat().st_size:
        with open(out / TRIAL_LOG, "rb") as f:
            f.seek(-1, os.SEEK_END)
            broken = f.read(1) != b"\n"
    with open(out / TRIAL_LOG, "a", encoding="utf-8") as log:
        log.write("\n" if broken else "")
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        log.write(f"=== {stamp} {'resumed' if state == 'resume' else 'started'} on {host}: "
                  f"mbrlax {shlex.join(argv)}\n")
        log.flush()
        proc = subprocess.Popen([sys.executable, "-c", _BOOT, *argv], stdout=log, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, env=env, text=True, errors="replace")
        try:
            for line in proc.stderr:  # universal newlines: a progress bar's \r updates are lines too
                log.write(line)
                log.flush()
                last = line.strip() or last
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    status = "finished" if code == 0 and _finished(out) else "failed"
    if code == 0 and status == "failed":
        last = f"exited 0 without writing {RESULTS_FILE}"
    return _record(trial, status, host=host, returncode=code, last_stderr=last if status == "failed" else "",
                   seconds=round(time.time() - t0, 1), resumed=state == "resume")


def _local_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (a container, taskset)
    except AttributeError:
        return os.cpu_count() or 1


def _find_ray(cfg: SweepConfig):
    """The ray module, after checking that ``cfg.address`` (if any) can be reached: Ray would wait
    minutes for a cluster that is not there. ConfigError if ray is not installed or it cannot."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise ConfigError("mbrlax sweep needs ray: pip install 'mbrlax[sweep]'") from None
    host, sep, port = cfg.address.rpartition(":")
    if sep and port.isdigit() and "://" not in cfg.address and not ray.is_initialized():
        try:
            socket.create_connection((host, int(port)), timeout=10).close()
        except OSError as e:
            raise ConfigError(f"{setting(cfg, 'address')}: cannot reach a Ray cluster at {cfg.address} "
                              f"({e.strerror or type(e).__name__})") from None
    return ray


def _start_ray(ray, cfg: SweepConfig) -> bool:
    """Use the Ray session this process already has (a library user's: used as it is, and not ours to
    shut down; returns False), else start a local Ray (no dashboard, workers' output not forwarded)
    or join ``cfg.address`` (returns True)."""
    import logging

    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    if not cfg.address:
        ray.init(address="local", num_cpus=_local_cpus(), include_dashboard=False, **quiet)
        return True
    try:
        ray.init(address=cfg.address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"{setting(cfg, 'address')}: cannot join the Ray cluster at {cfg.address} "
                          f"({first})") from None
    return True


def check_fits(cfg: SweepConfig, nodes: list[dict]) -> None:
    """ConfigError naming the flag if a trial needs more CPUs or GPUs than the largest live node of
    ``nodes`` (``ray.nodes()``) has: Ray would wait for such a node forever."""
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive", True)]
    for name, key in (("cpus_per_trial", "CPU"), ("gpus_per_trial", "GPU")):
        most = max((r.get(key, 0) for r in alive), default=0)
        if getattr(cfg, name) > most:
            raise ConfigError(f"{setting(cfg, name)} is {getattr(cfg, name)}, but the largest Ray node has "
                              f"{most:g} {key}s")


def _lock(root: Path, where: str):
    """``OUT/.sweep.lock``, open and locked for as long as the sweep keeps it open (the kernel
    releases it when the sweep ends, however it ends); ConfigError if another sweep holds it."""
    import fcntl

    f = open(root / LOCK_FILE, "a")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise ConfigError(f"{where}: another mbrlax sweep is running in {root} (it holds {LOCK_FILE}); "
                          "wait for it to end, or use another folder") from None
    except OSError as e:  # a file system without locks (some NFS): run unguarded
        print(f"sweep: cannot lock {root / LOCK_FILE} ({e.strerror or type(e).__name__}); "
              "make sure no other sweep writes into it")
    return f


def _describe(r: dict) -> str:
    arm = f" [{r['override']}]" if r["override"] else ""
    return f"{r['command']} {r['env']} seed {r['seed']}{arm}"


def _write_summary(root: Path, records: list[dict], started: float) -> dict:
    counts = {s: sum(r["status"] == s for r in records) for s in ("finished", "skipped", "failed", "not run")}
    summary = {"trials": len(records), **counts, "seconds": round(time.time() - started, 1), "records": records}
    text = json.dumps(summary, indent=1) + "\n"
    atomic_write(root / SUMMARY_FILE, lambda f: f.write(text.encode()))
    return summary


def _run_on_ray(ray, cfg: SweepConfig, trials: list[Trial], markers: dict, pending: list[int], records: dict,
                summary) -> None:
    """Each pending trial as a Ray task (at most ``max_concurrent`` at once); a line as each ends.
    Ray does not retry a task whose worker died (``max_retries=0``): the next sweep resumes it."""
    task = ray.remote(run_trial).options(num_cpus=cfg.cpus_per_trial, num_gpus=cfg.gpus_per_trial, max_retries=0)
    queue = list(pending)
    running: dict = {}
    limit = cfg.max_concurrent or len(queue)
    done = 0
    while queue or running:
        while queue and len(running) < limit:
            i = queue.pop(0)
            running[task.remote(trials[i], markers[trials[i].command], cfg.cpus_per_trial, cfg.gpus_per_trial)] = i
        ready, _ = ray.wait(list(running), num_returns=1)
        i = running.pop(ready[0])
        try:
            rec = ray.get(ready[0])
        except Exception as e:  # the task itself died (a lost node, a killed worker)
            first = (str(e).strip().splitlines() or [""])[0]
            rec = _record(trials[i], "failed", last_stderr=f"{type(e).__name__}: {first}")
        records[i] = rec
        done += 1
        what = {"finished": f"finished in {rec['seconds']:.0f} s" + (" (resumed)" if rec["resumed"] else ""),
                "skipped": "finished meanwhile (skipped)"}.get(rec["status"])
        what = what or f"FAILED (exit {rec['returncode']}): {rec['last_stderr']}"
        print(f"[{done}/{len(pending)}] {_describe(rec)}: {what}", flush=True)
        summary()


def run(cfg: SweepConfig) -> dict:
    """Run the sweep: the trials not finished yet on Ray, the summary, then the report. Returns the
    summary written to ``OUT/sweep_summary.json``; raises SweepError (after writing everything) if
    a trial failed."""
    started = time.time()
    if not cfg.envs:
        raise ConfigError(f"{setting(cfg, 'envs')} must not be empty: give at least one environment id, "
                          "e.g. --envs cartpole-swingup")
    root = Path(cfg.out).absolute()
    try:
        check_writable_dir(root)
    except ConfigError as e:
        raise ConfigError(f"{setting(cfg, 'out')}: {e}") from None
    trials = expand(cfg)
    markers = command_checkpoint_files(cfg.commands)
    check_unchanged(cfg, trials)
    states = [trial_state(t, markers[t.command]) for t in trials]
    pending = [i for i, s in enumerate(states) if s != "done"]
    print(f"sweep: {len(trials)} trials in {root}: {states.count('done')} finished earlier (skipped), "
          f"{states.count('resume')} to resume, {states.count('new')} to start")
    if cfg.dry_run:
        for t, s in zip(trials, states):
            print(f"  {s:<6} mbrlax {shlex.join(t.argv)}{' --resume' if s == 'resume' else ''}")
        return {"trials": len(trials), "states": states, "records": [t._asdict() for t in trials]}
    ray = _find_ray(cfg) if pending else None  # no ray, an address that is not there: before anything is written
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{setting(cfg, 'out')}: cannot make {root} ({e.strerror or type(e).__name__})") from None
    with _lock(root, setting(cfg, "out")):
        started_ray = ray is not None and _start_ray(ray, cfg)
        try:
            if ray is not None:
                check_fits(cfg, ray.nodes())
            records = {i: _record(t, "skipped" if s == "done" else "not run")
                       for i, (t, s) in enumerate(zip(trials, states))}

            def summary() -> dict:
                return _write_summary(root, list(records.values()), started)

            summary()
            if pending:
                _run_on_ray(ray, cfg, trials, markers, pending, records, summary)
            result = summary()
        finally:
            if started_ray:
                ray.shutdown()
        failed = [r for r in result["records"] if r["status"] == "failed"]
        for r in failed:
            print(f"failed: {_describe(r)} (exit {r['returncode']}): {r['last_stderr']}\n  log: {Path(r['out']) / TRIAL_LOG}")
        print(f"sweep: {result['finished']} finished, {result['skipped']} skipped (finished earlier), "
              f"{result['failed']} failed; wrote {root / SUMMARY_FILE}")
        finished = [r["out"] for r in result["records"] if r["status"] in ("finished", "skipped")]
        if cfg.report and finished:
            result["report"] = _report(finished, root / REPORT_DIR, cfg.metric, cfg.report_reps)
    if failed:
        raise SweepError(f"{len(failed)} of {len(trials)} trials failed (listed above and in {root / SUMMARY_FILE}); "
                         "run the sweep again to retry them", result)
    return result


def _report(run_dirs: list[str], out: Path, metric: str, reps: int) -> dict | None:
    """``mbrlax report`` on the finished trials; a report that cannot be made (bad input, a file it
    cannot write) is a notice, not a failure."""
    from mbrlax.algorithms.report import ReportConfig
    from mbrlax.algorithms.report import run as report

    try:
        return report(ReportConfig(dirs=tuple(run_dirs), out=str(out), metric=metric, reps=reps))
    except (MbrlaxError, OSError) as e:
        print(f"sweep: no report ({e})")
        return None
