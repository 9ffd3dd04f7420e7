"""Live microphone capture through python-sounddevice (PortAudio).

``pip install 'aim-edge[audio]'`` and the system PortAudio library (``apt-get install
libportaudio2``); without them the first use raises
:class:`~aim_edge.errors.OptionalDependencyError` saying so. Importing this package never
imports sounddevice.

Example
-------
>>> import aim_edge
>>> from aim_edge.capture import MicSource, format_devices, list_input_devices
>>> from aim_edge.loop import Loop
>>> print(format_devices(list_input_devices()))            # doctest: +SKIP
>>> engine = aim_edge.Engine.from_bundle(None)                # doctest: +SKIP
>>> mic = MicSource("USB", duration_s=30, model_rate=engine.sample_rate)  # doctest: +SKIP
>>> summary = Loop(engine, mic, [print]).run()                # doctest: +SKIP

The audio callback only copies into a native ring (mono, device rate); the capture thread
resamples to 16 kHz with ``soxr.ResampleStream`` (see :mod:`aim_edge.capture.source`).
PortAudio overflow flags and ring drops are counted (:class:`CaptureStats`) and warned about
live; a device that disappears ends the capture with :class:`~aim_edge.errors.DeviceError`.
"""

from .devices import (
    SUPPORTED_RATES,
    InputDevice,
    OpenSettings,
    format_devices,
    list_input_devices,
    open_settings,
    portaudio_version,
    require_sounddevice,
    rescan_devices,
    select_device,
)
from .source import CapturePipe, CaptureStats, MicSource

__all__ = [
    "SUPPORTED_RATES",
    "CapturePipe",
    "CaptureStats",
    "InputDevice",
    "MicSource",
    "OpenSettings",
    "format_devices",
    "list_input_devices",
    "open_settings",
    "portaudio_version",
    "require_sounddevice",
    "rescan_devices",
    "select_device",
]
