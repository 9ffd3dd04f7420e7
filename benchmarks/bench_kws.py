"""Keyword spotting on real voices: "tell me when someone says seven" on recorded digits.

Streams are built from the Free Spoken Digit Dataset (``../shared/data/fsdd``, CC BY-SA 4.0)
by :mod:`export.real_speech`: per **held-out** speaker (george, lucas: the student's training
mixes in only the other four), digits in random order with 1.0-1.8 s of low noise between
them. Every digit word is in turn the keyword, so each run gives 10 keywords x all their
occurrences, and every other digit is a chance for a false accept.

Systems, all through the aim-edge runtime (onnxruntime, one thread), in the same run:

* ``greedy_caption`` -- what the policy matched before: the keyword as a whole word in the
  student's greedy CTC caption of the utterance;
* ``ctc_kws@T`` -- :class:`aim_edge.kws.CtcKeywordSpotter` on the same CTC log-probs, at
  several thresholds T (the trade-off curve);
* ``whisper_final`` -- the keyword in the Whisper second pass's final caption of the utterance
  (when ``out/asr-whisper-tiny.en`` or ``--asr`` exists): better words, but only once the
  utterance has ended.

A fire counts as a hit when it lands within [onset - 0.2 s, offset + 1.2 s] of an unclaimed
occurrence of its keyword; any other fire is a false accept. Reported per system: recall,
false accepts per keyword-hour, and delay from the word's end to the fire (median, p95).

    python -m benchmarks.bench_kws                     # 2 speakers x 100 digits -> results/kws.json
    python -m benchmarks.bench_kws --quick             # 1 speaker x 12 digits -> kws.quick.json
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._env import print_header

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_ASR_DIR = ROOT / "out" / "asr-whisper-tiny.en"
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
HIT_BEFORE_S, HIT_AFTER_S = 0.2, 1.2


def build_streams(per_speaker: int, speakers: int, seed: int = 0
                  ) -> list[tuple[str, np.ndarray, list[tuple[float, float, str]]]]:
    """(name, 16 kHz float32 samples, [(onset_s, offset_s, word)]) per held-out speaker."""
    from export.real_speech import TEST_SPEAKERS, digit_stream, fsdd_by_speaker

    names = TEST_SPEAKERS[:speakers]
    pools = fsdd_by_speaker(names)
    rng = np.random.default_rng(seed)
    out = []
    for name in names:
        audio, segs = digit_stream(pools[name], rng, per_speaker)
        out.append((name, audio, [w for s in segs for w in s["words"]]))
    return out


def score(fires: dict[str, list[float]], marks: list[tuple[float, float, str]]
          ) -> dict[str, Any]:
    """fires: keyword -> fire times (s). Counts hits, misses, false accepts and delays."""
    hits = fas = total = 0
    delays: list[float] = []
    for word in DIGIT_WORDS:
        occ = [(a, b) for a, b, w in marks if w == word]
        total += len(occ)
        claimed = [False] * len(occ)
        for t in sorted(fires.get(word, [])):
            for j, (a, b) in enumerate(occ):
                if not claimed[j] and a - HIT_BEFORE_S <= t <= b + HIT_AFTER_S:
                    claimed[j] = True
                    hits += 1
                    delays.append(t - b)
                    break
            else:
                fas += 1
    return {"hits": hits, "occurrences": total, "false_accepts": fas, "delays": delays}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def _caption_fires(captions: list[dict[str, Any]]) -> dict[str, list[float]]:
    fires: dict[str, list[float]] = {}
    for c in captions:
        words = _words(c.get("text", ""))
        for w in DIGIT_WORDS:
            if w in words:
                fires.setdefault(w, []).append(float(c["end_s"]))
    return fires


def run(per_speaker: int, speakers: int, asr_dir: Path | None, model: str | None
        ) -> dict[str, Any]:
    from aim_edge import Engine
    from aim_edge.kws import CtcKeywordSpotter

    streams = build_streams(per_speaker, speakers)
    engine = Engine.from_bundle(model, threads=1)
    b = engine.bundle
    frame_s = b.chunk_frames * 0.01 / (b.chunk_frames // b.subsampling)
    systems: dict[str, list[dict[str, Any]]] = {}
    audio_s = 0.0
    kws_cpu = 0.0
    for name, audio, marks in streams:
        audio_s += audio.size / 16000
        res = engine.process_array(audio, 16000, record_outputs=True)
        systems.setdefault("greedy_caption", []).append(score(_caption_fires(res.captions),
                                                              marks))
        lp = np.concatenate([o["ctc_logprobs"] for o in res.outputs])
        for thr in THRESHOLDS:
            spotter = CtcKeywordSpotter(b.vocab, DIGIT_WORDS, threshold=thr)
            t0 = time.process_time()
            fires: dict[str, list[float]] = {}
            for k in range(0, lp.shape[0], 4):  # one chunk of encoder frames at a time
                for h in spotter.accept(lp[k:k + 4]):
                    fires.setdefault(h.keyword, []).append((h.end_frame + 1) * frame_s)
            kws_cpu += time.process_time() - t0
            systems.setdefault(f"ctc_kws@{thr}", []).append(score(fires, marks))
        print(f"  {name}: {len(marks)} digits, {audio.size / 16000:.0f} s", flush=True)
    engine.close()
    if asr_dir is not None:
        from aim_edge.asr.whisper import WhisperSecondPass

        sp = WhisperSecondPass.from_dir(asr_dir, threads=1)
        with Engine.from_bundle(model, threads=1, second_pass=sp) as eng2:
            for _name, audio, marks in streams:
                res = eng2.process_array(audio, 16000)
                systems.setdefault("whisper_final", []).append(
                    score(_caption_fires(res.captions), marks))
    hours = audio_s / 3600
    table = {}
    for sysname, parts in systems.items():
        hits = sum(p["hits"] for p in parts)
        occ = sum(p["occurrences"] for p in parts)
        fas = sum(p["false_accepts"] for p in parts)
        delays = [d for p in parts for d in p["delays"]]
        table[sysname] = {
            "recall": hits / occ if occ else 0.0,
            "hits": hits, "occurrences": occ, "false_accepts": fas,
            "false_accepts_per_keyword_hour": fas / (hours * len(DIGIT_WORDS)),
            "delay_after_word_end_s": {
                "p50": float(np.percentile(delays, 50)) if delays else None,
                "p95": float(np.percentile(delays, 95)) if delays else None},
        }
    return {"audio_hours": hours, "streams": len(streams),
            "digits": sum(len(m) for *_, m in streams), "keywords": list(DIGIT_WORDS),
            "kws_cpu_s_per_audio_hour_per_threshold": kws_cpu / len(THRESHOLDS) / hours,
            "systems": table}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_kws",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 speaker x 12 digits (a smoke run)")
    p.add_argument("--per-speaker", type=int, default=100)
    p.add_argument("--speakers", type=int, default=2, choices=(1, 2))
    p.add_argument("--model", help="bundle (default: the shipped one)")
    p.add_argument("--asr", type=Path, default=DEFAULT_ASR_DIR,
                   help="Whisper second-pass folder (make asr-export); skipped when absent")
    p.add_argument("--no-asr", action="store_true", help="skip the Whisper system")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    from export.whisper.speech import corpus_missing

    missing = corpus_missing("fsdd")
    if missing:
        print(f"bench_kws: {missing}", file=sys.stderr)
        return 2
    per, spk = (12, 1) if args.quick else (args.per_speaker, args.speakers)
    asr = None if args.no_asr or not (args.asr / "whisper.json").is_file() else args.asr
    print_header("keyword spotting on real recorded digits (FSDD)")
    if asr is None:
        print(f"whisper_final skipped: no second pass at {args.asr} (make asr-export)")
    result = run(per, spk, asr, args.model)
    result["command"] = "python -m benchmarks.bench_kws " + shlex.join(argv or sys.argv[1:])
    result["whisper_skipped_reason"] = None if asr else f"no second pass at {args.asr}"
    out = args.out or RESULTS / ("kws.quick.json" if args.quick else "kws.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{'system':<18} {'recall':>7} {'FA/kw-h':>8} {'delay p50':>10}")
    for name, r in result["systems"].items():
        d = r["delay_after_word_end_s"]["p50"]
        print(f"{name:<18} {r['recall']:7.3f} {r['false_accepts_per_keyword_hour']:8.1f} "
              f"{'-' if d is None else f'{d:.2f} s':>10}")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
