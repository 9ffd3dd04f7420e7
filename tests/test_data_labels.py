"""export.data: the labels agree with the audio, and response targets follow the rules."""

import shutil
from dataclasses import replace

import numpy as np
import pytest

from export.data import hazards, scene
from export.data.labels import SAFETY_LABELS

SR = 16000


def _require(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}: apt-get install {' '.join(missing)}")


DRY = scene.SceneConfig(p_background=0.0, p_reverb=0.0, p_telephone=0.0, p_babble=0.0,
                        p_event_overlap=0.0)


def _mask(n, intervals, pad=0.0):
    m = np.zeros(n, bool)
    for a, b in intervals:
        m[max(0, int((a - pad) * SR)): int(np.ceil((b + pad) * SR))] = True
    return m


def _rms_db(x):
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-12)


def test_events_sound_exactly_inside_their_labels():
    _require("espeak-ng", "sox")
    cfg = replace(DRY, speech=False, events_per_minute=8.0, engines=("espeak-ng",))
    n_events = 0
    for index in range(2):
        audio, rec = scene.make_stream("train", 3, index, 40.0, cfg, None)
        events = rec["events"]
        assert events, "an event-only stream has events"
        n_events += len(events)
        x = audio.astype(np.float64)
        inside = _mask(x.size, [(e["onset"], e["offset"]) for e in events], pad=0.002)
        # nothing outside the labelled intervals (no background, no reverb)
        assert np.max(np.abs(x[~inside]), initial=0) <= 1
        for e in events:
            a, b = int(e["onset"] * SR), int(e["offset"] * SR)
            seg = x[a:b]
            assert _rms_db(seg) > 20, e  # clearly audible (int16 units)
            # tight: the first and last 30 ms of the label hold sound
            assert np.max(np.abs(seg[: int(0.03 * SR)])) > 2, ("onset not tight", e)
            assert np.max(np.abs(seg[-int(0.03 * SR):])) > 2, ("offset not tight", e)
    assert n_events >= 3


