"""The ``aim-edge`` command line.

Subcommands grow with the project; each has ``--help`` with an example. Exit codes: 0 success,
1 runtime failure (one line naming the problem and the fix), 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import platform
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from ._argtypes import nonneg_number, positive_int
from .errors import AimEdgeError, ConfigError

EPILOG = """\
examples:
  aim-edge demo                               the bundled demo scene through the default model
  aim-edge run kitchen.wav                    captions and alerts for a WAV file
  aim-edge run kitchen.wav --realtime --instruction "tell me if the kettle whistles"
  aim-edge run kitchen.wav --jsonl events.jsonl --quiet
  aim-edge info --model bundles/small         what a bundle contains and what can run it
  aim-edge devices                            microphones and other input devices
  aim-edge listen --device USB                live captions and alerts from a microphone
  aim-edge profile scene.wav --report prof    latency per stage against the 200 ms budget

Report problems with the output of `aim-edge info`.
"""

RUN_EPILOG = """\
what you see:
  captions     partial captions update in place on a terminal; final ones get a line
  alerts       sound events the model detected and the policy allowed: safety classes
               (smoke/CO alarm, siren, glass break) always, others when the instruction asks
  answers      when the model decides to reply, or a caption starts with "hey aim, ..."
  summary      chunks, events, latency p50/p95/p99/max, dropped samples, real-time factor

input: a WAV file, 16-bit PCM or 32/64-bit float, any sample rate (resampled to 16 kHz with
python-soxr) and any channel count (mixed down to mono).

examples:
  aim-edge run scene.wav
  aim-edge run scene.wav --model bundles/small --precision fp32 --threads 1
  aim-edge run scene.wav --realtime --instruction "I'm testing the smoke alarm, ignore it"
  aim-edge run scene.wav --jsonl - --quiet | jq 'select(.type == "alert")'
  aim-edge run scene.wav --backend onnxruntime --providers tensorrt,cuda   (Jetson / GPU)

