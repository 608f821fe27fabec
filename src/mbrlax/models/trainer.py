"""Fitting a dynamics ensemble to transitions (PETS/MBPO recipe).

Adam on minibatches; each member trains on its own bootstrap resample of the training
split; a holdout split drives early stopping, and each member keeps the snapshot of its
best holdout epoch of this fit; the members with the lowest holdout error become the elites.
A learned termination head trains on class-balanced cross-entropy, on every terminal
transition (held-out ones too) and each terminal state as an absorbing row (``termination_rows``).
One epoch is one jitted call (``lax.scan`` over minibatches). Datasets are padded to
power-of-two buckets so a growing dataset recompiles only when it crosses a bucket.

Speed (``benchmarks/model.py``): a training step runs on one device, with XLA's own threads.
Splitting it across two host devices was measured and dropped: on an idle machine (2048^2
matmul at 125-165 GFLOP/s), interleaved in one process, Adam steps reached 0.56 of the matmul
rate unsplit, 0.47 with each minibatch split across the devices (one all-reduce of the 3.7 MB
of gradients per step, the Adam update done on both) and 0.51 with the members split (7 = 4 + 3,
uneven); under contention the per-step rendezvous waited up to 20 ms for a descheduled partner.
A step is ~75% dots and ~25% elementwise work (Adam's moments and update, the softplus bounds,
SiLU), profiled.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from mbrlax.data.buffer import Batch
from mbrlax.errors import ConfigError, DataError, TrainingDivergedError
from mbrlax.models.conditional import ConditionalModel, fit_normalisers
from mbrlax.models.dynamics import DynamicsModel, ModelState
from mbrlax.models.ensemble import ensemble_forward
from mbrlax.models.normalizer import Normalizer
from mbrlax.models.rebase import rebase
from mbrlax.utils.validate import check_range


@dataclass(frozen=True)
class TrainerConfig:
    """How to fit a model. Defaults follow PETS/MBPO (Chua et al. 2018; Janner et al. 2019)."""

    learning_rate: float = 1e-3
    """Adam step size."""
    weight_decay: float = 5e-5
    """L2 penalty on weights, >= 0 (PETS uses 2.5e-5 .. 1e-4 per layer)."""
    batch_size: int = 256
    """Minibatch size per member."""
    max_epochs: int = 100
    """Upper bound on epochs per fit."""
    patience: int = 5
    """Stop after this many epochs in which no member improved its holdout error."""
    improvement_threshold: float = 0.01
    """Relative holdout improvement that counts as progress."""
    holdout_fraction: float = 0.2
    """Share of the data held out for early stopping and elite selection, in [0, 1)."""
    max_holdout: int = 5000
    """Cap on the holdout size (MBPO)."""
    logvar_bound_coef: float = 0.01
    """Weight of (Σ max_logvar − Σ min_logvar) in the Gaussian loss (PETS)."""
    normalize_targets: bool = True
    """Standardise the targets [Δobs, reward] per dimension (PDDM); False keeps env units (PETS, MBPO; docs/settings.md)."""
    rebase_on_refit: bool = False
    """Rewrite the warm-start weights for re-fitted normalisers (measured no help; docs/settings.md)."""
    bootstrap: bool = True
    """Each member trains on its own resample with replacement."""
    max_seconds: float = 0.0
    """Wall-clock budget per fit in seconds (0: none)."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self):
        check_range(self, "learning_rate", gt=0)
        check_range(self, "weight_decay", "improvement_threshold", "logvar_bound_coef", "max_seconds", ge=0)
        check_range(self, "batch_size", "max_epochs", "patience", ge=1)
        check_range(self, "max_holdout", ge=0)
        check_range(self, "holdout_fraction", ge=0, lt=1)


class FitResult(NamedTuple):
    state: ModelState
    history: list  # one dict per epoch: epoch, train_loss, holdout_mse (mean over members), seconds
    holdout_mse: np.ndarray  # [E] best normalised holdout MSE per member
    opt_state: Any = None  # Adam's state after the last epoch; pass it to the next fit to continue it


