"""Engine and stream on a real (tiny, untrained) exported bundle: streaming == one-shot, bad
bundles, missing backends, bad audio, resampling, reset, several streams."""

import json
import shutil
import struct
import sys
import types
from unittest import mock

import numpy as np
import pytest
from runtime_helpers import ScriptedBackend, noise

from aim_edge.audio import read_wav, wav_info, write_wav
from aim_edge.backends import (
    BACKENDS,
    available_backends,
    check_known_answer,
    create_backend,
    run_known_answer,
)
from aim_edge.bundle import load_bundle, sha256_file
from aim_edge.config import FbankConfig
from aim_edge.engine import Engine
from aim_edge.errors import (
    AudioInputError,
    AudioTypeError,
    BackendUnavailableError,
    BundleError,
    ConfigError,
    OptionalDependencyError,
)
from aim_edge.features import compute_fbank
from aim_edge.policy import PolicyConfig

HEADS = ("ctc_logprobs", "speak_logit", "intent_logits", "event_logits")


@pytest.fixture(scope="module")
def engine(runtime_small_bundle):
    with Engine.from_bundle(runtime_small_bundle) as eng:
        yield eng


def stream_with_blocks(engine, x, block):
    """Push ``x`` in blocks of ``block`` samples, decoding whenever ready."""
    s = engine.create_stream(record_outputs=True)
    events = []
    for i in range(0, len(x), block):
        s.accept_waveform(16000, x[i:i + block])
        while s.is_ready():
            events.extend(s.decode())
    s.input_finished()
    while s.is_ready():
        events.extend(s.decode())
    return s, events


def strip_latency(events):
    return [{k: v for k, v in e.items() if k != "latency_ms"} for e in events]


# ---------------------------------------------------------------------------- streaming

def test_streaming_equals_one_shot_for_awkward_push_sizes(engine):
    x = noise(1.9, seed=3)[:30_517]  # not a whole number of chunks, hops or frames
    ref = engine.process_array(x, 16000, block_samples=len(x), record_outputs=True)
    assert ref.chunks == 12  # 189 frames -> 11 full chunks + a padded 13-frame one
    ref_outputs = ref.outputs
    for block in (1, 17, 160, 509, 1281, 8193):
        s, events = stream_with_blocks(engine, x if block > 1 else x[:8000], block)
        outs = s.get_result().outputs
        want = ref_outputs if block > 1 else None
        if want is None:  # 1-sample pushes on a shorter prefix: compare with its own one-shot
            want = engine.process_array(x[:8000], 16000, block_samples=8000,
                                        record_outputs=True).outputs
        assert len(outs) == len(want)
        for a, b in zip(outs, want, strict=True):
            for k in HEADS:
                np.testing.assert_array_equal(a[k], b[k], err_msg=f"{k}, block {block}")
        if block > 1:
            assert strip_latency(events) == strip_latency(ref.events)
    # final model state is identical too
    s1, _ = stream_with_blocks(engine, x, 509)
    s2, _ = stream_with_blocks(engine, x, len(x))
    for k, v in s1.state.items():
        np.testing.assert_array_equal(v, s2.state[k], err_msg=k)


def test_engine_outputs_equal_a_direct_onnxruntime_reference(engine, runtime_small_bundle):
    import onnxruntime as ort

    x = noise(1.0, seed=5)
    res = engine.process_array(x, 16000, record_outputs=True)
    bundle = engine.bundle
    feats = compute_fbank(x, bundle.features)
    n = len(feats) // 16
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(bundle.artifact(precision="fp32").path), opts,
                                providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    state = {s.name: np.full(s.shape, s.init, np.float32) for s in bundle.state}
    for i in range(n):
        out = dict(zip(names, sess.run(None, {
            "fbank": feats[16 * i:16 * i + 16][None], **state,
            "instruction": np.zeros((1, bundle.instruction_dim), np.float32)}), strict=True))
        for k in HEADS:
            np.testing.assert_allclose(res.outputs[i][k], out[k][0], rtol=0, atol=1e-5)
        state = {s.name: out[f"new_{s.name}"] for s in bundle.state}


