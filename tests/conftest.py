"""Shared fixtures of the runtime tests (tests/test_runtime_*.py).

``runtime_small_bundle``: a real, tiny, untrained bundle exported through
``export.bundle.build_bundle`` (ONNX fp32; torch needed, skipped with a reason otherwise). The
export takes ~20 s, so the result is kept in pytest's cache folder under a key made of the
export sources and the torch/onnx versions: a change to any of them rebuilds it.

``runtime_fake_bundle``: a bundle folder with a real manifest and a placeholder step file, for
tests that drive the runtime with a scripted backend (no torch, no onnx).
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from pathlib import Path

import pytest
from runtime_helpers import write_fake_bundle

ROOT = Path(__file__).resolve().parents[1]
SMALL_EVENTS = {"smoke_alarm": True, "siren": True, "doorbell": False, "kettle_whistle": False}


def _export_key() -> str:
    from importlib.metadata import version

    h = hashlib.sha256(f"{version('torch')} {version('onnx')}".encode())
    for rel in ("export/model.py", "export/onnx_export.py", "export/bundle.py",
                "aim_edge/bundle.py", "aim_edge/config.py"):
        h.update((ROOT / rel).read_bytes())
    return h.hexdigest()[:20]


@pytest.fixture(scope="session")
def runtime_small_bundle(request: pytest.FixtureRequest) -> Path:
    # find_spec, not import: a cached bundle must not cost a torch import (~5 s)
    for name, why in (("torch", "torch is needed to export the test bundle: pip install -e"
                       " .[export] (see Makefile TORCH_SPEC)"),
                      ("onnx", "onnx (with torch) is needed to export the test bundle")):
        if importlib.util.find_spec(name) is None:
            pytest.skip(why)
    key = _export_key()
    if getattr(request.config, "cache", None) is not None:
        cache = Path(request.config.cache.mkdir("aim-edge-small-bundle"))
    else:  # -p no:cacheprovider: build into this session's temporary folder
        cache = request.getfixturevalue("tmp_path_factory").mktemp("aim-edge-small-bundle")
    out = cache / key
    if (out / "manifest.json").is_file() and (out / "KEY").is_file():
        return out
    import torch

    from export.bundle import build_bundle
    from export.model import AimModel, ModelConfig

    torch.manual_seed(0)
    model = AimModel(ModelConfig(events=tuple(SMALL_EVENTS), d_model=64, n_layers=2,
                                 left_context=16, decide_context=16)).eval()
    for old in cache.iterdir():
        shutil.rmtree(old, ignore_errors=True)
    tmp = cache / f"{key}.tmp"
    build_bundle(model, tmp, formats=("onnx-fp32",), name="runtime-test-small",
                 events_safety=SMALL_EVENTS, gate={"decision_agreement": 0.0},
                 provenance={"trained": False, "purpose": "runtime tests"})
    (tmp / "KEY").write_text(key)
    tmp.rename(out)
    return out


@pytest.fixture()
def runtime_fake_bundle(tmp_path: Path) -> Path:
    return write_fake_bundle(tmp_path / "fake-bundle")


@pytest.fixture
def bundle_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped default bundle (for tools that rewrite its manifest)."""
    from aim_edge import bundles

    src = bundles.default_bundle_path()
    if src is None:
        pytest.skip("no default bundle in aim_edge/models/default (the shipped model)")
    dst = tmp_path / "bundle"
    shutil.copytree(src, dst)
    return dst
