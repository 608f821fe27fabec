"""User-facing model settings (everything but the env's dimensions), built into a DynamicsModel."""

from __future__ import annotations

from dataclasses import dataclass

from mbrlax.models.dynamics import DynamicsModel
from mbrlax.models.ensemble import ACTIVATIONS, EnsembleConfig
from mbrlax.utils.validate import check_choice, check_le, check_range


@dataclass(frozen=True)
class ModelConfig:
    """Dynamics-model settings; defaults follow PETS (Chua et al. 2018)."""

    ensemble_size: int = 7
    """Members E of the ensemble."""
    num_elites: int = 5
    """Members used for prediction, chosen by holdout error."""
    hidden: int = 200
    """Hidden layer width."""
    depth: int = 4
    """Number of hidden layers."""
    activation: str = "silu"
    """Hidden activation (silu, relu, tanh, elu, gelu)."""
    probabilistic: bool = True
    """Gaussian NLL head (True) or deterministic MSE head (False)."""
    predict_reward: bool = False
    """Learn the reward (forced on when the environment has no known task)."""
    predict_termination: bool = False
    """Learn termination (forced on when the environment has no known task)."""

    def __post_init__(self):
        check_range(self, "ensemble_size", "num_elites", "hidden", "depth", ge=1)
        check_le(self, "num_elites", "ensemble_size")
        check_choice(self, "activation", ACTIVATIONS)

    def build(self, obs_dim: int, act_dim: int, learn_reward: bool = False, task=None) -> DynamicsModel:
        """A model for an env with these dimensions; ``learn_reward`` forces reward+termination heads.

        A task with ``obs_features`` (e.g. sin/cos of angles) sets the network's input features.
        """
        features = getattr(task, "obs_features", None)
        cfg = EnsembleConfig(
            feature_dim=getattr(task, "feature_dim", 0) if features is not None else 0,
            obs_dim=obs_dim, act_dim=act_dim, ensemble_size=self.ensemble_size, hidden=self.hidden,
            depth=self.depth, activation=self.activation, probabilistic=self.probabilistic,
            predict_reward=self.predict_reward or learn_reward,
            predict_termination=self.predict_termination or learn_reward,
        )
        return DynamicsModel(cfg, num_elites=min(self.num_elites, self.ensemble_size), obs_features=features)

    def build_for_task(self, obs_dim: int, act_dim: int, task=None) -> DynamicsModel:
        """The model the algorithms plan and roll out with: it learns reward and termination exactly
        when there is no ``task`` (an env without a known reward) to compute them."""
        return self.build(obs_dim, act_dim, learn_reward=task is None, task=task)
