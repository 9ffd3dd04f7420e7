"""The parity gate: every artifact streamed with state fed back vs the fp32 torch reference;
a deliberately corrupted artifact fails the export with a message naming artifact, metric,
value and bar."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from calibration.parity import DEFAULT_BARS, ParityGateError, ParityStream, check_gate, compare


def _heads(speak_logits, ctc_ids, vocab_size=5, n_events=1):
    c = len(speak_logits)
    ctc = np.full((c, 4, vocab_size), -10.0, np.float32)
    for k, ids in enumerate(np.asarray(ctc_ids).reshape(c, 4)):
        ctc[k, np.arange(4), ids] = 0.0
    return {"speak_logit": np.asarray(speak_logits, np.float32).reshape(c, 1),
            "event_logits": np.full((c, n_events), -5.0, np.float32),
            "intent_logits": np.zeros((c, 4), np.float32), "ctc_logprobs": ctc}


def test_compare_scores_cer_and_proactive_f1_deltas_on_labelled_streams():
    vocab = ["<blank>", " ", "a", "b", "c"]
    c = 40  # 6.4 s; a response window at 2-3 s, speech "abc" in 0-1 s
    record = {"responses": [{"earliest": 2.0, "latest": 3.0}], "no_response": [(4.0, 6.4)],
              "speech": [{"start": 0.0, "end": 0.5, "transcript": "abc"}], "events": []}
    stream = ParityStream(np.zeros((16 * c, 4), np.float32), np.zeros(3, np.float32), record)
    ids = np.zeros((c, 4), int)
    ids[0, :3] = [2, 3, 4]  # "abc" in the first chunk
    speak = np.full(c, -8.0)
    speak[13:15] = 6.0  # chunk 13 is decided at 2.255 s: a hit
    ref = _heads(speak, ids)
    bad_ids = ids.copy()
    bad_ids[0, 1] = 0  # "ac": one deletion in three characters
    bad_speak = speak.copy()
    bad_speak[30:32] = 6.0  # a false alert in quiet audio
    cand = _heads(bad_speak, bad_ids)
    res = compare([ref], [cand], speak_threshold=0.5, event_thresholds=[0.5],
                  streams=[stream], vocab=vocab, enc_chunk=4)
    assert res["chunks"] == c
    assert res["speak_agreement"] == pytest.approx(38 / 40)
    assert res["event_agreement"] == 1.0 and res["decision_agreement"] == pytest.approx(0.95)
    assert res["cer_reference"] == 0.0 and res["cer_delta_points"] == pytest.approx(100 / 3)
    assert res["proactive_f1_reference"] == 1.0
    assert res["proactive_f1_delta"] == pytest.approx(1 - 2 / 3)  # precision 1/2, recall 1
    assert res["max_abs_speak_logit"] == pytest.approx(14.0)
    with pytest.raises(ParityGateError, match=r"parity gate failed for x\.onnx: "
                       r"decision_agreement = 0\.9500, the bar is >= 0\.995"):
        check_gate("x.onnx", res)
    with pytest.raises(ParityGateError, match=r"cer_delta_points = 33\.3333, the bar is <= 0\.5"):
        check_gate("x.onnx", res, {"decision_agreement": 0.0})
    with pytest.raises(ParityGateError, match=r"proactive_f1_delta = 0\.3333, the bar is <= 0\.01"):
        check_gate("x.onnx", res, {"decision_agreement": 0.0, "cer_delta_points": 50})
    check_gate("x.onnx", res, {"decision_agreement": 0.9, "cer_delta_points": 50,
                               "proactive_f1_delta": 0.5})
    # identical outputs pass the default bars
    same = compare([ref], [ref], speak_threshold=0.5, event_thresholds=[0.5], streams=[stream],
                   vocab=vocab)
    assert same["decision_agreement"] == 1.0 and same["cer_delta_points"] == 0.0
    check_gate("same.onnx", same, DEFAULT_BARS)


torch = pytest.importorskip("torch", reason="torch is needed by export/: pip install -e .[export]")
onnx = pytest.importorskip("onnx", reason="onnx is needed by export/: pip install -e .[export]")


@pytest.fixture(scope="module")
def tiny_model():
    from export.model import AimModel, ModelConfig

    torch.manual_seed(3)
    return AimModel(ModelConfig(d_model=32, n_heads=2, n_layers=1, left_context=8,
                                decide_context=8, decide_layers=1, instruction_dim=16,
                                events=("smoke_alarm", "doorbell"), dropout=0.0)).eval()


@pytest.fixture(scope="module")
def tiny_fp32(tiny_model, tmp_path_factory):
    """One dynamo export per module (the slow step); build_bundle calls below reuse it."""
    from export.onnx_export import export_step_onnx

    return export_step_onnx(tiny_model, tmp_path_factory.mktemp("tiny") / "fp32.onnx")


@pytest.fixture()
def cached_export(monkeypatch, tiny_fp32):
    import export.bundle as eb
    from export.onnx_export import stamp_metadata

    def export(model, path, metadata=None):
        shutil.copy(tiny_fp32, path)
        stamp_metadata(path, metadata or {})
        return path

    monkeypatch.setattr(eb, "export_step_onnx", export)
    return eb


def _corrupt_speak_head(src, dst):
    """Copy the ONNX file, adding +6 to the speak head's bias: every speak decision flips."""
    shutil.copy(src, dst)
    proto = onnx.load(str(dst))
    hits = 0
    for init in proto.graph.initializer:
        if "speak_head" in init.name and init.name.endswith("bias"):
            arr = onnx.numpy_helper.to_array(init) + 6.0
            init.CopyFrom(onnx.numpy_helper.from_array(arr.astype(np.float32), init.name))
            hits += 1
    assert hits == 1, [i.name for i in proto.graph.initializer]
    onnx.save(proto, str(dst))
    return dst


