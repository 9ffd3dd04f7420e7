"""End-to-end latency of the real loop against a naive pure-Python pipeline, same run, same model.

    python -m benchmarks.bench_e2e [--seconds S] [--rounds R] [--load N ...] [--quick]
                                   [--loaded-seconds S] [--input WAV] [--model BUNDLE]
                                   [--out FILE]

* ``aim_edge``: the runtime's own loop (:class:`aim_edge.loop.Loop`: native ring, native
  streaming fbank, four threads), measured by the profiler (:func:`aim_edge.profile.measure`).
* ``naive``: what one writes first in pure Python: an audio thread pushes 20 ms blocks into a
  ``collections.deque`` ring (bench_ring's ``DequeBlockRing`` under a lock, dropping the oldest
  audio when full), one worker thread polls it every 5 ms, computes each 160 ms chunk's 80-bin
  log-mel with librosa (25 ms Hann window, 10 ms hop, 512-point FFT, HTK mel from 20 Hz),
  steps the same ONNX artifact with onnxruntime (one thread, state fed back) and applies the
  bundle's thresholds. Same stamps (``perf_counter_ns``): the chunk's last sample entering the
  ring, features ready, model done, decision done, emitted.

Both play the same input in real time (1x, like a microphone), alternating in ``--rounds`` so
a noisy neighbour hits both alike; ``--load N`` runs N CPU-hog processes beside both (one
scenario per value). Reported per pipeline: per-stage and end-to-end p50/p95/p99/max, CPU
seconds per thread and per audio second, dropped samples; and naive / aim_edge ratios. The
naive features are librosa's, not Kaldi's, so its decisions differ a little from the model's
real ones: this compares latency and cost, not accuracy.

Results: ``benchmarks/results/e2e.json`` (``--quick``: 2 s, one round -> ``e2e.quick.json``).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._env import print_header, write_report

RESULTS = Path(__file__).resolve().parent / "results"
#: ring_to_model: the chunk's last sample entering the ring -> the model step starts (waiting,
#: features and, for aim_edge, the decide-queue hand-over); then model, decision, respond.
STAGES = ("ring_to_model", "model", "decision", "respond", "end_to_end")
TARGETS = {"end_to_end_p99_ms": 200.0, "end_to_end_p99_quiet_ms": 50.0,
           "model_p50_ms": 5.0, "dropped_samples": 0}


class NaivePipeline:
    """The pure-Python peer (see the module docstring). ``run()`` returns its figures."""

    POLL_S = 0.005

    def __init__(self, bundle: Any, path: str, seconds: float) -> None:
        import librosa  # the peer's feature library (pip install 'aim-edge[bench]')
        import onnxruntime as ort

        from aim_edge.audio import AudioConverter, read_wav
        from benchmarks.bench_ring import DequeBlockRing

        self.bundle = bundle
        f = bundle.features
        self.sr = f.sample_rate
        self.hop, self.win = f.frame_shift, f.frame_length
        self.t = bundle.chunk_frames
        rate, x = read_wav(path)
        audio = AudioConverter(self.sr).convert(rate, x)
        n = int(round(seconds * self.sr))
        reps = int(np.ceil(n / max(1, audio.size)))
        self.audio = np.tile(audio, reps)[:n].astype(np.float32)
        self.ring = DequeBlockRing(1 << 16)
        self.lock = threading.Lock()
        self.librosa = librosa
        self.mel = librosa.filters.mel(sr=self.sr, n_fft=512, n_mels=f.n_mels,
                                       fmin=f.low_freq, fmax=self.sr / 2, htk=True, norm=None)
        t0 = time.perf_counter_ns()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        art = bundle.artifact(format="onnx")
        self.artifact = art.file
        self.session = ort.InferenceSession(str(art.path), opts,
                                            providers=["CPUExecutionProvider"])
        self.load_ms = (time.perf_counter_ns() - t0) / 1e6
        self.instruction = np.zeros((1, bundle.instruction_dim), np.float32)
        # warm up like the runtime does (one model step at load) and let librosa finish its
        # lazy imports, so both pipelines are measured in steady state
        need = self.t * self.hop + self.win - self.hop
        init = {s.name: np.full(s.shape, s.init, dtype=s.dtype) for s in bundle.state}
        self.session.run(None, {"fbank": self.features(np.zeros(need, np.float32))[None],
                                "instruction": self.instruction, **init})
        self.state = init
        self.events = [e.name for e in bundle.events]
        self.thresholds = np.array([bundle.event_thresholds.get(e, 0.5) for e in self.events])
        self.pushed = 0
        self.dropped = 0
        self.push_log: list[tuple[int, int]] = []
        self.records: list[tuple[int, ...]] = []
        self.emitted: list[dict[str, Any]] = []
        self.thread_cpu: dict[str, float] = {}
        self.done = threading.Event()
        self.error: BaseException | None = None

    def features(self, seg: np.ndarray) -> np.ndarray:
        """(chunk_frames, n_mels) log-mel of ``seg`` (chunk_frames hops + window overhang)."""
        # librosa centres the 400-sample window in each 512-sample FFT frame: pad by the
        # difference so frame i covers seg[i * hop : i * hop + win], as Kaldi frames it
        pad = (512 - self.win) // 2
        seg = np.pad(seg, (pad, 512 - self.win - pad))
        spec = np.abs(self.librosa.stft(seg, n_fft=512, hop_length=self.hop,
                                        win_length=self.win, window="hann",
                                        center=False)) ** 2
        mel = self.mel @ spec
        return np.log(np.maximum(mel, self.bundle.features.log_floor)).T[: self.t]

    def _producer(self) -> None:
        block = self.sr // 50  # 20 ms, like an audio callback
        t0 = time.perf_counter()
        for i in range(0, self.audio.size, block):
            x = self.audio[i:i + block]
            delay = t0 + (i + x.size) / self.sr - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            with self.lock:
                over = len(self.ring) + x.size - self.ring._cap
                self.ring.push(x)
                if over > 0:
                    self.dropped += over
                self.pushed += x.size
                self.push_log.append((self.pushed, time.perf_counter_ns()))
        self.done.set()

    def _worker(self) -> None:
        need = self.t * self.hop + (self.win - self.hop)  # one chunk's samples incl. overhang
        buf = np.zeros(0, np.float32)
        consumed = 0  # absolute index of buf[0]
        log_i = 0
        while True:
            with self.lock:
                new = self.ring.pop(len(self.ring))
            if new.size:
                buf = np.concatenate([buf, new])
            elif self.done.is_set() and buf.size < need:
                return
            else:
                time.sleep(self.POLL_S)
                continue
            while buf.size >= need:
                last = consumed + need  # samples up to and including the chunk's last one
                while self.push_log[log_i][0] < last:
                    log_i += 1
                t_ring = self.push_log[log_i][1]
                fb = self.features(buf[:need])
                t_feat = time.perf_counter_ns()
                feeds = {"fbank": fb[None].astype(np.float32), "instruction": self.instruction,
                         **self.state}
                outs = self.session.run(None, feeds)
                out = dict(zip([o.name for o in self.session.get_outputs()], outs,
                               strict=True))
                self.state = {s.name: out[f"new_{s.name}"] for s in self.bundle.state}
                t_model = time.perf_counter_ns()
                speak = 1.0 / (1.0 + np.exp(-float(np.asarray(out["speak_logit"]).max())))
                ev = 1.0 / (1.0 + np.exp(-np.asarray(out["event_logits"]).reshape(
                    -1, len(self.events)).max(axis=0)))
                hits = [self.events[i] for i in np.flatnonzero(ev >= self.thresholds)]
                t_dec = time.perf_counter_ns()
                if hits or speak >= self.bundle.speak_threshold:
                    self.emitted.append({"t": last / self.sr, "events": hits,
                                         "speak": speak})
                t_emit = time.perf_counter_ns()
                self.records.append((t_ring, t_feat, t_model, t_dec, t_emit))
                step = self.t * self.hop
                buf = buf[step:]
                consumed += step

    def _guard(self, name: str, fn: Any) -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised by run()
            self.error = exc
            self.done.set()
        finally:
            self.thread_cpu[name] = time.thread_time()

    def run(self) -> dict[str, Any]:
        import resource

        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        threads = [threading.Thread(target=self._guard, args=(n, f), name=f"naive-{n}")
                   for n, f in (("source", self._producer), ("worker", self._worker))]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        if self.error is not None:
            raise self.error
        r = np.array(self.records, np.int64).reshape(-1, 5)
        stage = {"ring_to_model": (r[:, 1] - r[:, 0]) / 1e6, "model": (r[:, 2] - r[:, 1]) / 1e6,
                 "decision": (r[:, 3] - r[:, 2]) / 1e6, "respond": (r[:, 4] - r[:, 3]) / 1e6,
                 "end_to_end": (r[:, 4] - r[:, 0]) / 1e6}
        audio_s = self.audio.size / self.sr
        cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        return {"stage_values": stage, "audio_s": audio_s, "wall_s": wall, "cpu_s": cpu,
                "thread_cpu_s": dict(self.thread_cpu), "dropped_samples": self.dropped,
                "chunks": len(self.records), "load_ms": self.load_ms,
                "decisions": len(self.emitted)}


def _pct(v: np.ndarray) -> dict[str, float]:
    from aim_edge.timing import percentiles

    return {k: round(val, 3) for k, val in percentiles(v).items()}


def _summarise(name: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the rounds of one pipeline: ``parts`` hold ``stage_values`` and totals."""
    stages = {s: np.concatenate([p["stage_values"][s] for p in parts]) for s in STAGES}
    audio = sum(p["audio_s"] for p in parts)
    cpu = sum(p["cpu_s"] for p in parts)
    threads: dict[str, float] = {}
    for p in parts:
        for k, v in p["thread_cpu_s"].items():
            threads[k] = round(threads.get(k, 0.0) + v, 3)
    e2e = stages["end_to_end"]
    k = max(1, int(np.ceil(e2e.size * 0.01)))
    worst = np.argsort(e2e)[-k:]
    tail = {s: round(float(stages[s][worst].mean()), 3) for s in STAGES[:-1]}
    return {"pipeline": name, "audio_s": round(audio, 3),
            "tail_slowest_1pct": {"chunks": k, "from_ms": round(float(e2e[worst].min()), 3),
                                  "mean_ms": tail, "dominant": max(tail, key=tail.get)},
            "wall_s": round(sum(p["wall_s"] for p in parts), 3),
            "chunks": int(sum(p["chunks"] for p in parts)),
            "stages_ms": {s: _pct(v) for s, v in stages.items()},
            "cpu_s": round(cpu, 3), "cpu_s_per_audio_s": round(cpu / audio, 4),
            "thread_cpu_s": threads,
            "dropped_samples": int(sum(p["dropped_samples"] for p in parts)),
            "first_round_load_ms": round(parts[0]["load_ms"], 1)}


