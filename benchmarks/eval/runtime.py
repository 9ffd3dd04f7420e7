"""Run scenes through the aim-edge runtime (Engine/Stream, streaming) and score what it emits.

The runtime is used exactly as an application uses it: audio is pushed one chunk at a time with
``accept_waveform`` and decoded as chunks become ready; text-delivered instructions are set with
``set_instruction`` when their interval starts (spoken ones must be heard by the runtime). The
stream records its per-chunk model outputs (``record_outputs=True``) so event detection can be
scored from the same probabilities the policy saw.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from aim_edge.metrics import (
    alerts,
    error_rate,
    mask_f1,
    percentiles,
    prf,
    score_events,
    score_responses,
    spans_to_mask,
)

from .sets import SR, Scene

LATE_GRACE_S = 2.0


@dataclasses.dataclass
class SceneRun:
    """What the runtime produced for one scene."""

    scene: Scene
    captions: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    answers: list[dict[str, Any]]
    p_events: np.ndarray  # (chunks, events)
    p_speak: np.ndarray  # (chunks,)
    t: np.ndarray  # (chunks,) decision time of each chunk, seconds
    wall_s: float
    cpu_s: float


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, np.float64), -60, 60)))


def decision_times(engine: Any, n_chunks: int) -> np.ndarray:
    """Stream time at which chunk k is decided: its last fbank frame is complete."""
    f = engine.bundle.features
    lag = (f.frame_length_ms - f.frame_shift_ms) / 1000.0 if f.snip_edges else 0.0
    return engine.bundle.chunk_seconds * (np.arange(n_chunks) + 1) + lag


def run_scene(engine: Any, scene: Scene, *, instructions: bool = True) -> SceneRun:
    """Stream ``scene`` through ``engine`` chunk by chunk; return its events and outputs."""
    changes = sorted((iv["start"], iv.get("text") or None) for iv in scene.instructions
                     if iv.get("delivery") == "text" or (iv.get("delivery") is None
                                                          and iv["start"] > 0))
    step = engine.bundle.chunk_samples
    c0, w0 = time.process_time(), time.perf_counter()
    with engine.create_stream(record_outputs=True) as stream:
        x = scene.samples
        for i in range(0, x.shape[0], step):
            while instructions and changes and changes[0][0] <= i / SR:
                stream.set_instruction(changes.pop(0)[1], source="api")
            stream.accept_waveform(SR, x[i:i + step])
            while stream.is_ready():
                stream.decode()
        stream.input_finished()
        while stream.is_ready():
            stream.decode()
        res = stream.get_result()
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    outs = res.outputs or []
    p_ev = _sigmoid(np.stack([o["event_logits"].reshape(-1) for o in outs])) if outs else (
        np.zeros((0, len(engine.bundle.events))))
    p_sp = _sigmoid(np.array([float(o["speak_logit"].reshape(-1)[0]) for o in outs]))
    return SceneRun(scene, res.captions, res.alerts, res.answers, p_ev, p_sp,
                    decision_times(engine, len(outs)), wall, cpu)


def transcribe_whole(engine: Any, samples: np.ndarray) -> str:
    """The same model fed one utterance alone (fresh state, streaming path): its text, the
    letters of captions the caption gate dropped included (this measures the model's ASR)."""
    res = engine.process_array(samples, SR)
    parts = [e.get("draft", "") if e.get("dropped") else e["text"] for e in res.events
             if e["type"] == "caption" and e["final"]]
    return " ".join(p for p in [*parts, res.partial] if p)


# ----------------------------------------------------------------------------- scoring
def _words(text: str) -> list[str]:
    from export.whisper.speech import normalize_text

    return normalize_text(text)


def asr_pairs(refs: Sequence[str], hyps: Sequence[str]) -> dict[str, Any]:
    """WER and CER (characters of the normalised words, spaces included) of text pairs."""
    wr = [(_words(r), _words(h)) for r, h in zip(refs, hyps, strict=True)]
    w = error_rate(wr)
    c = error_rate((" ".join(r), " ".join(h)) for r, h in wr)
    return {"wer": w["rate"], "cer": c["rate"], "words": w["units"], "chars": c["units"],
            "word_errors": w["errors"], "char_errors": c["errors"]}


def stream_captions(run: SceneRun) -> tuple[str, str]:
    """(reference, hypothesis) of a whole scene: every transcript, every final caption."""
    ref = " ".join(s["transcript"] for s in sorted(run.scene.speech, key=lambda s: s["start"])
                   if s.get("transcript"))
    hyp = " ".join(c["text"] for c in run.captions if c.get("text"))
    return ref, hyp


def event_detections(p: np.ndarray, t: np.ndarray, threshold: float, hysteresis: float,
                     refractory_s: float, chunk_s: float, rearm_s: float = 0.0,
                     confirm_chunks: int = 1) -> list[tuple[float, float]]:
    """``(alert time, end time)`` of each alert the policy's rules give on ``p``: a detection
    starts when the alert fires (``confirm_chunks`` > 1 fires after the sound's start)."""
    return [(float(t[f]), float(t[b - 1]))
            for _, f, b in alerts(p, threshold, hysteresis, refractory_s, chunk_s, rearm_s,
                                  confirm_chunks)]


def score_event_set(scenes_dets: Sequence[tuple[Scene, dict[str, list[tuple[float, float]]]]],
                    labels: Sequence[str]) -> dict[str, Any]:
    """Per-class P/R/F1 and delays over scenes, from detections per label per scene."""
    per: dict[str, Any] = {}
    all_delays: list[float] = []
    for label in labels:
        tp = fn = fp = 0
        delays: list[float] = []
        for scene, dets in scenes_dets:
            s = score_events(scene.events, dets.get(label, []), label)
            tp, fn, fp = tp + s["tp"], fn + s["fn"], fp + s["fp"]
            delays += s["delays"]
        per[label] = {**prf(tp, fp, fn), "delay_s": percentiles(delays)}
        all_delays += delays
    scored = [v for v in per.values() if v["tp"] + v["fn"] > 0]
    return {"per_class": per,
            "macro_f1": float(np.mean([v["f1"] for v in scored])) if scored else None,
            "delay_s": percentiles(all_delays)}


def runtime_detections(engine: Any, run: SceneRun, *, confirm_chunks: int | None = None
                       ) -> dict[str, list[tuple[float, float]]]:
    """Alerts of each label on the runtime's own probabilities, by the rules of the policy the
    engine builds (bundle thresholds, hysteresis, per-label refractory time and confirmation,
    one alert per sound: ``rearm_s``); ``confirm_chunks`` replaces every label's confirmation
    (``python -m export.confirm`` tries each)."""
    return policy_detections(engine.new_policy(), run.p_events, run.t,
                             engine.bundle.chunk_seconds, confirm_chunks=confirm_chunks)


def policy_detections(pol: Any, p_events: np.ndarray, t: np.ndarray, chunk_s: float, *,
                      confirm_chunks: int | None = None) -> dict[str, list[tuple[float, float]]]:
    """Alerts of each label of ``pol`` (a ``DecisionPolicy``: thresholds, hysteresis,
    refractory, re-arm gap, confirmation) on ``p_events`` (chunks, labels in ``pol.events``
    order) decided at times ``t``."""
    return {label: event_detections(p_events[:, i], t, float(pol.on[i]), pol.hysteresis,
                                    float(pol.refractory[i]), chunk_s, float(pol.rearm[i]),
                                    int(pol.confirm[i]) if confirm_chunks is None
                                    else confirm_chunks)
            for i, label in enumerate(pol.events)}


def _intent_at(scene: Scene, t: float) -> tuple[str, str]:
    for iv in scene.instructions:
        if iv["start"] <= t < iv["end"]:
            meaning = iv.get("meaning") or {}
            return meaning.get("intent", "none"), iv.get("delivery") or "none"
    return "none", "none"


def proactive(runs: Sequence[SceneRun]) -> dict[str, Any]:
    """Speak-now behaviour from what the runtime said: alerts and answers vs windows."""
    hits = late = misses = false = 0
    quiet_s = 0.0
    delays: list[float] = []
    hazards = {"windows": 0, "hits": 0, "late": 0, "missed": 0, "delays": []}
    by_intent: dict[str, dict[str, Any]] = {}
    by_kind: dict[str, dict[str, int]] = {}
    by_source: dict[str, int] = {}  # false alerts by what said them

    def bucket(key: str) -> dict[str, Any]:
        return by_intent.setdefault(key, {"windows": 0, "hits": 0, "late": 0, "misses": 0,
                                          "false_alerts": 0, "quiet_s": 0.0})

    for run in runs:
        sc = run.scene
        times = [a["t"] for a in run.alerts] + [a["t"] for a in run.answers]
        s = score_responses(sc.responses, times, LATE_GRACE_S)
        hits, late, misses = hits + s["hits"], late + s["late"], misses + s["misses"]
        false += s["false_alerts"]
        for a, b in sc.no_response:
            quiet_s += b - a
            for iv in sc.instructions:  # quiet time under each instruction intent
                ov = min(b, iv["end"]) - max(a, iv["start"])
                if ov > 0:
                    bucket(_intent_at(sc, max(a, iv["start"]))[0])["quiet_s"] += ov
        for w, o in zip(sc.responses, s["outcomes"], strict=True):
            if o["outcome"] == "hit":
                delays.append(o["delay_s"])
            key = _intent_at(sc, w["earliest"])[0]
            bk = bucket(key)
            bk["windows"] += 1
            bk[{"hit": "hits", "late": "late", "miss": "misses"}[o["outcome"]]] += 1
            kind = by_kind.setdefault(w["kind"], {"windows": 0, "hits": 0, "late": 0,
                                                  "misses": 0})
            kind["windows"] += 1
            kind[{"hit": "hits", "late": "late", "miss": "misses"}[o["outcome"]]] += 1
            trig = w.get("trigger", {})
            if trig.get("type") == "event" and trig.get("reason") == "safety":
                hazards["windows"] += 1
                hazards[{"hit": "hits", "late": "late", "miss": "missed"}[o["outcome"]]] += 1
                if o["outcome"] == "hit":
                    hazards["delays"].append(o["delay_s"])
        said = sorted([(a["t"], alert_source(a)) for a in run.alerts]
                      + [(a["t"], answer_source(a)) for a in run.answers])
        for tf in s["false_alert_times"]:
            bucket(_intent_at(sc, tf)[0])["false_alerts"] += 1
            src = next((name for t, name in said if t == tf), "unknown")
            by_source[src] = by_source.get(src, 0) + 1
    p = hits / max(1, hits + false + late)
    r = hits / max(1, hits + late + misses)
    for bk in by_intent.values():
        bk["false_alerts_per_hour"] = (bk["false_alerts"] / (bk["quiet_s"] / 3600)
                                       if bk["quiet_s"] > 0 else None)
        bk["recall"] = bk["hits"] / bk["windows"] if bk["windows"] else None
    hazards["delay_s"] = percentiles(hazards.pop("delays"))
    return {"windows": hits + late + misses, "hits": hits, "late": late, "misses": misses,
            "false_alerts": false, "precision": p, "recall": r,
            "f1": 2 * p * r / max(1e-9, p + r),
            "no_response_hours": quiet_s / 3600,
            "false_alerts_per_hour": false / (quiet_s / 3600) if quiet_s > 0 else None,
            "delay_s": percentiles(delays), "hazards": hazards, "by_instruction": by_intent,
            "by_kind": by_kind,
            "false_alerts_by_source": dict(sorted(by_source.items(), key=lambda kv: -kv[1]))}


def alert_source(alert: dict[str, Any]) -> str:
    """``alert/<why it was allowed>/<label>``: safety, instruction, model, or a keyword path."""
    return f"alert/{alert.get('source', '?')}/{alert.get('label', '?')}"


def answer_source(answer: dict[str, Any]) -> str:
    """``answer/<kind>/<source>``: e.g. the model's speak-now rising edge on a question."""
    return f"answer/{answer.get('intent', '?')}/{answer.get('source', '?')}"


def speech_activity(runs: Sequence[SceneRun]) -> dict[str, Any]:
    """Frame-level (10 ms) speech detection from the runtime's final caption spans."""
    refs, hyps = [], []
    for run in runs:
        d = run.scene.duration
        refs.append(spans_to_mask(((s["start"], s["end"]) for s in run.scene.speech), d))
        hyps.append(spans_to_mask(((c["start_s"], c["end_s"]) for c in run.captions), d))
    return mask_f1(np.concatenate(refs), np.concatenate(hyps)) if refs else {}