def test_timestamps_are_ordered_per_chunk(engine):
    s, _ = stream_with_blocks(engine, noise(1.0), 2560)
    recs = s.timings.records()
    assert len(recs) == s.get_result().chunks == 7  # 98 frames: 6 chunks + 2 frames padded
    for r in recs:
        stamps = [r.t_capture, r.t_ring, r.t_features, r.t_decide, r.t_model, r.t_decision,
                  r.t_emitted]
        assert all(stamps) and stamps == sorted(stamps), r.as_dict()
        assert 0 < r.latency_ms() < 1000
    summary = s.timings.summary()
    assert set(summary) >= {"features", "model", "decision", "respond", "end_to_end"}
    assert summary["model"]["n"] == 7


def test_reset_starts_over_identically(engine):
    x = noise(1.2, seed=7)
    s, first = stream_with_blocks(engine, x, 1000)
    out1 = s.get_result().outputs
    s.reset()
    assert s.get_result().chunks == 0 and not s.get_result().events
    for i in range(0, len(x), 777):
        s.accept_waveform(16000, x[i:i + 777])
    s.input_finished()
    while s.is_ready():
        s.decode()
    out2 = s.get_result().outputs
    assert len(out1) == len(out2)
    for a, b in zip(out1, out2, strict=True):
        np.testing.assert_array_equal(a["event_logits"], b["event_logits"])


def test_decode_streams_matches_separate_streams(engine):
    xs = [noise(1.0, seed=1), noise(0.7, seed=2)]
    streams = [engine.create_stream(record_outputs=True) for _ in xs]
    for s, x in zip(streams, xs, strict=True):
        s.accept_waveform(16000, x)
        s.input_finished()
    while any(s.is_ready() for s in streams):
        engine.decode_streams(streams)
    for s, x in zip(streams, xs, strict=True):
        alone = engine.process_array(x, 16000, record_outputs=True)
        got = s.get_result().outputs
        assert len(got) == len(alone.outputs)
        for a, b in zip(got, alone.outputs, strict=True):
            np.testing.assert_array_equal(a["speak_logit"], b["speak_logit"])


def test_int16_input_equals_scaled_float(engine):
    x16 = (noise(0.8, seed=9) * 32767).astype(np.int16)
    a = engine.process_array(x16, 16000, record_outputs=True).outputs
    b = engine.process_array(x16.astype(np.float32) / 32768.0, 16000,
                             record_outputs=True).outputs
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u["speak_logit"], v["speak_logit"])


# ---------------------------------------------------------------------------- bad bundles

def copy_bundle(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_corrupt_bundle_is_refused_naming_sha256(runtime_small_bundle, tmp_path):
    path = copy_bundle(runtime_small_bundle, tmp_path / "b")
    f = path / "model.fp32.onnx"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"sha256 of model\.fp32\.onnx .*corrupt"):
        Engine.from_bundle(path)


def test_bundle_with_changed_features_is_refused_naming_the_field(runtime_small_bundle,
                                                                   tmp_path):
    path = copy_bundle(runtime_small_bundle, tmp_path / "b")
    m = json.loads((path / "manifest.json").read_text())
    m["features"]["preemph_coeff"] = 0.9
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match=r"features\.preemph_coeff = 0\.97.*0\.9"):
        Engine.from_bundle(path)
    # and a runtime that insists on its own front end refuses a differing bundle
    with pytest.raises(BundleError, match=r"features\.n_mels"):
        Engine.from_bundle(runtime_small_bundle, features=FbankConfig(n_mels=64))


def test_bundle_whose_model_does_not_match_the_manifest_is_refused(runtime_small_bundle,
                                                                   tmp_path):
    path = copy_bundle(runtime_small_bundle, tmp_path / "b")
    m = json.loads((path / "manifest.json").read_text())
    m["state"][0]["name"] = "renamed_cache"
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="missing inputs.*renamed_cache"):
        Engine.from_bundle(path)