def transition_arrays(model: DynamicsModel, data: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Network inputs ``[N, D + A]``, regression targets ``[N, G]`` and termination targets ``[N]``."""
    cfg = model.cfg
    if data.obs.shape[1] != cfg.obs_dim or data.action.shape[1] != cfg.act_dim:
        raise DataError(f"data has obs/action dims {data.obs.shape[1]}/{data.action.shape[1]}, "
                        f"model expects {cfg.obs_dim}/{cfg.act_dim}")
    x = np.asarray(model.network_input(jnp.asarray(data.obs), jnp.asarray(data.action)), np.float32)
    y = data.next_obs - data.obs
    if cfg.predict_reward:
        y = np.concatenate([y, data.reward[:, None]], axis=1)
    y = y.astype(np.float32)
    bad = ~(np.isfinite(x).all(1) & np.isfinite(y).all(1))
    if bad.any():
        raise DataError(f"training data has {int(bad.sum())} transitions with NaN/inf (first at row {int(np.argmax(bad))})")
    return x, y, data.terminated.astype(np.float32)


def _bucket(n: int, minimum: int) -> int:
    """Padded size for n rows: a power of two >= n and >= minimum, rounded up to a multiple of
    minimum (the batch size: the epoch scans size // minimum batches and must reach row n - 1)."""
    size = max(minimum, 1 << max(0, math.ceil(math.log2(max(n, 1)))))
    return -(-size // minimum) * minimum


def _pad(a: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((size, *a.shape[1:]), a.dtype)
    out[: len(a)] = a
    return out


def _member_losses(model: DynamicsModel, params: dict, x: jnp.ndarray, y: jnp.ndarray, t: jnp.ndarray,
                   w: jnp.ndarray) -> jnp.ndarray:
    """Per-member loss ``[E]`` on normalised ``x[E, B, in]``, ``y[E, B, G]``, ``t[E, B]`` with weights ``w[E, B]``."""
    cfg = model.cfg
    out = ensemble_forward(cfg, params, x)
    err = (out.mean - y) ** 2
    if cfg.probabilistic:
        per = (err * jnp.exp(-out.logvar) + out.logvar).mean(-1)
    else:
        per = err.mean(-1)
    if cfg.predict_termination:
        per = jnp.where(t == TERMINATION_ONLY, 0.0, per)  # absorbing rows train the termination head alone
        target = jnp.minimum(t, 1.0)
        per = per + termination_weights(target, w) * optax.sigmoid_binary_cross_entropy(out.term_logit, target)
    return (per * w).sum(-1) / jnp.maximum(w.sum(-1), 1.0)


TERMINATION_ONLY = 2.0
"""Termination target of an absorbing row (see :func:`absorbing_rows`): terminal, and no
dynamics or reward target (its regression loss is masked)."""

MAX_TERMINATION_WEIGHT = 20.0
"""Cap on the weight of a terminal row in the termination loss (:func:`termination_weights`)."""


def termination_weights(t: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    """Per-row weights ``[E, B]`` of the termination loss for 0/1 targets ``t[E, B]``, row weights ``w[E, B]``.

    Terminations are rare (one per episode at most: 5 in the first 250 transitions of the
    UserBalance test env), so plain cross-entropy learns "never terminates": the head gave terminal
    transitions p = 0.003-0.3 on average there. Each member's terminal rows in the batch weigh #non-terminal /
    #terminal (class balance), at least 1 and at most ``MAX_TERMINATION_WEIGHT``.
    """
    pos = (t * w).sum(-1, keepdims=True)
    neg = ((1.0 - t) * w).sum(-1, keepdims=True)
    balance = jnp.clip(neg / jnp.maximum(pos, 1.0), 1.0, MAX_TERMINATION_WEIGHT)
    return jnp.where(t > 0.5, balance, 1.0)


def termination_rows(model: DynamicsModel, data: Batch,
                     held_terminal: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Termination-only rows ``(inputs [R, F + A], targets [R])`` added to a fit's training rows: the
    absorbing rows of every terminal transition of ``data``, and ``held_terminal`` ``[H, F + A]``, the
    network inputs of the terminal transitions in the dynamics holdout (it scores the dynamics
    only; with a handful of terminations in the data, the head needs each of them)."""
    xa, ta = absorbing_rows(model, data)
    if held_terminal is None or not len(held_terminal):
        return xa, ta
    return (np.concatenate([xa, held_terminal]),
            np.concatenate([ta, np.full(len(held_terminal), TERMINATION_ONLY, np.float32)]))


def absorbing_rows(model: DynamicsModel, data: Batch) -> tuple[np.ndarray, np.ndarray]:
    """Network inputs ``[T, F + A]`` and termination targets ``[T]`` (all ``TERMINATION_ONLY``) that
    teach the termination head that a terminal state is terminal: ``(next_obs, action)`` of each of
    the ``T`` terminal transitions of ``data``.

    A real episode ends there, so no input beyond the failure boundary is ever seen, and a head fitted
    on ``(obs, action)`` alone learns termination as a thin band at the boundary: states past it
    (where imagined failures go) got p ~ 0, and plans that fell scored like plans that balanced.
    These rows put terminal examples past the boundary; a model that predicts a state there then
    terminates at the next step. They train the head only (no dynamics target).
    """
    done = data.terminated.astype(bool)
    if not done.any():
        return np.zeros((0, model.cfg.in_dim), np.float32), np.zeros(0, np.float32)
    x = np.asarray(model.network_input(jnp.asarray(data.next_obs[done]), jnp.asarray(data.action[done])), np.float32)
    return x, np.full(len(x), TERMINATION_ONLY, np.float32)


def make_loss(model: DynamicsModel, cfg: TrainerConfig):
    """Training loss: Σ_members loss + log-variance bound penalty + L2 weight decay."""

    def loss_fn(params, x, y, t, w, key):
        if isinstance(model, ConditionalModel):  # t unused; the flow head draws its noise from key
            total = model.member_losses(params, x, y, w, key).sum() + model.penalty(params, cfg.logvar_bound_coef)
        else:
            total = _member_losses(model, params, x, y, t, w).sum()
            if model.cfg.probabilistic:
                total += cfg.logvar_bound_coef * (params["max_logvar"].sum() - params["min_logvar"].sum())
        total += cfg.weight_decay * sum(jnp.sum(l["w"] ** 2) for l in params["layers"])
        return total

    return loss_fn


def holdout_mse(model: DynamicsModel, state: ModelState, x: jnp.ndarray, y: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    """Per-member MSE ``[E]`` in normalised target space on raw ``x[N, in]``, ``y[N, G]``, weights ``w[N]``."""
    E = DynamicsModel.num_members(state)
    xn = jnp.broadcast_to(state.input_norm.normalize(x), (E, *x.shape))
    out = ensemble_forward(model.cfg, state.params, xn)
    err = ((out.mean - state.target_norm.normalize(y)) ** 2).mean(-1)
    return (err * w).sum(-1) / jnp.maximum(w.sum(), 1.0)


def _make_epoch_fn(model: DynamicsModel, cfg: TrainerConfig, optimizer: optax.GradientTransformation):
    loss_fn = make_loss(model, cfg)
    bs = cfg.batch_size

    @jax.jit
    def epoch(params, opt_state, key, x, y, t, boot, n):
        """One pass: x/y/t are normalised, padded ``[Np, ...]``; boot ``[E, Np]`` indices into the first n rows."""
        E, Np = boot.shape
        # a fresh shuffle of each member's bootstrap sample; padding positions (j >= n) sort last
        scores = jax.random.uniform(key, (E, Np)) + (jnp.arange(Np) >= n)
        order = jnp.take_along_axis(boot, jnp.argsort(scores, axis=1), axis=1)
        n_batches = (n + bs - 1) // bs
        max_batches = Np // bs

        def body(carry, b):
            params, opt_state, total = carry

            def update(c):
                params, opt_state, total = c
                idx = jax.lax.dynamic_slice_in_dim(order, b * bs, bs, axis=1)  # [E, bs]
                w = ((b * bs + jnp.arange(bs)) < n).astype(jnp.float32)
                w = jnp.broadcast_to(w, (E, bs))
                loss, grads = jax.value_and_grad(loss_fn)(params, x[idx], y[idx], t[idx], w, jax.random.fold_in(key, b))
                updates, opt_state = optimizer.update(grads, opt_state, params)
                return optax.apply_updates(params, updates), opt_state, total + loss

            return jax.lax.cond(b < n_batches, update, lambda c: c, (params, opt_state, total)), None

        (params, opt_state, total), _ = jax.lax.scan(body, (params, opt_state, 0.0), jnp.arange(max_batches))
        return params, opt_state, total / n_batches

    return epoch


@functools.lru_cache(maxsize=32)
def _compiled(model: DynamicsModel, cfg: TrainerConfig):
    """Optimiser, jitted epoch and jitted holdout error, built once per (model, config).

    Refitting in an aggregation loop then reuses the compiled code (it recompiles only when the
    padded dataset crosses a power-of-two bucket), instead of compiling on every fit.
    """
    optimizer = optax.adam(cfg.learning_rate)
    score = model.holdout_loss if isinstance(model, ConditionalModel) else functools.partial(holdout_mse, model)
    holdout_fn = jax.jit(score)
    return optimizer, _make_epoch_fn(model, cfg, optimizer), holdout_fn


def fit(model: DynamicsModel, state: ModelState, data: Batch, key: jax.Array,
        cfg: TrainerConfig = TrainerConfig(), holdout: Batch | None = None, opt_state: Any = None) -> FitResult:
    """Fit ``state`` (warm start) to ``data``; returns the best snapshot per member and the elites.

    If ``holdout`` is None, ``cfg.holdout_fraction`` of ``data`` is held out at random.
    ``opt_state`` (a previous ``FitResult.opt_state``) continues Adam instead of restarting it, as
    MBPO's reference code does; None (what the loops pass today) starts a fresh one.
    Raises :class:`TrainingDivergedError` (with ``.last_good``) if the loss becomes NaN/inf.
    """
    state, last_good, key, train, held = _prepare_fit(model, state, data, key, cfg, holdout)
    return _train(model, state, last_good, key, cfg, train, held, opt_state)


def _prepare_fit(model: DynamicsModel, state: ModelState, data: Batch, key: jax.Array, cfg: TrainerConfig,
                 holdout: Batch | None) -> tuple:
    """Everything of :func:`fit` before the epochs: ``(state with refitted normalisers, the input state,
    key, training arrays, holdout arrays)`` (the last two as :func:`_training_arrays` returns them)."""
    x, y, t = transition_arrays(model, data)
    key, rng = _numpy_rng(key)
    if holdout is None:
        hold_idx, train_idx = _holdout_split(rng, len(x), cfg)
        xh, yh = x[hold_idx], y[hold_idx]
        held_terminal = xh[t[hold_idx] > 0.5]  # the termination head trains on these too
        x, y, t = x[train_idx], y[train_idx], t[train_idx]
    else:
        xh, yh, _ = transition_arrays(model, holdout)
        held_terminal = None
    n = len(x)
    if n == 0:
        raise ConfigError("cannot fit a model on an empty training set")
    if len(xh) == 0:  # too little data to hold any out: early-stop on the training data itself
        xh, yh = x, y

    last_good = state  # what a fit that ends before its first epoch returns: the input, unchanged
    input_norm = Normalizer.fit(x)
    target_norm = Normalizer.fit(y) if cfg.normalize_targets else Normalizer.identity(y.shape[1])
    if cfg.rebase_on_refit:
        state = rebase(model, state, input_norm, target_norm)
    else:
        state = state.replace(input_norm=input_norm, target_norm=target_norm)
    if model.cfg.predict_termination:  # after the normalisers: those describe real transitions only
        xa, ta = termination_rows(model, data, held_terminal)
        x, t = np.concatenate([x, xa]), np.concatenate([t, ta])
        y = np.concatenate([y, np.broadcast_to(np.asarray(state.target_norm.mean, np.float32), (len(xa), y.shape[1]))])
        n = len(x)
    train, held = _training_arrays(state, x, y, t, xh, yh, model.cfg.ensemble_size, cfg, rng)
    return state, last_good, key, train, held


def fit_conditional(model: ConditionalModel, state: ModelState, x: np.ndarray, y: np.ndarray, key: jax.Array,
                    cfg: TrainerConfig = TrainerConfig(), holdout: tuple[np.ndarray, np.ndarray] | None = None,
                    opt_state: Any = None) -> FitResult:
    """Fit a :class:`ConditionalModel` p(y | x) on raw ``x[N, in]``, ``y[N, Y]``, as :func:`fit` does a
    dynamics model: normalisers refitted, each member on its bootstrap resample, holdout early stopping
    (``FitResult.holdout_mse`` is then the holdout score per member: exp(NLL per dimension) for the
    Gaussian and mixture heads, the MSE of the deterministic and flow heads), the best epoch per member kept, elites by holdout loss.
    """
    x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise DataError(f"inputs and targets must be arrays [N, in] and [N, Y] of equal length, got {x.shape} and {y.shape}")
    if x.shape[1] != model.in_dim or y.shape[1] != model.out_dim:
        raise DataError(f"data has input/target sizes {x.shape[1]}/{y.shape[1]}, model expects {model.in_dim}/{model.out_dim}")
    bad = ~(np.isfinite(x).all(1) & np.isfinite(y).all(1))
    if bad.any():
        raise DataError(f"training data has {int(bad.sum())} rows with NaN/inf (first at row {int(np.argmax(bad))})")
    key, rng = _numpy_rng(key)
    if holdout is None:
        hold_idx, train_idx = _holdout_split(rng, len(x), cfg)
        xh, yh, x, y = x[hold_idx], y[hold_idx], x[train_idx], y[train_idx]
    else:
        xh, yh = (np.asarray(a, np.float32) for a in holdout)
    n = len(x)
    if n == 0:
        raise ConfigError("cannot fit a model on an empty training set")
    if len(xh) == 0:
        xh, yh = x, y
    last_good = state
    state = fit_normalisers(model, state, x, y)
    if not cfg.normalize_targets:
        state = state.replace(target_norm=Normalizer.identity(model.out_dim))
    train, held = _training_arrays(state, x, y, np.zeros(n, np.float32), xh, yh, model.ensemble_size, cfg, rng)
    return _train(model, state, last_good, key, cfg, train, held, opt_state)


def _numpy_rng(key: jax.Array) -> tuple[jax.Array, np.random.Generator]:
    """The key to go on with, and a NumPy generator seeded from it (holdout split, bootstrap)."""
    key, k_np = jax.random.split(key)
    return key, np.random.default_rng(int(jax.random.randint(k_np, (), 0, 2**31 - 1)))


def _holdout_split(rng: np.random.Generator, n: int, cfg: TrainerConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(holdout indices, training indices)`` of n rows: ``holdout_fraction`` of them at random, at most ``max_holdout``."""
    perm = rng.permutation(n)
    n_hold = min(int(cfg.holdout_fraction * n), cfg.max_holdout)
    return perm[:n_hold], perm[n_hold:]


def _training_arrays(state: ModelState, x: np.ndarray, y: np.ndarray, t: np.ndarray, xh: np.ndarray, yh: np.ndarray,
                     ensemble_size: int, cfg: TrainerConfig, rng: np.random.Generator) -> tuple[tuple, tuple]:
    """What :func:`_train` takes: the training rows normalised and padded to a bucket, with each member's
    bootstrap indices, ``(x, y, t, boot [E, Np], n)``; the raw holdout padded, ``(x, y, weights)``."""
    n = len(x)
    Np = _bucket(n, cfg.batch_size)
    xn = jnp.asarray(_pad(np.asarray(state.input_norm.normalize(x), np.float32), Np))
    yn = jnp.asarray(_pad(np.asarray(state.target_norm.normalize(y), np.float32), Np))
    tn = jnp.asarray(_pad(t, Np))
    E = ensemble_size
    boot = rng.integers(0, n, size=(E, n)) if cfg.bootstrap else np.tile(np.arange(n), (E, 1))
    boot = jnp.asarray(_pad(boot.T, Np).T.astype(np.int32))
    Nh = _bucket(len(xh), 256)
    wh = jnp.asarray((np.arange(Nh) < len(xh)).astype(np.float32))
    return (xn, yn, tn, boot, n), (jnp.asarray(_pad(xh, Nh)), jnp.asarray(_pad(yh, Nh)), wh)


def _train(model, state: ModelState, last_good: ModelState, key: jax.Array, cfg: TrainerConfig,
           train: tuple, held: tuple, opt_state: Any) -> FitResult:
    """The epoch loop shared by both fits: ``train`` = normalised padded (x, y, t, bootstrap, n),
    ``held`` = raw padded holdout (x, y, weights)."""
    xn, yn, tn, boot, n = train
    xh_p, yh_p, wh = held
    E = boot.shape[0]
    optimizer, epoch_fn, holdout_fn = _compiled(model, cfg)
    opt_state_in = opt_state
    opt_state = optimizer.init(state.params) if opt_state is None else opt_state

    def eval_fn(s):
        return holdout_fn(s, xh_p, yh_p, wh)

    # Each fit picks each member's best epoch of *this* fit (MBPO's reference resets its best
    # to +inf per fit). Scoring the warm-start weights as the bar to beat froze the model: the
    # fresh holdout is mostly data those weights trained on, and the reset Adam's first steps
    # score worse, so once the data set was large every member fell back to its old weights
    # (Hopper MBPO: model reward rose while the real return fell).
    best_params = state.params
    best = np.full(E, np.inf)
    history, since_improved, start = [], 0, time.time()
    bar = tqdm(range(cfg.max_epochs), desc="fit model", disable=not cfg.progress, leave=False)
    for ep in bar:
        key, k = jax.random.split(key)
        params, opt_state, train_loss = epoch_fn(state.params, opt_state, k, xn, yn, tn, boot, n)
        train_loss = float(train_loss)
        if not np.isfinite(train_loss):
            good = _with_best(model, state, best_params, best) if history else last_good
            raise TrainingDivergedError(f"model training diverged (loss={train_loss}) at epoch {ep}; "
                                        "last good parameters kept in .last_good", last_good=good)
        state = state.replace(params=params)
        mse = np.asarray(eval_fn(state))
        improved = _improved_members(best, mse, cfg.improvement_threshold)
        best_params = _take_members(improved, params, best_params)
        best = np.where(improved, mse, best)
        since_improved = 0 if improved.any() else since_improved + 1
        history.append(_history_row(ep, train_loss, mse, best, time.time() - start))
        bar.set_postfix(train=f"{train_loss:.3f}", holdout=f"{np.mean(mse):.4f}")
        if since_improved >= cfg.patience or (cfg.max_seconds and time.time() - start > cfg.max_seconds):
            break
    bar.close()
    if not history:
        return FitResult(last_good, history, best, opt_state_in)
    return FitResult(_with_best(model, state, best_params, best), history, best, opt_state)


def _improved_members(best: np.ndarray, mse: np.ndarray, threshold: float) -> np.ndarray:
    """Which members' holdout error ``mse [..., E]`` beats their best so far ``best [..., E]`` (inf: none
    yet) by more than the relative ``threshold``: the early-stopping rule of :func:`fit` and :func:`fit_seeds`."""
    with np.errstate(invalid="ignore"):  # inf / inf on the first epoch
        gain = (best - mse) / np.maximum(np.abs(best), 1e-12)
    return np.isfinite(mse) & (np.isinf(best) | (gain > threshold))


def _history_row(epoch: int, train_loss: float, mse: np.ndarray, best: np.ndarray, seconds: float) -> dict:
    """One epoch's row of a fit's history (members' holdout errors ``mse``/``best [E]`` averaged)."""
    return {"epoch": epoch, "train_loss": float(train_loss), "holdout_mse": float(np.mean(mse)),
            "holdout_mse_best": float(np.mean(best)), "seconds": seconds}


def _take_members(mask: np.ndarray, new: dict, old: dict) -> dict:
    """Per-member choice between two weight pytrees; shared leaves (logvar bounds) take ``new``."""
    mask = jnp.asarray(mask)

    def pick(a, b):
        if a.ndim >= 1 and a.shape[0] == mask.shape[0] and a.ndim == 3:
            return jnp.where(mask[:, None, None], a, b)
        return a

    return jax.tree_util.tree_map(pick, new, old)


def _with_best(model: DynamicsModel, state: ModelState, best_params: dict, best: np.ndarray) -> ModelState:
    elites = np.argsort(best)[: model.num_elites].astype(np.int32)
    return state.replace(params=best_params, elites=jnp.asarray(elites))


# ------------------------------------------------------------------------------------ several runs at once
def fit_seeds(model: DynamicsModel, states: list[ModelState], datas: list[Batch], keys: list[jax.Array],
              cfg: TrainerConfig = TrainerConfig()) -> list[FitResult]:
    """:func:`fit` for ``N`` independent runs of one model (one per seed), their epochs batched: what
    ``fit(model, states[k], datas[k], keys[k], cfg)`` returns for each k, up to float rounding.

    Every epoch is one call of the epoch ``vmap``-ped over the runs (and one of the holdout error);
    each run keeps its own early stopping: once run k's patience is used up, its later epochs (still
    computed, with the others') are masked out: its params, Adam state, snapshot and history stay put,
    so the batched fit lasts as long as its longest run. The runs' data must give padded arrays of one
    shape and one training-row count (the arrays are stacked): same-size data sets, as runs in lockstep
    with fixed-length episodes have; else :class:`~mbrlax.errors.DataError`. ``cfg.max_seconds`` is
    checked against the shared wall time. Raises :class:`TrainingDivergedError` naming the runs whose
    loss became NaN/inf; its ``.last_good`` is the list of those diverged runs' input states (the
    states passed in, in the order of the runs named), not every run's.
    """
    prepared = [_prepare_fit(model, s, d, k, cfg, None) for s, d, k in zip(states, datas, keys)]
    # prepared[k] = (state, last_good, key, (xn, yn, tn, boot, n), (xh, yh, wh))
    shapes = [tuple(a.shape for a in p[3][:4] + p[4]) for p in prepared]
    rows = [p[3][4] for p in prepared]
    if len(set(zip(shapes, rows))) != 1:
        raise DataError(f"fit_seeds needs padded arrays of one shape and one training-row count for every run, got "
                        f"{[len(d.obs) for d in datas]} transitions -> training rows {rows}, padded shapes "
                        f"{[s[0] for s in shapes]} (train) and {[s[4] for s in shapes]} (holdout)")
    n = prepared[0][3][4]  # training rows, the same for every run (unbatched: a batched n would run padded batches)
    N, stack = len(prepared), functools.partial(jax.tree_util.tree_map, lambda *xs: jnp.stack(xs))
    state = stack(*[p[0] for p in prepared])  # [N, ...]
    key = jnp.stack([p[2] for p in prepared])  # [N, 2]
    xn, yn, tn, boot = (jnp.stack([p[3][i] for p in prepared]) for i in range(4))  # [N, Np, ...], boot [N, E, Np]
    xh, yh, wh = (jnp.stack([p[4][i] for p in prepared]) for i in range(3))  # [N, Nh, ...]
    optimizer, _, _ = _compiled(model, cfg)
    epoch_fn, holdout_fn, take_fn, freeze_fn = _compiled_seeds(model, cfg)
    opt_state = jax.vmap(optimizer.init)(state.params)
    E = boot.shape[1]
    best_params, best = state.params, np.full((N, E), np.inf)
    active, since_improved = np.ones(N, bool), np.zeros(N, int)
    histories: list[list] = [[] for _ in range(N)]
    start = time.time()
    for ep in range(cfg.max_epochs):
        key, k = split_seeds(key)
        opt_state_before = opt_state
        params, opt_state, train_loss = epoch_fn(state.params, opt_state, k, xn, yn, tn, boot, n)
        train_loss = np.asarray(train_loss)  # [N]
        bad = np.flatnonzero(active & ~np.isfinite(train_loss))
        if len(bad):
            raise TrainingDivergedError(f"model training diverged at epoch {ep} for runs {bad.tolist()} (loss "
                                        f"{train_loss[bad].tolist()}); their input states kept in .last_good",
                                        last_good=[prepared[i][1] for i in bad])
        # a stopped run's params and Adam state stay those of its last epoch (its logvar bounds, which
        # every snapshot takes from the latest params, too)
        params, opt_state = freeze_fn(active, (params, opt_state), (state.params, opt_state_before))
        state = state.replace(params=params)
        mse = np.asarray(holdout_fn(state, xh, yh, wh))  # [N, E]
        improved = active[:, None] & _improved_members(best, mse, cfg.improvement_threshold)
        best_params = take_fn(improved, params, best_params)
        best = np.where(improved, mse, best)
        seconds = time.time() - start
        for i in np.flatnonzero(active):
            since_improved[i] = 0 if improved[i].any() else since_improved[i] + 1
            histories[i].append(_history_row(ep, train_loss[i], mse[i], best[i], seconds))
        active &= ~((since_improved >= cfg.patience) | bool(cfg.max_seconds and seconds > cfg.max_seconds))
        if not active.any():
            break
    results = []  # every run has run epoch 0 (max_epochs >= 1), so each has a best snapshot
    for i in range(N):
        one = jax.tree_util.tree_map(lambda x: x[i], state.replace(params=best_params))
        results.append(FitResult(_with_best(model, one, one.params, best[i]), histories[i], best[i],
                                 jax.tree_util.tree_map(lambda x: x[i], opt_state)))
    return results


@functools.lru_cache(maxsize=32)
def _compiled_seeds(model: DynamicsModel, cfg: TrainerConfig):
    """:func:`_compiled`'s epoch and holdout error ``vmap``-ped over a leading run axis (the row count
    ``n`` shared), the per-member snapshot choice and a per-run freeze."""
    _, epoch, holdout_fn = _compiled(model, cfg)
    epoch_seeds = jax.jit(jax.vmap(epoch, in_axes=(0, 0, 0, 0, 0, 0, 0, None)))  # -> params, opt, loss [N]
    holdout_seeds = jax.jit(jax.vmap(holdout_fn))  # -> [N, E]
    take_seeds = jax.jit(jax.vmap(_take_members))  # mask [N, E]

    @jax.jit
    def freeze(active, new, old):
        """Per run, ``new`` where ``active [N]`` else ``old`` (pytrees with a leading run axis)."""
        return jax.tree_util.tree_map(lambda a, b: jnp.where(active.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), new, old)

    return epoch_seeds, holdout_seeds, take_seeds, freeze


@jax.jit
def split_seeds(keys):
    """``keys [N, 2] -> (kept [N, 2], sub [N, 2])``: each run's ``key, sub = jax.random.split(key)``
    (used by every seeds-batched loop: :func:`fit_seeds`, ``algorithms/sac_seeds.py``)."""
    both = jax.vmap(jax.random.split)(keys)  # [N, 2, 2]
    return both[:, 0], both[:, 1]
