"""Coloured (power-law) Gaussian noise along the time axis, made with an FFT in JAX.

Power spectral density ``S(f) ∝ 1 / f^beta`` (Timmer & König 1995's construction: random Fourier
coefficients with amplitude ``f^(-beta/2)``, then an inverse real FFT). ``beta = 0`` is white
noise, ``beta = 1`` pink, ``beta = 2`` brown (a random walk, smooth); iCEM (Pinneri et al. 2020)
samples its action sequences this way. The zero frequency gets the amplitude of the lowest
non-zero frequency ``1/H``. Marginals are standard normal (the scale is computed exactly from the
spectrum, not estimated), so the result can be used as ``mean + std * noise``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _spectrum(horizon: int, beta: float) -> tuple[np.ndarray, float]:
    """Amplitudes ``[F]`` (F = H//2 + 1, the DC and Nyquist terms already times sqrt 2) and the
    standard deviation of one time sample that they produce under ``irfft``."""
    freqs = np.fft.rfftfreq(horizon)  # [F], 0 .. 0.5
    f = np.maximum(freqs, 1.0 / horizon)
    amp = f ** (-beta / 2.0)
    # DC (and Nyquist for even H) are real: a sqrt(2) keeps beta = 0 exactly white.
    amp = amp.copy()
    amp[0] *= np.sqrt(2.0)
    if horizon % 2 == 0 and horizon > 1:
        amp[-1] *= np.sqrt(2.0)
    # irfft: x_t = (1/H) [X_0 + 2 sum_k Re(X_k e^{2 pi i k t / H}) + X_{H/2} (-1)^t], so an
    # interior bin contributes 4 a_k^2 / H^2 to Var(x_t) and a real-only bin (DC, Nyquist)
    # a_k^2 / H^2 (its sqrt 2 is already in a_k).
    interior = np.ones_like(amp, dtype=bool)
    interior[0] = False
    if horizon % 2 == 0:
        interior[-1] = False
    var = (4.0 * np.sum(amp[interior] ** 2) + np.sum(amp[~interior] ** 2)) / horizon**2
    return amp, float(np.sqrt(var))


def colored_noise(key: jax.Array, beta: float, shape: tuple[int, ...]) -> jax.Array:
    """Standard-normal noise of ``shape = (..., H, A)`` with a ``1/f^beta`` spectrum along ``H``.

    ``beta`` must be a Python float (static). Each of the ``A`` action dimensions and each leading
    index is an independent sequence.
    """
    *batch, horizon, adim = shape
    amp, std = _spectrum(horizon, float(beta))
    nfreq = amp.shape[0]
    parts = jax.random.normal(key, (*batch, adim, nfreq, 2))  # one RNG call: real, imaginary
    re, im = parts[..., 0], parts[..., 1]
    # DC and Nyquist must be real for a real signal (irfft drops their imaginary parts anyway).
    real_only = np.zeros(nfreq, dtype=bool)
    real_only[0] = True
    if horizon % 2 == 0:
        real_only[-1] = True
    im = jnp.where(jnp.asarray(real_only), 0.0, im)
    coeffs = (re + 1j * im) * jnp.asarray(amp, dtype=jnp.float32)
    x = jnp.fft.irfft(coeffs, n=horizon, axis=-1) / std  # [..., A, H]
    return jnp.swapaxes(x, -1, -2).astype(jnp.float32)
