"""Instruction encoders chosen from the bundle, and the embedding reaching the model."""

import json

import numpy as np
import pytest
from runtime_helpers import ScriptedBackend, write_fake_bundle

from aim_edge.bundle import load_bundle, sha256_file
from aim_edge.engine import Engine
from aim_edge.errors import BundleError, OptionalDependencyError
from aim_edge.instructions import ZeroEncoder, encoder_for_bundle


def edit_manifest(path, fn):
    m = json.loads((path / "manifest.json").read_text())
    fn(m)
    (path / "manifest.json").write_text(json.dumps(m))
    return path


def run(engine, n_samples=16000, instruction=None, change=None):
    s = engine.create_stream(instruction=instruction)
    s.accept_waveform(16000, np.zeros(n_samples, np.float32))
    events = []
    while s.is_ready():
        events.extend(s.decode())
        if change is not None and s.get_result().chunks == 2:
            s.set_instruction(change)
            change = None
    s.input_finished()
    while s.is_ready():
        events.extend(s.decode())
    return events


def test_fallback_is_a_zero_embedding_and_says_so(runtime_fake_bundle):
    bundle = load_bundle(runtime_fake_bundle)
    enc = encoder_for_bundle(bundle)
    assert isinstance(enc, ZeroEncoder) and "zero embedding" in enc.note
    be = ScriptedBackend(bundle)
    events = run(Engine.from_bundle(bundle, backend=be), instruction="tell me if the kettle boils")
    assert all(not v.any() for v in be.instructions)
    instr = [e for e in events if e["type"] == "instruction"][0]
    assert instr["encoder"] == "none" and "zero embedding" in instr["note"]
    assert instr["meaning"]["target_labels"] == ["kettle_whistle"]


def test_an_instruction_no_rule_understands_says_so_and_what_would_work(runtime_fake_bundle):
    import io

    from aim_edge.respond import ConsoleResponder

    bundle = load_bundle(runtime_fake_bundle)
    engine = Engine.from_bundle(bundle, backend=ScriptedBackend(bundle))
    instr = [e for e in run(engine, instruction="tell me if the toaster pops")
             if e["type"] == "instruction"][0]
    assert instr["meaning"]["intent"] == "none"
    assert "no rule understood this" in instr["hint"]
    assert "kettle whistle" in instr["hint"] and "other sound" not in instr["hint"]
    out = io.StringIO()
    ConsoleResponder(out, color=False).emit({**instr, "latency_ms": 0.1})
    assert "note: no rule understood this" in out.getvalue()
    # understood ones, and clearing the instruction, carry no hint
    for text in ("tell me if the kettle whistles", None):
        ev = [e for e in run(engine, instruction=text) if e["type"] == "instruction"]
        assert all("hint" not in e for e in ev)


def test_hashed_bag_of_words_encoder_from_the_manifest(tmp_path):
    path = edit_manifest(write_fake_bundle(tmp_path / "b"), lambda m: m.__setitem__(
        "instructions", {"encoder": {"kind": "hashed-bow", "dim": 8, "buckets": 64,
                                     "seed": 3}}))
    bundle = load_bundle(path)
    be = ScriptedBackend(bundle)
    events = run(Engine.from_bundle(bundle, backend=be), change="tell me if the kettle boils")
    assert not be.instructions[0].any() and not be.instructions[1].any()
    emb = be.instructions[2]
    assert emb.shape == (8,) and np.linalg.norm(emb) == pytest.approx(1.0, abs=1e-5)
    instr = [e for e in events if e["type"] == "instruction"]
    assert instr[0]["encoder"] == "hashed-bow" and "note" not in instr[0]

    edit_manifest(path, lambda m: m["instructions"]["encoder"].__setitem__("dim", 16))
    with pytest.raises(BundleError, match="dim"):
        Engine.from_bundle(load_bundle(path), backend=ScriptedBackend(bundle))
    edit_manifest(path, lambda m: m["instructions"].__setitem__("encoder", {"kind": "bert"}))
    with pytest.raises(BundleError, match="'bert' is not known"):
        encoder_for_bundle(load_bundle(path))


def _tiny_sentence_encoder(path, vocab_size, dim):
    """An ONNX 'sentence encoder': a token embedding table, masked (optimum's input names)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = np.random.default_rng(0).standard_normal((vocab_size, dim)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["emb"]),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axis"], ["mask3"]),
        helper.make_node("Mul", ["emb", "mask3"], ["last_hidden_state"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "T"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, "T"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [1, "T", dim])],
        [numpy_helper.from_array(table, "table"),
         numpy_helper.from_array(np.array([-1], np.int64), "axis")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return table


def test_onnx_sentence_encoder_artifact_with_its_tokenizer(tmp_path):
    tokenizers = pytest.importorskip(
        "tokenizers", reason="tokenizers (optional: pip install aim-edge[instructions]) is"
        " needed for ONNX instruction encoders")
    pytest.importorskip("onnx", reason="onnx builds the tiny test encoder")
    words = ["[UNK]", "tell", "me", "if", "the", "kettle", "boils"]
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(
        {w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    root = write_fake_bundle(tmp_path / "b")
    tok.save(str(root / "tokenizer.json"))
    table = _tiny_sentence_encoder(root / "encoder.onnx", len(words), 8)

    def add(m):
        enc, tj = root / "encoder.onnx", root / "tokenizer.json"
        m["artifacts"].append({
            "file": enc.name, "format": "onnx", "precision": "fp32",
            "role": "instruction_encoder", "size": enc.stat().st_size,
            "sha256": sha256_file(enc),
            "tokenizer": {"file": tj.name, "size": tj.stat().st_size,
                          "sha256": sha256_file(tj)}})
    edit_manifest(root, add)
    bundle = load_bundle(root)
    be = ScriptedBackend(bundle)
    with Engine.from_bundle(bundle, backend=be) as engine:
        assert engine.encoder.kind == "onnx-sentence-encoder"
        emb = engine.encode_instruction("tell me if the kettle boils")
        want = table[[1, 2, 3, 4, 5, 6]].mean(0)
        np.testing.assert_allclose(emb, want / np.linalg.norm(want), atol=1e-6)
        assert not engine.encode_instruction("").any()
        events = run(engine, instruction="tell me if the kettle boils")
    np.testing.assert_allclose(be.instructions[0], emb)
    assert [e for e in events if e["type"] == "instruction"][0]["encoder"] == \
        "onnx-sentence-encoder"

    # the tokenizer is verified like every other file
    (root / "tokenizer.json").write_text((root / "tokenizer.json").read_text() + " ")
    with pytest.raises(BundleError, match="tokenizer.json"):
        load_bundle(root)


def test_onnx_encoder_without_tokenizers_installed_names_the_package(tmp_path):
    import sys
    from unittest import mock

    root = write_fake_bundle(tmp_path / "b")
    (root / "enc.onnx").write_bytes(b"not used")
    (root / "tok.json").write_text("{}")

    def add(m):
        m["artifacts"].append({
            "file": "enc.onnx", "format": "onnx", "precision": "fp32",
            "role": "instruction_encoder", "size": 8, "sha256": sha256_file(root / "enc.onnx"),
            "tokenizer": {"file": "tok.json", "size": 2,
                          "sha256": sha256_file(root / "tok.json")}})
    edit_manifest(root, add)
    bundle = load_bundle(root)
    with mock.patch.dict(sys.modules, {"tokenizers": None}):
        with pytest.raises(OptionalDependencyError, match="pip install tokenizers"):
            Engine.from_bundle(bundle, backend=ScriptedBackend(bundle))
