"""``python -m export.caption_gate``: the caption-confidence gate chosen through the runtime
on labelled scenes and written into a bundle (no torch: the runtime and the harness only)."""

from __future__ import annotations

import json

import pytest

import aim_edge
from aim_edge.bundle import load_bundle
from export.caption_gate import main, write_caption_gate


def _demo_split(folder):
    """The packaged 60 s demo scene (generator format: speech, a siren, a glass break) as a
    one-scene split."""
    from importlib.resources import files

    data = files("aim_edge") / "data"
    record = json.loads((data / "demo_scene.json").read_text())
    (folder / "shard-00000").mkdir(parents=True)
    (folder / "shard-00000" / "demo.wav").write_bytes((data / "demo_scene.wav").read_bytes())
    record["audio"] = "shard-00000/demo.wav"
    (folder / "shard-00000.jsonl").write_text(json.dumps(record) + "\n")
    return record


def test_caption_gate_shows_then_writes_the_threshold_and_its_curve(bundle_copy, tmp_path,
                                                                    capsys):
    record = _demo_split(tmp_path / "dev")
    before = (bundle_copy / "manifest.json").read_text()
    args = [str(bundle_copy), "--scenes", str(tmp_path / "dev"), "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "1 scenes" in out and "<- chosen" in out and "add --write" in out
    assert (bundle_copy / "manifest.json").read_text() == before  # shown only

    assert main([*args, "--write", "--json", str(tmp_path / "g.json")]) == 0
    thr = json.loads((bundle_copy / "manifest.json").read_text())["thresholds"]
    chosen, rec = thr["caption_confidence"], thr["caption_confidence_chosen_on"]
    assert json.loads((tmp_path / "g.json").read_text())["caption_confidence"] == chosen
    assert rec["n_scenes"] == 1 and rec["hours"] == pytest.approx(60 / 3600, abs=1e-4)
    rows = {r["threshold"]: r for r in rec["curve"]}
    first = rec["curve"][0]
    # every final caption of the scene is counted once, over speech or not: the demo has 10
    # spoken sentences, and the siren and the kettle make letters of their own
    assert first["speech"] + first["nonspeech"] == rec["captions"]
    assert 5 <= first["speech"] <= len(record["speech"]) + 2 and first["nonspeech"] >= 1
    # the rule: the highest threshold within 2 % of the speech captions' letters
    ok = [t for t, r in rows.items() if r["speech_chars_lost"] <= 0.02]
    assert chosen == (max(ok) if ok else 0.0)
    # the runtime's policy reads it, and drops at least what the curve says it drops
    with aim_edge.Engine.from_bundle(bundle_copy, backend="onnxruntime") as engine:
        assert engine.new_policy().caption_confidence == chosen
        res = engine.process_file(str(tmp_path / "dev" / "shard-00000" / "demo.wav"))
    if chosen > 0:
        r = rows[chosen]
        assert res.captions_dropped == r["nonspeech_dropped"] + r["speech_dropped"]
        assert len(res.captions) == rec["captions"] - res.captions_dropped


def test_caption_gate_names_bad_arguments(bundle_copy, tmp_path, capsys):
    assert main([str(bundle_copy), "--scenes", str(tmp_path / "nope"), "--no-progress"]) == 2
    assert "no *.jsonl scene manifests" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--scenes", str(tmp_path)])
    assert "no manifest.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(bundle_copy), "--scenes", str(tmp_path), "--max-speech-loss", "2"])
    assert "--max-speech-loss 2.0: give a share in [0, 1)" in capsys.readouterr().err


def test_a_gate_the_runtime_refuses_leaves_the_bundle_as_it_was(bundle_copy):
    from aim_edge.errors import BundleError

    before = (bundle_copy / "manifest.json").read_text()
    with pytest.raises(BundleError, match="thresholds.caption_confidence = 1.2"):
        write_caption_gate(bundle_copy, 1.2, {"scenes": "dev"})
    assert (bundle_copy / "manifest.json").read_text() == before
    load_bundle(bundle_copy)
