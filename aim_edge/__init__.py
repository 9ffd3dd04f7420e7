"""aim-edge: on-device runtime for an always-on Audio Interaction Model.

The runtime depends on numpy and onnxruntime only; it never imports torch. Optional parts
(microphone, TFLite, plotting, speech output) raise an informative ``ImportError`` subclass on
first use, never at import.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .config import FbankConfig, RingConfig
from .errors import (
    AimEdgeError,
    AudioInputError,
    AudioTypeError,
    ConfigError,
)

try:
    __version__ = version("aim-edge")
except PackageNotFoundError:  # running from a checkout without installation
    __version__ = "0.0.0+unknown"

__all__ = [
    "AimEdgeError",
    "AudioInputError",
    "AudioTypeError",
    "ConfigError",
    "Engine",
    "FbankConfig",
    "Loop",
    "LoopConfig",
    "PolicyConfig",
    "Result",
    "RingConfig",
    "Stream",
    "__version__",
]

# The runtime classes load the native extensions and onnxruntime: import them on first use so
# that `import aim_edge` (and `aim-edge --help`) stays cheap.
_LAZY = {
    "Engine": "engine", "Stream": "engine", "Result": "engine",
    "Loop": "loop", "LoopConfig": "loop", "PolicyConfig": "policy",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'aim_edge' has no attribute {name!r}")
