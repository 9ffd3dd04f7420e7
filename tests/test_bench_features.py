"""The features benchmark's quick mode runs, checks its peers, and writes a sane JSON report."""

import json

import numpy as np

from benchmarks import bench_features
from benchmarks._numpy_fbank import NumpyStreamingFbank


def test_bench_features_quick_writes_all_three_implementations(tmp_path, capsys):
    out = tmp_path / "features.quick.json"
    assert bench_features.main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"aim_edge", "kaldi_native_fbank", "numpy"}
    for key, res in report["results"].items():
        for stat in ("mean_us_per_hop", "median_us_per_hop", "p95_us_per_hop", "p99_us_per_hop",
                     "max_us_per_hop", "x_realtime"):
            assert res[stat] > 0, (key, stat)
        assert res["hops"] == 2 * res["calls"] > 0
    assert set(report["ratios_peer_over_ours"]) == {"kaldi_native_fbank", "numpy"}
    for ratios in report["ratios_peer_over_ours"].values():
        assert all(value > 0 for value in ratios.values())
    agreement = report["agreement_max_abs_vs_aim_edge"]
    assert agreement["aim_edge_stream_vs_one_shot"] == 0.0
    assert 0 <= agreement["kaldi_native_fbank"] <= 1e-3 and 0 <= agreement["numpy"] <= 1e-3
    assert report["workload"]["chunk"] == 320 and report["workload"]["hop"] == 160
    assert report["aim_edge_one_shot_us_per_frame"] > 0
    assert isinstance(report["meets_target"], bool)
    assert report["environment"]["numpy"]
    printed = capsys.readouterr().out
    assert all(name in printed for name in ("aim_edge", "kaldi_native_fbank", "numpy"))


def test_numpy_peer_streams_like_one_shot():
    x = bench_features.make_audio(1.0)
    one = NumpyStreamingFbank()
    one.accept_waveform(x)
    ref = one.pop_frames()
    assert ref.shape == (1 + (x.size - 400) // 160, 80)
    streamed = NumpyStreamingFbank()
    parts = []
    for start in range(0, x.size, 509):
        streamed.accept_waveform(x[start:start + 509])
        parts.append(streamed.pop_frames())
    np.testing.assert_allclose(np.concatenate(parts), ref, atol=1e-5)
