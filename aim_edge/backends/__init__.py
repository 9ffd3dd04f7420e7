"""Inference backends behind one small protocol.

A backend runs one streaming step of the model: it takes the named input arrays
(``fbank`` (1, chunk_frames, n_mels), ``instruction`` (1, instruction_dim) and one array per
state tensor of the manifest) and returns the named outputs (``ctc_logprobs``, ``speak_logit``,
``intent_logits``, ``event_logits`` and ``new_<state>`` for each state tensor). It holds no
stream state: one backend serves every stream of an :class:`~aim_edge.engine.Engine`.

=====================  ==========================================  ============================
name                   package                                     artifacts
=====================  ==========================================  ============================
``onnxruntime``        onnxruntime (a dependency)                  ``format: onnx``
``litert``             ai-edge-litert (``pip install aim-edge[tflite]``)  ``format: tflite``
``tflite-runtime``     tflite-runtime (legacy: Python <= 3.11, numpy < 2;  ``format: tflite``
                       refused without a passing known-answer check)
=====================  ==========================================  ============================

A missing package raises :class:`~aim_edge.errors.BackendUnavailableError` (an ``ImportError``)
with the install hint when the backend is first created, never when ``aim_edge`` is imported.

Any object with ``name``, ``description``, ``run(feeds) -> dict`` and ``close()`` can be passed
to :meth:`Engine.from_bundle(backend=...) <aim_edge.engine.Engine.from_bundle>` (tests use a
scripted fake).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ..errors import BackendUnavailableError, BundleError, ConfigError

if TYPE_CHECKING:
    from ..bundle import Artifact, Bundle

__all__ = [
    "BACKENDS",
    "OUTPUT_HEADS",
    "Backend",
    "available_backends",
    "check_known_answer",
    "create_backend",
    "known_answer_feeds",
    "run_known_answer",
    "zero_feeds",
]

#: Backend name -> (artifact format, module that implements it, import name of the package).
BACKENDS: dict[str, tuple[str, str, str]] = {
    "onnxruntime": ("onnx", "onnx_runtime", "onnxruntime"),
    "litert": ("tflite", "litert", "ai_edge_litert"),
    "tflite-runtime": ("tflite", "tflite_legacy", "tflite_runtime"),
}
_ALIASES = {"ort": "onnxruntime", "onnx": "onnxruntime", "ai-edge-litert": "litert",
            "tflite": "litert", "tflite_runtime": "tflite-runtime"}

#: Per-chunk outputs every step model has (besides ``new_<state>``).
OUTPUT_HEADS = ("ctc_logprobs", "speak_logit", "intent_logits", "event_logits")


@runtime_checkable
class Backend(Protocol):
    """What the engine needs from an inference backend."""

    name: str
    description: str

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One model step: named inputs -> named outputs (fresh arrays the caller may keep)."""
        ...

    def close(self) -> None:
        """Release the session (idempotent)."""
        ...


def canonical_name(name: str) -> str:
    key = _ALIASES.get(name, name)
    if key not in BACKENDS:
        raise ConfigError(
            f"backend = {name!r} is unknown; choose one of {', '.join(BACKENDS)}")
    return key


def available_backends() -> dict[str, str | None]:
    """``{backend: version or None}`` without importing anything heavy beyond find_spec."""
    import importlib.metadata
    import importlib.util

    dists = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
             "litert": ("ai-edge-litert",), "tflite-runtime": ("tflite-runtime",)}
    out: dict[str, str | None] = {}
    for name, (_, _, module) in BACKENDS.items():
        if importlib.util.find_spec(module) is None:
            out[name] = None
            continue
        version = "unknown version"
        for dist in dists[name]:
            try:
                version = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
        out[name] = version
    return out


def create_backend(name: str, bundle: Bundle, *, precision: str | None = None,
                   threads: int = 1, **options: Any) -> Backend:
    """Open the bundle's step artifact for backend ``name``.

    Parameters
    ----------
    name : ``onnxruntime`` | ``litert`` | ``tflite-runtime``.
    bundle : the loaded bundle.
    precision : artifact precision (``fp32``, ``int8-dynamic``, ...); None = the smallest
        artifact of the backend's format.
    threads : intra-op threads (default 1: one inference thread is right at this model size).
    options : backend specific (onnxruntime: ``providers``, ``provider_options``,
        ``cache_dir``, ``warmup``).
    """
    import importlib

    key = canonical_name(name)
    fmt, module_name, _ = BACKENDS[key]
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads = {threads!r} is invalid: expected an int >= 1")
    module = importlib.import_module(f"{__name__}.{module_name}")
    module.require()  # a missing package is named before a missing artifact
    artifact = bundle.artifact(format=fmt, precision=precision)
    return module.open_backend(bundle, artifact, threads=threads, **options)


def zero_feeds(bundle: Bundle) -> dict[str, np.ndarray]:
    """Inputs of one step with silence-like features, no instruction and the initial state."""
    feeds = {
        "fbank": np.full((1, bundle.chunk_frames, bundle.features.n_mels),
                         np.log(bundle.features.log_floor), np.float32),
        "instruction": np.zeros((1, bundle.instruction_dim), np.float32),
    }
    for s in bundle.state:
        feeds[s.name] = np.full(s.shape, s.init, dtype=s.dtype)
    return feeds


