"""mbrlax: model-based reinforcement learning in JAX.

Data flows one way: envs -> data -> models -> planning -> agents -> algorithms -> cli.

The names a user needs are importable from here (``from mbrlax import make_env, fit, MPCAgent``)
and from each subpackage (``mbrlax.models``, ``mbrlax.agents``, ...), whose ``__all__`` lists
them. They load on first use, so ``import mbrlax`` does not import JAX.
"""

from mbrlax._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    # subpackages
    **{name: f"mbrlax.{name}" for name in ("envs", "data", "models", "planning", "agents", "algorithms", "utils")},
    # environments and tasks
    "make_env": "mbrlax.envs:make_env",
    "make_vector_env": "mbrlax.envs:make_vector_env",
    "get_task": "mbrlax.envs:get_task",
    "action_bounds": "mbrlax.envs:action_bounds",
    "Task": "mbrlax.envs:Task",
    # data
    "ReplayBuffer": "mbrlax.data:ReplayBuffer",
    "collect": "mbrlax.data:collect",
    "random_policy": "mbrlax.data:random_policy",
    # models
    "ModelConfig": "mbrlax.models:ModelConfig",
    "TrainerConfig": "mbrlax.models:TrainerConfig",
    "fit": "mbrlax.models:fit",
    "ModelEnv": "mbrlax.models:ModelEnv",
    "ConditionalModel": "mbrlax.models:ConditionalModel",
    "fit_conditional": "mbrlax.models:fit_conditional",
    "window_rows": "mbrlax.models:window_rows",
    # planning
    "make_planner": "mbrlax.planning:make_planner",
    # agents
    "MPCAgent": "mbrlax.agents:MPCAgent",
    "MPCConfig": "mbrlax.agents:MPCConfig",
    "ObjectiveConfig": "mbrlax.agents:ObjectiveConfig",
    "make_objective": "mbrlax.agents:make_objective",
    "PolicyLearner": "mbrlax.agents:PolicyLearner",
    "SAC": "mbrlax.agents:SAC",
    # algorithms: configs and presets (light settings: pets_light_preset)
    "PlannerConfig": "mbrlax.algorithms:PlannerConfig",
    "MPCLoopConfig": "mbrlax.algorithms:MPCLoopConfig",
    "MBPOConfig": "mbrlax.algorithms:MBPOConfig",
    "pets_preset": "mbrlax.algorithms:pets_preset",
    "pets_light_preset": "mbrlax.algorithms:pets_light_preset",
    "mbpo_preset": "mbrlax.algorithms:mbpo_preset",
    # errors
    "MbrlaxError": "mbrlax.errors:MbrlaxError",
    "ConfigError": "mbrlax.errors:ConfigError",
    "DataError": "mbrlax.errors:DataError",
}

__all__ = ["__version__", *_EXPORTS]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
