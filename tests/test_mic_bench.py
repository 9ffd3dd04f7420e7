"""The microphone benchmark's quick mode runs and writes a sane report (so it cannot rot)."""

import json

from benchmarks import bench_mic


def test_bench_mic_quick_reports_both_implementations(tmp_path, capsys):
    out = tmp_path / "mic.quick.json"
    assert bench_mic.main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["live"] is None  # quick mode: synthetic only
    configs = {(r["rate"], r["channels"], r["dtype"]) for r in report["synthetic"]}
    assert configs == set(bench_mic.CONFIGS)
    for r in report["synthetic"]:
        for name in ("aim_edge", "queue_copy"):
            cb = r[name]["callback_us"]
            assert 0 < cb["p50"] <= cb["p99"] <= cb["max"] and cb["n"] == r["blocks"]
            assert r[name]["capture_path_us_per_audio_s"] > 0
        assert r["ratio_callback_p50_peer_over_ours"] > 0
        assert r["frames_per_block"] == round(r["rate"] * bench_mic.BLOCK_S)
    printed = capsys.readouterr().out
    assert "ratio peer/ours" in printed and "queue_copy" in printed


def test_the_peer_converts_like_ours():
    """Both sides of the benchmark make the same 16 kHz mono from the same blocks."""
    import numpy as np

    for rate, channels, dtype in bench_mic.CONFIGS:
        blocks = bench_mic._blocks(rate, channels, dtype, 6)
        frames = round(rate * bench_mic.BLOCK_S)
        got = []
        for cls in (bench_mic.Ours, bench_mic.QueueCopy):
            impl, out = cls(rate, channels, dtype), []
            for b in blocks:
                impl.callback(b, frames, None, bench_mic.FLAGS)
                impl.drain(out)
            got.append(np.concatenate(out))
        assert got[0].size == got[1].size > 1000  # 0.12 s, less the resampler delay
        np.testing.assert_allclose(got[0], got[1], atol=1e-6)
