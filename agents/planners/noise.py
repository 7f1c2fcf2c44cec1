"""Time-correlated ("coloured") Gaussian noise for sampling action sequences.

iCEM (Pinneri et al., 2020) samples candidate action sequences whose noise has a power-law
spectrum ``S(f) ~ 1 / f**beta`` along the time axis: ``beta = 0`` is white noise (plain CEM),
``beta ~ 2`` gives smooth, low-frequency sequences that move an arm or an object much further
than white noise of the same per-step variance, which is why iCEM needs fewer samples.
"""
from __future__ import annotations

import math

import torch

from mbvc.errors import ConfigError


def colored_noise(
    num: int,
    horizon: int,
    action_dim: int,
    beta: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Draw unit-variance Gaussian noise with a ``1 / f**beta`` power spectrum in time.

    The noise is built in the frequency domain: independent complex Gaussian coefficients are
    scaled by ``f**(-beta / 2)`` and transformed back with an inverse real FFT, then divided by
    the exact standard deviation this produces, so every entry has variance 1 whatever ``beta``.

    Args:
        num: number of sequences N.
        horizon: sequence length H (the axis the noise is correlated along).
        action_dim: action dimension A (independent channels).
        beta: spectral exponent, ``>= 0``; ``0`` gives white noise.
        generator: random generator on ``device`` (``None`` uses torch's global one).
        device: device of the result.
        dtype: dtype of the result.

    Returns:
        Noise of shape ``N x H x A``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> colored_noise(4, 10, 2, beta=2.0, generator=g).shape
        torch.Size([4, 10, 2])
    """
    if beta < 0:
        raise ConfigError(f"colored_noise needs beta >= 0, got {beta=}")
    if beta == 0 or horizon == 1:
        return torch.randn(num, horizon, action_dim, generator=generator, device=device, dtype=dtype)
    freqs = torch.fft.rfftfreq(horizon, device=device, dtype=torch.float64)
    # The zero frequency would get infinite power; give it the power of the lowest resolvable
    # frequency 1/H, so that near-constant offsets are the most likely exploration direction.
    freqs[0] = 1.0 / horizon
    scale = freqs.pow(-beta / 2.0)
    shape = (num, action_dim, freqs.numel())
    real = torch.randn(shape, generator=generator, device=device, dtype=torch.float64) * scale
    imag = torch.randn(shape, generator=generator, device=device, dtype=torch.float64) * scale
    # The DC term (and the Nyquist term for even H) of a real signal must be real.
    imag[..., 0] = 0.0
    has_nyquist = horizon % 2 == 0
    if has_nyquist:
        imag[..., -1] = 0.0
    signal = torch.fft.irfft(torch.complex(real, imag), n=horizon, dim=-1)
    # Variance of each time step of the inverse transform: (DC + 4 * middle + Nyquist) / H^2.
    power = scale.pow(2)
    middle = power[1:-1] if has_nyquist else power[1:]
    var = power[0] + 4.0 * middle.sum() + (power[-1] if has_nyquist else 0.0)
    signal = signal / (math.sqrt(float(var)) / horizon)
    return signal.transpose(1, 2).to(dtype).contiguous()