def _ours(path: str, model: str | None, seconds: float) -> dict[str, Any]:
    from aim_edge.profile import RunSpec, measure

    res = measure(RunSpec(input=path, model=model, seconds=seconds, realtime=True))
    pc = res["per_chunk"]
    stage = {"ring_to_model": (np.asarray(pc["ring_wait"]) + np.asarray(pc["features"])
                               + np.asarray(pc["queue"])),
             "model": np.asarray(pc["model"]), "decision": np.asarray(pc["decision"]),
             "respond": np.asarray(pc["respond"]), "end_to_end": np.asarray(pc["end_to_end"])}
    threads = dict(res["cpu_s"]["loop_threads"])
    return {"stage_values": stage, "audio_s": res["audio_s"], "wall_s": res["wall_s"],
            "cpu_s": res["cpu_s"]["process_run"], "thread_cpu_s": threads,
            "dropped_samples": res["dropped_samples"], "chunks": res["chunks_measured"],
            "load_ms": res["cold_start"]["load_ms"], "artifact": res["artifact"]["file"]}


def run_scenario(path: str, model: str | None, seconds: float, rounds: int, load: int,
                 progress: bool = True) -> dict[str, Any]:
    from aim_edge.bundle import load_bundle
    from aim_edge.bundles import default_bundle_path
    from aim_edge.profile.measure import CpuLoad

    bundle = load_bundle(model or default_bundle_path())
    per_round = seconds / rounds
    ours, naive = [], []
    with CpuLoad(load) as hogs:
        for i in range(rounds):
            order = (("aim_edge", ours), ("naive", naive))
            for name, bucket in (order if i % 2 == 0 else order[::-1]):
                if progress:
                    print(f"  load {load}, round {i + 1}/{rounds}: {name}, {per_round:g} s"
                          " real time", flush=True)
                if name == "aim_edge":
                    bucket.append(_ours(path, model, per_round))
                else:
                    bucket.append(NaivePipeline(bundle, path, per_round).run())
    a, b = _summarise("aim_edge", ours), _summarise("naive", naive)
    ratios = {}
    for s in STAGES:
        for q in ("p50", "p99"):
            x, y = a["stages_ms"][s][q], b["stages_ms"][s][q]
            ratios[f"{s}_{q}"] = round(y / x, 2) if x and y == y and x == x else None
    ratios["cpu_per_audio_s"] = round(b["cpu_s_per_audio_s"] / a["cpu_s_per_audio_s"], 2)
    e2e = a["stages_ms"]["end_to_end"]
    checks = {"end_to_end_p99_le_200ms": e2e["p99"] <= TARGETS["end_to_end_p99_ms"],
              "zero_drops": a["dropped_samples"] == 0,
              "model_p50_le_5ms": a["stages_ms"]["model"]["p50"] <= TARGETS["model_p50_ms"]}
    if load == 0:
        checks["end_to_end_p99_le_50ms_quiet"] = e2e["p99"] <= TARGETS["end_to_end_p99_quiet_ms"]
    return {"load_processes": load, "load_cpu_s": hogs.cpu_s, "seconds": seconds,
            "rounds": rounds, "artifact": ours[0]["artifact"], "aim_edge": a, "naive": b,
            "naive_over_aim_edge": ratios, "targets_met": checks}


