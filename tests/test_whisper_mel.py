"""aim-edge's numpy Whisper front end against references.

References: Hugging Face's ``WhisperFeatureExtractor`` in numpy mode (an independent
implementation of Whisper's ``log_mel_spectrogram``), and a direct float64 transcription of
OpenAI's README recipe written here (``pad_or_trim`` to 30 s, then ``log_mel_spectrogram``:
every frame transformed, the last of 3001 dropped) -- which also checks that transforming only
the frames that overlap the audio changes nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from whisper_helpers import real_clips, require

from aim_edge.asr.whisper import N_FRAMES, log_mel_spectrogram, mel_filters
from aim_edge.errors import AudioInputError, AudioTypeError

TOL = 1e-4


def openai_reference(samples: np.ndarray) -> np.ndarray:
    """OpenAI whisper/audio.py ``log_mel_spectrogram(pad_or_trim(audio))``, in float64."""
    x = np.zeros(480000)
    x[:min(len(samples), 480000)] = np.asarray(samples, np.float64)[:480000]
    padded = np.pad(x, 200, mode="reflect")
    n = 1 + (padded.shape[0] - 400) // 160  # 3001 frames
    idx = np.arange(400)[None, :] + 160 * np.arange(n)[:, None]
    window = np.hanning(401)[:-1]  # periodic Hann = torch.hann_window(400)
    power = np.abs(np.fft.rfft(padded[idx] * window, axis=-1)) ** 2
    mel = mel_filters() @ power[:-1].T
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0)[:, :N_FRAMES]


def test_mel_filters_match_librosa_slaney_via_transformers():
    require("transformers")
    from transformers.audio_utils import mel_filter_bank

    ref = mel_filter_bank(num_frequency_bins=201, num_mel_filters=80, min_frequency=0.0,
                          max_frequency=8000.0, sampling_rate=16000, norm="slaney",
                          mel_scale="slaney")
    assert mel_filters().shape == (80, 201)
    np.testing.assert_allclose(mel_filters(), ref.T, atol=1e-9, rtol=0)


def test_log_mel_matches_huggingface_feature_extractor_on_real_speech():
    require("transformers")
    from transformers import WhisperFeatureExtractor

    fe = WhisperFeatureExtractor(feature_size=80)
    for utt in real_clips(3):
        ref = fe(utt.samples, sampling_rate=16000, return_tensors="np").input_features[0]
        ours = log_mel_spectrogram(utt.samples)
        assert ours.shape == (80, 3000) and ours.dtype == np.float32
        assert np.abs(ours - ref).max() < TOL, utt.name


@pytest.mark.parametrize("n", [0, 1, 2, 150, 199, 200, 201, 399, 400, 401, 16000, 479_999,
                               480_000, 480_001, 500_000])
def test_log_mel_matches_openai_recipe_at_awkward_lengths(n):
    rng = np.random.default_rng(n)
    x = (0.3 * rng.standard_normal(n)).astype(np.float32)
    ours = log_mel_spectrogram(x, dtype=np.float64)
    ref = openai_reference(x)
    assert ours.shape == ref.shape == (80, 3000)
    assert np.abs(ours - ref).max() < TOL


def test_input_types_and_errors():
    x = (np.sin(np.arange(8000) * 0.05) * 0.5).astype(np.float32)
    ref = log_mel_spectrogram(x)
    np.testing.assert_allclose(log_mel_spectrogram(x.astype(np.float64)), ref, atol=1e-6)
    as_int16 = np.round(x * 32767).astype(np.int16)
    np.testing.assert_allclose(log_mel_spectrogram(as_int16),
                               log_mel_spectrogram(as_int16.astype(np.float32) / 32768), atol=1e-6)
    with pytest.raises(AudioTypeError, match="int32"):
        log_mel_spectrogram(np.zeros(10, np.int32))
    with pytest.raises(AudioInputError, match=r"shape \(2, 10\)"):
        log_mel_spectrogram(np.zeros((2, 10), np.float32))
    with pytest.raises(AudioInputError, match="NaN"):
        log_mel_spectrogram(np.array([0.0, np.nan], np.float32))
    # silence: every value at the floor, (log10(1e-10) + 4) / 4
    np.testing.assert_allclose(log_mel_spectrogram(np.zeros(100, np.float32)), -1.5)
