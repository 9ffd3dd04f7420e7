"""Microphone capture cost: aim-edge's PortAudio callback against the usual sounddevice pattern.

What is timed, per 20 ms device block (the work on the audio thread, where every microsecond
holds the GIL and delays the next block):

* ``aim_edge``   -- :meth:`aim_edge.capture.CapturePipe.callback`: count the status flags,
  mix down into a preallocated buffer (multi-channel / int16 only), one native ring push;
* ``queue_copy`` -- the pattern of sounddevice's examples (and sherpa-onnx's microphone
  examples): wrap the block as an ndarray, ``queue.Queue.put(indata.copy())``; mix-down,
  int16 scaling and resampling happen later in the consumer.

And per second of audio, the whole capture path on the CPU: callback + the consumer that turns
blocks into 16 kHz float32 mono (``CapturePipe.drain`` with soxr.ResampleStream, against
``queue.get`` + ``mean`` + the same soxr stream); the median over rounds.

Synthetic mode calls the callbacks directly with a raw buffer (no audio server; both sides pay
the same Python call overhead), round-robin so a noisy neighbour hits both alike: hot caches,
the cost of the work itself. The live run (default; ``--no-live`` skips it) runs both callbacks
on a real PortAudio stream: a private ``jackd -d dummy`` server (needs jackd2 +
libportaudio2), the idle process only, ``--live-s`` seconds each. Live figures are far higher
on a busy machine: a callback arrives every 20 ms with cold caches, and its first numpy call
pays for that (measured here: an empty callback ~2 µs, the same with one ``np.frombuffer``
~20 µs); ``empty_callback_floor`` is the empty one.

    python -m benchmarks.bench_mic               # -> results/mic.json (synthetic + live)
    python -m benchmarks.bench_mic --quick       # ~1 s, synthetic only -> results/mic.quick.json
"""

from __future__ import annotations

import argparse
import gc
import os
import queue
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from aim_edge.capture import CapturePipe
from aim_edge.timing import percentiles

from ._env import print_header, write_report

RESULTS = Path(__file__).resolve().parent / "results"
BLOCK_S = 0.02
CONFIGS = [  # (device rate, channels, dtype)
    (16000, 1, "float32"),
    (48000, 1, "float32"),
    (48000, 2, "float32"),
    (44100, 2, "int16"),
]


class _NoFlags(SimpleNamespace):
    """What sounddevice passes when nothing went wrong: a falsy CallbackFlags."""

    def __bool__(self) -> bool:
        return False


FLAGS = _NoFlags(input_overflow=False, input_underflow=False)


class QueueCopy:
    """The peer: the callback queues a copy of the block; the consumer converts."""

    def __init__(self, rate: int, channels: int, dtype: str, model_rate: int = 16000) -> None:
        import soxr

        self.q: queue.Queue[np.ndarray] = queue.Queue()
        self.input_overflows = 0
        self.channels = channels
        self.dtype = np.dtype(dtype)
        self.rs = (soxr.ResampleStream(rate, model_rate, 1, dtype="float32")
                   if rate != model_rate else None)

    def callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        if status:  # what the examples do with the flags: print them
            print(status, file=sys.stderr)
            if status.input_overflow:
                self.input_overflows += 1
        x = np.frombuffer(indata, self.dtype).reshape(frames, self.channels)
        self.q.put(x.copy())

    def drain(self, sink: list[np.ndarray] | None = None) -> int:
        n = 0
        while True:
            try:
                x = self.q.get_nowait()
            except queue.Empty:
                return n
            mono = x.mean(axis=1, dtype=np.float32) if self.channels > 1 else x[:, 0]
            if self.dtype == np.int16:
                mono = mono.astype(np.float32) / np.float32(32768.0)
            y = self.rs.resample_chunk(mono) if self.rs is not None else mono
            n += y.size
            if sink is not None:
                sink.append(np.array(y, np.float32))


class Ours:
    def __init__(self, rate: int, channels: int, dtype: str) -> None:
        self.pipe = CapturePipe(rate, channels, dtype, ring_s=4.0)
        self.callback = self.pipe.callback

    def drain(self, sink: list[np.ndarray] | None = None) -> int:
        if sink is None:
            return self.pipe.drain(lambda y, t: None)
        return self.pipe.drain(lambda y, t: sink.append(np.array(y)))


def _blocks(rate: int, channels: int, dtype: str, n: int, seed: int = 0) -> list[bytes]:
    frames = int(round(rate * BLOCK_S))
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.5, 0.5, (n, frames, channels)).astype(np.float32)
    if dtype == "int16":
        x = np.round(x * 32767).astype(np.int16)
    return [memoryview(b.tobytes()) for b in x]


