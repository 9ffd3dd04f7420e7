"""One profiled run: a bundle on one backend / precision / thread count, through the real loop.

:func:`measure` loads the bundle (timed: cold start), plays the input through
:class:`~aim_edge.loop.Loop` (the same four threads a microphone uses; real-time pacing by
default) and turns the per-chunk :class:`~aim_edge.timing.ChunkTiming` stamps into figures:
per-stage and end-to-end percentiles, real-time factors, CPU seconds per thread, peak RSS,
dropped samples and the per-chunk data the report's CDFs and timeline are drawn from.

The sweep (:mod:`aim_edge.profile.sweep`) runs each configuration in a fresh process
(:mod:`aim_edge.profile.worker`), so cold start, peak RSS and CPU figures belong to that
configuration alone; :func:`measure` itself runs in the calling process.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import iter_wav_blocks, wav_info
from ..errors import AudioInputError, ConfigError
from ..loop import _BlockSource
from ..timing import COMPUTE_STAGES, STAGES, percentiles, stage_durations

__all__ = ["STAGES", "CpuLoad", "LoopedWavSource", "RunSpec", "measure", "peak_rss_mb",
           "thread_cpu"]

#: Fewer chunks than this and p99 is not a tail (the report says so).
MIN_CHUNKS_FOR_P99 = 100

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """What one profiled run measures.

    Parameters
    ----------
    input : WAV file played through the loop.
    model : bundle folder or zip; None = the shipped default bundle.
    backend, precision, threads : as :meth:`Engine.from_bundle`.
    realtime : pace the input at 1x like a microphone (False: as fast as possible, lossless).
    seconds : audio to play; the input is repeated or cut to this length (None: once, whole).
    instruction : initial instruction text.
    providers : onnxruntime execution providers (None: CPU).
    device : a live microphone instead of ``input`` (an index, part of its name, or
        ``"default"``; None = play ``input``): needs ``seconds`` and real-time pacing. Capture
        -> ring is then the time from the PortAudio callback that delivered the samples to
        their entering the decoding ring (mixing down and resampling included).
    """

    input: str
    model: str | None = None
    backend: str = "onnxruntime"
    precision: str | None = None
    threads: int = 1
    realtime: bool = True
    seconds: float | None = None
    instruction: str | None = None
    providers: tuple[str, ...] | None = None
    device: str | None = None

    def validate(self) -> None:
        if self.device is not None:
            if self.seconds is None:
                raise ConfigError("a microphone (device) needs seconds: how long to listen")
            if not self.realtime:
                raise ConfigError("a microphone runs in real time: drop --fast with --device")
        if self.seconds is not None and not (
                isinstance(self.seconds, (int, float)) and 0 < self.seconds <= 24 * 3600):
            raise ConfigError(f"seconds = {self.seconds!r} is invalid: expected a number of"
                              " seconds in (0, 86400], or None for the whole input once")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) \
                or self.threads < 1:
            raise ConfigError(f"threads = {self.threads!r} is invalid: expected an int >= 1")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["providers"] = list(self.providers) if self.providers else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        d = dict(d)
        if d.get("providers"):
            d["providers"] = tuple(d["providers"])
        return cls(**d)


class LoopedWavSource(_BlockSource):
    """A WAV file played in ``block_ms`` blocks, repeated or cut to ``seconds`` of audio.

    Paced and converted exactly like :class:`~aim_edge.loop.WavSource` (same base class).
    """

    name = "wav"

    def __init__(self, path: str | Path, seconds: float | None = None, *,
                 block_ms: float = 20.0) -> None:
        self.path = Path(path)
        self.info = wav_info(self.path)
        if self.info.frames == 0:
            raise AudioInputError(f"{self.path} holds no audio samples: nothing to profile;"
                                  " give a WAV file with audio")
        self.block = max(1, int(round(self.info.sample_rate * block_ms / 1000.0)))
        self.limit = None if seconds is None else int(round(seconds * self.info.sample_rate))
        self.repeats = 0
        cut = self.info.truncation_note(self.path)
        self.notes: list[str] = [cut] if cut else []

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        sent = 0
        while True:
            for info, block in iter_wav_blocks(self.path, self.block):
                if self.limit is not None:
                    block = block[: self.limit - sent]
                    if not len(block):
                        return
                sent += len(block)
                yield info.sample_rate, block
            self.repeats += 1
            if self.limit is None or sent >= self.limit:
                return


# ---------------------------------------------------------------------- /proc figures
def thread_cpu() -> dict[int, tuple[str, float]]:
    """``{tid: (thread name, CPU seconds user+system)}`` of this process, from /proc.

    Empty where /proc is not available. Clock-tick resolution (usually 10 ms).
    """
    out: dict[int, tuple[str, float]] = {}
    base = Path("/proc/self/task")
    try:
        tids = [int(p.name) for p in base.iterdir()]
    except OSError:
        return out
    for tid in tids:
        try:
            stat = (base / str(tid) / "stat").read_text()
            name = (base / str(tid) / "comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[tid] = (name, (int(fields[11]) + int(fields[12])) / _CLK_TCK)
    return out


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (VmHWM; ru_maxrss where /proc lacks it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _process_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _proc_cpu_s(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


class CpuLoad:
    """``n`` CPU-hog processes (busy loops) beside the profiled run: contention on purpose.

    Use as a context manager; the processes are killed by pid on exit (also on errors and
    Ctrl-C). ``cpu_s`` after exit: CPU seconds each hog got, proof that the load ran.
    """

    CODE = "while True:\n    pass\n"

    def __init__(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(f"load = {n!r} is invalid: expected a number of CPU-hog"
                              " processes >= 0")
        self.n = n
        self.procs: list[subprocess.Popen[bytes]] = []
        self.cpu_s: list[float | None] = []

    def __enter__(self) -> CpuLoad:
        for _ in range(self.n):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-c", self.CODE], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return self

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def __exit__(self, *exc: object) -> None:
        self.cpu_s = []
        for p in self.procs:
            cpu = _proc_cpu_s(p.pid)
            self.cpu_s.append(round(cpu, 2) if cpu is not None else None)
            p.kill()
        for p in self.procs:
            p.wait()


# ---------------------------------------------------------------------- one run
def _r(x: float, nd: int = 3) -> float | None:
    return round(float(x), nd) if np.isfinite(x) else None


def _pct(values: np.ndarray) -> dict[str, float | None]:
    return {k: _r(v) for k, v in percentiles(values).items()}


def _microphone(device: str, seconds: float | None, model_rate: int) -> Any:
    """The live input of ``--device``: a :class:`~aim_edge.capture.source.MicSource`."""
    from ..capture.devices import require_sounddevice
    from ..capture.source import MicSource

    require_sounddevice()  # the install hint first
    return MicSource(device_choice(device), duration_s=seconds, model_rate=model_rate)


def device_choice(device: str) -> int | str | None:
    """``--device`` as :func:`~aim_edge.capture.devices.select_device` takes it: None for
    ``"default"``, an index for digits, else part of a name."""
    text = device.strip()
    if text.lower() == "default":
        return None
    return int(text) if text.lstrip("-").isdigit() else text


def _capture_figures(source: Any) -> dict[str, Any] | None:
    """A microphone's capture counters for the report (None for a file)."""
    if not hasattr(source, "settings") or not hasattr(source, "stats"):
        return None
    figures = source.stats().to_dict()
    figures["device"] = f"microphone: {source.describe()}"
    return figures


