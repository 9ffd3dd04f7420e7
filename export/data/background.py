"""Background noise, room reverberation and channel effects.

- Stationary noise: white, pink (1/f) and brown (1/f^2), shaped in the frequency domain.
- Non-stationary noise: pink noise under a slowly wandering gain (fan/traffic swells), mains
  hum with harmonics over pink noise, a low "traffic" rumble with passing swells, and random
  household clatter transients.
- Babble: several other TTS utterances (voices of the same split) summed and looped; made in
  :mod:`export.data.scene`, which owns the TTS renders.
- Room reverberation: synthetic room impulse responses — a direct path, a few early
  reflections, and a late tail of exponentially decaying noise with a frequency-dependent decay
  (high frequencies die faster), for RT60 0.15-0.9 s.
- Band-limiting: telephone band (300-3400 Hz, 4th-order Butterworth magnitude response).

Filters are applied in the frequency domain with Butterworth *magnitude* responses (zero
phase) and convolution by FFT, in numpy only: importing scipy.signal costs seconds per
worker process, more than a minute of audio takes to render.
"""

from __future__ import annotations

import numpy as np

__all__ = ["colored_noise", "noise_bed", "room_impulse_response", "reverberate",
           "telephone_band"]

SR = 16000


def _butter_gain(f: np.ndarray, cutoff: float, order: int, kind: str) -> np.ndarray:
    """Magnitude response of an ``order``-th order Butterworth low- or high-pass."""
    r = (np.maximum(f, 1e-9) / cutoff) ** (2 * order)
    return 1 / np.sqrt(1 + r) if kind == "low" else np.sqrt(r / (1 + r))


def fft_filter(x: np.ndarray, cutoff, order: int, kind: str) -> np.ndarray:
    """Zero-phase filtering of ``x`` with a Butterworth magnitude response.

    ``kind`` is "low", "high" or "band" (``cutoff`` = (low, high) for "band").
    """
    n = x.size
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(n, 1 / SR)
    if kind == "band":
        g = _butter_gain(f, cutoff[0], order, "high") * _butter_gain(f, cutoff[1], order, "low")
    else:
        g = _butter_gain(f, cutoff, order, kind)
    return np.fft.irfft(spec * g, n)


def colored_noise(rng, n: int, exponent: float) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown), RMS 1."""
    white = rng.standard_normal(n)
    if exponent == 0:
        return white
    spec = np.fft.rfft(white)
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1] if n > 1 else 1.0
    spec *= f ** (-exponent / 2)
    x = np.fft.irfft(spec, n)
    x -= x.mean()
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _slow_gain(rng, n: int, rate_hz: float, depth_db: float) -> np.ndarray:
    """A smooth random gain curve (random knots every 1/rate_hz s, interpolated)."""
    n_knots = max(2, int(n / SR * rate_hz) + 2)
    knots = rng.uniform(-depth_db / 2, depth_db / 2, n_knots)
    xk = np.linspace(0, n, n_knots)
    db = np.interp(np.arange(n), xk, knots)
    return 10 ** (db / 20)


def noise_bed(rng, n: int, kind: str) -> tuple[np.ndarray, dict]:
    """A background of ``n`` samples of ``kind`` with RMS 1, and its parameters."""
    if kind == "white":
        return colored_noise(rng, n, 0), {}
    if kind == "pink":
        return colored_noise(rng, n, 1), {}
    if kind == "brown":
        return colored_noise(rng, n, 2), {}
    if kind == "swelling":
        rate = rng.uniform(0.05, 0.5)
        depth = rng.uniform(6, 20)
        x = colored_noise(rng, n, rng.uniform(0.5, 1.5)) * _slow_gain(rng, n, rate, depth)
        return x / np.sqrt(np.mean(x**2)), {"rate_hz": round(rate, 3), "depth_db": round(depth)}
    if kind == "hum":
        mains = float(rng.choice([50.0, 60.0]))
        t = np.arange(n) / SR
        h = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 6))
                for k in range(1, 6))
        x = h / np.sqrt(np.mean(h**2)) + rng.uniform(0.3, 1.0) * colored_noise(rng, n, 1)
        return x / np.sqrt(np.mean(x**2)), {"mains_hz": mains}
    if kind == "traffic":
        x = colored_noise(rng, n, 2.0)
        x = fft_filter(x, rng.uniform(200, 600), 2, "low")
        x *= _slow_gain(rng, n, rng.uniform(0.05, 0.2), rng.uniform(10, 20))
        x += 0.2 * colored_noise(rng, n, 1)
        return x / np.sqrt(np.mean(x**2)), {}
    if kind == "clatter":
        x = 0.3 * colored_noise(rng, n, 1)
        n_hits = int(rng.poisson(n / SR * rng.uniform(0.2, 1.0)))
        for _ in range(n_hits):
            s = int(rng.integers(0, max(1, n - 4000)))
            L = int(rng.integers(400, 4000))
            tt = np.arange(L) / SR
            hit = rng.standard_normal(L) * np.exp(-tt / rng.uniform(0.005, 0.05))
            x[s: s + L] += rng.uniform(0.5, 3.0) * hit
        return x / np.sqrt(np.mean(x**2)), {"hits": n_hits}
    raise ValueError(f"unknown noise kind {kind!r}")


NOISE_KINDS = ("white", "pink", "brown", "swelling", "hum", "traffic", "clatter")


def room_impulse_response(rng, rt60: float) -> tuple[np.ndarray, dict]:
    """A synthetic room impulse response (peak-normalised direct path) for ``rt60`` seconds.

    Direct path at t=0; 4-10 early reflections 2-30 ms later with random gains and signs; a
    late tail of Gaussian noise decaying by 60 dB in ``rt60`` (split into a low and a high band,
    the high band decaying 1.5-2.5x faster, as air and surfaces absorb highs); direct-to-
    reverberant energy ratio drawn in [-3, 12] dB.
    """
    n = int(min(rt60 * 1.2, 1.0) * SR)
    t = np.arange(n) / SR
    h = np.zeros(n)
    h[0] = 1.0
    for _ in range(int(rng.integers(4, 11))):
        d = int(rng.uniform(0.002, 0.03) * SR)
        if d < n:
            h[d] += rng.uniform(0.2, 0.7) * rng.choice([-1.0, 1.0])
    start = int(0.005 * SR)
    decay = np.exp(-6.908 * t / rt60)  # 60 dB at rt60
    hi_factor = rng.uniform(1.5, 2.5)
    noise = rng.standard_normal(n)
    low = fft_filter(noise, 2000.0, 2, "low")
    high = noise - low
    tail = low * decay + high * np.exp(-6.908 * t * hi_factor / rt60)
    tail[:start] = 0
    drr_db = rng.uniform(-3.0, 12.0)  # direct-to-reverberant energy ratio
    h += tail / (np.sqrt(np.sum(tail**2)) + 1e-12) * 10 ** (-drr_db / 20)
    return h.astype(np.float64), {"rt60_s": round(rt60, 3), "drr_db": round(drr_db, 1)}


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve and keep the dry signal's length plus the tail."""
    m = x.size + rir.size - 1
    nfft = 1 << (m - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(rir, nfft), nfft)[:m]


def telephone_band(x: np.ndarray) -> np.ndarray:
    """Telephone channel: 300-3400 Hz band-pass (4th-order Butterworth magnitude)."""
    return fft_filter(x, (300.0, 3400.0), 4, "band")