def known_answer_feeds(bundle: Bundle, n_chunks: int) -> list[np.ndarray]:
    """Deterministic fbank chunks for the known-answer check (a formula, no data file).

    ``x[i, m] = -8 + 3 sin(i / 7 + m / 5) + 2 cos(i m / 31)`` over absolute frame ``i`` and mel
    bin ``m``: log-mel-like values that exercise every bin and change from chunk to chunk.
    """
    t, m = bundle.chunk_frames, bundle.features.n_mels
    i = np.arange(n_chunks * t, dtype=np.float64)[:, None]
    k = np.arange(m, dtype=np.float64)[None, :]
    x = -8.0 + 3.0 * np.sin(i / 7.0 + k / 5.0) + 2.0 * np.cos(i * k / 31.0)
    return [c[None].astype(np.float32) for c in x.reshape(n_chunks, t, m)]


def run_known_answer(backend: Backend, bundle: Bundle, n_chunks: int = 8
                     ) -> dict[str, list[Any]]:
    """Stream :func:`known_answer_feeds` through ``backend`` with state fed back.

    Returns ``{"speak_logit": [n floats], "event_logits": [[E floats] x n]}``: the values an
    exporter stores as ``parity.known_answer`` (plus ``chunks`` and ``atol``) of an artifact.
    """
    feeds = zero_feeds(bundle)
    speak, events = [], []
    for chunk in known_answer_feeds(bundle, n_chunks):
        feeds["fbank"] = chunk
        out = backend.run(feeds)
        speak.append(float(np.asarray(out["speak_logit"]).reshape(-1)[0]))
        events.append([float(v) for v in np.asarray(out["event_logits"]).reshape(-1)])
        for s in bundle.state:
            feeds[s.name] = out[f"new_{s.name}"]
    return {"speak_logit": speak, "event_logits": events}


def check_known_answer(backend: Backend, bundle: Bundle, artifact: Artifact) -> float | None:
    """Compare ``backend`` with the artifact's ``parity.known_answer``; return the max abs
    error, None when the manifest has no known answer. Raises BackendUnavailableError when the
    backend computes something else (the model cannot be trusted on it)."""
    ka = artifact.parity.get("known_answer") if artifact.parity else None
    if not ka:
        return None
    n = int(ka.get("chunks", len(ka["speak_logit"])))
    atol = float(ka.get("atol", 1e-3))
    got = run_known_answer(backend, bundle, n)
    err = 0.0
    for key in ("speak_logit", "event_logits"):
        ref = np.asarray(ka[key], np.float64)
        have = np.asarray(got[key], np.float64)
        if ref.shape != have.shape:
            raise BundleError(f"{artifact.file}: known_answer.{key} has shape {ref.shape}, the"
                              f" model gives {have.shape}")
        err = max(err, float(np.abs(ref - have).max()) if ref.size else 0.0)
    if err > atol:
        raise BackendUnavailableError(
            f"{backend.name} with {artifact.file}",
            f"the known-answer check failed (max abs error {err:.3g} > atol {atol:g}): this"
            " interpreter computes wrong results for this model; use ai-edge-litert"
            " (`pip install aim-edge[tflite]`) or the onnxruntime backend")
    return err


def check_input_shapes(name: str, artifact: Artifact, bundle: Bundle,
                       shapes: Mapping[str, Sequence[Any]]) -> None:
    """Refuse a model file whose declared input shapes (``{input: dims}``; a dim that is not
    an int is dynamic) differ from the shapes the manifest feeds it (chunk, instruction and
    state sizes), naming the input and both shapes."""
    for key, feed in zero_feeds(bundle).items():
        dims = shapes.get(key)
        if dims is None:
            continue
        dims = list(dims)
        fixed = [d if isinstance(d, (int, np.integer)) and d > 0 else None for d in dims]
        if len(fixed) != feed.ndim or any(d is not None and d != f
                                          for d, f in zip(fixed, feed.shape, strict=False)):
            where = "fbank chunk" if key == "fbank" else (
                "instruction embedding" if key == "instruction" else f"state {key}")
            raise BundleError(
                f"{artifact.file} does not match the manifest ({name}): its input {key!r} has"
                f" shape {[d if d is not None else '?' for d in fixed]}, the manifest's"
                f" {where} is {list(feed.shape)}; the model file and manifest do not belong"
                " together")


def check_io(name: str, artifact: Artifact, bundle: Bundle, inputs: Sequence[str],
             outputs: Sequence[str]) -> None:
    """Refuse a model file whose input/output names do not match the manifest's contract."""
    want_in = {"fbank", "instruction", *(s.name for s in bundle.state)}
    want_out = {*OUTPUT_HEADS, *(f"new_{s.name}" for s in bundle.state)}
    missing_in = sorted(want_in - set(inputs))
    missing_out = sorted(want_out - set(outputs))
    if missing_in or missing_out:
        raise BundleError(
            f"{artifact.file} does not match the manifest ({name}): missing inputs"
            f" {missing_in}, missing outputs {missing_out}; the model has inputs"
            f" {sorted(inputs)} and outputs {sorted(outputs)}")
