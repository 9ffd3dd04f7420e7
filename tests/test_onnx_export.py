"""The exported ONNX step runs in onnxruntime with its state fed back and matches torch."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is needed by export/: pip install -e .[export]")
onnx = pytest.importorskip("onnx", reason="onnx is needed by export/: pip install -e .[export]")
import onnxruntime as ort  # noqa: E402

from export.model import STATE_NAMES, AimModel, ModelConfig  # noqa: E402
from export.onnx_export import OUTPUT_NAMES, export_step_onnx  # noqa: E402


@pytest.mark.parametrize("event_branch", [False, True])
def test_onnx_step_matches_torch_over_a_stream(tmp_path, event_branch):
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=64, n_heads=4, n_layers=2, left_context=8, decide_context=10,
                      events=("smoke_alarm", "siren", "doorbell"), dropout=0.0,
                      event_branch=event_branch)
    model = AimModel(cfg).eval()
    path = export_step_onnx(model, tmp_path / "step.onnx", {"aim_edge.purpose": "test"})

    proto = onnx.load(str(path))
    meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert meta["aim_edge.model_config"]["events"] == ["smoke_alarm", "siren", "doorbell"]
    assert meta["aim_edge.purpose"] == "test"
    assert meta["aim_edge.model_config"]["event_branch"] is event_branch

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["fbank", "instruction", *STATE_NAMES]

    state_t = model.initial_state(1)
    state_o = {k: v.numpy() for k, v in state_t.items()}
    instr = torch.randn(1, cfg.instruction_dim)
    worst = 0.0
    for _ in range(8):  # longer than both contexts: exercises cache roll-over
        x = torch.randn(1, cfg.chunk_frames, cfg.n_mels)
        with torch.no_grad():
            out_t, state_t = model.step(x, instr, state_t)
        res = sess.run(None, {"fbank": x.numpy(), "instruction": instr.numpy(), **state_o})
        named = dict(zip([o.name for o in sess.get_outputs()], res, strict=True))
        for k in OUTPUT_NAMES:
            worst = max(worst, float(np.abs(named[k] - out_t[k].numpy()).max()))
        state_o = {k: named[f"new_{k}"] for k in STATE_NAMES}
    assert worst <= 1e-4
    for k in STATE_NAMES:
        assert np.abs(state_o[k] - state_t[k].numpy()).max() <= 1e-4, k


def test_dynamic_int8_scales_weights_per_output_channel(tmp_path):
    """Per-tensor weight scales flipped v0.8's speak-now decisions past the parity bar; every
    quantized weight must carry one scale per output channel."""
    from onnx import numpy_helper

    from export.onnx_export import quantize_int8_dynamic

    torch.manual_seed(0)
    cfg = ModelConfig(d_model=64, n_heads=4, n_layers=2, left_context=8, decide_context=10,
                      events=("smoke_alarm", "siren"), dropout=0.0)
    fp32 = export_step_onnx(AimModel(cfg).eval(), tmp_path / "step.onnx")
    proto = onnx.load(str(quantize_int8_dynamic(fp32, tmp_path / "step.int8.onnx")))
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    quantized = [n for n in inits if n.endswith("_quantized")]
    assert len(quantized) >= 2 * cfg.n_layers  # qkv, out, ffn... of every block
    for name in quantized:
        scale = inits[name[: -len("_quantized")] + "_scale"]
        assert scale.size == inits[name].shape[-1], name  # the speak head has 1 channel
    wide = [n for n in quantized if inits[n[: -len("_quantized")] + "_scale"].size > 1]
    assert len(wide) >= 2 * cfg.n_layers