def test_smoke_alarm_band_energy_is_inside_its_label_with_noise_and_reverb():
    _require("espeak-ng", "sox")
    cfg = replace(scene.SceneConfig(), speech=False, p_background=1.0, p_babble=0.0,
                  p_reverb=1.0, p_telephone=0.0, event_labels=("smoke_alarm",),
                  events_per_minute=3.0, event_snr_db=(10.0, 20.0), engines=("espeak-ng",))
    audio, rec = scene.make_stream("test", 5, 0, 40.0, cfg, None)
    assert rec["events"] and all(e["label"] == "smoke_alarm" for e in rec["events"])
    x = audio.astype(np.float64)
    frame = 800  # 50 ms
    n = x.size // frame
    spec = np.abs(np.fft.rfft(x[: n * frame].reshape(n, frame), axis=1)) ** 2
    f = np.fft.rfftfreq(frame, 1 / SR)
    band = spec[:, (f >= 2800) & (f <= 3600)].sum(axis=1)
    t = (np.arange(n) + 0.5) * frame / SR
    on = np.zeros(n, bool)
    near = np.zeros(n, bool)
    for e in rec["events"]:
        on |= (t >= e["onset"]) & (t <= e["offset"])
        near |= (t >= e["onset"] - 0.1) & (t <= e["offset"] + 1.0)  # reverb tail
    outside = band[~near]
    # T3 beeps fill half the labelled time: the loudest half of the label's frames vs the
    # loudest outside frame
    inside_top = np.sort(band[on])[-max(1, on.sum() // 3):]
    assert 10 * np.log10(inside_top.mean() / outside.max()) > 6


def test_speech_is_where_the_transcript_says():
    _require("espeak-ng", "flite", "sox")
    cfg = replace(DRY, events=False, engines=("espeak-ng", "flite"), p_instruction=0.0,
                  p_instruction_change=0.0)
    audio, rec = scene.make_stream("dev", 11, 0, 30.0, cfg, None)
    segs = rec["speech"]
    assert len(segs) >= 3
    x = audio.astype(np.float64)
    inside = _mask(x.size, [(s["start"], s["end"]) for s in segs], pad=0.002)
    assert np.max(np.abs(x[~inside]), initial=0) <= 1
    for s in segs:
        a, b = int(s["start"] * SR), int(s["end"] * SR)
        assert b - a > 0.3 * SR
        assert _rms_db(x[a:b]) > 20
        assert np.max(np.abs(x[a: a + int(0.05 * SR)])) > 20, s
        assert np.max(np.abs(x[b - int(0.05 * SR): b])) > 20, s
        assert s["transcript"] and s["voice_id"].startswith(s["engine"] + ":")


def test_every_synthesiser_starts_and_ends_with_sound():
    for label in hazards.SYNTHS:
        for seed in range(3):
            x, params = hazards.synthesise(label, np.random.default_rng(seed))
            assert x.dtype == np.float32 and np.isfinite(x).all()
            assert abs(np.max(np.abs(x)) - 1.0) < 1e-5, label
            assert np.max(np.abs(x[:160])) > 1e-3 and np.max(np.abs(x[-160:])) > 1e-4, label
            assert params


def _ins(start, end, intent="none", labels=(), keywords=(), muted=()):
    return {"start": start, "end": end, "text": None if intent == "none" else "x",
            "meaning": {"intent": intent, "target_labels": list(labels),
                        "target_keywords": list(keywords), "muted_labels": list(muted),
                        "safety_muted": bool(muted)}}


def _ev(onset, offset, label):
    return {"onset": onset, "offset": offset, "label": label}


def _seg(start, end, category, keywords=(), times=()):
    return {"start": start, "end": end, "category": category, "keywords": list(keywords),
            "keyword_times": list(times)}


def test_response_rules():
    instructions = [_ins(0.0, 20.0), _ins(20.0, 40.0, "mute_safety", muted=("smoke_alarm",)),
                    _ins(40.0, 60.0, "watch_events", labels=("doorbell",)),
                    _ins(60.0, 80.0, "watch_keywords", keywords=("dinner",))]
    events = [_ev(2.0, 10.0, "smoke_alarm"),     # safety, no instruction: alert
              _ev(12.0, 13.0, "doorbell"),       # not requested: nothing
              _ev(22.0, 26.0, "smoke_alarm"),    # muted: nothing
              _ev(28.0, 30.0, "siren"),          # safety, not muted: alert
              _ev(42.0, 43.0, "doorbell"),       # requested: alert
              _ev(45.0, 46.0, "knock")]          # not requested: nothing
    speech = [_seg(50.0, 52.0, "question"), _seg(55.0, 57.0, "instruction"),
              _seg(62.0, 64.0, "keyword", ["dinner"], [63.0]),
              _seg(66.0, 68.0, "keyword", ["lunch"], [67.0]),
              _seg(14.0, 16.0, "keyword", ["dinner"], [15.0])]  # before the instruction
    resp, quiet = scene.compute_responses(80.0, speech, events, instructions)
    got = [(r["kind"], r["trigger"]["type"], r["earliest"]) for r in resp]
    assert got == [("alert", "event", 2.0), ("alert", "event", 28.0), ("alert", "event", 42.0),
                   ("answer", "question", 52.0), ("acknowledge", "instruction", 57.0),
                   ("alert", "keyword", 63.0)]
    alert = resp[0]
    assert alert["latest"] == pytest.approx(2.0 + 3.0 + 2.0)
    # quiet intervals are the exact complement of the windows
    covered = sorted([[r["earliest"], r["latest"]] for r in resp] + quiet)
    t = 0.0
    for a, b in covered:
        assert a <= t + 1e-9
        t = max(t, b)
    assert t == 80.0
    for a, b in quiet:
        for r in resp:
            assert b <= r["earliest"] + 1e-9 or a >= r["latest"] - 1e-9


def test_safety_events_are_alerted_in_generated_streams():
    _require("espeak-ng", "sox")
    cfg = replace(DRY, speech=False, engines=("espeak-ng",), p_instruction=0.0,
                  event_labels=tuple(SAFETY_LABELS), events_per_minute=6.0)
    _, rec = scene.make_stream("train", 9, 0, 40.0, cfg, None)
    assert rec["events"]
    alerted = {r["trigger"]["index"] for r in rec["responses"] if r["kind"] == "alert"}
    assert alerted == set(range(len(rec["events"])))
