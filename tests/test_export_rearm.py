"""Per-label re-arm pauses: the policy's rule, the chooser, and ``python -m export.rearm``
(runtime and evaluation harness only, no torch)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from runtime_helpers import ScriptedBackend, chunk_end_s, write_fake_bundle
from test_eval_harness import _tiny_split

import aim_edge
from aim_edge.bundle import load_bundle
from aim_edge.engine import Engine
from aim_edge.errors import BundleError
from benchmarks.eval.sets import SR, Scene
from calibration.thresholds import choose_rearm
from export.rearm import main, rearm_counts

#: a CO alarm's temporal-four pattern at 0.16 s chunks: a 1 s burst of beeps (6 chunks), then
#: 5 s of silence (31 chunks), three times; the first burst starts at chunk 10
T4_BURSTS = [range(10 + 37 * k, 16 + 37 * k) for k in range(3)]


def _t4(i, feeds):
    on = any(i in burst for burst in T4_BURSTS)
    return {"events": {"co_alarm": 0.95 if on else 0.01}}


def _engine(path, **kw):
    bundle = load_bundle(path)
    return Engine.from_bundle(bundle, backend=ScriptedBackend(bundle, _t4), **kw)


def _co_alerts(engine, n_chunks=130):
    stream = engine.create_stream()
    stream.accept_waveform(SR, np.zeros(int(n_chunks * 0.16 * SR), np.float32))
    stream.input_finished()
    events = []
    while stream.is_ready():
        events.extend(stream.decode())
    return [e for e in events if e["type"] == "alert" and e["label"] == "co_alarm"]


def test_a_per_label_rearm_from_the_manifest_keeps_a_co_alarm_one_sound(tmp_path):
    thr = {"speak_now": 0.5, "events": {"co_alarm": 0.8, "smoke_alarm": 0.8}}
    # the default 3 s pause: each burst after the 5 s refractory time is announced again
    plain = write_fake_bundle(tmp_path / "plain", thresholds=thr)
    got = _co_alerts(_engine(plain))
    assert [round(a["t"], 3) for a in got] == [round(chunk_end_s(b[0]), 3) for b in T4_BURSTS]

    five = write_fake_bundle(tmp_path / "five", thresholds={**thr,
                                                            "rearm_s": {"co_alarm": 5.0}})
    engine = _engine(five)
    pol = engine.new_policy()
    rearm = dict(zip(pol.events, pol.rearm.tolist(), strict=True))
    assert rearm.pop("co_alarm") == 5.0 and set(rearm.values()) == {3.0}  # others: default
    got = _co_alerts(engine)
    assert [round(a["t"], 3) for a in got] == [round(chunk_end_s(10), 3)]
    # a pause given by name wins over the manifest, as refractory_s and hysteresis do
    assert len(_co_alerts(_engine(five, policy={"rearm_s": 3.0}))) == 3


@pytest.mark.parametrize("value,message", [
    (-1.0, r"thresholds.rearm_s = -1.0 must be a number of seconds >= 0"),
    ({"co_alarm": "5"}, r"thresholds.rearm_s.co_alarm = '5' must be a number"),
    ({"no_such": 5.0}, r"thresholds.rearm_s.no_such names unknown label 'no_such'"),
    # JSON's NaN / Infinity: inf would make a smoke alarm one endless sound
    (float("nan"), r"thresholds.rearm_s = nan must be a number of seconds >= 0"),
    ({"co_alarm": float("inf")}, r"thresholds.rearm_s.co_alarm = inf must be a number"),
])
def test_a_bad_rearm_in_the_manifest_is_refused_with_the_field_named(tmp_path, value,
                                                                     message):
    with pytest.raises(BundleError, match=message):
        load_bundle(write_fake_bundle(tmp_path / "b", thresholds={
            "speak_now": 0.5, "events": {"co_alarm": 0.8}, "rearm_s": value}))


def test_policy_rearm_is_validated_with_the_bad_value_named():
    from aim_edge.policy import DecisionPolicy

    kw = dict(vocab=["_", " ", "a"], events=["co_alarm"], intents=["silent", "alert"],
              safety=["co_alarm"], speak_threshold=0.5, event_thresholds={"co_alarm": 0.8})
    with pytest.raises(ValueError, match=r"rearm\['co_alarm'\] = -2"):
        DecisionPolicy(**kw, rearm={"co_alarm": -2})
    with pytest.raises(ValueError, match="unknown event label 'siren'"):
        DecisionPolicy(**kw, rearm={"siren": 5.0})
    with pytest.raises(ValueError, match=r"rearm\['co_alarm'\] = inf"):
        DecisionPolicy(**kw, rearm={"co_alarm": float("inf")})
    pol = DecisionPolicy(**kw, rearm={"co_alarm": np.float32(5.0)})  # numpy numbers are fine
    assert pol.rearm.tolist() == [5.0]


def test_choose_rearm_takes_the_shortest_pause_with_the_fewest_repeats_and_no_lost_sound():
    counts = {
        # a longer pause removes repeats and keeps every sound: the shortest of the best
        "co_alarm": {3.0: (23, 9, 15), 4.0: (23, 9, 9), 5.0: (23, 9, 7), 6.0: (23, 9, 7)},
        # fewer repeats at 6 s, but one sound is joined to the one before it: not taken
        "siren": {3.0: (37, 5, 6), 5.0: (37, 5, 5), 6.0: (36, 6, 4)},
        # nothing to gain: the reference stays
        "knock": {3.0: (13, 6, 0), 5.0: (13, 6, 0)},
    }
    assert choose_rearm(counts, 3.0) == {"co_alarm": 5.0, "siren": 5.0, "knock": 3.0}
    with pytest.raises(ValueError, match="no count for the reference pause 2 s"):
        choose_rearm(counts, 2.0)


def test_rearm_counts_replays_the_policy_per_pause(tmp_path):
    path = write_fake_bundle(tmp_path / "b", thresholds={
        "speak_now": 0.5, "events": {"co_alarm": 0.8, "smoke_alarm": 0.8}})
    n = 130
    # one labelled CO alarm over the three bursts: one response window from its onset
    scene = Scene("t4", np.zeros(int(n * 0.16 * SR), np.float32), speech=[],
                  events=[{"label": "co_alarm", "onset": 1.6, "offset": 18.6}],
                  instructions=[], responses=[], no_response=[])
    with _engine(path) as engine:
        counts, hours = rearm_counts(engine, [scene], [3.0, 5.0], progress=False)
    assert hours == pytest.approx(n * 0.16 / 3600)
    # 3 s: the first burst inside the window, the other two announced again (extra alerts)
    assert counts["co_alarm"] == {3.0: (1, 0, 2), 5.0: (1, 0, 0)}
    assert counts["smoke_alarm"] == {3.0: (0, 0, 0), 5.0: (0, 0, 0)}
    assert choose_rearm(counts, 3.0)["co_alarm"] == 5.0


def test_rearm_tool_shows_then_writes_and_the_runtime_reads_it(bundle_copy, tmp_path, capsys):
    _tiny_split(tmp_path / "dev")
    before = (bundle_copy / "manifest.json").read_text()
    args = [str(bundle_copy), "--scenes", str(tmp_path / "dev"), "--no-progress",
            "--grid", "3,6"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "1 scenes" in out and "co_alarm" in out and "add --write" in out
    assert (bundle_copy / "manifest.json").read_text() == before  # shown only

    assert main([*args, "--write", "--json", str(tmp_path / "r.json")]) == 0
    thr = json.loads((bundle_copy / "manifest.json").read_text())["thresholds"]
    labels = [e.name for e in load_bundle(bundle_copy).events]
    assert sorted(thr["rearm_s"]) == sorted(labels)
    assert set(thr["rearm_s"].values()) <= {3.0, 6.0}
    rec = thr["rearm_chosen_on"]
    assert rec["n_scenes"] == 1 and rec["reference_s"] == 3.0
    # the scene holds one siren: hit or missed at each pause
    assert [sum(rec["counts_hit_missed_extra"]["siren"][r][:2]) for r in ("3", "6")] == [1, 1]
    assert json.loads((tmp_path / "r.json").read_text())["rearm_s"] == thr["rearm_s"]
    with aim_edge.Engine.from_bundle(bundle_copy, backend="onnxruntime") as engine:
        pol = engine.new_policy()
        assert dict(zip(pol.events, pol.rearm.tolist(), strict=True)) == thr["rearm_s"]


def test_rearm_tool_refuses_a_grid_without_the_reference(bundle_copy, tmp_path, capsys):
    for grid in ("4,6", "3,x"):
        with pytest.raises(SystemExit):
            main([str(bundle_copy), "--scenes", str(tmp_path), "--grid", grid])
        assert f"--grid {grid}" in capsys.readouterr().err
