"""Learned dynamics models: the ensemble, its training, propagation and the learned simulator.

``ModelConfig(...).build_for_task(obs_dim, act_dim, task)`` makes a :class:`DynamicsModel`
(static settings); ``model.init(key)`` its :class:`ModelState` (everything learned); :func:`fit`
trains it on a replay buffer's ``Batch``. :mod:`~mbrlax.models.simulator` rolls it out in JAX
(jittable, differentiable); :class:`ModelEnv` wraps it as a ``gymnasium.Env``.

Beyond f(s, a): :class:`ConditionalModel` learns p(y | x) with a Gaussian, mixture, flow-matching
or deterministic head; :mod:`~mbrlax.models.kinds` says which slice of a trajectory window each
kind learns (inverse dynamics, multi-step and sequence inverse, action-free, interpolation,
joint); :func:`fit_conditional` trains it with the same trainer.
"""

from mbrlax.models import simulator
from mbrlax.models.conditional import HEADS, ConditionalModel
from mbrlax.models.config import ModelConfig
from mbrlax.models.diagnostics import HorizonErrors, horizon_errors
from mbrlax.models.latent import LatentModel, fit_latent, probe_r2
from mbrlax.models.kinds import KINDS, ModelKind, build_model, get_kind, window_rows
from mbrlax.models.dynamics import DynamicsModel, ModelState, Prediction
from mbrlax.models.ensemble import EnsembleConfig
from mbrlax.models.model_env import ModelEnv
from mbrlax.models.normalizer import Normalizer
from mbrlax.models.propagation import PROPAGATIONS
from mbrlax.models.simulator import Trajectory, Transition, rollout
from mbrlax.models.trainer import FitResult, TrainerConfig, fit, fit_conditional

__all__ = [
    "HEADS", "KINDS", "LatentModel", "fit_latent", "probe_r2", "ConditionalModel", "ModelKind", "build_model", "fit_conditional", "get_kind", "window_rows",
    "PROPAGATIONS", "DynamicsModel", "EnsembleConfig", "FitResult", "HorizonErrors", "ModelConfig", "ModelEnv",
    "ModelState", "Normalizer", "Prediction", "TrainerConfig", "Trajectory", "Transition", "fit",
    "horizon_errors", "rollout", "simulator",
]
