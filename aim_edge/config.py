"""Frozen configuration dataclasses, one per component.

Each has ``validate()`` (raising :class:`~aim_edge.errors.ConfigError` naming the field and the
given value), ``to_dict()`` and ``from_dict()``; ``from_dict`` accepts partial dicts (missing keys
keep their defaults) and refuses unknown keys. Defaults equal what the shipped model was trained
with: 16 kHz, 80-bin Kaldi log-mel, 25 ms window, 10 ms hop.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, TypeVar

from .errors import ConfigError

__all__ = ["FbankConfig", "RingConfig"]

T = TypeVar("T", bound="_Config")


class _Config:
    """Shared ``to_dict``/``from_dict`` for the frozen config dataclasses."""

    _name: ClassVar[str] = "config"

    def validate(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any] | None) -> T:
        data = dict(data or {})
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"{cls._name}: unknown field(s) {unknown}; known fields are {sorted(names)}"
            )
        obj = cls(**data)
        obj.validate()
        return obj

    def _fail(self, field: str, value: Any, expected: str) -> None:
        raise ConfigError(f"{self._name}.{field} = {value!r} is invalid: expected {expected}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclasses.dataclass(frozen=True)
class FbankConfig(_Config):
    """Kaldi-compatible log-mel filterbank options (the defaults of the shipped model).

    Parameters
    ----------
    sample_rate : int
        Input sample rate in Hz.
    n_mels : int
        Number of mel bins.
    frame_length_ms, frame_shift_ms : float
        Analysis window and hop in milliseconds (25 ms / 10 ms = 400 / 160 samples at 16 kHz).
    dither : float
        Standard deviation of Gaussian dither added to each sample (in [-1, 1] units, i.e.
        Kaldi's value divided by 32768). 0 disables it; it is seeded by ``dither_seed`` and so
        deterministic.
    dither_seed : int
        Seed of the dither generator.
    preemph_coeff : float
        Pre-emphasis coefficient (Kaldi: 0.97).
    remove_dc_offset : bool
        Subtract each frame's mean before windowing.
    snip_edges : bool
        True: only frames that fit completely (Kaldi default). False: frames centred on
        multiples of the hop, edges reflected; the last frames need ``input_finished()``.
    low_freq : float
        Lowest mel-bank edge in Hz.
    high_freq : float
        Highest mel-bank edge in Hz; <= 0 means Nyquist plus this offset.
    log_floor : float
        Energies are floored at this value before the log (Kaldi: FLT_EPSILON).
    """

    _name: ClassVar[str] = "fbank"

    sample_rate: int = 16000
    n_mels: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    dither: float = 0.0
    dither_seed: int = 0
    preemph_coeff: float = 0.97
    remove_dc_offset: bool = True
    snip_edges: bool = True
    low_freq: float = 20.0
    high_freq: float = 0.0
    log_floor: float = 1.1920928955078125e-07

    @property
    def frame_length(self) -> int:
        """Window length in samples."""
        return int(self.sample_rate * self.frame_length_ms / 1000.0)

    @property
    def frame_shift(self) -> int:
        """Hop in samples."""
        return int(self.sample_rate * self.frame_shift_ms / 1000.0)

    def validate(self) -> None:
        if not _is_int(self.sample_rate) or not 1000 <= self.sample_rate <= 192000:
            self._fail("sample_rate", self.sample_rate, "an int in [1000, 192000] Hz")
        if not _is_int(self.n_mels) or not 1 <= self.n_mels <= 512:
            self._fail("n_mels", self.n_mels, "an int in [1, 512]")
        for name in ("frame_length_ms", "frame_shift_ms"):
            value = getattr(self, name)
            if not _is_real(value) or value <= 0:
                self._fail(name, value, "a positive number of milliseconds")
        if self.frame_shift < 1 or self.frame_length < 2:
            self._fail("frame_length_ms", self.frame_length_ms,
                       "a window of at least 2 samples and a hop of at least 1 sample")
        if self.frame_shift > self.frame_length:
            self._fail("frame_shift_ms", self.frame_shift_ms,
                       f"a hop no longer than the window ({self.frame_length_ms} ms)")
        if not _is_real(self.dither) or self.dither < 0:
            self._fail("dither", self.dither, "a finite number >= 0")
        if not _is_int(self.dither_seed) or self.dither_seed < 0:
            self._fail("dither_seed", self.dither_seed, "an int >= 0")
        if not _is_real(self.preemph_coeff) or not 0.0 <= self.preemph_coeff <= 1.0:
            self._fail("preemph_coeff", self.preemph_coeff, "a number in [0, 1]")
        for name in ("remove_dc_offset", "snip_edges"):
            if not isinstance(getattr(self, name), bool):
                self._fail(name, getattr(self, name), "True or False")
        nyquist = self.sample_rate / 2.0
        if not _is_real(self.low_freq) or not 0 <= self.low_freq < nyquist:
            self._fail("low_freq", self.low_freq, f"a number in [0, {nyquist}) Hz")
        if not _is_real(self.high_freq):
            self._fail("high_freq", self.high_freq, "a finite number of Hz")
        high = self.high_freq if self.high_freq > 0 else nyquist + self.high_freq
        if not self.low_freq < high <= nyquist:
            self._fail("high_freq", self.high_freq,
                       f"an edge above low_freq={self.low_freq} and at most Nyquist ({nyquist} Hz);"
                       " values <= 0 are offsets from Nyquist")
        if not _is_real(self.log_floor) or self.log_floor <= 0:
            self._fail("log_floor", self.log_floor, "a positive number")


@dataclasses.dataclass(frozen=True)
class RingConfig(_Config):
    """Native ring buffer between the audio callback and the perceive thread.

    Parameters
    ----------
    capacity : int
        Samples the ring holds; a power of two. The default, 2**16, is 4.1 s at 16 kHz.
    """

    _name: ClassVar[str] = "ring"

    capacity: int = 1 << 16

    @property
    def seconds_at(self) -> float:
        """Capacity in seconds at 16 kHz."""
        return self.capacity / 16000.0

    def validate(self) -> None:
        c = self.capacity
        if not _is_int(c) or c < 2 or c > (1 << 30) or (c & (c - 1)) != 0:
            self._fail("capacity", c, "a power of two in [2, 2**30] samples")
