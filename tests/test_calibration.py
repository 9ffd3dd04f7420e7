"""calibration/: threshold calibration for a target false-alert rate, representative stream
choice, captured cache states (numpy only: no model, no torch)."""

from __future__ import annotations

import types

import numpy as np
import pytest

from calibration.metrics import decision_time, event_counts, proactive
from calibration.streams import capture_step_inputs, coverage, select_streams
from calibration.thresholds import (
    calibrate,
    caption_gate_curve,
    choose_caption_confidence,
    choose_confirm,
    operating_curve,
)


def _stream(n_chunks, *, events=(), responses=(), quiet=(), speech=(), sid="s"):
    rec = {"events": [{"label": lab, "onset": a, "offset": b} for lab, a, b in events],
           "responses": [{"earliest": a, "latest": b} for a, b in responses],
           "no_response": list(quiet), "speech": [{"start": a, "end": b, "transcript": "x"}
                                                  for a, b in speech]}
    feats = np.zeros((16 * n_chunks, 4), np.float16)
    return types.SimpleNamespace(id=sid, n_chunks=n_chunks, record=rec, feats=feats,
                                 instruction=np.zeros((n_chunks, 3), np.float32))


def _chunk_at(t):
    """The chunk decided just after stream time t."""
    return int(np.searchsorted(decision_time(np.arange(100000)), t))


def test_calibrate_meets_the_target_rate_and_reports_recall():
    # one hour of audio (22500 chunks): a doorbell event every 10 minutes (6 events), the model
    # gives 0.9 on each; 3 false activations at 0.6 and 2 at 0.8; quiet audio the whole hour
    n = 22500
    events = [("doorbell", 600.0 * i + 100, 600.0 * i + 101) for i in range(6)]
    s = _stream(n, events=events, quiet=[(0.0, 3600.0)])
    p = np.full((n, 1), 0.001)  # below every hysteresis floor (0.01)
    for _, a, _ in events:
        p[_chunk_at(a):_chunk_at(a) + 5, 0] = 0.9
    for t, v in [(300, 0.6), (900, 0.6), (1500, 0.6), (2100, 0.8), (2700, 0.8)]:
        p[_chunk_at(t):_chunk_at(t) + 3, 0] = v
    speak = np.full(n, 0.001)
    outs = [{"events": p, "speak": speak}]

    thr = calibrate([s], outs, ["doorbell"], target_fa_per_hour=1.0)
    # 0.6 gives 5 false/h, 0.8 gives 2/h: only thresholds above 0.8 meet 1/h; all 6 found
    assert 0.8 < thr["events"]["doorbell"] <= 0.9
    assert thr["recall_at_rate"]["events"]["doorbell"] == 1.0
    assert thr["achieved_false_alerts_per_hour"]["events"]["doorbell"] == pytest.approx(0.0)
    assert thr["false_alerts_per_hour"] == 1.0
    assert thr["calibration_hours"] == pytest.approx(1.0)
    tp, fn, fp = event_counts([s], outs, 0, thr["events"]["doorbell"], "doorbell")
    assert (tp, fn, fp) == (6, 0, 0)

    # a looser target admits the 0.8 false alarms but not the 0.6 ones
    loose = calibrate([s], outs, ["doorbell"], target_fa_per_hour=2.0)
    assert 0.6 < loose["events"]["doorbell"] <= 0.8
    assert loose["achieved_false_alerts_per_hour"]["events"]["doorbell"] == pytest.approx(2.0)


def _speak_scene():
    """One hour, 8 response windows: 6 answered at 0.95, 2 at 0.7; three false alerts at
    0.75 in quiet audio. Returns ``(stream, outs)``."""
    n = 22500
    windows = [(100.0 + 400 * i, 103.0 + 400 * i) for i in range(8)]
    s = _stream(n, responses=windows, quiet=[(0.0, 3600.0)])
    speak = np.full(n, 0.001)
    for k, (a, _) in enumerate(windows):
        speak[_chunk_at(a + 0.5):_chunk_at(a + 0.5) + 3] = 0.95 if k < 6 else 0.7
    for t in (50, 1050, 2050):
        speak[_chunk_at(t):_chunk_at(t) + 2] = 0.75
    return s, [{"speak": speak, "events": np.zeros((n, 0))}]


def test_calibrate_speak_now_against_response_windows():
    s, outs = _speak_scene()
    thr = calibrate([s], outs, [], target_fa_per_hour=1.0)
    res = proactive([s], outs, thr["speak_now"])
    assert res["false_alerts"] == 0 and res["hits"] == 6  # 0.7 windows are lost with 0.75 FAs
    assert thr["recall_at_rate"]["speak_now"] == pytest.approx(6 / 8)
    assert thr["achieved_false_alerts_per_hour"]["speak_now"] == 0.0


