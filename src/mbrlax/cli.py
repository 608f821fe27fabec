"""``mbrlax COMMAND [NAME] --env ID --seed N --out DIR [--field value ...]``.

Every setting of a command's config dataclass is a flag (derived with tyro). Presets: for
commands that have them, ``--env`` picks the per-environment defaults before flags apply.
Bad input exits with status 2 and one line naming the problem, without a traceback.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from typing import Callable

from mbrlax.utils.sharding import request_host_devices

# command path -> "module:ConfigClass:run_function[:preset_module.preset_function]"
# (imported lazily so start-up stays fast; a preset maps an env id to the default config)
COMMANDS: dict[tuple[str, ...], str] = {
    ("fit-model",): "mbrlax.algorithms.fit_model:FitModelConfig:run",
    ("train", "pets"): "mbrlax.algorithms.mpc_loop:MPCLoopConfig:run:mbrlax.algorithms.presets.pets_light_preset",
    ("train", "pets-paper"): "mbrlax.algorithms.mpc_loop:MPCLoopConfig:run:mbrlax.algorithms.presets.pets_preset",
    ("train", "pddm"): "mbrlax.algorithms.mpc_loop:MPCLoopConfig:run:mbrlax.algorithms.presets.pddm_preset",
    ("train", "rs-mpc"): "mbrlax.algorithms.mpc_loop:MPCLoopConfig:run:mbrlax.algorithms.presets.rs_mpc_preset",
    ("train", "grad-mpc"): "mbrlax.algorithms.mpc_loop:MPCLoopConfig:run:mbrlax.algorithms.presets.grad_mpc_preset",
    ("train", "sac"): "mbrlax.algorithms.sac_train:SACTrainConfig:train_sac",
    ("train", "mbpo"): "mbrlax.algorithms.mbpo:MBPOConfig:run:mbrlax.algorithms.mbpo.mbpo_preset",
    ("demo", "maze"): "mbrlax.demos.maze:MazeDemoConfig:run",
    ("demo", "cliff"): "mbrlax.demos.cliff:CliffDemoConfig:run",
    ("demo", "loop"): "mbrlax.demos.loop:LoopDemoConfig:run",
    ("demo", "planners"): "mbrlax.demos.planners:PlannersDemoConfig:run",
}


def _usage() -> str:
    lines = ["usage: mbrlax COMMAND [NAME] [--flags]   (add --help to any command for its flags)", "commands:"]
    lines += [f"  mbrlax {' '.join(path)}" for path in COMMANDS]
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
    raise SystemExit(f"mbrlax: error: unknown command {' '.join(argv[:2]) or '(none)'!r}\n{_usage()}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    path, rest = _resolve(argv)
    request_host_devices()  # both cores for batched model evaluation (before JAX starts)
    module_name, cls_name, run_name, *preset = COMMANDS[path].split(":")
    try:
        import tyro

        from mbrlax.errors import MbrlaxError

        module = importlib.import_module(module_name)
        config_cls = getattr(module, cls_name)
        run: Callable = getattr(module, run_name)
        default = config_cls()
        env = _find_env(rest)
        if preset:
            preset_module, preset_fn = preset[0].rsplit(".", 1)
            default = getattr(importlib.import_module(preset_module), preset_fn)(env or default.env)
        elif env is not None and "env" in {f.name for f in dataclasses.fields(config_cls)}:
            default = dataclasses.replace(default, env=env)
        cfg = tyro.cli(config_cls, args=rest, default=default, prog=f"mbrlax {' '.join(path)}",
                       description=(config_cls.__doc__ or "").strip().splitlines()[0] if config_cls.__doc__ else None)
        run(cfg)
    except MbrlaxError as e:
        print(f"mbrlax: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mbrlax: interrupted; the last checkpoint in the output folder is intact", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
