"""bench_e2e's quick mode: both pipelines run in real time and the report compares them."""

import json

import numpy as np
import pytest

from benchmarks import bench_e2e

pytest.importorskip("librosa", reason="the naive peer needs librosa: pip install"
                    " 'aim-edge[bench]' (also in the test extra)")


def test_bench_e2e_quick_compares_both_pipelines(tmp_path, capsys):
    out = tmp_path / "e2e.quick.json"
    assert bench_e2e.main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    (sc,) = report["scenarios"]
    assert sc["seconds"] == 2.0 and sc["rounds"] == 1 and sc["load_processes"] == 0
    from aim_edge.bundle import load_bundle
    from aim_edge.bundles import default_bundle_path

    assert sc["artifact"] == load_bundle(default_bundle_path()).artifact(format="onnx").file
    for key in ("aim_edge", "naive"):
        p = sc[key]
        assert p["audio_s"] == pytest.approx(2.0, abs=0.01)
        assert 2.0 <= p["wall_s"] < 8.0  # paced at 1x
        assert 11 <= p["chunks"] <= 13  # 2 s / 160 ms, the loop also flushes the tail
        for s in bench_e2e.STAGES:
            st = p["stages_ms"][s]
            assert st["n"] == p["chunks"] and 0 <= st["p50"] <= st["p99"] <= st["max"]
        e2e = p["stages_ms"]["end_to_end"]
        assert e2e["p50"] >= p["stages_ms"]["model"]["p50"]
        assert p["cpu_s"] > 0 and p["dropped_samples"] == 0
    assert set(sc["naive"]["thread_cpu_s"]) == {"source", "worker"}
    for key in ("aim_edge", "naive"):
        t = sc[key]["tail_slowest_1pct"]
        assert t["chunks"] == 1 and t["from_ms"] == sc[key]["stages_ms"]["end_to_end"]["max"]
        assert t["dominant"] in bench_e2e.STAGES and t["mean_ms"][t["dominant"]] > 0
    ratio = sc["naive_over_aim_edge"]["end_to_end_p50"]
    a, b = sc["aim_edge"]["stages_ms"]["end_to_end"]["p50"], \
        sc["naive"]["stages_ms"]["end_to_end"]["p50"]
    assert ratio == pytest.approx(b / a, rel=0.01)
    assert isinstance(sc["targets_met"]["zero_drops"], bool)
    assert len(sc["loadavg_before"]) == 3
    printed = capsys.readouterr().out
    assert "naive / aim_edge" in printed and "ring_to_model" in printed


def test_naive_features_frame_like_kaldi():
    """The peer's librosa log-mel has the model's shape and tracks the native fbank."""
    from aim_edge.bundle import load_bundle
    from aim_edge.bundles import default_bundle_path
    from aim_edge.features import StreamingFbank

    bundle = load_bundle(default_bundle_path())
    rng = np.random.default_rng(3)
    path_audio = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    naive = bench_e2e.NaivePipeline.__new__(bench_e2e.NaivePipeline)
    import librosa

    f = bundle.features
    naive.bundle, naive.librosa, naive.hop, naive.win, naive.t = (
        bundle, librosa, f.frame_shift, f.frame_length, bundle.chunk_frames)
    naive.mel = librosa.filters.mel(sr=f.sample_rate, n_fft=512, n_mels=f.n_mels,
                                    fmin=f.low_freq, fmax=f.sample_rate / 2, htk=True,
                                    norm=None)
    need = 16 * 160 + 240
    got = naive.features(path_audio[:need])
    assert got.shape == (16, 80) and np.isfinite(got).all()
    fb = StreamingFbank(f)
    fb.accept_waveform(path_audio[:need])
    ref = fb.pop_frames(16)
    # not Kaldi (no pre-emphasis, Hann not Povey): the same frames, close in level
    corr = np.corrcoef(got.ravel(), ref.ravel())[0, 1]
    assert corr > 0.6
