"""Propagating particles through an ensemble, one step at a time (Chua et al. 2018, sec. 4).

- ``ts1``: every step each particle is sent to a member drawn uniformly (a random
  permutation of particles over members, so each member sees B/M particles), then sampled.
- ``tsinf``: particle i stays with member ``i % M`` for the whole rollout, and is sampled.
- ``mean``: like ``tsinf`` but the member's mean, no sampling (deterministic models, PDDM).
- ``expectation``: every member predicts every particle; the next state is the average of
  the members' means (no sampling; M times the compute).

TS variants need the particle count B to be a multiple of M; ``rollout`` pads for you.

Speed (``benchmarks/model.py``, ``benchmarks/planners.py``; 2 shared CPU cores, so measured
as CPU-time per FLOP and as a ratio to a matmul in the same run):

- The particle axis of the grouped layout ``[M, B/M, ...]`` is sharded across devices
  (``shard_along``; uneven splits allowed under jit, so 10,003 particles use both devices),
  unless each device would get fewer than ``MIN_ROWS_PER_DEVICE`` particles per member.
- TS1 shuffles with one sort of packed uint32 keys and inverts it with a scatter.
  ``jax.random.permutation`` (two key/value sorts) plus an ``argsort`` for the inverse took
  12.5 ms of a 10k-particle step against ~1.5 ms now (with the gathers); rollout CPU-efficiency
  +13%. With several devices and B a multiple of devices x M, each device shuffles its own
  block of B/devices particles, so a step needs no collective (the old global shuffle
  all-gathered and all-reduced every step). Each particle still gets a uniformly random member
  every step and each member exactly B/M particles; the shuffle is stratified per block.
  Other B fall back to one global shuffle across devices: iCEM's decaying populations (515,
  415, ... particles) planned at 0.40 of the matmul rate; an experiment that padded them to
  multiples of 10 in the objective reached 0.58 but is not in this version (padding inside a
  step does not help: slicing the padding off reshards).
- TS1 maps shuffled slots to members in contiguous blocks, so the grouped view is a bitcast on
  each device (no transposes); ``tsinf``/``mean`` keep ``i % M`` (a candidate's particles
  spread over members) and transpose.
- All random numbers of a step come from one Threefry call, written out (JAX lowers Threefry
  on CPU to a while loop that copies its state each round: 2.7x slower per word, and a loop
  of small kernels per call). Measured +12% throughput of a 500-particle TS1 step (the CEM
  planning size), no change at 10k particles. No reward noise is drawn when the model has no
  reward head.
- The three outputs stay separate arrays: concatenated, XLA fused the sampling into the
  concatenation and scalarised it (1.3x slower step at 500 particles).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mbrlax.errors import ConfigError
from mbrlax.models.dynamics import DynamicsModel, ModelState
from mbrlax.utils.sharding import device_count, shard_along

PROPAGATIONS = ("ts1", "tsinf", "mean", "expectation")


class StepOutput(NamedTuple):
    next_obs: jnp.ndarray  # [B, D]
    reward: jnp.ndarray  # [B] learned reward (zeros if the model has no reward head)
    term_prob: jnp.ndarray  # [B] learned termination probability (zeros if none)


def check_propagation(method: str) -> None:
    if method not in PROPAGATIONS:
        raise ConfigError(f"unknown propagation {method!r}; choose from {PROPAGATIONS}")


def _grouped(x: jnp.ndarray, M: int, split: bool) -> jnp.ndarray:
    """``x[B, F]`` -> ``[M, B/M, F]`` with particle i in group ``i % M`` (split across devices)."""
    B = x.shape[0]
    return _split(jnp.swapaxes(x.reshape(B // M, M, *x.shape[1:]), 0, 1), split)


def _ungrouped(y: jnp.ndarray) -> jnp.ndarray:
    """Inverse of :func:`_grouped`: ``[M, B/M, ...]`` -> ``[B, ...]``."""
    M, n = y.shape[:2]
    return jnp.swapaxes(y, 0, 1).reshape(M * n, *y.shape[2:])


def _standard_normal(bits: jnp.ndarray) -> jnp.ndarray:
    """N(0, 1) samples from uint32 ``bits`` (any shape): ``sqrt(2) erfinv(u)``, u uniform on (-1, 1).

    The top 23 bits give ``u = (2k + 1) 2^-23 - 1``, k in [0, 2^23): symmetric, never +-1.
    """
    f = jax.lax.bitcast_convert_type((bits >> 9) | jnp.uint32(0x3F800000), jnp.float32) - 1.0  # [0, 1)
    u = 2.0 * f - (1.0 - 2.0 ** -23)
    return jnp.sqrt(2.0).astype(jnp.float32) * jax.lax.erf_inv(u)


def _threefry2x32(k0: jnp.ndarray, k1: jnp.ndarray, x0: jnp.ndarray, x1: jnp.ndarray):
    """Threefry-2x32 with 20 rounds (Salmon et al. 2011, "Parallel random numbers: as easy as
    1, 2, 3"): key words ``k0, k1``, counter words ``x0, x1`` (uint32, same shape) -> two words.

    The same function as JAX's ``threefry_2x32`` (checked equal, and against the Random123
    known answer for zero key and counter), written out: JAX's CPU lowering runs the five round
    groups as a while loop that copies its state each time (see the module docstring). Here
    XLA fuses the whole hash into one vectorised kernel.
    """
    ks = (k0, k1, k0 ^ k1 ^ jnp.uint32(0x1BD11BDA))
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for i in range(5):
        for r in rotations[i % 2]:
            x0 = x0 + x1
            x1 = ((x1 << jnp.uint32(r)) | (x1 >> jnp.uint32(32 - r))) ^ x0
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + jnp.uint32(i + 1)
    return x0, x1


def _random_words(key: jax.Array, shape: tuple[int, ...]) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Two arrays of independent uniform uint32 words of ``shape`` from ``key`` (one Threefry
    block per element, its counter the element's flat index). Falls back to ``jax.random.bits``
    for keys of another PRNG implementation."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        data = jax.random.key_data(key)
    else:
        data = key
    if data.shape != (2,) or data.dtype != jnp.uint32:
        bits = jax.random.bits(key, (2, *shape), jnp.uint32)
        return bits[0], bits[1]
    counter = jnp.zeros(shape, jnp.uint32)
    stride = 1
    for axis in reversed(range(len(shape))):  # elementwise, so each device computes its own shard
        counter = counter + jax.lax.broadcasted_iota(jnp.uint32, shape, axis) * jnp.uint32(stride)
        stride *= shape[axis]
    return _threefry2x32(data[0], data[1], counter, jnp.zeros(shape, jnp.uint32))


def _sort_permutations(bits: jnp.ndarray) -> jnp.ndarray:
    """Uniformly random permutations of ``0..L-1``, one per row of ``bits[R, L]`` (uint32): ``[R, L]``.

    One sort per row: the random bits with the index packed into the low bits, sorted as one
    uint32 array. Ties between the random high bits (``32 - ceil(log2 L)`` of them) keep index
    order, a negligible bias (for L = 10^4 about 190 of the 5*10^7 pairs tie, and a tied pair is
    adjacent after the sort, so it goes to the same member unless it straddles a group boundary).
    ``jax.random.permutation`` avoids ties with two sorts of key/value pairs (measured 5x slower).
    """
    L = bits.shape[-1]
    width = max(1, (L - 1).bit_length())
    iota = jax.lax.broadcasted_iota(jnp.uint32, bits.shape, bits.ndim - 1)
    if width > 16:  # too few random bits would be left: sort (random key, index) pairs
        return jax.lax.sort((bits, iota.astype(jnp.int32)), dimension=bits.ndim - 1, num_keys=1)[1]
    packed = ((bits >> width) << width) | iota
    return (jnp.sort(packed, axis=-1) & jnp.uint32((1 << width) - 1)).astype(jnp.int32)


def _inverse_permutations(perm: jnp.ndarray) -> jnp.ndarray:
    """``inv[r, perm[r, j]] = j`` for ``perm[R, L]`` (a scatter; an argsort would be another sort)."""
    iota = jnp.arange(perm.shape[1], dtype=jnp.int32)
    return jax.vmap(lambda p: jnp.zeros_like(p).at[p].set(iota, unique_indices=True))(perm)


def _take_rows(x: jnp.ndarray, idx: jnp.ndarray) -> jnp.ndarray:
    """``x[r, idx[r]]`` for ``x[R, L, F]``, ``idx[R, L]``: a gather batched over rows (vmap), which
    XLA keeps on each device when the rows are sharded (``take_along_axis`` gathered the indices)."""
    return jax.vmap(lambda a, i: a[i])(x, idx)


MIN_ROWS_PER_DEVICE = 4
"""Split particles across devices only when each device gets at least this many per member.
Measured with the gradient planner on an idle machine (fraction of the matmul rate, split
against one device): 16 candidates (2 per member and device) 0.16 against 0.18; 40 (4) 0.34
against 0.27; 80 (8) 0.46 against 0.37; 160 (16) 0.59 against 0.33."""


def _devices_for(B: int, M: int) -> int:
    """How many devices ``B`` particles over ``M`` members are split across (1 or all)."""
    n_dev = device_count()
    return n_dev if n_dev > 1 and B // M >= MIN_ROWS_PER_DEVICE * n_dev else 1


def _split(x: jnp.ndarray, split: bool) -> jnp.ndarray:
    """Shard the particle axis (1) of a grouped ``x[M, B/M, ...]`` across devices, if ``split``."""
    return shard_along(x, 1) if split else x


def _shuffle_rows(M: int, B: int, n_dev: int) -> int:
    """How many independent blocks TS1 shuffles particles in: one per device when ``B`` is a
    multiple of devices x M (then no particle crosses devices and a step needs no collective),
    else 1 (one global shuffle)."""
    return n_dev if n_dev > 1 and B % (n_dev * M) == 0 else 1


def _slots_to_grouped(x: jnp.ndarray, M: int, split: bool) -> jnp.ndarray:
    """TS1 layout: ``x[R, L, ...]`` (L shuffled slots per block) -> ``[M, B/M, ...]``, slot j of
    each block going to member ``j // (L/M)``. A bitcast on each device (no transpose copy)."""
    R, L = x.shape[:2]
    y = jnp.swapaxes(x.reshape(R, M, L // M, *x.shape[2:]), 0, 1)
    return _split(y.reshape(M, R * (L // M), *x.shape[2:]), split)


def _grouped_to_slots(y: jnp.ndarray, R: int) -> jnp.ndarray:
    """Inverse of :func:`_slots_to_grouped`: ``[M, B/M, ...]`` -> ``[R, L, ...]``."""
    M, n = y.shape[:2]
    z = jnp.swapaxes(y.reshape(M, R, n // R, *y.shape[2:]), 0, 1)
    return z.reshape(R, M * (n // R), *y.shape[2:])


def propagate_step(model: DynamicsModel, state: ModelState, obs: jnp.ndarray, action: jnp.ndarray,
                   key: jax.Array, method: str = "ts1") -> StepOutput:
    """One step for particles ``obs[B, D]``, ``action[B, A]`` -> next state, reward, termination prob."""
    check_propagation(method)
    M = DynamicsModel.num_members(state)
    B = obs.shape[0]
    if method == "expectation":
        split = _devices_for(B * M, M) > 1
        every = lambda x: _split(jnp.broadcast_to(x, (M, *x.shape)), split)  # noqa: E731  [M, B, ...]
        pred = model.predict(state, every(obs), every(action))
        return StepOutput(pred.next_obs_mean.mean(0), pred.reward_mean.mean(0), pred.term_prob.mean(0))
    if B % M:
        raise ConfigError(f"{method} propagation needs the particle count ({B}) to be a multiple of the members ({M})")
    cfg = model.cfg
    D = cfg.obs_dim
    sample = method != "mean" and cfg.probabilistic
    # every random number of this step from one RNG call, laid out like the grouped particles
    # [M, B/M, W]: words0 give the Δobs noise; words1[..., 0] the shuffle, words1[..., 1] the
    # reward noise
    n_dev = _devices_for(B, M)
    split = n_dev > 1
    W = max(D, 2) if sample else 1
    if sample or method == "ts1":
        words0, words1 = (_split(w, split) for w in _random_words(key, (M, B // M, W)))

    if method == "ts1":
        R = _shuffle_rows(M, B, n_dev)
        perm = _sort_permutations(_grouped_to_slots(words1[..., 0], R))  # [R, B/R]
        xa = jnp.concatenate([obs, action], axis=-1).reshape(R, B // R, -1)
        xa = _slots_to_grouped(_take_rows(xa, perm), M, split)  # [M, B/M, D + A]
        obs_in, act_in = xa[..., :D], xa[..., D:]
    else:
        obs_in, act_in = _grouped(obs, M, split), _grouped(action, M, split)
    pred = model.predict(state, obs_in, act_in)
    next_obs, reward = pred.next_obs_mean, pred.reward_mean
    if sample:
        next_obs = next_obs + jnp.sqrt(pred.next_obs_var) * _standard_normal(words0[..., :D])
        if cfg.predict_reward:  # else the reward mean and variance are zeros: nothing to sample
            reward = reward + jnp.sqrt(pred.reward_var) * _standard_normal(words1[..., 1])
    # outputs kept apart: concatenated, XLA fused the sampling into the concatenation and
    # scalarised it (measured 1.3x slower)
    outs = (next_obs, reward, pred.term_prob)  # [M, B/M, ...]
    if method == "ts1":
        inv = _inverse_permutations(perm)
        return StepOutput(*(_take_rows(_grouped_to_slots(y, R), inv).reshape(B, *y.shape[2:]) for y in outs))
    return StepOutput(*(_ungrouped(y) for y in outs))
