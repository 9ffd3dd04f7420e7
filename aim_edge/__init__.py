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
    "FbankConfig",
    "RingConfig",
    "__version__",
]