def synthetic(config: tuple[int, int, str], seconds: float, rounds: int) -> dict[str, Any]:
    rate, channels, dtype = config
    frames = int(round(rate * BLOCK_S))
    n_blocks = max(1, int(round(seconds / BLOCK_S)))
    blocks = _blocks(rate, channels, dtype, min(n_blocks, 64))
    impls = {"aim_edge": Ours, "queue_copy": QueueCopy}
    cb_ns: dict[str, list[int]] = {k: [] for k in impls}
    path_us_per_s: dict[str, list[float]] = {k: [] for k in impls}
    clock = time.perf_counter_ns
    for r in range(rounds):
        for name, cls in (impls.items() if r % 2 == 0 else reversed(impls.items())):
            impl = cls(rate, channels, dtype)
            cb = impl.callback
            for buf in blocks[:10]:  # warm-up: first resampler call, caches
                cb(buf, frames, None, FLAGS)
                impl.drain()
            total = 0
            gc.disable()
            try:
                for i in range(n_blocks):
                    buf = blocks[i % len(blocks)]
                    t0 = clock()
                    cb(buf, frames, None, FLAGS)
                    t1 = clock()
                    cb_ns[name].append(t1 - t0)
                    total += t1 - t0
                    if i % 4 == 3:  # the capture thread wakes every few blocks
                        impl.drain()
                        total += clock() - t1
                t1 = clock()
                impl.drain()
                total += clock() - t1
            finally:
                gc.enable()
            path_us_per_s[name].append(total / 1000.0 / (n_blocks * BLOCK_S))
    out: dict[str, Any] = {"rate": rate, "channels": channels, "dtype": dtype,
                           "frames_per_block": frames, "blocks": n_blocks * rounds}
    for name in impls:
        p = percentiles(np.asarray(cb_ns[name], np.float64) / 1000.0)
        out[name] = {"callback_us": {k: round(v, 3) for k, v in p.items()},
                     "capture_path_us_per_audio_s": round(float(np.median(
                         path_us_per_s[name])), 1)}
    out["ratio_callback_p50_peer_over_ours"] = round(
        out["queue_copy"]["callback_us"]["p50"] / out["aim_edge"]["callback_us"]["p50"], 2)
    out["ratio_capture_path_peer_over_ours"] = round(
        out["queue_copy"]["capture_path_us_per_audio_s"]
        / out["aim_edge"]["capture_path_us_per_audio_s"], 2)
    return out


# ----------------------------------------------------------------------------- live (JACK)

_SHM = Path("/dev/shm")
_SHM_BEFORE: set[str] = set()


