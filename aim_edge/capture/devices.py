"""Input devices through python-sounddevice (PortAudio): listing, selection, opening settings.

Everything here works on plain :class:`InputDevice` records, so selection and the choice of
rate / channels are testable without PortAudio; only :func:`list_input_devices`,
:func:`rescan_devices` and :func:`open_settings` (through its default checker) talk to it.

PortAudio enumerates devices once, when it is initialised (``import sounddevice``). A device
plugged in, or an audio server (JACK, PulseAudio) started, after that is invisible until
:func:`rescan_devices`.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import DeviceError, OptionalDependencyError

__all__ = [
    "SUPPORTED_RATES",
    "InputDevice",
    "OpenSettings",
    "format_devices",
    "list_input_devices",
    "open_settings",
    "portaudio_version",
    "require_sounddevice",
    "rescan_devices",
    "select_device",
]

#: Device rates tried when none is asked for, after the model's own rate and the device's
#: default rate (in this order). Any other rate the device offers works when given explicitly.
SUPPORTED_RATES = (16000, 48000, 44100, 22050, 8000)
#: Sample formats a capture stream may ask PortAudio for (it converts whatever the driver gives).
DTYPES = ("float32", "int16")

INSTALL_HINT = ("pip install 'aim-edge[audio]' (python-sounddevice), and the PortAudio library:"
                " apt-get install libportaudio2 on Debian/Ubuntu, brew install portaudio on"
                " macOS")


def require_sounddevice() -> Any:
    """Import python-sounddevice, or raise :class:`OptionalDependencyError` saying what to
    install (the Python package, or the system PortAudio library it loads)."""
    try:
        return importlib.import_module("sounddevice")
    except ImportError:
        raise OptionalDependencyError("microphone capture (python-sounddevice)",
                                      INSTALL_HINT) from None
    except OSError as exc:  # sounddevice is there, libportaudio.so.2 is not
        raise OptionalDependencyError(
            "microphone capture (the PortAudio library)",
            f"python-sounddevice could not load PortAudio ({exc}): apt-get install"
            " libportaudio2 on Debian/Ubuntu, brew install portaudio on macOS") from None


def portaudio_version() -> str:
    """PortAudio's version text (``"PortAudio V19.6.0-devel, ..."``)."""
    return str(require_sounddevice().get_portaudio_version()[1])


@dataclasses.dataclass(frozen=True)
class InputDevice:
    """One PortAudio device that can capture.

    Attributes
    ----------
    index : int
        PortAudio device index (what ``--device INDEX`` takes).
    name : str
        Device name as the host API reports it.
    host_api : str
        Host API name (``"ALSA"``, ``"JACK Audio Connection Kit"``, ``"Core Audio"``, ...).
    channels : int
        Most input channels the device offers.
    default_rate : float
        The device's default sample rate in Hz.
    is_default : bool
        PortAudio's default input device (the default host API's default input).
    is_host_api_default : bool
        The default input device of its own host API.
    """

    index: int
    name: str
    host_api: str
    channels: int
    default_rate: float
    is_default: bool = False
    is_host_api_default: bool = False

    def describe(self) -> str:
        """``[3] USB Mic (ALSA)``."""
        return f"[{self.index}] {self.name} ({self.host_api})"


def rescan_devices() -> None:
    """Re-initialise PortAudio so it sees devices and audio servers that appeared since.

    Only call it while no stream of this process is open (PortAudio closes them).
    """
    sd = require_sounddevice()
    sd._terminate()
    sd._initialize()


def host_api_names() -> list[str]:
    """Names of the host APIs this PortAudio build has (with or without devices)."""
    return [h["name"] for h in require_sounddevice().query_hostapis()]