def test_runtime_manifest_fields_are_validated(runtime_small_bundle, tmp_path):
    path = copy_bundle(runtime_small_bundle, tmp_path / "b")
    m = json.loads((path / "manifest.json").read_text())
    m["thresholds"]["hysteresis"] = 1.5
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="thresholds.hysteresis = 1.5"):
        load_bundle(path)
    m["thresholds"]["hysteresis"] = 0.2
    m["thresholds"]["refractory_s"] = {"no_such_label": 1}
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="no_such_label"):
        load_bundle(path)
    del m["thresholds"]["refractory_s"]
    for bad, match in (({"no_such_label": 2}, "confirm_chunks.no_such_label names unknown"),
                       (0, "confirm_chunks = 0 must be a whole number"),
                       ({"smoke_alarm": 1.5}, r"confirm_chunks\.smoke_alarm = 1\.5"),
                       (True, "confirm_chunks = True has the wrong type"),
                       ({"": 2}, "names unknown label ''")):
        m["thresholds"]["confirm_chunks"] = bad
        (path / "manifest.json").write_text(json.dumps(m))
        with pytest.raises(BundleError, match=match):
            load_bundle(path)
    m["thresholds"]["confirm_chunks"] = {"smoke_alarm": 2}
    m["thresholds"]["confirm_chosen_on"] = "dev2"
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="confirm_chosen_on = 'dev2' has type str"):
        load_bundle(path)
    m["thresholds"]["confirm_chosen_on"] = {"scenes": "dev2"}
    (path / "manifest.json").write_text(json.dumps(m))
    confirm = load_bundle(path).confirm_chunks
    assert confirm["smoke_alarm"] == 2 and set(confirm.values()) == {1, 2}
    del m["thresholds"]["confirm_chunks"]
    m["labels"]["events"][2]["aliases"] = ["chime", ""]
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match=r"labels\.events\[2\]\.aliases"):
        load_bundle(path)
    m["labels"]["events"][2]["aliases"] = ["chime"]
    (path / "manifest.json").write_text(json.dumps(m))
    assert load_bundle(path).events[2].aliases == ("chime",)


def test_no_default_bundle_names_the_fix():
    with mock.patch("aim_edge.bundles.default_bundle_path", return_value=None):
        with pytest.raises(BundleError, match="--model"):
            Engine.from_bundle(None)


# ---------------------------------------------------------------------------- backends

@pytest.mark.parametrize("backend,module,hint", [
    ("litert", "ai_edge_litert", "aim-edge[tflite]"),
    ("tflite-runtime", "tflite_runtime", "tflite-runtime"),
    ("onnxruntime", "onnxruntime", "pip install onnxruntime"),
])
def test_missing_backend_raises_an_import_error_with_the_hint(runtime_small_bundle, backend,
                                                              module, hint):
    patched = {module: None, f"{module}.interpreter": None}
    with mock.patch.dict(sys.modules, patched):
        with pytest.raises(BackendUnavailableError) as info:
            Engine.from_bundle(runtime_small_bundle, backend=backend)
    assert isinstance(info.value, ImportError)
    assert hint in str(info.value)


def test_importing_the_runtime_needs_no_optional_backend():
    code = ("import sys; sys.modules['ai_edge_litert'] = None; sys.modules['tflite_runtime'] ="
            " None; import aim_edge.engine, aim_edge.loop, aim_edge.backends.litert,"
            " aim_edge.backends.tflite_legacy, aim_edge.cli; print('ok')")
    import subprocess

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_unknown_backend_and_missing_gpu_provider(runtime_small_bundle):
    with pytest.raises(ConfigError, match="backend = 'tensorflow'"):
        Engine.from_bundle(runtime_small_bundle, backend="tensorflow")
    with pytest.raises(BackendUnavailableError, match="onnxruntime-gpu"):
        Engine.from_bundle(runtime_small_bundle, providers=["tensorrt", "cuda"])
    assert set(available_backends()) == set(BACKENDS)


