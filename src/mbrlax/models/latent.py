"""A latent-state model learned from camera frames: encoder, latent dynamics, reward head.

Frames (uint8 ``[H, W, 3k]``, a stack of k frames, see :mod:`mbrlax.envs.pixels`) are encoded
to a latent ``z [Z]`` by a small convolutional network (4 convolutions, 4x4 kernels, stride 2,
ReLU, then a linear map: the shape of PlaNet's and Dreamer's encoders, Hafner et al. 2019/2020).
Dynamics are deterministic and residual, ``z_t+1 = z_t + f([z_t, a_t])``; one head predicts
the reward ``r_t = R([z_t, a_t])`` and another the logit of the step terminating the episode
(``T([z_t, a_t])``, trained by cross-entropy: InvertedPendulum's reward is 1 on every step, so
only the termination head tells a planner that the pole is falling); all are ELU MLPs (:func:`~mbrlax.models.ensemble.init_mlp_ensemble`
with one member). A planner then needs one encoding of the current frames and only MLP steps.

Training runs on sequences of L steps (:meth:`FrameBuffer.sample_sequences`): encode o_0, roll
the dynamics open loop through a_0..a_L-1, and score each step t with weight rho^t against

- ``"self_predict"`` (TD-MPC, Hansen et al. 2022): the latent of o_t+1 from a *target* encoder,
  an exponential moving average of the online one, under stop-gradient; plus the reward error.
  Coefficients from the paper: consistency 2, reward 0.5, rho 0.5, EMA rate 0.01, gradient norm
  clipped at 10. Only o_0 is encoded with gradients, so a step is cheap.
- ``"reconstruct"`` (PlaNet's decoder, Hafner et al. 2019, here deterministic): each rolled-out
  latent is decoded (transposed convolutions) and compared with the frame; plus the reward error.
- ``"both"``: the sum.

Which to use was decided by measurement, on the cart-pole swing-up seen at 32x32 (a camera that
shows the whole rail, 3 stacked frames, action repeat 2, 10k random-policy frames; the probe below
fitted on 4k of them and scored on 2k frames of 20 other episodes; probe targets x, sin, cos of the
pole angle, both velocities; R^2 of model seed 0, the mean also of seed 1; seconds on 2 CPU cores
shared with other jobs, load ~10 for seed 0 and ~5 for seed 1):

==========================================  ======  ======  ===========  ==========
fit (sequences of L = 8)                    x       cos     mean         seconds
==========================================  ======  ======  ===========  ==========
random encoder (the baseline)               0.76    0.16    0.22 / 0.26  -
self_predict, batch 32, 300 steps           0.66    0.70    0.31 / 0.36  54 / 27
self_predict, batch 32, 1000 steps          0.72    0.83    0.33         223
self_predict + SimNorm(8), Z = 64, 300      0.97    0.39    0.30         59
self_predict + SimNorm(8), Z = 64, 1000     0.80    0.79    0.38         167
reconstruct, batch 8, 300 steps             0.96    0.15    0.27 / 0.19  102 / 45
both, batch 8, 300 steps                    0.92    0.16    0.28         202
at 64x64: random encoder                    0.69    0.14    0.19         -
at 64x64: self_predict, batch 32, 300       0.92    0.87    0.40         354
at 64x64: + SimNorm(8), Z = 64, 300         0.94    0.83    0.43         50 (load 4)
at 64x64: + SimNorm(8), Z = 64, 1000        0.94    0.91    0.47         227 (load 4)
==========================================  ======  ======  ===========  ==========

Reconstruction reads the cart position (many pixels) but not the pole's angle (a few pixels),
fell below the random encoder with seed 1, and on CPU its decoder makes a step ~40x dearer than
self-prediction's at the same batch (4 s against 0.1 s at 32x32, batch 32, L = 8).
Self-prediction, driven by the reward, learns cos(theta), which the reward depends on, and is
the default (:data:`DEFAULT_OBJECTIVE`). No fit this short made the velocities linearly readable
(R^2 < 0.2 everywhere). The reward error on held-out sequences (:func:`open_loop_reward_error`),
as a share of the reward variance, was 0.57 one step ahead for the 1000-step fit at 32x32 and
0.34 at 64x64 (SimNorm), but 0.5-1.3 two to eight steps ahead: these fits are far shorter than
the papers' (TD-MPC trains for 10^5+ steps). The random encoders' mean R^2 at 64x64 was 0.19
(Z = 50) and 0.21 (Z = 64).

**The inverse-dynamics head** (``inverse_coef``; on in ``mbrlax train latent``). Self-prediction
alone gave latent dynamics that ignored the actions. On InvertedPendulum-v5 (2000 random frames at
32x32 from a side view, 3 stacked, sequences of 5 with short ones masked), scored on 256 held-out
sequences: the consistency error with the batch's actions shuffled across sequences, over the error
with the true ones (1: the actions make no difference), and the error over the target latents'
variance (1: no better than their mean), both at steps 1..5; and the predicted 12-step return from 5
start states for constant actions 0, 0.5, 1.5, 3, -3 (the truth: the pole stays up 28, 6, 3, 3, 3 steps):

=================================  ===============  ==============  ==============================
fit (updates)                      shuffled / true  error / var     predicted return, a = 0 .. -3
=================================  ===============  ==============  ==============================
self-prediction (1500)             0.99 - 1.00      0.71 - 1.55     7.1, 7.0, 6.9, 6.5, 7.0
self-prediction (3000)             0.96 - 1.01      0.78 - 1.29     4.4, 4.5, 4.5, 4.2, 3.0
+ inverse head, coef 1 (1500)      1.38 - 3.84      0.41 - 0.77     11.0, 6.4, 3.0, 1.8, 1.7
+ inverse head, coef 1 (3000)      2.01 - 5.81      0.22 - 0.45     10.6, 4.6, 2.4, 1.3, 1.4
=================================  ===============  ==============  ==============================

An MLP predicts a_0 from the online encodings of o_0 and o_1 (the error in units of the batch's
action variance): the encoder must keep what an action changed, so the dynamics, to predict the
target latents, must use the action (inverse models as an auxiliary loss: Pathak et al. 2017's ICM).
One step of InvertedPendulum moves the cart ~0.3 pixel at that view, which self-prediction could
treat as noise. It costs a second encoder pass with gradients per update.

**The value head** (``value_coef``; off by default). V(z) is trained by TD(0) on each sequence's
steps (the target: r_t + gamma (1 - done_t) V' of the target encoder's latent of o_t+1, V' an EMA of V;
the error in units of one step's reward, weighted ``value_coef``, TD-MPC's 0.1), and the planner adds
the discounted value of its last latent (TD-MPC's terminal value). It is the value of the policy that
collected the data (random and MPC episodes), not of the planner. Measured on the InvertedPendulum
preset with coefficient 0.1 (10 MPC episodes per seed; zero actions: 26.7; 2026-12-08):

==============================  ==========================================  ======
run                             MPC returns                                 median
==============================  ==========================================  ======
seed 0, no value head           65, 20, 22, 18, 16, 22, 54, 20, 15, 20      20
seed 0, value, no target V'     42, 46, 51, 30, 39, 26, 24, 20, 22, 22      28
seed 0, value + EMA target V'   64, 73, 52, 33, 34, 27, 26, 52, 31, 29      33.5
seed 1, no value head           27, 50, 34, 24, 18, 20, 19, 23, 11, 32      23.5
seed 1, value + EMA target V'   10, 17, 20, 29, 24, 41, 37, 36, 55, 37      33
seed 2, no value head           18, 32, 58, 18, 21, 26, 24, 28, 32, 10      25
seed 2, value + EMA target V'   18, 25, 23, 17, 19, 21, 30, 24, 21, 47      22.5
==============================  ==========================================  ======

Better on two seeds of three, far from the target (1000). On the cart-pole preset, without the target
V' the TD error grew to 135 (in units of one step's reward, whose std there is 0.1), dominated the fit
(the inverse head learned nothing, probe R^2 0.2) and the planned returns fell to -100; with it the
fit stays sound (TD error 0.4-0.8, inverse error 0.02-0.08) but the returns stay at 0.1-0.4, as
without a value head. The evidence is too thin to make it a default, so it is off.

How much of the true state a latent holds is measured by :func:`probe_r2`: a ridge regression
from z to the state fitted on some frames and scored (R^2) on held-out ones. A randomly
initialised encoder is the baseline a trained one must beat.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from mbrlax.data.frames import FrameBuffer
from mbrlax.errors import ConfigError, TrainingDivergedError
from mbrlax.models.ensemble import init_mlp_ensemble, mlp_ensemble_apply
from mbrlax.utils.validate import check_choice, check_range

__all__ = ["LatentModel", "LatentFit", "OBJECTIVES", "decode_open_loop", "encode_frames", "fit_latent",
           "open_loop_reward_error", "probe_r2"]

OBJECTIVES = ("self_predict", "reconstruct", "both")
DEFAULT_OBJECTIVE = "self_predict"
_DN = ("NHWC", "HWIO", "NHWC")  # channels-last images, as the wrapper gives them


def _conv_init(key: jax.Array, kernel: int, c_in: int, c_out: int) -> dict:
    """He-normal 4-D kernel ``[k, k, c_in, c_out]`` for a ReLU layer, zero bias ``[c_out]``."""
    std = np.sqrt(2.0 / (kernel * kernel * c_in))
    return {"w": std * jax.random.normal(key, (kernel, kernel, c_in, c_out), jnp.float32),
            "b": jnp.zeros((c_out,), jnp.float32)}


def _dense_init(key: jax.Array, n_in: int, n_out: int) -> dict:
    return {"w": jax.random.normal(key, (n_in, n_out), jnp.float32) / np.sqrt(n_in),
            "b": jnp.zeros((n_out,), jnp.float32)}


def _frames_to_float(frames: jnp.ndarray) -> jnp.ndarray:
    """uint8 ``[..., H, W, C]`` -> float32 in [-0.5, 0.5] (PlaNet's scaling)."""
    return frames.astype(jnp.float32) / 255.0 - 0.5


@dataclass(frozen=True)
class LatentModel:
    """Static settings of a latent model and its pure functions over a params pytree.

    ``params = {"encoder": {"convs": [...], "out": {...}}, "dynamics": [layers], "reward": [layers],
    "termination": [layers], "reward_scale": {"mean", "std"}, "decoder": {...} (reconstruct/both only)}``. The reward head
    learns standardised rewards (``fit_latent`` sets the scale from the buffer): cart-pole rewards
    under a random policy have std ~0.1, and in env units the reward error was too small to shape
    the encoder.
    """

    act_dim: int = 0
    """Action size A (0: not known yet; a training loop sets it from the environment)."""
    size: int = 64
    """Frame height and width (a multiple of 16: four stride-2 convolutions)."""
    frame_stack: int = 3
    """Frames per observation k (input channels 3k): velocities need k >= 2 (TD-MPC uses 3)."""
    latent_dim: int = 50
    """Latent size Z (TD-MPC: 50)."""
    simnorm_group: int = 0
    """If > 0, latents are SimNorm-ed (TD-MPC2, Hansen et al. 2024: softmax over groups of this
    size, 8 in the paper), after the encoder and after each dynamics step; 0: unnormalised (TD-MPC)."""
    channels: tuple[int, ...] = (32, 32, 32, 32)
    """Output channels of the 4 stride-2 convolutions (TD-MPC's pixel encoder uses 32)."""
    hidden: int = 256
    """Width of the dynamics and reward MLPs."""
    depth: int = 2
    """Hidden layers of the dynamics and reward MLPs."""
    objective: str = DEFAULT_OBJECTIVE
    """Training signal: self_predict (TD-MPC), reconstruct (PlaNet-style decoder) or both."""
    rho: float = 0.5
    """Weight rho^t of step t of the rollout (TD-MPC: 0.5)."""
    consistency_coef: float = 2.0
    """Weight of the latent self-prediction error (TD-MPC: 2)."""
    reward_coef: float = 0.5
    """Weight of the reward error (TD-MPC: 0.5)."""
    reconstruction_coef: float = 1.0
    """Weight of the frame reconstruction error (per-pixel MSE)."""
    termination_coef: float = 1.0
    """Weight of the termination head's cross-entropy (0: the head is not trained)."""
    inverse_coef: float = 0.0
    """Weight of an inverse-dynamics error: an MLP predicts a_0 from the online encodings of o_0 and
    o_1, so the encoder must keep what an action changes (0: no inverse head)."""
    value_coef: float = 0.0
    """Weight of a value head's TD error (in units of one step's reward): V(z) of the data's policy, the planner's terminal value (0: none; TD-MPC: 0.1)."""
    value_discount: float = 0.99
    """Discount of the value head's returns (TD-MPC: 0.99)."""

    def __post_init__(self):
        check_range(self, "act_dim", ge=0)
        check_range(self, "size", "frame_stack", "latent_dim", "channels", "hidden", "depth", ge=1)
        check_range(self, "rho", gt=0, le=1)
        check_range(self, "value_discount", gt=0, lt=1)
        check_range(self, "simnorm_group", ge=0)
        if self.simnorm_group and self.latent_dim % self.simnorm_group:
            raise ConfigError(f"LatentModel.latent_dim ({self.latent_dim}) must be a multiple of "
                              f"LatentModel.simnorm_group ({self.simnorm_group})")
        check_range(self, "consistency_coef", "reward_coef", "reconstruction_coef", "termination_coef",
                    "inverse_coef", "value_coef", ge=0)
        check_choice(self, "objective", OBJECTIVES)
        if self.size % 16:
            raise ConfigError(f"LatentModel.size must be a multiple of 16 (four stride-2 convolutions), "
                              f"got {self.size}")
        if len(self.channels) != 4:
            raise ConfigError(f"LatentModel.channels must have 4 entries, got {self.channels}")

    @property
    def in_channels(self) -> int:
        return 3 * self.frame_stack

    @property
    def _grid(self) -> int:
        return self.size // 16  # spatial size after the convolutions

    # ---------------------------------------------------------------- parameters
    def init(self, key: jax.Array) -> dict:
        """A fresh params pytree (see the class docstring). One compiled call: run op by op, the
        dozen random initialisers took ~25 s on a loaded CPU."""
        return jax.jit(self._init)(key)

    def _init(self, key: jax.Array) -> dict:
        if self.act_dim < 1:
            raise ConfigError("LatentModel.act_dim must be set (>= 1) before init: dataclasses.replace(model, act_dim=A)")
        k_enc, k_out, k_dyn, k_rew, k_dec, k_dec_in = jax.random.split(key, 6)
        k_term = jax.random.fold_in(key, 7)  # a seventh key without changing the other six (earlier inits reproduce)
        c = (self.in_channels, *self.channels)
        convs = [_conv_init(k, 4, a, b) for k, a, b in zip(jax.random.split(k_enc, 4), c[:-1], c[1:])]
        flat = self._grid * self._grid * self.channels[-1]
        mlp = [self.latent_dim + self.act_dim] + [self.hidden] * self.depth
        params = {
            "encoder": {"convs": convs, "out": _dense_init(k_out, flat, self.latent_dim)},
            "dynamics": init_mlp_ensemble(mlp + [self.latent_dim], 1, k_dyn),
            "reward": init_mlp_ensemble(mlp + [1], 1, k_rew),
            "termination": init_mlp_ensemble(mlp + [1], 1, k_term),
            # reward = mean + std * head: the head learns standardised rewards (set by fit_latent, not trained)
            "reward_scale": {"mean": jnp.zeros((), jnp.float32), "std": jnp.ones((), jnp.float32)},
        }
        if self.inverse_coef > 0:  # only then: params of earlier runs keep their structure
            params["inverse"] = init_mlp_ensemble([2 * self.latent_dim] + [self.hidden] * self.depth + [self.act_dim],
                                                  1, jax.random.fold_in(key, 8))
        if self.value_coef > 0:
            params["value"] = init_mlp_ensemble([self.latent_dim] + [self.hidden] * self.depth + [1], 1,
                                                jax.random.fold_in(key, 9))
            params["value_target"] = params["value"]  # its EMA, for the TD targets (moved by the update, not by Adam)
        if self.objective != "self_predict":
            d = (*self.channels[::-1], self.in_channels)  # transposed convolutions mirror the encoder
            params["decoder"] = {
                "in": _dense_init(k_dec_in, self.latent_dim, flat),
                "convs": [_conv_init(k, 4, a, b) for k, a, b in zip(jax.random.split(k_dec, 4), d[:-1], d[1:])],
            }
        return params

    # ---------------------------------------------------------------- the model
    def encode(self, params: dict, frames: jnp.ndarray) -> jnp.ndarray:
        """Latents ``[..., Z]`` of uint8 frame stacks ``[..., size, size, 3k]``."""
        lead = frames.shape[:-3]
        x = _frames_to_float(frames).reshape(-1, *frames.shape[-3:])
        for layer in params["encoder"]["convs"]:
            x = jax.lax.conv_general_dilated(x, layer["w"], (2, 2), "SAME", dimension_numbers=_DN)
            x = jax.nn.relu(x + layer["b"])
        out = params["encoder"]["out"]
        z = x.reshape(x.shape[0], -1) @ out["w"] + out["b"]
        return self._norm(z).reshape(*lead, self.latent_dim)

    def _norm(self, z: jnp.ndarray) -> jnp.ndarray:
        """SimNorm (softmax within groups of ``simnorm_group``) if enabled: a latent cannot shrink away."""
        if not self.simnorm_group:
            return z
        g = z.reshape(*z.shape[:-1], -1, self.simnorm_group)
        return jax.nn.softmax(g, axis=-1).reshape(z.shape)

    def decode(self, params: dict, z: jnp.ndarray) -> jnp.ndarray:
        """Frames (float, in [-0.5, 0.5] scale) ``[..., size, size, 3k]`` of latents ``[..., Z]``."""
        lead = z.shape[:-1]
        dec = params["decoder"]
        x = jax.nn.relu(z.reshape(-1, self.latent_dim) @ dec["in"]["w"] + dec["in"]["b"])
        x = x.reshape(-1, self._grid, self._grid, self.channels[-1])
        for i, layer in enumerate(dec["convs"]):
            x = jax.lax.conv_transpose(x, layer["w"], (2, 2), "SAME", dimension_numbers=_DN) + layer["b"]
            if i < len(dec["convs"]) - 1:
                x = jax.nn.relu(x)
        return x.reshape(*lead, self.size, self.size, self.in_channels)

    def _mlp(self, layers: list[dict], z: jnp.ndarray, a: jnp.ndarray) -> jnp.ndarray:
        x = jnp.concatenate([z, a], axis=-1)
        lead = x.shape[:-1]
        out = mlp_ensemble_apply(layers, x.reshape(1, -1, x.shape[-1]), "elu")
        return out.reshape(*lead, -1)

    def step(self, params: dict, z: jnp.ndarray, a: jnp.ndarray) -> jnp.ndarray:
        """Next latent ``[..., Z]`` from latent ``z [..., Z]`` and action ``a [..., A]``."""
        return self._norm(z + self._mlp(params["dynamics"], z, a))

    def reward(self, params: dict, z: jnp.ndarray, a: jnp.ndarray) -> jnp.ndarray:
        """Predicted reward ``[...]`` (env units) of taking ``a [..., A]`` in latent ``z [..., Z]``."""
        scale = jax.lax.stop_gradient(params["reward_scale"])  # fixed by fit_latent, not trained
        return scale["mean"] + scale["std"] * self._mlp(params["reward"], z, a)[..., 0]

    def termination_logit(self, params: dict, z: jnp.ndarray, a: jnp.ndarray) -> jnp.ndarray:
        """Logit ``[...]`` of the probability that taking ``a [..., A]`` in latent ``z [..., Z]`` ends the episode."""
        return self._mlp(params["termination"], z, a)[..., 0]

    def reward_unit(self, params: dict) -> jnp.ndarray:
        """One step's reward scale, |mean reward| + its std: the unit of the value's TD error."""
        scale = jax.lax.stop_gradient(params["reward_scale"])
        return jnp.abs(scale["mean"]) + scale["std"]

    def value_scale(self, params: dict) -> jnp.ndarray:
        """The value head's output unit: :meth:`reward_unit` every step, ``/(1 - value_discount)``."""
        return self.reward_unit(params) / (1.0 - self.value_discount)

    def value(self, params: dict, z: jnp.ndarray) -> jnp.ndarray:
        """Predicted discounted return ``[...]`` (env units) from latent ``z [..., Z]`` under the data's policy."""
        lead = z.shape[:-1]
        out = mlp_ensemble_apply(params["value"], z.reshape(1, -1, z.shape[-1]), "elu")
        return self.value_scale(params) * out.reshape(*lead)

    def rollout(self, params: dict, z0: jnp.ndarray, actions: jnp.ndarray
                ) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
        """Open-loop latents ``[B, L, Z]`` (z_1..z_L), rewards ``[B, L]`` (r_0..r_L-1) and termination
        logits ``[B, L]`` from ``z0 [B, Z]`` and ``actions [B, L, A]``: what a planner's objective scores."""

        def body(z, a):
            z_next = self.step(params, z, a)
            return z_next, (z_next, self.reward(params, z, a), self.termination_logit(params, z, a))

        _, (zs, rs, ts) = jax.lax.scan(body, z0, jnp.swapaxes(actions, 0, 1))
        return jnp.swapaxes(zs, 0, 1), jnp.swapaxes(rs, 0, 1), jnp.swapaxes(ts, 0, 1)

    def loss(self, params: dict, target_encoder: dict, frames: jnp.ndarray, actions: jnp.ndarray,
             rewards: jnp.ndarray, terminated: jnp.ndarray | None = None, valid: jnp.ndarray | None = None
             ) -> tuple[jnp.ndarray, dict]:
        """Training loss and its parts on sequences: ``frames [B, L+1, size, size, 3k]`` uint8,
        ``actions [B, L, A]``, ``rewards [B, L]``, ``terminated [B, L]`` bool (None: no step ends an
        episode), ``valid [B, L]`` bool (None: all; steps after an episode's end count for nothing);
        ``target_encoder`` is the EMA of ``params["encoder"]``."""
        B, L = actions.shape[:2]
        mask = jnp.ones((B, L), jnp.float32) if valid is None else valid.astype(jnp.float32)
        weights = self.rho ** jnp.arange(L, dtype=jnp.float32)  # [L]

        def weighted(err):  # err [B, L] -> sum over t of rho^t * (sum over valid steps of the batch) / B
            return (weights * (err * mask).mean(0)).sum()

        z0 = self.encode(params, frames[:, 0])
        zs, r_hat, t_logit = self.rollout(params, z0, actions)  # [B, L, Z], [B, L], [B, L]
        std = jax.lax.stop_gradient(params["reward_scale"]["std"])  # the error in standardised units
        parts = {"reward": weighted(((r_hat - rewards) / std) ** 2)}
        total = self.reward_coef * parts["reward"]
        done = jnp.zeros_like(rewards) if terminated is None else terminated.astype(jnp.float32)  # [B, L]
        if self.termination_coef > 0:
            parts["termination"] = weighted(optax.sigmoid_binary_cross_entropy(t_logit, done))
            total = total + self.termination_coef * parts["termination"]
        if self.inverse_coef > 0:  # a_0 from (z_0, z_1), error per action dim in units of the batch's action variance
            z1 = self.encode(params, frames[:, 1])
            x = jnp.concatenate([z0, z1], axis=-1)[None]
            a_hat = mlp_ensemble_apply(params["inverse"], x, "elu")[0]  # [B, A]
            var = jax.lax.stop_gradient(actions[:, 0].var(0)) + 1e-6  # [A]
            err = (((a_hat - actions[:, 0]) ** 2) / var).mean(1)  # [B]
            parts["inverse"] = (err * mask[:, 0]).sum() / jnp.maximum(mask[:, 0].sum(), 1.0)
            total = total + self.inverse_coef * parts["inverse"]
        if self.objective != "reconstruct" or self.value_coef > 0:
            target = jax.lax.stop_gradient(self.encode({"encoder": target_encoder}, frames[:, 1:]))  # [B, L, Z]
        if self.value_coef > 0:  # TD(0): V(z_t) -> r_t + gamma (1 - done_t) V'(target latent of o_t+1), V' its EMA
            fixed = jax.lax.stop_gradient({**params, "value": params["value_target"]})
            y = rewards + self.value_discount * (1.0 - done) * self.value(fixed, target)  # [B, L]
            v = self.value(params, jnp.concatenate([z0[:, None], zs[:, :-1]], axis=1))  # z_0 encoded, z_1.. rolled
            parts["value"] = weighted(((v - y) / self.reward_unit(params)) ** 2)  # as TD-MPC's raw units
            total = total + self.value_coef * parts["value"]
        if self.objective != "reconstruct":
            parts["consistency"] = weighted(((zs - target) ** 2).mean(2))
            total = total + self.consistency_coef * parts["consistency"]
        if self.objective != "self_predict":
            z_all = jnp.concatenate([z0[:, None], zs], axis=1)  # [B, L+1, Z]
            err = ((self.decode(params, z_all) - _frames_to_float(frames)) ** 2).mean((2, 3, 4))  # [B, L+1]
            parts["reconstruction"] = err[:, 0].mean() + weighted(err[:, 1:])
            total = total + self.reconstruction_coef * parts["reconstruction"]
        return total, parts


def _optimiser(learning_rate: float, max_grad_norm: float) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adam(learning_rate))


