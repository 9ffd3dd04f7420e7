"""TFLite export of the streaming step with litert-torch (no TensorFlow), fp32 and INT8.

litert-torch pulls transformers 5.x, which conflicts with the main export environment
(optimum-onnx pins transformers < 4.58), so it lives in its own virtual environment::

    make tflite-env            # .venv-tflite with torch (CPU) + the `export-tflite` extra

``python -m export.bundle --formats ...,tflite-fp32,tflite-int8`` runs this module in that
environment through a subprocess (``--tflite-python``, default ``.venv-tflite/bin/python``)
and then gates and stamps the artifacts in the main environment. It can also be run alone::

    .venv-tflite/bin/python -m export.tflite --weights W.npz --out DIR --precisions fp32,int8

which writes ``DIR/model.fp32.tflite`` / ``DIR/model.int8.tflite`` and prints a JSON summary.

* fp32: ``litert_torch.convert(module, sample_kwargs=...)``: ``forward`` takes the manifest's
  input names as keywords and returns a dict, so the ``serving_default`` signature carries the
  contract's names (``fbank``, ``instruction``, states -> heads, ``new_<state>``).
* int8: ai-edge-quantizer's ``dynamic_wi8_afp32`` recipe on the fp32 file (INT8 weights per
  channel, float activations): DESIGN.md measured it as the fastest artifact. Full-integer
  static TFLite broke decisions there and is not offered.

Key facts are stamped into the file's TFLite ``metadata`` (name ``aim_edge``, a JSON buffer)
by :func:`stamp_tflite_metadata`, which uses only ai-edge-litert's flatbuffer schema (it runs
in the main environment).

This module imports only torch, numpy and :mod:`export.model` at top level, so it runs in the
TFLite environment without the rest of the export toolchain.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

TFLITE_METADATA_NAME = "aim_edge"
PRECISIONS = ("fp32", "int8")
FILES = {"fp32": "model.fp32.tflite", "int8": "model.int8.tflite"}
HEADS = ("ctc_logprobs", "speak_logit", "intent_logits", "event_logits")


def _load_npz(path: Path):  # noqa: ANN202 - torch objects
    """An :class:`export.model.AimModel` from a weights ``.npz`` (float16 or float32 weights),
    without importing export.bundle (whose onnx dependencies this environment lacks)."""
    import torch

    from .model import AimModel, ModelConfig

    with np.load(path, allow_pickle=False) as z:
        info = json.loads(str(z["info"]))
        weights = {k[2:]: torch.from_numpy(z[k].astype(np.float32) if z[k].dtype == np.float16
                                           else z[k].copy()) for k in z.files
                   if k.startswith("w/")}
    model = AimModel(ModelConfig.from_dict(info["config"]))
    model.load_state_dict(weights)
    return model.eval()


def _dict_step(model):  # noqa: ANN001, ANN202
    import torch
    from torch import nn

    from .model import STATE_NAMES

    class DictStep(nn.Module):
        """``forward(fbank=, instruction=, <state>=)`` -> dict of heads and ``new_<state>``."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, fbank: torch.Tensor, instruction: torch.Tensor,
                    **state: torch.Tensor) -> dict[str, torch.Tensor]:
            outputs, new_state = self.model.step(fbank, instruction, state)
            out = {k: outputs[k] for k in HEADS}
            out.update({f"new_{k}": new_state[k] for k in STATE_NAMES})
            return out

    return DictStep().eval()


def convert(model, out: Path, precisions: Sequence[str] = PRECISIONS) -> dict[str, str]:  # noqa: ANN001
    """Convert ``model`` (an AimModel) to the requested TFLite precisions under ``out``."""
    import litert_torch
    import torch

    from .model import STATE_NAMES

    bad = sorted(set(precisions) - set(PRECISIONS))
    if bad:
        raise SystemExit(f"export.tflite: unknown precision(s) {bad}; choose from {PRECISIONS}")
    out.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg
    state = model.initial_state(1)
    sample = {"fbank": torch.zeros(1, cfg.chunk_frames, cfg.n_mels),
              "instruction": torch.zeros(1, cfg.instruction_dim),
              **{k: state[k] for k in STATE_NAMES}}
    written: dict[str, str] = {}
    fp32 = out / FILES["fp32"]
    with torch.no_grad():
        edge = litert_torch.convert(_dict_step(model), sample_kwargs=sample)
    edge.export(str(fp32))
    written["fp32"] = str(fp32)
    if "int8" in precisions:
        from ai_edge_quantizer import quantizer, recipe

        q = quantizer.Quantizer(str(fp32), recipe.dynamic_wi8_afp32())
        result = q.quantize(enable_progress_report=False)
        result.export_model(str(out / FILES["int8"]), overwrite=True)
        written["int8"] = str(out / FILES["int8"])
    if "fp32" not in precisions:
        fp32.unlink()
        del written["fp32"]
    return written


