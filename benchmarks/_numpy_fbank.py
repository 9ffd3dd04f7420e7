"""A vectorised numpy Kaldi fbank: the "write it in numpy" peer of the features benchmark.

Same recipe as ``native/src/fbank.cc`` (Kaldi's feature-window.cc / mel-computations.cc /
feature-fbank.cc): DC removal, pre-emphasis 0.97, Povey window, zero-padding to a power of two,
power spectrum, Kaldi mel bank (float32 bin rule), natural log floored at FLT_EPSILON. Streaming
by buffering: each ``accept_waveform`` appends to a buffer, computes every complete frame in one
vectorised pass and drops the samples no later frame needs. snip_edges=True and dither 0 only
(the benchmark's configuration); not part of the runtime.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NumpyStreamingFbank", "kaldi_mel_banks"]

_EPS = np.float32(np.finfo(np.float32).eps)


def kaldi_mel_banks(n_mels: int, padded: int, sample_rate: int, low_freq: float = 20.0,
                    high_freq: float = 0.0) -> np.ndarray:
    """Kaldi's triangular mel weights as a dense ``(n_mels, padded // 2 + 1)`` float32 matrix.

    Computed in float32 like Kaldi's ``MelBanks`` so that the same FFT bins fall inside each
    triangle (strict inequalities); the Nyquist column stays zero.
    """
    f32 = np.float32

    def mel(freq: np.ndarray | float) -> np.ndarray:
        return f32(1127.0) * np.log(f32(1.0) + np.asarray(freq, dtype=f32) / f32(700.0))

    nyquist = f32(0.5) * f32(sample_rate)
    high = f32(high_freq) if high_freq > 0 else nyquist + f32(high_freq)
    mel_low, mel_high = mel(f32(low_freq)), mel(high)
    delta = (mel_high - mel_low) / f32(n_mels + 1)
    fft_mel = mel(f32(sample_rate) / f32(padded) * np.arange(padded // 2, dtype=f32))
    banks = np.zeros((n_mels, padded // 2 + 1), dtype=f32)
    for b in range(n_mels):
        left = mel_low + f32(b) * delta
        center = mel_low + f32(b + 1) * delta
        right = mel_low + f32(b + 2) * delta
        inside = (fft_mel > left) & (fft_mel < right)
        m = fft_mel[inside]
        banks[b, : padded // 2][inside] = np.where(
            m <= center, (m - left) / (center - left), (right - m) / (right - center))
    return banks


class NumpyStreamingFbank:
    """Streaming Kaldi fbank in numpy (snip_edges=True, no dither).

    Parameters
    ----------
    sample_rate : int
        Hz.
    n_mels : int
        Mel bins.
    frame_length_ms, frame_shift_ms : float
        Window and hop in milliseconds.
    """

    def __init__(self, sample_rate: int = 16000, n_mels: int = 80,
                 frame_length_ms: float = 25.0, frame_shift_ms: float = 10.0) -> None:
        self.n_mels = n_mels
        self._length = int(sample_rate * frame_length_ms / 1000.0)
        self._shift = int(sample_rate * frame_shift_ms / 1000.0)
        self._padded = 1 << (self._length - 1).bit_length()
        i = np.arange(self._length, dtype=np.float64)
        povey = (0.5 - 0.5 * np.cos(2 * np.pi * i / (self._length - 1))) ** 0.85
        self._window = povey.astype(np.float32)
        self._banks_t = np.ascontiguousarray(
            kaldi_mel_banks(n_mels, self._padded, sample_rate).T)  # (bins, n_mels)
        self._buf = np.zeros(0, dtype=np.float32)
        self._ready: list[np.ndarray] = []

    def accept_waveform(self, samples: np.ndarray) -> None:
        """Append float32 samples in [-1, 1] and compute every complete frame."""
        buf = np.concatenate((self._buf, np.asarray(samples, dtype=np.float32)))
        if buf.size < self._length:
            self._buf = buf
            return
        k = 1 + (buf.size - self._length) // self._shift
        frames = np.lib.stride_tricks.sliding_window_view(buf, self._length)[::self._shift][:k]
        frames = frames - frames.mean(axis=1, keepdims=True, dtype=np.float32)
        emphasised = np.empty_like(frames)
        emphasised[:, 1:] = frames[:, 1:] - np.float32(0.97) * frames[:, :-1]
        emphasised[:, 0] = frames[:, 0] - np.float32(0.97) * frames[:, 0]
        emphasised *= self._window
        spectrum = np.fft.rfft(emphasised, n=self._padded, axis=1)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
        self._ready.append(np.log(np.maximum(power @ self._banks_t, _EPS)))
        self._buf = buf[k * self._shift:].copy()  # only what later frames need

    @property
    def num_frames_ready(self) -> int:
        return sum(f.shape[0] for f in self._ready)

    def pop_frames(self) -> np.ndarray:
        """All ready frames as a new ``(k, n_mels)`` float32 array."""
        if not self._ready:
            return np.zeros((0, self.n_mels), dtype=np.float32)
        out = self._ready[0] if len(self._ready) == 1 else np.concatenate(self._ready)
        self._ready = []
        return out
