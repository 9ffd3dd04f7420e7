"""Audio input: sample conversion, mix-down, resampling and WAV files.

Everything the runtime consumes is **float32 mono at the bundle's sample rate (16 kHz)** with
values in [-1, 1]. This module turns what callers have into that:

* dtypes: float32 / float64 in [-1, 1] and int16 PCM (scaled by 1/32768) are accepted; anything
  else raises :class:`~aim_edge.errors.AudioTypeError` naming the dtype;
* shape: 1-D is mono; 2-D is ``(frames, channels)`` (the soundfile / sounddevice layout) and is
  mixed down to mono by averaging the channels, which the caller counts and reports;
* rate: other rates are resampled with python-soxr's streaming resampler (optional dependency:
  ``pip install soxr``; raised as :class:`~aim_edge.errors.OptionalDependencyError` on first
  use when missing);
* values: NaN / inf raise :class:`~aim_edge.errors.AudioInputError` with the index of the first
  bad sample.

WAV files are read with the standard library :mod:`wave` (16-bit PCM) plus a small RIFF reader
for 32-bit IEEE float WAV (which :mod:`wave` refuses). Other formats (24-bit, A-law, MP3, FLAC,
...) are refused with a message that names ``soundfile`` as the way to read them.
"""

from __future__ import annotations

import io
import struct
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import AudioInputError, AudioTypeError, OptionalDependencyError

__all__ = [
    "AudioConverter",
    "WavInfo",
    "as_float32",
    "check_finite",
    "iter_wav_blocks",
    "mix_down",
    "read_wav",
    "read_wav_header",
    "wav_data_blocks",
    "wav_info",
]

MAX_CHANNELS = 64


def as_float32(samples: object, *, what: str = "samples") -> np.ndarray:
    """Return ``samples`` as float32 (a view when already float32), int16 scaled by 1/32768.

    Raises
    ------
    AudioTypeError
        For any dtype other than float32, float64 and int16 (the message names it).
    """
    if not isinstance(samples, np.ndarray):
        if isinstance(samples, (list, tuple)):
            samples = np.asarray(samples, dtype=np.float32)
        else:
            raise AudioTypeError(
                f"{what}: expected a numpy array of float32/float64 in [-1, 1] or int16 PCM,"
                f" got {type(samples).__name__}"
            )
    dt = samples.dtype
    if dt == np.float32:
        return samples
    if dt == np.float64:
        return samples.astype(np.float32)
    if dt == np.int16:
        return samples.astype(np.float32) * np.float32(1.0 / 32768.0)
    raise AudioTypeError(
        f"{what}: dtype {dt} is not supported; give float32/float64 in [-1, 1] or int16 PCM"
        " (scale other integer PCM to float first, e.g. int32 / 2**31)"
    )


def mix_down(samples: np.ndarray, *, what: str = "samples") -> tuple[np.ndarray, int]:
    """Return ``(mono, channels)``: 1-D passes through, ``(frames, channels)`` is averaged."""
    if samples.ndim == 1:
        return samples, 1
    if samples.ndim == 2:
        frames, channels = samples.shape
        if channels > MAX_CHANNELS:
            raise AudioInputError(
                f"{what}: shape {samples.shape} reads as {channels} channels; give mono (n,) or"
                f" (frames, channels) with at most {MAX_CHANNELS} channels (transpose a"
                " (channels, frames) array)"
            )
        if channels == 1:
            return samples[:, 0], 1
        return samples.mean(axis=1, dtype=np.float32), channels
    raise AudioInputError(
        f"{what}: expected 1-D mono or 2-D (frames, channels) audio, got shape {samples.shape}"
    )


def check_finite(samples: np.ndarray, *, offset: int = 0, what: str = "samples") -> None:
    """Raise :class:`AudioInputError` naming the first NaN/inf sample (index + ``offset``)."""
    if samples.size and not np.isfinite(samples).all():
        bad = int(np.flatnonzero(~np.isfinite(samples.reshape(-1)))[0])
        value = samples.reshape(-1)[bad]
        raise AudioInputError(
            f"{what}: sample {bad + offset} is {value} (not finite); clean the input (e.g."
            " np.nan_to_num) before passing it"
        )