def test_speak_now_can_have_its_own_false_alert_target_and_a_finer_top_grid():
    s, outs = _speak_scene()
    # 3 false alerts/h are allowed for speak-now alone: the 0.7 windows are answered now
    thr = calibrate([s], outs, [], target_fa_per_hour=1.0, speak_target_fa_per_hour=3.0)
    assert thr["speak_now"] <= 0.7 and thr["recall_at_rate"]["speak_now"] == 1.0
    assert thr["achieved_false_alerts_per_hour"]["speak_now"] == pytest.approx(3.0)
    assert (thr["false_alerts_per_hour"], thr["speak_now_false_alerts_per_hour"]) == (1.0, 3.0)
    # a confident head: everything sits above 0.98, false alerts at 0.99, answers at 0.997;
    # only the speak-now grid reaches above 0.98 to separate them
    outs[0]["speak"] = np.where(outs[0]["speak"] > 0.9, 0.997,
                                np.where(outs[0]["speak"] > 0.72, 0.99, outs[0]["speak"]))
    fine = calibrate([s], outs, [], target_fa_per_hour=1.0)
    assert 0.99 < fine["speak_now"] <= 0.997
    assert proactive([s], outs, fine["speak_now"])["hits"] == 6
    coarse = calibrate([s], outs, [], target_fa_per_hour=1.0,
                       speak_grid=[0.5, 0.9, 0.98])  # the old top: 3 false alerts remain
    assert coarse["achieved_false_alerts_per_hour"]["speak_now"] == pytest.approx(3.0)


def test_operating_curve_trades_recall_for_false_alerts():
    s, outs = _speak_scene()
    curve = operating_curve([s], outs, grid=[0.9, 0.5, 0.72, 0.98])
    assert [p["threshold"] for p in curve] == [0.5, 0.72, 0.9, 0.98]  # ascending
    by_thr = {p["threshold"]: p for p in curve}
    assert (by_thr[0.5]["hits"], by_thr[0.5]["false_alerts"]) == (8, 3)
    assert by_thr[0.5]["false_alerts_per_hour"] == pytest.approx(3.0)
    assert (by_thr[0.72]["hits"], by_thr[0.72]["false_alerts"]) == (6, 3)
    assert (by_thr[0.9]["recall"], by_thr[0.9]["false_alerts_per_hour"]) == (6 / 8, 0.0)
    assert (by_thr[0.98]["hits"], by_thr[0.98]["f1"]) == (0, 0.0)
    # every point is what proactive() says at that threshold
    for p in curve:
        full = proactive([s], outs, p["threshold"])
        assert all(p[k] == full[k] for k in p)


def test_proactive_recall_per_kind_of_response():
    n = 2000
    s = _stream(n, quiet=[(0.0, 320.0)])
    s.record["responses"] = [
        {"earliest": 10.0, "latest": 15.0, "kind": "alert", "trigger": {"type": "event"}},
        {"earliest": 40.0, "latest": 45.0, "kind": "alert", "trigger": {"type": "event"}},
        {"earliest": 70.0, "latest": 72.0, "kind": "answer", "trigger": {"type": "question"}},
        {"earliest": 90.0, "latest": 92.0, "kind": "answer"}]
    speak = np.full(n, 0.001)
    for t in (11.0, 71.0):
        speak[_chunk_at(t):_chunk_at(t) + 2] = 0.9
    res = proactive([s], [{"speak": speak}], 0.5)
    assert res["by_kind"] == {
        "alert/event": {"windows": 2, "hits": 1, "recall": 0.5},
        "answer/?": {"windows": 1, "hits": 0, "recall": 0.0},
        "answer/question": {"windows": 1, "hits": 1, "recall": 1.0}}
    assert sum(v["hits"] for v in res["by_kind"].values()) == res["hits"] == 2


def test_calibrate_rejects_bad_input():
    with pytest.raises(ValueError, match="target_fa_per_hour = 0.*rate > 0"):
        calibrate([_stream(5)], [{}], [], target_fa_per_hour=0)
    with pytest.raises(ValueError, match="speak_target_fa_per_hour = -1.*rate > 0"):
        calibrate([_stream(5)], [{}], [], 1.0, speak_target_fa_per_hour=-1)
    with pytest.raises(ValueError, match="no streams given"):
        calibrate([], [], [], 1.0)


def test_select_streams_covers_every_kind_first():
    a = _stream(100, events=[("siren", 1, 2)], sid="a")
    b = _stream(100, events=[("siren", 3, 4)], sid="b")  # adds nothing new after a
    c = _stream(150, events=[("doorbell", 1, 2)], speech=[(5, 6)], sid="c")
    d = _stream(120, quiet=[(0, 10)], sid="d")
    chosen = select_streams([a, b, c, d], ["siren", "doorbell"], max_chunks=400)
    ids = [s.id for s in chosen]
    assert ids[:3] == ["c", "a", "d"] or ids[:3] == ["c", "d", "a"]
    assert "b" not in ids  # 400 - 370 = 30 < 100: no room
    assert coverage(c, ["siren", "doorbell"])["event:doorbell"] == 1.0
    # room for everything: the redundant stream fills in at the end
    assert [s.id for s in select_streams([a, b, c, d], ["siren", "doorbell"], 10_000)][-1] == "b"
    with pytest.raises(ValueError, match="max_chunks = 0"):
        select_streams([a], ["siren"], 0)


