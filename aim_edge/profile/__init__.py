"""Latency profiler: where every millisecond goes, against the 200 ms budget.

``aim-edge profile`` (and :func:`profile`) plays an input through the real perceive-decide-
respond loop, paced in real time by default, for every configuration of a sweep over
backends x precisions x threads (each in a fresh process), optionally beside ``load`` CPU-hog
processes, and reports per stage and end to end (p50/p95/p99/max), the model's algorithmic
latency beside it, real-time factors, CPU seconds per thread, peak RSS, dropped samples and
cold start. The verdict is PASS when every measured configuration's p99 is within the budget
and no audio was dropped.

Modules: :mod:`.measure` (one run), :mod:`.sweep` (rows, worker processes, verdict, table),
:mod:`.report` (report.json / report.html / PNG plots), :mod:`.cli` (the subcommand).
Importing this package imports neither matplotlib nor onnxruntime.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .measure import RunSpec, device_choice, measure
from .sweep import format_table, plan, run_sweep, verdict

__all__ = ["RunSpec", "format_table", "measure", "profile"]


def profile(input: str | Path, *, model: str | Path | None = None,
            backends: Sequence[str] = ("onnxruntime",), precisions: Sequence[str] | None = None,
            threads: Sequence[int] = (1,), realtime: bool = True, seconds: float | None = None,
            load: int = 0, budget_ms: float = 200.0, instruction: str | None = None,
            providers: Sequence[str] | None = None, in_process: bool = False,
            device: int | str | None = None,
            progress: Callable[[str], None] | None = None,
            tick: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Run a sweep and return the report dict (see :mod:`.report` for the files).

    ``precisions`` None = every precision the bundle lists per backend format. ``seconds``:
    audio per configuration (the input is repeated or cut; None = the input once). ``device``:
    a live microphone instead of ``input`` (index, part of its name or ``"default"``; needs
    ``seconds``, real time).
    ``progress(message)`` / ``tick(index, elapsed_s)``: see :func:`.sweep.run_sweep`.
    """
    from ..errors import ConfigError
    from .report import SCHEMA, SCHEMA_VERSION, environment

    if not isinstance(budget_ms, (int, float)) or not 0 < budget_ms < 1e6:
        raise ConfigError(f"budget_ms = {budget_ms!r} is invalid: expected milliseconds > 0")
    if device is not None:
        if isinstance(device, bool) or not isinstance(device, (int, str)):
            raise ConfigError(f"device = {device!r} is invalid: give an index, part of the"
                              " name or \"default\" (aim-edge devices lists them)")
        device = str(device)
    spec = RunSpec(input=str(input), model=str(model) if model is not None else None,
                   realtime=realtime, seconds=seconds, instruction=instruction,
                   providers=tuple(providers) if providers else None, device=device)
    spec.validate()
    for n in threads:
        RunSpec(input=spec.input, threads=n).validate()
    from .measure import LoopedWavSource

    if device is None:
        src = LoopedWavSource(spec.input, seconds)  # a bad file fails before anything runs
        audio_s = seconds if seconds is not None else src.info.seconds
    else:  # a bad device fails before anything runs, with the device list
        from ..capture.devices import (
            host_api_names,
            list_input_devices,
            require_sounddevice,
            select_device,
        )

        require_sounddevice()
        devices = list_input_devices()
        select_device(devices, device_choice(device), None,
                      () if devices else host_api_names())
        audio_s = float(seconds or 0.0)
    bundle, rows = plan(model, backends, precisions, threads)
    load_info = run_sweep(spec, rows, load=load, in_process=in_process, progress=progress,
                          tick=tick)
    v = verdict(rows, float(budget_ms))
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "environment": environment(),
        "run": {"input": f"microphone {device}" if device is not None else str(input),
                "audio_s": round(float(audio_s), 3),
                "realtime": realtime, "instruction": instruction,
                "backends": list(backends), "precisions": list(precisions or []),
                "threads": list(threads), "isolated_processes": not in_process},
        "bundle": {"name": bundle.name, "path": str(bundle.root),
                   "algorithmic_latency_ms": bundle.algorithmic_latency_ms,
                   "chunk_ms": bundle.chunk_seconds * 1000.0},
        "load": load_info,
        "budget_ms": float(budget_ms),
        "rows": rows,
        "verdict": v,
    }


def report_paths(out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    return {"json": out / "report.json", "html": out / "report.html"}