def _start_jackd(rate: int, period: int) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    _SHM_BEFORE.update(p.name for p in _SHM.glob("jack*"))
    name = f"aimedge-bench-{os.getpid()}"
    env = dict(os.environ, JACK_NO_START_SERVER="1", JACK_DEFAULT_SERVER=name)
    proc = subprocess.Popen(["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r",
                             str(rate), "-p", str(period), "-C", "2", "-P", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    for _ in range(500):
        if subprocess.run(["jack_lsp"], env=env, capture_output=True).returncode == 0:
            return proc, env
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("jackd did not start")


def _stop_jackd(proc: subprocess.Popen[bytes], env: dict[str, str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    # this server's files; the shared registry too when this run created it and no jackd is
    # left (PortAudio in this process has let go of JACK by now)
    no_jackd = subprocess.run(["pgrep", "-x", "jackd"], capture_output=True).returncode != 0
    for p in _SHM.glob("jack*"):
        if env["JACK_DEFAULT_SERVER"] in p.name or (no_jackd and p.name not in _SHM_BEFORE):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def live(seconds: float, rate: int = 16000) -> dict[str, Any]:
    """Both callbacks on a real PortAudio stream (JACK dummy, ``rate`` Hz, 20 ms periods)."""
    proc, env = _start_jackd(rate, int(rate * BLOCK_S))
    os.environ.update({k: env[k] for k in ("JACK_NO_START_SERVER", "JACK_DEFAULT_SERVER")})
    try:
        import sounddevice as sd

        sd._terminate()
        sd._initialize()
        dev = next(d["index"] for d in sd.query_devices() if d["max_input_channels"] > 0
                   and "JACK" in sd.query_hostapis(d["hostapi"])["name"])
        out: dict[str, Any] = {"rate": rate, "host_api": "JACK (dummy backend)",
                               "seconds_each": seconds}
        # the floor: a callback that only reads the clock twice (what PortAudio + cffi +
        # sounddevice cost before any work, not counted in the figures below)
        floor: list[int] = []

        def empty(indata: Any, frames: int, t: Any, status: Any) -> None:
            t0 = time.perf_counter_ns()
            floor.append(time.perf_counter_ns() - t0)

        with sd.RawInputStream(samplerate=rate, device=dev, channels=1, dtype="float32",
                               callback=empty, latency="low"):
            time.sleep(min(seconds, 3.0))
        p = percentiles(np.asarray(floor, np.float64) / 1000.0)
        out["empty_callback_floor"] = {k: round(v, 3) for k, v in p.items()}
        out["empty_callback_floor"]["input_overflows"] = 0
        for channels, dtype in ((1, "float32"), (2, "int16")):
            for name, cls in (("aim_edge", Ours), ("queue_copy", QueueCopy)):
                impl = cls(rate, channels, dtype)
                costs: list[int] = []
                inner = impl.callback

                def timed(indata: Any, frames: int, t: Any, status: Any,
                          inner: Any = inner, costs: list[int] = costs) -> None:
                    t0 = time.perf_counter_ns()
                    inner(indata, frames, t, status)
                    costs.append(time.perf_counter_ns() - t0)

                with sd.RawInputStream(samplerate=rate, device=dev, channels=channels,
                                       dtype=dtype, callback=timed, latency="low"):
                    t_end = time.monotonic() + seconds
                    while time.monotonic() < t_end:
                        impl.drain()
                        time.sleep(0.005)
                p = percentiles(np.asarray(costs, np.float64) / 1000.0)
                res = {k: round(v, 3) for k, v in p.items()}
                res["input_overflows"] = (impl.pipe.input_overflows if isinstance(impl, Ours)
                                          else impl.input_overflows)
                out[f"{name}_{channels}ch_{dtype}"] = res
            a = out[f"aim_edge_{channels}ch_{dtype}"]["p50"]
            b = out[f"queue_copy_{channels}ch_{dtype}"]["p50"]
            out[f"ratio_p50_{channels}ch_{dtype}_peer_over_ours"] = round(b / a, 2)
        return out
    finally:
        # let PortAudio go of the server before it stops (Pa_Terminate asserts otherwise)
        os.environ.pop("JACK_DEFAULT_SERVER", None)
        if "sounddevice" in sys.modules:
            sd = sys.modules["sounddevice"]
            sd._terminate()
            sd._initialize()
        _stop_jackd(proc, env)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="~1 s, synthetic only")
    ap.add_argument("--seconds", type=float, default=20.0,
                    help="audio per implementation per round (synthetic)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--live-s", type=float, default=10.0, help="seconds per live run")
    ap.add_argument("--no-live", action="store_true", help="skip the JACK run")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds, args.no_live = 0.4, 2, True
    out = args.out or RESULTS / ("mic.quick.json" if args.quick else "mic.json")
    env = print_header("microphone capture: callback and capture-path cost",
                       {"block": f"{BLOCK_S * 1000:g} ms", "peer": "queue.Queue.put(copy)"})
    results = []
    print(f"{'device':<22} {'impl':<11} {'callback p50':>13} {'p99':>9} {'max':>9}"
          f" {'path us/s':>10}")
    for cfg in CONFIGS:
        r = synthetic(cfg, args.seconds, args.rounds)
        results.append(r)
        label = f"{cfg[0]} Hz x{cfg[1]} {cfg[2]}"
        for name in ("aim_edge", "queue_copy"):
            cb = r[name]["callback_us"]
            print(f"{label:<22} {name:<11} {cb['p50']:>10.2f} us {cb['p99']:>9.2f}"
                  f" {cb['max']:>9.1f} {r[name]['capture_path_us_per_audio_s']:>10.1f}")
        print(f"{'':<22} ratio peer/ours: callback p50 {r['ratio_callback_p50_peer_over_ours']}x,"
              f" capture path {r['ratio_capture_path_peer_over_ours']}x")
    report: dict[str, Any] = {"environment": env, "block_s": BLOCK_S,
                              "peer": "queue_copy: queue.Queue.put(indata.copy()) in the callback"
                                      " (sounddevice / sherpa-onnx examples)",
                              "synthetic": results, "live": None,
                              "command": "python -m benchmarks.bench_mic"
                                         + (" --quick" if args.quick else "")}
    if not args.no_live:
        if shutil.which("jackd") is None:
            print("\nlive: skipped (jackd not installed: scripts/install-system-deps.sh test)")
            report["live"] = {"skipped": "jackd not installed"}
        else:
            lv = live(args.live_s)
            report["live"] = lv
            print(f"\nlive, JACK dummy at {lv['rate']} Hz, {args.live_s:g} s each (callback"
                  " entry to return, us):")
            for key, val in lv.items():
                if isinstance(val, dict):
                    print(f"  {key:<26} p50 {val['p50']:8.2f}  p99 {val['p99']:8.2f}"
                          f"  max {val['max']:8.1f}  n={int(val['n'])}"
                          f"  input overflows {val['input_overflows']}")
                elif key.startswith("ratio"):
                    print(f"  {key:<26} {val}x")
    write_report(report, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
