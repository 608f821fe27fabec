"""The outer loops users run, each with a frozen config dataclass, and the presets that fill them.

- :mod:`~mbrlax.algorithms.mpc_loop` — ``run(MPCLoopConfig)``: collect, fit, plan and act, aggregate
  (PETS, PDDM, RS-MPC, grad-MPC are presets of it).
- :mod:`~mbrlax.algorithms.mbpo` — ``run(MBPOConfig, learner=None)``: MBPO with SAC or your own learner.
- :mod:`~mbrlax.algorithms.fit_model` and :mod:`~mbrlax.algorithms.sac_train` — fit a model on
  random data; model-free SAC.
- :mod:`~mbrlax.algorithms.presets` — per-environment settings. ``pets_light_preset(env)`` are the
  light settings (its ``.model``, ``.trainer``, ``.planner``, ``.objective`` build the library's
  pieces; ~0.1 s per action on 2 cores), ``pets_preset(env)`` the paper's (~7 s per action).

Names load on first use (PEP 562), so a command imports only its own loop.
"""

from mbrlax._lazy import lazy_exports

_EXPORTS = {
    **{name: f"mbrlax.algorithms.{name}" for name in ("fit_model", "mbpo", "mpc_loop", "presets", "sac_train")},
    "MPCLoopConfig": ".mpc_loop:MPCLoopConfig",
    "PlannerConfig": ".mpc_loop:PlannerConfig",
    "MBPOConfig": ".mbpo:MBPOConfig",
    "mbpo_preset": ".mbpo:mbpo_preset",
    "FitModelConfig": ".fit_model:FitModelConfig",
    "SACTrainConfig": ".sac_train:SACTrainConfig",
    "train_sac": ".sac_train:train_sac",
    **{name: f".presets:{name}" for name in ("pets_preset", "pets_light_preset", "light_pets", "pddm_preset",
                                             "rs_mpc_preset", "grad_mpc_preset")},
}

__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
