"""A learned dynamics model: ensemble network + normalisers + elite set, in environment units.

``DynamicsModel`` holds static settings; ``ModelState`` (a pytree) holds everything learned.
``predict`` turns raw ``(obs, action)`` into a Gaussian over the next observation (and reward,
termination probability when the model learns them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from mbrlax.errors import ConfigError
from mbrlax.models.ensemble import EnsembleConfig, ensemble_forward, init_ensemble, select_members
from mbrlax.models.normalizer import Normalizer


@struct.dataclass
class ModelState:
    """Learned parts of a dynamics model."""

    params: dict  # ensemble weights, members [E]
    input_norm: Normalizer  # over concat(obs, action), [D + A]
    target_norm: Normalizer  # over concat(Δobs, reward?), [G]
    elites: jnp.ndarray  # [num_elites] int32, indices of the best members on holdout


class Prediction(NamedTuple):
    """Per-member predictions in environment units, leading dims ``[M, B]``."""

    next_obs_mean: jnp.ndarray  # [M, B, D]
    next_obs_var: jnp.ndarray  # [M, B, D] (zeros for a deterministic model)
    reward_mean: jnp.ndarray  # [M, B] (zeros if reward is not learned)
    reward_var: jnp.ndarray  # [M, B]
    term_prob: jnp.ndarray  # [M, B] (zeros if termination is not learned)


@dataclass(frozen=True)
class DynamicsModel:
    """Static description of a learned model: the ensemble's config and how many elites to use."""

    cfg: EnsembleConfig
    num_elites: int = 5
    obs_features: Callable[[jnp.ndarray], jnp.ndarray] | None = None
    """Optional map ``obs[..., D] -> features[..., cfg.feature_dim]`` for the network input
    (e.g. sin/cos of an unwrapped angle, as PETS does for the cart-pole)."""

    def __post_init__(self):
        if (self.obs_features is None) != (self.cfg.feature_dim == 0):
            raise ConfigError("obs_features and cfg.feature_dim must be given together")
        if not 1 <= self.num_elites <= self.cfg.ensemble_size:
            raise ConfigError(f"num_elites={self.num_elites} must be in [1, ensemble_size={self.cfg.ensemble_size}]")

    def network_input(self, obs: jnp.ndarray, action: jnp.ndarray) -> jnp.ndarray:
        """Unnormalised network input ``[..., F + A]`` from ``obs[..., D]``, ``action[..., A]``."""
        feats = obs if self.obs_features is None else self.obs_features(obs)
        return jnp.concatenate([feats, action], axis=-1)

    def init(self, key: jax.Array) -> ModelState:
        cfg = self.cfg
        return ModelState(
            params=init_ensemble(cfg, key),
            input_norm=Normalizer.identity(cfg.in_dim),
            target_norm=Normalizer.identity(cfg.gauss_dim),
            elites=jnp.arange(self.num_elites, dtype=jnp.int32),
        )

    def elite_state(self, state: ModelState) -> ModelState:
        """The same model restricted to its elite members (members re-indexed 0..num_elites-1)."""
        return state.replace(params=select_members(state.params, state.elites),
                             elites=jnp.arange(state.elites.shape[0], dtype=jnp.int32))

    @staticmethod
    def num_members(state: ModelState) -> int:
        return state.params["layers"][0]["w"].shape[0]

    def predict(self, state: ModelState, obs: jnp.ndarray, action: jnp.ndarray) -> Prediction:
        """Member m predicts from ``obs[m]``: ``obs[M, B, D]``, ``action[M, B, A]`` with M = members in ``state``."""
        cfg = self.cfg
        x = state.input_norm.normalize(self.network_input(obs, action))
        out = ensemble_forward(cfg, state.params, x)
        mean = state.target_norm.denormalize(out.mean)
        var = jnp.exp(out.logvar) * state.target_norm.std**2 if cfg.probabilistic else jnp.zeros_like(mean)
        D = cfg.obs_dim
        zeros = jnp.zeros(mean.shape[:-1], mean.dtype)
        return Prediction(
            next_obs_mean=obs + mean[..., :D],
            next_obs_var=var[..., :D],
            reward_mean=mean[..., D] if cfg.predict_reward else zeros,
            reward_var=var[..., D] if cfg.predict_reward else zeros,
            term_prob=jax.nn.sigmoid(out.term_logit) if cfg.predict_termination else zeros,
        )
