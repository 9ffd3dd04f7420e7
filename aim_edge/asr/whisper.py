"""Whisper as a torch-free second pass: numpy log-mel, onnxruntime encoder/decoder, greedy.

The streaming student gives instant partial captions; at each end of utterance the runtime
hands the utterance's samples to :class:`WhisperSecondPass`, whose text replaces the partial
caption with a ``final`` one. Nothing here imports torch or transformers: the front end is
numpy, the network is two onnxruntime sessions, the text comes from the ``tokenizers`` package
(optional: ``pip install aim-edge[asr]``).

Front end (:func:`log_mel_spectrogram`), identical to Whisper's ``log_mel_spectrogram`` and to
Hugging Face's ``WhisperFeatureExtractor``: 16 kHz float32 in [-1, 1], padded (or trimmed) to
30 s; STFT with a 400-sample periodic Hann window, hop 160, centred with reflect padding, the
last frame dropped (3000 frames); power spectrum; 80 mel filters with the Slaney mel scale and
Slaney area normalisation (librosa's ``filters.mel(sr=16000, n_fft=400, n_mels=80)``, from
which Whisper's ``mel_filters.npz`` was made); ``log10(max(mel, 1e-10))``; clamp to
``max - 8``; ``(x + 4) / 4``.

Decoding (:meth:`WhisperSecondPass.decode_tokens`): prompt ``<|startoftranscript|>
<|notimestamps|>``, after ``<|startofprev|>`` and the tokens of :attr:`WhisperSecondPass.prompt`
when one is set (Whisper's "previous text" conditioning, openai-whisper's ``initial_prompt``:
it biases the words Whisper writes towards the prompt's, e.g. the wake phrase "Hey aim");
at every step the ``suppress_tokens`` of the model's config and, since no timestamps are
asked for, every timestamp token and ``<|notimestamps|>`` itself; at the first step
``begin_suppress_tokens`` (blank and end of text); argmax; stop at ``<|endoftext|>`` or at
``max_new_tokens`` (224, Whisper's ``sample_len``) or at the decoder's 448 positions, or
when greedy decoding loops (:func:`trailing_loop`): the same run of up to 16 tokens
``max_repeats`` times in a row at the end (default 4) is cut to its first copy and decoding
stops. On noisy speech tiny.en falls into such loops ("Mum and an optima, an optima, an
optima, ..." for "Mum has a doctor's appointment after work"), and one loop writes up to 224
tokens of nothing; openai-whisper retries at a higher temperature there, which would cost a
second decode on this CPU budget.

Export folder (``python -m export.whisper --out DIR``): ``whisper.json`` (files and decoding
rules), the int8 encoder and decoder ONNX files and ``tokenizer.json``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    AudioInputError,
    AudioTypeError,
    BundleError,
    ConfigError,
    OptionalDependencyError,
)

__all__ = [
    "CHUNK_SAMPLES",
    "FEATURE_CONFIG",
    "HOP_LENGTH",
    "N_FFT",
    "N_FRAMES",
    "N_MELS",
    "SAMPLE_RATE",
    "Transcript",
    "WhisperSecondPass",
    "log_mel_spectrogram",
    "mel_filters",
]

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
N_MELS = 80
CHUNK_SECONDS = 30
CHUNK_SAMPLES = CHUNK_SECONDS * SAMPLE_RATE  # 480000
N_FRAMES = CHUNK_SAMPLES // HOP_LENGTH  # 3000
LOG_FLOOR = 1e-10
CONFIG_FILE = "whisper.json"
ASR_HINT = "pip install aim-edge[asr]"


# ---------------------------------------------------------------------------------------------
# front end


# Slaney's mel scale (librosa ``htk=False``): linear below 1 kHz, logarithmic above
_F_SP = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel(freq: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa ``hz_to_mel(htk=False)``): linear below 1 kHz, log above."""
    freq = np.asarray(freq, dtype=np.float64)
    return np.where(freq >= _MIN_LOG_HZ,
                    _MIN_LOG_MEL + np.log(np.maximum(freq, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP,
                    freq / _F_SP)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL)),
                    _F_SP * mel)