@functools.lru_cache(maxsize=16)
def _update_step(model: "LatentModel", learning_rate: float, max_grad_norm: float, ema_rate: float):
    """The jitted training step for these settings, made once per process: a training loop that
    continues a fit after every episode would otherwise compile the conv net's gradient each time."""
    optimiser = _optimiser(learning_rate, max_grad_norm)

    @jax.jit
    def update(params, target, opt_state, frames, actions, rewards, terminated, valid):
        grad_fn = jax.value_and_grad(model.loss, has_aux=True)
        (loss, parts), grads = grad_fn(params, target, frames, actions, rewards, terminated, valid)
        updates, opt_state = optimiser.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        ema = functools.partial(jax.tree.map, lambda t, p: (1.0 - ema_rate) * t + ema_rate * p)
        target = ema(target, params["encoder"])
        if "value_target" in params:  # TD-MPC's target Q, here for V: the same EMA rate
            params = {**params, "value_target": ema(params["value_target"], params["value"])}
        return params, target, opt_state, {"loss": loss, **parts}

    return update


@functools.lru_cache(maxsize=16)
def _jitted_encode(model: "LatentModel"):
    return jax.jit(model.encode)


class LatentFit(NamedTuple):
    params: dict
    target_encoder: dict  # EMA of params["encoder"]
    opt_state: Any
    history: list  # dicts: step, loss and its parts, seconds


