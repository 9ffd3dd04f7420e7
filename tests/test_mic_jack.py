"""The real PortAudio path: a JACK server with the dummy backend as the microphone.

Each test starts its own ``jackd -d dummy`` (tests/jack_helpers.py), plays known audio into it
from this process and checks what the capture delivered; the server is stopped by its pid
(also on failure) and its shared-memory files removed. Needs jackd2 and libportaudio2
(``scripts/install-system-deps.sh test``); skipped with that reason otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from jack_helpers import MAX_SERVERS, JackServer, Player, jack_missing, registry_slots

from aim_edge import cli
from aim_edge.audio import AudioConverter, read_wav
from aim_edge.errors import DeviceError

pytestmark = pytest.mark.skipif(jack_missing() is not None, reason=str(jack_missing()))

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT / "aim_edge" / "data" / "demo_scene.wav"


_ENV_KEYS = ("JACK_NO_START_SERVER", "JACK_DEFAULT_SERVER")
_ACTIVE: list[JackServer] = []  # servers this process's PortAudio was pointed at, newest last
_ORIGINAL_ENV: dict[str, str | None] = {}


def _point_portaudio_at(server: JackServer | None) -> None:
    from aim_edge.capture import rescan_devices

    if not _ORIGINAL_ENV:
        _ORIGINAL_ENV.update({k: os.environ.get(k) for k in _ENV_KEYS})
    os.environ["JACK_NO_START_SERVER"] = "1"  # a rescan must never start a server
    if server is not None:
        os.environ["JACK_DEFAULT_SERVER"] = server.name
    else:
        os.environ.pop("JACK_DEFAULT_SERVER", None)
    rescan_devices()
    if server is None:  # back to how the process started
        for k, v in _ORIGINAL_ENV.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _connected(server: JackServer):
    """This process's PortAudio sees ``server`` inside the block, the previous one after."""
    _point_portaudio_at(server)
    _ACTIVE.append(server)
    try:
        yield server
    finally:
        _ACTIVE.pop()
        _point_portaudio_at(_ACTIVE[-1] if _ACTIVE else None)


@pytest.fixture(scope="module")
def jack_server():
    """A 16 kHz dummy JACK server with 2 capture ports, shared by this module's tests, that
    this process's PortAudio is connected to; nothing of it is left afterwards."""
    with JackServer(16000, 320, capture=2, playback=2) as server, _connected(server):
        yield server
    assert not server.alive


@pytest.fixture
def jack48_server():
    """The same at 48 kHz (960-frame periods, 1 port): 16 kHz cannot open on it."""
    with JackServer(48000, 960) as server, _connected(server):
        yield server
    assert not server.alive


@pytest.fixture
def bare_jack_server():
    """A dummy JACK server this process has no client of (so it may be killed: PortAudio
    aborts when terminated after its server died)."""
    with JackServer(16000, 320) as server:
        yield server
    assert not server.alive


def _jack_device():
    from aim_edge.capture import list_input_devices, select_device

    return select_device(list_input_devices(), host_api="jack")


def _new_ports(server: JackServer, before: set[str], kind: str, n: int) -> list[str]:
    def found():
        ports = sorted(p for p in server.ports() if p not in before and f":{kind}_" in p)
        return ports if len(ports) >= n else None

    return list(server.wait_for(found, 10.0, f"{n} new {kind} port(s)"))[:n]


class Collect:
    def __init__(self, rate: int) -> None:
        self.sample_rate = rate
        self.stop = threading.Event()
        self.blocks: list[np.ndarray] = []

    def push(self, samples, capture_ns=None):
        self.blocks.append(np.array(samples))
        return 0

    def samples(self) -> np.ndarray:
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.float32)


def _capture(server: JackServer, signal_: np.ndarray, *, tail_s: float = 0.1, **mic_kw):
    """Play ``signal_`` into a MicSource on the server's JACK device; return (samples, mic)."""
    from aim_edge.capture import MicSource

    dev = _jack_device()
    sig = signal_.reshape(len(signal_), -1)
    before = set(server.ports())
    mic = MicSource(dev.index, model_rate=16000, **mic_kw)
    sink = Collect(16000)
    with Player(sig, server.rate, dev.index) as player:
        outs = _new_ports(server, before, "out", sig.shape[1])
        thread = threading.Thread(target=mic.run, args=(sink,), daemon=True)
        thread.start()
        try:
            ins = _new_ports(server, before, "in", mic.settings.channels)
            server.wait_for(lambda: mic.pipe is not None and mic.pipe.callbacks > 0, 10.0,
                            "the first capture callback")
            server.wire(outs[:len(ins)] if len(outs) >= len(ins) else outs * len(ins), ins)
            player.go()
            assert player.done.wait(len(sig) / server.rate + 10), "playback did not finish"
            time.sleep(tail_s)
        finally:
            mic.stop()
            thread.join(10)
    assert not thread.is_alive()
    return sink.samples(), mic