def test_capture_step_inputs_records_real_fed_back_states():
    def step(feeds):  # a running sum of the fbank: the state after k chunks is their sum
        return {"new_acc": feeds["acc"] + feeds["fbank"].sum(axis=1)}

    s1 = _stream(6, sid="one")
    s1.feats = np.arange(6 * 16 * 4, dtype=np.float16).reshape(-1, 4) / 100
    s2 = _stream(3, sid="two")
    s2.feats = np.ones((3 * 16, 4), np.float16)
    init = {"acc": np.zeros((1, 4), np.float32)}
    samples = capture_step_inputs(step, [s1, s2], 16, init, every=2)
    assert len(samples) == 3 + 2  # chunks 0, 2, 4 of s1 and 0, 2 of s2
    f = s1.feats.astype(np.float32).reshape(6, 16, 4)
    np.testing.assert_allclose(samples[1]["acc"][0], f[:2].sum(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose(samples[2]["acc"][0], f[:4].sum(axis=(0, 1)), rtol=1e-6)
    assert samples[2]["acc"].any()  # a real, non-zero state
    np.testing.assert_array_equal(samples[3]["acc"], 0)  # state resets at a new stream
    np.testing.assert_allclose(samples[4]["acc"][0], 32.0)
    assert samples[0]["fbank"].shape == (1, 16, 4)
    assert samples[0]["instruction"].shape == (1, 3)
    assert len(capture_step_inputs(step, [s1, s2], 16, init, max_samples=4)) == 4


def test_choose_confirm_waits_only_where_it_costs_no_detection():
    counts = {
        "smoke_alarm": {1: (31, 1, 27), 2: (31, 1, 17)},  # dev2 through the runtime
        "co_alarm": {1: (16, 16, 11), 2: (14, 18, 8)},  # loses 2 hazards: stays at 1
        "doorbell": {1: (4, 4, 1), 2: (4, 4, 1)},  # no gain: the earlier alert
        "bell": {1: (6, 12, 8), 2: (6, 12, 7), 3: (6, 12, 7)},  # tie: fewer chunks
        "quiet": {1: (0, 0, 0), 2: (0, 0, 0)},
    }
    assert choose_confirm(counts) == {"smoke_alarm": 2, "co_alarm": 1, "doorbell": 1,
                                      "bell": 2, "quiet": 1}
    with pytest.raises(ValueError, match="no count for 1 chunk"):
        choose_confirm({"siren": {2: (1, 0, 0)}})


def test_caption_gate_drops_the_most_non_speech_within_the_speech_budget():
    # (confidence, characters, over speech, over a sound): speech is sure except one
    # 10-letter guess at 0.55 over a sound and one at 0.45 over none (kept at any threshold);
    # the letters over sirens sit at 0.40-0.60, one guess over no sound is never dropped
    caps = ([(0.8, 40, True, False)] * 9 + [(0.55, 10, True, True), (0.45, 10, True, False)]
            + [(0.40, 4, False, True), (0.50, 3, False, True), (0.60, 5, False, True),
               (0.35, 2, False, False)])
    grid = [0.3, 0.45, 0.52, 0.56, 0.62]
    curve = caption_gate_curve(caps, grid)
    assert [r["nonspeech_dropped"] for r in curve] == [0, 1, 2, 2, 3]
    assert [r["nonspeech"] for r in curve] == [4] * 5
    assert [r["speech_dropped"] for r in curve] == [0, 0, 0, 1, 1]
    assert curve[3]["speech_chars_lost"] == pytest.approx(10 / 380)
    # 10 of 380 speech letters = 2.6 %: a 2 % budget stops below 0.55, a 3 % one above it
    assert choose_caption_confidence(caps, 0.02, grid)[0] == 0.52
    assert choose_caption_confidence(caps, 0.03, grid)[0] == 0.62
    # a budget of 0 keeps every speech caption; if even the lowest value loses speech: off
    assert choose_caption_confidence(caps, 0.0, grid)[0] == 0.52
    assert choose_caption_confidence([(0.2, 5, True, True), (0.9, 5, True, True)], 0.0,
                                     grid)[0] == 0.0
    with pytest.raises(ValueError, match="no caption lies over labelled speech"):
        choose_caption_confidence([(0.4, 3, False, True)])
    with pytest.raises(ValueError, match="max_speech_loss = 1.5"):
        choose_caption_confidence(caps, 1.5)
