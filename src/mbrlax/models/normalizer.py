"""Per-feature standardisation fitted on data: ``(x - mean) / std``.

Networks see inputs and targets at unit scale whatever the environment's units are.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import struct


@struct.dataclass
class Normalizer:
    """Mean and std per feature, both ``[F]``."""

    mean: jnp.ndarray
    std: jnp.ndarray

    @classmethod
    def identity(cls, dim: int) -> "Normalizer":
        return cls(jnp.zeros(dim, jnp.float32), jnp.ones(dim, jnp.float32))

    @classmethod
    def fit(cls, x: np.ndarray, min_std: float = 1e-6) -> "Normalizer":
        """Fit on ``x[N, F]``; constant features get std 1 so they map to 0, not to inf."""
        x = np.asarray(x, np.float64)
        std = x.std(axis=0)
        std = np.where(std < min_std, 1.0, std)
        return cls(jnp.asarray(x.mean(axis=0), jnp.float32), jnp.asarray(std, jnp.float32))

    def is_identity(self) -> bool:
        """True for the unfitted normaliser (mean 0, std 1), as a fresh model state holds."""
        return bool(jnp.all(self.mean == 0.0) & jnp.all(self.std == 1.0))

    def normalize(self, x: jnp.ndarray) -> jnp.ndarray:
        return (x - self.mean) / self.std

    def denormalize(self, z: jnp.ndarray) -> jnp.ndarray:
        return z * self.std + self.mean
