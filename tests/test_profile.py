"""`aim-edge profile`: figures from the real loop, sweeps, verdict and exit codes, reports.

Runs the shipped default bundle (INT8 ONNX) on the shipped demo scene, a few seconds at a time.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from aim_edge import cli
from aim_edge.audio import write_wav
from aim_edge.backends import available_backends
from aim_edge.bundle import load_bundle
from aim_edge.bundles import default_bundle_path
from aim_edge.profile import RunSpec, measure, profile
from aim_edge.profile.measure import STAGES, CpuLoad, LoopedWavSource, thread_cpu
from aim_edge.profile.report import SCHEMA, SCHEMA_VERSION, tail_breakdown, write_report
from aim_edge.profile.sweep import verdict

DEMO = str(resources.files("aim_edge").joinpath("data", "demo_scene.wav"))


@pytest.fixture(scope="module")
def fast_result():
    """3 s of the demo scene as fast as possible, in this process."""
    return measure(RunSpec(input=DEMO, seconds=3.0, realtime=False))


def test_measure_figures_are_consistent(fast_result):
    r = fast_result
    # 3 s of audio = 300 fbank frames (+ the flushed tail) in 16-frame chunks
    assert r["chunks"] == math.ceil(3.0 / 0.16) and r["audio_s"] == pytest.approx(3.0)
    assert r["algorithmic_latency_ms"] == pytest.approx(175.0)
    art = load_bundle(default_bundle_path()).artifact(format="onnx")  # the smallest ONNX
    assert r["artifact"] == {"file": art.file, "format": "onnx", "precision": art.precision,
                             "size_mb": round(art.size / 1e6, 3)}
    pc = r["per_chunk"]
    n = len(pc["end_to_end"])
    # 3 s = 18.75 chunks: the last one, padded at the end of the input, is left out
    assert n == r["chunks_measured"] == r["chunks"] - 1
    assert all(len(pc[s]) == n for s in STAGES)
    assert any("the last chunk, padded" in note for note in r["notes"])
    # each chunk's end to end is the sum of its stages (capture -> ring is not part of it)
    parts = sum(np.asarray(pc[s]) for s in STAGES[1:-1])
    np.testing.assert_allclose(parts, pc["end_to_end"], atol=0.01)
    st = r["stages_ms"]
    for s in STAGES:
        p = st[s]
        assert p["n"] == n and p["p50"] <= p["p95"] <= p["p99"] <= p["max"]
    assert st["capture_to_ring"]["max"] == 0.0  # a file source stamps no capture time
    assert 0.3 < st["model"]["p50"] < 100.0  # a real 4 M-parameter step, not a stub
    assert st["end_to_end"]["max"] >= st["model"]["max"]
    assert r["dropped_samples"] == 0  # lossless in --fast mode
    # chunks tile the audio without gaps, up to the padded last one
    assert pc["start_s"][0] == 0.0 and pc["end_s"][-1] == pytest.approx(3.0 - 0.12, abs=0.02)
    # cold start and resources
    cs = r["cold_start"]
    assert cs["load_ms"] > 1.0 and cs["first_chunk_ms"] > 0 and cs["import_ms"] is None
    assert 20.0 < r["peak_rss_mb"] < 4000.0
    cpu = r["cpu_s"]
    assert set(cpu["loop_threads"]) == {"source", "perceive", "decide", "respond"}
    assert cpu["loop_threads"]["decide"] > 0 and cpu["process_run"] > 0
    assert r["rtf"]["model"] == pytest.approx(sum(pc["model"]) / 1e3 / r["audio_s"], abs=1e-4)
    assert any("--fast" in note for note in r["notes"])


def test_tail_breakdown_names_the_stage_of_the_slowest_chunks(fast_result):
    tail = tail_breakdown(fast_result)
    e2e = np.asarray(fast_result["per_chunk"]["end_to_end"])
    assert tail["chunks"] == 1 and tail["threshold_ms"] == pytest.approx(e2e.max(), abs=1e-3)
    worst = int(np.argmax(e2e))
    stage_of_worst = max(tail["mean_ms"], key=lambda s: fast_result["per_chunk"][s][worst])
    assert tail["dominant"] == stage_of_worst


def test_looped_source_repeats_and_cuts(tmp_path):
    wav = write_wav(tmp_path / "short.wav", 16000, np.full(8000, 0.1, np.float32))
    src = LoopedWavSource(wav, seconds=1.3)
    got = sum(len(b) for _, b in src.blocks())
    assert got == 20800 and src.repeats == 2
    once = LoopedWavSource(wav)
    assert sum(len(b) for _, b in once.blocks()) == 8000


def test_thread_cpu_sees_this_thread():
    tasks = thread_cpu()
    assert os.getpid() in tasks  # the main thread's tid is the pid
    name, seconds = tasks[os.getpid()]
    assert name and seconds >= 0


def test_cpu_load_runs_and_is_killed():
    import time

    from aim_edge.profile.measure import _proc_cpu_s

    with CpuLoad(1) as load:
        pid = load.pids[0]
        deadline = time.monotonic() + 20.0  # a busy shared machine may start it late
        while (_proc_cpu_s(pid) or 0.0) < 0.05 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert load.cpu_s[0] is not None and load.cpu_s[0] >= 0.05  # it really spun
    assert load.procs[0].returncode is not None  # killed and reaped
    assert not Path(f"/proc/{pid}").exists()


def test_verdict_fails_on_budget_and_on_drops(fast_result):
    row = {"backend": "onnxruntime", "precision": "int8-dynamic", "threads": 1,
           "status": "measured", "result": fast_result}
    service_p99 = fast_result["service_ms"]["p99"]
    assert verdict([dict(row)], service_p99 + 1.0)["result"] == "PASS"
    v = verdict([dict(row)], service_p99 / 2)
    assert v["result"] == "FAIL" and "service p99" in v["reasons"][0]
    live = dict(fast_result, realtime=True, dropped_samples=320)
    v = verdict([dict(row, result=live)], 1e5)
    assert v["result"] == "FAIL" and "320 samples dropped" in v["reasons"][0]
    absent = {"backend": "litert", "precision": None, "threads": 1, "status": "unavailable",
              "message": "litert is not installed"}
    assert verdict([absent], 200.0)["result"] == "NONE"


def test_sweep_names_absent_precisions_and_missing_backends(tmp_path):
    bundle = load_bundle(default_bundle_path())
    onnx = sorted({a.precision for a in bundle.artifacts if a.format == "onnx"})
    tflite = {a.precision for a in bundle.artifacts if a.format == "tflite"}
    missing = next(p for p in ("int8-static", "fp16", "fp32") if p not in onnx)
    report = profile(DEMO, backends=["onnxruntime", "litert"], precisions=[onnx[0], missing],
                     threads=[1], realtime=False, seconds=1.0, in_process=True)
    rows = {(r["backend"], r["precision"]): r for r in report["rows"]}
    assert rows[("onnxruntime", onnx[0])]["status"] == "measured"
    absent = rows[("onnxruntime", missing)]
    assert absent["status"] == "absent" and f"lists no onnx {missing}" in absent["message"]
    assert all(p in absent["message"] for p in onnx)  # says what the bundle does list
    lite = rows[("litert", onnx[0])]
    if available_backends()["litert"] is None:
        assert lite["status"] == "unavailable" and "aim-edge[tflite]" in lite["message"]
    elif not tflite:
        assert lite["status"] == "absent" and "no tflite artifact" in lite["message"]
    else:
        assert lite["status"] == ("measured" if onnx[0] in tflite else "absent")
    assert report["verdict"]["result"] == "PASS"  # absent rows do not fail the verdict
    assert report["schema"] == SCHEMA and report["schema_version"] == SCHEMA_VERSION


def test_cli_realtime_sweep_report_renders_in_chromium(tmp_path, capsys):
    """Two fresh worker processes (1 and 2 threads), real-time pacing, report with plots, and
    the HTML rendered by headless Chromium with every plot decoded."""
    pytest.importorskip("matplotlib", reason="plots need matplotlib: pip install"
                        " 'aim-edge[plot]'")
    out = tmp_path / "prof"
    rc = cli.main(["profile", DEMO, "--seconds", "1.5", "--threads", "1", "2",
                   "--report", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "verdict: PASS" in text and "e2e p50" in text
    report = json.loads((out / "report.json").read_text())
    assert report["schema"] == "aim-edge-profile" and report["schema_version"] == 1
    rows = report["rows"]
    assert [(r["threads"], r["status"]) for r in rows] == [(1, "measured"), (2, "measured")]
    for r in rows:
        res = r["result"]
        assert res["realtime"] and res["dropped_samples"] == 0
        assert res["cold_start"]["import_ms"] > 0  # a fresh process each
        assert 1.4 < res["wall_s"] < 6.0  # paced: about the audio length
        assert r["pass"] and r["tail"]["dominant"] in res["stages_ms"]
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 5 and "sweep.png" in pngs
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium is missing: scripts/install-system-deps.sh test"
                    " installs the Debian package `chromium`")
    args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dbus",
            f"--user-data-dir={tmp_path / 'chrome'}"]
    url = (out / "report.html").resolve().as_uri()
    dom = subprocess.run(args + ["--dump-dom", url], capture_output=True, text=True,
                         timeout=120).stdout
    assert 'data-plots="5"' in dom and 'data-plots-broken="0"' in dom, dom[:500]
    widths = [int(w) for w in re.findall(r'data-natural-width="(\d+)"', dom)]
    assert len(widths) == 5 and min(widths) >= 800  # decoded at their real pixel size


def test_cli_exit_3_when_p99_misses_the_budget(tmp_path, capsys):
    rc = cli.main(["profile", DEMO, "--seconds", "1", "--fast", "--budget-ms", "0.001",
                   "--in-process"])
    text = capsys.readouterr().out
    assert rc == 3
    assert "verdict: FAIL" in text and "p99" in text and "> budget 0.001 ms" in text


def test_fast_timeline_is_drawn_in_audio_time(fast_result):
    from aim_edge.profile.report import timeline_window

    assert fast_result["realtime"] is False
    # --fast: chunks enter the ring far faster than real time, so wall-clock positions would
    # pile every bar onto a sliver; audio positions space them one chunk apart
    wall = np.asarray(fast_result["per_chunk"]["t_s"])
    assert wall[-1] - wall[0] < 0.5 * (len(wall) - 1) * fast_result["chunk_ms"] / 1000
    lo, hi = timeline_window(fast_result, 2.0)
    assert hi - lo == pytest.approx(2.0, abs=0.21)
    starts = np.asarray(fast_result["per_chunk"]["start_s"])
    inside = (starts >= lo) & (starts <= hi)
    assert 10 <= inside.sum() <= 14  # about 2 s / 160 ms chunks


def test_report_without_matplotlib_says_what_to_install(fast_result, tmp_path, capsys):
    report = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "created": "now",
              "environment": {}, "run": {"input": DEMO, "audio_s": 3.0, "realtime": False},
              "bundle": {"name": "default", "path": "-", "algorithmic_latency_ms": 175.0,
                         "chunk_ms": 160.0},
              "load": {"processes": 0, "pids": [], "cpu_s": []}, "budget_ms": 200.0,
              "rows": [{"backend": "onnxruntime", "precision": "int8-dynamic", "threads": 1,
                        "status": "measured", "result": fast_result}]}
    report["verdict"] = verdict(report["rows"], 200.0)
    with mock.patch.dict(sys.modules, {"matplotlib": None}):
        files = write_report(report, tmp_path / "r")
    assert files["png"] == [] and "aim-edge[plot]" in files["plot_error"]
    page = files["html"].read_text()
    assert "aim-edge[plot]" in page and "<img" not in page and "e2e p50" in page
    assert json.loads(files["json"].read_text())["plots"]["error"] == files["plot_error"]
    # the command says it up front, and again where the plots would be
    with mock.patch.dict(sys.modules, {"matplotlib": None}), \
            mock.patch("aim_edge.profile.cli._have_matplotlib", return_value=False):
        rc = cli.main(["profile", DEMO, "--seconds", "1", "--fast", "--in-process",
                       "--report", str(tmp_path / "cli")])
    text = capsys.readouterr().out
    assert rc == 0 and text.count("aim-edge[plot]") == 2
    assert (tmp_path / "cli" / "report.html").is_file()
    assert not list((tmp_path / "cli").glob("*.png"))


def test_cli_bad_input_is_a_clear_error(tmp_path, capsys):
    rc = cli.main(["profile", str(tmp_path / "nope.wav"), "--in-process"])
    assert rc == 1 and "nope.wav" in capsys.readouterr().err
    empty = write_wav(tmp_path / "empty.wav", 16000, np.zeros(0, np.float32))
    rc = cli.main(["profile", str(empty), "--in-process"])
    assert rc == 1 and "holds no audio samples" in capsys.readouterr().err
    for bad in (["--seconds", "0"], ["--budget-ms", "-5"], ["--threads", "0"],
                ["--load", "-1"], ["--precisions", "int4"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(["profile", DEMO, *bad])
        assert exc.value.code == 2
        assert bad[1] in capsys.readouterr().err
    # a report folder that cannot exist (under a file) fails before any measurement
    rc = cli.main(["profile", DEMO, "--in-process", "--report", str(empty / "sub")])
    captured = capsys.readouterr()
    assert rc == 2 and f"--report {empty / 'sub'}: cannot create the folder" in captured.err
    assert "aim-edge profile:" not in captured.out  # the sweep never started


def test_importing_the_profiler_loads_no_plotting_or_inference_library():
    code = ("import sys, aim_edge.profile, aim_edge.profile.cli, aim_edge.profile.report\n"
            "print(','.join(m for m in ('matplotlib', 'onnxruntime', 'torch', 'librosa')"
            " if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_fast_service_is_compute_only_and_ring_wait_is_apart(fast_result):
    """--fast pushes the file ahead of the loop: that wait is ``ring_wait``, not features."""
    pc = {k: np.asarray(v) for k, v in fast_result["per_chunk"].items()}
    assert (pc["ring_wait"] >= 0).all() and (pc["features"] >= 0).all()
    # the fbank of 160 ms of audio is a fraction of a millisecond here; generous bound
    assert 0 < fast_result["stages_ms"]["features"]["p50"] < 5.0
    service = pc["features"] + pc["model"] + pc["decision"] + pc["respond"]
    assert fast_result["service_ms"]["max"] == pytest.approx(service.max(), abs=0.005)
    assert fast_result["service_ms"]["p99"] < fast_result["stages_ms"]["end_to_end"]["p99"]
    # the file reader ran ahead: most chunks waited in the ring longer than they computed
    assert np.median(pc["ring_wait"]) > np.median(pc["features"])


def test_notes_say_when_p99_is_not_a_tail(fast_result):
    n = fast_result["chunks_measured"]
    assert n < 100 and any(f"only {n} chunk(s)" in note for note in fast_result["notes"])
    assert any("capture -> ring is 0" in note for note in fast_result["notes"])


def test_input_shorter_than_a_frame_measures_nothing(tmp_path, capsys):
    tiny = write_wav(tmp_path / "tiny.wav", 16000, np.full(300, 0.1, np.float32))
    rc = cli.main(["profile", str(tiny), "--fast", "--in-process"])
    text = capsys.readouterr().out
    assert rc == 1 and "verdict: NONE" in text and "gave no complete chunk" in text
    assert "None ms" not in text


def test_a_crashed_configuration_keeps_the_other_rows_and_fails(monkeypatch):
    import importlib

    measure_mod = importlib.import_module("aim_edge.profile.measure")  # the module, not the
    real = measure_mod.measure  # function aim_edge.profile exports under the same name

    def flaky(spec, **kw):
        if spec.threads == 2:
            raise RuntimeError("provider exploded")
        return real(spec, **kw)

    monkeypatch.setattr(measure_mod, "measure", flaky)
    report = profile(DEMO, threads=[1, 2], realtime=False, seconds=1.0, in_process=True)
    rows = {r["threads"]: r for r in report["rows"]}
    assert rows[1]["status"] == "measured"
    assert rows[2]["status"] == "failed" and "RuntimeError: provider exploded" in \
        rows[2]["message"]
    v = report["verdict"]
    assert v["result"] == "FAIL" and any("provider exploded" in r for r in v["reasons"])


def test_providers_are_onnxruntime_only():
    from aim_edge.engine import Engine
    from aim_edge.errors import ConfigError

    with pytest.raises(ConfigError, match="onnxruntime backend only.*'litert'"):
        Engine.from_bundle(backend="litert", providers=["cuda"])


def test_sigterm_stops_the_cpu_hogs_and_the_worker(tmp_path):
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "aim_edge.cli", "profile", DEMO, "--seconds", "60",
         "--load", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=tmp_path)

    def children() -> list[int]:
        out = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == proc.pid:
                out.append(int(stat.parent.name))
        return out

    deadline = time.monotonic() + 60.0
    while len(children()) < 2 and time.monotonic() < deadline:  # a hog and the worker
        time.sleep(0.2)
    kids = children()
    assert len(kids) >= 2, "the profile never started its hog and worker"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM and "terminated (SIGTERM)" in err
    time.sleep(0.2)
    alive = [k for k in kids if Path(f"/proc/{k}").exists()
             and "Z" not in Path(f"/proc/{k}/stat").read_text().rsplit(")", 1)[1].split()[0]]
    assert alive == []


def test_capture_to_ring_is_never_the_dominant_stage_of_end_to_end(fast_result):
    # capture -> ring comes before the ring time end to end starts from: however long it is,
    # the tail's dominant stage is one end to end is made of
    r = json.loads(json.dumps(fast_result))
    r["per_chunk"]["capture_to_ring"] = [1000.0] * len(r["per_chunk"]["end_to_end"])
    tail = tail_breakdown(r)
    assert tail["mean_ms"]["capture_to_ring"] == 1000.0
    assert tail["dominant"] == tail_breakdown(fast_result)["dominant"] != "capture_to_ring"


def test_a_crashed_worker_is_named_by_its_exception_and_a_command_to_rerun(tmp_path):
    from aim_edge.profile.sweep import _rerun_hint, _worker_failure

    out, err = tmp_path / "out.json", tmp_path / "err.txt"
    err.write_text("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
                   "onnxruntime.capi.onnxruntime_pybind11_state.Fail: [ONNXRuntimeError] : 1"
                   " : FAIL : bad node\n\n  warning: a thread pool line after it\n")
    assert _worker_failure(out, err).startswith(
        "onnxruntime.capi.onnxruntime_pybind11_state.Fail: [ONNXRuntimeError]")
    out.write_text(json.dumps({"crash": "KeyError: 'ctc_logprobs'"}))
    assert _worker_failure(out, err) == "KeyError: 'ctc_logprobs'"
    err.write_text("")
    out.unlink()
    assert _worker_failure(out, err) == "no message (a native crash?)"
    assert _rerun_hint(RunSpec(input="a b.wav", precision="fp32", threads=2)) == \
        "aim-edge run 'a b.wav' --backend onnxruntime --precision fp32 --threads 2"
    assert _rerun_hint(RunSpec(input="", device="USB", seconds=5.0)) == \
        "aim-edge listen --device USB --backend onnxruntime --threads 1"


def test_the_device_may_be_an_index_and_anything_else_is_a_clear_error():
    from aim_edge.errors import ConfigError
    from aim_edge.profile.measure import device_choice

    assert device_choice("default") is None and device_choice(" 3 ") == 3
    assert device_choice("USB Audio") == "USB Audio"
    for bad in (1.5, True, ["hw:0"]):
        with pytest.raises(ConfigError, match="device = .* is invalid"):
            profile(DEMO, device=bad, seconds=1.0)