JSON lines: one event per line, {"type", "t", "latency_ms", ...}; see aim_edge.respond.
"""


def _cmd_demo(args: argparse.Namespace) -> int:
    from . import bundles

    bundle = bundles.default_bundle_path()
    if bundle is None:
        print(
            "aim-edge demo: no model bundle yet.\n"
            "  The default bundle is produced by the export stage (`python -m export.bundle`)\n"
            "  and shipped inside the package once trained; until then there is nothing to run.\n"
            "  The native front end is ready: `aim-edge info` shows it."
        )
        return 0
    scene = _demo_scene()
    if scene is None:
        print(f"aim-edge demo: default bundle at {bundle}, but no demo scene is shipped yet.\n"
              "  Run your own audio through it: `aim-edge run FILE.wav`.")
        return 0
    labels = _demo_labels(scene)
    instruction = None
    if labels:
        texts = [iv.get("text") for iv in labels.get("instructions", []) if iv.get("text")]
        instruction = texts[0] if texts else None
        print(f"demo scene: {scene.name}, {labels.get('duration', 0):.0f} s, made by "
              "`python -m export.data` from redistributable sources (see ATTRIBUTION.md)")
        if instruction:
            print(f"instruction: {instruction!r}")
    ns = argparse.Namespace(
        command="demo", input=str(scene), model=None, backend="onnxruntime", precision=None,
        threads=1,
        providers=None, instruction=instruction, realtime=args.realtime, jsonl=None,
        quiet=False, speak=False, color=None, stats_every=0.0,
        asr=getattr(args, "asr", None), no_second_pass=False,
        endpoints=getattr(args, "endpoints", "student"))
    code = _cmd_run(ns)
    if labels:
        print("what the scene really holds (its labels), to compare with the alerts above:")
        for r in labels.get("responses", []):
            trig = r.get("trigger", {})
            what = trig.get("label") or trig.get("keyword") or trig.get("type", "")
            print(f"  {r['kind']:<11} {what:<14} "
                  f"window {r['earliest']:6.2f} - {r['latest']:6.2f} s")
    return code


def _demo_labels(scene: Path) -> dict | None:
    path = scene.with_suffix(".json")
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _demo_scene() -> Path | None:
    for name in ("demo_scene.wav", "demo.wav"):
        res = resources.files("aim_edge").joinpath("data", name)
        if res.is_file():
            return Path(str(res))
    return None


def _module_version(name: str) -> str | None:
    if importlib.util.find_spec(name) is None:
        return None
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # a broken install is worth reporting, not crashing on
        return f"present but fails to import ({exc.__class__.__name__}: {exc})"
    return str(getattr(module, "__version__", "unknown version"))


def _print_bundle(path: str | Path | None, out: TextIO) -> None:
    from .bundle import describe_artifacts, load_bundle
    from .instructions import encoder_for_bundle

    b = load_bundle(path)  # type: ignore[arg-type]
    m = b.manifest
    f = b.features
    print(f"bundle   {b.name}", file=out)
    print(f"  root             {b.root}", file=out)
    print(f"  created          {m.get('created', '?')}", file=out)
    print(f"  features         {f.sample_rate} Hz, {f.n_mels} mels, {f.frame_length_ms:g} ms"
          f" window / {f.frame_shift_ms:g} ms hop, dither {f.dither:g}", file=out)
    print(f"  chunk            {b.chunk_frames} frames = {b.chunk_seconds * 1000:.0f} ms,"
          f" lookahead {b.lookahead_frames} frames, subsampling {b.subsampling}", file=out)
    print(f"  algorithmic lat. {b.algorithmic_latency_ms:.0f} ms (chunk + lookahead + window"
          " overhang; counted apart from compute)", file=out)
    n_state = sum(math.prod(s.shape) for s in b.state)
    print(f"  state            {len(b.state)} tensors, {n_state} values"
          f" ({', '.join(s.name for s in b.state)})", file=out)
    print(f"  vocabulary       {len(b.vocab)} CTC tokens (0 = blank)", file=out)
    events = ", ".join(f"{e.name}{' [safety]' if e.safety else ''}" for e in b.events)
    print(f"  events           {events}", file=out)
    print("  event head       " + (
        "reads the instruction (while one is in force the runtime re-scores the safety labels "
        "without it: safety_without_instruction)" if b.events_read_instruction else
        "own branch, independent of the instruction (one model step per chunk)"), file=out)
    print(f"  intents          {', '.join(b.intents)}", file=out)
    thr = m.get("thresholds", {})
    far = thr.get("false_alerts_per_hour")
    speak_far = thr.get("speak_now_false_alerts_per_hour", far)
    on = f" on {thr['calibrated_on']}" if thr.get("calibrated_on") else ""
    if far is None:
        calibrated = "; not calibrated"
    elif speak_far == far:
        calibrated = f"; calibrated{on} for {far:g} false alert{'' if far == 1 else 's'}/h"
    else:
        calibrated = (f"; calibrated{on} for {far:g} false alert{'' if far == 1 else 's'}/h"
                      " per event label, "
                      f"speak-now {speak_far:g}/h")
    print(f"  thresholds       speak_now {b.speak_threshold:g}; events "
          + ", ".join(f"{k} {v:g}" for k, v in b.event_thresholds.items()) + calibrated,
          file=out)
    waits = {k: n for k, n in b.confirm_chunks.items() if n > 1}
    if waits:
        where = (thr.get("confirm_chosen_on") or {}).get("scenes")
        print("  confirmation     alert at the n-th chunk above threshold: "
              + ", ".join(f"{k} {n}" for k, n in waits.items()) + "; others 1"
              + (f" (chosen on {where})" if where else ""), file=out)
    rearm = b.per_label("rearm_s")
    if rearm:
        where = (thr.get("rearm_chosen_on") or {}).get("scenes")
        common = max(set(rearm.values()), key=list(rearm.values()).count)
        print("  one sound        a pause shorter than this continues the same sound: "
              + "".join(f"{k} {v:g} s, " for k, v in rearm.items() if v != common)
              + f"{'others ' if len(set(rearm.values())) > 1 else 'every label '}{common:g} s"
              + (f" (chosen on {where})" if where else ""), file=out)
    gate = thr.get("caption_confidence")
    if gate:
        where = (thr.get("caption_confidence_chosen_on") or {}).get("scenes")
        print(f"  caption gate     drop a caption whose letters came over a sound with mean"
              f" posterior < {gate:g}" + (f" (chosen on {where})" if where else "")
              + "; --policy caption_confidence=0 keeps them", file=out)
    try:
        enc = encoder_for_bundle(b)
        enc_line = enc.kind + (f" -- {enc.note}" if enc.note else "")
    except AimEdgeError as exc:
        enc_line = f"unavailable: {exc}"
    print(f"  instructions     encoder: {enc_line}", file=out)
    prov = m.get("provenance") or {}
    if prov:
        keys = ", ".join(f"{k}={prov[k]}" for k in sorted(prov) if not isinstance(
            prov[k], (dict, list)))
        print(f"  provenance       {keys or ', '.join(sorted(prov))}", file=out)
    print("  artifacts:", file=out)
    for a, line in zip(b.artifacts, describe_artifacts(b.artifacts), strict=True):
        par = a.parity or {}
        agree = par.get("decision_agreement")
        extra = (f"  decision agreement {100 * agree:.2f} %"
                 if isinstance(agree, (int, float)) and not isinstance(agree, bool) else "")
        print(f"    {line}{extra}", file=out)
    for fname, fmt, prec in b.missing:
        print(f"    {fname:<32} {fmt:<6} {prec:<12} listed in the manifest, file removed",
              file=out)
    for prec in sorted({a.precision for a in b.artifacts if a.precision in PRECISION_NOTES}):
        print(f"    ({prec}: {PRECISION_NOTES[prec]})", file=out)
    _print_parity(m, b, out)


#: What each artifact precision means for a deployer (``aim-edge info``).
PRECISION_NOTES = {
    "int8-dynamic": "INT8 weights, float32 activations quantized on the fly by CPU kernels;"
                    " not a full-integer model, so integer-only NPU/DSP delegates will not"
                    " take it",
    "int8-static": "INT8 weights and activations (QDQ, calibrated): for TensorRT and NPUs",
    "fp16": "float16 weights; for GPUs (TensorRT, CUDA)",
}


def _print_parity(m: dict[str, Any], b: Any, out: Any) -> None:
    """The export's parity gate and each artifact's figures against it."""
    gate = m.get("parity_gate") or {}
    measured = [a for a in b.artifacts if a.parity and "decision_agreement" in a.parity]
    if not measured:
        return
    bars = gate.get("bars") or {}
    where = (f"{gate['streams']} {gate.get('data', 'held-out streams')}, {gate['chunks']}"
             " chunks" if "streams" in gate and "chunks" in gate else "held-out streams")
    print(f"  parity           against {gate.get('reference', 'the fp32 model')}, {where}",
          file=out)
    if bars:
        # in the units of the figures below (agreements in %)
        names = {"decision_agreement": "decision agreement >= {:g} %",
                 "cer_delta_points": "CER delta <= {:g} points",
                 "proactive_f1_delta": "proactive F1 delta <= {:g}"}
        print("                   export gate: " + ", ".join(
            names.get(k, k + " {:g}").format(round(100 * v, 4) if k.endswith("agreement")
                                             else v)
            for k, v in bars.items() if isinstance(v, (int, float))), file=out)
    for a in measured:
        p = {k: v for k, v in a.parity.items()  # figures only: None = not computed
             if isinstance(v, (int, float)) and not isinstance(v, bool)}
        parts = [f"decisions {100 * p['decision_agreement']:.2f} %"]
        if "event_agreement" in p:
            parts.append(f"events {100 * p['event_agreement']:.2f} %")
        if "ctc_argmax_agreement" in p:
            parts.append(f"CTC argmax {100 * p['ctc_argmax_agreement']:.2f} %")
        if "cer" in p and "cer_reference" in p:
            parts.append(f"CER {100 * p['cer']:.1f} % (reference {100 * p['cer_reference']:.1f}"
                         f" %, {p.get('cer_delta_points', 0.0):+.2f} points)")
        if "proactive_f1_delta" in p:
            parts.append(f"proactive F1 delta {p['proactive_f1_delta']:+.3f}")
        logits = [v for k, v in p.items() if k.startswith("max_abs_")]
        if logits:
            parts.append(f"max |output diff| {max(logits):.2f}")
        print(f"    {a.file:<32} " + ", ".join(parts), file=out)


def _cmd_info(args: argparse.Namespace) -> int:
    import numpy

    print(f"aim-edge {__version__}")
    print(f"python   {platform.python_version()} ({platform.machine()}, {platform.system()})")
    print(f"numpy    {numpy.__version__}")
    print("native extensions:")
    for ext in ("ring_buffer", "fbank"):
        try:
            mod = importlib.import_module(f"aim_edge._native.{ext}")
            print(f"  {ext:<12} ok  ({mod.__file__})")
        except ImportError as exc:
            print(f"  {ext:<12} MISSING ({exc}); reinstall with `pip install .` to build it")
    print("inference backends:")
    ort = _module_version("onnxruntime")
    if ort is None:
        print("  onnxruntime     not installed (pip install onnxruntime)")
    else:
        import onnxruntime

        providers = ", ".join(onnxruntime.get_available_providers())
        print(f"  onnxruntime     {ort} [{providers}]")
    litert = _module_version("ai_edge_litert")
    print(f"  ai-edge-litert  {litert or 'not installed (pip install aim-edge[tflite])'}")
    tflite = _module_version("tflite_runtime")
    print(f"  tflite-runtime  {tflite or 'not installed (legacy; Python <= 3.11, numpy < 2)'}")
    soxr = _module_version("soxr")
    print("optional parts:")
    print(f"  soxr (resampling)       {soxr or 'not installed (pip install soxr)'}")
    tok = _module_version("tokenizers")
    print(f"  tokenizers (encoder)    {tok or 'not installed (pip install tokenizers)'}")
    sd = _module_version("sounddevice")
    if sd:
        try:
            from .capture.devices import portaudio_version

            sd = f"{sd}, {portaudio_version()}"
        except Exception as exc:  # noqa: BLE001 - PortAudio missing: say so, never fail info
            sd = f"{sd}, PortAudio unusable ({str(exc).splitlines()[0][:80]})"
    print(f"  sounddevice (listen)    "
          f"{sd or 'not installed (pip install aim-edge[audio]; apt-get install libportaudio2)'}")
    mpl = _module_version("matplotlib")
    print(f"  matplotlib (plots)      {mpl or 'not installed (pip install matplotlib)'}")
    import shutil

    espeak = shutil.which("espeak-ng")
    print(f"  espeak-ng (--speak)     {espeak or 'not found (apt-get install espeak-ng)'}")
    from . import bundles

    default = bundles.default_bundle_path()
    if args.model is None:
        print(f"default bundle: {default if default else 'none shipped yet'}")
    else:
        print(f"bundle (--model): {args.model}")
    model = args.model if args.model is not None else default
    if model is not None:
        _print_bundle(model, sys.stdout)
    return 0


def _fmt_pct(p: dict[str, float], none: str = "n/a (none measured)") -> str:
    if not p or not p.get("n"):
        return none
    return (f"p50 {p['p50']:.2f} / p95 {p['p95']:.2f} / p99 {p['p99']:.2f} /"
            f" max {p['max']:.2f} ms (n={int(p['n'])})")


#: said once at the start of run / listen / demo when no second pass is attached
CAPTIONS_NOTE = ("note: captions are the streaming model's own draft (trained on synthetic voices:"
                 " rough on real speech); for real words attach the Whisper second pass: `make"
                 " asr-export`, then --asr out/asr-whisper-tiny.en")


def print_captions_note(engine: Any, out: TextIO) -> None:
    """Tell the user where final captions come from when no second pass is attached."""
    if getattr(engine, "second_pass", None) is None:
        print(CAPTIONS_NOTE, file=out)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def print_summary(summary: dict[str, Any], engine: Any, out: TextIO) -> None:
    """The end-of-run summary of `aim-edge run` / `demo`."""
    b = engine.bundle
    rtf = summary["rtf"]
    cpu_rtf = summary["cpu_rtf"]
    print("summary:", file=out)
    print(f"  chunks        {summary['chunks']} x {b.chunk_seconds * 1000:.0f} ms"
          f" ({summary['audio_s']:.2f} s of audio) in {summary['wall_s']:.2f} s wall"
          + (" (real-time pacing)" if summary["realtime"] else ""), file=out)
    if rtf is not None:
        print(f"  RTF           {rtf:.4f} wall, {cpu_rtf:.4f} CPU (all loop threads)", file=out)
    dropped = summary.get("captions_dropped", 0)
    print(f"  events        {_plural(summary['alerts'], 'alert')},"
          f" {_plural(summary['captions'], 'final caption')},"
          f" {_plural(summary['answers'], 'answer')}"
          + (f" ({dropped} utterance{'s' if dropped != 1 else ''} dropped as not speech)"
             if dropped else ""), file=out)
    print("  latency       responses "
          + _fmt_pct(summary["response_latency_ms"], "n/a (nothing was said: no alert or answer)"),
          file=out)
    if not summary["realtime"]:
        print("                (as fast as possible: chunks queue behind the file reader, so"
              " latency includes that wait; --realtime gives live figures)", file=out)
    print(f"                chunks    {_fmt_pct(summary['chunk_latency_ms'])}", file=out)
    st = summary["stages_ms"]
    print("  per stage p50/p99 ms   " + (", ".join(
        f"{k} {v['p50']:.2f}/{v['p99']:.2f}" for k, v in st.items()
        if k != "end_to_end" and v.get("n")) or "n/a (no chunk was decided)"), file=out)
    if not summary["realtime"]:
        print("                (ring wait: the file is read ahead of the perceive thread;"
              " a wait, not a cost)", file=out)
    print(f"  model latency {b.algorithmic_latency_ms:.0f} ms algorithmic (chunk + lookahead +"
          " window), not included above", file=out)
    print(f"  dropped       {summary['dropped_samples']} samples"
          f" ({summary['overflow_events']} overflow events)", file=out)
    for note in summary["notes"]:
        print(f"  note          {note}", file=out)
    print(f"  backend       {engine.backend.description}", file=out)


def _second_pass(args: argparse.Namespace) -> Any:
    """The Whisper second pass named by --asr, or the bundle's validated ``asr`` component
    (manifest), unless --no-second-pass."""
    if getattr(args, "no_second_pass", False):
        return None
    folder = getattr(args, "asr", None)
    if folder is None:
        from .asr import bundle_asr_dir

        folder = bundle_asr_dir(args.model)
    if folder is None:
        return None
    folder = Path(folder)
    if not folder.is_dir():
        raise AimEdgeError(f"--asr {folder}: no such folder (build it with `make asr-export`)")
    from .asr.whisper import WhisperSecondPass

    return WhisperSecondPass.from_dir(folder, threads=1)


def _cmd_run(args: argparse.Namespace) -> int:
    from .loop import Loop, LoopConfig, WavSource
    from .respond import ConsoleResponder, JsonLinesResponder, SpeechResponder

    source = WavSource(args.input)  # checks the file before the model loads
    engine = engine_from_args(args)
    with engine:
        to_stdout = args.jsonl == "-"
        info_out = sys.stderr if to_stdout else sys.stdout
        responders: list[Any] = []
        if args.jsonl is not None:
            try:
                responders.append(JsonLinesResponder(args.jsonl))
            except OSError as exc:
                raise AimEdgeError(f"--jsonl {args.jsonl}: {exc}") from exc
        if not args.quiet:
            responders.append(ConsoleResponder(info_out, color=args.color))
        if args.speak:
            responders.append(SpeechResponder())
        name = "<stdin>" if args.input == "-" else args.input
        if not args.quiet:
            d = engine.describe()
            length = ("until the stream ends" if source.info.open_ended
                      else f"{source.info.seconds:.2f} s")
            print(f"aim-edge run: {name} ({source.info.sample_rate} Hz,"
                  f" {source.info.channels} ch, {length}) through {d['bundle']}", file=info_out)
            print_captions_note(engine, info_out)
        if source.info.frames == 0:
            print(f"aim-edge run: {name} holds no audio samples: nothing to decode"
                  " (0 chunks)", file=info_out)
        config = LoopConfig(realtime=args.realtime, stats_every_s=args.stats_every)
        loop = Loop(engine, source, responders, instruction=args.instruction, config=config)
        summary = loop.run()
        print_summary(summary, engine, info_out)
    return 0


class UsageError(ConfigError):
    """A command-line value argparse cannot check itself (``--policy``): exit code 2, as for
    argparse's errors; 1 is left for bad input, bundles, devices and runtime failures."""