def format_scenario(sc: dict[str, Any]) -> str:
    lines = [f"\nload {sc['load_processes']} CPU-hog process(es), {sc['seconds']:g} s of audio"
             f" per pipeline in {sc['rounds']} round(s), real time, {sc['artifact']}"]
    lines.append(f"  {'pipeline':<9} {'stage':<13} {'p50':>8} {'p95':>8} {'p99':>8} "
                 f"{'max':>8}   ms")
    for key in ("aim_edge", "naive"):
        p = sc[key]
        for s in STAGES:
            st = p["stages_ms"][s]
            lines.append(f"  {key:<9} {s:<13} {st['p50']:8.3f} {st['p95']:8.3f} "
                         f"{st['p99']:8.3f} {st['max']:8.3f}")
        lines.append(f"  {key:<9} CPU {p['cpu_s_per_audio_s']:.4f} s per audio s; threads "
                     + ", ".join(f"{k} {v:.2f}" for k, v in p["thread_cpu_s"].items())
                     + f"; dropped {p['dropped_samples']} samples; {p['chunks']} chunks")
        t = p["tail_slowest_1pct"]
        lines.append(f"  {key:<9} tail: slowest {t['chunks']} chunks (>= {t['from_ms']:.1f} ms)"
                     " mean ms " + ", ".join(f"{k} {v:.1f}" for k, v in t["mean_ms"].items())
                     + f"; dominated by {t['dominant']}")
    r = sc["naive_over_aim_edge"]
    lines.append(f"  naive / aim_edge: end to end p50 {r['end_to_end_p50']}x, p99"
                 f" {r['end_to_end_p99']}x; ring to model p50 {r['ring_to_model_p50']}x; CPU"
                 f" {r['cpu_per_audio_s']}x")
    lines.append("  targets: " + ", ".join(f"{k} {'yes' if v else 'NO'}"
                                          for k, v in sc["targets_met"].items()))
    if "loadavg_before" in sc:
        lines.append(f"  machine load average before {sc['loadavg_before']}, after"
                     f" {sc['loadavg_after']}; nice {sc['nice']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_e2e",
                                description=__doc__.split("\n")[0])
    p.add_argument("--input", default=None, help="WAV file (default: the shipped demo scene)")
    p.add_argument("--model", default=None, help="bundle (default: the shipped one)")
    p.add_argument("--seconds", type=float, default=120.0,
                   help="audio per pipeline and scenario, real time (default 120)")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds (default 2)")
    p.add_argument("--load", type=int, nargs="+", default=[0],
                   help="CPU-hog processes beside both pipelines, one scenario per value")
    p.add_argument("--loaded-seconds", type=float, default=None, metavar="S",
                   help="audio per pipeline in the scenarios with --load > 0 (default:"
                        " --seconds)")
    p.add_argument("--quick", action="store_true", help="2 s, one round: a smoke run")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1 or min(args.load) < 0:
        p.error(f"--seconds {args.seconds} must be > 0, --rounds {args.rounds} >= 1 and"
                f" --load {args.load} >= 0")
    if args.quick:
        args.seconds, args.rounds = 2.0, 1
    path = args.input
    if path is None:
        from importlib import resources

        path = str(resources.files("aim_edge").joinpath("data", "demo_scene.wav"))
    out = args.out or RESULTS / ("e2e.quick.json" if args.quick else "e2e.json")
    env = print_header("bench_e2e: the aim-edge loop vs a naive pure-Python pipeline, real time",
                       {"mode": "quick" if args.quick else "full", "input": path,
                        "seconds per pipeline": args.seconds, "rounds": args.rounds,
                        "load": args.load})
    scenarios = []
    for load in args.load:
        load_before = os.getloadavg()
        seconds = args.loaded_seconds if load and args.loaded_seconds else args.seconds
        sc = run_scenario(path, args.model, seconds, args.rounds, load)
        # the machine's own load (other work beside the benchmark), 1/5/15-minute averages
        sc["loadavg_before"] = [round(v, 2) for v in load_before]
        sc["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
        sc["nice"] = os.nice(0)
        print(format_scenario(sc), flush=True)
        scenarios.append(sc)
    report = {"environment": env, "targets": TARGETS, "input": path, "scenarios": scenarios,
              "command": "python -m benchmarks.bench_e2e " + " ".join(
                  argv if argv is not None else sys.argv[1:])}
    write_report(report, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
