"""Sweeps over backends x precisions x threads, one fresh process per configuration, and the
verdict against the latency budget.

Every requested combination gets a row. A backend that is not installed, or a precision the
bundle's manifest does not list for that backend's format, is a row with ``status`` ``unavailable``
or ``absent`` and a message that says what is missing and how to get it; it is never dropped
silently. Measured rows have ``status`` ``measured`` and the result of
:func:`~aim_edge.profile.measure.measure`.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import AimEdgeError, ConfigError
from .measure import CpuLoad, RunSpec

__all__ = ["INSTALL_HINTS", "PRECISION_ORDER", "format_table", "plan", "run_sweep", "verdict"]

PRECISION_ORDER = ("fp32", "fp16", "int8-dynamic", "int8-static")
INSTALL_HINTS = {"onnxruntime": "pip install onnxruntime",
                 "litert": "pip install 'aim-edge[tflite]'",
                 "tflite-runtime": "pip install tflite-runtime (legacy: Python <= 3.11,"
                                   " numpy < 2)"}


def _precision_key(p: str) -> tuple[int, str]:
    return (PRECISION_ORDER.index(p) if p in PRECISION_ORDER else len(PRECISION_ORDER), p)


def plan(model: str | Path | None, backends: Sequence[str], precisions: Sequence[str] | None,
         threads: Sequence[int]) -> tuple[Any, list[dict[str, Any]]]:
    """The sweep's rows before anything runs: ``(bundle, rows)``.

    ``precisions`` None = every precision the manifest lists for each backend's format.
    """
    from ..backends import BACKENDS, available_backends, canonical_name
    from ..bundle import load_bundle
    from ..bundles import default_bundle_path

    path = model if model is not None else default_bundle_path()
    if path is None:
        raise AimEdgeError("no model bundle given and none is shipped; pass --model PATH")
    bundle = load_bundle(path)
    installed = available_backends()
    rows: list[dict[str, Any]] = []
    seen = set()
    for name in backends:
        backend = canonical_name(name)
        if backend in seen:
            continue
        seen.add(backend)
        fmt = BACKENDS[backend][0]
        listed = sorted({a.precision for a in bundle.artifacts
                         if a.role == "step" and a.format == fmt}, key=_precision_key)
        wanted = list(precisions) if precisions else (listed or [None])
        for precision in wanted:
            for n in threads:
                row: dict[str, Any] = {"backend": backend, "precision": precision,
                                       "threads": n, "format": fmt}
                if installed.get(backend) is None:
                    row.update(status="unavailable",
                               message=f"{backend} is not installed: "
                                       f"{INSTALL_HINTS.get(backend, f'pip install {backend}')}")
                elif not listed:
                    have = sorted({(a.format, a.precision) for a in bundle.artifacts
                                   if a.role == "step"})
                    row.update(status="absent",
                               message=f"bundle {bundle.name!r} has no {fmt} artifact for"
                                       f" {backend}; it lists {have}")
                elif precision not in listed:
                    row.update(status="absent",
                               message=f"bundle {bundle.name!r} lists no {fmt} {precision}"
                                       f" artifact; {fmt} precisions it lists:"
                                       f" {', '.join(listed)}")
                else:
                    row.update(status="planned", message="")
                rows.append(row)
    return bundle, rows


def _run_worker(spec: RunSpec, timeout_s: float | None,
                tick: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Run ``spec`` in a fresh process; ``tick(elapsed_s)`` is called about twice a second
    while it runs (progress bars)."""
    with tempfile.TemporaryDirectory(prefix="aim-edge-profile-") as tmp:
        out = Path(tmp) / "result.json"
        err_path = Path(tmp) / "stderr.txt"
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # a checkout that is not installed
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"]
                                    if env.get("PYTHONPATH") else "")
        t0 = time.monotonic()
        with open(err_path, "w", encoding="utf-8") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "aim_edge.profile.worker", json.dumps(spec.to_dict()),
                 str(out)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                env=env)
            try:
                while True:
                    try:
                        proc.wait(timeout=0.5)
                        break
                    except subprocess.TimeoutExpired:
                        elapsed = time.monotonic() - t0
                        if timeout_s is not None and elapsed > timeout_s:
                            raise AimEdgeError(
                                f"profiling {spec.backend}/{spec.precision}/{spec.threads}"
                                f" threads did not finish within {timeout_s:.0f} s") from None
                        if tick is not None:
                            tick(elapsed)
            finally:
                if proc.poll() is None:  # timeout or Ctrl-C: end the worker we started
                    proc.kill()
                    proc.wait()
        if proc.returncode != 0 or not out.is_file():
            raise AimEdgeError(f"the profile worker failed (exit {proc.returncode}): "
                               f"{_worker_failure(out, err_path)} (for the traceback:"
                               f" {_rerun_hint(spec)})")
        return json.loads(out.read_text())