def stamp_tflite_metadata(path: str | Path, facts: dict[str, Any]) -> None:
    """Store ``facts`` as JSON in the model's metadata entry ``aim_edge`` (replacing one).

    Uses ai-edge-litert's flatbuffer schema (``ai_edge_litert.schema_py_generated``): the
    TFLite ``Model.metadata`` table maps a name to a buffer; interpreters ignore unknown
    entries, and :func:`read_tflite_metadata` reads it back.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    path = Path(path)
    buf = path.read_bytes()
    model = schema.ModelT.InitFromPackedBuf(bytearray(buf), 0)
    for b in model.buffers or []:
        # ai-edge-quantizer appends large buffers after the flatbuffer (offset/size); repacking
        # moves the flatbuffer, so bring their bytes inline (models here are a few MB)
        if getattr(b, "offset", 0) and b.offset > 1:
            b.data = np.frombuffer(buf[b.offset:b.offset + b.size], np.uint8)
            b.offset, b.size = 0, 0
    data = np.frombuffer(json.dumps(facts, sort_keys=True).encode(), np.uint8)
    entry = schema.BufferT()
    entry.data = data
    model.buffers = list(model.buffers or []) + [entry]
    meta = schema.MetadataT()
    meta.name = TFLITE_METADATA_NAME
    meta.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or [])
                      if (m.name.decode() if isinstance(m.name, bytes) else m.name)
                      != TFLITE_METADATA_NAME] + [meta]
    builder = flatbuffers.Builder(len(buf) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))


def read_tflite_metadata(path: str | Path) -> dict[str, Any] | None:
    """The ``aim_edge`` metadata of a TFLite file, or None when it has none."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    for i in range(model.MetadataLength()):
        m = model.Metadata(i)
        if m.Name().decode() == TFLITE_METADATA_NAME:
            data = model.Buffers(m.Buffer()).DataAsNumpy()
            return json.loads(bytes(data).decode())
    return None


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m export.tflite",
        description="""\
Convert an AIM checkpoint's streaming step to TFLite (litert-torch). Run it in the TFLite
environment (make tflite-env; .venv-tflite/bin/python).

int8 is dynamic-range quantization (ai-edge-quantizer dynamic_wi8_afp32): INT8 weights per
channel, float32 activations (CPU hybrid kernels quantize them on the fly). Not a full-integer
model: an integer-only NPU or DSP delegate will not take it. Full-integer static INT8 broke
the model's decisions when measured (../shared/DESIGN.md) and is not offered.""",
        epilog="""\
example:
  .venv-tflite/bin/python -m export.tflite --weights export/checkpoints/student-v0.8.npz \\
      --out out/tflite --precisions fp32,int8
python -m export.bundle --formats ...,tflite-int8 runs this for you and gates the result on
parity with fp32 torch.""",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, required=True,
                   help="weights .npz written by export.bundle.save_weights_npz (pickle-free)")
    p.add_argument("--out", type=Path, required=True, help="folder for the .tflite files")
    p.add_argument("--precisions", default="fp32,int8",
                   help=f"comma separated subset of {','.join(PRECISIONS)} (default: both;"
                   " int8 = INT8 weights, float activations)")
    args = p.parse_args(argv)
    if not args.weights.is_file():
        print(f"export.tflite: weights not found: {args.weights}", file=sys.stderr)
        return 2
    try:
        import litert_torch  # noqa: F401
    except ImportError:
        print("export.tflite: litert-torch is not installed in this Python "
              f"({sys.executable}); create the TFLite environment with `make tflite-env` and "
              "run .venv-tflite/bin/python -m export.tflite ...", file=sys.stderr)
        return 2
    precisions = [x.strip() for x in args.precisions.split(",") if x.strip()]
    written = convert(_load_npz(args.weights), args.out, precisions)
    print(json.dumps({"written": written}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
