"""The real-time perceive-decide-respond loop: four threads around one :class:`Stream`.

::

    source thread   reads / captures audio, converts it (mix-down, soxr) and only *pushes*
       |            into the native ring (Stream.push)
    [native ring]   SPSC, drops the oldest audio when full: counted, reported
       |
    perceive        ring -> native fbank -> 16-frame chunks            (Stream.next_chunk)
       |  bounded queue (decide_queue chunks): when decide falls behind, perceive blocks,
       |  stops draining the ring, and the ring drops audio -- never silently
    decide          model step + decision policy                       (Stream.decide)
       |  bounded queue
    respond         latency stamps, responders (console, JSON lines, callback, speech)

Every stage stamps :func:`time.perf_counter_ns` into the chunk's
:class:`~aim_edge.timing.ChunkTiming`; completed records land in ``loop.stream.timings``.

Errors: an exception in any thread (source, stage, responder) stops the loop and is re-raised
by :meth:`Loop.join` / :meth:`Loop.run` in the caller's thread, with the thread named in a note.
Shutdown: :meth:`Loop.stop` (or leaving the ``with`` block, or Ctrl-C during :meth:`run`)
stops every thread within ~0.1 s; no thread outlives :meth:`Loop.close`.

File sources run as fast as possible without loss (the source waits for room in the ring) or,
with ``realtime=True``, paced at 1x like a microphone (then a slow consumer causes drops).
"""

from __future__ import annotations

import dataclasses
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Protocol, runtime_checkable

import numpy as np

from .audio import AudioConverter, iter_wav_blocks, read_wav_header, wav_data_blocks, wav_info
from .config import _Config, _is_int, _is_real
from .engine import Engine, Stream
from .respond import Responder
from .timing import percentiles

__all__ = ["ArraySource", "Loop", "LoopConfig", "Source", "SourceSink", "WavSource"]

_END = object()