def _cores() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 0


def engine_from_args(args: argparse.Namespace) -> Any:
    """The engine ``run`` and ``listen`` build from their shared options (model, backend,
    second pass and where its utterances end)."""
    from .engine import Engine
    from .policy import PolicyConfig

    second_pass = _second_pass(args)
    command = getattr(args, "command", None) or "run"
    endpoints = getattr(args, "endpoints", "student")
    if second_pass is None and endpoints == "silero":
        endpoints = "student"  # no second pass (none in the bundle, or --no-second-pass)
        print(f"aim-edge {command}: note: --endpoints silero only cuts utterances for a"
              " second pass, and none is attached (--asr DIR, or a bundle with one): the"
              " student's own endpoints are used", file=sys.stderr)
    threads = getattr(args, "threads", 1)
    cores = _cores()
    if cores and threads > cores:
        print(f"aim-edge {command}: note: --threads {threads} is more than this machine's"
              f" {cores} core(s); the audio and feature threads will compete with inference"
              " (1 is right for the shipped model)", file=sys.stderr)
    settings = getattr(args, "policy", None)
    try:
        policy = PolicyConfig.parse_settings(settings) if settings else None
    except ConfigError as exc:  # a bad command line, like argparse's own errors: exit 2
        raise UsageError(str(exc)) from exc
    return Engine.from_bundle(args.model, backend=args.backend, precision=args.precision,
                              threads=args.threads, providers=args.providers,
                              second_pass=second_pass, endpoints=endpoints, policy=policy)


