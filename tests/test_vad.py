"""silero-vad speech endpoints (aim_edge.vad) and the engine's ``endpoints="silero"`` mode."""

from __future__ import annotations

import importlib.util
from unittest import mock

import numpy as np
import pytest
from runtime_helpers import ScriptedBackend, spell
from whisper_helpers import real_clips, whisper_export  # noqa: F401

from aim_edge.bundle import load_bundle
from aim_edge.engine import Engine
from aim_edge.errors import ConfigError, OptionalDependencyError


def _require_silero():
    if importlib.util.find_spec("silero_vad") is None:
        pytest.skip("silero-vad is not installed: pip install --no-deps silero-vad==6.2.3")


@pytest.fixture(scope="module")
def speech_stream():
    """Two real utterances with silence around them, and where each one is."""
    clips = real_clips(2)
    gap = np.zeros(16000, np.float32)
    parts, spans, t = [gap], [], 1.0
    for c in clips:
        x = np.asarray(c.samples, np.float32)
        parts += [x, gap, gap]
        spans.append((t, t + x.size / 16000))
        t += x.size / 16000 + 2.0
    return np.concatenate(parts), spans, clips


def test_missing_package_names_the_no_deps_install():
    from aim_edge import vad

    with mock.patch("importlib.util.find_spec", return_value=None):
        with pytest.raises(OptionalDependencyError, match="--no-deps silero-vad==6.2.3"):
            vad.silero_model_path()


def test_streaming_probabilities_do_not_depend_on_block_size(speech_stream):
    _require_silero()
    from aim_edge.vad import SileroVad

    x = speech_stream[0][:16000 * 3]
    vad = SileroVad()
    ref = vad.accept(x)
    assert ref.shape == (x.size // 512,)
    for block in (1, 17, 509, 2560, 8193):
        vad.reset()
        got = np.concatenate([vad.accept(x[i:i + block]) for i in range(0, x.size, block)])
        np.testing.assert_allclose(got, ref, atol=1e-6)


def test_endpoints_bracket_each_real_utterance(speech_stream):
    _require_silero()
    from aim_edge.vad import VadEndpointer

    x, spans, _ = speech_stream
    ep = VadEndpointer(pad_s=0.1)
    segs = []
    for i in range(0, x.size, 2560):  # one 160 ms chunk at a time
        segs += ep.accept(x[i:i + 2560])
    segs += ep.finish()
    print([(round(s.start_s, 2), round(s.end_s, 2), round(s.decided_s, 2)) for s in segs],
          spans)
    assert len(segs) == len(spans)
    for seg, (a, b) in zip(segs, spans, strict=True):
        # the clips carry a little silence of their own: allow 0.4 s inside, 0.2 s outside
        assert a - 0.2 <= seg.start_s <= a + 0.4 and b - 0.4 <= seg.end_s <= b + 0.2
        assert seg.end_s < seg.decided_s <= seg.end_s + 0.5  # known soon after the end
    # the default pads 0.3 s on each side (Whisper wants silence around short words)
    ep = VadEndpointer()
    wide = ep.accept(x) + ep.finish()
    for seg, w in zip(segs, wide, strict=True):
        assert abs((seg.start_s - w.start_s) - 0.2) < 1e-6
        assert abs((w.end_s - seg.end_s) - 0.2) < 1e-6


def test_endpointer_options_are_checked():
    _require_silero()
    from aim_edge.vad import VadEndpointer

    for kw, bad in (("threshold", 1.5), ("threshold", 0.1), ("min_silence_s", -1),
                    ("pad_s", float("nan")), ("max_speech_s", True)):
        with pytest.raises(ConfigError, match=f"{kw} = "):
            VadEndpointer(**{kw: bad})


class _Recorder:
    """A second pass that reports what it was given."""

    def __init__(self):
        self.lengths = []

    def transcribe(self, samples):
        self.lengths.append(samples.size / 16000)
        return f"utterance {len(self.lengths)}"


def test_engine_silero_endpoints_make_one_final_per_utterance(runtime_fake_bundle,
                                                              speech_stream):
    _require_silero()
    x, spans, _ = speech_stream
    frames = spell("abc")  # the student "hears" a word once, early: its final is replaced

    def script(i, feeds):
        return {"ctc": frames} if i == 8 else {}

    bundle = load_bundle(runtime_fake_bundle)
    with pytest.raises(ConfigError, match="only decides when the second pass runs"):
        Engine(bundle, ScriptedBackend(bundle, script), endpoints="silero")
    with pytest.raises(ConfigError, match="expected one of"):
        Engine(bundle, ScriptedBackend(bundle, script), endpoints="webrtc",
               second_pass=_Recorder())
    sp = _Recorder()
    with Engine(bundle, ScriptedBackend(bundle, script), second_pass=sp,
                endpoints="silero") as engine:
        res = engine.process_array(x, 16000)
    finals = res.captions
    assert [c["text"] for c in finals] == ["utterance 1", "utterance 2"]
    assert all(c["endpoint"] == "silero" and c["second_pass"] for c in finals)
    for c, (a, b), n in zip(finals, spans, sp.lengths, strict=True):
        assert abs(c["start_s"] - a) < 0.5 and abs(c["end_s"] - b) < 0.5
        assert abs(n - (c["end_s"] - c["start_s"])) < 0.05
    # the student's own final ("abc") never became a caption in this mode
    assert not any(c["text"] == "abc" for c in finals)


def test_run_with_silero_endpoints_captions_real_speech(speech_stream, whisper_export,  # noqa: F811
                                                        tmp_path):
    _require_silero()
    import json
    import wave

    from aim_edge import bundles, cli

    if bundles.default_bundle_path() is None:
        pytest.skip("no default bundle shipped in aim_edge/models/default")
    x, spans, clips = speech_stream
    wav = tmp_path / "speech.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    out = tmp_path / "events.jsonl"
    assert cli.main(["run", str(wav), "--asr", str(whisper_export), "--endpoints", "silero",
                     "--jsonl", str(out), "--quiet"]) == 0
    finals = [e for e in map(json.loads, out.read_text().splitlines())
              if e["type"] == "caption" and e["final"]]
    assert [e["endpoint"] for e in finals] == ["silero"] * len(clips)
    from export.whisper.speech import wer

    assert wer([c.text for c in clips], [e["text"] for e in finals]) <= 0.2


def test_vad_never_imports_torch_or_the_silero_package():
    _require_silero()
    import subprocess
    import sys

    code = ("import sys, numpy as np\nfrom aim_edge.vad import VadEndpointer\n"
            "ep = VadEndpointer()\nep.accept(np.zeros(16000, np.float32))\n"
            "print(sorted(m for m in ('torch', 'silero_vad') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
