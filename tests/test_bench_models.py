"""bench_models' quick mode measures every artifact of a bundle and compares with fp32."""

import json

from benchmarks import bench_models


def test_bench_models_quick_on_the_small_bundle(runtime_small_bundle, tmp_path):
    out = tmp_path / "models.quick.json"
    assert bench_models.main(["--quick", "--model", str(runtime_small_bundle),
                              "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = report["bundles"][0]["rows"]
    from aim_edge.bundle import load_bundle

    shipped = {a.precision for a in load_bundle(runtime_small_bundle).artifacts}
    assert "fp32" in shipped and {r["precision"] for r in rows} == shipped
    for r in rows:
        assert r["backend"] == "onnxruntime" and r["chunks"] == 50
        assert 0 < r["median_ms"] <= r["p95_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert r["size_mb"] > 0 and r["rtf"] > 0
    fp32 = next(r for r in rows if r["precision"] == "fp32")
    assert fp32["fp32_median_over_this"] == 1.0
    # every backend that is not installed is named with how to get it, never dropped
    from aim_edge.backends import available_backends

    missing = {k for k, v in available_backends().items() if v is None}
    assert missing == set(report["unavailable"])


def test_bench_models_default_bundle_int8_only(tmp_path):
    out = tmp_path / "m.json"
    assert bench_models.main(["--quick", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["bundles"][0]["rows"]
    assert [r["precision"] for r in rows] == ["int8-dynamic"]
    assert rows[0]["fp32_median_over_this"] is None  # no fp32 peer shipped in the default
