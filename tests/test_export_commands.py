"""`python -m export` is the index of the export stage: every command module is in it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> set[str]:
    """Modules under export/ that run as a command (``python -m export.X``)."""
    out = set()
    for path in (ROOT / "export").rglob("*.py"):
        text = path.read_text()
        if 'if __name__ == "__main__"' not in text and path.name != "__main__.py":
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__main__":
            parts = parts[:-1]
        out.add(".".join(parts))
    return out - {"export", "export.onnx_export"}  # the index itself; a library (says so)


def test_the_index_lists_every_export_command():
    text = subprocess.run([sys.executable, "-m", "export"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout
    listed = set(re.findall(r"python -m (export[\w.]*)", text))
    commands = _commands()
    assert {"export.bundle", "export.train", "export.tflite", "export.rearm"} <= commands
    # export/whisper/export.py is what `python -m export.whisper` runs
    missing = commands - listed - {"export.whisper.export"}
    assert not missing, f"python -m export does not list {sorted(missing)}"


def test_onnx_export_says_it_is_a_library():
    r = subprocess.run([sys.executable, "-m", "export.onnx_export", "--help"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0 and "python -m export.bundle" in r.stdout
    r = subprocess.run([sys.executable, "-m", "export.onnx_export", "--out", "x"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "not a command" in r.stderr