def fit_latent(model: LatentModel, params: dict, buffer: FrameBuffer, key: jax.Array, steps: int,
               batch_size: int = 32, length: int = 8, learning_rate: float = 1e-3, ema_rate: float = 0.01,
               max_grad_norm: float = 10.0, starts: np.ndarray | None = None, fit: LatentFit | None = None,
               log_every: int = 50, progress: bool = True, partial: bool = False) -> LatentFit:
    """Train ``params`` for ``steps`` Adam steps on sequences of ``length`` steps from ``buffer``.

    Each step samples ``batch_size`` sequences (from ``starts``, e.g. a train split, if given)
    with stacks of ``model.frame_stack`` frames, takes one jitted step of Adam on
    :meth:`LatentModel.loss` (gradient norm clipped at ``max_grad_norm``) and moves the target
    encoder ``ema_rate`` of the way to the online one (TD-MPC: 0.01). With ``partial``, sequences
    cut short by an episode's end are sampled too, their missing steps masked out: where episodes
    are short (a pendulum that falls in a few steps) they are the only ones that show a termination
    early in a sequence, where its weight rho^t is large. Pass ``fit`` (a previous
    result) to continue it (``params`` is then ignored). A first fit sets ``params["reward_scale"]``
    to the mean and std of the buffer's rewards. ``history`` gets one row every ``log_every`` steps
    (the loss of that step's batch: noisy, as rare high rewards dominate it). Deterministic given
    ``key``. Raises TrainingDivergedError on a non-finite loss.
    """
    if buffer.frame_shape != (model.size, model.size, 3):
        raise ConfigError(f"fit_latent: the buffer holds frames {buffer.frame_shape}, the model wants "
                          f"({model.size}, {model.size}, 3)")
    optimiser = _optimiser(learning_rate, max_grad_norm)
    if fit is None:
        r = buffer.step_rewards()
        params = {**params, "reward_scale": {"mean": jnp.asarray(r.mean(), jnp.float32),
                                             "std": jnp.asarray(r.std() + 1e-6, jnp.float32)}}
        fit = LatentFit(params, params["encoder"], optimiser.init(params), [])
    if starts is None:
        starts = buffer.sequence_starts(length, partial)
    update = _update_step(model, learning_rate, max_grad_norm, ema_rate)

    rng = np.random.default_rng(int(jax.random.randint(key, (), 0, np.iinfo(np.int32).max)))  # sequence sampling
    params, target, opt_state = fit.params, fit.target_encoder, fit.opt_state
    history = list(fit.history)
    done = history[-1]["step"] if history else 0
    t0 = time.perf_counter()
    bar = tqdm(range(int(steps)), desc="latent fit", disable=not progress, leave=False)
    for i in bar:
        seq = buffer.sample_sequences(batch_size, length, rng, stack=model.frame_stack, starts=starts, partial=partial)
        params, target, opt_state, parts = update(params, target, opt_state, seq.frames, seq.actions, seq.rewards,
                                                   seq.terminated, seq.valid)
        if (i + 1) % log_every == 0 or i + 1 == steps:
            row = {"step": done + i + 1, **{k: float(v) for k, v in parts.items()},
                   "seconds": time.perf_counter() - t0}
            if not np.isfinite(row["loss"]):
                raise TrainingDivergedError(f"fit_latent: the loss became {row['loss']} at step {row['step']}")
            history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
    return LatentFit(params, target, opt_state, history)


