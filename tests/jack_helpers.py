"""A private JACK server with the dummy backend: a real PortAudio input device without a sound
card (recipe: RECIPES.md, "A virtual microphone for tests").

Each :class:`JackServer` runs ``jackd -n <unique name> --no-realtime -d dummy``, paced by a
timer like a sound card. Clients find it through ``JACK_DEFAULT_SERVER`` (see :meth:`env`);
``JACK_NO_START_SERVER=1`` keeps any client from starting a server of its own. The server is
stopped by its pid when the ``with`` block ends, at interpreter exit, and (through
``PR_SET_PDEATHSIG``) when the test process dies; its ``/dev/shm`` files are removed.

JACK's server registry (``/dev/shm/jack-shm-registry``) has 8 slots, and jackd reclaims a
dead server's slot only when a server *of the same name* starts. A killed test server cannot
unregister itself and every test server has a new name, so each kill used to leave a slot
taken for good: after 8 kills (across runs: the registry outlives them) no jackd starts,
"Too many servers already active". :func:`reclaim_dead_test_slots` frees the slots of this
suite's dead servers before each start and after each stop.

:class:`Player` plays known audio into the server from this process (a sounddevice output
stream) and :meth:`JackServer.wire` connects it to another client's input ports.
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

_counter = itertools.count()
_live: list[JackServer] = []
_SHM_BEFORE: set[str] = set()  # /dev/shm/jack* names before this process's first server
SHM = Path("/dev/shm")


def jack_missing() -> str | None:
    """Why JACK tests cannot run here, or None when they can."""
    for tool in ("jackd", "jack_lsp", "jack_connect", "jack_disconnect"):
        if shutil.which(tool) is None:
            return (f"{tool} not found: JACK tests need jackd2 and libportaudio2"
                    " (scripts/install-system-deps.sh test installs them)")
    try:
        import sounddevice  # noqa: F401
    except ImportError:
        return "python-sounddevice not installed (pip install -e '.[test]')"
    except OSError as exc:
        return f"PortAudio library missing ({exc}): apt-get install libportaudio2"
    return None


def require_jack() -> None:
    why = jack_missing()
    if why:
        pytest.skip(why)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


REGISTRY = SHM / "jack-shm-registry"
_REGISTRY_MAGIC = 0x4A41434B  # "JACK"
MAX_SERVERS = 8  # jack2 shm.h
_HEADER = 24  # magic u32, protocol u16 (+2 pad), type, size, hdr_len, entry_len: u32 each


def _pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _taken_slots() -> tuple[int, list[tuple[int, int, str]]]:
    """``(slot size, [(offset, pid, name), ...])`` of the taken slots of JACK's server
    registry; ``(0, [])`` when there is none or its layout is not the one this helper knows."""
    try:
        data = REGISTRY.read_bytes()
    except OSError:
        return 0, []
    if len(data) < _HEADER:
        return 0, []
    magic = int.from_bytes(data[0:4], "little")
    hdr_len = int.from_bytes(data[16:20], "little")
    slot, rest = divmod(hdr_len - _HEADER, MAX_SERVERS)
    if magic != _REGISTRY_MAGIC or rest or slot < 8 or hdr_len > len(data):
        return 0, []
    taken = []
    for i in range(MAX_SERVERS):
        off = _HEADER + i * slot
        pid = int.from_bytes(data[off:off + 4], "little", signed=True)
        name = data[off + 4:off + slot].split(b"\0", 1)[0].decode(errors="replace")
        if pid:
            taken.append((off, pid, name))
    return slot, taken


def registry_slots() -> list[tuple[int, str]]:
    """``(pid, name)`` of every taken slot of JACK's server registry ([] when there is none
    or its layout is not the one this helper knows)."""
    return [(pid, name) for _, pid, name in _taken_slots()[1]]


def reclaim_dead_test_slots() -> int:
    """Free the registry slots of this suite's servers (``aimedge-test-*``) whose jackd is
    gone, the way jackd frees a dead slot of its own name; returns how many were freed.
    Slots of other servers, live or dead, are left alone."""
    slot, taken = _taken_slots()
    dead = [off for off, pid, name in taken
            if pid > 0 and ":aimedge-test-" in name and not _pid_alive(pid)]
    if not dead:
        return 0
    try:
        fd = os.open(REGISTRY, os.O_RDWR)
    except OSError:
        return 0
    try:
        for off in dead:
            os.pwrite(fd, bytes(slot), off)
    finally:
        os.close(fd)
    return len(dead)


def _jackd_pids() -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if (p / "comm").read_text().strip() == "jackd":
                    pids.append(int(p.name))
            except OSError:
                continue
    return pids


class JackServer:
    """A dummy-backend jackd at ``rate`` Hz with ``period`` frames, ``capture`` input ports."""

    def __init__(self, rate: int = 16000, period: int = 320, capture: int = 1,
                 playback: int = 1) -> None:
        self.rate, self.period = rate, period
        self.capture, self.playback = capture, playback
        self.name = f"aimedge-test-{os.getpid()}-{next(_counter)}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = ""

    # ------------------------------------------------------------------ lifetime
    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["JACK_NO_START_SERVER"] = "1"
        env["JACK_DEFAULT_SERVER"] = self.name
        return env

    def start(self, timeout: float = 10.0) -> JackServer:
        if not _SHM_BEFORE and SHM.is_dir():
            _SHM_BEFORE.update({p.name for p in SHM.glob("jack*")} | {"(snapshot taken)"})
        reclaim_dead_test_slots()
        self.proc = subprocess.Popen(
            ["jackd", "-n", self.name, "--no-realtime", "-d", "dummy", "-r", str(self.rate),
             "-p", str(self.period), "-C", str(self.capture), "-P", str(self.playback)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env(),
            preexec_fn=_die_with_parent)
        _live.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""
                self.stop()
                hint = ""
                if "Too many servers" in out:
                    hint = (f"\nJACK registry slots (pid, name): {registry_slots()}; slots of"
                            " other dead servers are not ours to free: delete"
                            f" {REGISTRY} when no jackd runs")
                raise RuntimeError(
                    f"jackd exited with {self.proc.returncode}: {out[-2000:]}{hint}")
            if self._run("jack_lsp", check=False).returncode == 0:
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"jackd {self.name} not ready after {timeout} s")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the server (the device disappears for its clients)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)

    def stop(self) -> None:
        """Stop the server by its pid and remove the shared-memory files it left."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            if self.proc.stdout is not None:
                self.log = self.proc.stdout.read().decode(errors="replace")
                self.proc.stdout.close()
        if self in _live:
            _live.remove(self)
        reclaim_dead_test_slots()
        self._clean_shm()

    def _clean_shm(self) -> None:
        """Remove this server's files, leftovers of test servers whose process is gone, and
        (after a kill, when no jackd runs) the numbered segments it could not remove itself.

        The shared registry (``jack-shm-registry``, ``jack_db-<uid>``) stays until this
        process exits: libjack keeps it mapped, and a registry removed under it hides every
        later server from this process."""
        if not SHM.is_dir():
            return
        no_jackd = not _jackd_pids()
        for p in SHM.glob("jack*"):
            m = re.search(r"aimedge-test-(\d+)-", p.name)
            stale = m is not None and not _pid_alive(int(m.group(1)))
            segment = re.fullmatch(r"jack-\d+-\d+", p.name) is not None
            if self.name in p.name or stale or (
                    segment and no_jackd and p.name not in _SHM_BEFORE):
                _remove(p)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> JackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ ports
    def _run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, env=self.env(),
                              timeout=10)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stdout}{proc.stderr}")
        return proc

    def ports(self) -> list[str]:
        return [p for p in self._run("jack_lsp").stdout.splitlines() if p.strip()]

    def connections(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        port = None
        for line in self._run("jack_lsp", "-c").stdout.splitlines():
            if line.startswith((" ", "\t")) and port is not None:
                out[port].append(line.strip())
            elif line.strip():
                port = line.strip()
                out[port] = []
        return out

    def wait_for(self, pred: Callable[[], object], timeout: float, what: str) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = pred()
            if value:
                return value
            time.sleep(0.01)
        raise TimeoutError(f"{what} not seen within {timeout} s; ports: {self.connections()}")

    def connect(self, src: str, dst: str) -> None:
        self._run("jack_connect", src, dst)

    def disconnect(self, src: str, dst: str) -> None:
        self._run("jack_disconnect", src, dst, check=False)

    def wire(self, sources: list[str], inputs: list[str]) -> None:
        """Feed ``inputs`` from ``sources`` only (the dummy capture ports are unplugged)."""
        conns = self.connections()
        for dst, src in zip(inputs, sources, strict=True):
            for other in conns.get(dst, []):
                self.disconnect(other, dst)
            self.connect(src, dst)


def _remove(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def stop_all() -> None:
    """Stop every server this process started; at exit also remove the shared JACK files
    that appeared since the first start, when no jackd runs any more."""
    for server in list(_live):
        server.stop()
    if _SHM_BEFORE and SHM.is_dir() and not _jackd_pids():
        for p in SHM.glob("jack*"):
            if p.name not in _SHM_BEFORE:
                _remove(p)


atexit.register(stop_all)


class Player:
    """Plays ``signal`` (float32, ``(n,)`` or ``(n, channels)``) through a sounddevice output
    stream on the JACK host API of this process, silence before :meth:`go` and after the end.

    Use while PortAudio in this process is connected to the server (``rescan_devices`` with the
    server's environment).
    """

    def __init__(self, signal_: np.ndarray, rate: int, device: int) -> None:
        import sounddevice as sd

        x = np.asarray(signal_, np.float32)
        self.signal = x.reshape(len(x), -1)
        self.channels = self.signal.shape[1]
        self.pos = 0
        self.started = threading.Event()
        self.done = threading.Event()
        self._go = False
        self.stream = sd.OutputStream(samplerate=rate, device=device, channels=self.channels,
                                      dtype="float32", callback=self._callback)

    def _callback(self, outdata: np.ndarray, frames: int, time_info: object,
                  status: object) -> None:
        if not self._go:
            outdata.fill(0)
            return
        chunk = self.signal[self.pos:self.pos + frames]
        outdata[:len(chunk)] = chunk
        outdata[len(chunk):] = 0
        if self.pos == 0:
            self.started.set()
        self.pos += frames
        if self.pos >= len(self.signal):
            self.done.set()

    def go(self) -> None:
        self._go = True

    def __enter__(self) -> Player:
        self.stream.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.abort()
        self.stream.close()
