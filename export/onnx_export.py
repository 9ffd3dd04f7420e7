"""ONNX export of the streaming step (:meth:`export.model.AimModel.step`).

The exported graph has named inputs ``fbank``, ``instruction`` and the state tensors of
:data:`export.model.STATE_NAMES`; outputs ``ctc_logprobs``, ``speak_logit``, ``intent_logits``,
``event_logits`` and ``new_<state>`` for each state tensor. The runtime feeds ``new_*`` back as
the next chunk's state. Batch is fixed at 1 (one stream per session, batching is done by the
runtime across sessions later if ever needed).

Settings follow DESIGN.md: the dynamo exporter, opset 18, one file (no external data).
The model's contract (feature options, chunking, state shapes, labels) is stamped into
``metadata_props`` so a model file alone is self-describing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .model import STATE_NAMES, AimModel

OUTPUT_NAMES = ("ctc_logprobs", "speak_logit", "intent_logits", "event_logits")


class StepModule(nn.Module):
    """Positional wrapper around :meth:`AimModel.step` for export."""

    def __init__(self, model: AimModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, fbank: Tensor, instruction: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        named = dict(zip(STATE_NAMES, state, strict=True))
        outputs, new_state = self.model.step(fbank, instruction, named)
        return tuple(outputs[k] for k in OUTPUT_NAMES) + tuple(new_state[k] for k in STATE_NAMES)


def example_inputs(model: AimModel) -> tuple[Tensor, ...]:
    cfg = model.cfg
    state = model.initial_state(1)
    return (torch.zeros(1, cfg.chunk_frames, cfg.n_mels), torch.zeros(1, cfg.instruction_dim),
            *(state[k] for k in STATE_NAMES))


def export_step_onnx(model: AimModel, path: str | Path, metadata: dict[str, Any] | None = None
                     ) -> Path:
    """Export one streaming step of ``model`` (put in eval mode) to ``path``.

    ``metadata`` entries are JSON-encoded into the file's ``metadata_props``.
    """
    import onnx

    path = Path(path)
    model = model.eval()
    module = StepModule(model).eval()
    input_names = ["fbank", "instruction", *STATE_NAMES]
    output_names = [*OUTPUT_NAMES, *(f"new_{k}" for k in STATE_NAMES)]
    with torch.no_grad():
        torch.onnx.export(
            module, example_inputs(model), str(path), dynamo=True, opset_version=18,
            external_data=False, input_names=input_names, output_names=output_names,
        )
    proto = onnx.load(str(path))
    meta = {"aim_edge.model_config": model.cfg.to_dict(), "aim_edge.state_names": STATE_NAMES}
    meta.update(metadata or {})
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = json.dumps(value)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    return path


# ----------------------------------------------------------------------------- precisions

def _restamp(src: Path, dst: Path, extra: dict[str, Any] | None = None) -> None:
    """Copy ``src``'s ``metadata_props`` onto ``dst`` (quantizers drop or rewrite them)."""
    import onnx

    fp32, q = onnx.load(str(src)), onnx.load(str(dst))
    del q.metadata_props[:]
    q.metadata_props.extend(fp32.metadata_props)
    for key, value in (extra or {}).items():
        entry = q.metadata_props.add()
        entry.key = key
        entry.value = json.dumps(value)
    onnx.save(q, str(dst))


def stamp_metadata(path: str | Path, metadata: dict[str, Any]) -> None:
    """Set (replace) JSON-encoded ``metadata_props`` entries of an ONNX file in place."""
    import onnx

    proto = onnx.load(str(path))
    kept = [p for p in proto.metadata_props if p.key not in metadata]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = json.dumps(value)
    onnx.save(proto, str(path))


def _pre_process(src: Path, tmp: Path) -> Path:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = tmp / "pre.onnx"
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    return pre


def quantize_int8_dynamic(src: str | Path, dst: str | Path) -> Path:
    """Dynamic INT8 on MatMul/Gemm only (DESIGN.md: best on onnxruntime CPU), weights per output
    channel: on v0.8 and the 11257 test chunks of the parity gate, per-tensor weights moved the
    speak-now logit by up to 0.71 and event logits by 0.83 (3 speak-now decisions flipped at
    0.998, proactive F1 -0.021, over the 0.015 bar); per channel 0.58 / 0.52, proactive F1
    unchanged, 1.20 against 1.09 ms per chunk and 5.01 against 4.93 MB."""
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = Path(src), Path(dst)
    with tempfile.TemporaryDirectory() as tmp:
        quantize_dynamic(str(_pre_process(src, Path(tmp))), str(dst),
                         weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                         per_channel=True)
    _restamp(src, dst, {"aim_edge.precision": "int8-dynamic"})
    return dst


def convert_fp16(src: str | Path, dst: str | Path) -> Path:
    """FP16 weights and compute for GPUs (CUDA / TensorRT); inputs and outputs stay float32
    (``keep_io_types``), so the runtime feeds the same arrays and the fed-back state keeps
    float32 range. No CPU speed-up (DESIGN.md): this artifact is for GPUs."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    src, dst = Path(src), Path(dst)
    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    _restamp(src, dst, {"aim_edge.precision": "fp16", "aim_edge.io_dtype": "float32"})
    return dst


class StepCalibrationReader:
    """An onnxruntime ``CalibrationDataReader`` over captured step inputs (fbank, instruction
    and the *real* state tensors of a streaming fp32 run; see :mod:`calibration.streams`)."""

    def __init__(self, samples: list[dict[str, Any]]) -> None:
        if not samples:
            raise ValueError("static INT8 calibration needs at least one captured step input")
        self.samples = samples
        self._it = iter(samples)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self.samples)


def quantize_int8_static(src: str | Path, dst: str | Path, samples: list[dict[str, Any]], *,
                         per_channel: bool = True) -> Path:
    """Static INT8 in QDQ format (TensorRT, NPUs) calibrated on ``samples``.

    Weights symmetric INT8 per output channel (``per_channel``), activations asymmetric INT8
    from min/max of the captured real streaming inputs. The attention masks use the bounded
    constant -100 (``export/model.py``), so their range does not swamp the activation scale.
    On x86 CPUs this is slower than fp32 (DESIGN.md); it exists for accelerators that need QDQ.
    """
    import tempfile

    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    src, dst = Path(src), Path(dst)
    with tempfile.TemporaryDirectory() as tmp:
        quantize_static(str(_pre_process(src, Path(tmp))), str(dst),
                        StepCalibrationReader(samples), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
    _restamp(src, dst, {"aim_edge.precision": "int8-static",
                        "aim_edge.calibration_samples": len(samples)})
    return dst


if __name__ == "__main__":
    import sys

    print("export.onnx_export is a library, not a command: the ONNX artifacts (fp32, fp16,\n"
          "int8 dynamic, int8 static QDQ) are written, parity-gated and put in a bundle by\n"
          "  python -m export.bundle --checkpoint CKPT --out DIR"
          " --formats onnx-fp32,onnx-int8,...\n"
          "(python -m export.bundle --help for every option; python -m export for the rest).",
          file=sys.stderr if len(sys.argv) > 1 and sys.argv[1] not in ("-h", "--help")
          else sys.stdout)
    sys.exit(0 if len(sys.argv) == 1 or sys.argv[1] in ("-h", "--help") else 2)