class _FakeInterpreter:
    """Stands in for ai_edge_litert.interpreter.Interpreter: a signature runner over the
    bundle's ONNX file (the test bundle has no TFLite artifact yet)."""

    last_threads = None

    def __init__(self, model_path, num_threads=1):
        import onnxruntime as ort

        type(self).last_threads = num_threads
        self.sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])

    def get_signature_list(self):
        return {"serving_default": {"inputs": [i.name for i in self.sess.get_inputs()],
                                    "outputs": [o.name for o in self.sess.get_outputs()]}}

    def get_signature_runner(self, key="serving_default"):
        names = [o.name for o in self.sess.get_outputs()]

        def run(**feeds):
            return dict(zip(names, self.sess.run(None, feeds), strict=True))
        return run


def tflite_bundle(src, dst, known_answer=None):
    path = copy_bundle(src, dst)
    shutil.copy(path / "model.fp32.onnx", path / "model.fp32.tflite")
    m = json.loads((path / "manifest.json").read_text())
    f = path / "model.fp32.tflite"
    entry = {"file": f.name, "format": "tflite", "precision": "fp32", "role": "step",
             "size": f.stat().st_size, "sha256": sha256_file(f), "parity": {}}
    if known_answer is not None:
        entry["parity"]["known_answer"] = known_answer
    m["artifacts"].append(entry)
    (path / "manifest.json").write_text(json.dumps(m))
    return path


def fake_litert_modules():
    pkg = types.ModuleType("ai_edge_litert")
    sub = types.ModuleType("ai_edge_litert.interpreter")
    sub.Interpreter = _FakeInterpreter
    pkg.interpreter = sub
    return {"ai_edge_litert": pkg, "ai_edge_litert.interpreter": sub}


def test_litert_backend_runs_through_its_signature_runner(engine, runtime_small_bundle,
                                                          tmp_path):
    x = noise(1.5, seed=11)
    ref = engine.process_array(x, 16000, record_outputs=True)
    path = tflite_bundle(runtime_small_bundle, tmp_path / "b")
    with mock.patch.dict(sys.modules, fake_litert_modules()):
        with Engine.from_bundle(path, backend="litert", threads=1) as lite:
            assert lite.backend.name == "litert"
            assert _FakeInterpreter.last_threads == 1
            got = lite.process_array(x, 16000, record_outputs=True)
    assert strip_latency(got.events) == strip_latency(ref.events)
    for a, b in zip(got.outputs, ref.outputs, strict=True):
        np.testing.assert_allclose(a["event_logits"], b["event_logits"], atol=1e-5)


def test_litert_refuses_a_bundle_without_a_tflite_artifact(runtime_small_bundle):
    with mock.patch.dict(sys.modules, fake_litert_modules()):
        with pytest.raises(BundleError, match="no step artifact with format='tflite'"):
            Engine.from_bundle(runtime_small_bundle, backend="litert")


def test_known_answer_check(engine, runtime_small_bundle, tmp_path):
    ka = {"chunks": 4, "atol": 1e-4, **run_known_answer(engine.backend, engine.bundle, 4)}
    path = tflite_bundle(runtime_small_bundle, tmp_path / "good", ka)
    bundle = load_bundle(path)
    art = bundle.artifact(format="tflite")
    assert check_known_answer(engine.backend, bundle, art) < 1e-4
    bad = dict(ka, speak_logit=[v + 1.0 for v in ka["speak_logit"]])
    path = tflite_bundle(runtime_small_bundle, tmp_path / "bad", bad)
    bundle = load_bundle(path)
    with pytest.raises(BackendUnavailableError, match="known-answer check failed"):
        check_known_answer(engine.backend, bundle, bundle.artifact(format="tflite"))
    # the litert backend applies it at load time
    with mock.patch.dict(sys.modules, fake_litert_modules()):
        with pytest.raises(BackendUnavailableError, match="known-answer"):
            Engine.from_bundle(path, backend="litert")


