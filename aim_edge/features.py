"""Streaming Kaldi-compatible log-mel filterbank features (the perceive stage's front end).

The work is done by the native core (``native/src/fbank.cc``, exposed as the private
``aim_edge._native.fbank``); this module owns the input policy and the documentation.

Features are Kaldi ``compute-fbank-feats`` compatible (Povey window, pre-emphasis, DC removal,
power spectrum, mel scale ``1127 ln(1 + f / 700)``, natural log with a floor) and agree with
kaldi-native-fbank to about 1e-3 on the log-mel values when the input is in [-1, 1] and dither
is 0. Note the input scale: Kaldi tools often feed int16-scaled floats; that shifts every log-mel
value by ``2 ln 32768 = 20.79``.

Input policy (the same for :meth:`StreamingFbank.accept_waveform` and :func:`compute_fbank`):

* ``float32`` 1-D arrays in [-1, 1] are used as they are (the fast path);
* ``float64`` is converted to ``float32``;
* ``int16`` PCM is accepted and scaled by 1/32768 (so it equals the ``float32`` path fed with
  ``samples / 32768``);
* any other dtype (int32, uint8, bool, complex, object, float16, ...) raises
  :class:`~aim_edge.errors.AudioTypeError` naming the dtype;
* anything but a 1-D array raises :class:`~aim_edge.errors.AudioInputError` naming the shape
  (mix multi-channel audio down to mono first);
* a NaN or infinite sample raises :class:`~aim_edge.errors.AudioInputError` naming the first bad
  sample's index in the stream, and nothing from that call is accepted;
* an empty array is a no-op.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from ._native import fbank as _native
from .config import FbankConfig
from .errors import AudioInputError, AudioTypeError, ConfigError

__all__ = ["StreamingFbank", "compute_fbank"]

_F32 = np.dtype(np.float32)
_ACCEPTED = "float32 or float64 in [-1, 1], or int16 PCM (scaled by 1/32768)"


class StreamingFbank:
    """Streaming log-mel filterbank: push audio chunks of any size, pop frames when ready.

    Frames do not depend on how the audio was chunked (bit-exact), the dither included.
    Frame indices are absolute from the start of the stream (or the last :meth:`reset`).
    Only the samples still needed for future frames are kept, so memory stays bounded as
    long as frames are popped.

    Thread safety: every method may be called from any thread (the native stream has a lock,
    and the work runs without the GIL), but frames are meant to be produced and consumed by one
    perceive thread.

    Parameters
    ----------
    config : FbankConfig, optional
        Feature options; the default is the shipped model's (16 kHz, 80 bins, 25 ms window,
        10 ms hop, snip_edges, no dither).

    Raises
    ------
    ConfigError
        If ``config`` is not an :class:`~aim_edge.config.FbankConfig`, or a field is invalid
        (including too many mel bins for the FFT resolution); the message names the field.

    Examples
    --------
    >>> fb = StreamingFbank()
    >>> fb.accept_waveform(np.zeros(16000, np.float32))   # 1 s at 16 kHz
    >>> fb.pop_frames().shape
    (98, 80)
    """

    __slots__ = ("_config", "_stream", "_accept", "_accept_int16", "_pop", "__weakref__")

    def __init__(self, config: FbankConfig | None = None) -> None:
        if config is None:
            config = FbankConfig()
        if not isinstance(config, FbankConfig):
            raise ConfigError(
                f"fbank config must be an FbankConfig, got {type(config).__name__}; "
                "build one with FbankConfig(...) or FbankConfig.from_dict(...)"
            )
        config.validate()
        if config.dither_seed >= 2**64:
            raise ConfigError(
                f"fbank.dither_seed = {config.dither_seed!r} is invalid: expected an int in "
                "[0, 2**64)"
            )
        self._config = config
        c = config
        self._stream = _native.OnlineFbank(
            sample_rate=c.sample_rate, n_mels=c.n_mels, frame_length_ms=c.frame_length_ms,
            frame_shift_ms=c.frame_shift_ms, dither=c.dither, dither_seed=c.dither_seed,
            preemph_coeff=c.preemph_coeff, remove_dc_offset=c.remove_dc_offset,
            snip_edges=c.snip_edges, low_freq=c.low_freq, high_freq=c.high_freq,
            log_floor=c.log_floor,
        )
        # Bound methods cached: accept_waveform / pop_frames are called every 10-20 ms.
        self._accept = self._stream.accept_waveform
        self._accept_int16 = self._stream.accept_waveform_int16
        self._pop = self._stream.pop_frames

    # -- properties -------------------------------------------------------------------------

    @property
    def config(self) -> FbankConfig:
        """The (validated) options this stream was built with."""
        return self._config

    @property
    def n_mels(self) -> int:
        """Number of mel bins: the width of every frame."""
        return self._config.n_mels

    @property
    def num_frames_ready(self) -> int:
        """Frames computed and not yet popped."""
        return self._stream.num_frames_ready

    @property
    def frame_index(self) -> int:
        """Absolute index of the next frame :meth:`pop_frames` returns (= frames popped so far).

        Frame ``i`` covers samples ``[i * hop, i * hop + window)`` with ``snip_edges=True``, and
        is centred on sample ``i * hop + hop // 2`` otherwise (hop and window in samples, see
        :attr:`FbankConfig.frame_shift` and :attr:`FbankConfig.frame_length`).
        """
        return self._stream.first_frame_index

    @property
    def num_samples_accepted(self) -> int:
        """Samples accepted since construction or the last :meth:`reset`."""
        return self._stream.num_samples_accepted

    @property
    def is_finished(self) -> bool:
        """True once :meth:`input_finished` was called (until :meth:`reset`)."""
        return self._stream.is_finished

    # -- streaming --------------------------------------------------------------------------

    def accept_waveform(self, samples: np.ndarray) -> None:
        """Append audio samples and compute every frame that became ready.

        Parameters
        ----------
        samples : numpy.ndarray
            Mono audio at ``config.sample_rate`` Hz, shape ``(n,)``: ``float32`` (used as is)
            or ``float64`` in [-1, 1], or ``int16`` PCM (scaled by 1/32768). Other array-likes
            are converted with :func:`numpy.asarray` first and then follow the same policy.

        Raises
        ------
        AudioTypeError
            If the dtype is not one of the accepted ones (the message names it).
        AudioInputError
            If ``samples`` is not 1-D (the message names the shape), if a sample is NaN or
            infinite (the message names the first bad sample's absolute index in the stream;
            nothing from the call is accepted), or after :meth:`input_finished`.
        """
        # Fast path: a 1-D float32 ndarray goes straight to the native stream.
        if samples.__class__ is np.ndarray and samples.dtype is _F32 and samples.ndim == 1:
            self._accept(samples)
            return
        self._accept_other(samples)

    def _accept_other(self, samples: Any) -> None:
        try:
            arr = samples if isinstance(samples, np.ndarray) else np.asarray(samples)
        except (TypeError, ValueError) as exc:
            raise AudioTypeError(
                f"samples of type {type(samples).__name__} cannot be read as an array: {exc}; "
                f"accepted: 1-D arrays of {_ACCEPTED}"
            ) from exc
        dtype = arr.dtype
        kind, size = dtype.kind, dtype.itemsize
        if not ((kind == "f" and size in (4, 8)) or (kind == "i" and size == 2)):
            raise AudioTypeError(
                f"samples have dtype {dtype}; accepted: {_ACCEPTED}. Convert first, e.g. "
                "(x / 2**31).astype(np.float32) for int32 PCM or "
                "((x - 128) / 128).astype(np.float32) for uint8 PCM"
            )
        if arr.ndim != 1:
            raise AudioInputError(
                f"samples must be a 1-D (mono) array, got shape {arr.shape}; mix down to mono "
                "first, e.g. x.mean(axis=1) for (samples, channels) audio"
            )
        if kind == "i":
            self._accept_int16(np.ascontiguousarray(arr, dtype=np.int16))
            return
        if size == 4:
            self._accept(np.ascontiguousarray(arr, dtype=np.float32))
            return
        with np.errstate(over="ignore", invalid="ignore"):
            converted = arr.astype(np.float32)
        try:
            self._accept(converted)
        except AudioInputError as exc:
            if not np.isfinite(arr).all():
                raise
            raise AudioInputError(
                f"{exc} (the {dtype} input was finite: values beyond +-3.4e38 overflow float32)"
            ) from exc

    def input_finished(self) -> None:
        """Declare the end of the stream.

        With ``snip_edges=False`` the last frames (reflected at the end of the audio) become
        ready only now, exactly like Kaldi's online features. Idempotent; further
        :meth:`accept_waveform` calls raise until :meth:`reset`.
        """
        self._stream.input_finished()

    def pop_frames(self, n: int | None = None) -> np.ndarray:
        """Remove and return the oldest ready frames.

        Parameters
        ----------
        n : int, optional
            At most this many frames; all ready frames when omitted.

        Returns
        -------
        numpy.ndarray
            A new ``float32`` array of shape ``(k, n_mels)`` with ``k = min(n,
            num_frames_ready)`` (possibly 0): natural-log mel energies, frames
            ``frame_index .. frame_index + k - 1`` (indices as before the call).

        Raises
        ------
        ValueError
            If ``n`` is negative.
        """
        if n is None:
            return self._pop()
        n = operator.index(n)
        if n < 0:
            raise ValueError(f"pop_frames(n={n}): n must be >= 0 (or None for all ready frames)")
        return self._pop(n)

    def reset(self) -> None:
        """Forget all audio, frames and the end-of-stream state; restart the dither sequence.

        After a reset the stream behaves exactly like a new one built with the same config.
        """
        self._stream.reset()

    def __repr__(self) -> str:
        return (
            f"StreamingFbank(n_mels={self.n_mels}, sample_rate={self._config.sample_rate}, "
            f"frame_index={self.frame_index}, num_frames_ready={self.num_frames_ready})"
        )


def compute_fbank(samples: np.ndarray, config: FbankConfig | None = None) -> np.ndarray:
    """Log-mel features of a whole signal (a loop over the streaming path).

    Equivalent to feeding ``samples`` to a new :class:`StreamingFbank`, calling
    :meth:`~StreamingFbank.input_finished` and popping every frame, so it cannot drift from the
    streaming results.

    Parameters
    ----------
    samples : numpy.ndarray
        Mono audio, shape ``(n,)``; see the module docstring for the accepted dtypes.
    config : FbankConfig, optional
        Feature options (default: the shipped model's).

    Returns
    -------
    numpy.ndarray
        ``float32`` array of shape ``(num_frames, n_mels)``. With ``snip_edges=True``,
        ``num_frames = 1 + (n - window) // hop`` (0 if ``n < window``); otherwise
        ``(n + hop // 2) // hop`` (window and hop in samples).

    Raises
    ------
    ConfigError, AudioTypeError, AudioInputError
        As :class:`StreamingFbank` and :meth:`StreamingFbank.accept_waveform`.
    """
    stream = StreamingFbank(config)
    stream.accept_waveform(samples)
    stream.input_finished()
    return stream.pop_frames()