def _require_soxr():  # noqa: ANN202 - returns the module
    try:
        import soxr
    except ImportError:
        raise OptionalDependencyError(
            "resampling (python-soxr)",
            "audio that is not at the model's sample rate needs it: `pip install soxr` or"
            " `pip install aim-edge[audio]`, or resample the input to 16 kHz yourself",
        ) from None
    return soxr


class AudioConverter:
    """Streaming conversion of arbitrary input blocks to float32 mono at ``target_rate``.

    One converter per audio source: the resampler keeps its filter state between blocks, so
    block boundaries leave no clicks and the output does not depend on the block size beyond
    soxr's own guarantees. Call :meth:`flush` at the end of the input.

    Parameters
    ----------
    target_rate : int
        Output rate in Hz (the bundle's ``features.sample_rate``).
    quality : str
        soxr quality for resampling (``"HQ"`` default; ``"VHQ"`` / ``"MQ"`` / ``"LQ"``).

    Attributes
    ----------
    mixed_down_blocks : int
        Blocks that had more than one channel and were averaged to mono.
    max_channels : int
        Most channels seen in one block.
    resampled_from : int or None
        The last input rate that needed resampling.
    over_full_scale : int
        Float samples beyond [-1, 1] (after the mix-down): used as they are, and noted, since
        the model was trained on audio in that range; ``peak`` is the largest magnitude.
    """

    def __init__(self, target_rate: int, *, quality: str = "HQ") -> None:
        self.target_rate = int(target_rate)
        self.quality = quality
        self.mixed_down_blocks = 0
        self.max_channels = 1
        self.resampled_from: int | None = None
        self.over_full_scale = 0
        self.peak = 0.0
        self._rate: int | None = None
        self._resampler = None
        self._samples_in = 0

    def convert(self, sample_rate: int, samples: object) -> np.ndarray:
        """Convert one block; returns float32 mono at the target rate (possibly empty).

        Raises AudioTypeError (dtype), AudioInputError (shape, NaN/inf with the index counted
        from the start of this converter's input, bad rate) and OptionalDependencyError (soxr
        missing when resampling is needed).
        """
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
            raise AudioInputError(f"sample_rate = {sample_rate!r}: expected an int in Hz")
        sample_rate = int(sample_rate)
        if not 1000 <= sample_rate <= 768000:
            raise AudioInputError(f"sample_rate = {sample_rate} Hz is out of range [1000, 768000]")
        x = as_float32(samples)
        x, channels = mix_down(x)
        if channels > 1:
            self.mixed_down_blocks += 1
            self.max_channels = max(self.max_channels, channels)
        check_finite(x, offset=self._samples_in)
        if x.size and getattr(samples, "dtype", None) != np.int16:
            peak = float(np.abs(x).max())
            if peak > 1.0:
                self.over_full_scale += int(np.count_nonzero(np.abs(x) > 1.0))
                self.peak = max(self.peak, peak)
        self._samples_in += x.shape[0]
        if sample_rate != self._rate:
            tail = self.flush()
            self._rate = sample_rate
            self._resampler = None
            if sample_rate != self.target_rate:
                soxr = _require_soxr()
                self._resampler = soxr.ResampleStream(
                    sample_rate, self.target_rate, 1, dtype="float32", quality=self.quality)
                self.resampled_from = sample_rate
            if tail.size:
                return np.concatenate([tail, self._resample(x)])
        return self._resample(x)

    def _resample(self, x: np.ndarray) -> np.ndarray:
        if self._resampler is None:
            return np.ascontiguousarray(x, dtype=np.float32)
        if x.size == 0:
            return np.zeros(0, np.float32)
        return np.asarray(self._resampler.resample_chunk(np.ascontiguousarray(x)), np.float32)

    def flush(self) -> np.ndarray:
        """End of input: the resampler's delayed tail (empty when not resampling)."""
        if self._resampler is None:
            return np.zeros(0, np.float32)
        out = np.asarray(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True),
                         np.float32)
        self._resampler = None
        self._rate = None
        return out

    def notes(self) -> list[str]:
        """Human-readable notes about conversions applied (for results and the CLI)."""
        out = []
        if self.mixed_down_blocks:
            out.append(f"mixed {self.max_channels} channels down to mono"
                       f" ({self.mixed_down_blocks} block(s))")
        if self.resampled_from is not None:
            out.append(f"resampled {self.resampled_from} Hz -> {self.target_rate} Hz with soxr")
        if self.over_full_scale:
            out.append(f"{self.over_full_scale} sample(s) beyond full scale [-1, 1] (peak"
                       f" {self.peak:.2f}): float audio should be scaled to [-1, 1] (the model"
                       " heard them as they are; divide by the peak to fix)")
        return out


