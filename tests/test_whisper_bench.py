"""The ASR benchmark's quick mode runs end to end and writes a sane report."""

from __future__ import annotations

import json

from whisper_helpers import require, whisper_export  # noqa: F401


def test_bench_asr_quick(whisper_export, tmp_path, capsys):  # noqa: F811
    from benchmarks import bench_asr
    from export.whisper.speech import corpus_missing

    require("faster_whisper")
    out = tmp_path / "asr.quick.json"
    assert bench_asr.main(["--quick", "--asr-dir", str(whisper_export), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["command"].startswith("python -m benchmarks.bench_asr --quick")
    assert report["student_streaming"] is None and "student" in report["student_note"]
    corpora = [c for c in ("asterisk", "fsdd") if corpus_missing(c) is None]
    assert sorted(report["corpora"]) == sorted(corpora)
    assert {"aim_edge_onnx_int8", "faster_whisper"} <= set(report["results"])
    for name, per in report["results"].items():
        assert report["systems"][name]["model_bytes"] > 0
        for corpus in corpora:
            r = per[corpus]
            assert r["clips"] == {"asterisk": 3, "fsdd": 2}[corpus] and r["words"] > 0
            assert 0.0 <= r["wer"] <= 3.0
            assert r["cpu_s_per_utterance"]["p50"] > 0 and r["eou_to_text_ms"]["p95"] > 0
            assert r["rtf_cpu"] > 0
    # the second pass must be usable: plain sentences come out (almost) word for word
    if "asterisk" in corpora:
        assert report["results"]["aim_edge_onnx_int8"]["asterisk"]["wer"] <= 0.1
    assert "aim_edge_onnx_int8" in capsys.readouterr().out
