"""Evaluation metrics shared by the torch-side evaluator and the runtime harness (numpy only).

``export/evaluate.py`` (full-sequence torch model) and ``python -m benchmarks.eval`` (the
runtime in streaming mode) score with these same functions, so their numbers mean the same
thing. Nothing here imports torch or runs a model; the runtime never imports this module.

Conventions: times in seconds of stream time; a chunk is 160 ms; probabilities in [0, 1].

* :func:`activations` -- alerts as the runtime policy raises them from per-chunk
  probabilities (threshold ``on``, hysteresis ``off = on - h``, refractory merge, one alert
  per sound, confirmation); :func:`alerts` adds the chunk each alert fires at.
* :func:`edit_distance`, :func:`error_rate` -- WER / CER as total edits over reference length.
* :func:`score_events` -- event-level detection of one label: a reference event is detected by
  an activation overlapping ``[onset, offset + tolerance]``; an activation overlapping no event
  of that label is one false positive; delay = activation start - onset.
* :func:`score_responses` -- speak-now timing against response windows: on time inside
  ``[earliest, latest]`` (one hit per window), *late* when the first response after a missed
  window comes within ``late_grace_s`` after ``latest``, anything else is one false alert.
* :func:`mask_f1` -- frame-level precision / recall / F1 of a boolean activity mask.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "CHUNK_S",
    "activations",
    "alerts",
    "edit_distance",
    "error_rate",
    "mask_f1",
    "percentiles",
    "prf",
    "score_events",
    "score_responses",
    "spans_to_mask",
]

CHUNK_S = 0.16
#: Time comparisons (refractory, re-arm) tolerate this much float error; chunk times are sums
#: of 0.16 s steps. :mod:`aim_edge.policy` uses this same constant.
TIME_EPS_S = 1e-6


def activations(p: np.ndarray, threshold: float, hysteresis: float = 0.1,
                refractory_s: float = 0.0, chunk_s: float = CHUNK_S, rearm_s: float = 0.0,
                confirm_chunks: int = 1) -> list[tuple[int, int]]:
    """Alerts as the runtime policy raises them: ``[start, end)`` chunk runs.

    A run starts at the first chunk with ``p >= threshold`` and lasts until ``p`` falls below
    ``max(threshold - hysteresis, 0.01)``; a run starting within ``refractory_s`` of the
    previous reported alert, or less than ``rearm_s`` after the previous run ended (the same
    sound continuing: :class:`aim_edge.policy.PolicyConfig` ``rearm_s``), is merged into it
    (the runtime would not alert again). A sound with fewer than ``confirm_chunks`` chunks at
    or above ``threshold`` never alerts and is dropped (manifest
    ``thresholds.confirm_chunks``). :func:`alerts` also gives the chunk each alert fires at.
    """
    return [(a, b) for a, _, b in alerts(p, threshold, hysteresis, refractory_s, chunk_s,
                                         rearm_s, confirm_chunks)]


def alerts(p: np.ndarray, threshold: float, hysteresis: float = 0.1,
           refractory_s: float = 0.0, chunk_s: float = CHUNK_S, rearm_s: float = 0.0,
           confirm_chunks: int = 1) -> list[tuple[int, int, int]]:
    """``(start, alert, end)`` per alert: the sound's first chunk, the chunk the runtime alerts
    at, and the end (exclusive) of the sound and of any later sound the refractory time kept
    silent.

    Mirrors :class:`aim_edge.policy.DecisionPolicy` for a label that is always allowed (a
    safety label): hysteresis runs; runs less than ``rearm_s`` apart are one sound; a sound
    alerts at its first active chunk that is at or after its ``confirm_chunks``-th chunk at or
    above ``threshold`` and at least ``refractory_s`` after the previous alert; a sound with no
    such chunk never alerts (kept silent by the refractory time, its span joins the previous
    alert's; never confirmed, it is dropped). ``tests/test_runtime_policy.py`` drives both on
    the same random scores.
    """
    if isinstance(confirm_chunks, bool) or not isinstance(confirm_chunks, (int, np.integer)) \
            or confirm_chunks < 1:
        raise ValueError(f"confirm_chunks = {confirm_chunks!r}: give a whole number >= 1")
    off = max(threshold - hysteresis, 0.01)
    values = np.asarray(p, np.float64).reshape(-1)
    # hysteresis runs [start, end), then sounds: lists of runs less than rearm_s apart
    runs: list[tuple[int, int]] = []
    active, start = False, 0
    for k, value in enumerate(values.tolist()):
        if not active and value >= threshold:
            active, start = True, k
        elif active and value < off:
            active = False
            runs.append((start, k))
    if active:
        runs.append((start, len(values)))
    sounds: list[list[tuple[int, int]]] = []
    for a, b in runs:
        if sounds and (a - sounds[-1][-1][1]) * chunk_s < rearm_s - TIME_EPS_S:
            sounds[-1].append((a, b))
        else:
            sounds.append([(a, b)])
    out: list[tuple[int, int, int]] = []
    last_fire: int | None = None
    for sound in sounds:
        a, b = sound[0][0], sound[-1][1]
        above = [k for r0, r1 in sound for k in range(r0, r1) if values[k] >= threshold]
        if len(above) < confirm_chunks:
            continue  # never confirmed: no alert
        confirmed = above[confirm_chunks - 1]
        fire = next((k for r0, r1 in sound for k in range(max(r0, confirmed), r1)
                     if last_fire is None
                     or (k - last_fire) * chunk_s >= refractory_s - TIME_EPS_S), None)
        if fire is None:  # the refractory time kept it silent while it lasted
            out[-1] = (out[-1][0], out[-1][1], b)
            continue
        out.append((a, fire, b))
        last_fire = fire
    return out


def edit_distance(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Levenshtein distance between two sequences (characters of a string, words, tokens)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def error_rate(pairs: Iterable[tuple[Sequence[Any], Sequence[Any]]]) -> dict[str, float]:
    """Corpus error rate of ``(reference, hypothesis)`` unit sequences: total edits over total
    reference units (WER with word lists, CER with strings)."""
    errors = units = 0
    for ref, hyp in pairs:
        errors += edit_distance(ref, hyp)
        units += len(ref)
    return {"errors": errors, "units": units, "rate": errors / max(units, 1)}


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall, F1 (0 where undefined) with the counts."""
    p = tp / max(1, tp + fp)
    r = tp / max(1, tp + fn)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r,
            "f1": 2 * p * r / max(1e-9, p + r)}


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """Median and p95 (None for no values)."""
    if not len(values):
        return {"median": None, "p95": None, "n": 0}
    a = np.asarray(values, np.float64)
    return {"median": float(np.median(a)), "p95": float(np.percentile(a, 95)), "n": int(a.size)}


