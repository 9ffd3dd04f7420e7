"""Streaming metrics as the runtime policy would score them (numpy only).

``outs`` below is one dict per stream with ``speak`` (C,) and ``events`` (C, E) probabilities,
``ctc`` (C * enc_chunk,) greedy CTC ids and optionally ``intent`` (C,); ``streams`` are
:class:`export.targets.StreamTargets` (anything with ``n_chunks`` and the generator's
``record``).

* **events** (per class, event level): an event is *detected* when ``p_e >= threshold`` at a
  chunk decided between its onset and 0.5 s after its offset; every activation (a run of chunks
  above threshold) that overlaps no event of that class is a false positive.
* **proactive** (speak-now): an activation (rising edge above threshold) inside a response
  window is a hit (one per window); a window with no activation is a miss; any other
  activation is a false alert. F1, false alerts per hour of no-response audio, delays, and
  recall per kind of response (``by_kind``: hazard alerts, keyword alerts, answers,
  acknowledgements), since one speak-now head serves all of them.
* **captions**: CER of greedy CTC over each speech segment (characters of the model alphabet).

The activation rule and edit distance are :mod:`aim_edge.metrics`' (shared with the runtime
evaluation harness), so calibration, evaluation and the runtime score alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from aim_edge.metrics import activations, edit_distance

CHUNK_S = 0.16
DECISION_OFFSET_S = 0.015  # 25 ms window - 10 ms hop: a chunk is decided when its last frame is
HYSTERESIS = 0.1  # aim_edge.policy.PolicyConfig defaults: evaluate what the runtime does
EVENT_REFRACTORY_S = 5.0
SPEAK_REFRACTORY_S = 2.0


def decision_time(k: np.ndarray) -> np.ndarray:
    """Stream time (s) at which chunk ``k`` is decided (see ``export/targets.py``)."""
    return CHUNK_S * (np.asarray(k) + 1) + DECISION_OFFSET_S


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def outputs_to_scores(heads: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Streamed step outputs -> the ``outs`` form the metrics take.

    ``heads``: ``speak_logit`` (C, 1) or (C,), ``event_logits`` (C, E), ``ctc_logprobs``
    (C, enc_chunk, V), ``intent_logits`` (C, I), stacked over the chunks of one stream.
    """
    return {
        "speak": sigmoid(np.asarray(heads["speak_logit"]).reshape(-1)),
        "events": sigmoid(np.asarray(heads["event_logits"]).reshape(
            len(heads["event_logits"]), -1)),
        "ctc": np.asarray(heads["ctc_logprobs"]).argmax(-1).reshape(-1),
        "intent": np.asarray(heads["intent_logits"]).reshape(
            len(heads["intent_logits"]), -1).argmax(-1),
    }


def event_counts(streams, outs, label_index: int, threshold: float, label: str
                 ) -> tuple[int, int, int]:
    """(true positives, false negatives, false positives) of one event label."""
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


def proactive(streams, outs, threshold: float) -> dict[str, Any]:
    """Speak-now scored against the response windows (see the module docstring)."""
    hits = misses = false = 0
    delays, hazard_delays = [], []
    by_kind: dict[str, dict[str, Any]] = {}
    quiet_s = 0.0
    for s, o in zip(streams, outs, strict=True):
        t = decision_time(np.arange(s.n_chunks))
        quiet_s += sum(b - a for a, b in s.record["no_response"])
        onsets = [a for a, _ in activations(o["speak"], threshold,
                                            refractory_s=SPEAK_REFRACTORY_S)]
        claimed = set()
        for r in s.record["responses"]:
            inside = [k for k in onsets if r["earliest"] <= t[k] <= r["latest"]]
            kind = by_kind.setdefault(response_kind(r), {"windows": 0, "hits": 0})
            kind["windows"] += 1
            kind["hits"] += bool(inside)
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
        "by_kind": {k: dict(v, recall=v["hits"] / v["windows"])
                    for k, v in sorted(by_kind.items())},
    }


