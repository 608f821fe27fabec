"""A conditional density model p(y | x) as an ensemble of MLPs, with a choice of output head.

The models beyond the forward model (inverse dynamics, multi-step and sequence models, the joint
transition model; see :mod:`mbrlax.models.kinds`) each learn a distribution over a target vector
y given an input vector x (x may be empty: an unconditional model). They share the forward
model's machinery: E members as one batched network (:func:`init_mlp_ensemble`), normalisers
fitted on the data, bootstrap, holdout early stopping and elites (:func:`mbrlax.models.trainer.fit_conditional`).

Heads (``ConditionalModel.head``):

- ``gaussian``: diagonal Gaussian, log-variance softly bounded as in PETS; loss NLL.
- ``mixture``: a mixture of K diagonal Gaussians (mixture density network, Bishop 1994); loss
  NLL. Several action sequences often reach the same state: a Gaussian's mean then falls between
  them and reaches neither, a mixture keeps each as a component.
- ``flow``: conditional flow matching (Lipman et al. 2023; rectified flow, Liu et al. 2023): the
  network predicts the velocity ``y - y0`` at ``y_τ = (1 - τ) y0 + τ y``, ``y0 ~ N(0, I)``;
  sampling integrates it from τ = 0 to 1 in ``flow_steps`` Euler steps. No likelihood (NLL is NaN).
- ``deterministic``: a point estimate; loss MSE.

Everything is in normalised units inside; :meth:`sample`, :meth:`mode` and :meth:`mean` take raw
``x[B, in]`` and return raw ``y[B, out]``. Member choice: each row is answered by one elite chosen
at random (:meth:`sample`), or by all elites averaged (:meth:`mean`, :meth:`mode`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from mbrlax.models.dynamics import ModelState
from mbrlax.models.ensemble import (ACTIVATIONS, INIT_MAX_LOGVAR, INIT_MIN_LOGVAR, bounded_logvar, init_mlp_ensemble,
                                    mlp_ensemble_apply, select_members)
from mbrlax.models.normalizer import Normalizer
from mbrlax.utils.validate import check_choice, check_le, check_range

HEADS = ("gaussian", "mixture", "flow", "deterministic")
_LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class ConditionalModel:
    """Static description of an ensemble density model p(y | x); learned parts live in a ``ModelState``."""

    in_dim: int
    """Size of the input x (0: unconditional, p(y))."""
    out_dim: int
    """Size of the target y."""
    head: str = "gaussian"
    """Output distribution: gaussian, mixture, flow or deterministic (see the module doc)."""
    components: int = 5
    """Mixture components K (mixture head)."""
    flow_steps: int = 16
    """Euler steps from noise to a sample (flow head)."""
    ensemble_size: int = 5
    """Members E of the ensemble."""
    num_elites: int = 5
    """Members used for prediction, chosen by holdout loss."""
    hidden: int = 200
    """Hidden layer width."""
    depth: int = 4
    """Number of hidden layers."""
    activation: str = "silu"
    """Hidden activation (silu, relu, tanh, elu, gelu)."""

    def __post_init__(self):
        check_choice(self, "head", HEADS)
        check_choice(self, "activation", ACTIVATIONS)
        check_range(self, "in_dim", ge=0)
        check_range(self, "out_dim", "components", "flow_steps", "ensemble_size", "num_elites", "hidden", "depth", ge=1)
        check_le(self, "num_elites", "ensemble_size")

    # ------------------------------------------------------------------ network layout
    @property
    def probabilistic(self) -> bool:
        """True when the loss is a negative log-likelihood with learned log-variance bounds."""
        return self.head in ("gaussian", "mixture")

    @property
    def net_in(self) -> int:
        return self.in_dim + (self.out_dim + 1 if self.head == "flow" else 0)

    @property
    def net_out(self) -> int:
        Y = self.out_dim
        return {"gaussian": 2 * Y, "mixture": self.components * (1 + 2 * Y)}.get(self.head, Y)

    def init(self, key: jax.Array) -> ModelState:
        sizes = [self.net_in] + [self.hidden] * self.depth + [self.net_out]
        params = {"layers": init_mlp_ensemble(sizes, self.ensemble_size, key)}
        if self.probabilistic:
            params["max_logvar"] = jnp.full((self.out_dim,), INIT_MAX_LOGVAR, jnp.float32)
            params["min_logvar"] = jnp.full((self.out_dim,), INIT_MIN_LOGVAR, jnp.float32)
        return ModelState(params=params, input_norm=Normalizer.identity(self.in_dim),
                          target_norm=Normalizer.identity(self.out_dim),
                          elites=jnp.arange(self.num_elites, dtype=jnp.int32))

    def _head(self, params: dict, out: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
        """Mixture view of a Gaussian/mixture head: ``(log_weights [.., K], means [.., K, Y], logvars [.., K, Y])``."""
        Y = self.out_dim
        if self.head == "gaussian":
            mean, raw = out[..., None, :Y], out[..., None, Y:]
            logits = jnp.zeros(out.shape[:-1] + (1,), out.dtype)
        else:
            K = self.components
            logits = out[..., :K]
            rest = out[..., K:].reshape(out.shape[:-1] + (K, 2 * Y))
            mean, raw = rest[..., :Y], rest[..., Y:]
        logvar = bounded_logvar(raw, params["max_logvar"], params["min_logvar"])
        return jax.nn.log_softmax(logits, axis=-1), mean, logvar

    def _log_prob(self, params: dict, out: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
        """log p(y) per row in normalised units, ``out[..., net_out]``, ``y[..., Y]`` -> ``[...]``."""
        logw, mean, logvar = self._head(params, out)
        comp = -0.5 * (((y[..., None, :] - mean) ** 2) * jnp.exp(-logvar) + logvar + _LOG_2PI).sum(-1)
        return jax.nn.logsumexp(logw + comp, axis=-1)

    # ------------------------------------------------------------------ training (normalised units)
    def member_losses(self, params: dict, x: jnp.ndarray, y: jnp.ndarray, w: jnp.ndarray,
                      key: jax.Array) -> jnp.ndarray:
        """Per-member loss ``[E]``: normalised ``x[E, B, in]``, ``y[E, B, Y]``, row weights ``w[E, B]``."""
        if self.head == "flow":
            per = self._flow_loss(params, x, y, key)
        else:
            out = mlp_ensemble_apply(params["layers"], x, self.activation)
            if self.head == "deterministic":
                per = ((out - y) ** 2).mean(-1)
            else:
                per = -self._log_prob(params, out, y) / self.out_dim
        return (per * w).sum(-1) / jnp.maximum(w.sum(-1), 1.0)

    def _flow_loss(self, params: dict, x: jnp.ndarray, y: jnp.ndarray, key: jax.Array) -> jnp.ndarray:
        k_noise, k_tau = jax.random.split(key)
        y0 = jax.random.normal(k_noise, y.shape, y.dtype)
        tau = jax.random.uniform(k_tau, y.shape[:-1] + (1,), y.dtype)
        y_tau = (1.0 - tau) * y0 + tau * y
        v = mlp_ensemble_apply(params["layers"], jnp.concatenate([x, y_tau, tau], -1), self.activation)
        return ((v - (y - y0)) ** 2).mean(-1)

    def penalty(self, params: dict, logvar_bound_coef: float) -> jnp.ndarray:
        """PETS' penalty on the log-variance bounds (zero for heads without them)."""
        if not self.probabilistic:
            return jnp.zeros(())
        return logvar_bound_coef * (params["max_logvar"].sum() - params["min_logvar"].sum())

    def holdout_loss(self, state: ModelState, x: jnp.ndarray, y: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
        """Per-member holdout score ``[E]`` on raw ``x[N, in]``, ``y[N, Y]`` with weights ``w[N]`` (early
        stopping, elites): the loss, as exp(NLL per dimension) for the likelihood heads.

        The trainer counts a relative gain of 1 % as progress; on exp(NLL) that is a gain of ~0.01 nats
        per dimension wherever the NLL is (on the NLL itself, progress near 0 would be all noise and
        progress at 1.4 nats would need 0.014). The flow loss is random; a fixed key makes it comparable."""
        E = state.params["layers"][0]["w"].shape[0]
        xn = jnp.broadcast_to(state.input_norm.normalize(x), (E, *x.shape))
        yn = jnp.broadcast_to(state.target_norm.normalize(y), (E, *y.shape))
        loss = self.member_losses(state.params, xn, yn, jnp.broadcast_to(w, (E, *w.shape)), jax.random.PRNGKey(0))
        return jnp.exp(loss) if self.probabilistic else loss

    # ------------------------------------------------------------------ prediction (raw units)
    def _outputs(self, state: ModelState, x: jnp.ndarray) -> tuple[dict, jnp.ndarray]:
        """Elite weights and outputs ``[M, B, net_out]`` on raw ``x[B, in]``, best elite first."""
        params = select_members(state.params, state.elites)
        xn = state.input_norm.normalize(x)
        return params, mlp_ensemble_apply(params["layers"], jnp.broadcast_to(xn, (params["layers"][0]["w"].shape[0], *xn.shape)),
                                          self.activation)

    def mean(self, state: ModelState, x: jnp.ndarray, key: jax.Array | None = None, samples: int = 32) -> jnp.ndarray:
        """E[y | x] averaged over elites, raw ``[B, Y]`` (flow head: the average of ``samples`` draws from ``key``)."""
        if self.head == "flow":
            key = jax.random.PRNGKey(0) if key is None else key
            draws = jax.vmap(lambda k: self.sample(state, x, k))(jax.random.split(key, samples))
            return draws.mean(0)
        params, out = self._outputs(state, x)
        if self.head == "deterministic":
            m = out
        else:
            logw, mean, _ = self._head(params, out)
            m = (jnp.exp(logw)[..., None] * mean).sum(-2)
        return state.target_norm.denormalize(m.mean(0))

    def mode(self, state: ModelState, x: jnp.ndarray, key: jax.Array | None = None) -> jnp.ndarray:
        """One likely y per row, raw ``[B, Y]``: the mean of the best elite's heaviest mixture component,
        the elites' average Gaussian (or deterministic) mean, or (flow) a sample from noise drawn with
        ``key`` (default ``PRNGKey(0)``, shape ``[B, Y]``: a row's draw depends on B) through the elites'
        average velocity: the image of zero noise would be the median.

        This is what a controller acts on: a mixture's mean averages its modes, its mode picks one."""
        if self.head == "flow":  # the image of noise 0 is the data's median: between two modes
            key = jax.random.PRNGKey(0) if key is None else key
            return self._integrate(state, x, jax.random.normal(key, (x.shape[0], self.out_dim), jnp.float32), member=None)
        if self.head in ("deterministic", "gaussian"):
            return self.mean(state, x)
        params, out = self._outputs(state, x)
        logw, mean, _ = self._head(params, out[0])  # the best elite alone: members order components differently
        best = jnp.argmax(logw, axis=-1)  # [B]
        return state.target_norm.denormalize(mean[jnp.arange(x.shape[0]), best])

    def sample(self, state: ModelState, x: jnp.ndarray, key: jax.Array) -> jnp.ndarray:
        """One draw y ~ p(y | x) per row, raw ``[B, Y]``; each row from one elite chosen at random."""
        B = x.shape[0]
        k_member, k_comp, k_noise = jax.random.split(key, 3)
        member = jax.random.randint(k_member, (B,), 0, state.elites.shape[0])
        if self.head == "flow":
            y0 = jax.random.normal(k_noise, (B, self.out_dim), jnp.float32)
            return self._integrate(state, x, y0, member)
        params, out = self._outputs(state, x)
        out = out[member, jnp.arange(B)]  # [B, net_out]
        if self.head == "deterministic":
            return state.target_norm.denormalize(out)
        logw, mean, logvar = self._head(params, out)
        comp = jax.random.categorical(k_comp, logw, axis=-1)  # [B]
        mu = mean[jnp.arange(B), comp]
        std = jnp.exp(0.5 * logvar[jnp.arange(B), comp])
        return state.target_norm.denormalize(mu + std * jax.random.normal(k_noise, mu.shape, mu.dtype))

    def _integrate(self, state: ModelState, x: jnp.ndarray, y0: jnp.ndarray, member: jnp.ndarray | None) -> jnp.ndarray:
        """Euler integration of the flow from ``y0[B, Y]`` (normalised) at τ = 0 to τ = 1; ``member[B]``
        picks each row's elite, None averages the elites' velocities."""
        params = select_members(state.params, state.elites)
        M, B = state.elites.shape[0], x.shape[0]
        xn = jnp.broadcast_to(state.input_norm.normalize(x), (M, B, self.in_dim))
        dt = 1.0 / self.flow_steps

        def step(y, i):
            tau = jnp.full((M, B, 1), i * dt, jnp.float32)
            v = mlp_ensemble_apply(params["layers"], jnp.concatenate([xn, jnp.broadcast_to(y, (M, B, self.out_dim)), tau], -1),
                                   self.activation)
            v = v.mean(0) if member is None else v[member, jnp.arange(B)]
            return y + dt * v, None

        y, _ = jax.lax.scan(step, y0, jnp.arange(self.flow_steps))
        return state.target_norm.denormalize(y)

    def nll(self, state: ModelState, x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
        """Negative log-likelihood per target dimension, in normalised units, of raw ``y[B, Y]`` under the
        elites as an equal-weight mixture; ``[B]`` (NaN for the flow and deterministic heads)."""
        if not self.probabilistic:
            return jnp.full((x.shape[0],), jnp.nan, jnp.float32)
        params, out = self._outputs(state, x)
        lp = self._log_prob(params, out, state.target_norm.normalize(y))  # [M, B]
        return -(jax.nn.logsumexp(lp, axis=0) - jnp.log(lp.shape[0])) / self.out_dim

    def normalised_error(self, state: ModelState, x: jnp.ndarray, y: jnp.ndarray, key: jax.Array) -> jnp.ndarray:
        """Squared error of :meth:`mean` per row, averaged over dimensions in normalised units; ``[B]``."""
        err = state.target_norm.normalize(self.mean(state, x, key)) - state.target_norm.normalize(y)
        return (err ** 2).mean(-1)


def fit_normalisers(model: ConditionalModel, state: ModelState, x: np.ndarray, y: np.ndarray) -> ModelState:
    """The state with input and target normalisers fitted on ``x[N, in]``, ``y[N, Y]``."""
    return state.replace(input_norm=Normalizer.fit(x) if model.in_dim else Normalizer.identity(0),
                         target_norm=Normalizer.fit(y))
