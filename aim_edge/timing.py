"""Per-chunk timestamps of the perceive-decide-respond loop, for the profiler.

Every chunk (16 fbank frames = 160 ms of audio) carries one :class:`ChunkTiming` through the
stages; each stage writes its own fields with :func:`time.perf_counter_ns` (one clock for the
whole process, nanoseconds, comparable across threads). When the respond stage has handled the
chunk, the record is appended to the stream's :class:`TimingLog`, a bounded buffer (oldest
records are discarded first; ``total`` keeps counting).

Stages and what each timestamp means (all ``int`` nanoseconds, 0 = not reached)::

    t_capture   capture time of the chunk's last sample (a microphone's ADC time when the
                source gives one, else equal to t_ring)
    t_ring      the chunk's last sample entered the native ring (push returned)
    t_features  the chunk's 16 fbank frames were ready (perceive stage done)
    features_ns not a timestamp: the perceive stage's compute for this chunk (fbank, and the
                VAD when it runs), in nanoseconds: the cost of the ring blocks it was computed
                from, per sample, times the chunk's new samples. The rest of
                ``t_features - t_ring`` is the wait in the ring for the perceive thread
    t_decide    the decide stage took the chunk (queue wait = t_decide - t_features)
    t_model     the model step returned (model compute = t_model - t_decide)
    t_decision  the decision policy finished (policy = t_decision - t_model)
    t_emitted   every response of the chunk was handed to the responders (respond stage done)

End-to-end latency of a response = ``t_emitted - t_ring`` of the chunk that decided it; this
is the ``latency_ms`` of each event. The model's algorithmic latency (chunk + lookahead + the
fbank window overhang, ``Bundle.algorithmic_latency_ms``) comes on top and is reported apart.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["COMPUTE_STAGES", "STAGES", "STAGE_FIELDS", "ChunkTiming", "TimingLog", "percentiles",
           "stage_durations"]

#: Timestamp fields in pipeline order.
STAGE_FIELDS = ("t_capture", "t_ring", "t_features", "t_decide", "t_model", "t_decision",
                "t_emitted")


class ChunkTiming:
    """Timestamps of one chunk (see the module docstring). Cheap: ``__slots__`` ints."""

    __slots__ = ("dropped_samples", "end_sample", "features_ns", "index", "n_events",
                 "start_sample", "t_capture", "t_decide", "t_decision", "t_emitted",
                 "t_features", "t_model", "t_ring")

    def __init__(self, index: int, start_sample: int, end_sample: int) -> None:
        self.index = index  # chunk number since the stream started (or was reset)
        self.start_sample = start_sample  # absolute stream sample of the chunk's first frame
        self.end_sample = end_sample  # absolute stream sample just after its last sample
        self.dropped_samples = 0  # ring drops counted so far when the chunk was made
        self.n_events = 0
        self.features_ns = 0
        self.t_capture = 0
        self.t_ring = 0
        self.t_features = 0
        self.t_decide = 0
        self.t_model = 0
        self.t_decision = 0
        self.t_emitted = 0

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}

    def latency_ms(self) -> float:
        """``t_emitted - t_ring`` in milliseconds (NaN when a stamp is missing)."""
        if not self.t_emitted or not self.t_ring:
            return float("nan")
        return (self.t_emitted - self.t_ring) / 1e6

    def __repr__(self) -> str:
        return f"ChunkTiming(index={self.index}, latency_ms={self.latency_ms():.3f})"


_DTYPE = np.dtype([(name, np.int64) for name in ChunkTiming.__slots__])


class TimingLog:
    """Bounded, thread-safe log of completed :class:`ChunkTiming` records.

    Parameters
    ----------
    capacity : int
        Records kept (default 2**16 chunks = 2.9 hours of audio); older ones are discarded.
    """

    def __init__(self, capacity: int = 1 << 16) -> None:
        if capacity < 1:
            raise ValueError(f"capacity = {capacity} must be >= 1")
        self._records: collections.deque[ChunkTiming] = collections.deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.total = 0

    def append(self, record: ChunkTiming) -> None:
        with self._lock:
            self._records.append(record)
            self.total += 1

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self.total = 0

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> list[ChunkTiming]:
        """A copy of the kept records, oldest first."""
        with self._lock:
            return list(self._records)

    def to_numpy(self) -> np.ndarray:
        """Kept records as a structured int64 array with the fields of :class:`ChunkTiming`."""
        recs = self.records()
        out = np.zeros(len(recs), _DTYPE)
        for name in ChunkTiming.__slots__:
            out[name] = [getattr(r, name) for r in recs]
        return out

    def stage_ms(self) -> dict[str, np.ndarray]:
        """Per-stage durations in milliseconds over the kept records (complete ones only).

        Keys: see :func:`stage_durations`.
        """
        return stage_durations(self.to_numpy())

    def summary(self, qs: Sequence[float] = (50, 95, 99)) -> dict[str, dict[str, float]]:
        """``{stage: {"p50": ms, "p95": ms, "p99": ms, "max": ms}}`` over the kept records."""
        return {k: percentiles(v, qs) for k, v in self.stage_ms().items()}


#: Stage durations in pipeline order (keys of :func:`stage_durations`), end to end last.
STAGES = ("capture_to_ring", "ring_wait", "features", "queue", "model", "decision", "respond",
          "end_to_end")
#: The stages that compute (no waiting): their sum per chunk is the service time
#: (``respond`` includes handing the events to the responders and their printing).
COMPUTE_STAGES = ("features", "model", "decision", "respond")


def stage_durations(records: np.ndarray) -> dict[str, np.ndarray]:
    """Per-stage durations in milliseconds of complete records (a :meth:`TimingLog.to_numpy`
    array; incomplete ones are left out).

    ``capture_to_ring``; ``ring_wait`` (the chunk's last sample waiting in the ring for the
    perceive thread: near 0 live, most of the time with ``--fast``, where the file is pushed
    ahead); ``features`` (the perceive stage's compute for the chunk, ``features_ns``);
    ``queue`` (waiting for the decide stage); ``model``; ``decision``; ``respond``;
    ``end_to_end`` (ring -> responses emitted: every stage from ``ring_wait`` on).
    """
    a = records[(records["t_ring"] > 0) & (records["t_emitted"] > 0)]

    def d(x: str, y: str) -> np.ndarray:
        return (a[y] - a[x]) / 1e6

    perceive = d("t_ring", "t_features")
    features = np.minimum(a["features_ns"] / 1e6, perceive)
    return {
        "capture_to_ring": d("t_capture", "t_ring"),
        "ring_wait": perceive - features,
        "features": features,
        "queue": d("t_features", "t_decide"),
        "model": d("t_decide", "t_model"),
        "decision": d("t_model", "t_decision"),
        "respond": d("t_decision", "t_emitted"),
        "end_to_end": d("t_ring", "t_emitted"),
    }


def percentiles(values: Iterable[float] | np.ndarray, qs: Sequence[float] = (50, 95, 99)
                ) -> dict[str, float]:
    """``{"p50": .., "p95": .., "p99": .., "max": .., "n": ..}``; NaN for an empty input."""
    v = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, np.float64)
    v = v[np.isfinite(v)]
    out: dict[str, float] = {}
    for q in qs:
        out[f"p{q:g}"] = float(np.percentile(v, q)) if v.size else float("nan")
    out["max"] = float(v.max()) if v.size else float("nan")
    out["n"] = float(v.size)
    return out