def list_input_devices() -> list[InputDevice]:
    """Every device with at least one input channel, in PortAudio's order."""
    sd = require_sounddevice()
    apis = sd.query_hostapis()
    try:
        default_api = int(sd.default.hostapi)
    except Exception:  # no host API at all  # noqa: BLE001
        default_api = -1
    default = apis[default_api]["default_input_device"] if 0 <= default_api < len(apis) else -1
    out = []
    for d in sd.query_devices():
        if d["max_input_channels"] < 1:
            continue
        api = apis[d["hostapi"]]
        out.append(InputDevice(index=int(d["index"]), name=str(d["name"]),
                               host_api=str(api["name"]), channels=int(d["max_input_channels"]),
                               default_rate=float(d["default_samplerate"]),
                               is_default=int(d["index"]) == default,
                               is_host_api_default=int(d["index"]) == api["default_input_device"]))
    return out


def format_devices(devices: Sequence[InputDevice], host_apis: Sequence[str] = ()) -> str:
    """A table of ``devices``, the default marked with ``*``; ``host_apis`` (all names, for the
    empty case) explains where PortAudio looked."""
    if not devices:
        where = f" (PortAudio host APIs: {', '.join(host_apis)})" if host_apis else ""
        return (f"no input devices found{where}.\n"
                "  Plug in a microphone or start your audio server (JACK, PulseAudio), then run"
                " the command again;\n  on Linux `arecord -l` shows what the kernel sees. A"
                " recorder that PortAudio cannot see\n  can still feed the runtime:"
                " `arecord -f S16_LE -r 16000 -c 1 | aim-edge run -`.")
    width = max(len(d.host_api) for d in devices)
    lines = [f"   index  {'host API':<{width}}  channels  default rate  name"]
    for d in devices:
        mark = "*" if d.is_default else " "
        lines.append(f" {mark} {d.index:>5}  {d.host_api:<{width}}  {d.channels:>8}"
                     f"  {d.default_rate:>9.0f} Hz  {d.name}")
    lines.append("   (* = default input)")
    return "\n".join(lines)


def _listing(devices: Sequence[InputDevice]) -> str:
    return "input devices:\n" + format_devices(devices)


def select_device(devices: Sequence[InputDevice], device: int | str | None = None,
                  host_api: str | None = None, host_apis: Sequence[str] = ()) -> InputDevice:
    """Pick an input device.

    Parameters
    ----------
    devices : the candidates (:func:`list_input_devices`).
    device : int, str or None
        An index (int or digits), or a case-insensitive part of the name; an exact name wins
        over partial matches. None: the default input (of ``host_api`` when given).
    host_api : str or None
        A case-insensitive part of the host API name (``"jack"``, ``"alsa"``): only its devices
        are considered.
    host_apis : every host API PortAudio has (:func:`host_api_names`), named in the error
        when there is no input device at all.

    Raises
    ------
    DeviceError
        No such device, an ambiguous name, or no input device at all; the message lists the
        devices and how to choose.
    """
    if not devices:
        raise DeviceError(format_devices([], host_apis))
    pool = list(devices)
    if host_api is not None:
        key = host_api.strip().lower()
        pool = [d for d in devices if key in d.host_api.lower()]
        if not pool:
            apis = sorted({d.host_api for d in devices})
            raise DeviceError(
                f"--host-api {host_api!r}: no input device on a host API of that name (host APIs"
                f" with input devices: {', '.join(apis) or 'none'}).\n{_listing(devices)}")
    if not pool:
        raise DeviceError(_listing(devices))
    if device is None:
        for flag in ("is_default", "is_host_api_default"):
            for d in pool:
                if getattr(d, flag):
                    return d
        return pool[0]
    if isinstance(device, bool):
        raise DeviceError(f"--device {device!r}: give an index or a part of the name")
    text = str(device).strip()
    if isinstance(device, int) or text.lstrip("-").isdigit():
        index = int(text)
        for d in pool:
            if d.index == index:
                return d
        scope = f" on host API {host_api!r}" if host_api else ""
        raise DeviceError(f"--device {index}: no input device with that index{scope}; choose one"
                          f" of these (index or part of the name):\n{_listing(pool)}")
    key = text.lower()
    matches = [d for d in pool if key in d.name.lower()]
    exact = [d for d in matches if d.name.lower() == key]
    if len(exact) == 1:
        return exact[0]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise DeviceError(f"--device {text!r}: no input device name contains it; choose one"
                          f" of these (index or part of the name):\n{_listing(pool)}")
    raise DeviceError(
        f"--device {text!r} matches {len(matches)} input devices ("
        + ", ".join(d.describe() for d in matches)
        + "); give its index, more of its name, or --host-api.\n" + _listing(pool))


