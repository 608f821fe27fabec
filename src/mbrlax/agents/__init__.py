"""Things that act: the MPC agent and the objective it plans with, SAC and the learner interface.

:func:`make_objective` is the one place where a model and a task become a planner's objective;
:class:`MPCAgent` plans with it; any :class:`PolicyLearner` (e.g. :class:`SAC`) plugs into MBPO.
"""

from mbrlax.agents.learner import (ObservedThrough, PolicyLearner, TrainBatch, sample_stacked, stack_batches,
                                   to_train_batch)
from mbrlax.agents.model_rollouts import ModelBuffer, RolloutBatch, make_branched_rollout
from mbrlax.agents.mpc import MPCAgent, MPCConfig
from mbrlax.agents.latent_objective import make_latent_objective
from mbrlax.agents.objective import ObjectiveConfig, TerminalValue, make_objective
from mbrlax.agents.sac import SAC, SACConfig, SACState

__all__ = [
    "MPCAgent", "MPCConfig", "ModelBuffer", "ObjectiveConfig", "ObservedThrough", "PolicyLearner", "RolloutBatch",
    "SAC", "SACConfig", "SACState", "TerminalValue", "TrainBatch", "make_branched_rollout", "make_latent_objective", "make_objective",
    "sample_stacked", "stack_batches", "to_train_batch",
]