def response_kind(response: Mapping[str, Any]) -> str:
    """``"<kind>/<trigger type>"`` of a response window, e.g. ``alert/event`` (a hazard),
    ``alert/keyword``, ``answer/question``, ``acknowledge/instruction``."""
    return f"{response.get('kind', '?')}/{response.get('trigger', {}).get('type', '?')}"


def greedy_text(ids: np.ndarray, vocab: Sequence[str]) -> str:
    out, prev = [], -1
    for i in np.asarray(ids).tolist():
        if i != prev and i != 0:
            out.append(vocab[i])
        prev = i
    return " ".join("".join(out).split())


def normalise(text: str, vocab: Sequence[str]) -> str:
    allowed = set(vocab[1:])
    chars = [c if c in allowed else " " for c in text.lower()]
    return " ".join("".join(chars).split())


def captions(streams, outs, vocab: Sequence[str], enc_chunk: int) -> dict[str, float]:
    """CER of greedy CTC per speech segment, and keyword recall in that text."""
    errors = chars = 0
    kw_hits = kw_total = 0
    ec = enc_chunk
    for s, o in zip(streams, outs, strict=True):
        for seg in s.record["speech"]:
            c0 = int(seg["start"] / CHUNK_S)
            c1 = min(s.n_chunks, int(np.ceil((seg["end"] + 0.3) / CHUNK_S)))
            hyp = greedy_text(o["ctc"][c0 * ec:c1 * ec], vocab)
            ref = normalise(seg["transcript"], vocab)
            errors += edit_distance(hyp, ref)
            chars += len(ref)
            for kw in seg.get("keywords") or []:
                kw_total += 1
                kw_hits += kw.lower() in hyp.split()
    out = {"cer": errors / max(1, chars), "reference_chars": chars,
           "keyword_recall_in_greedy_text": kw_hits / max(1, kw_total), "keywords": kw_total}
    if outs and "ctc_logprobs" in outs[0]:
        out.update(keyword_spotting(streams, outs, vocab, enc_chunk))
    return out


def keyword_spotting(streams, outs, vocab: Sequence[str], enc_chunk: int,
                     threshold: float | None = None) -> dict[str, float]:
    """The runtime's CTC keyword spotter (:mod:`aim_edge.kws`) on the instruction keywords.

    Recall: segments whose transcript holds a watched keyword, the spotter run over that
    segment alone. False accepts: every *other* speech segment of the same stream, spotted for
    the stream's keywords that its transcript does not contain; per keyword-hour of speech.
    """
    from aim_edge.kws import DEFAULT_KWS_THRESHOLD, CtcKeywordSpotter

    thr = DEFAULT_KWS_THRESHOLD if threshold is None else threshold
    alphabet = set(vocab[1:])
    hits = total = fas = 0
    kw_hours = 0.0
    ec = enc_chunk
    for s, o in zip(streams, outs, strict=True):
        lp = o["ctc_logprobs"]
        segs = s.record["speech"]
        stream_kws = sorted({k.lower() for seg in segs for k in seg.get("keywords") or []
                             if set(k.lower()) <= alphabet and len(k) >= 2})
        for seg in segs:
            c0 = int(seg["start"] / CHUNK_S)
            c1 = min(s.n_chunks, int(np.ceil((seg["end"] + 0.3) / CHUNK_S)))
            words = set(normalise(seg.get("transcript") or "", vocab).split())
            present = [k for k in stream_kws if k in words]
            absent = [k for k in stream_kws if k not in words]
            for kw in seg.get("keywords") or []:
                kw = kw.lower()
                if kw in stream_kws:
                    total += 1
                    hits += bool(CtcKeywordSpotter(vocab, [kw], threshold=thr)
                                 .accept(lp[c0 * ec:c1 * ec]))
            if absent and not present:
                fired = CtcKeywordSpotter(vocab, absent, threshold=thr).accept(lp[c0 * ec:c1 * ec])
                fas += len({h.keyword for h in fired})
                kw_hours += len(absent) * (c1 - c0) * CHUNK_S / 3600
    return {"kws_threshold": thr, "kws_recall": hits / max(1, total), "kws_keywords": total,
            "kws_false_accepts": fas, "kws_false_accepts_per_keyword_hour":
            fas / kw_hours if kw_hours else 0.0}
