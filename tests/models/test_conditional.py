"""Conditional density models p(y | x) and the model kinds built on trajectory windows."""

import jax
import numpy as np
import pytest

from mbrlax.data.buffer import ReplayBuffer
from mbrlax.errors import ConfigError, DataError
from mbrlax.models.conditional import ConditionalModel
from mbrlax.models.kinds import KINDS, build_model, evaluate, get_kind, window_rows
from mbrlax.models.trainer import TrainerConfig, fit_conditional

QUICK = TrainerConfig(max_epochs=300, patience=20, learning_rate=3e-3, progress=False)


def two_paths(episodes: int, rng: np.random.Generator, n: int = 4) -> ReplayBuffer:
    """A 2-D point goes from near (0, -1) to near (0, 1) around an obstacle at the origin, by the
    left or by the right (equally often): its first move is (-1, 0.5) or (1, 0.5), plus noise."""
    buf = ReplayBuffer(episodes * n, 2, 2)
    for _ in range(episodes):
        side = rng.choice([-1.0, 1.0])
        way = np.array([[0, -1], [side, -0.5], [side, 0.5], [0, 1], [0, 1.0]])[: n + 1] + rng.normal(0, 0.05, (n + 1, 2))
        for t in range(n):
            buf.add(way[t], way[t + 1] - way[t], 0.0, way[t + 1], False, t == n - 1)
    return buf


@pytest.fixture(scope="module")
def toy_rows():
    return window_rows("inverse-multistep", two_paths(2000, np.random.default_rng(0)), 3)


def _near_modes(samples: np.ndarray) -> tuple[float, float]:
    return tuple(float(np.mean(np.linalg.norm(samples - [side, 0.5], axis=1) < 0.3)) for side in (-1.0, 1.0))


@pytest.mark.parametrize("head", ["mixture", "flow"])
def test_multimodal_head_keeps_both_ways_round_the_obstacle(toy_rows, head):
    x, y = toy_rows
    m = build_model("inverse-multistep", 2, 2, 3, head=head, hidden=64, depth=2, ensemble_size=3, num_elites=3)
    state = fit_conditional(m, m.init(jax.random.PRNGKey(0)), x, y, jax.random.PRNGKey(1), QUICK).state
    query = np.tile(np.array([[0.0, -1.0, 0.0, 1.0]], np.float32), (1000, 1))
    left, right = _near_modes(np.asarray(m.sample(state, query, jax.random.PRNGKey(2))))
    assert left >= 0.3 and right >= 0.3, (left, right)
    mode = np.asarray(m.mode(state, query[:1]))[0]
    assert abs(abs(mode[0]) - 1.0) < 0.2, mode  # the controller's action goes round one side


def test_gaussian_mean_falls_between_the_modes(toy_rows):
    x, y = toy_rows
    m = build_model("inverse-multistep", 2, 2, 3, head="gaussian", hidden=64, depth=2, ensemble_size=3, num_elites=3)
    state = fit_conditional(m, m.init(jax.random.PRNGKey(0)), x, y, jax.random.PRNGKey(1), QUICK).state
    query = np.tile(np.array([[0.0, -1.0, 0.0, 1.0]], np.float32), (1000, 1))
    mean = np.asarray(m.mode(state, query[:1]))[0]
    assert abs(mean[0]) < 0.25, mean  # straight into the obstacle
    left, right = _near_modes(np.asarray(m.sample(state, query, jax.random.PRNGKey(2))))
    assert left < 0.3 and right < 0.3


