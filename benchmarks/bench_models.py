"""Per-chunk latency and size of every model artifact on every installed backend.

    python -m benchmarks.bench_models [--model BUNDLE ...] [--chunks N] [--quick] [--out FILE]

Each artifact is opened through the runtime's own backend layer (``aim_edge.backends``, one
inference thread, the same session options the loop uses) and stepped over a deterministic
log-mel-like stream with its state fed back, as in a live run. Reported per artifact: median,
p95, p99 and max milliseconds per 160 ms chunk, real-time factor, file size; and, as the
comparison inside the run, each artifact's median relative to the bundle's fp32 artifact (the
peer) where the bundle has one, and each non-onnxruntime row relative to onnxruntime on the
same precision (the cross-backend peer). Backends that are not installed are listed with
their install hint instead of silently skipped. Results: ``benchmarks/results/models.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._env import print_header, write_report

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_MS = 5.0


def bench_artifact(bundle: Any, backend_name: str, precision: str, chunks: int,
                   warmup: int) -> dict[str, Any]:
    from aim_edge.backends import create_backend, known_answer_feeds, zero_feeds

    backend = create_backend(backend_name, bundle, precision=precision, threads=1)
    try:
        feeds = zero_feeds(bundle)
        state_names = [s.name for s in bundle.state]
        inputs = known_answer_feeds(bundle, chunks + warmup)
        times = []
        for i, fbank in enumerate(inputs):
            feeds["fbank"] = fbank
            t0 = time.perf_counter_ns()
            out = backend.run(feeds)
            dt = time.perf_counter_ns() - t0
            for name in state_names:
                feeds[name] = out[f"new_{name}"]
            if i >= warmup:
                times.append(dt / 1e6)
    finally:
        backend.close()
    ms = np.array(times)
    artifact = bundle.artifact(format="onnx" if backend_name == "onnxruntime" else "tflite",
                               precision=precision)
    return {
        "backend": backend_name, "file": artifact.file, "precision": precision,
        "size_mb": round(artifact.size / 1e6, 3), "chunks": len(ms),
        "median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()),
        "rtf": float(np.median(ms) / (bundle.chunk_seconds * 1000)),
    }


def run(models: Sequence[str | None], chunks: int, warmup: int) -> dict[str, Any]:
    from aim_edge.backends import BACKENDS, available_backends
    from aim_edge.bundle import load_bundle
    from aim_edge.bundles import default_bundle_path

    installed = available_backends()
    hints = {"litert": "pip install aim-edge[tflite]",
             "tflite-runtime": "legacy: Python <= 3.11 and numpy < 2 only"}
    report: dict[str, Any] = {"target_ms_p50": TARGET_MS, "bundles": [], "unavailable": {}}
    for name, version in installed.items():
        if version is None:
            report["unavailable"][name] = hints.get(name, f"pip install {name}")
    for model in models:
        path = model or default_bundle_path()
        if path is None:
            raise SystemExit("no bundle given and none shipped")
        bundle = load_bundle(path)
        rows = []
        for backend_name, (fmt, _, _) in BACKENDS.items():
            if installed.get(backend_name) is None:
                continue
            for art in bundle.artifacts:
                if art.role != "step" or art.format != fmt:
                    continue
                rows.append(bench_artifact(bundle, backend_name, art.precision, chunks, warmup))
        for row in rows:
            peer = next((r for r in rows if r["backend"] == row["backend"]
                         and r["precision"] == "fp32"), None)
            row["fp32_median_over_this"] = (peer["median_ms"] / row["median_ms"]
                                            if peer else None)
            # across backends: the same precision under onnxruntime is the named peer
            ort_peer = next((r for r in rows if r["backend"] == "onnxruntime"
                             and r["precision"] == row["precision"]), None)
            row["onnxruntime_median_over_this"] = (
                ort_peer["median_ms"] / row["median_ms"]
                if ort_peer and row["backend"] != "onnxruntime" else None)
        report["bundles"].append({"bundle": bundle.name, "path": str(path), "rows": rows})
    return report


def format_table(report: dict[str, Any]) -> str:
    lines = []
    for b in report["bundles"]:
        lines.append(f"\n{b['bundle']}")
        lines.append(f"  {'backend':<12} {'file':<20} {'precision':<13} {'MB':>6} {'p50 ms':>8} "
                     f"{'p95':>7} {'p99':>7} {'max':>7} {'RTF':>7} {'fp32/this':>9} "
                     f"{'ort/this':>8}")
        for r in b["rows"]:
            ratio = f"{r['fp32_median_over_this']:.2f}x" if r["fp32_median_over_this"] else "-"
            ort = r.get("onnxruntime_median_over_this")
            ort_s = f"{ort:.2f}x" if ort else "-"
            lines.append(f"  {r['backend']:<12} {r['file']:<20} {r['precision']:<13} "
                         f"{r['size_mb']:6.2f} {r['median_ms']:8.2f} {r['p95_ms']:7.2f} "
                         f"{r['p99_ms']:7.2f} {r['max_ms']:7.2f} {r['rtf']:7.4f} {ratio:>9} "
                         f"{ort_s:>8}")
    for name, hint in report["unavailable"].items():
        lines.append(f"  {name}: not installed ({hint})")
    lines.append(f"target: <= {TARGET_MS} ms per 160 ms chunk at p50 for the default INT8 artifact")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_models",
                                description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append", default=None,
                   help="bundle folder or zip (repeatable; default: the shipped bundle)")
    p.add_argument("--chunks", type=int, default=1000, help="timed chunks per artifact")
    p.add_argument("--quick", action="store_true", help="50 chunks: a smoke run")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    chunks, warmup = (50, 5) if args.quick else (args.chunks, 50)
    out = args.out or RESULTS / ("models.quick.json" if args.quick else "models.json")
    env = print_header("bench_models: per-chunk latency of every artifact, 1 inference thread",
                       {"mode": "quick" if args.quick else "full", "chunks": chunks})
    report = run(args.model or [None], chunks, warmup)
    report["environment"] = env
    report["command"] = "python -m benchmarks.bench_models " + " ".join(argv or sys.argv[1:])
    print(format_table(report))
    write_report(report, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