def test_gate_fails_the_export_for_a_corrupted_artifact(tiny_model, tmp_path, monkeypatch,
                                                        cached_export):
    eb = cached_export
    monkeypatch.setattr(eb, "quantize_int8_dynamic", _corrupt_speak_head)
    # thresholds the random model's speak logits straddle: 0.5 is logit 0
    speak = float(torch.sigmoid(torch.tensor(0.0)))
    previous = tmp_path / "b"  # a bundle from an earlier export: a failed one must keep it
    previous.mkdir()
    (previous / "manifest.json").write_text('{"old": true}')
    with pytest.raises(ParityGateError) as info:
        eb.build_bundle(tiny_model, previous, formats=("onnx-fp32", "onnx-int8"),
                        thresholds={"speak_now": speak, "events": {"smoke_alarm": 0.5,
                                                                  "doorbell": 0.5}})
    err = info.value
    assert err.artifact == "model.int8.onnx (onnx-int8)"
    assert err.metric == "decision_agreement" and err.bar == 0.995 and err.value < 0.99
    assert "model.int8.onnx" in str(err) and "the bar is >= 0.995" in str(err)
    assert isinstance(err, SystemExit)  # `python -m export.bundle` exits non-zero with it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no staging folder left
    assert sorted(p.name for p in previous.iterdir()) == ["manifest.json"]
    assert json.loads((previous / "manifest.json").read_text()) == {"old": True}


def test_export_refuses_to_replace_a_folder_that_is_not_a_bundle(tiny_model, tmp_path):
    import export.bundle as eb

    keep = tmp_path / "notes"
    keep.mkdir()
    (keep / "keep.txt").write_text("important")
    with pytest.raises(SystemExit, match="holds no aim-edge bundle"):
        eb.build_bundle(tiny_model, keep, formats=("onnx-fp32",))
    assert (keep / "keep.txt").read_text() == "important"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]


@pytest.mark.parametrize("extra, message", [
    (["--min-agreement", "1.5"], "--min-agreement 1.5: a fraction"),
    (["--calibrate-on", "{tmp}/missing.npz"], "--calibrate-on {tmp}/missing.npz: no such file"),
    (["--formats", "onnx-int4"], "unknown ['onnx-int4']"),
    (["--max-cer-delta", "-1"], "--max-cer-delta -1.0: must be >= 0"),
])
def test_cli_rejects_bad_arguments_before_any_work(tmp_path, capsys, extra, message):
    import export.bundle as eb

    argv = ["--random-init", "--small", "--out", str(tmp_path / "b")]
    with pytest.raises(SystemExit) as info:
        eb.main(argv + [a.format(tmp=tmp_path) for a in extra])
    assert info.value.code == 2
    assert message.format(tmp=tmp_path) in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_every_onnx_precision_is_gated_stamped_and_loads(tiny_model, tmp_path, cached_export):
    from aim_edge.backends import create_backend, zero_feeds
    from aim_edge.bundle import load_bundle
    build_bundle = cached_export.build_bundle

    rng = np.random.default_rng(0)
    streams = [ParityStream(rng.normal(-8, 2.5, (16 * 24, 80)).astype(np.float32),
                            np.zeros(16, np.float32), None, f"s{i}") for i in range(2)]
    out = build_bundle(tiny_model, tmp_path / "b",
                       formats=("onnx-fp32", "onnx-fp16", "onnx-int8", "onnx-int8-static"),
                       gate={"decision_agreement": 0.0}, parity_streams=streams,
                       calibration_streams=streams[:1], calibration_samples=12)
    manifest = json.loads((out / "manifest.json").read_text())
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # readable like any folder, not 0700
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no staging folder left
    arts = {a["precision"]: a for a in manifest["artifacts"]}
    assert set(arts) == {"fp32", "fp16", "int8-dynamic", "int8-static"}
    assert arts["int8-static"]["file"] == "model.int8-qdq.onnx"
    assert manifest["parity_gate"]["chunks"] == 48 and manifest["parity_gate"]["streams"] == 2
    assert manifest["model"]["instruction_encoder"] == "hashed-bow"
    for prec, a in arts.items():
        p = a["parity"]
        assert p["chunks"] == 48 and 0.0 <= p["decision_agreement"] <= 1.0
        assert p["cer_delta_points"] is None  # unlabelled parity data: not computed, not faked
        meta = {m.key: json.loads(m.value) for m in onnx.load(str(out / a["file"])).metadata_props}
        assert meta["aim_edge.precision"] == prec
        assert meta["aim_edge.thresholds"]["speak_now"] == manifest["thresholds"]["speak_now"]
        assert meta["aim_edge.instruction_encoder"] == "hashed-bow"
    assert arts["fp32"]["parity"]["max_abs_speak_logit"] < 1e-4
    assert arts["fp16"]["parity"]["max_abs_speak_logit"] < 5e-2
    assert meta_of(out / arts["int8-static"]["file"])["aim_edge.calibration_samples"] == 12
    # QDQ really is static: QuantizeLinear nodes on activations
    ops = {n.op_type for n in onnx.load(str(out / arts["int8-static"]["file"])).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    bundle = load_bundle(out)
    for prec in arts:
        be = create_backend("onnxruntime", bundle, precision=prec)
        res = be.run(zero_feeds(bundle))
        assert np.isfinite(res["speak_logit"]).all()
        assert res["speak_logit"].dtype == np.float32  # fp16 keeps float32 IO
        be.close()


def meta_of(path):
    return {m.key: json.loads(m.value) for m in onnx.load(str(path)).metadata_props}