def test_tflite_runtime_legacy_path_is_guarded(runtime_small_bundle, tmp_path):
    pkg = types.ModuleType("tflite_runtime")
    sub = types.ModuleType("tflite_runtime.interpreter")
    sub.Interpreter = _FakeInterpreter
    pkg.interpreter = sub
    path = tflite_bundle(runtime_small_bundle, tmp_path / "b")
    bundle = load_bundle(path)
    with mock.patch.dict(sys.modules, {"tflite_runtime": pkg, "tflite_runtime.interpreter": sub}):
        if sys.version_info >= (3, 12) or int(np.__version__.split(".")[0]) >= 2:
            with pytest.raises(BackendUnavailableError, match=r"numpy < 2|Python <= 3\.11"):
                create_backend("tflite-runtime", bundle)
        with mock.patch("aim_edge.backends.tflite_legacy._check_platform"):
            with pytest.raises(BackendUnavailableError, match="no parity.known_answer"):
                create_backend("tflite-runtime", bundle)


# ---------------------------------------------------------------------------- audio input

def test_nan_input_raises_with_the_sample_index(engine):
    s = engine.create_stream()
    x = noise(0.5)
    s.accept_waveform(16000, x)
    bad = noise(0.5)
    bad[1234] = np.nan
    with pytest.raises(AudioInputError, match=r"sample 9234 is nan"):
        s.accept_waveform(16000, bad)
    bad[1234] = np.inf
    with pytest.raises(AudioInputError, match="not finite"):
        engine.process_array(bad, 16000)


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.complex64, np.bool_])
def test_wrong_dtype_raises_audio_type_error(engine, dtype):
    s = engine.create_stream()
    with pytest.raises(AudioTypeError, match=str(np.dtype(dtype))):
        s.accept_waveform(16000, np.zeros(100, dtype))
    with pytest.raises(AudioTypeError):
        s.accept_waveform(16000, "not audio")


def test_bad_shapes_and_rates(engine):
    s = engine.create_stream()
    with pytest.raises(AudioInputError, match="shape"):
        s.accept_waveform(16000, np.zeros((2, 3, 4), np.float32))
    with pytest.raises(AudioInputError, match="transpose"):
        s.accept_waveform(16000, np.zeros((2, 16000), np.float32))
    with pytest.raises(AudioInputError, match="sample_rate"):
        s.accept_waveform(0, np.zeros(10, np.float32))
    s.input_finished()
    with pytest.raises(AudioInputError, match="reset"):
        s.accept_waveform(16000, np.zeros(10, np.float32))


def test_empty_input_gives_no_chunks_and_says_so(engine, tmp_path):
    res = engine.process_array(np.zeros(0, np.float32), 16000)
    assert res.chunks == 0 and res.events == [] and res.text == ""
    assert any("no audio" in n for n in res.notes)
    path = write_wav(tmp_path / "empty.wav", 16000, np.zeros(0, np.int16))
    res = engine.process_file(path)
    assert res.chunks == 0 and any("no audio samples" in n for n in res.notes)
    # shorter than one frame: nothing to decide either
    res = engine.process_array(np.zeros(100, np.float32), 16000)
    assert res.chunks == 0


def test_float_audio_beyond_full_scale_is_counted_and_noted(engine):
    x = noise(1.0, seed=3) * 0.5
    x[100:110] = 1.5  # a float file written without normalising
    res = engine.process_array(x.astype(np.float32), 16000)
    note = next(n for n in res.notes if "beyond full scale" in n)
    assert note.startswith("10 sample(s) beyond full scale [-1, 1] (peak 1.50)")
    # int16 and float audio inside [-1, 1] say nothing
    res = engine.process_array((noise(1.0, seed=3) * 0.5).astype(np.float32), 16000)
    assert not any("full scale" in n for n in res.notes)
    res = engine.process_array((noise(1.0, seed=3) * 20000).astype(np.int16), 16000)
    assert not any("full scale" in n for n in res.notes)


