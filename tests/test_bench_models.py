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


def test_bench_models_default_bundle_every_installed_backend(tmp_path):
    from aim_edge.backends import available_backends

    out = tmp_path / "m.json"
    assert bench_models.main(["--quick", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["bundles"][0]["rows"]
    have = available_backends()
    want = [("onnxruntime", "model.int8.onnx")]
    if have["litert"] is not None:
        want.append(("litert", "model.int8.tflite"))
    assert [(r["backend"], r["file"]) for r in rows] == want
    assert all(r["precision"] == "int8-dynamic" for r in rows)
    assert rows[0]["fp32_median_over_this"] is None  # no fp32 peer shipped in the default
    assert rows[0]["onnxruntime_median_over_this"] is None  # onnxruntime is the peer itself
    for r in rows[1:]:  # other backends are compared with onnxruntime on the same precision
        assert r["onnxruntime_median_over_this"] == rows[0]["median_ms"] / r["median_ms"]