def score_events(reference: Sequence[Mapping[str, Any]], detections: Sequence[tuple[float, float]],
                 label: str, tolerance_s: float = 0.5) -> dict[str, Any]:
    """Event-level score of one label.

    Parameters
    ----------
    reference : events with ``label``, ``onset``, ``offset`` (seconds); other labels ignored.
    detections : ``(start_s, end_s)`` of each activation of ``label`` (decision times of its
        first and last chunk).
    tolerance_s : a detection up to this long after the offset still counts.

    Returns tp / fn / fp counts and the delays (first overlapping detection start - onset,
    clipped at 0) of the detected events.
    """
    used = [False] * len(detections)
    tp = fn = 0
    delays: list[float] = []
    for ev in reference:
        if ev["label"] != label:
            continue
        first = None
        for i, (a, b) in enumerate(detections):
            if a <= ev["offset"] + tolerance_s and b >= ev["onset"]:
                used[i] = True
                first = a if first is None else min(first, a)
        if first is None:
            fn += 1
        else:
            tp += 1
            delays.append(max(0.0, first - ev["onset"]))
    return {"tp": tp, "fn": fn, "fp": used.count(False), "delays": delays}


def score_responses(windows: Sequence[Mapping[str, Any]], times: Sequence[float],
                    late_grace_s: float = 2.0) -> dict[str, Any]:
    """Score spoken responses (alert / answer times, seconds) against response windows.

    Each window (``earliest``, ``latest``) is *hit* by the first response inside it (one hit
    per window; further responses inside any window are not false alerts). A missed window
    whose first response after ``latest`` comes within ``late_grace_s`` is *late* (one per
    window): a miss for recall and not counted as a false alert. Every other response is one
    false alert. Returns counts, per-window outcomes (``hit`` / ``late`` / ``miss`` with the
    delay after ``earliest``) and the false-alert times.
    """
    times = sorted(float(t) for t in times)
    claimed = [False] * len(times)
    outcome: list[dict[str, Any]] = []
    for w in windows:
        inside = [i for i, t in enumerate(times) if w["earliest"] <= t <= w["latest"]]
        for i in inside:
            claimed[i] = True
        if inside:
            outcome.append({"outcome": "hit", "delay_s": times[inside[0]] - w["earliest"]})
        else:
            outcome.append({"outcome": "miss", "delay_s": None})
    for w, o in zip(windows, outcome, strict=True):
        if o["outcome"] != "miss":
            continue
        after = [i for i, t in enumerate(times)
                 if not claimed[i] and w["latest"] < t <= w["latest"] + late_grace_s]
        if after:
            claimed[after[0]] = True
            o["outcome"] = "late"
            o["delay_s"] = times[after[0]] - w["earliest"]
    hits = sum(o["outcome"] == "hit" for o in outcome)
    late = sum(o["outcome"] == "late" for o in outcome)
    false_times = [t for t, c in zip(times, claimed, strict=True) if not c]
    return {"windows": len(windows), "hits": hits, "late": late,
            "misses": len(windows) - hits - late, "false_alerts": len(false_times),
            "false_alert_times": false_times, "outcomes": outcome}


def spans_to_mask(spans: Iterable[tuple[float, float]], duration_s: float,
                  frame_s: float = 0.01) -> np.ndarray:
    """Boolean activity per ``frame_s`` frame from ``(start_s, end_s)`` spans."""
    n = int(np.ceil(duration_s / frame_s))
    mask = np.zeros(n, bool)
    for a, b in spans:
        i0, i1 = max(0, int(np.floor(a / frame_s))), min(n, int(np.ceil(b / frame_s)))
        if i1 > i0:
            mask[i0:i1] = True
    return mask


def mask_f1(reference: np.ndarray, hypothesis: np.ndarray) -> dict[str, float]:
    """Frame-level precision / recall / F1 of two boolean masks (the shorter length wins)."""
    n = min(len(reference), len(hypothesis))
    ref, hyp = np.asarray(reference[:n], bool), np.asarray(hypothesis[:n], bool)
    out = prf(int(np.sum(ref & hyp)), int(np.sum(~ref & hyp)), int(np.sum(ref & ~hyp)))
    out["frames"] = n
    return out