def test_stereo_48k_wav_is_mixed_down_and_resampled_with_soxr(engine, tmp_path):
    import soxr

    stereo = noise(2.0, rate=48000, seed=4, channels=2)
    stereo[:, 1] *= 0.5
    path = write_wav(tmp_path / "stereo48.wav", 48000, stereo)
    res = engine.process_file(path, record_outputs=True)
    assert any("mixed 2 channels down" in n for n in res.notes)
    assert any("resampled 48000 Hz -> 16000 Hz with soxr" in n for n in res.notes)
    _, pcm = read_wav(path)
    mono = pcm.astype(np.float32).mean(axis=1) / 32768.0
    ref16 = soxr.resample(mono, 48000, 16000).astype(np.float32)
    ref = engine.process_array(ref16, 16000, record_outputs=True)
    assert res.chunks == ref.chunks == 13
    assert abs(res.audio_s - 2.0) < 0.01
    diff = max(float(np.abs(a["speak_logit"] - b["speak_logit"]).max())
               for a, b in zip(res.outputs, ref.outputs, strict=True))
    assert diff < 1e-2, diff


def test_missing_soxr_is_an_optional_dependency_error(engine):
    s = engine.create_stream()
    with mock.patch.dict(sys.modules, {"soxr": None}):
        with pytest.raises(OptionalDependencyError, match="pip install soxr"):
            s.accept_waveform(44100, np.zeros(441, np.float32))
    s.accept_waveform(16000, np.zeros(160, np.float32))  # the native rate needs no soxr


def test_wav_formats(tmp_path):
    x = noise(0.1)
    # 32-bit float WAV (wave refuses it; our RIFF reader handles it)
    data = x.astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32)
    riff = (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE"
            + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data"
            + struct.pack("<I", len(data)) + data)
    (tmp_path / "f.wav").write_bytes(riff)
    rate, y = read_wav(tmp_path / "f.wav")
    assert rate == 16000 and y.dtype == np.float32
    np.testing.assert_array_equal(y, x)
    # 12-bit PCM: refused with soundfile named
    fmt12 = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 12)
    body = b"\x00" * 30
    wav12 = (b"RIFF" + struct.pack("<I", 4 + 8 + 16 + 8 + len(body)) + b"WAVE" + b"fmt "
             + struct.pack("<I", 16) + fmt12 + b"data" + struct.pack("<I", len(body)) + body)
    (tmp_path / "p12.wav").write_bytes(wav12)
    with pytest.raises(AudioInputError, match="12-bit PCM WAV is not supported.*soundfile"):
        read_wav(tmp_path / "p12.wav")
    (tmp_path / "x.mp3").write_bytes(b"ID3\x03\x00\x00\x00" + b"\x00" * 100)
    with pytest.raises(AudioInputError, match="not a WAV file.*soundfile"):
        read_wav(tmp_path / "x.mp3")
    with pytest.raises(AudioInputError, match="not found"):
        read_wav(tmp_path / "nope.wav")
    with pytest.raises(AudioInputError, match="is a folder, not a WAV file"):
        read_wav(tmp_path)


@pytest.mark.parametrize("bits", [8, 24, 32])
def test_8_24_and_32_bit_pcm_read_as_float(tmp_path, bits):
    """arecord's default is unsigned 8-bit, recorders write 24-bit, sox's own format is 32-bit
    int: each reads as float32 in [-1, 1) with its full-scale values exact."""
    levels = np.array([-1.0, -0.5, 0.0, 0.25, 0.5], np.float64)
    n = bits // 8
    if bits == 8:
        raw = (levels * 128 + 128).astype(np.uint8).tobytes()
    else:
        ints = (levels * 2 ** (bits - 1)).astype(np.int64)
        raw = b"".join(int(v).to_bytes(n, "little", signed=True) for v in ints)
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 16000 * n, n, bits)
    (tmp_path / "p.wav").write_bytes(_riff(fmt, raw))
    info = wav_info(tmp_path / "p.wav")
    assert info.encoding == f"pcm{bits}" and info.frames == 5
    rate, y = read_wav(tmp_path / "p.wav")
    assert rate == 16000 and y.dtype == np.float32
    np.testing.assert_array_equal(y, levels.astype(np.float32))


def _riff(fmt: bytes, data: bytes, declared: int | None = None) -> bytes:
    size = len(data) if declared is None else declared
    return (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE"
            + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size)
            + data)


