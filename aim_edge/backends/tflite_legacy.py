"""Legacy backend: tflite-runtime 2.14 (the last release; Python <= 3.11, numpy < 2).

DESIGN.md records that tflite-runtime cannot load current op versions and computed silently
wrong results on a dynamic-int8 model, so it is supported only behind a load-time check:

1. Python <= 3.11 and numpy < 2 (its wheels are built for those);
2. a **known-answer check**: the artifact's manifest entry must carry ``parity.known_answer``
   (see :func:`aim_edge.backends.run_known_answer`) and the interpreter must reproduce it within
   its ``atol``. Without known-answer data the artifact is refused: there is no way to tell a
   right answer from a wrong one.

Prefer ai-edge-litert (``--backend litert``) wherever it installs.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BackendUnavailableError
from . import check_known_answer
from .litert import _SignatureBackend, signature_backend

if TYPE_CHECKING:
    from ..bundle import Artifact, Bundle

__all__ = ["TFLiteRuntimeBackend", "open_backend", "require"]

HINT = ("`pip install tflite-runtime` (legacy, Python <= 3.11 and numpy < 2 only); prefer"
        " `--backend litert` with `pip install aim-edge[tflite]`")


class TFLiteRuntimeBackend(_SignatureBackend):
    name = "tflite-runtime"


def _check_platform() -> None:
    if sys.version_info >= (3, 12):
        raise BackendUnavailableError(
            "the tflite-runtime backend",
            f"tflite-runtime supports Python <= 3.11, this is {sys.version.split()[0]}; use"
            " `--backend litert` (`pip install aim-edge[tflite]`)")
    if int(np.__version__.split(".")[0]) >= 2:
        raise BackendUnavailableError(
            "the tflite-runtime backend",
            f"tflite-runtime needs numpy < 2, this is numpy {np.__version__}; use"
            " `--backend litert` (`pip install aim-edge[tflite]`)")


def _import_interpreter():  # noqa: ANN202
    try:
        from tflite_runtime.interpreter import Interpreter
    except ImportError:
        raise BackendUnavailableError("the tflite-runtime backend", HINT) from None
    return Interpreter


def require() -> None:
    """Raise BackendUnavailableError when tflite-runtime is missing or cannot run here."""
    _import_interpreter()
    _check_platform()


def open_backend(bundle: Bundle, artifact: Artifact, *, threads: int = 1, warmup: int = 1,
                 **options: Any) -> TFLiteRuntimeBackend:
    if options:
        raise TypeError(f"tflite-runtime backend: unknown option(s) {sorted(options)}")
    Interpreter = _import_interpreter()  # noqa: N806
    _check_platform()
    if not (artifact.parity or {}).get("known_answer"):
        raise BackendUnavailableError(
            f"tflite-runtime for {artifact.file}",
            "the manifest has no parity.known_answer for this artifact, and tflite-runtime is"
            " known to compute wrong results on current models without saying so; use"
            " `--backend litert` (`pip install aim-edge[tflite]`) or re-export the bundle"
            " with known-answer data")
    import importlib.metadata

    try:
        version = importlib.metadata.version("tflite-runtime")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown version"
    backend = signature_backend(TFLiteRuntimeBackend, Interpreter, bundle, artifact, threads,
                                f"tflite-runtime {version}", warmup)
    check_known_answer(backend, bundle, artifact)
    return backend  # type: ignore[return-value]
