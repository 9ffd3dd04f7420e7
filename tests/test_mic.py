"""Microphone capture without an audio server: device selection, settings, the callback and
capture thread driven by hand or by a fake PortAudio stream, install hints, CLI help.

The real PortAudio path (a JACK dummy server) is in tests/test_mic_jack.py.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest

from aim_edge import cli
from aim_edge.audio import AudioConverter
from aim_edge.capture import (
    CapturePipe,
    InputDevice,
    MicSource,
    OpenSettings,
    format_devices,
    open_settings,
    require_sounddevice,
    select_device,
)
from aim_edge.capture import devices as devices_mod
from aim_edge.capture import source as source_mod
from aim_edge.errors import DeviceError, OptionalDependencyError

DEVICES = [
    InputDevice(0, "HDA Intel PCH: ALC257 Analog (hw:0,0)", "ALSA", 2, 44100.0),
    InputDevice(3, "USB Audio Mic: Audio (hw:1,0)", "ALSA", 1, 48000.0),
    InputDevice(5, "pulse", "ALSA", 32, 44100.0),
    InputDevice(7, "default", "ALSA", 32, 44100.0, is_default=True, is_host_api_default=True),
    InputDevice(9, "system", "JACK Audio Connection Kit", 2, 16000.0,
                is_host_api_default=True),
]

FLAGS_OK = SimpleNamespace(input_overflow=False, input_underflow=False)
FLAGS_OVER = SimpleNamespace(input_overflow=True, input_underflow=False)


# ----------------------------------------------------------------------------- install hints

def test_missing_sounddevice_names_pip_and_portaudio():
    with mock.patch.dict(sys.modules, {"sounddevice": None}):
        with pytest.raises(OptionalDependencyError) as err:
            require_sounddevice()
    msg = str(err.value)
    assert "pip install 'aim-edge[audio]'" in msg and "libportaudio2" in msg


def test_missing_portaudio_library_names_the_system_package():
    boom = OSError("PortAudio library not found")
    with mock.patch.object(devices_mod.importlib, "import_module", side_effect=boom):
        with pytest.raises(OptionalDependencyError) as err:
            require_sounddevice()
    assert "apt-get install libportaudio2" in str(err.value)
    assert "PortAudio library not found" in str(err.value)


@pytest.mark.parametrize("argv", [["listen"], ["devices"]])
def test_cli_without_sounddevice_explains_what_to_install(argv, capsys):
    with mock.patch.dict(sys.modules, {"sounddevice": None}):
        assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert f"aim-edge {argv[0]}: error:" in err
    assert "aim-edge[audio]" in err and "libportaudio2" in err
    assert err.count("\n") == 1  # one line, no traceback


def test_help_teaches_with_examples(capsys):
    with pytest.raises(SystemExit):
        cli.main(["listen", "--help"])
    out = capsys.readouterr().out
    for needle in ("--device", "--host-api", "--rate", "--instruction", "--speak",
                   "aim-edge listen --device USB", "Ctrl-C", "overflow"):
        assert needle in out
    with pytest.raises(SystemExit):
        cli.main(["devices", "--help"])
    assert "--device INDEX" in capsys.readouterr().out


def test_devices_with_an_unmatched_host_api_names_the_ones_there_are(capsys):
    with mock.patch.object(devices_mod, "list_input_devices", return_value=DEVICES), \
            mock.patch.object(devices_mod, "portaudio_version", return_value="PortAudio 19"), \
            mock.patch.object(devices_mod, "host_api_names", return_value=["ALSA", "JACK"]):
        assert cli.main(["devices", "--host-api", "coreaudio"]) == 1
        err = capsys.readouterr().err
        assert ("aim-edge devices: error: no input device on a host API matching 'coreaudio';"
                " the input devices are on ALSA, JACK Audio Connection Kit") in err
        assert cli.main(["devices", "--host-api", "jack"]) == 0
        out = capsys.readouterr().out
        assert "system" in out and "USB Audio Mic" not in out


# ----------------------------------------------------------------------------- selection

def test_select_default_index_substring_and_host_api():
    assert select_device(DEVICES).index == 7
    assert select_device(DEVICES, 3).index == 3
    assert select_device(DEVICES, "3").index == 3
    assert select_device(DEVICES, "usb").index == 3
    assert select_device(DEVICES, host_api="jack").index == 9
    assert select_device(DEVICES, "system", host_api="JACK").index == 9
    # an exact name wins over the partial matches ("pulse" is also not in "default")
    assert select_device(DEVICES, "default").index == 7


def test_unknown_device_lists_the_devices():
    with pytest.raises(DeviceError) as err:
        select_device(DEVICES, "bluetooth")
    msg = str(err.value)
    assert "'bluetooth'" in msg and "USB Audio Mic" in msg and "system" in msg
    with pytest.raises(DeviceError, match=r"--device 4: no input device with that index"):
        select_device(DEVICES, 4)
    with pytest.raises(DeviceError, match=r"--device 3: .*host API 'jack'"):
        select_device(DEVICES, 3, host_api="jack")


def test_ambiguous_name_asks_for_more():
    with pytest.raises(DeviceError) as err:
        select_device(DEVICES, "hw:")
    msg = str(err.value)
    assert "matches 2 input devices" in msg and "[0]" in msg and "[3]" in msg


def test_unknown_host_api_names_the_known_ones():
    with pytest.raises(DeviceError) as err:
        select_device(DEVICES, host_api="coreaudio")
    assert "ALSA" in str(err.value) and "JACK Audio Connection Kit" in str(err.value)


def test_no_devices_at_all_says_what_to_do():
    with pytest.raises(DeviceError) as err:
        select_device([], host_apis=["ALSA", "OSS"])
    assert str(err.value).startswith("no input devices found (PortAudio host APIs: ALSA, OSS).")
    with pytest.raises(DeviceError, match="no input devices found"):
        select_device([], "USB", host_api="alsa")  # no devices: that, not the filter, is said
    text = format_devices([], ["ALSA", "OSS"])
    assert "ALSA, OSS" in text and "arecord -l" in text


def test_device_table_marks_the_default():
    lines = format_devices(DEVICES).splitlines()
    default = [ln for ln in lines if ln.startswith(" *")]
    assert len(default) == 1 and "default" in default[0] and "44100 Hz" in default[0]
    assert any("JACK Audio Connection Kit" in ln and "16000 Hz" in ln for ln in lines)


# ----------------------------------------------------------------------------- settings

def _checker(accept):
    tried = []

    def check(index, rate, channels, dtype):
        tried.append((rate, channels))
        if (rate, channels) not in accept:
            raise ValueError(f"Invalid sample rate [PaErrorCode -9997] ({rate}, {channels})")

    return check, tried


def test_settings_prefer_the_model_rate_then_the_device_default():
    dev = DEVICES[1]  # 1 channel, default 48 kHz
    check, tried = _checker({(16000, 1), (48000, 1)})
    assert open_settings(dev, check=check).sample_rate == 16000
    check, tried = _checker({(48000, 1), (44100, 1)})
    s = open_settings(dev, check=check)
    assert (s.sample_rate, s.channels) == (48000, 1) and tried == [(16000, 1), (48000, 1)]


def test_settings_fall_back_to_stereo_when_mono_cannot_open():
    dev = DEVICES[0]  # 2 channels
    check, tried = _checker({(22050, 2)})
    s = open_settings(dev, check=check)
    assert (s.sample_rate, s.channels) == (22050, 2)
    assert tried[:5] == [(16000, 1), (44100, 1), (48000, 1), (22050, 1), (8000, 1)]


def test_settings_error_lists_every_rate_tried():
    check, _ = _checker(set())
    with pytest.raises(DeviceError) as err:
        open_settings(DEVICES[1], check=check)
    msg = str(err.value)
    for rate in (16000, 48000, 44100, 22050, 8000):
        assert f"{rate} Hz x 1 ch" in msg
    assert "--rate" in msg and "aim-edge devices" in msg
    with pytest.raises(DeviceError) as err:
        open_settings(DEVICES[1], check=check, devices=DEVICES)
    assert "input devices:" in str(err.value) and "system" in str(err.value)


@pytest.mark.parametrize("kw, needle", [
    ({"channels": 3}, "has only 1 input channel"),
    ({"channels": 0}, "--channels 0"),
    ({"sample_rate": 500}, "--rate 500"),
    ({"dtype": "int24"}, "--dtype 'int24'"),
])
def test_settings_refuse_bad_values(kw, needle):
    check, _ = _checker({(16000, 1)})
    with pytest.raises(DeviceError, match=needle):
        open_settings(DEVICES[1], check=check, **kw)


# ----------------------------------------------------------------------------- the callback

def _blocks(x: np.ndarray, frames: int):
    for i in range(0, len(x), frames):
        yield x[i:i + frames]


def _collect(pipe: CapturePipe, **kw) -> np.ndarray:
    out: list[np.ndarray] = []
    pipe.drain(lambda y, t: out.append(np.array(y)), **kw)
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def test_float32_mono_goes_through_unchanged():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 16000).astype(np.float32)
    pipe = CapturePipe(16000, 1, "float32")
    for b in _blocks(x, 320):
        pipe.callback(b.tobytes(), len(b), None, FLAGS_OK)
    y = _collect(pipe, last=True)
    assert np.array_equal(y, x)
    st = pipe.stats()
    assert (st.callbacks, st.frames, st.dropped_samples, st.input_overflows) == (50, 16000, 0, 0)
    assert st.callback_us["n"] == 50 and st.callback_us["p50"] > 0


@pytest.mark.parametrize("channels", [2, 3, 6])
def test_int16_multichannel_is_mixed_down_and_scaled(channels):
    rng = np.random.default_rng(channels)
    pcm = rng.integers(-32768, 32767, (4800, channels), dtype=np.int16)
    pipe = CapturePipe(16000, channels, "int16")
    for b in _blocks(pcm, 160):
        pipe.callback(b.tobytes(), len(b), None, FLAGS_OK)
    y = _collect(pipe)
    expected = pcm.astype(np.float64).mean(axis=1) / 32768.0
    assert y.dtype == np.float32 and y.shape == (4800,)
    np.testing.assert_allclose(y, expected, atol=1e-6)


def test_float32_stereo_mix_is_the_mean():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (3200, 2)).astype(np.float32)
    pipe = CapturePipe(16000, 2, "float32")
    for b in _blocks(x, 256):
        pipe.callback(b.tobytes(), len(b), None, FLAGS_OK)
    assert np.array_equal(_collect(pipe), (x[:, 0] + x[:, 1]) * np.float32(0.5))


def test_resampling_48k_matches_the_streaming_converter():
    t = np.arange(48000) / 48000
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3100 * t)).astype(
        np.float32)
    pipe = CapturePipe(48000, 1, "float32")
    out = []
    for b in _blocks(x, 960):
        pipe.callback(b.tobytes(), len(b), None, FLAGS_OK)
        pipe.drain(lambda y, c: out.append(np.array(y)))
    pipe.drain(lambda y, c: out.append(np.array(y)), last=True)
    y = np.concatenate(out)
    conv = AudioConverter(16000)
    ref = np.concatenate([conv.convert(48000, x), conv.flush()])
    assert y.shape == ref.shape and abs(y.size - 16000) <= 1
    np.testing.assert_allclose(y, ref, atol=1e-6)


def test_overflow_flags_are_counted():
    pipe = CapturePipe(16000, 1, "float32")
    block = np.zeros(320, np.float32).tobytes()
    for flags in (FLAGS_OK, FLAGS_OVER, FLAGS_OVER, FLAGS_OK):
        pipe.callback(block, 320, None, flags)
    assert pipe.stats().input_overflows == 2


def test_ring_drops_are_counted_and_filled_with_silence():
    pipe = CapturePipe(16000, 1, "float32", ring_s=0.1)  # 2048 samples
    x = np.arange(1, 6401, dtype=np.float32) / 8192  # 0.4 s, nothing is zero
    for b in _blocks(x, 320):
        pipe.callback(b.tobytes(), len(b), None, FLAGS_OK)
    y = _collect(pipe)
    st = pipe.stats()
    assert st.dropped_samples == 6400 - 2048 and st.overflow_events >= 1
    assert st.silence_samples == st.dropped_samples
    # stream time stays wall time: silence where audio was lost, then the newest audio
    assert y.size == 6400
    assert np.all(y[:4352] == 0) and np.array_equal(y[4352:], x[4352:])


@pytest.mark.parametrize("channels", [2, 4])
def test_interleaved_drops_keep_whole_frames(channels):
    pipe = CapturePipe(16000, channels, "float32", ring_s=0.1)
    assert pipe.interleaved and pipe.ring.capacity == 2048 * channels
    # frame k holds k, 2k, 3k, ...: a frame split by a drop would show up in the mix
    k = np.arange(1, 6401, dtype=np.float32)[:, None]
    x = (k * np.arange(1, channels + 1, dtype=np.float32)) / 65536
    for b in _blocks(x, 320):
        pipe.callback(b.tobytes(), len(b), None, FLAGS_OK)
    y = _collect(pipe)
    st = pipe.stats()
    assert st.dropped_samples == 6400 - 2048 == st.silence_samples  # frames, not samples
    assert y.size == 6400 and not y[:4352].any()
    np.testing.assert_allclose(y[4352:], x[4352:].mean(axis=1), rtol=1e-6)


def test_a_pop_inside_a_frame_is_carried_over():
    pipe = CapturePipe(16000, 2, "float32")
    x = np.arange(1, 13, dtype=np.float32)  # 6 stereo frames
    pipe.ring.push(x[:5])  # 2.5 frames, as if a pop had landed mid-frame
    first = _collect(pipe)
    pipe.ring.push(x[5:])
    second = _collect(pipe)
    assert np.array_equal(np.concatenate([first, second]), x.reshape(-1, 2).mean(axis=1))
    assert first.size == 2


def test_non_finite_samples_are_zeroed_and_counted():
    pipe = CapturePipe(16000, 1, "float32")
    x = np.ones(320, np.float32) * 0.5
    x[[3, 10]] = [np.nan, np.inf]
    pipe.callback(x.tobytes(), 320, None, FLAGS_OK)
    y = _collect(pipe)
    assert pipe.stats().nonfinite_samples == 2 and y[3] == 0 and y[10] == 0 and y[4] == 0.5


def test_a_failing_callback_aborts_the_stream_and_keeps_the_error():
    sd = require_sounddevice()
    pipe = CapturePipe(16000, 1, "float32")
    with pytest.raises(sd.CallbackAbort):
        pipe.callback(b"\x00" * 3, 1, None, FLAGS_OK)  # not a whole float32
    assert isinstance(pipe.error, ValueError)


def test_capture_timestamps_follow_the_blocks():
    pipe = CapturePipe(16000, 1, "float32")
    stamps = []
    for _ in range(3):
        pipe.callback(np.zeros(320, np.float32).tobytes(), 320, None, FLAGS_OK)
        pipe.drain(lambda y, c: stamps.append(c))
    assert len(stamps) == 3 and all(c > 0 for c in stamps) and stamps == sorted(stamps)
    assert pipe.stats().hop_ms["n"] == 3


# ----------------------------------------------------------------------------- MicSource

class FakeFlags(SimpleNamespace):
    def __bool__(self) -> bool:
        return bool(self.input_overflow or self.input_underflow)


class FakeStream:
    """A RawInputStream stand-in: a thread delivers ``signal`` in blocks, faster than real
    time; ``die_after`` blocks it goes inactive (a lost device), ``hang_close`` wedges close."""

    instances: list[FakeStream] = []
    signal = np.zeros(0, np.float32)
    die_after: int | None = None
    stall_after: int | None = None
    hang_close = False

    def __init__(self, *, samplerate, blocksize, device, channels, dtype, latency, callback,
                 finished_callback):
        self.kw = dict(samplerate=samplerate, blocksize=blocksize, device=device,
                       channels=channels, dtype=dtype, latency=latency)
        self.callback = callback
        self.finished = finished_callback
        self.active = False
        self.closed = False
        self._halt = threading.Event()
        FakeStream.instances.append(self)

    def start(self):
        self.active = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        frames = 320
        for i, start in enumerate(range(0, len(self.signal), frames)):
            if self._halt.is_set():
                return
            if self.die_after is not None and i >= self.die_after:
                self.active = False
                return
            if self.stall_after is not None and i >= self.stall_after:
                return  # active, but no more callbacks
            b = self.signal[start:start + frames]
            flags = FakeFlags(input_overflow=(i == 2), input_underflow=False)
            self.callback(b.tobytes(), len(b), None, flags)
            time.sleep(0.001)

    def abort(self, ignore_errors=True):
        self._halt.set()
        self.active = False

    def close(self, ignore_errors=True):
        if self.hang_close:
            time.sleep(30)
        self.closed = True


class CollectSink:
    def __init__(self, rate: int = 16000) -> None:
        self.sample_rate = rate
        self.stop = threading.Event()
        self.blocks: list[np.ndarray] = []

    def push(self, samples, capture_ns=None):
        self.blocks.append(np.array(samples))
        return 0

    def samples(self) -> np.ndarray:
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.float32)


@pytest.fixture
def fake_sd(monkeypatch):
    FakeStream.instances = []
    FakeStream.die_after = FakeStream.stall_after = None
    FakeStream.hang_close = False
    fake = SimpleNamespace(RawInputStream=FakeStream, CallbackAbort=RuntimeError,
                           _exit_handler=lambda: None)
    monkeypatch.setattr(source_mod, "require_sounddevice", lambda: fake)
    return fake


def _settings(rate=16000, channels=1):
    dev = InputDevice(1, "fake mic", "FakeAPI", channels, float(rate))
    return OpenSettings(dev, rate, channels, "float32")


def test_mic_source_delivers_the_duration_and_notes(fake_sd):
    FakeStream.signal = (np.arange(32000, dtype=np.float32) % 97 + 1) / 100
    mic = MicSource(settings=_settings(), duration_s=1.0, poll_s=0.002)
    sink = CollectSink()
    mic.run(sink)
    got = sink.samples()
    assert 16000 <= got.size < 16000 + 3200  # stops at the duration (one poll may overrun)
    assert np.array_equal(got, FakeStream.signal[:got.size])
    st = mic.stats()
    assert st.input_overflows == 1 and st.dropped_samples == 0
    assert FakeStream.instances[0].closed and FakeStream.instances[0].kw["latency"] == "low"
    assert any("1 PortAudio input overflow" in n for n in mic.notes)


def test_mic_source_stops_on_request(fake_sd):
    FakeStream.signal = np.ones(16000 * 30, np.float32) * 0.1
    mic = MicSource(settings=_settings(), poll_s=0.002)
    sink = CollectSink()
    t = threading.Thread(target=mic.run, args=(sink,))
    t.start()
    time.sleep(0.1)
    mic.stop()
    t.join(5)
    assert not t.is_alive() and sink.samples().size > 0 and mic.error is None


def test_a_device_that_goes_away_raises_a_clear_error(fake_sd):
    FakeStream.signal = np.ones(16000 * 10, np.float32) * 0.1
    FakeStream.die_after = 10
    mic = MicSource(settings=_settings(), poll_s=0.002)
    sink = CollectSink()
    with pytest.raises(DeviceError) as err:
        mic.run(sink)
    msg = str(err.value)
    assert "[1] fake mic (FakeAPI) stopped delivering audio" in msg
    assert "aim-edge devices" in msg and "0.20 s" in msg
    assert sink.samples().size == 3200  # what came before is handed on


def test_a_device_that_stalls_ends_after_the_timeout(fake_sd):
    FakeStream.signal = np.ones(16000 * 10, np.float32) * 0.1
    FakeStream.stall_after = 5
    mic = MicSource(settings=_settings(), poll_s=0.002, stall_timeout_s=0.3,
                    on_device_lost="end")
    t0 = time.monotonic()
    mic.run(CollectSink())  # "end": returns normally, keeps the error
    assert time.monotonic() - t0 < 3
    assert isinstance(mic.error, DeviceError) and "no callback for" in str(mic.error)


def test_a_wedged_close_does_not_hang(fake_sd, monkeypatch):
    monkeypatch.setattr(source_mod, "_WEDGED", [])
    unregistered = []
    monkeypatch.setattr(source_mod.atexit, "unregister", unregistered.append)
    FakeStream.signal = np.ones(16000 * 10, np.float32) * 0.1
    FakeStream.die_after = 5
    FakeStream.hang_close = True
    mic = MicSource(settings=_settings(), poll_s=0.002, close_timeout_s=0.3)
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match="left to the OS"):
        mic.run(CollectSink())
    assert time.monotonic() - t0 < 2
    # PortAudio is not terminated at exit (it would wait on the stream again)
    assert unregistered and all(h is fake_sd._exit_handler for h in unregistered)
    assert any("did not close" in n for n in mic.notes)


def test_stalled_capture_thread_warns_and_counts(fake_sd):
    FakeStream.signal = np.ones(16000, np.float32) * 0.25
    warnings: list[str] = []

    class SlowSink(CollectSink):
        def push(self, samples, capture_ns=None):
            if len(self.blocks) == 1:
                time.sleep(0.3)  # the fake delivers ~16000 samples meanwhile
            return super().push(samples, capture_ns)

    mic = MicSource(settings=_settings(), poll_s=0.002, ring_s=0.1, duration_s=1.0,
                    on_warning=warnings.append)
    sink = SlowSink()
    mic.run(sink)
    st = mic.stats()
    assert st.dropped_samples > 0 and st.overflow_events > 0
    assert sink.samples().size == st.frames  # silence filled the gap: time is kept
    assert any("dropped at the capture ring" in w for w in warnings)
    assert any("dropped at the capture ring" in n for n in mic.notes)


def test_decoding_ring_drops_are_warned_live(fake_sd):
    FakeStream.signal = np.ones(16000, np.float32) * 0.25
    warnings: list[str] = []

    class FullSink(CollectSink):  # a decoding ring that is full: every push drops 160
        def push(self, samples, capture_ns=None):
            super().push(samples, capture_ns)
            return 160

    mic = MicSource(settings=_settings(), poll_s=0.002, duration_s=0.5,
                    on_warning=warnings.append)
    mic.run(FullSink())
    assert mic.decode_dropped >= 160
    assert len(warnings) >= 1 and "dropped at the decoding ring" in warnings[0]
    assert "dropped at the capture ring" not in warnings[0]


def test_bad_mic_options_are_refused():
    for kw, needle in (({"on_device_lost": "ignore"}, "on_device_lost"),
                       ({"duration_s": 0}, "duration"),
                       ({"blocksize": -1}, "blocksize"),
                       ({"latency": "medium"}, "latency")):
        with pytest.raises(DeviceError, match=needle):
            MicSource(settings=_settings(), **kw)


# ----------------------------------------------------------------------------- the CLI

@pytest.fixture
def fake_device(fake_sd, monkeypatch):
    """`aim-edge listen` sees one fake 16 kHz mono device that plays a quiet tone."""
    t = np.arange(16000 * 30) / 16000
    FakeStream.signal = (0.05 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    monkeypatch.setattr(devices_mod, "require_sounddevice", lambda: fake_sd)
    monkeypatch.setattr(devices_mod, "list_input_devices", lambda: [
        InputDevice(1, "fake mic", "FakeAPI", 1, 16000.0, is_default=True)])
    monkeypatch.setattr(devices_mod, "_portaudio_checker", lambda *a: None)
    return fake_sd


def test_listen_ctrl_c_decodes_what_was_heard_and_exits_0(fake_device, monkeypatch, capsys):
    from aim_edge import loop as loop_mod

    real_join = loop_mod.Loop.join
    interrupted = []

    def join(self, timeout=None):
        if not interrupted:  # the first wait is interrupted, as by Ctrl-C
            interrupted.append(True)
            time.sleep(0.3)
            raise KeyboardInterrupt
        return real_join(self, timeout)

    monkeypatch.setattr(loop_mod.Loop, "join", join)
    assert cli.main(["listen", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "[1] fake mic (FakeAPI): 16000 Hz, 1 of 1 channel(s), float32" in out
    assert "summary:" in out and "stopped (Ctrl-C)" in out
    chunks = int(out.split("chunks        ")[1].split()[0])
    assert chunks > 0  # what was captured before Ctrl-C was decoded
    assert "callback      p50" in out and "capture hop   p50" in out


def test_listen_ends_with_exit_1_when_the_device_goes_away(fake_device, capsys):
    FakeStream.die_after = 25
    assert cli.main(["listen", "--quiet", "--jsonl", "-"]) == 1
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines()]
    final = [e for e in events if e["type"] == "stats" and e.get("final")]
    assert len(final) == 1 and final[0]["capture"]["callbacks"] == 25
    assert final[0]["capture"]["input_overflows"] == 1  # FakeStream flags block 2
    assert "summary:" in captured.err  # --jsonl -: the human part goes to stderr
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("aim-edge listen: error: [1] fake mic (FakeAPI) stopped delivering")


def test_record_to_a_missing_folder_is_one_clean_error(tmp_path, monkeypatch):
    """wave.open(path) on a bad path left a half-built writer whose __del__ printed an
    AttributeError after the clean error."""
    import gc
    import sys

    from aim_edge.capture.commands import _Recorder
    from aim_edge.errors import AimEdgeError

    raised = []
    monkeypatch.setattr(sys, "unraisablehook", raised.append)
    with pytest.raises(AimEdgeError, match="--record .*No such file or directory"):
        _Recorder(str(tmp_path / "no" / "x.wav"), 16000)
    gc.collect()
    assert raised == []
    rec = _Recorder(str(tmp_path / "ok.wav"), 16000)
    rec.write(np.full(320, 0.5, np.float32))
    rec.close()
    from aim_edge.audio import read_wav

    rate, x = read_wav(tmp_path / "ok.wav")
    assert rate == 16000 and x.shape == (320,) and int(x[0]) == 16384


def test_no_input_device_points_at_a_pipe_as_well():
    from aim_edge.capture.devices import format_devices

    text = format_devices([], ["ALSA"])
    assert "arecord -l" in text and "| aim-edge run -" in text