def test_wav_extensible_pcm_and_cut_off_files(tmp_path):
    x = (noise(0.1) * 20000).astype(np.int16).reshape(-1, 2)  # 800 stereo frames
    # WAVE_FORMAT_EXTENSIBLE 16-bit PCM (what sox writes for > 2 channels): subformat PCM
    ext = (struct.pack("<HHIIHH", 0xFFFE, 2, 16000, 64000, 4, 16)
           + struct.pack("<HHI", 22, 16, 3) + struct.pack("<H", 1) + bytes(14))
    (tmp_path / "ext.wav").write_bytes(_riff(ext, x.astype("<i2").tobytes()))
    rate, y = read_wav(tmp_path / "ext.wav")
    assert rate == 16000 and y.dtype == np.int16
    np.testing.assert_array_equal(y, x)
    # cut off mid-frame: 300 whole frames and one odd byte remain of the declared 800
    plain = struct.pack("<HHIIHH", 1, 2, 16000, 64000, 4, 16)
    data = x.astype("<i2").tobytes()
    (tmp_path / "cut.wav").write_bytes(_riff(plain, data[: 300 * 4 + 1], declared=len(data)))
    info = wav_info(tmp_path / "cut.wav")
    assert (info.frames, info.declared_frames) == (300, 800)
    note = info.truncation_note("cut.wav")
    assert "ends at 0.02 s" in note and "declares 0.05 s" in note
    rate, y = read_wav(tmp_path / "cut.wav")
    np.testing.assert_array_equal(y, x[:300])
    assert wav_info(tmp_path / "ext.wav").truncation_note("ext.wav") is None
    # a header cut inside its fmt chunk, and a fmt chunk too short to hold a format
    (tmp_path / "head.wav").write_bytes(_riff(plain, b"")[:30])
    with pytest.raises(AudioInputError, match="ends inside its fmt chunk, at byte 30"):
        read_wav(tmp_path / "head.wav")
    (tmp_path / "short.wav").write_bytes(_riff(plain[:12], b""))
    with pytest.raises(AudioInputError, match="fmt chunk is 12 bytes, shorter than the 16"):
        read_wav(tmp_path / "short.wav")
    (tmp_path / "nodata.wav").write_bytes(_riff(plain, b"")[:36])
    with pytest.raises(AudioInputError, match="ends at byte 36 without a data chunk"):
        read_wav(tmp_path / "nodata.wav")


def test_wav_from_pipes_and_file_objects(tmp_path):
    import io

    from aim_edge.audio import iter_wav_blocks

    x = (noise(0.1) * 20000).astype(np.int16)
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    extra = b"LIST" + struct.pack("<I", 5) + b"abcde" + b"\x00"  # odd chunk + pad byte
    riff = _riff(fmt, x.astype("<i2").tobytes())
    riff = riff[:36] + extra + riff[36:]

    def read_all(f):
        return np.concatenate([b for _, b in iter_wav_blocks(f, 333)])

    # a file object that does not start at byte 0 of its buffer
    buf = io.BytesIO(b"JUNKJUNKJUNK" + riff)
    buf.seek(12)
    np.testing.assert_array_equal(read_all(buf), x)

    class Pipe(io.RawIOBase):  # readable, not seekable, like stdin
        def __init__(self, data):
            self.data = memoryview(data)

        def readable(self):
            return True

        def readinto(self, b):
            n = min(len(b), len(self.data))
            b[:n], self.data = self.data[:n], self.data[n:]
            return n

    np.testing.assert_array_equal(read_all(io.BufferedReader(Pipe(riff))), x)
    # a pipe writer's "unknown length" size: read to the end, no truncation note
    (tmp_path / "piped.wav").write_bytes(_riff(fmt, x.astype("<i2").tobytes(), 0xFFFFFFFF))
    info = wav_info(tmp_path / "piped.wav")
    assert info.frames == info.declared_frames == x.size
    assert info.truncation_note("piped.wav") is None
    np.testing.assert_array_equal(read_wav(tmp_path / "piped.wav")[1], x)


