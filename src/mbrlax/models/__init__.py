"""Learned dynamics models: the ensemble, its training, propagation and the learned simulator.

``ModelConfig(...).build_for_task(obs_dim, act_dim, task)`` makes a :class:`DynamicsModel`
(static settings); ``model.init(key)`` its :class:`ModelState` (everything learned); :func:`fit`
trains it on a replay buffer's ``Batch``. :mod:`~mbrlax.models.simulator` rolls it out in JAX
(jittable, differentiable); :class:`ModelEnv` wraps it as a ``gymnasium.Env``.
"""

from mbrlax.models import simulator
from mbrlax.models.config import ModelConfig
from mbrlax.models.diagnostics import HorizonErrors, horizon_errors
from mbrlax.models.dynamics import DynamicsModel, ModelState, Prediction
from mbrlax.models.ensemble import EnsembleConfig
from mbrlax.models.model_env import ModelEnv
from mbrlax.models.normalizer import Normalizer
from mbrlax.models.propagation import PROPAGATIONS
from mbrlax.models.simulator import Trajectory, Transition, rollout
from mbrlax.models.trainer import FitResult, TrainerConfig, fit

__all__ = [
    "PROPAGATIONS", "DynamicsModel", "EnsembleConfig", "FitResult", "HorizonErrors", "ModelConfig", "ModelEnv",
    "ModelState", "Normalizer", "Prediction", "TrainerConfig", "Trajectory", "Transition", "fit",
    "horizon_errors", "rollout", "simulator",
]
