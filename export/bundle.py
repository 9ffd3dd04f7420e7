"""Turn a checkpoint into a model bundle the runtime loads (see ``aim_edge/bundle.py``).

    python -m export.bundle --checkpoint CKPT --out DIR [--formats onnx-fp32,onnx-int8]
    python -m export.bundle --random-init --events smoke_alarm:safety,doorbell --out DIR

``--random-init`` makes an untrained bundle with the real contract, for building and testing the
runtime before a trained model exists (its name says so; never ship it).

Every artifact passes a parity gate: it is streamed over held-out fbank chunks with its state fed
back and compared with the fp32 torch streaming reference (max abs difference per head and
agreement of speak-now / event decisions at the manifest thresholds). An artifact that misses
its bar fails the export with a message naming it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aim_edge.bundle import SCHEMA_VERSION, load_bundle, sha256_file
from aim_edge.config import FbankConfig
from aim_edge.text_embedding import HashedBagOfWords

from .model import STATE_NAMES, AimModel, ModelConfig
from .onnx_export import OUTPUT_NAMES, export_step_onnx

FORMATS = ("onnx-fp32", "onnx-int8")
DEFAULT_GATE = {"decision_agreement": 0.995}


def save_checkpoint(model: AimModel, path: str | Path, meta: dict[str, Any] | None = None) -> None:
    """Checkpoint = config + tensors (+ meta); load with ``weights_only=True`` (no code)."""
    torch.save({"config": model.cfg.to_dict(), "model": model.state_dict(),
                "meta": meta or {}}, str(path))


def save_weights_npz(model: AimModel, path: str | Path, meta: dict[str, Any] | None = None
                     ) -> Path:
    """Pickle-free checkpoint: float16 weights + config + meta as JSON, in one ``.npz``.

    What the repository keeps of a trained model (so later work can fine-tune or distil from
    it); optimizer state is not kept.
    """
    path = Path(path)
    arrays = {f"w/{k}": v.detach().cpu().half().numpy() if v.is_floating_point()
              else v.detach().cpu().numpy() for k, v in model.state_dict().items()}
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


def quantize_int8_dynamic(src: Path, dst: Path) -> Path:
    """Dynamic INT8 on MatMul/Gemm only (DESIGN.md: best on onnxruntime CPU)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_dynamic(str(pre), str(dst), weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul", "Gemm"])
    import onnx

    # quantization drops nothing we need, but re-stamp the metadata of the fp32 file
    fp32, q = onnx.load(str(src)), onnx.load(str(dst))
    del q.metadata_props[:]
    q.metadata_props.extend(fp32.metadata_props)
    onnx.save(q, str(dst))
    return dst


def _run_onnx_stream(path: Path, chunks: np.ndarray, instruction: np.ndarray,
                     init: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    state = dict(init)
    outs: dict[str, list[np.ndarray]] = {k: [] for k in OUTPUT_NAMES}
    names = [o.name for o in sess.get_outputs()]
    for chunk in chunks:
        res = dict(zip(names, sess.run(None, {"fbank": chunk[None], "instruction": instruction,
                                               **state}), strict=True))
        for k in OUTPUT_NAMES:
            outs[k].append(res[k][0])
        state = {k: res[f"new_{k}"] for k in STATE_NAMES}
    return {k: np.stack(v) for k, v in outs.items()}


def _run_torch_stream(model: AimModel, chunks: np.ndarray, instruction: np.ndarray
                      ) -> dict[str, np.ndarray]:
    state = model.initial_state(1)
    outs: dict[str, list[np.ndarray]] = {k: [] for k in OUTPUT_NAMES}
    instr = torch.from_numpy(instruction)
    with torch.no_grad():
        for chunk in chunks:
            o, state = model.step(torch.from_numpy(chunk[None]), instr, state)
            for k in OUTPUT_NAMES:
                outs[k].append(o[k][0].numpy())
    return {k: np.stack(v) for k, v in outs.items()}


def parity(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray],
           speak_threshold: float, event_threshold: float) -> dict[str, float]:
    """Max abs difference per head and decision agreement at the thresholds."""
    def logit(p: float) -> float:
        return float(np.log(p / (1 - p)))

    res = {f"max_abs_{k}": float(np.abs(reference[k] - candidate[k]).max()) for k in OUTPUT_NAMES}
    speak_ref = reference["speak_logit"] > logit(speak_threshold)
    speak_can = candidate["speak_logit"] > logit(speak_threshold)
    ev_ref = reference["event_logits"] > logit(event_threshold)
    ev_can = candidate["event_logits"] > logit(event_threshold)
    res["speak_agreement"] = float((speak_ref == speak_can).mean())
    res["event_agreement"] = float((ev_ref == ev_can).mean())
    res["decision_agreement"] = min(res["speak_agreement"], res["event_agreement"])
    ctc_ref = reference["ctc_logprobs"].argmax(-1)
    res["ctc_argmax_agreement"] = float((ctc_ref == candidate["ctc_logprobs"].argmax(-1)).mean())
    return res


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


def build_bundle(model: AimModel, out: str | Path, *, formats: Sequence[str] = FORMATS,
                 name: str = "aim-edge", events_safety: dict[str, bool] | None = None,
                 features: FbankConfig | None = None, thresholds: dict[str, Any] | None = None,
                 provenance: dict[str, Any] | None = None, gate: dict[str, float] | None = None,
                 parity_fbank: np.ndarray | None = None,
                 instruction_encoder: dict[str, Any] | None = None) -> Path:
    """Export ``model`` to a bundle folder ``out`` and return its path (validated on return)."""
    out = Path(out)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise SystemExit(f"unknown format(s) {unknown}; choose from {list(FORMATS)}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cfg = model.cfg
    features = features or FbankConfig()
    if features.n_mels != cfg.n_mels:
        raise SystemExit(f"features.n_mels={features.n_mels} != model n_mels={cfg.n_mels}")
    events_safety = events_safety or {}
    thresholds = thresholds or {"speak_now": 0.5, "events": {e: 0.5 for e in cfg.events}}
    gate = {**DEFAULT_GATE, **(gate or {})}
    meta = {"aim_edge.features": features.to_dict(), "aim_edge.bundle_name": name}

    model = model.eval()
    chunks = parity_chunks(model, fbank=parity_fbank)
    instruction = np.zeros((1, cfg.instruction_dim), np.float32)
    reference = _run_torch_stream(model, chunks, instruction)
    init = {k: v.numpy() for k, v in model.initial_state(1).items()}

    artifacts = []
    fp32 = out / "model.fp32.onnx"
    export_step_onnx(model, fp32, meta)
    files = {"onnx-fp32": (fp32, "fp32")}
    if "onnx-int8" in formats:
        files["onnx-int8"] = (quantize_int8_dynamic(fp32, out / "model.int8.onnx"), "int8-dynamic")
    if "onnx-fp32" not in formats:
        del files["onnx-fp32"]
    for key, (path, precision) in files.items():
        cand = _run_onnx_stream(path, chunks, instruction, init)
        par = parity(reference, cand, thresholds["speak_now"], 0.5)
        par["chunks"] = len(chunks)
        if par["decision_agreement"] < gate["decision_agreement"]:
            raise SystemExit(
                f"parity gate failed for {path.name} ({key}): decision agreement "
                f"{par['decision_agreement']:.4f} < {gate['decision_agreement']}; details {par}"
            )
        artifacts.append({"file": path.name, "format": "onnx", "precision": precision,
                          "role": "step", "size": path.stat().st_size,
                          "sha256": sha256_file(path), "parity": par})
    if "onnx-fp32" not in formats:
        fp32.unlink()

    state_specs = [{"name": k, "shape": list(v.shape), "dtype": "float32", "init": 0.0}
                   for k, v in model.initial_state(1).items()]
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "features": features.to_dict(),
        "model": {"chunk_frames": cfg.chunk_frames, "subsampling": cfg.subsampling,
                  "lookahead_frames": 0, "instruction_dim": cfg.instruction_dim,
                  "architecture": cfg.to_dict()},
        "state": state_specs,
        "labels": {"vocab": list(cfg.vocab),
                   "events": [{"name": e, "safety": bool(events_safety.get(e, False))}
                              for e in cfg.events],
                   "intents": list(cfg.intents)},
        "thresholds": thresholds,
        "artifacts": artifacts,
        "instructions": {"encoder": instruction_encoder or HashedBagOfWords(
            dim=cfg.instruction_dim).to_dict()},
        "provenance": provenance or {},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    load_bundle(out, expect_features=features)  # the bundle we write must load
    return out


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
        description="Export a trained AIM checkpoint to a runtime bundle (ONNX fp32/int8).",
        epilog="example: python -m export.bundle --checkpoint ckpt/student.pt --out bundles/s1",
    )
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="checkpoint written by export.train")
    src.add_argument("--random-init", action="store_true",
                     help="untrained model with the real contract (runtime development only)")
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to (re)create")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help=f"comma separated subset of {','.join(FORMATS)}")
    parser.add_argument("--events", default="smoke_alarm:safety,co_alarm:safety,siren:safety,"
                        "glass_break:safety,doorbell,kettle_whistle,phone_ring,knock",
                        help="with --random-init: LABEL[:safety],...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", action="store_true", help="with --random-init: a tiny model")
    parser.add_argument("--evaluation", type=Path,
                        help="JSON from `python -m export.evaluate --calibrate-on ...`: its "
                        "calibrated thresholds go into the manifest, its metrics into provenance")
    parser.add_argument("--name", help="bundle name (default: from the checkpoint)")
    parser.add_argument("--parity-data", type=Path,
                        help="held-out split (folder or export.pack .npz) whose real fbank the "
                        "parity gate streams (default: a seeded synthetic log-mel signal)")
    parser.add_argument("--parity-chunks", type=int, default=400,
                        help="chunks of --parity-data to stream (160 ms each)")
    parser.add_argument("--min-agreement", type=float, default=None,
                        help="parity gate: minimum speak-now/event decision agreement of every "
                        f"artifact with the fp32 torch reference (default "
                        f"{DEFAULT_GATE['decision_agreement']}; 0 with --random-init, whose "
                        "logits sit at the threshold)")
    args = parser.parse_args(argv)

    if args.random_init:
        torch.manual_seed(args.seed)
        events = _parse_events(args.events)
        kw: dict[str, Any] = {"events": tuple(events)}
        if args.small:
            kw.update(d_model=64, n_layers=2, left_context=16, decide_context=16)
        model = AimModel(ModelConfig(**kw)).eval()
        name, prov = "random-init (untrained, for runtime development)", {"trained": False}
    else:
        if not args.checkpoint.is_file():
            print(f"checkpoint not found: {args.checkpoint}", file=sys.stderr)
            return 2
        model, meta = load_checkpoint(args.checkpoint)
        events = dict(meta.get("events_safety", {}))
        name, prov = str(meta.get("name", args.checkpoint.stem)), meta.get("provenance", {})
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    min_agree = args.min_agreement
    if min_agree is None:
        min_agree = 0.0 if args.random_init else DEFAULT_GATE["decision_agreement"]
    thresholds = None
    if args.evaluation:
        evaluation = json.loads(args.evaluation.read_text())
        if "thresholds" not in evaluation:
            print(f"{args.evaluation} has no calibrated thresholds (run export.evaluate with "
                  "--calibrate-on)", file=sys.stderr)
            return 2
        thresholds = evaluation["thresholds"]
        prov = {**prov, "metrics": evaluation.get("test")}
    parity_fbank = None
    if args.parity_data:
        from .targets import load_split

        streams, _, _ = load_split(args.parity_data)
        parity_fbank = np.concatenate([s.feats for s in streams]).astype(np.float32)
        parity_fbank = parity_fbank[: args.parity_chunks * model.cfg.chunk_frames]
    out = build_bundle(model, args.out, formats=formats, name=args.name or name,
                       events_safety=events, provenance=prov, thresholds=thresholds,
                       gate={"decision_agreement": min_agree}, parity_fbank=parity_fbank)
    manifest = json.loads((out / "manifest.json").read_text())
    for a in manifest["artifacts"]:
        print(f"{a['file']:<20} {a['precision']:<13} {a['size'] / 1e6:6.2f} MB  "
              f"decision agreement {a['parity']['decision_agreement']:.4f}  "
              f"max|d speak| {a['parity']['max_abs_speak_logit']:.2e}")
    print(f"bundle written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