def measure(spec: RunSpec, *, import_ms: float | None = None) -> dict[str, Any]:
    """Profile one configuration in this process; returns the JSON-able result.

    ``import_ms``: time the caller spent importing the runtime (worker processes pass it; it
    is part of the cold start).
    """
    spec.validate()
    from ..engine import Engine
    from ..loop import Loop, LoopConfig

    source: Any = (None if spec.device is not None else
                   LoopedWavSource(spec.input, spec.seconds))  # checks the file before loading
    rss_reset = _reset_peak_rss()
    tasks_before_load = set(thread_cpu())
    cpu0 = _process_cpu_s()
    t0 = time.perf_counter_ns()
    engine = Engine.from_bundle(spec.model, backend=spec.backend, precision=spec.precision,
                                threads=spec.threads,
                                providers=list(spec.providers) if spec.providers else None)
    load_ms = (time.perf_counter_ns() - t0) / 1e6
    load_cpu_s = _process_cpu_s() - cpu0
    with engine:
        bundle = engine.bundle
        if spec.device is not None:
            source = _microphone(spec.device, spec.seconds, engine.sample_rate)
        fmt = "onnx" if engine.backend.name == "onnxruntime" else "tflite"
        try:
            art = bundle.artifact(format=fmt, precision=spec.precision)
            artifact = {"file": art.file, "format": art.format, "precision": art.precision,
                        "size_mb": round(art.size / 1e6, 3)}
        except Exception:  # a custom backend object: no artifact to name
            artifact = {"file": None, "format": None, "precision": spec.precision,
                        "size_mb": None}
        loop = Loop(engine, source, [], instruction=spec.instruction,
                    config=LoopConfig(realtime=spec.realtime))
        tasks0 = thread_cpu()
        cpu_run0 = _process_cpu_s()
        t_start = time.perf_counter_ns()
        summary = loop.run()
        t_end = time.perf_counter_ns()
        cpu_run = _process_cpu_s() - cpu_run0
        tasks1 = thread_cpu()
        recs = loop.stream.timings.to_numpy()
        capture = _capture_figures(source)
        result = loop.stream.get_result()
        description = engine.backend.description
    loop_tids = {t.native_id for t in loop._threads}
    others = []
    for tid, (name, s1) in sorted(tasks1.items()):
        if tid in loop_tids:
            continue
        s0 = tasks0.get(tid, (name, 0.0))[1]
        if tid == os.getpid():
            label = "main"
        elif tid not in tasks_before_load:  # started by the backend (e.g. onnxruntime's pool)
            label = f"backend pool ({name})"
        else:
            label = name
        others.append({"tid": tid, "name": label, "cpu_s": round(s1 - s0, 3)})

    audio_s = float(summary["audio_s"])
    wall_s = (t_end - t_start) / 1e9
    complete = recs[(recs["t_ring"] > 0) & (recs["t_emitted"] > 0)]
    if not len(complete):
        raise AudioInputError(
            f"{spec.input}: {audio_s:.3f} s of audio gave no complete chunk, so nothing was"
            " measured; the loop needs at least one 25 ms fbank frame and decides every"
            f" {bundle.chunk_seconds * 1000:.0f} ms: profile a longer file or give --seconds"
            " (the input is repeated)")

    span = complete["end_sample"] - complete["start_sample"]
    # shorter than the usual chunk (the median: chunks that skipped dropped samples span more)
    flushed = len(complete) > 1 and span[-1] < np.median(span[:-1])
    if flushed:  # the last chunk, padded when the input ended: it waited for the end of the
        complete = complete[:-1]  # input (a microphone closing), which is not latency
    stage = stage_durations(complete)
    service = sum(stage[k] for k in COMPUTE_STAGES)  # per-chunk compute, no waiting
    sr = bundle.features.sample_rate
    # decisions (captions, alerts, answers) by the chunk that decided them
    by_end = {round(int(e) / sr, 3): i for i, e in enumerate(complete["end_sample"])}
    decisions = []
    for ev in result.events:
        if ev["type"] not in ("caption", "alert", "answer"):
            continue
        i = by_end.get(round(float(ev["t"]), 3))
        what = ev.get("label") or ev.get("intent") or ev.get("text", "")
        decisions.append({"chunk": i, "type": ev["type"], "what": str(what)[:40],
                          "t_audio_s": ev["t"], "latency_ms": ev["latency_ms"]})
    lat_events = np.array([e["latency_ms"] for e in decisions if e["latency_ms"] is not None])
    first = complete[:1]
    first_chunk_ms = float((first["t_emitted"] - first["t_ring"])[0] / 1e6) if len(first) \
        else float("nan")
    first_resp_ms = float((first["t_emitted"][0] - t_start) / 1e6) if len(first) \
        else float("nan")
    notes = list(result.notes)
    if flushed:
        notes.append("the last chunk, padded at the end of the input, is left out of the"
                     " latency figures: it waits for the input to end, which is not latency")
    if len(complete) < MIN_CHUNKS_FOR_P99:
        notes.append(f"only {len(complete)} chunk(s): p99 is the maximum of a few values, not a"
                     " tail; give --seconds 30 or more for percentiles that mean something")
    if capture is None and not np.any(complete["t_capture"] != complete["t_ring"]):
        notes.append("capture -> ring is 0: a file has no capture clock, and mixing down or"
                     " resampling happens before the ring, outside the stage figures")
    if not rss_reset:
        notes.append("peak RSS could not be reset before the run: it is the process peak")
    if not spec.realtime:
        notes.append("--fast: the file is read as fast as possible, so end-to-end latency"
                      " includes waiting in the ring and the decide queue; service time"
                      " (features + model + decision + respond, no waiting) is the per-chunk"
                      " cost and is what the verdict judges")
    thread_cpu_s = {k: round(v, 4) for k, v in summary["thread_cpu_s"].items()}
    return {
        "spec": spec.to_dict(),
        "bundle": bundle.name,
        "artifact": artifact,
        "backend": description,
        "realtime": spec.realtime,
        "audio_s": round(audio_s, 3),
        "wall_s": round(wall_s, 3),
        "chunks": int(summary["chunks"]),
        "chunks_measured": int(len(complete)),
        "chunk_ms": bundle.chunk_seconds * 1000.0,
        "algorithmic_latency_ms": bundle.algorithmic_latency_ms,
        "repeats": getattr(source, "repeats", None),
        "input": capture["device"] if capture else spec.input,
        "capture": capture,
        "stages_ms": {k: _pct(v) for k, v in stage.items()},
        "service_ms": _pct(service),
        "response_latency_ms": _pct(lat_events),
        "rtf": {
            "wall": _r(wall_s / audio_s, 4) if audio_s else None,
            "cpu": _r(cpu_run / audio_s, 4) if audio_s else None,
            "model": _r(stage["model"].sum() / 1e3 / audio_s, 4) if audio_s else None,
        },
        "cpu_s": {"process_run": round(cpu_run, 3), "load": round(load_cpu_s, 3),
                  "loop_threads": thread_cpu_s, "other_threads": others},
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "dropped_samples": int(summary["dropped_samples"]),
        "overflow_events": int(summary["overflow_events"]),
        "ring_high_water": int(summary["ring_high_water"]),
        "cold_start": {"import_ms": _r(import_ms) if import_ms is not None else None,
                       "load_ms": _r(load_ms), "first_chunk_ms": _r(first_chunk_ms),
                       "first_response_after_start_ms": _r(first_resp_ms)},
        "events": {"alerts": len(result.alerts), "captions": len(result.captions),
                   "answers": len(result.answers)},
        "decisions": decisions,
        "per_chunk": {
            "t_s": [round(float(v), 4) for v in (complete["t_ring"] - t_start) / 1e9],
            "start_s": [round(float(v) / sr, 4) for v in complete["start_sample"]],
            "end_s": [round(float(v) / sr, 4) for v in complete["end_sample"]],
            "dropped": [int(v) for v in complete["dropped_samples"]],
            "n_events": [int(v) for v in complete["n_events"]],
            **{k: [round(float(x), 3) for x in v] for k, v in stage.items()},
        },
        "notes": notes,
    }