# ----------------------------------------------------------------------------- WAV files

class WavInfo:
    """Format of a WAV file: ``sample_rate``, ``channels``, ``frames``, ``encoding``.

    ``frames`` counts the whole frames the file really holds; ``declared_frames`` what its
    header claims. They differ for a recording that was cut off (``truncation_note``).
    """

    __slots__ = ("channels", "data_offset", "declared_frames", "encoding", "frames",
                 "sample_rate", "sample_width")

    def __init__(self, sample_rate: int, channels: int, frames: int, encoding: str,
                 sample_width: int, data_offset: int = -1,
                 declared_frames: int | None = None) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self.frames = frames
        self.encoding = encoding  # "pcm16" | "pcm8" | "pcm24" | "pcm32" | "float32" | "float64"
        self.sample_width = sample_width
        self.data_offset = data_offset
        self.declared_frames = frames if declared_frames is None else declared_frames

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0

    @property
    def open_ended(self) -> bool:
        """The header says "until the end of the data" (a pipe writer's; length unknown)."""
        return self.declared_frames * self.sample_width * self.channels >= _UNKNOWN_LENGTH

    def truncation_note(self, name: str | Path) -> str | None:
        """A note when the data ends before the header says it should, else None."""
        if self.frames >= self.declared_frames:
            return None
        declared = self.declared_frames / self.sample_rate
        return (f"{name}: the file ends at {self.seconds:.2f} s but its header declares "
                f"{declared:.2f} s (an interrupted recording?); decoded the {self.frames} whole "
                "frames present")

    def __repr__(self) -> str:
        return (f"WavInfo({self.sample_rate} Hz, {self.channels} ch, {self.frames} frames,"
                f" {self.encoding})")


_SOUNDFILE_HINT = ("convert it to 16-bit PCM or float WAV (e.g. `sox in.x -b 16 out.wav`), or"
                   " read it with soundfile (`pip install soundfile`) and pass the array to"
                   " Engine.process_array")
_DTYPES = {"pcm16": np.dtype("<i2"), "float32": np.dtype("<f4"), "float64": np.dtype("<f8")}
#: other integer PCM widths, delivered as float32 in [-1, 1): unsigned 8-bit (arecord's
#: default), 24-bit (recorders), 32-bit (sox's own format)
_WIDE_PCM = {"pcm8": 1, "pcm24": 3, "pcm32": 4}
_UNKNOWN_LENGTH = 0x7FFFF000  # data sizes from here up mean "to the end of the file"



def _bytes_left(f: BinaryIO) -> int | None:
    """Bytes from the current position to the end of ``f`` (None if it cannot seek)."""
    try:
        here = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(here)
    except (OSError, ValueError):
        return None
    return max(0, end - here)


def _skip(f: BinaryIO, n: int) -> None:
    try:
        f.seek(n, io.SEEK_CUR)
    except (OSError, ValueError):  # a pipe: read past it
        while n > 0:
            got = len(f.read(min(n, 1 << 16)))
            if not got:
                return
            n -= got