def _signal(n: int, seed: int) -> np.ndarray:
    """Values in +-[0.1, 0.5]: never zero, so the dummy capture's silence marks its edges."""
    rng = np.random.default_rng(seed)
    return (rng.choice([-1.0, 1.0], n) * rng.uniform(0.1, 0.5, n)).astype(np.float32)


def test_devices_command_shows_the_jack_device(jack_server, capsys):
    assert cli.main(["devices"]) == 0
    out = capsys.readouterr().out
    row = [ln for ln in out.splitlines() if "JACK Audio Connection Kit" in ln]
    assert len(row) == 1 and row[0].startswith(" *")  # the default input
    assert " 2 " in row[0] and "16000 Hz" in row[0] and row[0].endswith("system")
    assert cli.main(["devices", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == [{"index": listed[0]["index"], "name": "system",
                       "host_api": "JACK Audio Connection Kit", "channels": 2,
                       "default_rate": 16000.0, "default": True}]


def test_bad_choices_fail_with_the_device_list(jack_server, capsys):
    from aim_edge.capture import list_input_devices, open_settings, select_device

    with pytest.raises(DeviceError, match=r"(?s)'usb mic'.*system"):
        select_device(list_input_devices(), "usb mic")
    with pytest.raises(DeviceError, match="44100 Hz x 1 ch"):  # JACK runs at 16 kHz only
        open_settings(_jack_device(), sample_rate=44100)
    assert cli.main(["listen", "--device", "usb mic"]) == 1
    err = capsys.readouterr().err
    assert "no input device name contains it" in err and "JACK Audio Connection Kit" in err
    assert cli.main(["listen", "--rate", "44100"]) == 1
    err = capsys.readouterr().err
    assert "cannot open for input at any rate tried" in err and "44100 Hz x 1 ch" in err
    assert "input devices:" in err and "system" in err


def test_16k_capture_is_bit_exact_complete_and_in_order(jack_server):
    sig = _signal(8000, seed=1)  # 0.5 s
    got, mic = _capture(jack_server, sig)
    assert mic.settings.sample_rate == 16000 and mic.settings.channels == 1
    nz = np.flatnonzero(got)
    start = int(nz[0])
    assert np.array_equal(got[start:start + sig.size], sig)  # every sample, in order
    assert not got[:start].any() and not got[start + sig.size:].any()  # nothing else
    st = mic.stats()
    assert st.dropped_samples == 0 and st.silence_samples == 0 and st.nonfinite_samples == 0
    assert got.size == st.frames  # no resampling: one sample per device frame
    assert st.callback_us["n"] == st.callbacks > 25


def test_16k_stereo_int16_is_mixed_down(jack_server):
    sig = np.stack([_signal(4000, seed=2), _signal(4000, seed=3)], axis=1)
    got, mic = _capture(jack_server, sig, channels=2, dtype="int16")
    assert (mic.settings.channels, mic.settings.dtype) == (2, "int16")
    want = sig.mean(axis=1)
    onset = int(np.flatnonzero(np.abs(got) > 0.02)[0])  # the first mixed sample may be ~0
    start = max(range(max(onset - 8, 0), onset + 1),
                key=lambda k: float(np.dot(got[k:k + want.size], want)))
    # PortAudio converts JACK's float to int16 with dither: within 2 LSB per channel
    np.testing.assert_allclose(got[start:start + len(want)], want, atol=3 / 32768)


def test_48k_device_is_resampled_within_tolerance(jack48_server):
    t = np.arange(24000) / 48000  # 0.5 s
    env = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.05)  # 50 ms fades
    sig = (env * (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3100 * t)
                  + 0.1 * np.sin(2 * np.pi * 6500 * t))).astype(np.float32)
    got, mic = _capture(jack48_server, sig)
    assert mic.settings.sample_rate == 48000  # 16 kHz cannot open on a 48 kHz JACK server
    conv = AudioConverter(16000)
    ref = np.concatenate([conv.convert(48000, sig), conv.flush()])
    onset = int(np.flatnonzero(np.abs(got) > 1e-4)[0])
    best = max(range(max(onset - 64, 0), onset + 64),
               key=lambda k: float(np.dot(got[k:k + ref.size], ref)))
    seg = got[best:best + ref.size]
    assert seg.size == ref.size
    err = np.abs(seg - ref)
    assert err.max() < 1e-3, f"max error {err.max():.2e} at {int(err.argmax())}"
    assert mic.stats().dropped_samples == 0
    assert any("48000 Hz -> 16000 Hz" in n for n in mic.notes)


