"""Environment header shared by every benchmark: what ran, where, with which versions.

``environment()`` returns a JSON-able dict; ``print_header(title)`` prints it and returns it, so a
benchmark stores the same facts it showed (python-soxr prints versions and CPU flags the same
way in its ``tests/conftest.py``).
"""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np

__all__ = ["cpu_flags", "cpu_model", "environment", "print_header"]

# SIMD features that matter for audio front ends and inference, in display order.
_INTERESTING_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
    "avx_vnni", "avx512_bf16", "amx_tile", "asimd", "asimdhp", "asimddp", "sve", "sve2",
    "neon", "vfpv4",
)
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def cpu_model() -> str:
    """The CPU's marketing name, or ``platform.processor()`` where /proc/cpuinfo has none."""
    for key in ("model name", "Model", "Hardware", "cpu model"):
        match = re.search(rf"^{key}\s*:\s*(.+)$", _cpuinfo(), re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The interesting SIMD flags this CPU reports (x86 ``flags`` or Arm ``Features``)."""
    match = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", _cpuinfo(), re.MULTILINE)
    present = set(match.group(1).split()) if match else set()
    return [flag for flag in _INTERESTING_FLAGS if flag in present]


def _aim_edge_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("aim-edge")
    except PackageNotFoundError:
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        try:
            match = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(), re.MULTILINE)
        except OSError:
            match = None
        return f"{match.group(1)} (checkout, not installed)" if match else "unknown"


def environment() -> dict[str, Any]:
    """Versions, platform, CPU and thread settings, as a JSON-able dict."""
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "numpy": np.__version__,
        "aim_edge": _aim_edge_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "threads": {name: os.environ[name] for name in _THREAD_VARS if name in os.environ},
        "executable": sys.executable,
    }


def print_header(title: str, extra: dict[str, Any] | None = None,
                 file: TextIO | None = None) -> dict[str, Any]:
    """Print ``title`` and the environment (plus ``extra`` lines); return the environment dict."""
    out = file or sys.stdout
    env = environment()
    print(f"== {title} ==", file=out)
    print(f"python {env['python']} | numpy {env['numpy']} | aim-edge {env['aim_edge']}", file=out)
    print(f"{env['platform']} | {env['cpu_model']} x{env['cpu_count']}", file=out)
    print(f"cpu flags: {' '.join(env['cpu_flags']) or '(none reported)'}", file=out)
    if env["threads"]:
        print("threads: " + " ".join(f"{k}={v}" for k, v in env["threads"].items()), file=out)
    for key, value in (extra or {}).items():
        print(f"{key}: {value}", file=out)
    print(file=out)
    return env


def write_report(report: dict, out: Path) -> None:
    """Write a benchmark report as JSON (creating the folder) and say where."""
    import json

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")
