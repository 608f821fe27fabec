"""Coloured noise: unit marginals, white at beta = 0, a 1/f^beta spectrum otherwise."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from mbrlax.planning import colored_noise
from mbrlax.planning.noise import _spectrum


# one shape throughout: each new shape compiles the RNG again
SHAPE = (2000, 32, 2)


@pytest.mark.parametrize("beta", [0.0, 2.0])
def test_unit_marginals(beta):
    x = np.asarray(colored_noise(jax.random.PRNGKey(0), beta, SHAPE))
    assert x.shape == SHAPE
    np.testing.assert_allclose(x.std(axis=(0, 2)), 1.0, atol=0.08)
    np.testing.assert_allclose(x.mean(), 0.0, atol=0.05)


@pytest.mark.parametrize("horizon", [1, 2, 7, 16])
def test_spectrum_scale_is_exact_for_white_noise(horizon):
    amp, std = _spectrum(horizon, 0.0)
    assert amp.shape == (horizon // 2 + 1,)
    np.testing.assert_allclose(std, np.sqrt(2.0 / horizon))  # irfft of white coefficients


def test_white_noise_is_uncorrelated_and_brown_noise_is_smooth():
    white = np.asarray(colored_noise(jax.random.PRNGKey(1), 0.0, SHAPE))
    brown = np.asarray(colored_noise(jax.random.PRNGKey(1), 2.0, SHAPE))
    lag1 = lambda x: np.mean(x[:, 1:] * x[:, :-1])  # noqa: E731
    assert abs(lag1(white)) < 0.03
    assert lag1(brown) > 0.6


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_power_spectrum_slope(beta):
    x = np.asarray(colored_noise(jax.random.PRNGKey(2), beta, SHAPE))
    psd = np.mean(np.abs(np.fft.rfft(x, axis=1)) ** 2, axis=(0, 2))
    f = np.fft.rfftfreq(SHAPE[1])
    slope = np.polyfit(np.log(f[1:-1]), np.log(psd[1:-1]), 1)[0]
    assert abs(slope + beta) < 0.15, slope
