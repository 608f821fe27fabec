"""Carry a fitted ensemble across new normalisers so its predictions in env units stay the same.

A refit re-fits the input and target normalisers on the grown data set before training. Read
in the new units, the old weights are a different model: Pusher's object deltas are exactly 0
for the first 800 transitions (std set to 1), then move by ~5e-5 (std 6.6e-5), and the
warm-started model's NLL on the new data jumps from 6.5 to 24624 (``benchmarks/refit.py``).
Rewriting the first layer, the mean head and the log-variance offsets for the new units makes
the warm start the same function as the previous fit, so training continues from it.

The rewrite is exact, except where a scale changes more than ``MAX_RESCALE``-fold: the old
weights then saw (almost) nothing of that feature, and scaling them up would give weights
the weight decay and Adam cannot bring back. Such an input is dropped from the first layer
(its row zeroed, its contribution frozen at the new mean) and such a target's mean head
restarts at the old normaliser's mean; its variance is still carried over exactly.

Off by default (``TrainerConfig.rebase_on_refit``): measured, it removes the shock (Pusher's
first-epoch NLL jump when the object starts to move: 766 -> 29) but not the bad episodes, and its
models predict the next episode's transitions worse (refit replays: Pusher 0.245 against 0.196,
cart-pole 0.0015 against 0.0007, scaled squared error). Reading the old weights in new units
mostly inflates the old model's variance, since spreads usually grow as data comes in, and a
less confident warm start seems to fit the new data better (docs/benchmarks.md).
"""

from __future__ import annotations

import jax.numpy as jnp

from mbrlax.models.dynamics import DynamicsModel, ModelState
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
    shift = (input_norm.mean - old_in.mean) / old_in.std  # a dropped input keeps its value at the new mean
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
        # log-variance: + 2 log(s_old / s_new) on the raw head and both soft bounds is exact
        lv_shift = 2.0 * jnp.log(out_ratio)
        b = b.at[..., G:2 * G].add(lv_shift)
        params["max_logvar"] = params["max_logvar"] + lv_shift
        params["min_logvar"] = params["min_logvar"] + lv_shift
    layers[-1] = {"w": w, "b": b}
    params["layers"] = layers
    return state.replace(params=params, input_norm=input_norm, target_norm=target_norm)
