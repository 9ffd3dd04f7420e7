"""Streaming fbank cost per 10 ms hop from Python: aim-edge against two peers, in one run.

Workload (the perceive loop's real pattern): 16 kHz audio arrives in 320-sample chunks (20 ms,
two 10 ms hops); after each chunk the consumer takes every ready 80-bin log-mel frame as a
fresh float32 array. One call = feed one chunk + take the ready frames:

* ``aim_edge``    -- :class:`aim_edge.features.StreamingFbank` (C++ core, pybind11 binding):
                     ``accept_waveform(chunk)`` + ``pop_frames()``;
* ``kaldi_native_fbank`` -- ``knf.OnlineFbank``: ``accept_waveform(16000, chunk)``, then
                     ``get_frame(i)`` for each new frame (stacked into one array, since its
                     frames are views that die with ``pop``) and ``pop(k)``;
* ``numpy``       -- :class:`benchmarks._numpy_fbank.NumpyStreamingFbank`, a vectorised numpy
                     Kaldi fbank that buffers and computes the ready frames per chunk.

Each call is timed with ``perf_counter_ns``; its time divided by the hops in a chunk (2) is one
sample of the per-hop cost. Reported: mean (total time / hops), median, p95, p99 and max per hop,
x-real-time (audio seconds / compute seconds) and ratios peer / ours. The implementations run
round-robin, one pass over the audio each per round (a fresh stream each), so a noisy neighbour
hits all of them alike. Before timing, every implementation's frames are checked against ours
(max |diff| <= 1e-3 on log-mel; printed and stored).

    python -m benchmarks.bench_features          # 60 s of audio x 5 rounds -> results/features.json
    python -m benchmarks.bench_features --quick  # ~2 s of audio -> results/features.quick.json
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import kaldi_native_fbank as knf
import numpy as np

from aim_edge.config import FbankConfig
from aim_edge.features import StreamingFbank, compute_fbank

from ._env import print_header, write_report
from ._numpy_fbank import NumpyStreamingFbank

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLE_RATE = 16000
HOP = 160
CHUNK = 320
N_MELS = 80
TARGET_SPEEDUP_VS_KNF = 3.0
AGREEMENT_TOL = 1e-3


class _Stream(Protocol):
    def feed(self, chunk: np.ndarray) -> np.ndarray: ...


class _Ours:
    def __init__(self) -> None:
        fb = StreamingFbank(FbankConfig(n_mels=N_MELS))
        self._accept, self._pop = fb.accept_waveform, fb.pop_frames

    def feed(self, chunk: np.ndarray) -> np.ndarray:
        self._accept(chunk)
        return self._pop()


class _Knf:
    def __init__(self) -> None:
        opts = knf.FbankOptions()
        opts.frame_opts.dither = 0.0
        opts.frame_opts.samp_freq = float(SAMPLE_RATE)
        opts.mel_opts.num_bins = N_MELS
        self._fb = knf.OnlineFbank(opts)
        self._popped = 0
        self._empty = np.zeros((0, N_MELS), dtype=np.float32)

    def feed(self, chunk: np.ndarray) -> np.ndarray:
        fb = self._fb
        fb.accept_waveform(SAMPLE_RATE, chunk)
        ready = fb.num_frames_ready
        if ready == self._popped:
            return self._empty
        frames = np.stack([fb.get_frame(i) for i in range(self._popped, ready)])
        fb.pop(ready - self._popped)
        self._popped = ready
        return frames


class _Numpy:
    def __init__(self) -> None:
        fb = NumpyStreamingFbank(SAMPLE_RATE, N_MELS)
        self._accept, self._pop = fb.accept_waveform, fb.pop_frames

    def feed(self, chunk: np.ndarray) -> np.ndarray:
        self._accept(chunk)
        return self._pop()


IMPLEMENTATIONS: dict[str, tuple[str, type[_Stream]]] = {
    "aim_edge": ("aim_edge.features.StreamingFbank (C++ core, pybind11 binding)", _Ours),
    "kaldi_native_fbank": (f"kaldi_native_fbank {knf.__version__} OnlineFbank", _Knf),
    "numpy": ("vectorised numpy Kaldi fbank (benchmarks/_numpy_fbank.py)", _Numpy),
}


def make_audio(seconds: float) -> np.ndarray:
    """Deterministic test audio in [-1, 1]: Gaussian noise plus a 440 Hz tone (any content
    costs the same; this one exercises every mel bin)."""
    n = max(CHUNK, int(round(seconds * SAMPLE_RATE / CHUNK)) * CHUNK)
    t = np.arange(n) / SAMPLE_RATE
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal(n) + 0.1 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)


def _frames_of(cls: type[_Stream], chunks: list[np.ndarray]) -> np.ndarray:
    stream = cls()
    return np.concatenate([stream.feed(chunk) for chunk in chunks])


def check_agreement(audio: np.ndarray, chunks: list[np.ndarray]) -> dict[str, float]:
    """Max |log-mel difference| of every implementation against ours (streamed) and of our
    streamed frames against our one-shot path; raises if a peer computes something else."""
    ours = _frames_of(_Ours, chunks)
    one_shot = compute_fbank(audio)[: ours.shape[0]]
    agreement = {"aim_edge_stream_vs_one_shot": float(np.abs(ours - one_shot).max())}
    for key, (_, cls) in IMPLEMENTATIONS.items():
        if key == "aim_edge":
            continue
        theirs = _frames_of(cls, chunks)
        if theirs.shape != ours.shape:
            raise AssertionError(f"{key}: {theirs.shape} frames, aim_edge {ours.shape}")
        agreement[key] = float(np.abs(theirs - ours).max())
    bad = {k: v for k, v in agreement.items() if v > AGREEMENT_TOL}
    if bad:
        raise AssertionError(f"frames differ from aim_edge by more than {AGREEMENT_TOL}: {bad}")
    return agreement


def _run_once(stream: _Stream, chunks: list[np.ndarray]) -> list[int]:
    """One pass over the audio; returns the ns of every call (feed one chunk, take frames)."""
    feed, clock = stream.feed, time.perf_counter_ns
    out = []
    for chunk in chunks:
        t0 = clock()
        feed(chunk)
        out.append(clock() - t0)
    return out


def _summary(call_ns: list[int], audio_s_per_pass: float, passes: int) -> dict[str, float]:
    hops_per_call = CHUNK // HOP
    per_hop_us = np.asarray(call_ns, dtype=np.float64) / hops_per_call / 1e3
    total_s = float(np.sum(call_ns)) / 1e9
    return {
        "mean_us_per_hop": float(per_hop_us.mean()),
        "median_us_per_hop": float(np.median(per_hop_us)),
        "p95_us_per_hop": float(np.percentile(per_hop_us, 95)),
        "p99_us_per_hop": float(np.percentile(per_hop_us, 99)),
        "max_us_per_hop": float(per_hop_us.max()),
        "x_realtime": audio_s_per_pass * passes / total_s,
        "calls": len(call_ns),
        "hops": len(call_ns) * hops_per_call,
    }


def run(seconds: float, rounds: int) -> dict[str, Any]:
    """Run the benchmark; returns the result dict (also what is written as JSON)."""
    audio = make_audio(seconds)
    chunks = [audio[i:i + CHUNK] for i in range(0, audio.size, CHUNK)]
    agreement = check_agreement(audio, chunks[: min(len(chunks), 500)])

    warm = chunks[: min(len(chunks), SAMPLE_RATE // CHUNK)]  # ~1 s
    for _, cls in IMPLEMENTATIONS.values():
        _run_once(cls(), warm)

    call_ns: dict[str, list[int]] = {key: [] for key in IMPLEMENTATIONS}
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside one call would be charged to whoever ran it
    try:
        for _ in range(rounds):
            for key, (_, cls) in IMPLEMENTATIONS.items():
                call_ns[key] += _run_once(cls(), chunks)
    finally:
        if gc_was_enabled:
            gc.enable()

    # The native work alone, without a Python call per chunk: the whole audio in one call.
    one_shot_s = min(_timed(lambda: compute_fbank(audio)) for _ in range(max(3, rounds)))
    n_frames = compute_fbank(audio).shape[0]

    audio_s = audio.size / SAMPLE_RATE
    results = {key: {"name": IMPLEMENTATIONS[key][0], **_summary(values, audio_s, rounds)}
               for key, values in call_ns.items()}
    ours = results["aim_edge"]
    stats = ("mean_us_per_hop", "median_us_per_hop", "p99_us_per_hop")
    ratios = {key: {stat: res[stat] / ours[stat] for stat in stats}
              for key, res in results.items() if key != "aim_edge"}
    speedup = ratios["kaldi_native_fbank"]["median_us_per_hop"]
    return {
        "benchmark": "features",
        "workload": {
            "sample_rate": SAMPLE_RATE, "chunk": CHUNK, "hop": HOP, "n_mels": N_MELS,
            "hops_per_call": CHUNK // HOP, "audio_seconds": audio_s, "rounds": rounds,
            "config": FbankConfig(n_mels=N_MELS).to_dict(),
        },
        "agreement_max_abs_vs_aim_edge": agreement,
        "results": results,
        "ratios_peer_over_ours": ratios,
        "aim_edge_one_shot_us_per_frame": one_shot_s / n_frames * 1e6,
        "target_speedup_vs_knf": TARGET_SPEEDUP_VS_KNF,
        "speedup_vs_knf_median": speedup,
        "meets_target": speedup >= TARGET_SPEEDUP_VS_KNF,
    }


def _timed(fn: Any) -> float:
    t0 = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - t0) / 1e9


def format_table(report: dict[str, Any]) -> str:
    rows = [f"{'implementation':<19} {'mean':>7} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>8} "
            f"{'x-rt':>7} {'peer/ours mean':>15} {'p50':>6} {'p99':>6}   (us per 10 ms hop)"]
    for key, res in report["results"].items():
        ratio = report["ratios_peer_over_ours"].get(
            key, {"mean_us_per_hop": 1.0, "median_us_per_hop": 1.0, "p99_us_per_hop": 1.0})
        rows.append(
            f"{key:<19} {res['mean_us_per_hop']:>7.2f} {res['median_us_per_hop']:>7.2f} "
            f"{res['p95_us_per_hop']:>7.2f} {res['p99_us_per_hop']:>7.2f} "
            f"{res['max_us_per_hop']:>8.1f} {res['x_realtime']:>7.0f} "
            f"{ratio['mean_us_per_hop']:>15.2f} {ratio['median_us_per_hop']:>6.2f} "
            f"{ratio['p99_us_per_hop']:>6.2f}")
    agreement = report["agreement_max_abs_vs_aim_edge"]
    rows.append("agreement with aim_edge (max |log-mel diff|): " +
                ", ".join(f"{k} {v:.1e}" for k, v in agreement.items()))
    rows.append(f"aim_edge one-shot (native work only, one call): "
                f"{report['aim_edge_one_shot_us_per_frame']:.2f} us per frame")
    verdict = "meets" if report["meets_target"] else "MISSES"
    rows.append(f"aim_edge is {report['speedup_vs_knf_median']:.1f}x faster per hop (median) than "
                f"kaldi-native-fbank: {verdict} the {report['target_speedup_vs_knf']:.0f}x target")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_features",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke mode: ~2 s of audio, one round (for the test suite)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="seconds of 16 kHz audio per round (default 60, quick 2)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="passes over the audio per implementation (default 5, quick 1)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON output (default benchmarks/results/features[.quick].json)")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else (2.0 if args.quick else 60.0)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 5)
    if seconds <= 0 or rounds < 1:
        parser.error(f"need --seconds > 0 and --rounds >= 1 (got {seconds}, {rounds})")
    out = args.out or RESULTS / ("features.quick.json" if args.quick else "features.json")

    env = print_header("bench_features: streaming 80-bin fbank, 320-sample chunks from Python",
                       {"mode": "quick" if args.quick else "full",
                        "audio": f"{seconds:g} s at 16 kHz x {rounds} round(s)",
                        "kaldi_native_fbank": knf.__version__})
    report = run(seconds, rounds)
    report["environment"] = env
    print(format_table(report))
    write_report(report, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
