"""The ai-edge-litert backend (TFLite models): ``pip install aim-edge[tflite]``.

Uses ``ai_edge_litert.interpreter.Interpreter(model_path=..., num_threads=...)`` and its
signature runner (``serving_default`` unless the model has exactly one other signature): the
signature's input names are the manifest's (``fbank``, ``instruction``, state names) and its
outputs are returned as a dict, as litert-torch converts a module whose ``forward`` returns a
dict. When the artifact's manifest entry carries ``parity.known_answer``, it is checked at load.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BackendUnavailableError, BundleError
from . import check_io, check_known_answer, zero_feeds

if TYPE_CHECKING:
    from ..bundle import Artifact, Bundle

__all__ = ["LiteRTBackend", "open_backend", "require", "signature_backend"]

HINT = "`pip install aim-edge[tflite]` (or `pip install ai-edge-litert`)"


def _import_interpreter():  # noqa: ANN202
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise BackendUnavailableError("the ai-edge-litert backend", HINT) from None
    return Interpreter


def require() -> None:
    """Raise BackendUnavailableError when ai-edge-litert cannot be imported."""
    _import_interpreter()


def _signature_runner(interpreter: Any, file: str) -> Any:
    sigs = interpreter.get_signature_list()
    if not sigs:
        raise BundleError(f"{file} has no signature: re-export it with litert-torch, whose"
                          " converted modules carry a serving_default signature")
    key = "serving_default" if "serving_default" in sigs else sorted(sigs)[0]
    return interpreter.get_signature_runner(key), sigs[key]


class _SignatureBackend:
    """A TFLite interpreter driven through a signature runner (shared by both TFLite backends)."""

    name = "tflite"

    def __init__(self, interpreter: Any, bundle: Bundle, artifact: Artifact, threads: int,
                 version: str, warmup: int) -> None:
        self.artifact = artifact
        self.interpreter = interpreter
        self.runner, sig = _signature_runner(interpreter, artifact.file)
        self.input_names = tuple(sig["inputs"])
        self.output_names = tuple(sig["outputs"])
        check_io(self.name, artifact, bundle, self.input_names, self.output_names)
        self.threads = threads
        self.description = (f"{self.name} {version}, {artifact.file} ({artifact.precision}),"
                            f" {threads} thread(s)")
        feeds = zero_feeds(bundle)
        for _ in range(warmup):
            try:
                self.run(feeds)
            except Exception as exc:  # the interpreter's own error types
                raise BundleError(
                    f"{artifact.file}: one step with the manifest's input shapes fails ({exc});"
                    " the model file and manifest do not belong together") from exc

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.runner(**{k: np.ascontiguousarray(feeds[k]) for k in self.input_names})
        # the runner may hand back views of interpreter buffers: copy what we keep
        return {k: np.array(v, copy=True) for k, v in out.items()}

    def close(self) -> None:
        self.runner = None
        self.interpreter = None


class LiteRTBackend(_SignatureBackend):
    name = "litert"


def signature_backend(cls: type[_SignatureBackend], interpreter_cls: Any, bundle: Bundle,
                      artifact: Artifact, threads: int, version: str, warmup: int
                      ) -> _SignatureBackend:
    try:
        interpreter = interpreter_cls(model_path=str(artifact.path), num_threads=threads)
    except (ValueError, RuntimeError) as exc:
        raise BundleError(f"{cls.name} cannot load {artifact.file}: {exc}") from exc
    return cls(interpreter, bundle, artifact, threads, version, warmup)


def open_backend(bundle: Bundle, artifact: Artifact, *, threads: int = 1, warmup: int = 1,
                 **options: Any) -> LiteRTBackend:
    if options:
        raise TypeError(f"litert backend: unknown option(s) {sorted(options)}")
    interpreter_cls = _import_interpreter()
    import importlib.metadata

    try:
        version = importlib.metadata.version("ai-edge-litert")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown version"
    backend = signature_backend(LiteRTBackend, interpreter_cls, bundle, artifact, threads,
                                f"ai-edge-litert {version}", warmup)
    check_known_answer(backend, bundle, artifact)
    return backend  # type: ignore[return-value]