def test_a_float_file_with_nan_names_the_file_and_the_time(tmp_path):
    x = noise(0.5).astype("<f4")
    x[4000] = np.nan  # 0.25 s
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32)
    (tmp_path / "nan.wav").write_bytes(_riff(fmt, x.tobytes()))
    with pytest.raises(AudioInputError, match=r"nan\.wav: frame 4000 \(0\.250 s\) is \[nan\]"
                       r" \(not finite\); the file is damaged"):
        read_wav(tmp_path / "nan.wav")


def test_a_cut_off_file_is_decoded_and_noted(engine, tmp_path):
    x = (noise(1.0) * 8000).astype(np.int16)
    data = x.astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    (tmp_path / "cut.wav").write_bytes(_riff(fmt, data[: len(data) // 2 + 1], len(data)))
    res = engine.process_file(tmp_path / "cut.wav")
    assert res.audio_s == pytest.approx(0.5, abs=0.01)
    assert any("ends at 0.50 s but its header declares 1.00 s" in n for n in res.notes)


def test_engine_with_a_scripted_backend_closes_it(runtime_fake_bundle):
    bundle = load_bundle(runtime_fake_bundle)
    be = ScriptedBackend(bundle)
    with Engine.from_bundle(bundle, backend=be) as eng:
        res = eng.process_array(np.zeros(16000, np.float32), 16000)
        assert res.chunks == 7
        stream = eng.create_stream()
        stream.accept_waveform(16000, np.zeros(16000, np.float32))
        while stream.is_ready():
            stream.decode()
        assert stream.state["h"][0, 0] == 6.0  # state handed from chunk to chunk
    assert be.closed


def test_policy_settings_from_the_command_line_win_over_the_manifest(runtime_small_bundle,
                                                                     tmp_path):
    path = copy_bundle(runtime_small_bundle, tmp_path / "b")
    m = json.loads((path / "manifest.json").read_text())
    m["thresholds"]["hysteresis"] = 0.2
    m["thresholds"]["refractory_s"] = 7.0
    (path / "manifest.json").write_text(json.dumps(m))
    # a PolicyConfig yields to the bundle's own numbers ...
    p = Engine.from_bundle(path, policy=PolicyConfig(refractory_s=9.0)).new_policy()
    assert p.hysteresis == 0.2 and set(p.refractory.tolist()) == {7.0}
    # ... fields the user named (aim-edge run --policy) win, the others still come from it
    settings = PolicyConfig.parse_settings(["refractory_s=9", "kws_threshold=0.3"])
    assert settings == {"refractory_s": 9.0, "kws_threshold": 0.3}
    p = Engine.from_bundle(path, policy=settings).new_policy()
    assert set(p.refractory.tolist()) == {9.0} and p.keyword_refractory == 9.0
    assert p.hysteresis == 0.2 and p.config.kws_threshold == 0.3
    p = Engine.from_bundle(path, policy={"hysteresis": 0.05}).new_policy()
    assert p.hysteresis == 0.05 and set(p.refractory.tolist()) == {7.0}


def test_policy_settings_name_the_bad_value():
    parse = PolicyConfig.parse_settings
    assert parse(["wake_phrases=hey aim, computer", "spoken_instructions=off"]) == {
        "wake_phrases": ("hey aim", "computer"), "spoken_instructions": False}
    assert parse(["safety_without_instruction=no"]) == {"safety_without_instruction": False}
    for bad, match in ((["refractory=3"], "unknown field 'refractory'; fields: hysteresis"),
                       (["refractory_s"], "expected FIELD=VALUE"),
                       (["refractory_s=soon"], "refractory_s takes a number"),
                       (["refractory_s=-1"], r"policy.refractory_s = -1.0 is invalid"),
                       (["kws_threshold=2"], r"a number in \[0, 1\]"),
                       (["spoken_instructions=maybe"], "expected true or false"),
                       (["wake_phrases=hey aim,,"], "wake_phrases"),
                       (["rearm_s=1", "rearm_s=2"], "rearm_s is given twice")):
        with pytest.raises(ConfigError, match=match):
            parse(bad)