def _worker_failure(out: Path, err_path: Path) -> str:
    """What a failed worker said: its ``crash`` record, else the exception line of the
    traceback on its stderr (a native crash leaves neither: the last line, or a note)."""
    try:
        crash = json.loads(out.read_text()).get("crash") if out.is_file() else None
    except (OSError, ValueError, AttributeError):
        crash = None
    if crash:
        return str(crash)
    raw = err_path.read_text(errors="replace").splitlines()
    starts = [i for i, ln in enumerate(raw) if ln.startswith("Traceback (most recent call")]
    if starts:  # the exception line: the first unindented line after the last traceback
        for ln in raw[starts[-1] + 1:]:
            if ln.strip() and not ln[0].isspace():
                return ln.strip()
    lines = [ln.strip() for ln in raw if ln.strip()]
    return lines[-1] if lines else "no message (a native crash?)"


def _rerun_hint(spec: RunSpec) -> str:
    """The command that runs the same configuration in the foreground."""
    what = (f"aim-edge listen --device {shlex.quote(str(spec.device))}" if spec.device is not None
            else f"aim-edge run {shlex.quote(spec.input)}")
    prec = f" --precision {spec.precision}" if spec.precision else ""
    return f"{what} --backend {spec.backend}{prec} --threads {spec.threads}"


def worker_timeout_s(spec: RunSpec) -> float:
    """Seconds one worker may take before it is killed and its row marked failed: loading
    (TensorRT engine builds included) plus the audio at real time, generously; a hung
    execution provider must not hang the sweep."""
    audio = spec.seconds
    if audio is None:
        from ..audio import wav_info

        try:
            audio = wav_info(spec.input).seconds
        except Exception:  # the worker reports a bad file itself
            audio = 60.0
    return 600.0 + 3.0 * float(audio)


