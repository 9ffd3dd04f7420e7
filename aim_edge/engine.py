"""The engine (shared, immutable) and the stream (one per audio source, mutable).

Split after sherpa-onnx's online recognizer: an :class:`Engine` owns what is expensive and
read-only (the bundle, the backend session, the instruction encoder, a worker thread for work
that must stay off the audio path); a :class:`Stream` owns everything that belongs to one
audio source: the native ring, the streaming fbank, the model state, the decision policy,
results and per-chunk timestamps. Many streams can share one engine.

Example
-------
>>> engine = Engine.from_bundle("bundles/small")                      # doctest: +SKIP
>>> stream = engine.create_stream(instruction="tell me if the doorbell rings")
>>> stream.accept_waveform(16000, samples)         # float32 [-1, 1] or int16, any length
>>> while stream.is_ready():
...     for event in stream.decode():               # events of one 160 ms chunk
...         print(event)
>>> stream.input_finished()
>>> while stream.is_ready():
...     stream.decode()
>>> stream.get_result().captions                   # final captions so far

``Engine.process_array`` / ``process_file`` are exactly that loop, so the one-shot and the
streaming paths cannot drift. The threaded real-time pipeline is :class:`aim_edge.loop.Loop`,
which drives the same stream methods from separate perceive / decide / respond threads.

Audio contract: ``accept_waveform(sample_rate, samples)`` takes float32/float64 in [-1, 1] or
int16 PCM, mono ``(n,)`` or ``(frames, channels)`` (mixed down, noted in the result); other rates
than the bundle's are resampled with python-soxr. Bad input raises before anything is
consumed: NaN/inf -> AudioInputError with the sample index, other dtypes -> AudioTypeError.
Empty input is valid: it produces no chunks, and the result's ``notes`` say so.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .answer import StateAnswerer
from .audio import (
    AudioConverter,
    iter_wav_blocks,
    read_wav_header,
    wav_data_blocks,
    wav_info,
)
from .backends import OUTPUT_HEADS, Backend, canonical_name, create_backend
from .bundle import Bundle, load_bundle
from .config import FbankConfig, RingConfig
from .errors import AudioInputError, BundleError, ConfigError
from .instructions import InstructionEncoder, InstructionMeaning, encoder_for_bundle
from .policy import ChunkInfo, DecisionPolicy, PolicyConfig
from .ring import RingBuffer
from .timing import ChunkTiming, TimingLog, percentiles

__all__ = ["Engine", "Result", "SecondPass", "Stream"]

_now = time.perf_counter_ns

#: Where second-pass utterances come from (see ``Engine.from_bundle(endpoints=...)``).
ENDPOINTS = ("student", "silero")


#: Seconds of audio handed to the second pass before the first and after the last CTC frame of
#: an utterance (the streaming CTC fires late on onsets and early on offsets).
SECOND_PASS_LEAD_S = 0.4
SECOND_PASS_TAIL_S = 0.3


@runtime_checkable
class SecondPass(Protocol):
    """A second-pass recogniser for final captions (e.g. Whisper, issue 9).

    ``transcribe`` gets the utterance's float32 16 kHz samples and returns the text (a ``str``
    or an object with a ``.text``). It runs on the engine's worker thread, off the decide path;
    the final caption is emitted when it returns, with ``"second_pass": True``.
    """

    def transcribe(self, samples: np.ndarray) -> Any: ...


@dataclasses.dataclass
class Result:
    """What a stream produced so far (copies; safe to keep).

    Attributes
    ----------
    captions : final caption events, oldest first (captions dropped as not speech are
        not among them: see ``captions_dropped``).
    partial : text of the current (not yet final) caption.
    alerts, answers, instructions : events of those types.
    events : every event, in emission order (the last ``Stream.max_events``).
    chunks : chunks decided.
    audio_s : seconds of audio consumed (dropped audio included).
    dropped_samples : samples lost at the ring (the consumer fell behind).
    notes : conversions applied and conditions worth knowing (mix-down, resampling, empty
        input, drops, instruction encoder fallback).
    instruction : the active instruction text ("" = none).
    outputs : per-chunk raw model outputs when the stream records them, else None.
    captions_dropped : utterances whose letters were too uncertain to be speech
        (``PolicyConfig.caption_confidence``); their events have ``dropped`` set.
    """

    captions: list[dict[str, Any]]
    partial: str
    alerts: list[dict[str, Any]]
    answers: list[dict[str, Any]]
    instructions: list[dict[str, Any]]
    events: list[dict[str, Any]]
    chunks: int
    audio_s: float
    dropped_samples: int
    notes: list[str]
    instruction: str
    outputs: list[dict[str, np.ndarray]] | None = None
    captions_dropped: int = 0

    @property
    def text(self) -> str:
        """All final captions joined, plus the partial one."""
        parts = [c["text"] for c in self.captions if c["text"]]
        if self.partial:
            parts.append(self.partial)
        return " ".join(parts)


class _Work:
    """One chunk on its way through the stages."""

    __slots__ = ("fbank", "info", "timing")

    def __init__(self, fbank: np.ndarray, info: ChunkInfo, timing: ChunkTiming) -> None:
        self.fbank = fbank
        self.info = info
        self.timing = timing


def _ready(fb: Any) -> int:
    n = fb.num_frames_ready
    return int(n() if callable(n) else n)


class Engine:
    """Shared, immutable inference engine: bundle + backend + instruction encoder.

    Build it with :meth:`from_bundle`. Thread-safe: streams on different threads may share it
    (onnxruntime sessions allow concurrent ``run``). Close it (or use ``with``) to stop its
    worker thread.
    """

    def __init__(self, bundle: Bundle, backend: Backend, *,
                 encoder: InstructionEncoder | None = None,
                 policy: PolicyConfig | Mapping[str, Any] | None = None,
                 second_pass: SecondPass | None = None,
                 answerer: Any = None,
                 ring: RingConfig | None = None, endpoints: str = "student",
                 vad_options: Mapping[str, Any] | None = None) -> None:
        self.bundle = bundle
        self.backend = backend
        self.encoder = encoder if encoder is not None else encoder_for_bundle(bundle)
        if self.encoder.dim != bundle.instruction_dim:
            raise BundleError(f"instruction encoder gives {self.encoder.dim} floats, the model"
                              f" takes instruction_dim = {bundle.instruction_dim}")
        # a mapping names the fields a user set: those win over the manifest's thresholds
        # (hysteresis, refractory_s), which otherwise win over PolicyConfig's defaults
        if isinstance(policy, Mapping):
            self._policy_set = frozenset(policy)
            self.policy_config = PolicyConfig.from_dict(dict(policy))
        else:
            self._policy_set = frozenset()
            self.policy_config = policy or PolicyConfig()
        self.policy_config.validate()
        #: event columns re-scored without the instruction (empty: off, no safety label, or a
        #: model whose events do not read the instruction)
        self.safety_recheck = np.array(
            [i for i, e in enumerate(bundle.events) if e.safety]
            if self.policy_config.safety_without_instruction and bundle.events_read_instruction
            else [], np.intp)
        self.second_pass = second_pass
        if endpoints not in ENDPOINTS:
            raise ConfigError(f"endpoints = {endpoints!r}: expected one of {ENDPOINTS}")
        if endpoints == "silero" and second_pass is None:
            raise ConfigError("endpoints = 'silero' only decides when the second pass runs; "
                              "give a second_pass (aim-edge run --asr DIR) or use 'student'")
        self.endpoints = endpoints
        self.vad_options = dict(vad_options or {})
        if endpoints == "silero":
            from .vad import silero_model_path

            silero_model_path()  # a missing package is named now, not on the first chunk
        self.answerer = answerer if answerer is not None else StateAnswerer()
        self.ring_config = ring or RingConfig()
        self.ring_config.validate()
        self.state_names = tuple(s.name for s in bundle.state)
        self._thr = bundle.manifest.get("thresholds", {})
        self._aliases = {e.name: e.aliases for e in bundle.events if e.aliases}
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_bundle(cls, model: str | Path | Bundle | None = None, *,
                    backend: str | Backend = "onnxruntime", precision: str | None = None,
                    threads: int = 1, providers: Sequence[str] | str | None = None,
                    provider_options: Mapping[str, Mapping[str, Any]] | None = None,
                    cache_dir: str | Path | None = None, warmup: int | None = None,
                    features: FbankConfig | None = None,
                    policy: PolicyConfig | Mapping[str, Any] | None = None,
                    encoder: InstructionEncoder | None = None,
                    second_pass: SecondPass | None = None,
                    answerer: Any = None,
                    ring: RingConfig | None = None, verify_hashes: bool = True,
                    endpoints: str = "student",
                    vad_options: Mapping[str, Any] | None = None) -> Engine:
        """Load a bundle and open its step artifact on a backend.

        Parameters
        ----------
        model : bundle folder or zip, a loaded :class:`Bundle`, or None for the shipped default.
        backend : ``onnxruntime`` (default), ``litert``, ``tflite-runtime``, or any object
            implementing :class:`~aim_edge.backends.Backend`.
        precision : artifact precision (``fp32``, ``int8-dynamic``, ...); None = the smallest
            artifact the backend can run.
        threads : inference threads (default 1).
        providers : onnxruntime execution providers, e.g. ``["tensorrt", "cuda"]`` (CPU is
            always the last fallback); ``provider_options`` per provider; ``cache_dir`` for the
            TensorRT engine cache; ``warmup`` steps at load (default 1 CPU / 3 GPU).
        features : the front end the caller insists on; a bundle that differs is refused with
            the field named. None = use the bundle's own feature options.
        policy : decision policy options; thresholds always come from the bundle. A
            ``PolicyConfig`` yields to the manifest's ``thresholds.hysteresis`` /
            ``refractory_s`` where it has them; a mapping of fields (``aim-edge run --policy``)
            wins over the manifest for the fields it names.
        encoder : instruction encoder overriding the bundle's choice.
        second_pass : recogniser that rewrites final captions (:class:`SecondPass`).
        answerer : what fills ``answer`` events' text: an object with
            ``answer(question, context)`` or a ``question -> text`` callable. None = the
            built-in :class:`~aim_edge.answer.StateAnswerer` (the last sound, the last caption,
            recent alerts, the time; it says so when a question is outside that).
        ring : ring buffer size per stream.
        endpoints : where the second pass's utterances come from: ``"student"`` (the
            streaming model's CTC endpoint) or ``"silero"`` (silero-vad on the audio,
            :mod:`aim_edge.vad`; ``pip install --no-deps silero-vad==6.2.3``). With
            ``"silero"`` the student's captions stay partial and every final caption is a
            second-pass transcript of one VAD utterance (``"endpoint": "silero"``).
        vad_options : :class:`~aim_edge.vad.VadEndpointer` options (threshold, min_silence_s,
            ...).
        """
        if isinstance(model, Bundle):
            bundle = model
            if features is not None and bundle.features != features:
                bundle = load_bundle(bundle.root, verify_hashes=False, expect_features=features)
        else:
            if model is None:
                from .bundles import default_bundle_path

                model = default_bundle_path()
                if model is None:
                    raise BundleError(
                        "no default model bundle is shipped yet; pass one with --model PATH"
                        " (make an untrained one for testing with `python -m export.bundle"
                        " --random-init --small --out DIR`)")
            bundle = load_bundle(model, verify_hashes=verify_hashes, expect_features=features)
        if isinstance(backend, str):
            options: dict[str, Any] = {}
            ort_only = [name for name, v in (("providers", providers),
                                             ("provider_options", provider_options),
                                             ("cache_dir", cache_dir)) if v is not None]
            if ort_only and canonical_name(backend) != "onnxruntime":
                raise ConfigError(
                    f"{' and '.join(ort_only)} apply to the onnxruntime backend only, not"
                    f" {backend!r}: drop them (--providers), or use --backend onnxruntime")
            if providers is not None:
                options["providers"] = providers
            if provider_options is not None:
                options["provider_options"] = provider_options
            if cache_dir is not None:
                options["cache_dir"] = cache_dir
            if warmup is not None:
                options["warmup"] = warmup
            be = create_backend(backend, bundle, precision=precision, threads=threads, **options)
        else:
            be = backend
        return cls(bundle, be, encoder=encoder, policy=policy, second_pass=second_pass,
                   answerer=answerer, ring=ring, endpoints=endpoints, vad_options=vad_options)

    # ------------------------------------------------------------------ properties
    @property
    def features(self) -> FbankConfig:
        return self.bundle.features

    @property
    def sample_rate(self) -> int:
        return self.bundle.features.sample_rate

    def describe(self) -> dict[str, Any]:
        """Facts for `aim-edge info` and run headers."""
        b = self.bundle
        return {
            "bundle": b.name, "root": str(b.root), "backend": self.backend.description,
            "chunk_ms": b.chunk_seconds * 1000.0,
            "algorithmic_latency_ms": b.algorithmic_latency_ms,
            "instruction_encoder": self.encoder.kind, "instruction_note": self.encoder.note,
            "events": [e.name for e in b.events], "safety": list(b.safety_events),
            "second_pass": type(self.second_pass).__name__ if self.second_pass else None,
            "endpoints": self.endpoints,
        }

    # ------------------------------------------------------------------ instructions / worker
    def encode_instruction(self, text: str | None) -> np.ndarray:
        """Embedding of ``text`` (zeros for none), float32 ``(instruction_dim,)``."""
        emb = np.asarray(self.encoder.encode(text or None), np.float32).reshape(-1)
        if emb.shape != (self.bundle.instruction_dim,):
            raise BundleError(f"instruction encoder returned shape {emb.shape}, expected"
                              f" ({self.bundle.instruction_dim},)")
        return emb

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        """Run ``fn(*args)`` on the engine's worker thread (started on first use)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("engine is closed")
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="aim-edge-worker")
            return self._executor.submit(fn, *args)

    def new_policy(self) -> DecisionPolicy:
        b = self.bundle
        return DecisionPolicy(
            vocab=b.vocab, events=[e.name for e in b.events], intents=b.intents,
            safety=b.safety_events, speak_threshold=b.speak_threshold,
            event_thresholds=b.event_thresholds, config=self.policy_config,
            refractory=None if "refractory_s" in self._policy_set else b.per_label("refractory_s"),
            hysteresis=None if "hysteresis" in self._policy_set else self._thr.get("hysteresis"),
            confirm=b.confirm_chunks,
            rearm=None if "rearm_s" in self._policy_set else b.per_label("rearm_s"),
            aliases=self._aliases, answerer=self.answerer,
            caption_confidence=(None if "caption_confidence" in self._policy_set
                                else self._thr.get("caption_confidence")))

    # ------------------------------------------------------------------ streams
    def create_stream(self, *, instruction: str | None = None, record_outputs: bool = False,
                      ring: RingConfig | None = None) -> Stream:
        """A new stream; ``instruction`` is applied from its first chunk."""
        return Stream(self, instruction=instruction, record_outputs=record_outputs, ring=ring)

    def decode_streams(self, streams: Sequence[Stream]) -> list[list[dict[str, Any]]]:
        """Decode one chunk of every ready stream; returns the events per stream.

        The step model has batch size 1, so streams are stepped one after another on the
        calling thread; the call is the place to batch once a batched artifact exists.
        """
        return [s.decode() if s.is_ready() else [] for s in streams]

    def process_array(self, samples: Any, sample_rate: int = 16000, *,
                      instruction: str | None = None, block_samples: int | None = None,
                      record_outputs: bool = False) -> Result:
        """Run a whole array through the streaming path, ``block_samples`` at a time
        (default: one chunk), decoding as chunks become ready."""
        stream = self.create_stream(instruction=instruction, record_outputs=record_outputs)
        with stream:
            arr = np.asarray(samples) if not isinstance(samples, np.ndarray) else samples
            n = arr.shape[0] if arr.ndim else 0
            step = block_samples or self.bundle.chunk_samples
            if step < 1:
                raise ConfigError(f"block_samples = {block_samples} must be >= 1")
            if n == 0:
                stream.accept_waveform(sample_rate, arr)
                stream.note("the input holds no audio samples; nothing was decoded")
            for i in range(0, n, step):
                stream.accept_waveform(sample_rate, arr[i:i + step])
                while stream.is_ready():
                    stream.decode()
            stream.input_finished()
            while stream.is_ready():
                stream.decode()
            return stream.get_result()

    def process_file(self, path: str | Path, *, instruction: str | None = None,
                     block_frames: int | None = None, record_outputs: bool = False) -> Result:
        """Run a WAV file (8/16/24/32-bit PCM or float) through the streaming path. A path
        that is not a regular file (a FIFO, ``/dev/stdin``) is read once, as a stream."""
        p = Path(path)
        pipe = p.exists() and not p.is_dir() and not p.is_file()
        f = open(p, "rb") if pipe else None  # noqa: SIM115 -- closed below
        try:
            info = read_wav_header(f, str(p)) if f is not None else wav_info(path)
            stream = self.create_stream(instruction=instruction, record_outputs=record_outputs)
            step = block_frames or max(1, self.bundle.chunk_samples * info.sample_rate
                                       // self.sample_rate)
            blocks = (wav_data_blocks(f, info, str(p), step) if f is not None
                      else iter_wav_blocks(path, step))
            return self._process_blocks(stream, info, path, blocks)
        finally:
            if f is not None:
                f.close()

    def _process_blocks(self, stream: Stream, info: Any, path: str | Path,
                        blocks: Any) -> Result:
        with stream:
            for _, block in blocks:
                stream.accept_waveform(info.sample_rate, block)
                while stream.is_ready():
                    stream.decode()
            stream.input_finished()
            while stream.is_ready():
                stream.decode()
            if info.frames == 0:
                stream.note(f"{path}: the file holds no audio samples; nothing was decoded")
            cut = info.truncation_note(path)
            if cut:
                stream.note(cut)
            return stream.get_result()

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Stop the worker thread and release the backend (idempotent)."""
        with self._lock:
            self._closed = True
            ex, self._executor = self._executor, None
        if ex is not None:
            ex.shutdown(wait=True, cancel_futures=True)
        self.backend.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Stream:
    """One audio source: native ring -> fbank -> model state -> policy -> results.

    Threading: :meth:`push` is the producer side (the audio thread; it only copies into the
    ring and stamps the time). Everything else is the consumer side and must run on one thread
    at a time (or, in :class:`~aim_edge.loop.Loop`, on the perceive / decide / respond threads
    that each own one stage). :meth:`set_instruction` may be called from any thread.
    """

    max_events = 100_000

    def __init__(self, engine: Engine, *, instruction: str | None = None,
                 record_outputs: bool = False, ring: RingConfig | None = None) -> None:
        from .features import StreamingFbank

        self.engine = engine
        b = engine.bundle
        self.bundle = b
        self.sample_rate = b.features.sample_rate
        self.ring = RingBuffer(ring or engine.ring_config)
        self.fbank = StreamingFbank(b.features)
        self._hop = b.features.frame_shift
        self._win = b.features.frame_length
        self._snip = b.features.snip_edges
        self._pad_value = float(np.log(b.features.log_floor))
        self._chunk_frames = b.chunk_frames
        self._ctc_per_chunk = b.chunk_frames // b.subsampling
        self._frame_s = b.subsampling * self._hop / self.sample_rate
        self.record_outputs = record_outputs
        self.timings = TimingLog()
        self._data_ready = threading.Event()
        self._result_lock = threading.Lock()
        self._pending_instr: collections.deque[tuple[Any, str, str, int]] = collections.deque()
        self._pending_finals: collections.deque[tuple[Any, dict[str, Any], int]] = (
            collections.deque())
        self._notes: list[str] = []
        self._closed = False
        self._reset_state()
        if instruction:
            self.set_instruction(instruction, source="api")

    # ------------------------------------------------------------------ state
    def _reset_state(self) -> None:
        b = self.bundle
        self._converter = AudioConverter(self.sample_rate)
        self._push_log: collections.deque[tuple[int, int, int]] = collections.deque(
            maxlen=1 << 16)
        #: perceive blocks: (stream samples popped so far, compute ns per sample of the block)
        self._pop_log: collections.deque[tuple[int, float]] = collections.deque(maxlen=1 << 16)
        self._pushed = 0  # producer: samples pushed since reset (dropped ones included)
        self._popped = 0  # consumer: samples popped since reset
        self._drop_base = self.ring.stats().dropped_samples
        self._segments: list[tuple[int, int]] = [(0, 0)]  # (fbank sample index, abs offset)
        self._fb_samples = 0
        self._next_frame = 0
        self._chunk_index = 0
        self._finished = False  # input_finished() called
        self._t_finished = 0  # when: the reference of end-of-input events' latency
        self._fb_finished = False  # ring drained into the fbank after input_finished()
        self._flushed = False
        self._state = {s.name: np.full(s.shape, s.init, dtype=s.dtype) for s in b.state}
        self._embedding = np.zeros(b.instruction_dim, np.float32)
        self._instruction = ""
        self.policy = self.engine.new_policy()
        # with a second pass, "hey aim ..." is read from its text, not the student's draft
        self.policy.defer_wake = self.engine.second_pass is not None
        self._spoken: list[str] = []
        self._history: collections.deque[tuple[int, np.ndarray]] = collections.deque()
        self._history_len = 0
        self._vad: Any = None
        if self.engine.endpoints == "silero":
            from .vad import VadEndpointer

            self._vad = VadEndpointer(**self.engine.vad_options)
        self._vad_next = 0  # absolute sample the VAD expects next
        self._vad_segments: collections.deque[Any] = collections.deque()
        self._last_info: ChunkInfo | None = None
        self._outputs: list[dict[str, np.ndarray]] = []
        self._events: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=self.max_events)
        self._captions: list[dict[str, Any]] = []
        self._captions_dropped = 0
        self._alerts: list[dict[str, Any]] = []
        self._answers: list[dict[str, Any]] = []
        self._instructions: list[dict[str, Any]] = []

    def reset(self) -> None:
        """Start over: empty ring and fbank, initial model state, fresh policy and results.

        The instruction is kept. Call it only while no producer pushes into this stream.
        """
        text = self._instruction
        self.ring.clear()
        self.fbank.reset()
        self.timings.clear()
        self._pending_finals.clear()
        self._notes = []
        self._reset_state()
        if text:
            self.set_instruction(text, source="api")

    # ------------------------------------------------------------------ producer side
    def push(self, samples: np.ndarray, capture_ns: int | None = None) -> int:
        """Producer fast path: copy float32 mono samples at the bundle rate into the ring.

        No conversion, no checks beyond the ring's: this is what an audio callback calls.
        Returns the number of samples the ring had to drop (oldest first) to make room.
        ``capture_ns`` is the ``perf_counter_ns`` capture time of the last sample if known.
        """
        dropped = self.ring.push(samples)
        t = _now()
        self._pushed += len(samples)
        self._push_log.append((self._pushed, t, capture_ns or t))
        self._data_ready.set()
        return dropped

    def wait_for_data(self, timeout: float) -> bool:
        """Block until the producer pushed something (or ``timeout`` seconds)."""
        got = self._data_ready.wait(timeout)
        self._data_ready.clear()
        return got

    # ------------------------------------------------------------------ API (consumer side)
    def accept_waveform(self, sample_rate: int, samples: Any) -> None:
        """Append audio (any length; see the module docstring for the accepted formats).

        Lossless: when the ring is full, its content is moved into the fbank first.
        """
        if self._finished:
            raise AudioInputError("input_finished() was called on this stream; call reset()"
                                  " to start a new one")
        x = self._converter.convert(sample_rate, samples)
        self._push_lossless(x)

    def _push_lossless(self, x: np.ndarray) -> None:
        cap = self.ring.capacity
        while x.size:
            free = cap - len(self.ring)
            if free < min(x.size, cap // 2):
                self.perceive()
                free = cap - len(self.ring)
            piece, x = x[:free], x[free:]
            self.push(piece)

    def input_finished(self) -> None:
        """No more audio: the resampler's tail is flushed and the last partial chunk will be
        padded with silence frames (``log(log_floor)``) and decided."""
        if self._finished:
            return
        tail = self._converter.flush()
        if tail.size:
            self._push_lossless(tail)
        self._t_finished = _now()
        self._finished = True
        self._data_ready.set()

    def mark_finished(self) -> None:
        """Producer-side end of input for the threaded loop (no conversion flush)."""
        self._t_finished = _now()
        self._finished = True
        self._data_ready.set()

    def is_ready(self) -> bool:
        """True when :meth:`decode` has something to do (a chunk, or the end-of-input flush)."""
        self.perceive()
        if _ready(self.fbank) >= self._chunk_frames:
            return True
        if self._fb_finished:
            return _ready(self.fbank) > 0 or not self._flushed
        return False

    @property
    def exhausted(self) -> bool:
        """Input finished and every chunk taken (only the end-of-input flush remains)."""
        return self._fb_finished and _ready(self.fbank) == 0

    def decode(self) -> list[dict[str, Any]]:
        """Decide one chunk (or flush at the end) and return its events, latency stamped."""
        work = self.next_chunk()
        if work is not None:
            events = self.decide(work)
            return self.emit(events, work)
        if self._fb_finished and not self._flushed:
            return self.emit(self.flush(), None)
        return []

    def get_result(self) -> Result:
        """A snapshot of everything produced so far."""
        stats = self.ring.stats()
        with self._result_lock:
            notes = list(self._converter.notes()) + list(self._notes)
            dropped = stats.dropped_samples - self._drop_base
            if dropped:
                notes.append(f"{dropped} samples ({dropped / self.sample_rate:.2f} s) were"
                             " dropped at the ring because decoding fell behind")
            if self.engine.encoder.note:
                notes.append(self.engine.encoder.note)
            return Result(
                captions=list(self._captions), partial=self.policy.partial_text,
                alerts=list(self._alerts), answers=list(self._answers),
                instructions=list(self._instructions), events=list(self._events),
                chunks=self._chunk_index,
                audio_s=(self._fb_samples + self._segments[-1][1]) / self.sample_rate,
                dropped_samples=dropped, notes=notes, instruction=self._instruction,
                outputs=list(self._outputs) if self.record_outputs else None,
                captions_dropped=self._captions_dropped)

    def note(self, text: str) -> None:
        with self._result_lock:
            self._notes.append(text)

    @property
    def state(self) -> dict[str, np.ndarray]:
        """Copy of the current model state tensors."""
        return {k: v.copy() for k, v in self._state.items()}

    @property
    def instruction(self) -> str:
        return self._instruction

    def set_instruction(self, text: str | None, *, source: str = "api",
                        wait: bool = True) -> None:
        """Change the instruction; it takes effect at the next chunk boundary.

        ``wait=True`` encodes on the calling thread; ``wait=False`` encodes on the engine's
        worker thread (the decide stage never waits for it). An ``instruction`` event is
        emitted when it takes effect. ``None`` or ``""`` clears the instruction.
        """
        text = (text or "").strip()
        t0 = _now()
        if wait:
            emb: Any = self.engine.encode_instruction(text)
        else:
            emb = self.engine.submit(self.engine.encode_instruction, text)
        self._pending_instr.append((emb, text, source, t0))

    # ------------------------------------------------------------------ stages
    def perceive(self) -> None:
        """Perceive stage, part 1: move everything in the ring into the fbank."""
        if self._fb_finished:
            return
        finished = self._finished  # read before popping: no sample can arrive after it
        t0 = _now()
        block = self.ring.pop(self.ring.capacity)
        if block.size:
            dropped = self.ring.stats().dropped_samples - self._drop_base
            abs_start = self._popped + dropped
            offset = abs_start - self._fb_samples
            if offset != self._segments[-1][1]:
                self._segments.append((self._fb_samples, offset))
            self._popped += block.size
            self.fbank.accept_waveform(block)
            if self.engine.second_pass is not None:
                self._remember(abs_start, block)
            if self._vad is not None:
                if abs_start != self._vad_next:  # audio was dropped at the ring
                    self._vad_segments.extend(self._vad.skip_to(abs_start / self.sample_rate))
                self._vad_segments.extend(self._vad.accept(block))
                self._vad_next = abs_start + block.size
            self._fb_samples += block.size
            self._pop_log.append((abs_start + block.size, (_now() - t0) / block.size))
        if finished and len(self.ring) == 0:
            self.fbank.input_finished()
            self._fb_finished = True

    def _remember(self, abs_start: int, block: np.ndarray, keep_s: float = 35.0) -> None:
        self._history.append((abs_start, block))
        self._history_len += block.size
        limit = int(keep_s * self.sample_rate)
        while self._history_len - self._history[0][1].size > limit:
            self._history_len -= self._history.popleft()[1].size

    def _audio_between(self, start_s: float, end_s: float) -> np.ndarray:
        a, b = int(start_s * self.sample_rate), int(end_s * self.sample_rate) + 1
        parts = [blk[max(0, a - s0):max(0, b - s0)] for s0, blk in list(self._history)
                 if s0 < b and s0 + blk.size > a]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def _to_abs(self, fb_index: int) -> int:
        for start, offset in reversed(self._segments):
            if fb_index >= start:
                return fb_index + offset
        return fb_index

    def _first_sample(self, frame: int) -> int:
        if self._snip:
            return frame * self._hop
        return frame * self._hop + self._hop // 2 - self._win // 2

    def _push_time(self, abs_last: int) -> tuple[int, int]:
        log = self._push_log
        while log and log[0][0] <= abs_last:
            if len(log) == 1:
                break
            log.popleft()
        if log and log[0][0] > abs_last:
            return log[0][1], log[0][2]
        t = _now()  # pushed by a native producer that does not stamp: use the time seen
        return t, t

    def _compute_per_sample(self, abs_last: int) -> float:
        """Perceive compute (ns per sample) of the ring block that held ``abs_last``."""
        log = self._pop_log
        while len(log) > 1 and log[0][0] <= abs_last:
            log.popleft()
        return log[0][1] if log else 0.0

    def next_chunk(self) -> _Work | None:
        """Perceive stage, part 2: the next chunk of fbank frames, stamped, or None."""
        self.perceive()
        t_pop = _now()
        ready = _ready(self.fbank)
        t = self._chunk_frames
        if ready >= t:
            frames = self.fbank.pop_frames(t)
            n_real = t
        elif self._fb_finished and ready > 0:
            real = self.fbank.pop_frames(ready)
            n_real = real.shape[0]
            frames = np.full((t, real.shape[1]), self._pad_value, np.float32)
            frames[:n_real] = real
        else:
            return None
        first = self._next_frame
        self._next_frame += n_real
        last_fb = min(self._first_sample(first + n_real - 1) + self._win, self._fb_samples) - 1
        first_fb = max(self._first_sample(first), 0)
        abs_first, abs_last = self._to_abs(first_fb), self._to_abs(max(last_fb, 0))
        timing = ChunkTiming(self._chunk_index, abs_first, abs_last + 1)
        timing.t_ring, timing.t_capture = self._push_time(abs_last)
        timing.dropped_samples = self.ring.stats().dropped_samples - self._drop_base
        timing.features_ns = int(self._compute_per_sample(abs_last) * n_real * self._hop
                                 + (_now() - t_pop))
        info = ChunkInfo(self._chunk_index, abs_first / self.sample_rate,
                         (abs_last + 1) / self.sample_rate, self._frame_s,
                         self._chunk_index * self._ctc_per_chunk)
        self._chunk_index += 1
        timing.t_features = _now()
        return _Work(np.ascontiguousarray(frames, np.float32), info, timing)

    def _apply_instructions(self, t: float) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while self._pending_instr:
            emb, text, source, t0 = self._pending_instr[0]
            if isinstance(emb, concurrent.futures.Future):
                if not emb.done():
                    break
                emb = emb.result()  # an encoder failure reaches the caller here
            self._pending_instr.popleft()
            self._embedding = emb
            self._instruction = text
            meaning: InstructionMeaning = self.policy.parse(text)
            self.policy.set_meaning(meaning)
            ev: dict[str, Any] = {"type": "instruction", "t": t, "text": text,
                                  "source": source, "encoder": self.engine.encoder.kind,
                                  "meaning": meaning.to_dict(), "_ref_ns": t0}
            if self.engine.encoder.note:
                ev["note"] = self.engine.encoder.note
            if meaning.intent == "none" and text.strip():
                ev["hint"] = self._not_understood()
            out.append(ev)
        return out

    def _not_understood(self) -> str:
        """What to say when no rule understood an instruction (it still reaches the model)."""
        policy = self.policy
        sounds = ", ".join(e.replace("_", " ") for e in policy.events
                           if e not in policy.never_target)
        return ("no rule understood this, so it asks for nothing (safety alerts stay on; the"
                " model still gets it as context). Rules understand: a sound to watch for ("
                f"{sounds}), \"when someone says WORD\", \"only emergencies\", \"just"
                " transcribe\", \"ignore the siren\"")

    def _safety_without_instruction(self, feeds: dict[str, np.ndarray],
                                    out: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Safety labels take the higher of their scores with and without the instruction
        (``PolicyConfig.safety_without_instruction``). The model state does not depend on the
        instruction, so the second step's new state is the first's and is dropped."""
        plain = self.engine.backend.run({**feeds, "instruction": np.zeros_like(
            feeds["instruction"])})
        events = np.array(out["event_logits"], copy=True)
        idx = self.engine.safety_recheck
        events[..., idx] = np.maximum(events[..., idx], plain["event_logits"][..., idx])
        return {**out, "event_logits": events}

    def decide(self, work: _Work) -> list[dict[str, Any]]:
        """Decide stage: model step + policy for one chunk; returns un-stamped events."""
        timing = work.timing
        timing.t_decide = _now()
        events = self._apply_instructions(work.info.end_s)
        feeds = {"fbank": work.fbank[None], "instruction": self._embedding[None], **self._state}
        out = self.engine.backend.run(feeds)
        if self.engine.safety_recheck.size and self._embedding.any():
            out = self._safety_without_instruction(feeds, out)
        timing.t_model = _now()
        self._state = {name: out[f"new_{name}"] for name in self.engine.state_names}
        if self.record_outputs:
            self._outputs.append({k: np.array(out[k][0], copy=True) for k in OUTPUT_HEADS})
        evs, requests = self.policy.step(out, work.info)
        events.extend(self._route_finals(evs))
        self._route_vad(work.info.end_s)
        for text in requests:
            self.set_instruction(text, source="spoken", wait=False)
        events.extend(self._collect_finals(block=False))
        while self._spoken:
            self.set_instruction(self._spoken.pop(0), source="spoken", wait=False)
        self._last_info = work.info
        timing.t_decision = _now()
        return events

    def flush(self) -> list[dict[str, Any]]:
        """End of input (after the last chunk): final caption, pending instructions and
        second-pass results (waited for)."""
        self._flushed = True
        info = self._last_info
        t = info.end_s if info else 0.0
        events = []
        for emb, *_ in self._pending_instr:
            if isinstance(emb, concurrent.futures.Future):
                emb.result()
        events.extend(self._apply_instructions(t))
        evs, requests = self.policy.flush(t, info)
        events.extend(self._route_finals(evs))
        if self._vad is not None:
            self._vad_segments.extend(self._vad.finish())
        self._route_vad(None)
        if requests:
            for text in requests:
                self.set_instruction(text, source="spoken", wait=True)
            events.extend(self._apply_instructions(t))
        events.extend(self._collect_finals(block=True))
        if self._spoken:
            while self._spoken:
                self.set_instruction(self._spoken.pop(0), source="spoken", wait=True)
            events.extend(self._apply_instructions(t))
        return events

    def _route_finals(self, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        sp = self.engine.second_pass
        if sp is None:
            return list(events)
        out = []
        for ev in events:
            if ev["type"] == "caption" and ev["final"] and self._vad is not None:
                continue  # silero endpoints: the VAD's utterances make the final captions
            if ev["type"] == "caption" and ev["final"] and not ev.get("dropped"):
                # CTC marks only the first and last emitted character: give Whisper the
                # word onsets and offsets around them too
                audio = self._audio_between(ev["start_s"] - SECOND_PASS_LEAD_S,
                                            ev["end_s"] + SECOND_PASS_TAIL_S)
                fut = self.engine.submit(sp.transcribe, audio)
                self._pending_finals.append((fut, ev, _now()))
            else:
                out.append(ev)
        return out

    def _route_vad(self, until_s: float | None) -> None:
        """Hand every VAD utterance decided by ``until_s`` (None: all) to the second pass."""
        sp = self.engine.second_pass
        while self._vad_segments and (until_s is None
                                      or self._vad_segments[0].decided_s <= until_s + 1e-9):
            seg = self._vad_segments.popleft()
            audio = self._audio_between(seg.start_s, seg.end_s)
            if audio.size == 0 or sp is None:
                continue
            t = seg.decided_s if until_s is None else until_s
            ev = {"type": "caption", "t": t, "final": True, "text": self.policy.partial_text,
                  "start_s": float(seg.start_s), "end_s": float(seg.end_s),
                  "endpoint": "silero", "_speak_max": self.policy.utterance_speak_max}
            self._pending_finals.append((self.engine.submit(sp.transcribe, audio), ev, _now()))

    def _collect_finals(self, *, block: bool) -> list[dict[str, Any]]:
        out = []
        while self._pending_finals:
            fut, ev, t0 = self._pending_finals[0]
            if not block and not fut.done():
                break
            self._pending_finals.popleft()
            res = fut.result()  # a second-pass failure reaches the caller here
            text = getattr(res, "text", res)
            answered = bool(ev.pop("_answered", False))  # the model answered it already
            speak_max = float(ev.pop("_speak_max", 0.0))
            ev = dict(ev, draft=ev["text"], text=str(text).strip(), second_pass=True,
                      _ref_ns=t0)
            out.append(ev)
            for alert in self.policy.final_keyword_alerts(ev["text"], ev["t"],
                                                          ev.get("start_s", ev["t"])):
                out.append(dict(alert, _ref_ns=t0))
            for answer in self.policy.addressed(ev["text"], ev["t"], self._spoken,
                                                answered=answered, draft=ev["draft"],
                                                speak_max=speak_max):
                out.append(dict(answer, _ref_ns=t0))
        return out

    def emit(self, events: list[dict[str, Any]], work: _Work | None,
             sink: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
        """Respond stage: stamp ``latency_ms``, record, hand each event to ``sink``; then
        append the chunk's timing record. Returns the stamped events."""
        ref = work.timing.t_ring if work is not None else self._t_finished
        stamped = []
        for ev in events:
            t0 = ev.pop("_ref_ns", None) or ref
            now = _now()
            out = {"type": ev.pop("type"), "t": round(float(ev.pop("t")), 3),
                   "latency_ms": round((now - t0) / 1e6, 3) if t0 else None, **ev}
            self._record(out)
            if sink is not None:
                sink(out)
            stamped.append(out)
        if work is not None:
            work.timing.n_events = len(stamped)
            work.timing.t_emitted = _now()
            self.timings.append(work.timing)
        return stamped

    def _record(self, ev: dict[str, Any]) -> None:
        with self._result_lock:
            self._events.append(ev)
            kind = ev["type"]
            if kind == "caption" and ev["final"] and ev.get("dropped"):
                self._captions_dropped += 1
            elif kind == "caption" and ev["final"]:
                self._captions.append(ev)
                self.policy.context.captions.append((ev["end_s"], ev["text"]))
            elif kind == "alert":
                self._alerts.append(ev)
            elif kind == "answer":
                self._answers.append(ev)
            elif kind == "instruction":
                self._instructions.append(ev)

    def stats_event(self, t: float | None = None, **extra: Any) -> dict[str, Any]:
        """A ``stats`` event summarising the stream so far (emitted by loops and the CLI)."""
        res_stats = self.ring.stats()
        lat = percentiles([r.latency_ms() for r in self.timings.records()])
        with self._result_lock:
            n_alerts, n_captions = len(self._alerts), len(self._captions)
            n_dropped = self._captions_dropped
        info = self._last_info
        return {"type": "stats", "t": round(t if t is not None else (info.end_s if info else 0.0),
                                            3),
                "latency_ms": None, "chunks": self._chunk_index, "alerts": n_alerts,
                "captions": n_captions, "captions_dropped": n_dropped,
                "dropped_samples": res_stats.dropped_samples - self._drop_base,
                "overflow_events": res_stats.overflow_events,
                "chunk_latency_ms": {k: (round(v, 3) if np.isfinite(v) else None)
                                     for k, v in lat.items() if k != "n"},
                **extra}

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Cancel pending worker jobs of this stream (idempotent)."""
        self._closed = True
        for fut, *_ in list(self._pending_finals):
            fut.cancel()
        for emb, *_ in list(self._pending_instr):
            if isinstance(emb, concurrent.futures.Future):
                emb.cancel()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