def test_stalled_consumer_drops_are_counted_and_warned(jack_server):
    from aim_edge.capture import MicSource

    warnings: list[str] = []
    mic = MicSource(_jack_device().index, ring_s=0.1, duration_s=1.2,
                    on_warning=warnings.append)

    class Stalling(Collect):
        def push(self, samples, capture_ns=None):
            if len(self.blocks) == 3:
                time.sleep(0.5)  # the capture thread stops draining for 0.5 s
            return super().push(samples, capture_ns)

    sink = Stalling(16000)
    mic.run(sink)
    st = mic.stats()
    assert st.dropped_samples >= 0.25 * 16000, st  # 0.5 s stall, 0.128 s ring
    assert st.overflow_events >= 1 and st.input_overflows <= 2
    assert st.silence_samples == st.dropped_samples
    assert sink.samples().size == st.frames  # the gap is silence: stream time kept
    assert any("dropped at the capture ring" in w for w in warnings), warnings
    assert any("dropped at the capture ring" in n for n in mic.notes)


def _listen(server: JackServer, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "aim_edge.cli", "listen", "--host-api", "jack", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=server.env(),
        cwd=ROOT)


def _wait_listening(server: JackServer, proc: subprocess.Popen[str], before: set[str]) -> str:
    """The listen process's input port, once its stream runs (connected to the capture)."""
    def port():
        if proc.poll() is not None:
            raise AssertionError(f"listen exited early: {proc.communicate()}")
        for name, conns in server.connections().items():
            if name not in before and ":in_" in name and conns:
                return name
        return None

    return str(server.wait_for(port, 30.0, "the listen stream"))


def test_listen_raises_the_siren_alert_in_its_window(jack_server, tmp_path):
    rate, scene = read_wav(SCENE)
    assert rate == 16000
    cut_start, cut_end = 17.0, 19.5  # the demo scene's siren starts at 18.094 s
    cut = scene[int(cut_start * rate):int(cut_end * rate)].astype(np.float32) / 32768
    record = tmp_path / "heard.wav"
    dev = _jack_device()
    before = set(jack_server.ports())
    with Player(cut, rate, dev.index) as player:
        out = _new_ports(jack_server, before, "out", 1)[0]
        before = set(jack_server.ports())
        proc = _listen(jack_server, "--duration", "3.5", "--jsonl", "-", "--quiet",
                       "--record", str(record))
        try:
            port = _wait_listening(jack_server, proc, before)
            jack_server.wire([out], [port])
            player.go()
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, stderr
    events = [json.loads(line) for line in stdout.splitlines()]
    # where the cut landed in the stream, from what the model heard (bit-exact, so exact)
    with wave.open(str(record)) as w:
        heard = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    pcm = scene[int(cut_start * rate):int(cut_end * rate)]
    offset = int(np.flatnonzero(heard)[0]) - int(np.flatnonzero(pcm)[0])
    assert np.array_equal(heard[offset:offset + pcm.size], pcm)
    alerts = [e for e in events if e["type"] == "alert"]
    sirens = [e["t"] - offset / rate + cut_start for e in alerts if e["label"] == "siren"]
    assert sirens, f"no siren alert; alerts: {alerts}"
    assert 18.094 <= sirens[0] <= cut_end, sirens  # labels: earliest 18.094, latest 23.094
    final = [e for e in events if e["type"] == "stats" and e.get("final")]
    assert len(final) == 1
    capture = final[0]["capture"]
    assert capture["dropped_samples"] == 0 and capture["callbacks"] > 150  # 3.5 s / 20 ms
    assert final[0]["dropped_samples"] == 0
    assert "capture hop" in stderr and "callback      p50" in stderr


