"""Carry a fitted ensemble across new normalisers so its predictions in env units stay the same.

A refit re-fits the input and target normalisers on the grown data set before training. Read
in the new units, the old weights are a different model: in a Pusher run of 2026-11-24 the
object deltas were exactly 0 for the first 800 transitions (std set to 1), then moved by ~5e-5
(std 6.6e-5), and the warm-started model's NLL on the new data jumped from 6.5 to 24624.
Rewriting the first layer, the mean head and the log-variance offsets for the new units makes
the warm start the same function as the previous fit, so training continues from it.

The rewrite is exact, except where the old weights saw (almost) nothing of a feature: an input
whose spread grew more than ``MAX_RESCALE``-fold, or a target whose spread shrank more than
``MAX_RESCALE``-fold (e.g. a constant one, std set to 1, that starts to move). Scaling their
weights by that factor would give weights the weight decay and Adam cannot bring back. Such an
input is dropped from the first layer (its row zeroed, its value frozen at the old mean); such
a target's head restarts: mean at the old normaliser's mean, log-variance 0 (unit variance in
the new units) and the log-variance bounds at their initial values. (Carrying its variance
over exactly would also carry the old units' variance floor: for Pusher's object, a std of at
least 6.7e-3 where the motion has a spread of 6.6e-5.)

Off by default (``TrainerConfig.rebase_on_refit``): measured, it removes the shock (Pusher's
first-epoch NLL jump when the object starts to move: 766 -> 24) but its models predict the next
episode's transitions worse (refit replays, scaled squared error: Pusher 0.218 against 0.196,
cart-pole 0.0015 against 0.0007) and returns are no better (cart-pole 9 of 10 seeds against
10 of 10; Pusher worse early, a little better late). Reading the old weights in new units mostly
inflates the old model's variance, since spreads usually grow as data comes in, and a less
confident warm start seems to fit new data better (docs/benchmarks.md). With
``fit(..., opt_state=)`` Adam's moments continue from the weights before their rescaling.
"""

from __future__ import annotations

import jax.numpy as jnp

from mbrlax.models.dynamics import DynamicsModel, ModelState
from mbrlax.models.ensemble import INIT_MAX_LOGVAR, INIT_MIN_LOGVAR
from mbrlax.models.normalizer import Normalizer

MAX_RESCALE = 10.0


def rebase(model: DynamicsModel, state: ModelState, input_norm: Normalizer, target_norm: Normalizer) -> ModelState:
    """``state`` with ``input_norm``/``target_norm`` and weights rewritten to predict the same in env units.

    A state whose normalisers are both the identity (never fitted) is only given the new
    normalisers: there is no fitted function to keep.
    """
    old_in, old_tgt = state.input_norm, state.target_norm
    if old_in.is_identity() and old_tgt.is_identity():
        return state.replace(input_norm=input_norm, target_norm=target_norm)
    cfg = model.cfg
    layers = [dict(layer) for layer in state.params["layers"]]

    # first layer: x_old = x_new * s_new / s_old + (m_new - m_old) / s_old, per input feature i
    in_ratio = input_norm.std / old_in.std  # [In]
    keep_in = in_ratio <= MAX_RESCALE
    w0 = layers[0]["w"]  # [E, In, H]
    shift = jnp.where(keep_in, (input_norm.mean - old_in.mean) / old_in.std, 0.0)  # dropped: frozen at the old mean
    layers[0]["b"] = layers[0]["b"] + jnp.einsum("i,eih->eh", shift, w0)[:, None, :]
    layers[0]["w"] = w0 * jnp.where(keep_in, in_ratio, 0.0)[None, :, None]

    # mean head: mu_new = mu_old * s_old / s_new + (m_old - m_new) / s_new, per target dim g
    G = cfg.gauss_dim
    out_ratio = old_tgt.std / target_norm.std  # [G]
    keep_out = out_ratio <= MAX_RESCALE
    w, b = layers[-1]["w"], layers[-1]["b"]  # [E, H, O], [E, 1, O]
    offset = (old_tgt.mean - target_norm.mean) / target_norm.std
    mean_w = w[..., :G] * jnp.where(keep_out, out_ratio, 0.0)
    mean_b = jnp.where(keep_out, b[..., :G] * out_ratio, 0.0) + offset
    w = w.at[..., :G].set(mean_w)
    b = b.at[..., :G].set(mean_b)
    params = dict(state.params)
    if cfg.probabilistic:
        # log-variance: + 2 log(s_old / s_new) on the raw head and both soft bounds is exact;
        # a restarted target gets raw log-variance 0 and the initial bounds
        lv_shift = jnp.where(keep_out, 2.0 * jnp.log(out_ratio), 0.0)
        w = w.at[..., G:2 * G].multiply(keep_out.astype(w.dtype))
        b = b.at[..., G:2 * G].set(jnp.where(keep_out, b[..., G:2 * G] + lv_shift, 0.0))
        params["max_logvar"] = jnp.where(keep_out, params["max_logvar"] + lv_shift, INIT_MAX_LOGVAR)
        params["min_logvar"] = jnp.where(keep_out, params["min_logvar"] + lv_shift, INIT_MIN_LOGVAR)
    layers[-1] = {"w": w, "b": b}
    params["layers"] = layers
    return state.replace(params=params, input_norm=input_norm, target_norm=target_norm)
