"""The evaluation metrics (aim_edge.metrics + benchmarks.eval scoring) on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from aim_edge.metrics import (
    activations,
    alerts,
    edit_distance,
    error_rate,
    mask_f1,
    score_events,
    score_responses,
    spans_to_mask,
)
from benchmarks.eval.runtime import SceneRun, asr_pairs, proactive
from benchmarks.eval.sets import Scene, no_response_of


def test_wer_of_one_substitution_in_three_words_is_exactly_one_third():
    res = asr_pairs(["The cat sat."], ["the dog sat"])
    assert res["word_errors"] == 1 and res["words"] == 3
    assert res["wer"] == pytest.approx(1 / 3, abs=0)


def test_cer_counts_characters_and_numbers_are_spelled_out():
    # "press 1" and "press one" are the same words after normalisation
    assert asr_pairs(["Press 1."], ["press one"])["wer"] == 0.0
    res = error_rate([("abc", "abd"), ("xy", "")])
    assert (res["errors"], res["units"]) == (3, 5)
    assert edit_distance(["a", "b"], ["b"]) == 1


def test_activation_is_one_run_with_hysteresis_and_refractory_merge():
    p = np.array([0.0, 0.9, 0.85, 0.75, 0.95, 0.1, 0.0, 0.9, 0.0])
    # 0.75 stays above off = 0.7: one run [1, 5); the run at 7 starts 6 chunks later
    assert activations(p, 0.8, hysteresis=0.1) == [(1, 5), (7, 8)]
    # with a 5 s refractory (31 chunks) the second run merges into the first
    assert activations(p, 0.8, hysteresis=0.1, refractory_s=5.0) == [(1, 8)]


def test_activation_merge_by_rearm_gap_mirrors_the_runtime_policy():
    # runs [1, 3) and [5, 7): 2 quiet chunks (0.32 s) between; then [30, 31) after 23 chunks
    p = np.zeros(40)
    p[[1, 2, 5, 6, 30]] = 0.9
    assert activations(p, 0.8) == [(1, 3), (5, 7), (30, 31)]
    # rearm 0.5 s: the 0.32 s pause continues the sound, the 3.7 s one does not
    assert activations(p, 0.8, rearm_s=0.5) == [(1, 7), (30, 31)]
    assert activations(p, 0.8, rearm_s=4.0) == [(1, 31)]
    assert activations(p, 0.8, rearm_s=0.3) == activations(p, 0.8)  # 0.32 s >= 0.3 s


def test_confirmation_drops_lone_spikes_and_fires_at_the_confirming_chunk():
    p = np.zeros(80)
    p[3] = 0.9  # a lone spike
    p[30:36] = [0.85, 0.75, 0.9, 0.9, 0.9, 0.9]  # a sound: its 2nd chunk above 0.8 is 32
    p[[60, 65]] = 0.9  # two one-chunk beeps 0.8 s apart: one sound under rearm_s 3
    assert alerts(p, 0.8) == [(3, 3, 4), (30, 30, 36), (60, 60, 61), (65, 65, 66)]
    # without the re-arm gap each beep is a sound of its own, never confirmed
    assert alerts(p, 0.8, confirm_chunks=2) == [(30, 32, 36)]
    assert alerts(p, 0.8, rearm_s=3.0, confirm_chunks=2) == [(30, 32, 36), (60, 65, 66)]
    assert activations(p, 0.8, rearm_s=3.0, confirm_chunks=2) == [(30, 36), (60, 66)]
    assert alerts(p, 0.8, rearm_s=3.0, confirm_chunks=3) == [(30, 33, 36)]
    with pytest.raises(ValueError, match="confirm_chunks = 0"):
        alerts(p, 0.8, confirm_chunks=0)


def test_response_one_chunk_after_the_window_is_late_not_a_hit():
    window = [{"earliest": 1.0, "latest": 2.0}]
    on_time = score_responses(window, [2.0])
    assert (on_time["hits"], on_time["late"], on_time["false_alerts"]) == (1, 0, 0)
    late = score_responses(window, [2.0 + 0.16])
    assert (late["hits"], late["late"], late["misses"], late["false_alerts"]) == (0, 1, 0, 0)
    assert late["outcomes"][0]["delay_s"] == pytest.approx(1.16)
    # past the grace period it is a miss plus a false alert
    way_late = score_responses(window, [4.5], late_grace_s=2.0)
    assert (way_late["misses"], way_late["false_alerts"]) == (1, 1)


def test_a_long_false_activation_is_counted_once():
    p = np.array([0.0, 0.99, 0.99, 0.99, 0.99, 0.99, 0.0, 0.0])
    runs = activations(p, 0.9)
    assert runs == [(1, 6)]
    res = score_responses([], [0.16 * (a + 1) for a, _ in runs])
    assert res["false_alerts"] == 1
    # and as an event false positive
    ev = score_events([], [(0.3, 1.0)], "siren")
    assert (ev["tp"], ev["fn"], ev["fp"]) == (0, 0, 1)


def test_event_detection_delay_and_tolerance():
    ref = [{"label": "siren", "onset": 2.0, "offset": 4.0},
           {"label": "siren", "onset": 10.0, "offset": 11.0},
           {"label": "doorbell", "onset": 3.0, "offset": 3.5}]
    dets = [(2.495, 3.0), (11.4, 11.6), (20.0, 21.0)]  # second: 0.4 s after offset counts
    s = score_events(ref, dets, "siren")
    assert (s["tp"], s["fn"], s["fp"]) == (2, 0, 1)
    assert s["delays"] == pytest.approx([0.495, 1.4])
    assert score_events(ref, dets, "siren", tolerance_s=0.3)["tp"] == 1


def test_frame_f1_of_speech_masks():
    ref = spans_to_mask([(0.0, 1.0)], 2.0)
    hyp = spans_to_mask([(0.5, 1.5)], 2.0)
    res = mask_f1(ref, hyp)
    assert (res["tp"], res["fp"], res["fn"]) == (50, 50, 50)
    assert res["f1"] == pytest.approx(0.5)


def _run(scene: Scene, alerts: list[float], answers: list[float]) -> SceneRun:
    return SceneRun(scene, [], [{"t": t} for t in alerts], [{"t": t} for t in answers],
                    np.zeros((0, 1)), np.zeros(0), np.zeros(0), 0.0, 0.0)


def test_proactive_counts_hits_late_false_and_missed_hazards_by_instruction():
    dur = 3600.0
    responses = [
        {"earliest": 10.0, "latest": 15.0, "kind": "alert",
         "trigger": {"type": "event", "reason": "safety"}},
        {"earliest": 100.0, "latest": 102.0, "kind": "answer", "trigger": {"type": "question"}},
        {"earliest": 200.0, "latest": 205.0, "kind": "alert",
         "trigger": {"type": "event", "reason": "safety"}},
    ]
    instructions = [{"start": 0.0, "end": 150.0, "meaning": {"intent": "none"}},
                    {"start": 150.0, "end": dur, "meaning": {"intent": "watch_events"}}]
    scene = Scene("s", np.zeros(16), [], [], instructions, responses,
                  no_response_of(responses, dur))
    # hazard 1 on time; the answer 0.16 s late; hazard 2 missed; one false alert at 1000 s
    res = proactive([_run(scene, [11.0, 1000.0], [102.16])])
    assert (res["hits"], res["late"], res["misses"], res["false_alerts"]) == (1, 1, 1, 1)
    assert res["hazards"]["missed"] == 1 and res["hazards"]["windows"] == 2
    assert res["precision"] == pytest.approx(1 / 3) and res["recall"] == pytest.approx(1 / 3)
    quiet_h = (dur - 5 - 2 - 5) / 3600
    assert res["false_alerts_per_hour"] == pytest.approx(1 / quiet_h)
    by = res["by_instruction"]
    assert by["none"]["windows"] == 2 and by["none"]["false_alerts"] == 0
    assert by["watch_events"]["misses"] == 1 and by["watch_events"]["false_alerts"] == 1