def test_killing_the_audio_server_ends_listen_cleanly(bare_jack_server):
    server = bare_jack_server
    before = set(server.ports())
    proc = _listen(server, "--quiet")
    try:
        _wait_listening(server, proc, before)
        time.sleep(0.3)
        t0 = time.monotonic()
        server.kill()
        stdout, stderr = proc.communicate(timeout=20)
        ended = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, (stdout, stderr)
    assert ended < 10
    assert "stopped delivering audio" in stderr and "aim-edge devices" in stderr
    assert "Traceback" not in stderr
    assert "summary:" in stdout and "microphone" in stdout  # what was heard is reported


@pytest.mark.parametrize("sig,name", [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl-C")])
def test_sigterm_and_ctrl_c_end_listen_cleanly(jack_server, tmp_path, sig, name):
    """`timeout`, systemd and `docker stop` send SIGTERM, a terminal Ctrl-C SIGINT: the tail
    is decoded, the summary printed, --jsonl closed with its final stats event, exit code 0
    (this failed about half the time while the signal raised inside Thread.join)."""
    before = set(jack_server.ports())
    events_path = tmp_path / "events.jsonl"
    proc = _listen(jack_server, "--quiet", "--jsonl", str(events_path))
    try:
        _wait_listening(jack_server, proc, before)
        time.sleep(0.5)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, (stdout, stderr)
    assert "Traceback" not in stderr
    assert "summary:" in stdout and f"stopped ({name})" in stdout
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    final = [e for e in events if e["type"] == "stats" and e.get("final")]
    assert len(final) == 1 and final[0]["capture"]["callbacks"] > 0, (
        events_path.read_text()[-2000:], stdout[-1500:], stderr[-1500:])


def test_killed_servers_do_not_use_up_the_jack_registry():
    """CI once failed with "Too many servers already active": each SIGKILLed test server left
    its slot in JACK's 8-slot registry (which outlives the test run), and jackd reclaims a dead
    slot only for a server of the same name. More kills than slots must not stop a start."""
    pids = []
    for _ in range(MAX_SERVERS + 2):
        with JackServer(16000, 320) as server:  # raises when jackd cannot register
            pids.append(server.proc.pid)
            assert any(pid == server.proc.pid and server.name in name
                       for pid, name in registry_slots())
            server.kill()
    taken = {pid for pid, _ in registry_slots()}
    assert not taken & set(pids), registry_slots()


def test_profile_on_a_live_microphone_measures_capture_to_ring(jack_server, tmp_path, capsys):
    dev = _jack_device()
    rc = cli.main(["profile", "--device", str(dev.index), "--seconds", "2", "--in-process",
                   "--report", str(tmp_path / "prof"), "--no-plots"])
    out = capsys.readouterr().out
    assert rc == 0, out
    report = json.loads((tmp_path / "prof" / "report.json").read_text())
    res = report["rows"][0]["result"]
    cap = res["capture"]
    assert cap["device"].startswith("microphone: ") and cap["callbacks"] > 50  # 2 s / 20 ms
    assert cap["dropped_samples"] == 0 and res["dropped_samples"] == 0
    c2r = res["stages_ms"]["capture_to_ring"]
    # ADC timestamp -> decoding ring: more than nothing, far less than the budget
    assert c2r["n"] >= 10 and 0.0 < c2r["p50"] < 100.0
    assert not any("capture -> ring is 0" in n for n in res["notes"])
    assert "capture to ring" in out.replace("capture_to_ring", "capture to ring")
    assert "PortAudio input overflows" in out


def test_profile_device_usage_errors(jack_server, capsys):
    for argv, needle in ((["--device", "0"], "give --seconds"),
                         (["--device", "0", "--seconds", "1", "--fast"], "drop --fast"),
                         (["x.wav", "--device", "0", "--seconds", "1"], "not both")):
        assert cli.main(["profile", *argv]) == 2
        assert needle in capsys.readouterr().err
    rc = cli.main(["profile", "--device", "no-such-mic", "--seconds", "1", "--in-process"])
    err = capsys.readouterr().err
    assert rc == 1 and "no-such-mic" in err
