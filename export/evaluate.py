"""Evaluate a checkpoint on generated streams and calibrate its thresholds.

    python -m export.evaluate --checkpoint ckpt/student.pt --data /data/test \\
        [--calibrate-on /data/dev --target-fa-per-hour 1] [--json out.json]

The model runs over each whole stream with the full-sequence graph, which computes exactly what
the streaming step computes (``tests/test_model_streaming.py``). Metrics:

* **events** (per class, event level): an event is *detected* when ``p_e >= threshold`` at a
  chunk decided between its onset and 0.5 s after its offset; every activation (a run of chunks
  above threshold) that overlaps no event of that class is a false positive. F1 from those.
* **proactive** (speak-now): an activation of speak-now (rising edge above threshold) inside a
  response window is a hit (one per window); a window with no activation is a miss; any other
  activation is a false alert. Proactive F1, false alerts per hour of no-response audio, and the
  delay of the first hit after the window opens (median / p95), hazards broken out.
* **captions**: CER of greedy CTC over each speech segment (characters of the model alphabet).
* **keywords**: recall of watched keywords appearing in the greedy CTC text of their segment.

Calibration picks, on a *different* split, the speak-now threshold and each event threshold
with the best recall whose false-alert rate stays within ``--target-fa-per-hour``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from aim_edge.metrics import activations  # shared with python -m benchmarks.eval
from aim_edge.metrics import edit_distance as _edit_distance

from .bundle import load_checkpoint
from .model import AimModel
from .targets import StreamTargets, decision_time, load_split

GRID = np.round(np.concatenate([np.arange(0.1, 0.9, 0.05), np.arange(0.9, 0.999, 0.02)]), 4)


def run_model(model: AimModel, streams: list[StreamTargets], threads: int = 2
              ) -> list[dict[str, np.ndarray]]:
    torch.set_num_threads(threads)
    outs = []
    with torch.no_grad():
        for s in streams:
            x = torch.from_numpy(s.feats.astype(np.float32))[None]
            instr = torch.from_numpy(s.instruction)[None]
            o = model(x, instr)
            outs.append({
                "speak": torch.sigmoid(o["speak_logit"][0]).numpy(),
                "events": torch.sigmoid(o["event_logits"][0]).numpy(),
                "intent": o["intent_logits"][0].argmax(-1).numpy(),
                "ctc": o["ctc_logprobs"][0].argmax(-1).numpy(),
            })
    return outs


HYSTERESIS = 0.1  # aim_edge.policy.PolicyConfig defaults: evaluate what the runtime does
EVENT_REFRACTORY_S = 5.0
SPEAK_REFRACTORY_S = 2.0


def event_counts(streams, outs, label_index: int, threshold: float, label: str
                 ) -> tuple[int, int, int]:
    tp = fn = fp = 0
    for s, o in zip(streams, outs, strict=True):
        t = decision_time(np.arange(s.n_chunks))
        acts = activations(o["events"][:, label_index], threshold,
                           refractory_s=EVENT_REFRACTORY_S)
        used = [False] * len(acts)
        for ev in s.record["events"]:
            if ev["label"] != label:
                continue
            hit = False
            for i, (a, b) in enumerate(acts):
                if t[a] <= ev["offset"] + 0.5 and t[b - 1] >= ev["onset"]:
                    hit = used[i] = True
            tp += hit
            fn += not hit
        fp += used.count(False)
    return tp, fn, fp


def proactive(streams, outs, threshold: float) -> dict[str, float]:
    hits = misses = false = 0
    delays, hazard_delays = [], []
    quiet_s = 0.0
    for s, o in zip(streams, outs, strict=True):
        t = decision_time(np.arange(s.n_chunks))
        quiet_s += sum(b - a for a, b in s.record["no_response"])
        onsets = [a for a, _ in activations(o["speak"], threshold,
                                            refractory_s=SPEAK_REFRACTORY_S)]
        claimed = set()
        for r in s.record["responses"]:
            inside = [k for k in onsets if r["earliest"] <= t[k] <= r["latest"]]
            if inside:
                hits += 1
                claimed.update(inside)
                d = t[inside[0]] - r["earliest"]
                delays.append(d)
                if r.get("trigger", {}).get("type") == "event":
                    hazard_delays.append(d)
            else:
                misses += 1
        false += len([k for k in onsets if k not in claimed])
    precision = hits / max(1, hits + false)
    recall = hits / max(1, hits + misses)
    f1 = 2 * precision * recall / max(1e-9, precision + recall)
    return {
        "threshold": threshold, "windows": hits + misses, "hits": hits, "misses": misses,
        "false_alerts": false, "precision": precision, "recall": recall, "f1": f1,
        "false_alerts_per_hour": false / max(1e-9, quiet_s / 3600),
        "no_response_hours": quiet_s / 3600,
        "delay_median_s": float(np.median(delays)) if delays else None,
        "delay_p95_s": float(np.percentile(delays, 95)) if delays else None,
        "alert_delay_median_s": float(np.median(hazard_delays)) if hazard_delays else None,
        "alert_delay_p95_s": float(np.percentile(hazard_delays, 95)) if hazard_delays else None,
    }


def _greedy_text(ids: np.ndarray, vocab: Sequence[str]) -> str:
    out, prev = [], -1
    for i in ids.tolist():
        if i != prev and i != 0:
            out.append(vocab[i])
        prev = i
    return " ".join("".join(out).split())


def _normalise(text: str, vocab: Sequence[str]) -> str:
    allowed = set(vocab[1:])
    chars = [c if c in allowed else " " for c in text.lower()]
    return " ".join("".join(chars).split())


def captions(streams, outs, vocab: Sequence[str], enc_chunk: int) -> dict[str, float]:
    errors = chars = 0
    kw_hits = kw_total = 0
    ec = enc_chunk
    for s, o in zip(streams, outs, strict=True):
        for seg in s.record["speech"]:
            c0 = int(seg["start"] / 0.16)
            c1 = min(s.n_chunks, int(np.ceil((seg["end"] + 0.3) / 0.16)))
            hyp = _greedy_text(o["ctc"][c0 * ec:c1 * ec], vocab)
            ref = _normalise(seg["transcript"], vocab)
            errors += _edit_distance(hyp, ref)
            chars += len(ref)
            for kw in seg.get("keywords") or []:
                kw_total += 1
                kw_hits += kw.lower() in hyp.split()
    return {"cer": errors / max(1, chars), "reference_chars": chars,
            "keyword_recall_in_greedy_text": kw_hits / max(1, kw_total), "keywords": kw_total}


def calibrate(streams, outs, events: Sequence[str], target_fa_per_hour: float
              ) -> dict[str, object]:
    hours = sum(s.n_chunks for s in streams) * 0.16 / 3600
    best_speak = None
    for thr in GRID:
        res = proactive(streams, outs, float(thr))
        if res["false_alerts_per_hour"] <= target_fa_per_hour:
            if best_speak is None or res["recall"] > best_speak["recall"]:
                best_speak = res
    if best_speak is None:
        best_speak = proactive(streams, outs, float(GRID[-1]))
    ev_thr, ev_recall = {}, {}
    for i, label in enumerate(events):
        chosen, chosen_recall = float(GRID[-1]), None
        for thr in GRID:
            tp, fn, fp = event_counts(streams, outs, i, float(thr), label)
            if fp / max(1e-9, hours) <= target_fa_per_hour:
                recall = tp / max(1, tp + fn) if tp + fn else None
                if chosen_recall is None or (recall or 0) > chosen_recall:
                    chosen, chosen_recall = float(thr), recall or 0.0
                    if tp + fn == 0:
                        break
        ev_thr[label] = chosen
        ev_recall[label] = chosen_recall
    return {"speak_now": float(best_speak["threshold"]), "events": ev_thr,
            "false_alerts_per_hour": target_fa_per_hour,
            "recall_at_rate": {"speak_now": best_speak["recall"], "events": ev_recall},
            "calibration_hours": hours}


def evaluate(model: AimModel, streams, thresholds: dict) -> dict[str, object]:
    outs = run_model(model, streams)
    events = list(model.cfg.events)
    per_class = {}
    for i, label in enumerate(events):
        tp, fn, fp = event_counts(streams, outs, i, thresholds["events"][label], label)
        p = tp / max(1, tp + fp)
        r = tp / max(1, tp + fn)
        per_class[label] = {"tp": tp, "fn": fn, "fp": fp, "precision": p, "recall": r,
                            "f1": 2 * p * r / max(1e-9, p + r)}
    scored = [v for v in per_class.values() if v["tp"] + v["fn"] > 0]
    return {
        "streams": len(streams),
        "hours": sum(s.n_chunks for s in streams) * 0.16 / 3600,
        "events": per_class,
        "event_macro_f1": float(np.mean([v["f1"] for v in scored])) if scored else None,
        "proactive": proactive(streams, outs, thresholds["speak_now"]),
        "captions": captions(streams, outs, model.cfg.vocab, model.cfg.enc_chunk),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.evaluate",
                                description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="held-out split (folder or .npz)")
    p.add_argument("--calibrate-on", type=Path, help="split to calibrate thresholds on (dev)")
    p.add_argument("--target-fa-per-hour", type=float, default=1.0)
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    model, meta = load_checkpoint(args.checkpoint)
    events = list(model.cfg.events)
    result: dict[str, object] = {"checkpoint": str(args.checkpoint)}
    if args.calibrate_on:
        dev, _, _ = load_split(args.calibrate_on)
        thresholds = calibrate(dev, run_model(model, dev, args.threads), events,
                               args.target_fa_per_hour)
        result["thresholds"] = thresholds
    else:
        thresholds = {"speak_now": 0.5, "events": {e: 0.5 for e in events}}
    test, _, _ = load_split(args.data)
    result["test"] = evaluate(model, test, thresholds)
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
