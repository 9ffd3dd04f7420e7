"""export.plots: the model report's pictures from evaluate JSON and training metrics logs."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("matplotlib", reason="export.plots draws with matplotlib (aim-edge[plot])")

from export import plots  # noqa: E402


def _result(checkpoint, recall_at):
    curve = [{"threshold": t, "hits": 0, "misses": 0, "false_alerts": 0, "precision": 1.0,
              "recall": r, "f1": r, "false_alerts_per_hour": fa, "alert_delay_median_s": None,
              "by_kind": {"alert/event": {"windows": 4, "hits": 1, "recall": 0.25},
                          "answer/question": {"windows": 2, "hits": 2, "recall": 1.0}}}
             for t, r, fa in recall_at]
    events = {"siren": {"tp": 9, "fn": 1, "fp": 0, "precision": 1.0, "recall": 0.9, "f1": 0.95},
              "doorbell": {"tp": 0, "fn": 0, "fp": 2, "precision": 0.0, "recall": 0.0,
                           "f1": 0.0},
              "glass_break": {"tp": 1, "fn": 7, "fp": 0, "precision": 1.0, "recall": 0.125,
                              "f1": 0.222}}
    return {"checkpoint": checkpoint, "thresholds": {"speak_now": 0.9},
            "test": {"events": events, "event_macro_f1": 0.586,
                     "proactive": {"recall": 0.4, "f1": 0.5, "false_alerts_per_hour": 2.0},
                     "proactive_curve": curve}}


def _png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_evaluation_picture_from_evaluate_json(tmp_path):
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    a.write_text(json.dumps(_result("/c/student-v0.2.npz", [(0.5, 0.9, 20.0), (0.9, 0.4, 2.0)])))
    b.write_text(json.dumps(_result("/c/student-v0.3.npz", [(0.5, 0.95, 8.0), (0.9, 0.6, 0.5)])))
    out = tmp_path / "pics" / "evaluation.png"
    assert plots.main(["evaluation", str(a), str(b), "--out", str(out)]) == 0
    w, h = _png_size(out)
    assert (w, h) == (1980, 572)  # figsize 18 x 5.2 at 110 dpi


def test_evaluation_refuses_json_without_an_operating_curve(tmp_path):
    old = _result("x.npz", [(0.5, 0.9, 1.0)])
    del old["test"]["proactive_curve"]
    f = tmp_path / "old.json"
    f.write_text(json.dumps(old))
    with pytest.raises(SystemExit, match="old.json: no 'proactive_curve'.*evaluate the"):
        plots.main(["evaluation", str(f), "--out", str(tmp_path / "x.png")])
    f.write_text("{not json")
    with pytest.raises(SystemExit, match="old.json: not a readable evaluation JSON"):
        plots.main(["evaluation", str(f), "--out", str(tmp_path / "x.png")])


def test_labels_must_match_the_files(tmp_path):
    f = tmp_path / "a.json"
    f.write_text(json.dumps(_result("a.npz", [(0.5, 0.9, 1.0)])))
    with pytest.raises(SystemExit, match="--labels: 2 given for 1 files"):
        plots.main(["evaluation", str(f), "--labels", "x", "y", "--out", str(tmp_path / "p.png")])


def test_training_picture_from_metrics_logs(tmp_path):
    log = tmp_path / "run" / "metrics.jsonl"
    log.parent.mkdir()
    rows = [{"step": s, "split": sp, "loss": 2.0 / (1 + s), "ctc": 1.0, "event": 0.1,
             "timing": 0.3} for s in range(0, 200, 20) for sp in ("train", "dev")]
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "training.png"
    assert plots.main(["training", str(log), "--out", str(out)]) == 0
    assert _png_size(out) == (1210, 770)
    log.write_text('{"step": 1, "split": "train", "loss": 1}\n{"loss": 2}\n')
    with pytest.raises(SystemExit, match=r"metrics.jsonl:2: a metrics record needs 'step'"):
        plots.main(["training", str(log), "--out", str(out)])