#: what each decision-policy field does, for --policy's help (defaults come from PolicyConfig)
_POLICY_FIELDS = {
    "hysteresis": "off = on - this, per label and speak-now",
    "refractory_s": "seconds before a label alerts again",
    "rearm_s": "a pause shorter than this continues the same sound (no new alert)",
    "answer_refractory_s": "seconds between two answers",
    "endpoint_s": "silence that ends a caption",
    "wake_endpoint_s": "pause after which speech is checked for a wake phrase",
    "max_utterance_s": "longest caption",
    "wake_phrases": "comma-separated, e.g. 'hey aim,computer'",
    "wake_tolerance": "edits per letter allowed in the draft's wake phrase (0 = exact)",
    "wake_lead_chars": "stray letters allowed before it",
    "wake_name_words": "the name may end one of the first N words",
    "wake_confirm_speak": "speak-now that confirms a drafted wake phrase (0 = none)",
    "wake_speak_threshold": "answer a drafted wake phrase when speak-now reaches it"
                            " (1 = wait for the pause)",
    "wake_speak_pause_s": "... once the draft paused this long",
    "wake_draft_questions": "with --asr, answer a confirmed drafted question at the pause"
                            " instead of waiting for the second pass",
    "wake_inside": "a wake phrase glued inside a running draft counts when speak-now reached"
                   " wake_speak_threshold",
    "caption_confidence": "drop captions of letters written over a sound below this mean"
                          " posterior (0 keeps them)",
    "spoken_instructions": "let 'hey aim, <instruction>' replace the instruction",
    "wake_alone_s": "a wake phrase said alone, then a pause, addresses the speech checked"
                    " within this many seconds after it (0 = off)",
    "keyword_settle_s": "a watched keyword alerts once the next word started or the draft"
                        " paused this long: a whole word, not the start of a longer one",
    "kws_threshold": "keyword spotter's letter posterior (0 = spotter off)",
    "acknowledge_speak_threshold": "the model acknowledges a spoken instruction when"
                                   " speak-now rises past this or the bundle's speak"
                                   " threshold, whichever is lower",
    "safety_without_instruction": "re-score safety labels without the instruction (one more"
                                  " model step per chunk; `aim-edge info` says whether the"
                                  " bundle needs it)",
}
#: fields whose default the bundle's manifest may set (then --policy wins over it)
_FROM_BUNDLE = ("hysteresis", "refractory_s", "rearm_s", "caption_confidence")


