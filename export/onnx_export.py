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