def _riff_info(f: BinaryIO, name: str) -> WavInfo:
    """Parse a RIFF/WAVE header from the current position of ``f`` up to the data chunk
    (16-bit PCM and 32/64-bit float, plain or WAVE_FORMAT_EXTENSIBLE); ``f`` is left at the
    first data byte."""
    head = f.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
        raise AudioInputError(f"{name}: not a WAV file (no RIFF/WAVE header); {_SOUNDFILE_HINT}")
    if head[:4] == b"RIFX":
        raise AudioInputError(f"{name}: big-endian (RIFX) WAV is not supported; "
                              f"{_SOUNDFILE_HINT}")
    fmt = None
    pos = 12
    while True:
        hdr = f.read(8)
        if len(hdr) < 8:
            what = "its fmt chunk" if fmt is None else "a data chunk"
            raise AudioInputError(f"{name}: WAV file ends at byte {pos} without {what} "
                                  "(cut off while it was written?)")
        cid, size = hdr[:4], struct.unpack("<I", hdr[4:])[0]
        pos += 8
        if cid == b"fmt ":
            body = f.read(size + (size & 1))
            if len(body) < min(size, 16):
                raise AudioInputError(f"{name}: WAV file ends inside its fmt chunk, at byte "
                                      f"{pos + len(body)} (cut off while it was written?)")
            pos += size + (size & 1)
            if size < 16:
                raise AudioInputError(f"{name}: WAV fmt chunk is {size} bytes, shorter than the"
                                      f" 16 a format needs; {_SOUNDFILE_HINT}")
            tag, ch, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: subformat GUID
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = (tag, ch, rate, bits)
        elif cid == b"data":
            if fmt is None:
                raise AudioInputError(f"{name}: WAV data chunk before its fmt chunk")
            tag, ch, rate, bits = fmt
            if tag == 1 and bits not in (8, 16, 24, 32):
                raise AudioInputError(
                    f"{name}: {bits}-bit PCM WAV is not supported (8, 16, 24 and 32-bit PCM"
                    f" and float are); {_SOUNDFILE_HINT}")
            if not (tag == 1 or (tag == 3 and bits in (32, 64))):
                raise AudioInputError(
                    f"{name}: WAV encoding (format tag {tag}, {bits} bits) is not supported;"
                    f" 16-bit PCM and 32/64-bit float are; {_SOUNDFILE_HINT}")
            if ch < 1 or rate < 1:
                raise AudioInputError(f"{name}: WAV header has {ch} channels at {rate} Hz")
            width = bits // 8
            declared = size // (width * ch)
            frames = declared
            left = _bytes_left(f)
            if left is not None and size >= _UNKNOWN_LENGTH:  # a pipe writer's "until EOF"
                frames = declared = left // (width * ch)
            elif left is not None and left < size:  # cut off
                frames = left // (width * ch)
            encoding = f"pcm{bits}" if tag == 1 else f"float{bits}"
            return WavInfo(rate, ch, frames, encoding, width, pos, declared_frames=declared)
        else:
            _skip(f, size + (size & 1))
            pos += size + (size & 1)


def _open(path: str | Path | BinaryIO) -> tuple[BinaryIO, str, bool]:
    if hasattr(path, "read"):
        return path, getattr(path, "name", "<stream>"), False  # type: ignore[return-value]
    p = Path(path)
    if p.is_dir():
        raise AudioInputError(f"{p} is a folder, not a WAV file")
    if not p.exists():
        raise AudioInputError(f"audio file not found: {p}")
    try:  # a regular file, or a FIFO / /dev/stdin that a pipe writer feeds
        return open(p, "rb"), str(p), True
    except OSError as exc:
        raise AudioInputError(f"{p}: cannot read it ({exc.strerror or exc})") from exc


def wav_info(path: str | Path) -> WavInfo:
    """Format of the WAV file at ``path`` (raises AudioInputError for unsupported files)."""
    f, name, owned = _open(path)
    try:
        return _riff_info(f, name)
    finally:
        if owned:
            f.close()