def test_kinds_rows_slice_the_windows():
    buf = ReplayBuffer(20, 1, 1)
    for t in range(10):  # s_t = t, a_t = 10 t, r_t = -t; one episode
        buf.add([t], [10 * t], -t, [t + 1], False, t == 9)
    for name, (x0, y0) in {
        "forward": ([0, 0], [1]), "inverse": ([0, 1], [0]), "inverse-multistep": ([0, 3], [0]),
        "inverse-sequence": ([0, 3], [0, 10, 20]), "action-free": ([0], [1, 2, 3]),
        "interpolation": ([0, 4], [1, 2, 3]), "joint": ([], [0, 0, 0, 1]),
    }.items():
        x, y = window_rows(name, buf, 3)
        assert x.shape[1:] == (len(x0),) and y.shape[1:] == (len(y0),), name
        np.testing.assert_allclose(x[0], x0, err_msg=name)
        np.testing.assert_allclose(y[0], y0, err_msg=name)
        assert (x.shape[1], y.shape[1]) == KINDS[name].sizes(1, 1, 3)
    assert len(window_rows("interpolation", buf, 3)[0]) == 10 - 4 + 1  # windows of 4 steps in 10


def test_observation_only_trajectories_train_action_free_models():
    episodes = [np.cumsum(np.ones((12, 2), np.float32), 0) for _ in range(3)]
    x, y = window_rows("action-free", episodes, 2)
    assert x.shape == (3 * 10, 2) and y.shape == (30, 4)
    np.testing.assert_allclose(y[0], [1, 1, 2, 2])
    with pytest.raises(DataError, match="observation-only"):
        window_rows("inverse", episodes, 1)


def test_joint_model_samples_whole_transitions_of_a_line():
    """Unconditional p(s, a, r, s'): data on s' = s + a, r = -s^2; samples must obey both."""
    rng = np.random.default_rng(0)
    s, a = rng.uniform(-1, 1, (3000, 1)), rng.uniform(-1, 1, (3000, 1))
    y = np.concatenate([s, a, -s**2, a], 1).astype(np.float32)  # (s, a, r, s' - s)
    m = ConditionalModel(in_dim=0, out_dim=4, head="flow", hidden=64, depth=2, ensemble_size=2, num_elites=2)
    state = fit_conditional(m, m.init(jax.random.PRNGKey(0)), np.zeros((3000, 0), np.float32), y,
                            jax.random.PRNGKey(1), QUICK).state
    draw = np.asarray(m.sample(state, np.zeros((2000, 0), np.float32), jax.random.PRNGKey(3)))
    assert np.median(np.abs(draw[:, 3] - draw[:, 1])) < 0.1  # s' - s = a
    assert np.median(np.abs(draw[:, 2] + draw[:, 0] ** 2)) < 0.1  # r = -s^2
    assert draw[:, 0].std() > 0.4  # it spreads over the data, not one point


def test_evaluate_reports_mse_and_nll_and_bad_input_is_one_error():
    x = np.random.default_rng(0).normal(size=(500, 3)).astype(np.float32)
    y = (x[:, :1] * 2).astype(np.float32)
    m = ConditionalModel(in_dim=3, out_dim=1, hidden=32, depth=2, ensemble_size=2, num_elites=2)
    state = fit_conditional(m, m.init(jax.random.PRNGKey(0)), x, y, jax.random.PRNGKey(1), QUICK).state
    ev = evaluate(m, state, x, y, jax.random.PRNGKey(2))
    assert ev["mse"] < 0.01 and ev["nll"] < -1.0
    with pytest.raises(DataError, match="model expects 3/1"):
        fit_conditional(m, state, x[:, :2], y, jax.random.PRNGKey(1), QUICK)
    with pytest.raises(ConfigError, match="head"):
        ConditionalModel(in_dim=1, out_dim=1, head="laplace")
    with pytest.raises(ConfigError, match="unknown model kind"):
        get_kind("backward")


def test_padding_covers_every_row_for_any_batch_size():
    """The epoch scans padded_size // batch_size batches: the padding must reach the last row
    (250 rows in batches of 100 padded to 256 scanned only 200 of them)."""
    from mbrlax.models.trainer import _bucket

    for n, bs in [(250, 100), (1000, 300), (4096, 256), (10, 256), (3000, 96)]:
        size = _bucket(n, bs)
        assert size >= n and size % bs == 0 and size >= bs
