"""End to end: generated held-out test scenes through the shipped default bundle and the real
runtime (native fbank, onnxruntime, policy; no torch).

The scenes are the first streams of the test split with seed 2 (``python -m export.data build
--minutes 4 --seed 2 --split test``): the generator is deterministic, so the first three are
byte for byte the first streams of the held-out set the shipped model was evaluated on (the
fourth is the same scene cut to 49 s to fit the four minutes). They are built
once and cached under ``~/.cache/aim-edge/test-scenes/<key>`` (the key hashes the generator's
sources and arguments); a fresh machine builds them in about a minute.

What the shipped model does on them was measured before writing the assertions (on all 24
held-out streams, 0.5 h: sirens caught in 5 of 6 windows, smoke alarms 5/10, glass 4/7, CO 1/2;
stream-level caption CER 0.61). The assertions hold what these four streams show, with margin,
and print the rest.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from pathlib import Path

import pytest
from runtime_helpers import alert_hits, caption_cer, false_alerts, run_scene

import aim_edge
from aim_edge import bundles

ROOT = Path(__file__).resolve().parents[1]
BUILD_ARGS = ["build", "--minutes", "4", "--seed", "2", "--split", "test",
              "--no-progress"]
TOOLS = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "festival", "sox": "sox"}


def _key() -> str:
    h = hashlib.sha256(" ".join(BUILD_ARGS).encode())
    for p in sorted((ROOT / "export" / "data").glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def test_scenes() -> tuple[Path, list[dict]]:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"building test scenes needs {', '.join(missing)}: "
                    f"apt-get install {' '.join(TOOLS[t] for t in missing)}")
    out = Path.home() / ".cache" / "aim-edge" / "test-scenes" / _key()
    if not (out / "DONE").is_file():
        from export.data import cli

        shutil.rmtree(out, ignore_errors=True)
        assert cli.main([*BUILD_ARGS, "--out", str(out)]) == 0
        (out / "DONE").write_text("built by tests/test_e2e_scenes.py\n")
    records = [json.loads(line) for line in (out / "shard-00000.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == [f"test-s2-00000{i}" for i in range(4)]
    return out, records


@pytest.fixture(scope="module")
def shipped_engine():
    if bundles.default_bundle_path() is None:
        pytest.skip("no default bundle shipped in aim_edge/models/default")
    with aim_edge.Engine.from_bundle(None) as engine:
        yield engine


@pytest.fixture(scope="module")
def scene_results(test_scenes, shipped_engine):
    root, records = test_scenes
    return [(rec, run_scene(shipped_engine, root / rec["audio"], rec)) for rec in records]


def test_hazard_alerts_fire_inside_their_windows(scene_results):
    hits, false = [], []
    for rec, res in scene_results:
        for h in alert_hits(rec, res.alerts):
            hits.append((rec["id"], h))
        false.extend((rec["id"], a["label"], a["t"]) for a in false_alerts(rec, res.alerts))
    for sid, h in hits:
        print(f"{sid}: {h['label']:<12} window {h['window'][0]:6.2f}-{h['window'][1]:6.2f} s"
              f"  {'caught' if h['hit'] else 'MISSED'}")
    print("alerts outside every window of their label:", false)
    caught = {(sid, h["label"]) for sid, h in hits if h["hit"]}
    # measured: the siren of stream 0 (alert at 19.1 s, window 18.8-23.8 s) and the smoke
    # alarm of stream 3 are caught; the CO alarm and glass break of stream 1 are missed
    assert {("test-s2-000000", "siren"), ("test-s2-000003", "smoke_alarm")} <= caught
    assert len(hits) == 4 and all(h["reason"] == "safety" for _, h in hits)
    # measured: 2 false safety alerts in 250 s (smoke/CO confused); allow a little more
    assert len(false) <= 4


def test_caption_cer_is_below_the_measured_bound(scene_results):
    errors = chars = 0
    for rec, res in scene_results:
        e, c = caption_cer(rec, res.captions)
        print(f"{rec['id']}: CER {e / max(c, 1):.3f} over {c} reference characters")
        errors += e
        chars += c
    cer = errors / chars
    print(f"all four streams: CER {cer:.3f} ({chars} characters)")
    assert chars > 1000
    # measured 0.43 on these streams (0.61 over the 24 held-out streams): the student's
    # captions are rough; the bound catches a broken front end or decoder (CER ~1.0)
    assert cer < 0.55


def test_instruction_change_mid_stream_changes_what_is_alerted(test_scenes, shipped_engine):
    root, records = test_scenes
    rec = dict(records[0])  # a siren at 18.8 s, caught at 19.1 s
    wav = root / rec["audio"]

    def with_instruction(text):
        # no instruction for the first 10 s, then ``text`` for the rest
        rec["instructions"] = [
            {"start": 0.0, "end": 10.0, "text": None, "delivery": None},
            {"start": 10.0, "end": rec["duration"], "text": text, "delivery": "text"}]
        res = run_scene(shipped_engine, wav, rec)
        changes = [(round(i["t"], 2), i["meaning"]["intent"]) for i in res.instructions]
        return [a["label"] for a in res.alerts], changes

    labels, changes = with_instruction("just caption everything")
    assert "siren" in labels  # safety classes stay on under "transcribe only"
    assert len(changes) == 1 and 10.0 <= changes[0][0] <= 10.5
    labels, changes = with_instruction("the siren is a false alarm, ignore it")
    assert "siren" not in labels
    assert changes[0][1] == "mute_safety"


def test_no_threads_left_after_close(test_scenes):
    root, records = test_scenes
    before = {t.ident for t in threading.enumerate()}
    with aim_edge.Engine.from_bundle(None) as engine:
        res = engine.process_file(root / records[2]["audio"])
        assert res.chunks > 200
    left = [t.name for t in threading.enumerate() if t.ident not in before]
    assert left == []