def run_sweep(spec: RunSpec, rows: list[dict[str, Any]], *, load: int = 0,
              in_process: bool = False, progress: Callable[[str], None] | None = None,
              tick: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Measure every ``planned`` row (in a fresh process each unless ``in_process``), with
    ``load`` CPU-hog processes running throughout. Fills the rows in place; returns the load
    figures. ``progress(message)`` announces each configuration; ``tick(index, elapsed_s)``
    reports the running one's wall time (worker processes only)."""
    todo = [r for r in rows if r["status"] == "planned"]
    budget = worker_timeout_s(spec)
    with CpuLoad(load) as hogs:
        for i, row in enumerate(todo, 1):
            # execution providers are onnxruntime's; other backends run without them
            ort = row["backend"] == "onnxruntime"
            s = RunSpec.from_dict({**spec.to_dict(), "backend": row["backend"],
                                   "precision": row["precision"], "threads": row["threads"],
                                   "providers": spec.to_dict()["providers"] if ort else None})
            if progress:
                progress(f"[{i}/{len(todo)}] {row['backend']} {row['precision']}"
                         f" x{row['threads']} thread(s)")
            try:
                if in_process:
                    from .measure import measure

                    res = measure(s)
                else:
                    res = _run_worker(s, budget, None if tick is None else
                                      (lambda e, i=i: tick(i, e)))
            except Exception as exc:  # one configuration failing keeps the others' rows
                res = {"error": str(exc), "kind": type(exc).__name__}
            if "error" in res:
                row.update(status="failed", message=f"{res['kind']}: {res['error']}")
            else:
                if spec.providers and not ort:
                    res.setdefault("notes", []).append(
                        f"--providers {','.join(spec.providers)} is for onnxruntime only;"
                        f" {row['backend']} ran on its own CPU kernels")
                row.update(status="measured", result=res)
    return {"processes": load, "pids": hogs.pids, "cpu_s": hogs.cpu_s}


def verdict(rows: list[dict[str, Any]], budget_ms: float) -> dict[str, Any]:
    """PASS when every measured row's end-to-end p99 is within ``budget_ms`` and (with real-time
    pacing) no sample was dropped. With ``--fast`` the per-chunk service time (features + model
    + decision + respond, no waiting) is judged instead, since the file reader queues chunks.
    A configuration that failed while measured (not one that is absent or not installed) makes
    it FAIL; NONE when nothing was measured.
    """
    measured = [r for r in rows if r["status"] == "measured"]
    reasons = []
    for r in measured:
        res = r["result"]
        key = "end_to_end" if res["realtime"] else "service"
        p99 = (res["stages_ms"]["end_to_end"] if res["realtime"] else res["service_ms"])["p99"]
        r["judged"] = key
        r["p99_ms"] = p99
        ok = p99 is not None and p99 <= budget_ms
        why = []
        if not ok:
            why.append(f"{key} p99 {p99} ms > budget {budget_ms:g} ms")
        if res["realtime"] and res["dropped_samples"]:
            why.append(f"{res['dropped_samples']} samples dropped")
        cap = res.get("capture") or {}
        if cap.get("dropped_samples") or cap.get("input_overflows"):
            why.append(f"microphone: {cap.get('dropped_samples', 0)} samples dropped at the"
                       f" capture ring, {cap.get('input_overflows', 0)} PortAudio input"
                       " overflows")
        r["pass"] = not why
        if why:
            reasons.append(f"{_label(r)}: " + "; ".join(why))
    if not measured:
        return {"result": "NONE", "budget_ms": budget_ms, "reasons":
                ["no configuration could be measured"] + [f"{_label(r)}: {r['message']}"
                                                          for r in rows]}
    # a configuration that was planned but crashed is a failure, not a missing option
    reasons += [f"{_label(r)}: failed: {r['message']}" for r in rows
                if r["status"] == "failed"]
    return {"result": "FAIL" if reasons else "PASS", "budget_ms": budget_ms,
            "reasons": reasons}


def _label(r: dict[str, Any]) -> str:
    return f"{r['backend']}/{r['precision'] or '-'}/x{r['threads']}"


def _f(v: Any, nd: int = 2) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


TABLE_COLUMNS = ("backend", "precision", "thr", "e2e p50", "p95", "p99", "max", "model p50",
                 "p99", "algo", "RTF cpu", "CPU s", "RSS MB", "load ms", "1st ms", "drops",
                 "verdict")


def table_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    """The sweep table as strings (one list per row, :data:`TABLE_COLUMNS`)."""
    out = []
    for r in rows:
        head = [r["backend"], r["precision"] or "-", str(r["threads"])]
        if r["status"] != "measured":
            out.append(head + [f"{r['status']}: {r['message']}"])
            continue
        res = r["result"]
        e2e, model = res["stages_ms"]["end_to_end"], res["stages_ms"]["model"]
        cpu = res["cpu_s"]["process_run"]
        out.append(head + [
            _f(e2e["p50"]), _f(e2e["p95"]), _f(e2e["p99"]), _f(e2e["max"]), _f(model["p50"]),
            _f(model["p99"]), f"{res['algorithmic_latency_ms']:.0f}", _f(res["rtf"]["cpu"], 4),
            _f(cpu), _f(res["peak_rss_mb"], 0), _f(res["cold_start"]["load_ms"], 0),
            _f(res["cold_start"]["first_chunk_ms"]), str(res["dropped_samples"]),
            "pass" if r.get("pass") else ("FAIL" if "pass" in r else "-")])
    return out


def format_table(rows: list[dict[str, Any]]) -> str:
    """The sweep table as monospaced text (milliseconds unless said otherwise)."""
    body = table_rows(rows)
    full = [b for b in body if len(b) == len(TABLE_COLUMNS)]
    widths = [max([len(c)] + [len(b[i]) for b in full]) for i, c in enumerate(TABLE_COLUMNS)]
    lines = ["  ".join(c.rjust(w) if i > 2 else c.ljust(w)
                       for i, (c, w) in enumerate(zip(TABLE_COLUMNS, widths, strict=True)))]
    for b in body:
        if len(b) == len(TABLE_COLUMNS):
            lines.append("  ".join(c.rjust(w) if i > 2 else c.ljust(w)
                                   for i, (c, w) in enumerate(zip(b, widths, strict=True))))
        else:
            lines.append("  ".join(c.ljust(w) for c, w in zip(b[:3], widths, strict=False))
                         + "  " + b[3])
    return "\n".join(lines)


def check_choices(values: Sequence[str], allowed: Sequence[str], what: str) -> None:
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ConfigError(f"{what} {bad} unknown; choose from {', '.join(allowed)}")
