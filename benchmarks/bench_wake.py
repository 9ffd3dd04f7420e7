"""Wake phrases: does the runtime answer when addressed, and stay quiet when it is not?

The generated scenes address the assistant only with its wake phrases, and their other speech
rarely sounds like them. A real kitchen says "Hey, I'm home" and "Okay, Tim". This benchmark
renders, with held-out (test-split) TTS voices, sentences the scene templates never produced:

* **addressed**: a wake phrase ("hey aim", "okay aim", "hi aim", "excuse me aim", bare "aim")
  before a request; a hit is an ``answer`` event within 2 s after the utterance ends (the
  scenes' response window);
* **confusable**: speech that starts like a wake phrase but is not one ("Hey, I'm home",
  "Okay, Tim", "Hi Amy", "My aim is ..."); any answer from its start to the next utterance is
  a false answer.

Each voice gives one stream (utterances in a seeded order, 3 s of low noise between them),
run through the aim-edge runtime (onnxruntime, one thread, no instruction) once per system:

* ``v0.8_exact`` -- the policy before this benchmark (the peer): a final caption must start
  with one of "hey / okay / ok / hi / excuse me aim", spelled exactly by the student's draft;
* ``exact+name`` -- the same with the bare name "aim" added (the data generator's fifth wake
  phrase, which the runtime lacked);
* ``loose_draft`` -- the draft may misspell the phrase (``wake_tolerance``,
  ``wake_lead_chars``, ``wake_name_words``);
* ``loose+confirm`` -- and a draft's wake phrase counts only if speak-now reached
  ``wake_confirm_speak`` during the utterance;
* ``default`` -- the shipped policy: also answer as soon as speak-now reaches
  ``wake_speak_threshold`` while the draft carries a wake phrase, and check the speech for a
  wake phrase at a 0.48 s pause (``wake_endpoint_s``) instead of at the caption's 0.8 s end.
  The other systems decide at the caption's end, as the policy did before.

``--split dev`` uses the generator's dev-split voices instead: the policy's settings are
chosen there, so the test-split run is a held-out check.

    python -m benchmarks.bench_wake              # 6 voices -> results/wake.json
    python -m benchmarks.bench_wake --quick      # 1 voice, 4 + 4 sentences -> wake.quick.json
"""

from __future__ import annotations

import argparse
import json
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
SR = 16000
GAP_S = 3.0
WINDOW_S = 2.0  # the scenes' answer window after a question ends

OLD_WAKE = ("hey aim", "okay aim", "ok aim", "hi aim", "excuse me aim")
_LATE = {"wake_speak_threshold": 1.0, "wake_endpoint_s": 0.8}  # decided at the caption's end
_EXACT = {**_LATE, "wake_tolerance": 0.0, "wake_lead_chars": 0, "wake_name_words": 0,
          "wake_confirm_speak": 0.0}
SYSTEMS: dict[str, dict[str, Any]] = {
    "v0.8_exact": {**_EXACT, "wake_phrases": list(OLD_WAKE)},
    "exact+name": _EXACT,
    "loose_draft": {**_LATE, "wake_confirm_speak": 0.0},
    "loose+confirm": _LATE,
    "default": {},
}
PEER = "v0.8_exact"

ADDRESSED = (
    "Hey aim, what time is it?",
    "Okay aim, is it going to rain later?",
    "Hi aim, how long until dinner?",
    "Excuse me aim, turn on the kitchen lights.",
    "Aim, set a timer for ten minutes.",
    "Hey aim, what was that noise?",
    "Okay aim, read my last message.",
    "Hi aim, how cold is it outside?",
    "Excuse me aim, what day is it today?",
    "Aim, is the back door locked?",
)
CONFUSABLE = (
    "Hey, I'm home.",
    "Okay, I'm leaving now.",
    "Hi, I'm Sam, nice to meet you.",
    "Hey Jim, are you coming?",
    "Okay Tim, see you later.",
    "Hi Amy, how was school?",
    "I'm going to make some tea.",
    "My aim is to finish by six.",
    "Hey, I'm hungry, what's for dinner?",
    "Okay, I'm ready when you are.",
    "Hey Kim, is that you?",
    "Aim for the middle of the board.",
)


