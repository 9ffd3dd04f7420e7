"""One exception hierarchy for everything aim-edge raises.

Every class derives from :class:`AimEdgeError` *and* from the built-in exception a caller would
naturally catch (``ValueError`` for bad values, ``TypeError`` for bad types, ``ImportError`` for a
missing optional part), so ``except ValueError`` keeps working for code that does not know us.

The native extensions map their C++ exceptions onto this module (see ``native/bindings``):

=============================  =====================================
C++                            Python
=============================  =====================================
``aim_edge::InvalidInput``     :class:`AudioInputError`
``std::invalid_argument``      :class:`ConfigError`
``std::runtime_error``         :class:`NativeError`
=============================  =====================================

Messages say what was given, what was expected and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "AimEdgeError",
    "AudioInputError",
    "AudioTypeError",
    "BackendUnavailableError",
    "BundleError",
    "ConfigError",
    "DeviceError",
    "NativeError",
    "OptionalDependencyError",
    "RingOverflowError",
]


class AimEdgeError(Exception):
    """Base class of every error raised by aim-edge."""


class ConfigError(AimEdgeError, ValueError):
    """A configuration field has an invalid value; the message names the field and the value."""


class AudioInputError(AimEdgeError, ValueError):
    """Audio samples are unusable: NaN/inf, wrong shape, wrong sample rate, empty, ..."""


class AudioTypeError(AimEdgeError, TypeError):
    """Audio samples have a dtype that cannot be interpreted (only float32/float64 in [-1, 1]
    and int16 are accepted)."""


class NativeError(AimEdgeError, RuntimeError):
    """An invariant of the native core was violated (a bug: please report it)."""


class RingOverflowError(AimEdgeError):
    """Audio was dropped because the consumer fell behind (raised only when asked to)."""


class BundleError(AimEdgeError, ValueError):
    """A model bundle is corrupt, incomplete or does not match the runtime."""


class DeviceError(AimEdgeError, OSError):
    """An audio device is missing, cannot be opened, or disappeared."""


class OptionalDependencyError(AimEdgeError, ImportError):
    """An optional part (TFLite, microphone, TTS, plotting) is not installed.

    Raised on first use, never at import; the message carries the install hint.
    """

    def __init__(self, what: str, hint: str) -> None:
        super().__init__(f"{what} is not available: {hint}")
        self.what = what
        self.hint = hint


class BackendUnavailableError(OptionalDependencyError):
    """An inference backend (onnxruntime, ai-edge-litert, tflite-runtime) is not installed."""
