"""Threshold calibration for a target false-alert rate per hour (default 1/h).

:func:`choose_confirm` picks each label's confirmation (chunks at or above threshold before a
sound alerts) from counts measured through the runtime (``python -m export.confirm``).

On a dev split (never the test split), pick the speak-now threshold and each event threshold
with the best recall whose false-alert rate stays within the target, using exactly the
activation rule of the runtime policy (:mod:`calibration.metrics`). The result is what the
bundle manifest's ``thresholds`` holds: the thresholds, the rate they were chosen for, the
rate each one achieves and its recall at that rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .metrics import CHUNK_S, event_counts, proactive

#: What :func:`operating_curve` keeps of each :func:`~calibration.metrics.proactive` point.
CURVE_KEYS = ("threshold", "hits", "misses", "false_alerts", "precision", "recall", "f1",
              "false_alerts_per_hour", "alert_delay_median_s", "by_kind")

#: Candidate thresholds: coarse in the middle, fine near 1 where calibrated thresholds sit.
GRID = np.round(np.concatenate([np.arange(0.1, 0.9, 0.05), np.arange(0.9, 0.999, 0.02)]), 4)
#: Speak-now candidates: GRID plus 0.99 to 0.998. A confident speak-now head (v0.7, fine-tuned
#: on a GPU) still makes 12.6 false alerts per hour of dev2 at 0.98 and 3.6 at 0.995, with
#: recall 0.38 there, where v0.3 had 0.34 at 0.98 (4.2/h). Event thresholds keep GRID: on the
#: 0.5 h dev split the higher values cost event F1 on dev2 (v0.7: 0.56 -> 0.47).
SPEAK_GRID = np.round(np.concatenate([GRID, [0.99, 0.995, 0.998]]), 4)
DEFAULT_TARGET_FA_PER_HOUR = 1.0


def calibrate(streams, outs, events: Sequence[str],
              target_fa_per_hour: float = DEFAULT_TARGET_FA_PER_HOUR,
              grid: Sequence[float] = GRID,
              speak_grid: Sequence[float] = SPEAK_GRID,
              speak_target_fa_per_hour: float | None = None) -> dict[str, Any]:
    """Thresholds for ``target_fa_per_hour`` on ``streams`` scored as ``outs``: speak-now from
    ``speak_grid`` (for ``speak_target_fa_per_hour`` when given, else the same target), each
    event label from ``grid``.

    Returns ``{speak_now, events: {label: thr}, false_alerts_per_hour (the target),
    achieved_false_alerts_per_hour: {speak_now, events: {label}}, recall_at_rate: {speak_now,
    events: {label: recall or None when dev has no such event}}, calibration_hours}``. When no
    threshold meets the target, the highest grid value is used and its achieved rate (above
    the target) is reported, never hidden.
    """
    speak_target = (target_fa_per_hour if speak_target_fa_per_hour is None
                    else speak_target_fa_per_hour)
    for name, rate in (("target_fa_per_hour", target_fa_per_hour),
                       ("speak_target_fa_per_hour", speak_target)):
        if not rate > 0:
            raise ValueError(f"{name} = {rate!r}: give a rate > 0 (false alerts per hour, "
                             "e.g. 1.0)")
    if not streams:
        raise ValueError("calibrate: no streams given; pass a dev split with at least one stream")
    grid = [float(g) for g in grid]
    speak_grid = sorted(float(g) for g in speak_grid)
    hours = sum(s.n_chunks for s in streams) * CHUNK_S / 3600
    best_speak = None
    for thr in speak_grid:
        res = proactive(streams, outs, thr)
        if res["false_alerts_per_hour"] <= speak_target:
            if best_speak is None or res["recall"] > best_speak["recall"]:
                best_speak = res
    if best_speak is None:
        best_speak = proactive(streams, outs, speak_grid[-1])
    ev_thr, ev_recall, ev_rate = {}, {}, {}
    for i, label in enumerate(events):
        chosen, chosen_recall, chosen_rate = grid[-1], None, None
        for thr in grid:
            tp, fn, fp = event_counts(streams, outs, i, thr, label)
            rate = fp / max(1e-9, hours)
            if rate <= target_fa_per_hour:
                recall = tp / max(1, tp + fn) if tp + fn else None
                if chosen_recall is None or (recall or 0) > chosen_recall:
                    chosen, chosen_recall, chosen_rate = thr, recall or 0.0, rate
                    if tp + fn == 0:
                        break
        if chosen_rate is None:  # nothing met the target: report what the top value does
            tp, fn, fp = event_counts(streams, outs, i, chosen, label)
            chosen_rate = fp / max(1e-9, hours)
            chosen_recall = tp / max(1, tp + fn) if tp + fn else None
        ev_thr[label] = chosen
        ev_recall[label] = chosen_recall
        ev_rate[label] = chosen_rate
    return {"speak_now": float(best_speak["threshold"]), "events": ev_thr,
            "false_alerts_per_hour": target_fa_per_hour,
            "speak_now_false_alerts_per_hour": speak_target,
            "achieved_false_alerts_per_hour": {
                "speak_now": best_speak["false_alerts_per_hour"], "events": ev_rate},
            "recall_at_rate": {"speak_now": best_speak["recall"], "events": ev_recall},
            "calibration_hours": hours}


def operating_curve(streams, outs, grid: Sequence[float] = SPEAK_GRID) -> list[dict[str, Any]]:
    """Speak-now scored at every threshold of ``grid`` (ascending): recall, precision, F1 and
    false alerts per hour of no-response audio at each. Shows whether a model misses a target
    because its scores do not separate (the curve never reaches it) or only because of where
    the threshold sits (a point on the curve does)."""
    return [{k: proactive(streams, outs, float(thr))[k] for k in CURVE_KEYS}
            for thr in sorted(float(g) for g in grid)]


#: Confirmations ``python -m export.confirm`` tries by default: each chunk delays an alert 0.16 s.
MAX_CONFIRM_CHUNKS = 2


def choose_confirm(counts: dict[str, dict[int, tuple[int, int, int]]]) -> dict[str, int]:
    """Per label, the confirmation to ship from ``{label: {chunks: (tp, fn, fp)}}`` measured on
    a dev split (``chunks`` = 1 must be among them).

    Rule: among the confirmations that keep every true detection that 1 chunk makes, the one
    with the fewest false positives; on a tie the fewer chunks (the earlier alert). So a label
    waits for a second chunk only where the dev split shows that it removes false alerts and
    costs no detection -- a hazard is never traded for fewer false alarms. Detections are
    compared as counts, and any false positive fewer counts: a label that detects nothing on
    the split (``tp`` 0) waits whenever that removes a false alert, and a one-alert gain in a
    small split is enough (each wait costs one chunk of delay, 0.16 s, nothing else).
    """
    out = {}
    for label, by_n in counts.items():
        if 1 not in by_n:
            raise ValueError(f"choose_confirm: {label!r} has no count for 1 chunk (the"
                             " reference); measured: " + ", ".join(map(str, sorted(by_n))))
        tp1 = by_n[1][0]
        keep = [n for n in sorted(by_n) if by_n[n][0] >= tp1]
        out[label] = min(keep, key=lambda n: (by_n[n][2], n))
    return out


#: Re-arm pauses ``python -m export.rearm`` tries (seconds; the first is the reference, the
#: runtime's default :class:`aim_edge.policy.PolicyConfig` ``rearm_s``).
REARM_GRID = (3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0)


def choose_rearm(counts: dict[str, dict[float, tuple[int, int, int]]], reference: float
                 ) -> dict[str, float]:
    """Per label, the re-arm pause to ship from ``{label: {seconds: (hit, missed, extra)}}``
    measured on a dev split (``reference`` must be among the pauses): ``hit`` sounds alerted
    inside their response window, ``extra`` alerts inside none (a sound announced again after
    a pause, or no such sound at all).

    Rule: among the pauses that keep every sound the reference pause alerts in time, the one
    with the fewest extra alerts; on a tie the shortest (two sounds stay two sounds as often as
    possible). A longer pause joins a sound to the one before it, so it can only lose hits; it
    is taken only where the dev split shows that it removes repeated alerts and loses none.
    """
    out = {}
    for label, by_r in counts.items():
        if reference not in by_r:
            raise ValueError(f"choose_rearm: {label!r} has no count for the reference pause "
                             f"{reference:g} s; measured: "
                             + ", ".join(f"{r:g}" for r in sorted(by_r)))
        hits = by_r[reference][0]
        keep = [r for r in sorted(by_r) if by_r[r][0] >= hits]
        out[label] = float(min(keep, key=lambda r: (by_r[r][2], r)))
    return out


#: Caption-confidence candidates: mean letter posteriors (v0.8: speech captions have a median
#: of 0.78, captions over sirens and beeps 0.49).
CAPTION_GRID = np.round(np.arange(0.30, 0.801, 0.02), 4)
#: Share of speech captions' characters the caption gate may drop (2 %).
DEFAULT_MAX_SPEECH_LOSS = 0.02


def caption_gate_curve(captions: Sequence[tuple[float, int, bool, bool]],
                       grid: Sequence[float] = CAPTION_GRID) -> list[dict[str, Any]]:
    """For each threshold of ``grid``: what the runtime's caption gate removes at it. Per final
    caption of dev scenes, ``captions`` holds ``(confidence, characters, over_speech,
    over_sound)``: ``over_speech`` = it lies mostly over labelled speech, ``over_sound`` = its
    letters came while a sound was active. The gate drops a caption over a sound whose
    confidence is below the threshold (:class:`aim_edge.policy.PolicyConfig`)."""
    conf = np.array([c[0] for c in captions], np.float64)
    chars = np.array([c[1] for c in captions], np.int64)
    speech = np.array([c[2] for c in captions], bool)
    sound = np.array([c[3] for c in captions], bool)
    total = max(int(chars[speech].sum()), 1)
    rows = []
    for thr in sorted(float(g) for g in grid):
        drop = sound & (conf < thr)
        rows.append({"threshold": thr,
                     "nonspeech_dropped": int((drop & ~speech).sum()),
                     "nonspeech": int((~speech).sum()),
                     "speech_dropped": int((drop & speech).sum()),
                     "speech": int(speech.sum()),
                     "speech_chars_lost": float(chars[drop & speech].sum() / total)})
    return rows


def choose_caption_confidence(captions: Sequence[tuple[float, int, bool, bool]],
                              max_speech_loss: float = DEFAULT_MAX_SPEECH_LOSS,
                              grid: Sequence[float] = CAPTION_GRID
                              ) -> tuple[float, list[dict[str, Any]]]:
    """The highest threshold of ``grid`` that drops at most ``max_speech_loss`` of the
    characters of captions over speech (so it drops the most captions over no speech), and
    the curve it was read from (:func:`caption_gate_curve`). 0.0 when even the lowest
    threshold loses more."""
    if not 0.0 <= max_speech_loss < 1.0:
        raise ValueError(f"max_speech_loss = {max_speech_loss!r}: give a share in [0, 1),"
                         " e.g. 0.02")
    if not any(c[2] for c in captions):
        raise ValueError("choose_caption_confidence: no caption lies over labelled speech;"
                         " give dev scenes with speech (python -m export.data build --split"
                         " dev)")
    curve = caption_gate_curve(captions, grid)
    ok = [r["threshold"] for r in curve if r["speech_chars_lost"] <= max_speech_loss]
    return (max(ok) if ok else 0.0), curve
