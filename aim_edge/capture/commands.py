"""``aim-edge listen`` and ``aim-edge devices`` (registered by :mod:`aim_edge.cli`).

Nothing here imports sounddevice until a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import wave
from typing import Any, TextIO

import numpy as np

from .._argtypes import nonneg_int, nonneg_number, positive_int, positive_number
from ..errors import AimEdgeError

__all__ = ["add_commands"]

DEVICES_EPILOG = """\
Choose one for `aim-edge listen` with --device INDEX or --device PART-OF-NAME, and
--host-api NAME (e.g. jack, alsa) when the same device shows under several host APIs.
PortAudio lists devices as they were when the command started: plug the microphone in (or
start JACK / PulseAudio) first.

examples:
  aim-edge devices
  aim-edge devices --host-api alsa
  aim-edge devices --json | jq '.[] | select(.default)'
"""

LISTEN_EPILOG = """\
what happens: the PortAudio callback only pushes each block into a native ring (a few
microseconds); the capture thread mixes the channels down to mono and resamples to 16 kHz
with soxr when the device runs at another rate (8, 22.05, 44.1, 48 kHz, ...); the perceive /
decide / respond threads turn it into captions and alerts, as in `aim-edge run --realtime`.

device choice: the default input unless --device / --host-api say otherwise. The rate is
--rate when given (only that one: a rate the device refuses is an error), else the first the
device accepts of 16000, its default rate, 48000, 44100, 22050, 8000.

live warnings (stderr): audio dropped because the capture thread stalled (filled with silence,
so times stay right), PortAudio input overflows (the driver lost audio), and ring drops when
decoding falls behind. All of them are counted in the summary and in --jsonl stats events
(key "capture"). A device that disappears ends the session: what was captured is decoded,
the summary printed, and the exit code is 1.

Ctrl-C, or SIGTERM (`timeout`, `kill`, systemd, `docker stop`), ends listening: the audio
captured so far is decoded, the summary printed and --jsonl flushed; the exit code is 0.

without PortAudio, any recorder that writes WAV to a pipe is a live source too:
  arecord -f S16_LE -r 16000 -c 1 | aim-edge run -

examples:
  aim-edge listen
  aim-edge listen --device USB --instruction "tell me if the doorbell rings"
  aim-edge listen --host-api jack --duration 60 --jsonl events.jsonl
  aim-edge listen --device 3 --channels 2 --speak
  aim-edge listen --record heard.wav          keep what the model heard (16 kHz WAV)
