"""``mbrlax COMMAND [NAME] --env ID --seed N --out DIR [--field value ...]``.

Every setting of a command's config dataclass is a flag (derived with tyro). Presets: for
commands that have them, ``--env`` picks the per-environment defaults before flags apply.

Bad input exits with status 2 and one line, ``mbrlax: error: ...``, without a traceback: a
setting out of range (each config checks its fields when it is made, naming them ``Class.field``;
this module rewrites those names to flags such as ``--model.num-elites``), an env that cannot be
made (checked before anything is written), a ``--resume`` that cannot continue, a corrupt or
unwritable file (named). tyro's own parse errors (a bad number, an unknown flag) become one line too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import os
import re
import sys
from typing import Any, Callable

from mbrlax.utils.sharding import request_host_devices

# command path -> ("module:ConfigClass:run_function[:preset_module.preset_function]", one-line description)
# (imported lazily so start-up stays fast; a preset maps an env id to the default config)
_MPC = "mbrlax.algorithms.mpc_loop:MPCLoopConfig:run:mbrlax.algorithms.presets."
COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("fit-model",): ("mbrlax.algorithms.fit_model:FitModelConfig:run",
                     "Fit a dynamics model on random-policy data and measure its multi-step error."),
    ("report",): ("mbrlax.algorithms.report:ReportConfig:run",
                  "Aggregate run folders over seeds: IQM and mean with 95% bootstrap intervals (rliable), curves."),
    ("sweep",): ("mbrlax.algorithms.sweep:SweepConfig:run",
                 "Run commands x envs x arms x seeds as separate runs on Ray, resumably; report the finished ones."),
    ("train", "pets"): (_MPC + "pets_light_preset",
                        "Light PETS (CEM, TS∞, probabilistic ensemble): the paper's structure, minutes on 2 cores."),
    ("train", "pets-paper"): (_MPC + "pets_preset",
                              "PETS with the paper's settings (Chua et al. 2018): population 500, 20 particles."),
    ("train", "pddm"): (_MPC + "pddm_preset",
                        "PDDM (Nagabandi et al. 2020): deterministic ensemble, filtered MPPI."),
    ("train", "rs-mpc"): (_MPC + "rs_mpc_preset",
                          "Random-shooting MPC with one deterministic model (Nagabandi et al. 2018)."),
    ("train", "grad-mpc"): (_MPC + "grad_mpc_preset",
                            "MPC planning by backprop through a deterministic ensemble, started from a short CEM."),
    ("train", "latent"): ("mbrlax.algorithms.latent_loop:LatentLoopConfig:run:mbrlax.algorithms.latent_loop.latent_preset",
                          "MPC from camera frames: a latent model (TD-MPC-style self-prediction) and CEM in its latent space."),
    ("train", "sac"): ("mbrlax.algorithms.sac_train:SACTrainConfig:train_sac",
                       "Model-free soft actor-critic (Haarnoja et al. 2018)."),
    ("train", "sac-seeds"): ("mbrlax.algorithms.sac_seeds:SACSeedsConfig:run",
                             "SAC for several seeds in one process (learner states vmapped over a seed axis), one run folder per seed."),
    ("train", "pets-seeds"): ("mbrlax.algorithms.mpc_seeds:MPCSeedsConfig:run:mbrlax.algorithms.mpc_seeds.pets_light_seeds_preset",
                              "Light PETS for several seeds in one process (fits and plans vmapped over a seed axis), one run folder per seed."),
    ("train", "mbpo"): ("mbrlax.algorithms.mbpo:MBPOConfig:run:mbrlax.algorithms.mbpo.mbpo_preset",
                        "MBPO (Janner et al. 2019): SAC on short rollouts of a learned ensemble."),
    ("train", "mbpo-seeds"): ("mbrlax.algorithms.mbpo_seeds:MBPOSeedsConfig:run:mbrlax.algorithms.mbpo_seeds.mbpo_seeds_preset",
                              "MBPO for several seeds in one process (fits, rollouts and SAC updates vmapped over a seed axis), one run folder per seed."),
    ("demo", "maze"): ("mbrlax.demos.maze:MazeDemoConfig:run", "Coverage and model fidelity in the point maze."),
    ("demo", "cliff"): ("mbrlax.demos.cliff:CliffDemoConfig:run",
                        "Distribution mismatch on the cliff, and data aggregation."),
    ("demo", "loop"): ("mbrlax.demos.loop:LoopDemoConfig:run",
                       "Open- versus closed-loop MPC, with and without warm start, under model error."),
    ("demo", "planners"): ("mbrlax.demos.planners:PlannersDemoConfig:run",
                           "Gradient-based versus sampling-based planners on a point mass with a known optimum."),
    ("demo", "imitation"): ("mbrlax.demos.imitation:ImitationDemoConfig:run",
                            "Imitation from observation (BCO): an inverse model labels an expert's action-free data."),
    ("demo", "goals"): ("mbrlax.demos.goals:GoalsDemoConfig:run",
                        "Goal reaching with a multi-step inverse model as the controller, against forward-model MPC."),
    ("demo", "state-plans"): ("mbrlax.demos.state_plans:StatePlansDemoConfig:run",
                              "Plan in state space (action-free + interpolation models), act with inverse dynamics."),
    ("demo", "synthetic-data"): ("mbrlax.demos.synthetic_data:SyntheticDataDemoConfig:run",
                                 "SAC on real plus joint-model synthetic transitions (SynthER) against real only."),
}

class _UsageError(Exception):
    """Bad command line outside a config (unknown command, a flag tyro rejects): exit 2."""


def _usage(group: str | None = None) -> str:
    paths = [p for p in COMMANDS if group is None or p[0] == group]
    head = f"usage: mbrlax {group} NAME [--flags]" if group else "usage: mbrlax COMMAND [NAME] [--flags]"
    width = max(len(" ".join(p)) for p in paths)
    lines = [f"{head}   (add --help to any command for its flags)", "commands:"]
    lines += [f"  mbrlax {' '.join(p):<{width}}  {COMMANDS[p][1]}" for p in paths]
    return "\n".join(lines)


def _find_env(args: list[str]) -> str | None:
    for i, a in enumerate(args):
        if a == "--env" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--env="):
            return a.split("=", 1)[1]
    return None


def _resolve(argv: list[str]) -> tuple[tuple[str, ...], list[str]]:
    for n in (2, 1):
        path = tuple(argv[:n])
        if path in COMMANDS:
            return path, argv[n:]
    groups = sorted({p[0] for p in COMMANDS if len(p) > 1})
    if argv[0] in groups:
        names = ", ".join(p[1] for p in COMMANDS if p[0] == argv[0])
        if len(argv) == 1 or argv[1].startswith("-"):
            raise _UsageError(f"'mbrlax {argv[0]}' needs a command name: {names}")
        raise _UsageError(f"unknown command 'mbrlax {argv[0]} {argv[1]}'; 'mbrlax {argv[0]}' commands: {names}")
    raise _UsageError(f"unknown command {argv[0]!r}; commands: "
                      + ", ".join(" ".join(p) for p in COMMANDS) + " (mbrlax --help describes them)")


def _flag_prefixes(config: Any) -> dict[str, str]:
    """Config class name -> its flag prefix in this command (``ModelConfig`` -> ``model.``)."""
    found: dict[str, list[str]] = {}

    def walk(obj: Any, prefix: str) -> None:
        found.setdefault(type(obj).__name__, []).append(prefix)
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                walk(value, f"{prefix}{f.name}.")

    walk(config, "")
    return {cls: prefixes[0] for cls, prefixes in found.items() if len(prefixes) == 1}  # ambiguous: keep Class.field


def _as_flags(message: str, prefixes: dict[str, str]) -> str:
    """``ModelConfig.num_elites`` -> ``--model.num-elites`` for the config classes of this command."""
    def flag(m: re.Match) -> str:
        if m.group(1) not in prefixes:
            return m.group(0)
        return f"--{prefixes[m.group(1)]}{m.group(2)}".replace("_", "-")

    return re.sub(r"\b([A-Z][A-Za-z0-9]*)\.([a-z_][a-z0-9_]*)\b", flag, message)


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _tyro_message(text: str) -> str | None:
    """The message of a tyro error, as one line (None if there is none).

    tyro draws a box on a terminal (``╭─ title ─╮``, then ``│ message │``, a rule, details) and
    plain text otherwise (the title, a rule, the message, a rule, details).
    """
    sections: list[list[str]] = [[]]
    raw_lines = _ANSI.sub("", text).splitlines()
    boxed = any(line.strip().startswith("╭") for line in raw_lines)
    for raw in raw_lines:
        line = raw.strip().strip("│|").strip()
        if raw.strip().startswith(("╭", "╰")) or (line and set(line) <= set("─-━ ")):
            sections.append([])
        elif line:
            sections[-1].append(line)
    sections = [sec for sec in sections if sec]
    body = sections[0 if boxed else 1] if len(sections) > (0 if boxed else 1) else []
    msg = " ".join(body)
    return msg[len("Error parsing "):] if msg.startswith("Error parsing ") else (msg or None)


def _mbrlax_error_in(exc: BaseException):
    """The MbrlaxError a tyro SystemExit was raised while handling (a config's ``__post_init__``), if any."""
    from mbrlax.errors import MbrlaxError

    seen = exc.__context__
    while seen is not None:
        if isinstance(seen, MbrlaxError):
            return seen
        seen = seen.__context__
    return None


def load_command(path: tuple[str, ...]) -> tuple[Any, type, Callable, list[str]]:
    """A command's module, config class, run function and preset (``[]`` or ``["module.function"]``)."""
    module_name, cls_name, run_name, *preset = COMMANDS[path][0].split(":")
    module = importlib.import_module(module_name)
    return module, getattr(module, cls_name), getattr(module, run_name), preset


def checkpoint_file(path: tuple[str, ...]) -> str | None:
    """The file whose presence in a run folder marks a checkpoint that ``mbrlax PATH --resume``
    continues from (the command module's ``CHECKPOINT_FILE``); None for a command that cannot resume."""
    module, config_cls, _, _ = load_command(path)
    if "resume" not in {f.name for f in dataclasses.fields(config_cls)}:
        return None
    return getattr(module, "CHECKPOINT_FILE", None)


def _parse(path: tuple[str, ...], rest: list[str], prefixes: dict[str, str]):
    """``(config, run_function, module)`` from the command line (SystemExit(0) for --help);
    fills ``prefixes`` with the config classes' flag prefixes as soon as they are known."""
    import tyro

    module, config_cls, run, preset = load_command(path)
    description = COMMANDS[path][1]
    default = config_cls()
    env = _find_env(rest)
    if preset:
        preset_module, preset_fn = preset[0].rsplit(".", 1)
        default = getattr(importlib.import_module(preset_module), preset_fn)(env or default.env)
    elif env is not None and "env" in {f.name for f in dataclasses.fields(config_cls)}:
        default = dataclasses.replace(default, env=env)
    prefixes.update(_flag_prefixes(default))
    prog = f"mbrlax {' '.join(path)}"
    captured = io.StringIO()  # tyro's error boxes; replayed unless they become one line
    try:
        with contextlib.redirect_stderr(captured):
            cfg = tyro.cli(config_cls, args=rest, default=default, prog=prog, description=description)
    except SystemExit as e:
        cause = _mbrlax_error_in(e)  # tyro wraps a config's ConfigError in its own box: use ours
        if cause is not None:
            raise cause.with_traceback(None) from None
        message = _tyro_message(captured.getvalue()) if e.code not in (0, None) else None
        if message is None:
            sys.stderr.write(captured.getvalue())
            raise
        raise _UsageError(f"{message} (see {prog} --help)") from None
    sys.stderr.write(captured.getvalue())
    return cfg, run, module


def _before_run(cfg: Any, path: tuple[str, ...]) -> Any:
    """Checks that need the file system or the env, before the run writes anything.

    ``--resume`` is checked against the command's :func:`checkpoint_file` by
    :func:`~mbrlax.utils.validate.check_resume`, the check the training loops themselves run; a
    command without one is not checked here."""
    from mbrlax.utils.validate import check_env, check_resume, check_writable_dir

    if isinstance(getattr(cfg, "out", None), str):
        check_writable_dir(cfg.out)
    if isinstance(getattr(cfg, "env", None), str):
        check_env(cfg.env)
    if getattr(cfg, "resume", False):
        marker = checkpoint_file(path)
        if marker is not None and not check_resume(cfg.out, marker):
            cfg = dataclasses.replace(cfg, resume=False)
    return cfg


def _os_error_line(e: OSError) -> str:
    where = e.filename if e.filename is not None else ""
    if e.filename2 is not None:
        where = f"{where} -> {e.filename2}"
    return f"{e.strerror or type(e).__name__}: {where}" if where else str(e)


def _error(message: str) -> int:
    print(f"mbrlax: error: {message}", file=sys.stderr)
    return 2


def _main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if len(argv) >= 2 and argv[1] in ("-h", "--help") and argv[0] in {p[0] for p in COMMANDS if len(p) > 1}:
        print(_usage(argv[0]))
        return 0
    from mbrlax.errors import MbrlaxError

    prefixes: dict[str, str] = {}
    try:
        path, rest = _resolve(argv)
        request_host_devices()  # both cores for batched model evaluation (before JAX starts)
        cfg, run, _ = _parse(path, rest, prefixes)
        cfg = _before_run(cfg, path)
        run(cfg)
    except SystemExit as e:  # tyro's --help (0), or an error it printed itself
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except _UsageError as e:
        return _error(str(e))
    except MbrlaxError as e:
        return _error(_as_flags(str(e), prefixes))
    except BrokenPipeError:
        raise
    except OSError as e:  # an unwritable --out, a full disk, a missing or unreadable file: name it
        return _error(_os_error_line(e))
    except KeyboardInterrupt:
        print("mbrlax: interrupted; the last checkpoint in the output folder is intact", file=sys.stderr)
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``mbrlax ARGS``; returns the exit status (0 ok, 2 bad input, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        code = _main(argv)
        sys.stdout.flush()  # a closed pipe (``mbrlax ... --help | head``) surfaces here, not at exit
        return code
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError, AttributeError, io.UnsupportedOperation):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141  # 128 + SIGPIPE, as a shell reports a process killed by a closed pipe


if __name__ == "__main__":
    sys.exit(main())
