"""The runtime never imports torch (or other heavy optional parts) as a side effect."""

import subprocess
import sys

CODE = """
import sys
import aim_edge, aim_edge.cli, aim_edge.config, aim_edge.errors, aim_edge.features, aim_edge.ring
heavy = sorted(m for m in ("torch", "tensorflow", "transformers", "sounddevice", "matplotlib")
               if m in sys.modules)
print(",".join(heavy))
"""


def test_runtime_does_not_import_torch_or_optional_parts():
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