@dataclasses.dataclass(frozen=True)
class LoopConfig(_Config):
    """Options of :class:`Loop`.

    Parameters
    ----------
    realtime : bool
        Pace block sources at 1x real time (like a microphone) instead of as fast as possible.
    lossless : bool or None
        The source waits for room in the ring instead of letting it drop audio. None: lossless
        unless ``realtime``.
    block_ms : float
        Size of the blocks a block source pushes, in milliseconds (default 20 ms).
    decide_queue : int
        Chunks waiting for the decide stage before perceive blocks (default 8 = 1.28 s).
    respond_queue : int
        Chunks of events waiting for the respond stage.
    poll_s : float
        Longest wait of the perceive stage for new audio when the producer does not signal.
    stats_every_s : float
        Emit a ``stats`` event every this many stream seconds (0: only the final one).
    """

    _name: ClassVar[str] = "loop"

    realtime: bool = False
    lossless: bool | None = None
    block_ms: float = 20.0
    decide_queue: int = 8
    respond_queue: int = 64
    poll_s: float = 0.005
    stats_every_s: float = 0.0

    def validate(self) -> None:
        if not isinstance(self.realtime, bool):
            self._fail("realtime", self.realtime, "True or False")
        if self.lossless is not None and not isinstance(self.lossless, bool):
            self._fail("lossless", self.lossless, "True, False or None")
        if not _is_real(self.block_ms) or not 1.0 <= self.block_ms <= 1000.0:
            self._fail("block_ms", self.block_ms, "a number of milliseconds in [1, 1000]")
        for name in ("decide_queue", "respond_queue"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                self._fail(name, v, "an int >= 1")
        if not _is_real(self.poll_s) or not 0 < self.poll_s <= 1.0:
            self._fail("poll_s", self.poll_s, "a number of seconds in (0, 1]")
        if not _is_real(self.stats_every_s) or self.stats_every_s < 0:
            self._fail("stats_every_s", self.stats_every_s, "a number of seconds >= 0")

    @property
    def is_lossless(self) -> bool:
        return (not self.realtime) if self.lossless is None else self.lossless


class SourceSink:
    """What a source may do with the loop: push converted audio and check for room."""

    def __init__(self, stream: Stream, stop: threading.Event, config: LoopConfig) -> None:
        self.stream = stream
        self.stop = stop
        self.config = config
        self.sample_rate = stream.sample_rate

    def push(self, samples: np.ndarray, capture_ns: int | None = None) -> int:
        """Push float32 mono samples at :attr:`sample_rate`; returns samples dropped."""
        return self.stream.push(samples, capture_ns)

    def free(self) -> int:
        """Samples that fit into the ring right now."""
        ring = self.stream.ring
        return ring.capacity - len(ring)

    def wait_for_room(self, n: int) -> bool:
        """Block until ``n`` samples fit (lossless mode); False when the loop is stopping."""
        n = min(n, self.stream.ring.capacity)
        while self.free() < n:
            if self.stop.wait(0.001):
                return False
        return True


@runtime_checkable
class Source(Protocol):
    """An audio source driven by the loop's source thread.

    ``run`` pushes audio through ``sink`` until the input ends (then returns) or
    ``sink.stop`` is set (then returns promptly). A live source (microphone) starts its
    device here and lets its callback call ``sink.push``.
    """

    def run(self, sink: SourceSink) -> None: ...


class _BlockSource:
    """Base for sources that yield blocks: conversion, pacing and lossless waits."""

    name = "blocks"

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:  # (sample_rate, block)
        raise NotImplementedError

    def run(self, sink: SourceSink) -> None:
        conv = AudioConverter(sink.sample_rate)
        realtime, lossless = sink.config.realtime, sink.config.is_lossless
        t0 = time.perf_counter()
        sent = 0
        for rate, block in self.blocks():
            if sink.stop.is_set():
                return
            x = conv.convert(rate, block)
            if realtime:
                delay = t0 + (sent + x.size) / sink.sample_rate - time.perf_counter()
                if delay > 0 and sink.stop.wait(delay):
                    return
            if lossless and not sink.wait_for_room(x.size):
                return
            sink.push(x)
            sent += x.size
        tail = conv.flush()
        if tail.size and (not lossless or sink.wait_for_room(tail.size)):
            sink.push(tail)
        self.notes = [*getattr(self, "notes", []), *conv.notes()]


class ArraySource(_BlockSource):
    """An in-memory array (any accepted dtype/shape) played in blocks of ``block_ms``."""

    name = "array"

    def __init__(self, samples: Any, sample_rate: int = 16000, *,
                 block_ms: float = 20.0) -> None:
        self.samples = samples
        self.sample_rate = int(sample_rate)
        self.block = max(1, int(round(self.sample_rate * block_ms / 1000.0)))
        self.notes: list[str] = []

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        x = self.samples
        for i in range(0, len(x), self.block):
            yield self.sample_rate, x[i:i + self.block]


class WavSource(_BlockSource):
    """A WAV file (8/16/24/32-bit PCM or float; any rate and channel count) in blocks of
    ``block_ms``. ``"-"`` reads a WAV stream from standard input as it arrives, e.g.
    ``arecord -f S16_LE -r 16000 | aim-edge run -`` (a pipe writer's "until the end" header
    included); ``stream`` reads one from any open binary file object instead."""

    name = "wav"

    def __init__(self, path: str | Path, *, block_ms: float = 20.0,
                 stream: BinaryIO | None = None) -> None:
        self.path = Path(path)
        self._stream: BinaryIO | None = stream
        self._owned = False
        if self._stream is None and str(path) == "-":
            self._stream = sys.stdin.buffer
        elif (self._stream is None and self.path.exists() and not self.path.is_dir()
              and not self.path.is_file()):  # a FIFO, /dev/stdin, <(...): readable once
            self._stream = open(self.path, "rb")  # noqa: SIM115 -- closed after blocks()
            self._owned = True
        if self._stream is not None:
            self.info = read_wav_header(self._stream, "<stdin>" if str(path) == "-"
                                        else str(path))
        else:
            self.info = wav_info(self.path)
        self.block = max(1, int(round(self.info.sample_rate * block_ms / 1000.0)))
        cut = None if self._stream is not None else self.info.truncation_note(self.path)
        self.notes: list[str] = [cut] if cut else []

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        if self._stream is not None:
            try:
                for info, block in wav_data_blocks(self._stream, self.info, str(self.path),
                                                   self.block):
                    yield info.sample_rate, block
            finally:
                if self._owned:
                    self._stream.close()
            return
        for info, block in iter_wav_blocks(self.path, self.block):
            yield info.sample_rate, block


class Loop:
    """Run ``source`` through ``engine`` on four threads, delivering events to ``responders``.

    Parameters
    ----------
    engine : the shared :class:`~aim_edge.engine.Engine`.
    source : a :class:`Source` (``WavSource``, ``ArraySource``, a microphone source).
    responders : where events go (:mod:`aim_edge.respond`); callables are wrapped.
    instruction : initial instruction (``source="cli"`` in its event).
    config : :class:`LoopConfig`.
    stream : use this stream instead of creating one.

    Use as a context manager, or call :meth:`run` (start + join, Ctrl-C safe).
    """

    def __init__(self, engine: Engine, source: Source,
                 responders: Sequence[Responder | Callable[[dict[str, Any]], None]] = (), *,
                 instruction: str | None = None, config: LoopConfig | None = None,
                 stream: Stream | None = None) -> None:
        from .respond import CallbackResponder

        self.engine = engine
        self.source = source
        self.config = config or LoopConfig()
        self.config.validate()
        self.responders: list[Responder] = [
            r if hasattr(r, "emit") else CallbackResponder(r)  # type: ignore[arg-type]
            for r in responders]
        self.stream = stream or engine.create_stream()
        if instruction:
            self.stream.set_instruction(instruction, source="cli")
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._error_thread = ""
        self._error_lock = threading.Lock()
        self._decide_q: queue.Queue[Any] = queue.Queue(self.config.decide_queue)
        self._respond_q: queue.Queue[Any] = queue.Queue(self.config.respond_queue)
        self._threads: list[threading.Thread] = []
        self.thread_cpu_s: dict[str, float] = {}
        self._started = self._closed = False
        self._t_start = self._t_end = 0.0
        self._last_stats_t = 0.0
        self.final_stats: dict[str, Any] | None = None
        self.events_emitted = 0

    # ------------------------------------------------------------------ control
    def start(self) -> Loop:
        if self._started:
            raise RuntimeError("a Loop runs once; create a new one")
        self._started = True
        self._t_start = time.perf_counter()
        for name, target in (("respond", self._respond), ("decide", self._decide),
                             ("perceive", self._perceive), ("source", self._source)):
            t = threading.Thread(target=self._guard, args=(name, target),
                                 name=f"aim-edge-{name}", daemon=True)
            self._threads.append(t)
            t.start()
        return self

    def stop(self) -> None:
        """Ask every thread to stop (returns at once; :meth:`join` waits)."""
        self._stop.set()

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def join(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the loop to finish; re-raise the first worker exception; return the
        summary (see :meth:`summary`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            while t.is_alive():  # short joins keep Ctrl-C deliverable to the main thread
                t.join(0.1)
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"loop still running after {timeout} s")
        if not self._t_end:
            self._t_end = time.perf_counter()
        self._raise_if_failed()
        return self.summary()

    def run(self) -> dict[str, Any]:
        """Start, wait, close; Ctrl-C stops the threads cleanly and re-raises."""
        try:
            self.start()
            return self.join()
        except KeyboardInterrupt:
            self.stop()
            self._join_quietly()
            raise
        finally:
            self.close()

    def close(self) -> None:
        """Stop, join every thread, close the responders (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.stop()
        self._join_quietly()
        errors = []
        for r in self.responders:
            try:
                r.close(self.final_stats)
            except Exception as exc:  # a responder failing to close must not hide the rest
                errors.append(exc)
        self.stream.close()
        if errors and self._error is None:
            raise errors[0]

    def _join_quietly(self) -> None:
        for t in self._threads:
            t.join(5.0)
        if not self._t_end:
            self._t_end = time.perf_counter()

    def __enter__(self) -> Loop:
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.stop()
        self.close()
        if exc_type is None:
            self._raise_if_failed()

    # ------------------------------------------------------------------ error handling
    def _guard(self, name: str, target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the caller
            with self._error_lock:
                if self._error is None:
                    self._error, self._error_thread = exc, name
            self._stop.set()
        finally:
            self.thread_cpu_s[name] = time.thread_time()

    def _raise_if_failed(self) -> None:
        err = self._error
        if err is not None:
            if hasattr(err, "add_note") and not getattr(err, "_aim_noted", False):
                err.add_note(f"(raised in the aim-edge {self._error_thread} thread)")
                err._aim_noted = True  # type: ignore[attr-defined]
            raise err

    def _put(self, q: queue.Queue[Any], item: Any) -> bool:
        while True:
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                if self._stop.is_set():
                    return False

    def _get(self, q: queue.Queue[Any]) -> Any:
        while True:
            try:
                return q.get(timeout=0.05)
            except queue.Empty:
                if self._stop.is_set():
                    return _END

    # ------------------------------------------------------------------ threads
    def _source(self) -> None:
        try:
            self.source.run(SourceSink(self.stream, self._stop, self.config))
        finally:
            self.stream.mark_finished()
        for note in getattr(self.source, "notes", ()) or ():
            self.stream.note(note)

    def _perceive(self) -> None:
        stream = self.stream
        while not self._stop.is_set():
            work = stream.next_chunk()
            if work is None:
                if stream.exhausted:
                    self._put(self._decide_q, _END)
                    return
                stream.wait_for_data(self.config.poll_s)
                continue
            if not self._put(self._decide_q, work):
                return

    def _decide(self) -> None:
        stream = self.stream
        while True:
            work = self._get(self._decide_q)
            if work is _END:
                if not self._stop.is_set():
                    self._put(self._respond_q, (stream.flush(), None))
                self._put(self._respond_q, _END)
                return
            events = stream.decide(work)
            if not self._put(self._respond_q, (events, work)):
                return

    def _dispatch(self, event: dict[str, Any]) -> None:
        self.events_emitted += 1
        for r in self.responders:
            r.emit(event)

    def _respond(self) -> None:
        stream = self.stream
        every = self.config.stats_every_s
        while True:
            item = self._get(self._respond_q)
            if item is _END:
                break
            events, work = item
            stream.emit(events, work, sink=self._dispatch)
            if every and work is not None and work.info.end_s - self._last_stats_t >= every:
                self._last_stats_t = work.info.end_s
                # stamped with the chunk just responded to: the decide thread may already be
                # chunks ahead, and its time would put this event before earlier ones
                self._dispatch(stream.stats_event(t=work.info.end_s, final=False))
        if self._stop.is_set() and self._error is not None:
            return
        self._t_end = time.perf_counter()
        self.final_stats = stream.stats_event(final=True, **self._run_figures())
        self._dispatch(self.final_stats)

    # ------------------------------------------------------------------ figures
    def _run_figures(self) -> dict[str, Any]:
        res = self.stream.get_result()
        wall = (self._t_end or time.perf_counter()) - self._t_start
        audio = res.audio_s
        return {"audio_s": round(audio, 3), "wall_s": round(wall, 3),
                "rtf": round(wall / audio, 4) if audio else None}

    def summary(self) -> dict[str, Any]:
        """Figures of the run: chunks, events, latency percentiles, drops, RTF, CPU per thread.

        ``response_latency_ms`` covers events (captions, alerts, answers); ``chunk_latency_ms``
        covers every chunk (ring entry -> respond stage done); ``stages_ms`` per stage; ``rtf``
        is wall time / audio time, ``cpu_rtf`` is the CPU time of all loop threads / audio time.
        """
        res = self.stream.get_result()
        lat = [e["latency_ms"] for e in res.events
               if e["type"] in ("caption", "alert", "answer") and e["latency_ms"] is not None]
        wall = (self._t_end or time.perf_counter()) - self._t_start
        cpu = sum(self.thread_cpu_s.values())
        stats = self.stream.ring.stats()
        return {
            "chunks": res.chunks, "audio_s": res.audio_s, "wall_s": wall,
            "rtf": wall / res.audio_s if res.audio_s else None,
            "cpu_rtf": cpu / res.audio_s if res.audio_s else None,
            "thread_cpu_s": dict(self.thread_cpu_s),
            "alerts": len(res.alerts), "captions": len(res.captions),
            "captions_dropped": res.captions_dropped,
            "answers": len(res.answers), "events": self.events_emitted,
            "response_latency_ms": percentiles(lat),
            "chunk_latency_ms": percentiles([r.latency_ms() for r in
                                             self.stream.timings.records()]),
            "stages_ms": self.stream.timings.summary(),
            "dropped_samples": res.dropped_samples, "overflow_events": stats.overflow_events,
            "ring_high_water": stats.high_water, "notes": res.notes,
            "realtime": self.config.realtime,
        }


def run_file(engine: Engine, path: str | Path, responders: Iterable[Any] = (), **kw: Any
             ) -> dict[str, Any]:
    """Convenience: run a WAV file through a :class:`Loop` and return its summary."""
    config = kw.pop("config", None) or LoopConfig()
    loop = Loop(engine, WavSource(path, block_ms=config.block_ms), list(responders),
                config=config, **kw)
    return loop.run()