def _policy_help() -> str:
    import dataclasses

    from .policy import PolicyConfig

    defaults = PolicyConfig()
    parts = []
    for f in dataclasses.fields(PolicyConfig):
        if f.name.startswith("_"):
            continue
        value = getattr(defaults, f.name)
        shown = (",".join(value) if isinstance(value, tuple)
                 else str(value).lower() if isinstance(value, bool) else f"{value:g}")
        where = " or the bundle's" if f.name in _FROM_BUNDLE else ""
        parts.append(f"{f.name} (default {shown}{where}): {_POLICY_FIELDS.get(f.name, '')}")
    return ("decision policy setting, repeatable, e.g. --policy refractory_s=10; wins over"
            " the bundle's. Fields: " + "; ".join(parts))


def add_model_arguments(p: Any) -> None:
    """The model and voice options ``run`` and ``listen`` share (one definition, one help)."""
    p.add_argument("--model", metavar="PATH", default=None,
                   help="model bundle folder or .zip (default: the shipped bundle)")
    p.add_argument("--backend", default="onnxruntime",
                   choices=["onnxruntime", "litert", "tflite-runtime"],
                   help="inference backend (default onnxruntime)")
    p.add_argument("--precision", default=None,
                   choices=["fp32", "fp16", "int8-dynamic", "int8-static"],
                   help="artifact precision (default: the smallest the backend runs)")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="inference threads (default 1: leave a core for audio and features)")
    p.add_argument("--providers", default=None, metavar="LIST",
                   help="onnxruntime execution providers, e.g. tensorrt,cuda (CPU is always"
                        " the fallback; needs onnxruntime-gpu)")
    p.add_argument("--instruction", default=None, metavar="TEXT",
                   help='what to listen for, e.g. "tell me if the doorbell rings"')
    p.add_argument("--policy", action="append", default=None, metavar="FIELD=VALUE",
                   help=_policy_help())
    p.add_argument("--speak", action="store_true",
                   help="speak alerts and answers with espeak-ng")
    p.add_argument("--color", action=argparse.BooleanOptionalAction, default=None,
                   help="ANSI colours in the console view (default: when it is a terminal)")
    p.add_argument("--asr", metavar="DIR", default=None,
                   help="Whisper tiny.en second pass folder (from `make asr-export`): final "
                   "captions are re-decoded by it (default: the bundle's asr/ if it has one)")
    p.add_argument("--no-second-pass", action="store_true",
                   help="keep the streaming model's own final captions")
    p.add_argument("--endpoints", choices=["student", "silero"], default="student",
                   help="where second-pass utterances end: the streaming model's CTC"
                   " endpoint (default) or silero-vad on the audio (pip install --no-deps"
                   " silero-vad==6.2.3); only used with a second pass")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aim-edge",
        description=(
            "Always-on Audio Interaction Model on a device: live captions, sound events and "
            "proactive alerts within a 200 ms budget."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"aim-edge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run the bundled demo scene through the default model",
        description="Run the 60 s demo scene shipped in the package through the default bundle,"
                    " paced like a live microphone so the latency figures are the live ones.",
    )
    demo.add_argument("--fast", dest="realtime", action="store_false",
                      help="as fast as possible instead of real-time pacing (a few seconds;"
                      " latency then includes queueing behind the file reader)")
    demo.add_argument("--asr", metavar="DIR", default=None,
                      help="Whisper second pass folder from `make asr-export` for final captions")
    demo.add_argument("--endpoints", choices=["student", "silero"], default="student",
                      help="with a second pass: utterance ends from the streaming model"
                      " (default) or silero-vad")
    demo.set_defaults(func=_cmd_demo)

    run = sub.add_parser(
        "run",
        help="run a WAV file through the loop: captions, alerts, answers, latency summary",
        description="Run a WAV file through the perceive-decide-respond loop (the same threads"
                    " a microphone uses) and print captions, alerts and a latency summary.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("input", metavar="INPUT",
                     help="WAV file (8/16/24/32-bit PCM or float, any rate and channels), or -"
                          " for a WAV stream on standard input (decoded as it arrives)")
    add_model_arguments(run)
    run.add_argument("--realtime", action="store_true",
                     help="pace the file at 1x like a microphone (default: as fast as possible,"
                          " lossless)")
    run.add_argument("--jsonl", default=None, metavar="PATH|-",
                     help="write every event as a JSON line to PATH, or to stdout with '-'"
                          " (the console view then goes to stderr)")
    run.add_argument("--quiet", action="store_true",
                     help="no live console view (the summary is still printed)")
    run.add_argument("--stats-every", type=nonneg_number("seconds"), default=0.0,
                     metavar="SECONDS",
                     help="emit a stats event every SECONDS of audio (default: only at the end)")
    run.set_defaults(func=_cmd_run)

    info = sub.add_parser(
        "info",
        help="show versions, native build, available backends and a bundle's contents",
        description="Print what this installation can do: versions, native extensions,"
                    " inference backends, optional parts; and the manifest summary and"
                    " artifacts of a bundle (--model, default: the shipped one).",
        epilog="example:\n  aim-edge info --model bundles/small",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    info.add_argument("--model", metavar="PATH", default=None,
                      help="bundle folder or .zip to describe (default: the shipped bundle)")
    info.set_defaults(func=_cmd_info)

    from .profile.cli import add_parser as add_profile_parser  # issue 7: its own module

    add_profile_parser(sub)
    from .capture.commands import add_commands as add_capture_commands  # issue 6: listen, devices

    add_capture_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # the subcommand's own usage, not the top level's, names the stray option
        sub = _subparsers(parser).get(getattr(args, "command", None) or "", parser)
        sub.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"aim-edge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except AimEdgeError as exc:
        print(f"aim-edge {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