def encode_frames(model: LatentModel, params: dict, frames: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Latents ``[N, Z]`` of uint8 frame stacks ``[N, size, size, 3k]``, in jitted chunks (padded, one compile)."""
    encode = _jitted_encode(model)
    out = []
    for i in range(0, len(frames), batch_size):
        chunk = np.asarray(frames[i:i + batch_size])
        n = len(chunk)
        if n < batch_size:
            chunk = np.concatenate([chunk, np.zeros((batch_size - n, *chunk.shape[1:]), chunk.dtype)])
        out.append(np.asarray(encode(params, chunk))[:n])
    return np.concatenate(out) if out else np.zeros((0, model.latent_dim), np.float32)


def decode_open_loop(model: LatentModel, params: dict, frames: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """What the model imagines: the frame stack ``frames`` (uint8 ``[size, size, 3k]``) encoded, rolled
    open loop through ``actions [L, A]``, and the newest frame of each latent's decoded stack: uint8
    ``[L+1, size, size, 3]`` (step 0 first). Needs a decoder (``objective`` reconstruct or both)."""
    if "decoder" not in params:
        raise ConfigError("decode_open_loop needs a model with a decoder (LatentModel.objective reconstruct or both)")
    z0 = model.encode(params, jnp.asarray(frames)[None])
    zs, _, _ = model.rollout(params, z0, jnp.asarray(actions, jnp.float32)[None])
    decoded = model.decode(params, jnp.concatenate([z0[:, None], zs], axis=1))[0, ..., -3:]  # newest frame
    return np.asarray(jnp.clip((decoded + 0.5) * 255.0, 0, 255)).astype(np.uint8)


def open_loop_reward_error(model: LatentModel, params: dict, frames: np.ndarray, actions: np.ndarray,
                           rewards: np.ndarray) -> np.ndarray:
    """Mean squared reward error ``[L]`` of open-loop predictions, step by step, on held-out sequences.

    Encodes ``frames[:, 0]`` (uint8 ``[B, L+1, size, size, 3k]`` or ``[B, size, size, 3k]``), rolls the
    dynamics through ``actions [B, L, A]`` and compares the predicted rewards with ``rewards [B, L]``.
    Divide by ``rewards.var()`` for the share of the reward variance left unexplained.
    """
    frames = np.asarray(frames)
    first = frames[:, 0] if frames.ndim == 5 else frames
    z0 = jnp.asarray(encode_frames(model, params, first))
    _, r_hat, _ = jax.jit(model.rollout)(params, z0, jnp.asarray(actions, jnp.float32))
    return ((np.asarray(r_hat) - np.asarray(rewards, np.float32)) ** 2).mean(0)


def probe_r2(z_train: np.ndarray, s_train: np.ndarray, z_test: np.ndarray, s_test: np.ndarray,
             ridge: float = 1e-3) -> np.ndarray:
    """R^2 ``[S]`` on held-out data of a linear (ridge) probe from latents ``z [N, Z]`` to states ``s [N, S]``.

    Latents are standardised with the training mean and std; the ridge penalty is
    ``ridge * N_train`` on the standardised weights. R^2 = 1 - SSE / SST per state dimension on the
    test set (1: the state is a linear function of z; 0: no better than the test mean). Encode
    angles as (sin, cos) first: a linear probe cannot read an unwrapped angle.
    """
    z_train, z_test = np.asarray(z_train, np.float64), np.asarray(z_test, np.float64)
    s_train, s_test = np.asarray(s_train, np.float64), np.asarray(s_test, np.float64)
    mu, sd = z_train.mean(0), z_train.std(0) + 1e-8
    a, b = (z_train - mu) / sd, (z_test - mu) / sd
    s_mu = s_train.mean(0)
    w = np.linalg.solve(a.T @ a + ridge * len(a) * np.eye(a.shape[1]), a.T @ (s_train - s_mu))
    pred = b @ w + s_mu
    sse = ((s_test - pred) ** 2).sum(0)
    sst = ((s_test - s_test.mean(0)) ** 2).sum(0)
    return 1.0 - sse / np.maximum(sst, 1e-12)
