"""``trainer.fit_seeds`` (N fits batched over a seed axis) against ``trainer.fit`` run once per seed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mbrlax.models.trainer as trainer
from mbrlax.data.buffer import ReplayBuffer
from mbrlax.errors import DataError
from mbrlax.models.config import ModelConfig
from mbrlax.models.trainer import TrainerConfig, fit, fit_seeds

OBS, ACT = 5, 1
# patience 2 with a 5% threshold: the three seeds' fits stop at different epochs (seen: 26, 21 and 3)
CFG = TrainerConfig(batch_size=8, learning_rate=3e-3, max_epochs=30, patience=2, improvement_threshold=0.05,
                    progress=False)


def _data(seed: int, n: int = 60):
    """``n`` transitions of a smooth toy system, in episodes of 20 steps."""
    rng = np.random.default_rng(seed)
    buffer = ReplayBuffer(1000, OBS, ACT)
    obs = rng.normal(size=(n, OBS)).astype(np.float32)
    act = rng.uniform(-1, 1, (n, ACT)).astype(np.float32)
    next_obs = obs + 0.1 * np.tanh(obs @ rng.normal(size=(OBS, OBS))) + 0.05 * act
    for i in range(n):
        buffer.add(obs[i], act[i], float(obs[i, 0]), next_obs[i], False, i % 20 == 19)
    return buffer.all()


@pytest.fixture(scope="module")
def setup():
    model = ModelConfig(ensemble_size=3, num_elites=2, hidden=16, depth=2).build_for_task(OBS, ACT, None)
    seeds = (0, 1, 2)
    states = [model.init(jax.random.PRNGKey(100 + s)) for s in seeds]
    return model, states, [_data(s) for s in seeds], [jax.random.PRNGKey(s) for s in seeds]


def _per_seed_loops(monkeypatch):
    """Replace fit_seeds's vmapped epoch, holdout error and snapshot choice by loops over the seeds of the
    single fit's own jitted functions: fit_seeds's bookkeeping (stacking, keys, masks, early stopping,
    snapshots, unstacking) is then computed with the very same kernels as fit's, so it must be bitwise fit."""
    batched = trainer._compiled_seeds

    def looped(model, cfg):
        _, epoch, holdout = trainer._compiled(model, cfg)
        _, _, _, freeze = batched(model, cfg)
        one = lambda tree, i: jax.tree_util.tree_map(lambda a: a[i], tree)  # noqa: E731
        stack = lambda outs: jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *outs)  # noqa: E731

        def epoch_seeds(params, opt_state, key, xn, yn, tn, boot, n):
            return stack([epoch(*one((params, opt_state, key, xn, yn, tn, boot), i), n) for i in range(len(key))])

        def holdout_seeds(state, xh, yh, wh):
            return stack([holdout(*one((state, xh, yh, wh), i)) for i in range(len(xh))])

        def take_seeds(mask, new, old):
            return stack([trainer._take_members(mask[i], *one((new, old), i)) for i in range(len(mask))])

        return epoch_seeds, holdout_seeds, take_seeds, freeze

    monkeypatch.setattr(trainer, "_compiled_seeds", looped)


def _leaves_equal(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def _without_seconds(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def test_fit_seeds_is_fit_per_seed_bit_for_bit_with_the_same_kernels(setup, monkeypatch):
    model, states, datas, keys = setup
    _per_seed_loops(monkeypatch)
    singles = [fit(model, s, d, k, CFG) for s, d, k in zip(states, datas, keys)]
    batched = fit_seeds(model, states, datas, keys, CFG)
    epochs = [len(s.history) for s in singles]
    assert len(set(epochs)) > 1, epochs  # the seeds stopped at different epochs: the masking was used
    assert max(epochs) < CFG.max_epochs  # by their patience, not the epoch cap
    for s, b in zip(singles, batched):
        assert _leaves_equal(s.state, b.state)  # params, normalisers, elites
        assert _leaves_equal(s.opt_state, b.opt_state)  # Adam frozen at each seed's own last epoch
        np.testing.assert_array_equal(b.holdout_mse, s.holdout_mse)
        assert _without_seconds(b.history) == _without_seconds(s.history)


def test_fit_seeds_refuses_data_sets_of_other_sizes(setup):
    model, states, datas, keys = setup
    with pytest.raises(DataError, match=r"one shape and one training-row count.*\[60, 40\] transitions"):
        fit_seeds(model, states[:2], [datas[0], _data(1, n=40)], keys[:2], CFG)
