"""Live capture: a PortAudio callback that only copies into a native ring, and the capture
thread that turns device audio into the model's 16 kHz mono.

::

    PortAudio callback (audio thread)       device rate and channels, float32 or int16
       |  float32: PortAudio's buffer is pushed as it is (no copy in Python); int16: one
       |  casting copy into a buffer allocated once; 3, 5, 6, 7 channels: mixed down there
    [capture ring]  native SPSC RingBuffer of float32 at the device rate (interleaved frames);
       |            full: drops the oldest samples (whole frames), counted
    capture thread (the loop's source thread)  pops everything every poll (5 ms), fills a
       |  dropped stretch with silence (stream time stays wall time), mixes down, scales,
       |  resamples with soxr.ResampleStream when the device rate is not 16 kHz
    [decoding ring]  Stream.push: the loop's perceive thread takes it from there

Why the conversions happen in the capture thread and not in the callback: the callback holds
the GIL and delays the next block, so it does the least possible (one ring push, measured at
~1-2 µs from Python); ``ResampleStream`` returns a new array per call (an allocation on the
audio thread) and costs tens of microseconds at 48 kHz, and even a stereo mix-down costs
more numpy calls than the push itself (``benchmarks/bench_mic.py``). Channel counts that are
not a power of two are mixed down in the callback (strided in-place adds into a preallocated
buffer), because a power-of-two ring can only drop whole frames of a power-of-two channel
count. The cost of the extra hop (one poll interval at most, plus the resampler) is measured
and reported as ``hop_ms``.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..audio import AudioConverter
from ..errors import DeviceError
from ..ring import RingBuffer
from ..timing import percentiles
from .devices import OpenSettings, open_settings, require_sounddevice, select_device

__all__ = ["CapturePipe", "CaptureStats", "MicSource"]

log = logging.getLogger("aim_edge.capture")

_F32 = np.dtype(np.float32)
_COST_SLOTS = 8192  # last callbacks whose cost is kept (power of two)
_STAMP_SLOTS = 1024  # last callbacks whose (frames, time) is kept for capture timestamps


def _pow2_at_least(n: int) -> int:
    return 1 << max(1, int(n - 1).bit_length())


@dataclasses.dataclass
class CaptureStats:
    """Counters of one capture session (all read-only snapshots).

    Attributes
    ----------
    callbacks : int
        PortAudio callbacks received.
    frames : int
        Device frames received (at ``sample_rate``).
    input_overflows : int
        Callbacks whose status had PortAudio's ``input_overflow`` flag: the driver lost audio
        before it reached us (amount unknown).
    input_underflows : int
        Callbacks with ``input_underflow`` (the driver padded the block).
    dropped_samples : int
        Device frames (samples per channel) the capture ring dropped, oldest first, because
        the capture thread fell behind; each stretch is replaced by silence so stream time
        stays right.
    overflow_events : int
        Pushes into the capture ring that had to drop.
    nonfinite_samples : int
        NaN/inf samples from the device, replaced by 0.
    silence_samples : int
        Model-rate samples of silence inserted for dropped stretches.
    callback_us : dict
        Time from callback entry until the block is in the ring, in µs: p50/p95/p99/max/n
        over the last 8192 callbacks.
    hop_ms : dict
        Time from a block's callback to its samples entering the decoding ring, in ms
        (capture thread poll + resampling).
    max_gap_ms : float
        Longest time between two callbacks.
    """

    callbacks: int = 0
    frames: int = 0
    input_overflows: int = 0
    input_underflows: int = 0
    dropped_samples: int = 0
    overflow_events: int = 0
    nonfinite_samples: int = 0
    silence_samples: int = 0
    callback_us: dict[str, float] = dataclasses.field(default_factory=dict)
    hop_ms: dict[str, float] = dataclasses.field(default_factory=dict)
    max_gap_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        def clean(p: dict[str, float]) -> dict[str, float | None]:
            return {k: (round(float(v), 3) if np.isfinite(v) else None) for k, v in p.items()}

        d = dataclasses.asdict(self)
        d["callback_us"] = clean(self.callback_us)
        d["hop_ms"] = clean(self.hop_ms)
        d["max_gap_ms"] = round(self.max_gap_ms, 3)
        return d


class CapturePipe:
    """The capture ring between a PortAudio callback and the capture thread.

    :meth:`callback` is the audio-thread side (give it to ``sounddevice.RawInputStream``);
    :meth:`drain` is the capture-thread side. Independent of PortAudio, so it can be driven by
    hand in tests and benchmarks.

    What the callback does, cheapest first:

    * float32, 1, 2, 4 or 8 channels: push PortAudio's buffer as it is (no copy in Python;
      the ring holds interleaved frames, and a power-of-two ring only ever drops whole
      frames of a power-of-two channel count);
    * int16, same channel counts: one casting copy into a preallocated float32 buffer, push;
    * any other channel count (3, 6, ... -- mic arrays): mix down into a preallocated mono
      buffer first (strided in-place adds), so a drop cannot split a frame.

    Scaling (1/32768 for int16, 1/channels for the mix) and the interleaved mix-down happen in
    :meth:`drain`, where allocating is fine.

    Parameters
    ----------
    sample_rate : int
        Device rate in Hz.
    channels : int
        Interleaved channels per frame in the callback's buffer.
    dtype : str
        ``"float32"`` or ``"int16"`` (int16 is scaled by 1/32768).
    model_rate : int
        Rate of the samples :meth:`drain` hands on (the bundle's, 16 kHz).
    ring_s : float
        Capture ring capacity in seconds (rounded up to a power of two of samples).
    max_frames : int
        Largest callback expected; bigger ones still work (the buffers grow once).
    """

    def __init__(self, sample_rate: int, channels: int = 1, dtype: str = "float32", *,
                 model_rate: int = 16000, ring_s: float = 2.0, max_frames: int = 8192) -> None:
        if dtype not in ("float32", "int16"):
            raise DeviceError(f"dtype {dtype!r}: expected 'float32' or 'int16'")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise DeviceError(f"channels = {channels!r}: expected an int >= 1")
        self.sample_rate = int(sample_rate)
        self.channels = channels
        self.dtype = dtype
        self.model_rate = int(model_rate)
        # interleaved frames in the ring when the channel count divides every power of two
        self.interleaved = channels & (channels - 1) == 0 and channels <= 8
        self.ring_channels = channels if self.interleaved else 1
        self.ring = RingBuffer(_pow2_at_least(int(ring_s * sample_rate) * self.ring_channels))
        self._np_dtype = _F32 if dtype == "float32" else np.dtype(np.int16)
        self._direct = dtype == "float32" and self.interleaved  # push PortAudio's buffer
        scale = 1.0 if dtype == "float32" else 1.0 / 32768.0
        self._scale = np.float32(scale / channels)
        n = max_frames * (channels if self.interleaved else 1)
        self._buf = np.zeros(0 if self._direct else n, np.float32)
        self._cost_ns = np.zeros(_COST_SLOTS, np.int64)
        self._stamp_frames = np.zeros(_STAMP_SLOTS, np.int64)
        self._stamp_ns = np.zeros(_STAMP_SLOTS, np.int64)
        self.callbacks = 0
        self.frames = 0
        self.input_overflows = 0
        self.input_underflows = 0
        self.last_callback_ns = 0
        self.max_gap_ns = 0
        self.error: BaseException | None = None
        # capture-thread side
        self._converter = AudioConverter(self.model_rate)
        self._carry = np.zeros(0, np.float32)  # a partial frame left by a pop (interleaved)
        self._taken = 0  # device frames accounted for (popped + dropped)
        self._dropped_seen = 0  # ring samples
        self.nonfinite_samples = 0
        self.silence_samples = 0
        self._hop_ms: list[float] = []

    # ------------------------------------------------------------------ audio thread
    def callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio callback: count the status flags, copy the block into the ring.

        Never raises: a failure is stored in :attr:`error` (the capture thread reports it)
        and ``sounddevice.CallbackAbort`` stops the stream.
        """
        t0 = time.perf_counter_ns()
        try:
            if status:
                if status.input_overflow:
                    self.input_overflows += 1
                if status.input_underflow:
                    self.input_underflows += 1
            x = np.frombuffer(indata, self._np_dtype)
            if self._direct:
                self.ring.push(x)
            else:
                ch = self.channels
                n = x.size if self.interleaved else frames
                if n > self._buf.shape[0]:  # a host that ignores the block size: once
                    self._buf = np.zeros(n, np.float32)
                out = self._buf[:n]
                if self.interleaved:
                    out[:] = x  # int16 -> float32: a plain casting copy is the fast one
                else:  # odd channel counts: strided in-place adds into the mono buffer
                    out[:] = x[0::ch]
                    for c in range(1, ch):
                        np.add(out, x[c::ch], out=out)
                self.ring.push(out)
            k = self.callbacks
            self.frames += frames
            slot = k & (_STAMP_SLOTS - 1)
            self._stamp_frames[slot] = self.frames
            self._stamp_ns[slot] = t0
            if self.last_callback_ns:
                gap = t0 - self.last_callback_ns
                if gap > self.max_gap_ns:
                    self.max_gap_ns = gap
            self.last_callback_ns = t0
            self._cost_ns[k & (_COST_SLOTS - 1)] = time.perf_counter_ns() - t0
            self.callbacks = k + 1
        except BaseException as exc:  # noqa: BLE001 - the audio thread must not raise
            self.error = exc
            sd = _sounddevice_or_none()
            if sd is not None:
                raise sd.CallbackAbort from None

    # ------------------------------------------------------------------ capture thread
    def _capture_ns(self, end: int) -> int:
        """perf_counter_ns of the callback that delivered device frame ``end`` (exclusive)."""
        n = self.callbacks
        for k in range(n - 1, max(n - _STAMP_SLOTS, 0) - 1, -1):
            slot = k & (_STAMP_SLOTS - 1)
            f = int(self._stamp_frames[slot])
            if f == end:
                return int(self._stamp_ns[slot])
            if f < end:
                break
        return 0

    def _mono(self, block: np.ndarray) -> np.ndarray:
        """Ring samples -> float32 mono in [-1, 1] (mix-down of interleaved frames, scaling)."""
        ch = self.ring_channels
        if ch > 1:
            if self._carry.size:
                block = np.concatenate([self._carry, block])
            whole = block.size - block.size % ch
            self._carry = block[whole:].copy()
            frames = block[:whole]
            mono = frames[0::ch] + frames[1::ch]  # strided adds: ~20x faster than a
            for c in range(2, ch):                # .sum(axis=1) over the short channel axis
                mono += frames[c::ch]
            block = mono
        if self._scale != 1:
            block = block * self._scale
        return block

    def drain(self, push: Callable[[np.ndarray, int | None], Any], *,
              last: bool = False) -> int:
        """Move everything in the ring to ``push(samples, capture_ns)`` at the model rate.

        A stretch the ring dropped since the last call is replaced by silence first (same
        duration). ``last`` flushes the resampler's tail. Returns model-rate samples pushed.
        """
        dropped = self.ring.stats().dropped_samples
        block = self.ring.pop(self.ring.capacity)
        out = 0
        gap = (dropped - self._dropped_seen) // self.ring_channels
        if gap > 0:
            self._dropped_seen += gap * self.ring_channels
            self._taken += gap
            silence = self._converter.convert(self.sample_rate, np.zeros(gap, np.float32))
            self.silence_samples += silence.size
            if silence.size:
                push(silence, None)
                out += silence.size
        if block.size:
            mono = self._mono(block)
            self._taken += mono.size
            finite = np.isfinite(mono)
            if not finite.all():
                self.nonfinite_samples += int(mono.size - np.count_nonzero(finite))
                mono = np.where(finite, mono, np.float32(0.0))
            if self.sample_rate == self.model_rate:  # nothing to convert
                y = np.ascontiguousarray(mono, np.float32)
            else:
                y = self._converter.convert(self.sample_rate, mono)
            cap = self._capture_ns(self._taken)
            if y.size:
                push(y, cap or None)
                out += y.size
                if cap:
                    self._hop_ms.append((time.perf_counter_ns() - cap) / 1e6)
                    if len(self._hop_ms) > 4 * _COST_SLOTS:
                        del self._hop_ms[:_COST_SLOTS]
        if last:
            tail = self._converter.flush()
            if tail.size:
                push(tail, None)
                out += tail.size
        return out

    def stats(self) -> CaptureStats:
        n = self.callbacks
        costs = self._cost_ns[:min(n, _COST_SLOTS)] / 1000.0
        rs = self.ring.stats()
        return CaptureStats(
            callbacks=n, frames=self.frames, input_overflows=self.input_overflows,
            input_underflows=self.input_underflows,
            dropped_samples=rs.dropped_samples // self.ring_channels,
            overflow_events=rs.overflow_events, nonfinite_samples=self.nonfinite_samples,
            silence_samples=self.silence_samples, callback_us=percentiles(costs),
            hop_ms=percentiles(self._hop_ms[-_COST_SLOTS:]), max_gap_ms=self.max_gap_ns / 1e6)


def _sounddevice_or_none() -> Any:
    try:
        return require_sounddevice()
    except ImportError:
        return None


# Streams whose close never returned (a dead JACK server leaves PortAudio waiting ~10 min).
_WEDGED: list[Any] = []


def _close_stream(stream: Any, timeout: float) -> bool:
    """Abort and close ``stream`` on a helper thread; False when it did not return in time.

    A wedged stream is left to the operating system: sounddevice's exit handler (which would
    wait on it again) is unregistered, so the process can still exit.
    """
    done = threading.Event()

    def work() -> None:
        try:
            stream.abort(ignore_errors=True)
            stream.close(ignore_errors=True)
        except Exception:  # noqa: BLE001 - closing a broken stream: nothing left to save
            pass
        finally:
            done.set()

    threading.Thread(target=work, name="aim-edge-close-audio", daemon=True).start()
    if done.wait(timeout):
        return True
    _WEDGED.append(stream)
    sd = _sounddevice_or_none()
    if sd is not None:
        atexit.unregister(sd._exit_handler)
    return False


class MicSource:
    """A microphone (any PortAudio input device) as a :class:`~aim_edge.loop.Source`.

    The device is chosen and its settings checked when the object is made (so a bad
    ``--device`` fails before the model loads); the stream opens in :meth:`run`, on the
    loop's source thread, which is also the capture thread (see the module docstring).

    Parameters
    ----------
    device : int, str or None
        Index, part of the name, or None for the default input (see
        :func:`~aim_edge.capture.select_device`).
    host_api : str or None
        Part of a host API name (``"jack"``, ``"alsa"``) to choose among.
    sample_rate, channels : int or None
        Force a device rate / channel count; None tries the model rate, the device default and
        :data:`~aim_edge.capture.SUPPORTED_RATES` (and 1, 2, all channels).
    dtype : ``"float32"`` (default) or ``"int16"``: the format asked of PortAudio.
    model_rate : int
        The decoding rate (the bundle's; 16 kHz).
    blocksize : int
        Frames per callback; 0 (default) lets the host choose (lowest latency, JACK's period).
    latency : ``"low"``, ``"high"`` or seconds (PortAudio's suggested input latency).
    ring_s : float
        Capture ring length in seconds.
    poll_s : float
        Capture thread poll interval (the most it adds to latency).
    duration_s : float or None
        Stop after this many seconds of device audio (None: until stopped).
    stall_timeout_s : float
        A running stream without a callback for this long counts as a lost device.
    close_timeout_s : float
        Longest wait for PortAudio to close the stream; a server that died can leave it
        waiting for minutes (JACK), then the stream is abandoned to the OS.
    on_device_lost : ``"raise"`` (default: :class:`DeviceError` from :meth:`run`) or ``"end"``
        (end the input normally and keep the error in :attr:`error`, so what was captured is
        still decoded; the CLI does this and raises after its summary).
    on_warning : callable(str) or None
        Receives live warnings (drops, overflows); default: the ``aim_edge.capture`` logger.
    """

    name = "microphone"

    def __init__(self, device: int | str | None = None, *, host_api: str | None = None,
                 sample_rate: int | None = None, channels: int | None = None,
                 dtype: str = "float32", model_rate: int = 16000, blocksize: int = 0,
                 latency: str | float = "low", ring_s: float = 2.0, poll_s: float = 0.005,
                 duration_s: float | None = None, stall_timeout_s: float = 2.0,
                 on_device_lost: str = "raise", close_timeout_s: float = 1.0,
                 on_warning: Callable[[str], None] | None = None,
                 settings: OpenSettings | None = None) -> None:
        if on_device_lost not in ("raise", "end"):
            raise DeviceError(f"on_device_lost = {on_device_lost!r}: expected 'raise' or 'end'")
        if duration_s is not None and not duration_s > 0:
            raise DeviceError(f"duration = {duration_s!r} s: expected a number of seconds > 0")
        if isinstance(blocksize, bool) or not isinstance(blocksize, int) or blocksize < 0:
            raise DeviceError(f"blocksize = {blocksize!r}: expected frames >= 0 (0 = host's)")
        if not isinstance(latency, str) and not (isinstance(latency, (int, float))
                                                 and latency > 0):
            raise DeviceError(f"latency = {latency!r}: expected 'low', 'high' or seconds > 0")
        if isinstance(latency, str) and latency not in ("low", "high"):
            raise DeviceError(f"latency = {latency!r}: expected 'low', 'high' or seconds > 0")
        if settings is None:
            from .devices import host_api_names, list_input_devices

            devices = list_input_devices()
            chosen = select_device(devices, device, host_api,
                                   () if devices else host_api_names())
            settings = open_settings(chosen, sample_rate=sample_rate, channels=channels,
                                     dtype=dtype, model_rate=model_rate, devices=devices)
        self.settings = settings
        self.model_rate = int(model_rate)
        self.blocksize = blocksize
        self.latency = latency
        self.ring_s = float(ring_s)
        self.poll_s = float(poll_s)
        self.duration_s = duration_s
        self.stall_timeout_s = float(stall_timeout_s)
        self.on_device_lost = on_device_lost
        self.close_timeout_s = float(close_timeout_s)
        self.on_warning = on_warning or log.warning
        self.error: DeviceError | None = None
        self.notes: list[str] = []
        self.pipe: CapturePipe | None = None
        self.started_at = 0.0
        self._stop = threading.Event()
        self._stopped_by_us = False
        self._warned: tuple[int, int, int] = (0, 0, 0)
        self.decode_dropped = 0  # model-rate samples the decoding ring dropped (Stream.push)
        self._last_warn = 0.0

    # ------------------------------------------------------------------ control
    def stop(self) -> None:
        """End the capture gracefully: the input ends and what was captured is decoded."""
        self._stop.set()

    def stats(self) -> CaptureStats:
        """Live counters (zeros before :meth:`run` started)."""
        return self.pipe.stats() if self.pipe is not None else CaptureStats()

    def describe(self) -> str:
        s = self.settings
        conv = ("" if s.sample_rate == self.model_rate else
                f" -> {self.model_rate} Hz (soxr in the capture thread)")
        mix = " mixed to mono in the callback" if s.channels > 1 else ""
        return f"{s.describe()}{mix}{conv}"

    # ------------------------------------------------------------------ Source protocol
    def run(self, sink: Any) -> None:
        """Capture until stopped, ``duration_s`` or a device failure (see ``on_device_lost``)."""
        sd = require_sounddevice()
        s = self.settings
        pipe = CapturePipe(s.sample_rate, s.channels, s.dtype, model_rate=sink.sample_rate,
                           ring_s=self.ring_s,
                           max_frames=max(self.blocksize, int(s.sample_rate * 0.2), 1024))
        self.pipe = pipe
        limit = (int(round(self.duration_s * s.sample_rate)) if self.duration_s is not None
                 else None)

        def finished() -> None:  # PortAudio: the stream stopped (by us, or by itself)
            self._finished_at = time.perf_counter()

        self._finished_at = 0.0
        try:
            stream = sd.RawInputStream(
                samplerate=s.sample_rate, blocksize=self.blocksize, device=s.device.index,
                channels=s.channels, dtype=s.dtype, latency=self.latency,
                callback=pipe.callback, finished_callback=finished)
        except Exception as exc:  # PortAudioError / ValueError from the driver
            raise DeviceError(f"could not open {s.describe()}: {exc}; check that no other"
                              " program holds it exclusively, or pick another with --device"
                              " (`aim-edge devices`)") from exc
        def push(samples: np.ndarray, capture_ns: int | None) -> Any:
            dropped = sink.push(samples, capture_ns)
            if dropped:
                self.decode_dropped += int(dropped)
            return dropped

        ok = clean = False
        lost: str | None = None
        try:
            stream.start()
            self.started_at = time.perf_counter()
            while True:
                if self._stop.is_set() or sink.stop.is_set():
                    break
                pushed_frames = pipe.frames
                pipe.drain(push)
                self._maybe_warn(pipe)
                if pipe.error is not None:
                    lost = f"the audio callback failed: {pipe.error!r}"
                    break
                if limit is not None and pushed_frames >= limit:
                    break
                lost = self._check_alive(stream, pipe)
                if lost:
                    break
                sink.stop.wait(self.poll_s)
            clean = True
        finally:
            ok = _close_stream(stream, timeout=self.close_timeout_s)
            if clean and not sink.stop.is_set():  # the loop is not aborting: hand on the rest
                pipe.drain(push, last=True)
            self._finish_notes(pipe, ok)
        if lost is not None:
            # PortAudio's state is unknown now (a dead JACK server makes Pa_Terminate assert):
            # leave it to the OS at exit instead of terminating it
            atexit.unregister(sd._exit_handler)
            err = DeviceError(
                f"{s.device.describe()} {lost} after {pipe.frames / s.sample_rate:.2f} s of"
                " audio: it was unplugged, or its driver or audio server stopped. What was"
                " captured until then was decoded; run `aim-edge devices` to see what is"
                " there now and start again." + ("" if ok else " (PortAudio did not release"
                                                  " the stream; it is left to the OS)"))
            self.error = err
            if self.on_device_lost == "raise":
                raise err

    def _check_alive(self, stream: Any, pipe: CapturePipe) -> str | None:
        now = time.perf_counter()
        if not stream.active and not self._stop.is_set():
            return "stopped delivering audio (the stream ended by itself)"
        last = pipe.last_callback_ns / 1e9 if pipe.last_callback_ns else self.started_at
        if now - last > self.stall_timeout_s:
            return (f"stopped delivering audio (no callback for {now - last:.1f} s,"
                    f" limit {self.stall_timeout_s:g} s)")
        return None

    def _maybe_warn(self, pipe: CapturePipe) -> None:
        seen = (pipe.input_overflows, pipe.ring.stats().dropped_samples // pipe.ring_channels,
                self.decode_dropped)
        if seen == self._warned:
            return
        now = time.perf_counter()
        if now - self._last_warn < 1.0:
            return
        self._warned, self._last_warn = seen, now
        parts = []
        if seen[1]:
            parts.append(f"{seen[1]} samples ({seen[1] / pipe.sample_rate:.2f} s) dropped at"
                         " the capture ring (the capture thread stalled; filled with silence)")
        if seen[0]:
            parts.append(f"{seen[0]} PortAudio input overflow(s) (the driver lost audio"
                         " before the callback; try --latency high or a bigger --blocksize)")
        if seen[2]:
            parts.append(f"{seen[2]} samples ({seen[2] / self.model_rate:.2f} s) dropped at the"
                         " decoding ring (decoding fell behind real time: a slower model or a"
                         " busy CPU; the summary's per-stage latencies show where)")
        self.on_warning("microphone so far: " + "; ".join(parts))

    def _finish_notes(self, pipe: CapturePipe, closed: bool) -> None:
        st = pipe.stats()
        s = self.settings
        notes = [f"microphone {s.device.describe()}: {s.sample_rate} Hz x {s.channels} ch"
                 f" {s.dtype}, {st.callbacks} callbacks, {st.frames / s.sample_rate:.2f} s"]
        if st.input_overflows or st.input_underflows:
            notes.append(f"microphone: {st.input_overflows} PortAudio input overflow(s),"
                         f" {st.input_underflows} underflow(s)")
        if st.dropped_samples:
            notes.append(f"microphone: {st.dropped_samples} samples"
                         f" ({st.dropped_samples / s.sample_rate:.2f} s) dropped at the capture"
                         f" ring in {st.overflow_events} overflow event(s), filled with silence")
        if st.nonfinite_samples:
            notes.append(f"microphone: {st.nonfinite_samples} NaN/inf samples replaced by 0")
        notes.extend(pipe._converter.notes())
        if not closed:
            notes.append(f"microphone: PortAudio did not close the stream within"
                         f" {self.close_timeout_s:g} s (left to the OS)")
        self.notes = notes