"""


class _StopSignals:
    """While active, Ctrl-C (SIGINT) and SIGTERM (`timeout`, systemd, `docker stop`) ask
    listening to end: ``name`` says which arrived, and the caller stops the microphone and
    decodes what was heard, so the summary is printed and --jsonl closed with its final stats.
    The handler only records the request: a ``KeyboardInterrupt`` raised inside
    ``Thread.join`` can leave CPython's thread state saying a running thread has ended (the
    loop then closed its responders under the respond thread: an empty --jsonl, seen in
    tests). A second signal raises ``KeyboardInterrupt`` to give up waiting. The previous
    handlers are restored on exit; outside the main thread nothing is installed."""

    def __init__(self) -> None:
        self.name = ""
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        import signal

        if self.name:
            raise KeyboardInterrupt
        self.name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"

    def __enter__(self) -> _StopSignals:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


def _finish(loop: Any, why: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """Wait for the decoded tail after the microphone stopped; an error, not a traceback,
    when the loop does not end in time."""
    try:
        return loop.join(timeout=timeout_s)
    except TimeoutError:
        raise AimEdgeError(f"stopped ({why}), but decoding did not finish within {timeout_s:g} s;"
                           " the summary is lost (a stuck backend?)") from None


def _print_err(msg: str) -> None:
    print(f"aim-edge listen: warning: {msg}", file=sys.stderr, flush=True)


def _cmd_devices(args: argparse.Namespace) -> int:
    from .devices import (
        format_devices,
        host_api_names,
        list_input_devices,
        portaudio_version,
    )

    devices = list_input_devices()
    if args.host_api:
        key = args.host_api.lower()
        every = devices
        devices = [d for d in devices if key in d.host_api.lower()]
        if every and not devices:
            apis = sorted({d.host_api for d in every})
            print(f"aim-edge devices: error: no input device on a host API matching "
                  f"{args.host_api!r}; the input devices are on {', '.join(apis)} "
                  "(drop --host-api to list them all)", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps([{"index": d.index, "name": d.name, "host_api": d.host_api,
                           "channels": d.channels, "default_rate": d.default_rate,
                           "default": d.is_default} for d in devices], indent=1))
        return 0
    print(f"input devices ({portaudio_version()}):")
    print(format_devices(devices, host_api_names()))
    return 0


class _CaptureStatsResponder:
    """Adds the microphone's counters to every ``stats`` event (key ``capture``), in place,
    before the other responders see it."""

    def __init__(self, mic: Any) -> None:
        self.mic = mic

    def emit(self, event: dict[str, Any]) -> None:
        if event["type"] == "stats":
            event["capture"] = self.mic.stats().to_dict()

    def close(self, summary: dict[str, Any] | None = None) -> None:
        pass


class _Recorder:
    """Writes what reaches the decoding ring to a 16-bit WAV (``--record``)."""

    def __init__(self, path: str, rate: int) -> None:
        try:  # opened here: wave.open(path) leaves a half-built writer whose __del__ complains
            self._file = open(path, "wb")  # noqa: SIM115 -- closed in close()
        except OSError as exc:
            raise AimEdgeError(f"--record {path}: {exc}") from exc
        self.w = wave.open(self._file, "wb")
        self.w.setnchannels(1)
        self.w.setsampwidth(2)
        self.w.setframerate(rate)

    def write(self, x: np.ndarray) -> None:
        pcm = np.clip(np.rint(x * 32768.0), -32768, 32767).astype("<i2")
        self.w.writeframes(pcm.tobytes())

    def close(self) -> None:
        self.w.close()
        self._file.close()


class _RecordingSource:
    """Wraps a source so every pushed block is also written by a :class:`_Recorder`."""

    def __init__(self, inner: Any, recorder: _Recorder) -> None:
        self.inner = inner
        self.recorder = recorder
        self.name = getattr(inner, "name", "source")

    @property
    def notes(self) -> list[str]:
        return list(getattr(self.inner, "notes", []))

    def run(self, sink: Any) -> None:
        rec = self.recorder
        push = sink.push

        def recording_push(samples: np.ndarray, capture_ns: int | None = None) -> int:
            rec.write(samples)
            return push(samples, capture_ns)

        sink.push = recording_push
        try:
            self.inner.run(sink)
        finally:
            rec.close()


def _print_capture_summary(mic: Any, out: TextIO) -> None:
    st = mic.stats()
    s = mic.settings
    cb, hop = st.callback_us, st.hop_ms

    def pct(p: dict[str, float], unit: str) -> str:
        if not p or not p.get("n"):
            return "n/a"
        return (f"p50 {p['p50']:.1f} / p99 {p['p99']:.1f} / max {p['max']:.1f} {unit}"
                f" (n={int(p['n'])})")

    print(f"  microphone    {mic.describe()}", file=out)
    print(f"  capture       {st.callbacks} callbacks, {st.frames / s.sample_rate:.2f} s;"
          f" {st.input_overflows} PortAudio input overflows; {st.dropped_samples} samples"
          f" dropped at the capture ring ({st.overflow_events} events); longest gap between"
          f" callbacks {st.max_gap_ms:.1f} ms", file=out)
    print(f"  callback      {pct(cb, 'us')} from callback entry to samples in the ring",
          file=out)
    print(f"  capture hop   {pct(hop, 'ms')} from callback to the decoding ring", file=out)


def _cmd_listen(args: argparse.Namespace) -> int:
    from .. import cli
    from ..loop import Loop, LoopConfig
    from ..respond import ConsoleResponder, JsonLinesResponder, SpeechResponder
    from .devices import (
        host_api_names,
        list_input_devices,
        open_settings,
        require_sounddevice,
        select_device,
    )
    from .source import MicSource

    require_sounddevice()  # the install hint before anything else
    to_stdout = args.jsonl == "-"
    info_out = sys.stderr if to_stdout else sys.stdout
    device: int | str | None = args.device
    devices = list_input_devices()
    chosen = select_device(devices, device, args.host_api,
                           () if devices else host_api_names())
    engine = cli.engine_from_args(args)
    with engine:
        settings = open_settings(chosen, sample_rate=args.rate, channels=args.channels,
                                 dtype=args.dtype, model_rate=engine.sample_rate,
                                 devices=devices)
        mic = MicSource(settings=settings, model_rate=engine.sample_rate,
                        blocksize=args.blocksize, latency=args.latency, ring_s=args.ring,
                        duration_s=args.duration, on_device_lost="end",
                        on_warning=_print_err)
        responders: list[Any] = [_CaptureStatsResponder(mic)]
        if args.jsonl is not None:
            try:
                responders.append(JsonLinesResponder(args.jsonl))
            except OSError as exc:
                raise AimEdgeError(f"--jsonl {args.jsonl}: {exc}") from exc
        if not args.quiet:
            responders.append(ConsoleResponder(info_out, color=args.color))
        if args.speak:
            responders.append(SpeechResponder())
        source: Any = mic
        if args.record:
            source = _RecordingSource(mic, _Recorder(args.record, engine.sample_rate))
        d = engine.describe()
        until = f"for {args.duration:g} s" if args.duration else "until Ctrl-C"
        print(f"aim-edge listen: {mic.describe()} through {d['bundle']}, {until}",
              file=info_out, flush=True)
        if not args.quiet:
            cli.print_captions_note(engine, info_out)
        config = LoopConfig(realtime=True, stats_every_s=args.stats_every)
        loop = Loop(engine, source, responders, instruction=args.instruction, config=config)
        interrupted = ""
        stop = _StopSignals()
        try:
            loop.start()
            try:
                with stop:
                    while True:
                        try:
                            summary = loop.join(timeout=0.2)
                            break
                        except TimeoutError:
                            if stop.name:  # Ctrl-C / SIGTERM: end the input, decode the rest
                                interrupted = stop.name
                                mic.stop()
                                summary = _finish(loop, interrupted)
                                break
            except KeyboardInterrupt:  # outside the main thread, or a second signal
                interrupted = stop.name or "Ctrl-C"
                mic.stop()
                summary = _finish(loop, interrupted)
        finally:
            loop.close()
        cli.print_summary(summary, engine, info_out)
        _print_capture_summary(mic, info_out)
        if interrupted:
            print(f"aim-edge listen: stopped ({interrupted})", file=info_out)
        if mic.error is not None:
            raise mic.error
    return 0


_SECONDS = positive_number("seconds")


def _latency(text: str) -> str | float:
    if text in ("low", "high"):
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected low, high or seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} must be > 0 seconds")
    return value


def add_commands(sub: Any) -> None:
    """Add ``listen`` and ``devices`` to the ``aim-edge`` subcommand parser ``sub``."""
    from ..cli import add_model_arguments  # cli imports this module

    devices = sub.add_parser(
        "devices",
        help="list audio input devices (host API, channels, default rate; default marked)",
        description="List the input devices PortAudio sees, with their host API, input"
                    " channels and default sample rate; * marks the default input.",
        epilog=DEVICES_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    devices.add_argument("--host-api", default=None, metavar="NAME",
                         help="only devices of host APIs whose name contains NAME")
    devices.add_argument("--json", action="store_true", help="machine-readable output")
    devices.set_defaults(func=_cmd_devices)

    listen = sub.add_parser(
        "listen",
        help="live captions and alerts from a microphone",
        description="Listen to a microphone (any PortAudio input device) and print captions,"
                    " alerts and answers live, through the same loop as `aim-edge run`."
                    " Needs `pip install 'aim-edge[audio]'` and PortAudio (apt-get install"
                    " libportaudio2).",
        epilog=LISTEN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = listen.add_argument_group("device")
    g.add_argument("--device", default=None, metavar="INDEX|NAME",
                   help="device index or part of its name (default: the default input;"
                        " `aim-edge devices` lists them)")
    g.add_argument("--host-api", default=None, metavar="NAME",
                   help="choose among devices of this host API (e.g. jack, alsa, pulse)")
    g.add_argument("--rate", type=positive_int, default=None, metavar="HZ",
                   help="device sample rate; only this one is tried (default: the first the"
                        " device accepts of 16000, its default, 48000, 44100, 22050, 8000)")
    g.add_argument("--channels", type=positive_int, default=None, metavar="N",
                   help="channels to open, mixed down to mono (default: 1, else 2, else all)")
    g.add_argument("--dtype", default="float32", choices=["float32", "int16"],
                   help="sample format asked of PortAudio (default float32)")
    g.add_argument("--blocksize", type=nonneg_int, default=0, metavar="FRAMES",
                   help="frames per callback (default 0: the host's own period)")
    g.add_argument("--latency", type=_latency, default="low", metavar="low|high|SECONDS",
                   help="PortAudio input latency (default low)")
    g.add_argument("--ring", type=_SECONDS, default=2.0, metavar="SECONDS",
                   help="capture ring length (default 2 s)")
    g.add_argument("--duration", type=_SECONDS, default=None, metavar="SECONDS",
                   help="stop after SECONDS of audio (default: until Ctrl-C)")
    g.add_argument("--record", default=None, metavar="WAV",
                   help="also write what the model hears (16 kHz mono) to this WAV file")
    m = listen.add_argument_group("model and output (as in `aim-edge run`)")
    add_model_arguments(m)
    m.add_argument("--jsonl", default=None, metavar="PATH|-",
                   help="write every event as a JSON line to PATH, or to stdout with '-'")
    m.add_argument("--quiet", action="store_true",
                   help="no live console view (warnings and the summary are still printed)")
    m.add_argument("--stats-every", type=nonneg_number("seconds"), default=0.0,
                   metavar="SECONDS",
                   help="emit a stats event (with capture counters) every SECONDS of audio")
    listen.set_defaults(func=_cmd_listen)
