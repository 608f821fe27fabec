"""An ensemble of E MLPs as one batched network with weights ``[E, in, out]``.

Each member maps a normalised ``(obs, action)`` to the normalised target
``[Δobs, reward?]`` (Gaussian mean and log-variance, or a deterministic mean) and,
optionally, a termination logit. The log-variance is bounded by learned soft limits
as in PETS (Chua et al. 2018, appendix A.1).

Speed (measured on 2 shared CPU cores, ``benchmarks/model.py``): each layer's
``einsum("ebi,eio->ebo")`` compiles to one batched dot that XLA hands to YNNPACK, at ~80% of a
2048^2 matmul's FLOPs per CPU-second for ``[7, 1430, 200] x [7, 200, 200]``. Measured and not
kept, as no consistent gain: a Python loop of per-member 2-D dots (same speed), the XLA flags
``--xla_cpu_use_xnnpack``, ``--xla_cpu_use_onednn`` and
``--xla_cpu_experimental_ynn_fusion_type=dot`` (which fuses the whole MLP into one YNNPACK
graph). SiLU costs ~15% of a forward pass on CPU (an ``exp`` and a divide per hidden unit,
~1 ns against ~8 ns of matmul per hidden unit); ReLU would not, but the activation is the model's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mbrlax.utils.validate import check_choice, check_range

ACTIVATIONS: dict[str, Callable[[jnp.ndarray], jnp.ndarray]] = {
    "silu": jax.nn.silu,
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "elu": jax.nn.elu,
    "gelu": jax.nn.gelu,
}

INIT_MAX_LOGVAR, INIT_MIN_LOGVAR = 0.5, -10.0  # initial soft bounds of the log-variance (normalised units)


@dataclass(frozen=True)
class EnsembleConfig:
    """Static shape and kind of an ensemble network."""

    obs_dim: int
    """Observation size D."""
    act_dim: int
    """Action size A."""
    ensemble_size: int = 7
    """Number of members E."""
    hidden: int = 200
    """Width of each hidden layer."""
    depth: int = 4
    """Number of hidden layers."""
    activation: str = "silu"
    """Hidden activation: silu, relu, tanh, elu or gelu."""
    probabilistic: bool = True
    """Gaussian head (mean, bounded log-variance, NLL) if True; deterministic MSE head if False."""
    predict_reward: bool = False
    """Also predict the reward (needed when the environment has no known task)."""
    predict_termination: bool = False
    """Also predict a termination logit (trained with binary cross-entropy)."""
    feature_dim: int = 0
    """Size of the observation features fed to the network (0: the raw observation, D)."""

    def __post_init__(self):
        check_choice(self, "activation", ACTIVATIONS)
        check_range(self, "obs_dim", "act_dim", "ensemble_size", "hidden", "depth", ge=1)

    @property
    def in_dim(self) -> int:
        return (self.feature_dim or self.obs_dim) + self.act_dim

    @property
    def gauss_dim(self) -> int:
        """Size of the Gaussian/regression target: Δobs plus reward if predicted."""
        return self.obs_dim + int(self.predict_reward)

    @property
    def out_dim(self) -> int:
        return self.gauss_dim + int(self.predict_termination)

    def flops_per_sample(self) -> int:
        """Multiply-add FLOPs (2 per MAC) of one member on one input."""
        sizes = [self.in_dim] + [self.hidden] * self.depth + [self.gauss_dim * (2 if self.probabilistic else 1) + int(self.predict_termination)]
        return int(sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:])))


class EnsembleOutput(NamedTuple):
    """Raw network outputs in normalised target space; leading dims ``[E, B]``."""

    mean: jnp.ndarray  # [E, B, G]
    logvar: jnp.ndarray  # [E, B, G] (zeros for a deterministic head)
    term_logit: jnp.ndarray  # [E, B] (zeros if termination is not predicted)


def init_mlp_ensemble(sizes: list[int], ensemble_size: int, key: jax.Array) -> list[dict]:
    """Layers of E MLPs with layer widths ``sizes``: ``{"w": [E, in, out], "b": [E, 1, out]}`` each."""
    keys = jax.random.split(key, len(sizes) - 1)
    layers = []
    for k, (fan_in, fan_out) in zip(keys, zip(sizes[:-1], sizes[1:])):
        # truncated normal with std 1/(2 sqrt(fan_in)), as in the PETS code's initialiser
        w = jax.random.truncated_normal(k, -2.0, 2.0, (ensemble_size, fan_in, fan_out)) / (2.0 * np.sqrt(fan_in))
        layers.append({"w": w.astype(jnp.float32), "b": jnp.zeros((ensemble_size, 1, fan_out), jnp.float32)})
    return layers


def mlp_ensemble_apply(layers: list[dict], x: jnp.ndarray, activation: str) -> jnp.ndarray:
    """Member e's MLP on ``x[e]``: ``x[E, B, in]`` -> ``[E, B, out]`` (no activation after the last layer)."""
    act = ACTIVATIONS[activation]
    h = x
    for layer in layers[:-1]:
        h = act(jnp.einsum("ebi,eio->ebo", h, layer["w"]) + layer["b"])
    return jnp.einsum("ebi,eio->ebo", h, layers[-1]["w"]) + layers[-1]["b"]


def bounded_logvar(raw: jnp.ndarray, max_logvar: jnp.ndarray, min_logvar: jnp.ndarray) -> jnp.ndarray:
    """A raw log-variance squashed softly into ``[min_logvar, max_logvar]`` (PETS, appendix A.1)."""
    logvar = max_logvar - jax.nn.softplus(max_logvar - raw)
    return min_logvar + jax.nn.softplus(logvar - min_logvar)


def init_ensemble(cfg: EnsembleConfig, key: jax.Array) -> dict:
    """Weights as a pytree: ``layers`` of ``{"w": [E, in, out], "b": [E, 1, out]}`` and logvar bounds ``[G]``."""
    head = cfg.gauss_dim * (2 if cfg.probabilistic else 1) + int(cfg.predict_termination)
    sizes = [cfg.in_dim] + [cfg.hidden] * cfg.depth + [head]
    params = {"layers": init_mlp_ensemble(sizes, cfg.ensemble_size, key)}
    if cfg.probabilistic:
        params["max_logvar"] = jnp.full((cfg.gauss_dim,), INIT_MAX_LOGVAR, jnp.float32)
        params["min_logvar"] = jnp.full((cfg.gauss_dim,), INIT_MIN_LOGVAR, jnp.float32)
    return params


def ensemble_forward(cfg: EnsembleConfig, params: dict, x: jnp.ndarray) -> EnsembleOutput:
    """Apply member e to ``x[e]``: ``x[E, B, in]`` (normalised) -> outputs ``[E, B, ...]``."""
    out = mlp_ensemble_apply(params["layers"], x, cfg.activation)
    G = cfg.gauss_dim
    mean = out[..., :G]
    if cfg.probabilistic:
        logvar = bounded_logvar(out[..., G:2 * G], params["max_logvar"], params["min_logvar"])
    else:
        logvar = jnp.zeros_like(mean)
    term = out[..., -1] if cfg.predict_termination else jnp.zeros(out.shape[:-1], out.dtype)
    return EnsembleOutput(mean, logvar, term)


def select_members(params: dict, members: jnp.ndarray) -> dict:
    """The sub-ensemble ``members[M]`` (e.g. the elites) of a weight pytree."""
    return {
        **params,
        "layers": [{"w": l["w"][members], "b": l["b"][members]} for l in params["layers"]],
    }