def pick_voices(n: int, seed: int = 0, split: str = "test") -> list[Any]:
    """``n`` voices of ``split``: a flite voice first (test: slt, a recorded woman), then
    espeak-ng variants, one per speaker, in a seeded order."""
    from export.data.speech import list_voices

    test = [v for v in list_voices(("espeak-ng", "flite")) if v.split == split]
    first = [v for v in test if v.engine == "flite"][:1]
    by_speaker: dict[str, Any] = {}
    rng = np.random.default_rng(seed)
    for v in rng.permutation(np.array(test, dtype=object)):
        if v.engine != "flite":
            by_speaker.setdefault(v.speaker, v)
    return (first + list(by_speaker.values()))[:n]


def build_stream(voice: Any, texts: Sequence[tuple[str, str]], seed: int
                 ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One stream: the utterances in a seeded order, each with the data generator's seeded
    speed / pitch draw and at -26 dBFS RMS, ``GAP_S`` of low noise around each. Returns
    samples and ``[{kind, text, start, end}]``."""
    from export.data.speech import engine_params, render

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(texts))
    parts: list[np.ndarray] = []
    marks: list[dict[str, Any]] = []
    pos = 0

    def noise(n: int) -> np.ndarray:
        return (rng.standard_normal(n) * 10 ** (-60 / 20)).astype(np.float32)

    parts.append(noise(SR))
    pos += parts[-1].size
    for i in order:
        kind, text = texts[i]
        x = render(voice, text, engine_params(rng, voice))  # the generator's prosody draw
        x = x * (10 ** (-26 / 20) / max(float(np.sqrt(np.mean(x ** 2))), 1e-6))
        x = x + noise(x.size)
        marks.append({"kind": kind, "text": text, "start": pos / SR, "end": (pos + x.size) / SR})
        parts += [x.astype(np.float32), noise(int(GAP_S * SR))]
        pos += x.size + parts[-1].size
    return np.concatenate(parts), marks


def answers_of(engine: Any, samples: np.ndarray) -> list[float]:
    """Times (s) of the answer events the runtime emits on ``samples``, streamed chunk by
    chunk as an application would (:meth:`aim_edge.Engine.process_array`)."""
    return [float(a["t"]) for a in engine.process_array(samples, SR).answers]


def score(marks: Sequence[dict[str, Any]], times: Sequence[float], duration: float
          ) -> dict[str, Any]:
    """Per utterance: addressed -> hit / early / late / miss; confusable -> false or not."""
    out = {"addressed": 0, "hits": 0, "early": 0, "late": 0, "confusable": 0,
           "false_answers": 0, "delays": [], "false_texts": []}
    for k, m in enumerate(marks):
        nxt = marks[k + 1]["start"] if k + 1 < len(marks) else duration
        during = [t for t in times if m["start"] <= t < nxt]
        if m["kind"] == "addressed":
            out["addressed"] += 1
            inside = [t for t in during if m["end"] <= t <= m["end"] + WINDOW_S]
            if inside:
                out["hits"] += 1
                out["delays"].append(inside[0] - m["end"])
            elif any(t < m["end"] for t in during):
                out["early"] += 1
            elif during:
                out["late"] += 1
        else:
            out["confusable"] += 1
            if during:
                out["false_answers"] += 1
                out["false_texts"].append(m["text"])
    return out


def run(n_voices: int, addressed: Sequence[str], confusable: Sequence[str], model: str | None,
        seed: int = 0, split: str = "test") -> dict[str, Any]:
    import aim_edge

    texts = [("addressed", t) for t in addressed] + [("confusable", t) for t in confusable]
    voices = pick_voices(n_voices, seed, split)
    streams = []
    t0 = time.perf_counter()
    for k, v in enumerate(voices):
        samples, marks = build_stream(v, texts, seed + k)
        streams.append((v, samples, marks))
    render_s = time.perf_counter() - t0
    systems: dict[str, Any] = {}
    for name, policy in SYSTEMS.items():
        engine = aim_edge.Engine.from_bundle(model, policy=policy)
        total: dict[str, Any] = {}
        per_voice = {}
        for v, samples, marks in streams:
            s = score(marks, answers_of(engine, samples), samples.size / SR)
            per_voice[v.voice_id] = {k: s[k] for k in ("hits", "addressed", "false_answers")}
            for key, val in s.items():
                total[key] = total.get(key, 0 if not isinstance(val, list) else []) + val
        d = np.array(total["delays"]) if total["delays"] else None
        systems[name] = {
            "policy": policy,
            "addressed": total["addressed"], "hits": total["hits"], "early": total["early"],
            "late": total["late"],
            "recall": total["hits"] / max(total["addressed"], 1),
            "confusable": total["confusable"], "false_answers": total["false_answers"],
            "false_answer_rate": total["false_answers"] / max(total["confusable"], 1),
            "false_answer_texts": sorted(set(total["false_texts"])),
            "delay_after_end_s": {"p50": None if d is None else round(float(np.median(d)), 3),
                                  "p95": None if d is None else
                                  round(float(np.percentile(d, 95)), 3)},
            "per_voice": per_voice,
        }
        print(f"  {name:<18} recall {systems[name]['recall']:.3f}  false answers "
              f"{total['false_answers']}/{total['confusable']}", flush=True)
    peer = systems[PEER]
    for r in systems.values():
        r["recall_vs_peer"] = (r["recall"] / peer["recall"]) if peer["recall"] else None
    return {
        "benchmark": "bench_wake",
        "peer": PEER,
        "split": split,
        "voices": [v.voice_id for v in voices],
        "utterances_per_voice": {"addressed": len(addressed), "confusable": len(confusable)},
        "window_s": WINDOW_S, "gap_s": GAP_S, "render_s": round(render_s, 1),
        "systems": systems,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_wake",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="1 voice, 4 addressed + 4 confusable sentences (a smoke run)")
    p.add_argument("--voices", type=int, default=6, help="held-out TTS voices (default 6)")
    p.add_argument("--split", choices=("test", "dev"), default="test",
                   help="the generator's voice split (default test: held out; dev: for tuning)")
    p.add_argument("--model", help="bundle (default: the shipped one)")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    from export.data.speech import MissingToolError, check_engines

    try:
        check_engines(("espeak-ng", "flite"))
    except MissingToolError as exc:
        print(f"bench_wake: {exc}", file=sys.stderr)
        return 2
    if args.voices < 1:
        p.error(f"--voices {args.voices}: give at least 1")
    n, addressed, confusable = ((1, ADDRESSED[:4], CONFUSABLE[:4]) if args.quick
                                else (args.voices, ADDRESSED, CONFUSABLE))
    env = print_header("wake phrases: answering when addressed, not otherwise")
    result = run(n, addressed, confusable, args.model, split=args.split)
    result["environment"] = env
    result["command"] = "python -m benchmarks.bench_wake " + shlex.join(
        sys.argv[1:] if argv is None else list(argv))
    name = "wake" + ("" if args.split == "test" else f".{args.split}")
    out = args.out or RESULTS / (f"{name}.quick.json" if args.quick else f"{name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{'system':<18} {'recall':>7} {'x peer':>7} {'early':>6} {'late':>5} "
          f"{'false answers':>14} {'delay p50':>10}")
    for name, r in result["systems"].items():
        d = r["delay_after_end_s"]["p50"]
        ratio = r["recall_vs_peer"]
        print(f"{name:<18} {r['recall']:7.3f} {'-' if ratio is None else f'{ratio:.2f}':>7} "
              f"{r['early']:6d} {r['late']:5d} "
              f"{r['false_answers']:>6d} of {r['confusable']:<4d} "
              f"{'-' if d is None else f'{d:.2f} s':>10}")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
