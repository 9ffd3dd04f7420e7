"""Cached teacher transcripts (python -m export.whisper.transcribe)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from whisper_helpers import real_clips, whisper_export  # noqa: F401

from export.whisper.transcribe import TranscriptCache, audio_sha256, main, model_fingerprint


class _Counting:
    def __init__(self):
        self.calls = 0

    def transcribe(self, samples):
        self.calls += 1
        return f"heard {samples.size} samples"


def test_cache_is_keyed_by_audio_and_model(tmp_path):
    x = np.linspace(-0.5, 0.5, 16000, dtype=np.float32)
    sp = _Counting()
    cache = TranscriptCache(tmp_path, "model-a")
    entry, cached = cache.transcribe(x, sp)
    assert (entry["text"], cached, sp.calls) == ("heard 16000 samples", False, 1)
    assert entry["audio_sha256"] == audio_sha256(x) == audio_sha256(x.astype(np.float64))
    # the same audio again (even as a new array): no second run
    entry2, cached = TranscriptCache(tmp_path, "model-a").transcribe(x.copy(), sp)
    assert (entry2, cached, sp.calls) == (entry, True, 1)
    # other audio, or another model: computed
    assert TranscriptCache(tmp_path, "model-a").transcribe(x[:-1], sp)[1] is False
    assert TranscriptCache(tmp_path, "model-b").transcribe(x, sp)[1] is False
    assert sp.calls == 3
    # a corrupt entry is recomputed and counted, never trusted
    cache.path(audio_sha256(x)).write_text("{not json")
    fresh = TranscriptCache(tmp_path, "model-a")
    entry3, cached = fresh.transcribe(x, sp)
    assert (cached, fresh.corrupt, sp.calls) == (False, 1, 4)
    assert entry3["text"] == "heard 16000 samples"


def test_cli_transcribes_real_speech_once_then_reads_the_cache(whisper_export,  # noqa: F811
                                                               tmp_path, capsys):
    from aim_edge.audio import write_wav

    clips = real_clips(2)
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    for i, c in enumerate(clips):  # one at 8 kHz stereo: decoded and resampled before keying
        if i == 0:
            import soxr

            x8 = soxr.resample(c.samples, 16000, 8000)
            write_wav(wavs / "a.wav", 8000, np.stack([x8, x8], axis=1))
        else:
            write_wav(wavs / "b.wav", 16000, c.samples)
    args = ["--asr", str(whisper_export), "--wav", str(wavs), "--cache", str(tmp_path / "c"),
            "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "1.jsonl")]) == 0
    first = [json.loads(line) for line in (tmp_path / "1.jsonl").read_text().splitlines()]
    assert [r["cached"] for r in first] == [False, False]
    assert "2 computed" in capsys.readouterr().out
    words = set(clips[1].text.lower().replace(".", "").split())
    assert len(words & set(first[1]["text"].lower().replace(".", "").split())) >= 3
    fp = model_fingerprint(whisper_export)
    assert len(list((tmp_path / "c" / fp).rglob("*.json"))) == 2
    assert main([*args, "--out", str(tmp_path / "2.jsonl")]) == 0
    second = [json.loads(line) for line in (tmp_path / "2.jsonl").read_text().splitlines()]
    assert [r["cached"] for r in second] == [True, True]
    assert [r["text"] for r in second] == [r["text"] for r in first]
    assert "2 from the cache, 0 computed" in capsys.readouterr().out


def test_cli_errors_name_the_fix(tmp_path, capsys):
    assert main(["--asr", str(tmp_path), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "--corpus and/or --wav" in capsys.readouterr().err
    assert main(["--asr", str(tmp_path), "--wav", str(tmp_path), "--out",
                 str(tmp_path / "o.jsonl")]) == 2
    assert "make asr-export" in capsys.readouterr().err
    shutil.rmtree(tmp_path)
    with pytest.raises(SystemExit):
        main(["--asr", "x", "--corpus", "nope", "--out", "o"])