@lru_cache(maxsize=4)
def mel_filters(n_mels: int = N_MELS, n_fft: int = N_FFT,
                sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Slaney-normalised triangular mel filters, shape ``(n_mels, n_fft // 2 + 1)``, float64.

    Follows librosa's ``filters.mel(sr, n_fft, n_mels, fmin=0, fmax=sr/2, htk=False,
    norm="slaney")`` step by step (Whisper's ``mel_filters.npz`` is that array in float32).
    The result is read-only and cached.
    """
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    mel_points = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2.0),
                                        n_mels + 2))
    fdiff = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2:n_mels + 2] - mel_points[:n_mels]))[:, None]
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    n = np.arange(N_FFT)
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)  # periodic, as torch.hann_window
    w.setflags(write=False)
    return w


def _check_samples(samples: Any) -> np.ndarray:
    arr = np.asarray(samples)
    if arr.dtype == np.int16:
        arr = arr.astype(np.float32) / 32768.0
    elif arr.dtype not in (np.float32, np.float64):
        raise AudioTypeError(
            f"samples have dtype {arr.dtype}; expected float32/float64 in [-1, 1] or int16")
    if arr.ndim != 1:
        raise AudioInputError(
            f"samples have shape {arr.shape}; expected one channel, shape (n,), at 16 kHz")
    if not np.all(np.isfinite(arr)):
        raise AudioInputError("samples contain NaN or inf")
    return arr


def log_mel_spectrogram(samples: Any, *, dtype: Any = np.float32) -> np.ndarray:
    """Whisper's log-mel features of one utterance: shape ``(80, 3000)``.

    Parameters
    ----------
    samples : 1-D float32/float64 in [-1, 1] (or int16) at 16 kHz, any length; longer than
        30 s is trimmed to the first 30 s, shorter is zero-padded to 30 s (as Whisper does).
    dtype : dtype of the result (computation is float64 either way).

    Only the frames that overlap the audio are transformed; the rest of the 30 s window is
    silence whose power is exactly zero, so the result is identical to transforming it all.
    """
    x = _check_samples(samples).astype(np.float64)[:CHUNK_SAMPLES]
    n = x.shape[0]
    half = N_FFT // 2
    # Frame i covers padded[i*hop, i*hop + n_fft) of the 30 s window (audio, then zeros)
    # reflect-padded by n_fft/2 on both sides (centred STFT). Frames past the audio are all
    # zeros -- unless the audio reaches the right reflection, which mirrors the window's last
    # n_fft/2 + 1 samples -- so only the first ``active`` frames are transformed.
    if n == 0:
        active, padded = 0, None
    elif n >= CHUNK_SAMPLES - half - 1:
        active = N_FRAMES
        window = np.zeros(CHUNK_SAMPLES, dtype=np.float64)
        window[:n] = x
        padded = np.pad(window, half, mode="reflect")
    else:
        active = min(N_FRAMES, -(-(half + n) // HOP_LENGTH))
        padded = np.zeros((active - 1) * HOP_LENGTH + N_FFT, np.float64)
        padded[half:half + n] = x
        head = np.zeros(half + 1, dtype=np.float64)
        head[:min(n, half + 1)] = x[:half + 1]
        padded[:half] = head[half:0:-1]  # reflect: padded[half - k] = window[k]
    log_spec = np.full((N_MELS, N_FRAMES), np.log10(LOG_FLOOR), dtype=np.float64)
    if active:
        frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH][:active]
        spec = np.fft.rfft(frames * _hann(), axis=-1)
        mel = mel_filters() @ (spec.real ** 2 + spec.imag ** 2).T
        log_spec[:, :active] = np.log10(np.maximum(mel, LOG_FLOOR))
    # the floor columns never exceed the active maximum's clamp unless everything is silent
    top = log_spec[:, :active].max() if active else np.log10(LOG_FLOOR)
    log_spec = np.maximum(log_spec, max(top, np.log10(LOG_FLOOR)) - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(dtype)


# ---------------------------------------------------------------------------------------------
# second pass


@dataclasses.dataclass(frozen=True)
class Transcript:
    """One second-pass result.

    Attributes
    ----------
    text : the caption (stripped; empty when Whisper heard no words).
    tokens : generated token ids (no prompt, no end of text).
    audio_s : length of the audio given, in seconds (only the first 30 s are transcribed).
    features_ms, encoder_ms, decoder_ms, total_ms : wall time of each stage, milliseconds.
    cpu_ms : CPU time of the calling thread (equals the compute with ``threads=1``).
    steps : decoder calls made.
    """

    text: str
    tokens: tuple[int, ...]
    audio_s: float
    features_ms: float
    encoder_ms: float
    decoder_ms: float
    total_ms: float
    cpu_ms: float
    steps: int


def _load_tokenizer(path: Path):
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise OptionalDependencyError("Whisper second pass (the tokenizers package)",
                                      ASR_HINT) from exc
    return Tokenizer.from_file(str(path))


def _ort():
    try:
        import onnxruntime
    except ImportError as exc:  # a core dependency, but keep the message helpful
        raise OptionalDependencyError("onnxruntime", "pip install onnxruntime") from exc
    return onnxruntime


# The front end's settings as whisper.json records them; from_dir refuses any other values.
FEATURE_CONFIG = {"sample_rate": SAMPLE_RATE, "n_fft": N_FFT, "hop_length": HOP_LENGTH,
                  "n_mels": N_MELS, "chunk_seconds": CHUNK_SECONDS}


#: Longest run of tokens :func:`trailing_loop` looks for.
MAX_LOOP_TOKENS = 16


def trailing_loop(tokens: Sequence[int], repeats: int,
                  max_len: int = MAX_LOOP_TOKENS) -> int | None:
    """Where to cut ``tokens`` when they end with a run of 1 to ``max_len`` tokens repeated
    ``repeats`` times in a row (the shortest such run): the index just after its first copy.
    None when they do not."""
    n_tok = len(tokens)
    for n in range(1, min(max_len, n_tok // repeats) + 1):
        tail = tokens[n_tok - n:]
        if all(tokens[n_tok - (k + 1) * n:n_tok - k * n] == tail for k in range(1, repeats)):
            return n_tok - (repeats - 1) * n
    return None


class WhisperSecondPass:
    """Whisper (tiny.en) end-of-utterance transcription on onnxruntime, torch-free.

    Build it with :meth:`from_dir`; one instance is immutable after construction and may be
    shared: :meth:`transcribe` keeps all decoding state local (onnxruntime sessions are safe to
    run from several threads).

    Parameters
    ----------
    encoder, decoder : paths of the encoder and merged decoder (with KV cache) ONNX files, as
        written by ``python -m export.whisper``.
    tokenizer : path of Whisper's ``tokenizer.json``.
    decoding : the ``decoding`` rules of ``whisper.json`` (prompt, end of text, suppress
        lists, ...).
    threads : onnxruntime intra-op threads (1 leaves the other core to audio and features).
    providers : onnxruntime execution providers (default: CPU).
    max_new_tokens : at most this many tokens per utterance (Whisper's ``sample_len``: 224).
    max_repeats : a run of tokens repeated this many times in a row ends decoding, cut to its
        first copy (:func:`trailing_loop`; 0 = off).
    prompt : text Whisper is told came before each utterance (``None``: none); see
        :attr:`prompt`.
    """

    def __init__(self, encoder: str | Path, decoder: str | Path, tokenizer: str | Path,
                 decoding: Mapping[str, Any], *, threads: int = 1,
                 providers: Sequence[str] | None = None, max_new_tokens: int = 224,
                 prompt: str | None = None, max_repeats: int = 4) -> None:
        if not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"threads={threads!r}, expected an int >= 1")
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens={max_new_tokens!r}, expected an int >= 1")
        if isinstance(max_repeats, bool) or not isinstance(max_repeats, int) or (
                max_repeats != 0 and max_repeats < 2):
            raise ConfigError(f"max_repeats={max_repeats!r}, expected 0 (off) or an int >= 2")
        self.max_repeats = max_repeats
        self._tokenizer = _load_tokenizer(Path(tokenizer))
        ort = _ort()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        providers = list(providers or ["CPUExecutionProvider"])
        self._encoder = ort.InferenceSession(str(encoder), opts, providers=providers)
        self._decoder = ort.InferenceSession(str(decoder), opts, providers=providers)
        self.threads = threads
        self.max_new_tokens = max_new_tokens

        rules = dict(decoding)
        self.sot_sequence = tuple(int(t) for t in rules["sot_sequence"])
        self.eot = int(rules["eot"])
        self.no_timestamps = int(rules["no_timestamps"])
        self.timestamp_begin = int(rules["timestamp_begin"])
        self.max_target_positions = int(rules["max_target_positions"])
        vocab = int(rules["vocab_size"])
        if self.no_timestamps not in self.sot_sequence:
            raise BundleError("whisper.json: decoding.sot_sequence must end the prompt with "
                              f"<|notimestamps|> ({self.no_timestamps}); timestamps mode is not "
                              "supported by this decoder")
        # Every step: the config's suppress list plus, in no-timestamps mode, every timestamp
        # token and <|notimestamps|> (they carry no text; the model was told not to emit them).
        suppress = np.zeros(vocab, dtype=bool)
        suppress[np.asarray(rules["suppress_tokens"], dtype=np.int64)] = True
        suppress[self.timestamp_begin:] = True
        suppress[self.no_timestamps] = True
        suppress.setflags(write=False)
        begin = suppress.copy()
        begin[np.asarray(rules["begin_suppress_tokens"], dtype=np.int64)] = True
        begin.setflags(write=False)
        self._suppress, self._suppress_begin = suppress, begin

        names = [i.name for i in self._decoder.get_inputs()]
        self._past_names = [n for n in names if n.startswith("past_key_values.")]
        self._present_names = ["present." + n[len("past_key_values."):]
                               for n in self._past_names]
        outputs = [o.name for o in self._decoder.get_outputs()]
        missing = [n for n in ("input_ids", "encoder_hidden_states", "use_cache_branch")
                   if n not in names] + [n for n in ["logits", *self._present_names]
                                         if n not in outputs]
        if missing or not self._past_names:
            raise BundleError(f"{decoder}: not a merged Whisper decoder with KV cache (missing "
                              f"{missing or 'past_key_values.*'}); re-run python -m export.whisper")
        shapes = {i.name: i.shape for i in self._decoder.get_inputs()}
        first = shapes[self._past_names[0]]
        self._heads, self._head_dim = int(first[1]), int(first[3])
        self._prompt_ids: tuple[int, ...] = ()
        self._prompt: str | None = None
        self.prompt = prompt

    @property
    def prompt(self) -> str | None:
        """Text given to Whisper as what came before each utterance (``<|startofprev|>``), or
        None. Words in it become likelier in the transcript: the runtime's wake phrase ("Hey
        aim", a word Whisper does not know) and watched keywords. At most the last 223 tokens
        are used, as Whisper does."""
        return self._prompt

    @prompt.setter
    def prompt(self, text: str | None) -> None:
        if text is None or not str(text).strip():
            self._prompt, self._prompt_ids = None, ()
            return
        prev = self._tokenizer.token_to_id("<|startofprev|>")
        if prev is None:
            raise BundleError("tokenizer.json has no <|startofprev|> token; this Whisper export "
                              "cannot take a prompt (set prompt=None)")
        ids = self._tokenizer.encode(" " + str(text).strip(), add_special_tokens=False).ids
        self._prompt = str(text).strip()
        self._prompt_ids = (int(prev), *ids[-(self.max_target_positions // 2 - 1):])

    # ----------------------------------------------------------------------------------------
    @classmethod
    def from_dir(cls, path: str | Path, threads: int = 1, *,
                 providers: Sequence[str] | None = None,
                 max_new_tokens: int = 224, prompt: str | None = None,
                 max_repeats: int = 4) -> WhisperSecondPass:
        """Load an export folder (``whisper.json`` + ONNX files + ``tokenizer.json``).

        Raises
        ------
        BundleError
            ``whisper.json`` missing or malformed, a listed file missing, or front-end settings
            that differ from this runtime's (the field is named).
        OptionalDependencyError
            The ``tokenizers`` package is not installed (``pip install aim-edge[asr]``).
        """
        root = Path(path)
        cfg_path = root / CONFIG_FILE
        if not cfg_path.is_file():
            raise BundleError(f"{root}: no {CONFIG_FILE} (build one with "
                              "python -m export.whisper --out DIR)")
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BundleError(f"{cfg_path}: not valid JSON ({exc})") from exc
        for key in ("files", "decoding", "features"):
            if not isinstance(cfg.get(key), dict):
                raise BundleError(f"{cfg_path}: missing object field {key!r}")
        for key, ours in FEATURE_CONFIG.items():
            theirs = cfg["features"].get(key)
            if theirs != ours:
                raise BundleError(f"{cfg_path}: features.{key} = {theirs!r}, this runtime's "
                                  f"Whisper front end has {ours!r}")
        files = {}
        for key in ("encoder", "decoder", "tokenizer"):
            name = cfg["files"].get(key)
            if not isinstance(name, str) or Path(name).is_absolute() or ".." in Path(name).parts:
                raise BundleError(f"{cfg_path}: files.{key} = {name!r} must be a relative path")
            if not (root / name).is_file():
                raise BundleError(f"{root}: {name} (files.{key}) is missing")
            files[key] = root / name
        try:
            return cls(files["encoder"], files["decoder"], files["tokenizer"], cfg["decoding"],
                       threads=threads, providers=providers, max_new_tokens=max_new_tokens,
                       prompt=prompt, max_repeats=max_repeats)
        except KeyError as exc:
            raise BundleError(f"{cfg_path}: decoding.{exc.args[0]} is missing") from None

    # ----------------------------------------------------------------------------------------
    def encode(self, features: np.ndarray) -> np.ndarray:
        """Encoder output ``(1, 1500, d_model)`` for features ``(80, 3000)``."""
        x = np.ascontiguousarray(features, dtype=np.float32).reshape(1, N_MELS, N_FRAMES)
        return self._encoder.run(None, {"input_features": x})[0]

    def decode_tokens(self, encoder_out: np.ndarray) -> tuple[list[int], int]:
        """Greedy decoding with the KV cache; returns (tokens, decoder calls)."""
        prompt = np.asarray([(*self._prompt_ids, *self.sot_sequence)], dtype=np.int64)
        empty = np.zeros((1, self._heads, 0, self._head_dim), dtype=np.float32)
        feeds: dict[str, Any] = {name: empty for name in self._past_names}
        feeds["input_ids"] = prompt
        feeds["encoder_hidden_states"] = encoder_out
        feeds["use_cache_branch"] = np.zeros(1, dtype=bool)
        out_names = ["logits", *self._present_names]
        limit = min(self.max_new_tokens, self.max_target_positions - prompt.shape[1])
        tokens: list[int] = []
        steps = 0
        cache_on = np.ones(1, dtype=bool)
        for step in range(limit):
            outputs = self._decoder.run(out_names, feeds)
            steps += 1
            logits = outputs[0][0, -1].astype(np.float32, copy=True)
            logits[self._suppress_begin if step == 0 else self._suppress] = -np.inf
            token = int(np.argmax(logits))
            if token == self.eot:
                break
            tokens.append(token)
            cut = trailing_loop(tokens, self.max_repeats) if self.max_repeats else None
            if cut is not None:
                del tokens[cut:]  # a loop: keep its first copy and stop
                break
            for past, present in zip(self._past_names, outputs[1:], strict=True):
                # the cross-attention cache is computed once (first call) and kept
                if step == 0 or ".decoder." in past:
                    feeds[past] = present
            feeds["input_ids"] = np.asarray([[token]], dtype=np.int64)
            feeds["use_cache_branch"] = cache_on
        return tokens, steps

    def text(self, tokens: Sequence[int]) -> str:
        """Text of generated tokens (special and timestamp tokens dropped)."""
        return self._tokenizer.decode([t for t in tokens if t < self.eot]).strip()

    def transcribe_detailed(self, samples: Any) -> Transcript:
        """Transcribe one utterance and report timings (see :class:`Transcript`).

        Parameters
        ----------
        samples : 1-D float32 in [-1, 1] (float64 and int16 accepted) at 16 kHz; only the
            first 30 s are transcribed.
        """
        t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        x = _check_samples(samples)
        feats = log_mel_spectrogram(x)
        t1 = time.perf_counter_ns()
        enc = self.encode(feats)
        t2 = time.perf_counter_ns()
        tokens, steps = self.decode_tokens(enc)
        text = self.text(tokens)
        t3, c3 = time.perf_counter_ns(), time.thread_time_ns()
        return Transcript(text=text, tokens=tuple(tokens), audio_s=x.shape[0] / SAMPLE_RATE,
                          features_ms=(t1 - t0) / 1e6, encoder_ms=(t2 - t1) / 1e6,
                          decoder_ms=(t3 - t2) / 1e6, total_ms=(t3 - t0) / 1e6,
                          cpu_ms=(c3 - c0) / 1e6, steps=steps)

    def transcribe(self, samples: Any) -> str:
        """The caption of one utterance (float32 16 kHz samples in [-1, 1])."""
        return self.transcribe_detailed(samples).text
