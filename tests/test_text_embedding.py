"""The weight-free instruction encoder is deterministic, normalised and content-sensitive."""

import numpy as np
import pytest

from aim_edge.text_embedding import HashedBagOfWords, _fnv1a, normalise_text


def test_fnv1a_known_answers():
    # reference values of 64-bit FNV-1a (http://www.isthe.com/chongo/tech/comp/fnv/)
    assert _fnv1a("") == 0xCBF29CE484222325
    assert _fnv1a("a") == 0xAF63DC4C8601EC8C
    assert _fnv1a("foobar") == 0x85944171F73967E8


def test_embedding_is_deterministic_and_normalised():
    enc = HashedBagOfWords()
    a = enc.encode("Tell me when the kettle whistles")
    b = HashedBagOfWords().encode("tell me when the KETTLE whistles!")
    assert a.dtype == np.float32 and a.shape == (384,)
    np.testing.assert_array_equal(a, b)
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-6)
    assert not enc.encode("").any() and not enc.encode(None).any()


def test_shared_content_words_bring_paraphrases_closer():
    enc = HashedBagOfWords()
    a = enc.encode("tell me when the kettle whistles")
    b = enc.encode("let me know if the kettle starts whistling")
    c = enc.encode("let me know if the doorbell rings")
    assert float(a @ b) > float(a @ c)


def test_round_trip_through_the_manifest_spec():
    enc = HashedBagOfWords(dim=64, buckets=256, seed=7)
    again = HashedBagOfWords.from_dict(enc.to_dict())
    np.testing.assert_array_equal(enc.encode("doorbell"), again.encode("doorbell"))
    with pytest.raises(ValueError, match="kind 'minilm'"):
        HashedBagOfWords.from_dict({"kind": "minilm"})


def test_normalise_text_keeps_apostrophes():
    assert normalise_text("Don't bother me, OK?") == ["don't", "bother", "me", "ok"]
