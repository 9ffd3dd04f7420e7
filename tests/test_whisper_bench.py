"""The ASR benchmark's quick mode runs end to end and writes a sane report."""

from __future__ import annotations

import json

import pytest
from whisper_helpers import require, whisper_export  # noqa: F401

from aim_edge import bundles


def test_bench_asr_quick(whisper_export, tmp_path, capsys):  # noqa: F811
    from benchmarks import bench_asr
    from export.whisper.speech import corpus_missing

    require("faster_whisper")
    if bundles.default_bundle_path() is None:
        pytest.skip("no default bundle shipped: the streaming section needs it")
    out = tmp_path / "asr.quick.json"
    assert bench_asr.main(["--quick", "--asr-dir", str(whisper_export), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["command"].startswith("python -m benchmarks.bench_asr --quick")
    assert "student_streaming" not in report
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
    # streaming section: the real runtime on the clips joined into one stream
    st = report["streaming"]
    assert st["cores"] is None  # --quick: not pinned (the full run pins to one core)
    for corpus in corpora:
        per = st["results"][corpus]
        assert {"student", "student_endpoints_second_pass"} <= set(per)
        for mode, r in per.items():
            assert r["utterances"] == 1 and r["words"] > 0 and r["wer"] >= 0.0
            if mode.endswith("second_pass"):
                lat = r["eou_to_final_caption_ms"]
                assert lat is not None and 0 < lat["p50"] <= lat["p95"] < 60_000
                assert r["endpoint_delay_ms"]["p50"] > 0  # decided after the speech ended
    if "asterisk" in corpora:  # plain sentences: the second pass gets (almost) every word
        per = st["results"]["asterisk"]
        assert per["student_endpoints_second_pass"]["wer"] <= 0.2
        assert per["student"]["wer"] > per["student_endpoints_second_pass"]["wer"]
