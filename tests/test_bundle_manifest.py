"""Manifest schema validation: every broken bundle is refused with a message naming the field,
file or value and what to do (aim_edge.bundle.load_bundle)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runtime_helpers import write_fake_bundle

from aim_edge.bundle import SCHEMA_VERSION, load_bundle, sha256_file
from aim_edge.errors import BundleError


def _edit(root: Path, change) -> Path:  # noqa: ANN001
    m = json.loads((root / "manifest.json").read_text())
    change(m)
    (root / "manifest.json").write_text(json.dumps(m))
    return root


def test_valid_fake_bundle_loads(tmp_path):
    b = load_bundle(write_fake_bundle(tmp_path / "b"))
    assert b.name == "fake (scripted backend)" and b.chunk_frames == 16
    assert [a.file for a in b.artifacts] == ["model.onnx"]


def test_bad_json_names_the_file(tmp_path):
    root = write_fake_bundle(tmp_path / "b")
    (root / "manifest.json").write_text('{"schema_version": 1, "name": ')
    with pytest.raises(BundleError, match=r"manifest\.json: not valid JSON"):
        load_bundle(root)


def test_top_level_not_an_object(tmp_path):
    root = write_fake_bundle(tmp_path / "b")
    (root / "manifest.json").write_text("[1, 2]")
    with pytest.raises(BundleError, match="top level must be an object, got list"):
        load_bundle(root)


@pytest.mark.parametrize(("path", "message"), [
    (("features",), "missing field features"),
    (("model", "chunk_frames"), "missing field model.chunk_frames"),
    (("thresholds", "speak_now"), "missing field thresholds.speak_now"),
    (("artifacts",), "missing field artifacts"),
    (("labels", "events"), "missing field labels.events"),
])
def test_missing_field_is_named(tmp_path, path, message):
    def drop(m):
        obj = m
        for key in path[:-1]:
            obj = obj[key]
        del obj[path[-1]]

    root = _edit(write_fake_bundle(tmp_path / "b"), drop)
    with pytest.raises(BundleError, match=message):
        load_bundle(root)


def test_wrong_type_is_named_with_value(tmp_path):
    root = _edit(write_fake_bundle(tmp_path / "b"),
                 lambda m: m["model"].update(chunk_frames="16"))
    with pytest.raises(BundleError, match=r"model\.chunk_frames = '16' has type str, expected"):
        load_bundle(root)


def test_wrong_sha256_is_refused(tmp_path):
    root = write_fake_bundle(tmp_path / "b")
    step = root / "model.onnx"
    data = bytearray(step.read_bytes())
    data[0] ^= 0xFF  # same size, different content
    step.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"sha256 of model\.onnx is .* the manifest says"):
        load_bundle(root)
    # the size check comes first when the size differs
    step.write_bytes(bytes(data) + b"x")
    with pytest.raises(BundleError, match=r"model\.onnx has \d+ bytes, the manifest says"):
        load_bundle(root)
    # verify_hashes=False is the explicit opt-out (it still refuses a missing file)
    assert load_bundle(root, verify_hashes=False).artifacts[0].file == "model.onnx"


def test_unknown_schema_version(tmp_path):
    root = _edit(write_fake_bundle(tmp_path / "b"),
                 lambda m: m.update(schema_version=SCHEMA_VERSION + 1))
    with pytest.raises(BundleError, match=rf"schema_version {SCHEMA_VERSION + 1} is not "
                       r"supported .* upgrade aim-edge or re-export"):
        load_bundle(root)


def test_missing_listed_file(tmp_path):
    root = write_fake_bundle(tmp_path / "b")
    (root / "model.onnx").unlink()
    with pytest.raises(BundleError, match="model.onnx is listed in the manifest but missing"):
        load_bundle(root)


def test_either_model_file_alone_is_enough(tmp_path):
    # a bundle that lists an ONNX and a TFLite file, shipped with only the ONNX one
    root = _edit(write_fake_bundle(tmp_path / "b"), lambda m: m["artifacts"].append(
        {**m["artifacts"][0], "file": "model.int8.tflite", "format": "tflite",
         "precision": "int8-dynamic"}))
    b = load_bundle(root)
    assert [a.file for a in b.artifacts] == ["model.onnx"]
    assert b.missing == (("model.int8.tflite", "tflite", "int8-dynamic"),)
    assert b.artifact(format="onnx").file == "model.onnx"
    with pytest.raises(BundleError, match=r"model\.int8\.tflite is listed in the manifest but "
                       r"was removed from .*copy it back, or use what the bundle "
                       r"still has: \[\('onnx', 'fp32'\)\] \(--backend onnxruntime\)"):
        b.artifact(format="tflite")
    # the same backend's other precision is what to switch to when it has one
    root2 = _edit(write_fake_bundle(tmp_path / "c"), lambda m: m["artifacts"].append(
        {**m["artifacts"][0], "file": "model.int8.onnx", "precision": "int8-dynamic"}))
    with pytest.raises(BundleError, match=r"model\.int8\.onnx is listed .* \(--precision fp32\)"):
        load_bundle(root2).artifact(format="onnx", precision="int8-dynamic")


@pytest.mark.parametrize("name", ["weights.pkl", "model.pt", "evil.py", "cache.npy"])
def test_bundles_never_contain_pickles_or_code(tmp_path, name):
    root = write_fake_bundle(tmp_path / "b")
    (root / name).write_bytes(b"\x80\x04N.")
    with pytest.raises(BundleError, match="not allowed in a bundle .*never code or pickles"):
        load_bundle(root)


def test_encoder_mismatch_is_refused(tmp_path):
    """A model trained with hashed-bow embeddings must not be fed MiniLM ones, and back."""
    root = write_fake_bundle(tmp_path / "b")

    def hashed_model_minilm_artifact(m):
        m["model"]["instruction_encoder"] = "hashed-bow"
        enc = root / "instruction.int8.onnx"
        enc.write_bytes(b"placeholder encoder")
        m["artifacts"].append({"file": enc.name, "format": "onnx", "precision": "int8-dynamic",
                               "role": "instruction_encoder", "encoder": "all-minilm-l6-v2",
                               "size": enc.stat().st_size, "sha256": sha256_file(enc)})

    _edit(root, hashed_model_minilm_artifact)
    with pytest.raises(BundleError, match="instruction encoder mismatch: artifact "
                       "'instruction.int8.onnx' is the 'all-minilm-l6-v2' encoder, but the "
                       "model was trained with 'hashed-bow'"):
        load_bundle(root)

    root2 = _edit(write_fake_bundle(tmp_path / "c"), lambda m: m.update(
        model={**m["model"], "instruction_encoder": "all-minilm-l6-v2"},
        instructions={"encoder": {"kind": "hashed-bow", "dim": 8, "buckets": 64, "seed": 1}}))
    with pytest.raises(BundleError, match="instructions.encoder.kind = 'hashed-bow' but the "
                       "model was trained with 'all-minilm-l6-v2'"):
        load_bundle(root2)

    root3 = _edit(write_fake_bundle(tmp_path / "d"),
                  lambda m: m["model"].update(instruction_encoder="word2vec"))
    with pytest.raises(BundleError, match="model.instruction_encoder = 'word2vec', expected"):
        load_bundle(root3)

    ok = _edit(write_fake_bundle(tmp_path / "e"), lambda m: m.update(
        model={**m["model"], "instruction_encoder": "hashed-bow"},
        instructions={"encoder": {"kind": "hashed-bow", "dim": 8, "buckets": 64, "seed": 1}}))
    assert load_bundle(ok).manifest["model"]["instruction_encoder"] == "hashed-bow"


def test_a_non_numeric_event_threshold_is_named(tmp_path):
    root = _edit(write_fake_bundle(tmp_path / "b"),
                 lambda m: m["thresholds"]["events"].update(smoke_alarm="high"))
    with pytest.raises(BundleError,
                       match=r"thresholds\.events\.smoke_alarm = 'high' must be a probability"):
        load_bundle(root)


def test_a_state_shape_the_model_file_disagrees_with_is_named(bundle_copy):
    """The shipped ONNX step with one state size changed in its manifest: refused when the
    backend opens, naming the input and both shapes (was onnxruntime's INVALID_ARGUMENT)."""
    from aim_edge.engine import Engine

    def shrink(m):
        s = m["state"][0]
        s["shape"] = [*s["shape"][:-1], s["shape"][-1] - 1]

    root = _edit(bundle_copy, shrink)
    name = json.loads((root / "manifest.json").read_text())["state"][0]["name"]
    with pytest.raises(BundleError, match=rf"its input '{name}' has shape .* the manifest's"
                                          rf" state {name} is .* do not belong together"):
        Engine.from_bundle(root, backend="onnxruntime")
