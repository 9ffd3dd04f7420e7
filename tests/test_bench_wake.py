"""benchmarks.bench_wake: its scoring rules, and a one-voice run through the shipped bundle."""

import json
import shutil

import pytest

from benchmarks import bench_wake


def test_score_counts_hits_early_late_and_false_answers():
    marks = [
        {"kind": "addressed", "text": "a", "start": 1.0, "end": 3.0},    # hit at 3.4
        {"kind": "confusable", "text": "b", "start": 6.0, "end": 7.0},   # answered: false
        {"kind": "addressed", "text": "c", "start": 10.0, "end": 12.0},  # early at 11.5
        {"kind": "addressed", "text": "d", "start": 15.0, "end": 16.0},  # late at 18.5
        {"kind": "confusable", "text": "e", "start": 20.0, "end": 21.0},  # quiet
    ]
    s = bench_wake.score(marks, [3.4, 8.0, 11.5, 18.5], 25.0)
    assert (s["addressed"], s["hits"], s["early"], s["late"]) == (3, 1, 1, 1)
    assert (s["confusable"], s["false_answers"], s["false_texts"]) == (2, 1, ["b"])
    assert s["delays"] == pytest.approx([0.4])


@pytest.mark.skipif(not (shutil.which("flite") and shutil.which("espeak-ng")),
                    reason="flite and espeak-ng render the benchmark's voices "
                           "(scripts/install-system-deps.sh test)")
def test_quick_run_writes_every_system_and_beats_the_exact_peer(tmp_path):
    out = tmp_path / "wake.json"
    assert bench_wake.main(["--quick", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert set(r["systems"]) == set(bench_wake.SYSTEMS) and r["peer"] == "v0.8_exact"
    assert r["voices"] == ["flite:slt"]
    for s in r["systems"].values():
        assert s["addressed"] == 4 and s["confusable"] == 4
        assert s["hits"] + s["early"] + s["late"] <= 4
    # flite's slt, 4 questions: the exact match hears 1 of them, the loose draft all 4
    assert r["systems"]["default"]["hits"] > r["systems"]["v0.8_exact"]["hits"]
    assert r["systems"]["default"]["recall_vs_peer"] > 1.0