def iter_wav_blocks(path: str | Path | BinaryIO, block_frames: int = 4096
                    ) -> Iterator[tuple[WavInfo, np.ndarray]]:
    """Yield ``(info, block)`` with blocks of at most ``block_frames`` frames.

    A block is int16 ``(frames,)`` / ``(frames, channels)`` for 16-bit PCM, float32 in [-1, 1)
    for 8, 24 and 32-bit PCM, float32/float64 for float files: pass it to
    :meth:`AudioConverter.convert` with ``info.sample_rate``. An empty file yields nothing
    (check ``wav_info(path).frames``); a file cut off mid-frame yields its whole frames
    (``info.truncation_note``).
    """
    if block_frames < 1:
        raise ValueError(f"block_frames = {block_frames} must be >= 1")
    f, name, owned = _open(path)
    try:
        info = _riff_info(f, name)  # leaves f at the first data byte (pipes included)
        yield from wav_data_blocks(f, info, name, block_frames)
    finally:
        if owned:
            f.close()


def read_wav_header(f: BinaryIO, name: str = "<stream>") -> WavInfo:
    """Parse a WAV header from an open binary stream (a pipe included), leaving ``f`` at the
    first sample: then :func:`wav_data_blocks` reads the samples."""
    return _riff_info(f, name)


def _decode(raw: bytes, encoding: str) -> np.ndarray:
    if encoding in _WIDE_PCM:
        if encoding == "pcm8":  # unsigned, 128 = silence
            return (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
        if encoding == "pcm24":
            b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
            v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
            v = np.where(v >= 1 << 23, v - (1 << 24), v)
            return (v / float(1 << 23)).astype(np.float32)
        return (np.frombuffer(raw, "<i4") / float(1 << 31)).astype(np.float32)
    dtype = _DTYPES[encoding]
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))


def wav_data_blocks(f: BinaryIO, info: WavInfo, name: str = "<stream>",
                    block_frames: int = 4096) -> Iterator[tuple[WavInfo, np.ndarray]]:
    """The sample blocks of :func:`iter_wav_blocks` from a stream whose header
    :func:`read_wav_header` has read."""
    if block_frames < 1:
        raise ValueError(f"block_frames = {block_frames} must be >= 1")
    frame_bytes = info.sample_width * info.channels
    left = info.frames
    while left > 0:
        raw = f.read(min(block_frames, left) * frame_bytes)  # short only at the end
        whole = len(raw) // frame_bytes
        if whole == 0:
            break
        x = _decode(raw[: whole * frame_bytes], info.encoding)
        if info.encoding.startswith("float") and not np.isfinite(x).all():
            bad = int(np.flatnonzero(~np.isfinite(x))[0]) // info.channels
            frame = info.frames - left + bad
            raise AudioInputError(
                f"{name}: frame {frame} ({frame / info.sample_rate:.3f} s) is "
                f"{x[bad * info.channels:(bad + 1) * info.channels].tolist()} (not finite); "
                "the file is damaged: re-export it, or read it with soundfile, clean it "
                "(np.nan_to_num) and pass the array to Engine.process_array")
        left -= whole
        yield info, (x if info.channels == 1 else x.reshape(-1, info.channels))


def read_wav(path: str | Path) -> tuple[int, np.ndarray]:
    """Read a whole WAV file: ``(sample_rate, samples)`` with samples int16 or float as stored,
    shape ``(frames,)`` for mono and ``(frames, channels)`` otherwise (possibly 0 frames)."""
    info = wav_info(path)
    blocks = [b for _, b in iter_wav_blocks(path, 1 << 16)]
    if not blocks:
        shape = (0,) if info.channels == 1 else (0, info.channels)
        dtype = np.int16 if info.encoding == "pcm16" else np.float32
        return info.sample_rate, np.zeros(shape, dtype)
    return info.sample_rate, np.concatenate(blocks)


def write_wav(path: str | Path, sample_rate: int, samples: np.ndarray) -> Path:
    """Write 16-bit PCM WAV (float input in [-1, 1] is clipped and scaled). For tests/tools."""
    x = np.asarray(samples)
    if x.dtype != np.int16:
        x = np.clip(np.asarray(x, np.float64) * 32768.0, -32768, 32767).astype(np.int16)
    channels = 1 if x.ndim == 1 else x.shape[1]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(x.astype("<i2").tobytes())
    return Path(path)