@dataclasses.dataclass(frozen=True)
class OpenSettings:
    """How a capture stream opens: device, rate in Hz, channels, sample format."""

    device: InputDevice
    sample_rate: int
    channels: int
    dtype: str

    def describe(self) -> str:
        return (f"{self.device.describe()}: {self.sample_rate} Hz, {self.channels} of"
                f" {self.device.channels} channel(s), {self.dtype}")


Checker = Callable[[int, int, int, str], None]


def _portaudio_checker(index: int, rate: int, channels: int, dtype: str) -> None:
    require_sounddevice().check_input_settings(device=index, samplerate=rate,
                                               channels=channels, dtype=dtype)


def open_settings(device: InputDevice, *, sample_rate: int | None = None,
                  channels: int | None = None, dtype: str = "float32",
                  model_rate: int = 16000, check: Checker | None = None,
                  devices: Sequence[InputDevice] = ()) -> OpenSettings:
    """The first rate / channel count the device accepts.

    Rates tried: ``sample_rate`` alone when given, else the model's rate (no resampling), the
    device's default rate, then :data:`SUPPORTED_RATES`. Channels: ``channels`` when given,
    else 1, 2 and the device's maximum (some devices only open in stereo; the capture mixes
    down). ``check(index, rate, channels, dtype)`` raises when a combination cannot open
    (default: PortAudio's ``check_input_settings``). ``devices`` (all input devices) are
    listed in the error, to choose another.

    Raises
    ------
    DeviceError
        Bad values, or nothing opens; the message lists what was tried and why it failed.
    """
    if dtype not in DTYPES:
        raise DeviceError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    if sample_rate is not None and (isinstance(sample_rate, bool) or not isinstance(
            sample_rate, int) or not 1000 <= sample_rate <= 768000):
        raise DeviceError(f"--rate {sample_rate!r}: expected a sample rate in Hz in"
                          " [1000, 768000], e.g. 16000, 44100 or 48000")
    if channels is not None:
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise DeviceError(f"--channels {channels!r}: expected an int >= 1")
        if channels > device.channels:
            raise DeviceError(f"--channels {channels}: {device.describe()} has only"
                              f" {device.channels} input channel(s); use --channels"
                              f" {device.channels} or fewer")
    check = check or _portaudio_checker
    if sample_rate is not None:
        rates = [sample_rate]
    else:
        rates = [model_rate, int(round(device.default_rate)), *SUPPORTED_RATES]
    rates = [r for i, r in enumerate(rates) if r > 0 and r not in rates[:i]]
    if channels is not None:
        chans = [channels]
    else:
        chans = [c for c in (1, 2, device.channels) if c <= device.channels]
        chans = [c for i, c in enumerate(chans) if c not in chans[:i]]
    failures = []
    for ch in chans:
        for rate in rates:
            try:
                check(device.index, rate, ch, dtype)
            except Exception as exc:  # PortAudioError, ValueError: recorded, next one  # noqa: BLE001
                failures.append(f"{rate} Hz x {ch} ch: {exc}")
                continue
            return OpenSettings(device, rate, ch, dtype)
    tried = "\n".join(f"    {f}" for f in failures)
    listing = f"\n{_listing(devices)}" if devices else " (`aim-edge devices` lists them)"
    raise DeviceError(
        f"{device.describe()} cannot open for input at any rate tried ({dtype}):\n{tried}\n"
        "  try --rate HZ / --channels N with values the device supports, another --dtype,"
        f" or another device{listing}")
