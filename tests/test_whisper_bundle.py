"""The bundle's optional ``asr`` component: validated on load, used by `aim-edge run` when
present, turned off by --no-second-pass; a bundle without it still runs."""

from __future__ import annotations

import argparse
import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
from runtime_helpers import write_fake_bundle
from whisper_helpers import real_clips, require, whisper_export  # noqa: F401

from aim_edge import bundles, cli
from aim_edge.bundle import load_bundle, sha256_file
from aim_edge.errors import BundleError


def _with_fake_asr(root: Path) -> Path:
    """A fake bundle plus a small, well-formed asr component (no real model)."""
    write_fake_bundle(root)
    (root / "asr").mkdir()
    files = []
    for name, data in (("whisper.json", b'{"format": "aim-edge-whisper"}'),
                       ("tokenizer.json", b"{}"), ("encoder.int8.onnx", b"enc")):
        (root / "asr" / name).write_bytes(data)
        p = root / "asr" / name
        files.append({"file": f"asr/{name}", "size": p.stat().st_size, "sha256": sha256_file(p)})
    m = json.loads((root / "manifest.json").read_text())
    m["asr"] = {"kind": "whisper", "dir": "asr", "config": "asr/whisper.json", "files": files,
                "parity": {"onnx_int8": {"wer": 0.068, "clips": 100}}}
    (root / "manifest.json").write_text(json.dumps(m))
    return root


def _edit(root: Path, fn) -> None:
    m = json.loads((root / "manifest.json").read_text())
    fn(m)
    (root / "manifest.json").write_text(json.dumps(m))


def test_asr_component_is_validated_on_load(tmp_path):
    good = _with_fake_asr(tmp_path / "good")
    assert load_bundle(good).asr_dir == good / "asr"
    assert load_bundle(write_fake_bundle(tmp_path / "none")).asr_dir is None

    cases = [
        (lambda m: m["asr"]["files"][1].update(sha256="0" * 64), "sha256 of asr/tokenizer.json"),
        (lambda m: m["asr"]["files"][2].update(size=99), "asr/encoder.int8.onnx has 3 bytes"),
        (lambda m: m["asr"].update(parity={"note": "none"}), "asr.parity holds no figures"),
        (lambda m: m["asr"].pop("parity"), "missing field asr.parity"),
        (lambda m: m["asr"].update(dir="whisper"), "asr.dir 'whisper' is missing"),
        (lambda m: m["asr"].update(dir="../x"), "must stay inside the bundle"),
        (lambda m: m["asr"].update(config="asr/other.json"), "asr.config = 'asr/other.json'"),
        (lambda m: m["asr"]["files"].append({"file": "asr/gone.onnx", "size": 1,
                                             "sha256": "0" * 64}), "asr/gone.onnx is listed"),
        (lambda m: m["asr"].pop("kind"), "missing field asr.kind"),
    ]
    for i, (change, message) in enumerate(cases):
        bad = shutil.copytree(good, tmp_path / f"bad{i}")
        _edit(bad, change)
        with pytest.raises(BundleError, match=message.replace("(", r"\(")):
            load_bundle(bad)


def test_a_bundle_without_asr_runs_without_a_second_pass(tmp_path, capsys):
    path = bundles.default_bundle_path()
    if path is None:
        pytest.skip("no default bundle shipped in aim_edge/models/default")
    assert load_bundle(path).asr_dir is None
    args = argparse.Namespace(no_second_pass=False, asr=None, model=None)
    assert cli._second_pass(args) is None
    wav = tmp_path / "tone.wav"
    _write_wav(wav, 0.1 * np.sin(2 * np.pi * 440 * np.arange(16000 * 2) / 16000))
    out = tmp_path / "events.jsonl"
    assert cli.main(["run", str(wav), "--jsonl", str(out), "--quiet"]) == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert events[-1]["type"] == "stats" and events[-1]["chunks"] >= 12
    assert not any(e.get("second_pass") for e in events)


def _write_wav(path: Path, x: np.ndarray, rate: int = 16000) -> Path:
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def test_run_uses_the_bundles_asr_and_no_second_pass_turns_it_off(whisper_export,  # noqa: F811
                                                                   tmp_path):
    from aim_edge.asr.whisper import WhisperSecondPass
    from export.whisper.attach import attach_asr
    from export.whisper.speech import wer

    path = bundles.default_bundle_path()
    if path is None:
        pytest.skip("no default bundle shipped in aim_edge/models/default")
    clips = real_clips(2)
    sp = WhisperSecondPass.from_dir(whisper_export)
    measured = wer([c.text for c in clips], [sp.transcribe(c.samples) for c in clips])
    with pytest.raises(ValueError, match="no parity figures"):
        attach_asr(path, whisper_export, tmp_path / "refused", parity={"clips": "none"},
                   link=True)
    bundle = attach_asr(path, whisper_export, tmp_path / "with-asr", link=True,
                        parity={"clips": 2, "onnx_int8": {"clips": 2, "wer": measured}})
    b = load_bundle(bundle)
    assert b.asr_dir == bundle / "asr"
    assert {a.role for a in b.artifacts} == {"step", "asr_encoder", "asr_decoder"}
    assert b.manifest["asr"]["parity"]["onnx_int8"]["wer"] == measured

    silence = np.zeros(16000, np.float32)
    speech = np.concatenate([silence, *[np.concatenate([c.samples, silence, silence])
                                        for c in clips]])
    wav = _write_wav(tmp_path / "speech.wav", speech)
    out = tmp_path / "on.jsonl"
    assert cli.main(["run", str(wav), "--model", str(bundle), "--jsonl", str(out),
                     "--quiet"]) == 0
    finals = [e for e in map(json.loads, out.read_text().splitlines())
              if e["type"] == "caption" and e["final"]]
    assert finals and all(e.get("second_pass") for e in finals)
    heard = " ".join(e["text"] for e in finals).lower()
    words = {w.strip(".,?!").lower() for c in clips for w in c.text.split()}
    assert len(words & set(heard.replace(".", " ").replace(",", " ").split())) >= 3, heard

    out = tmp_path / "off.jsonl"
    assert cli.main(["run", str(wav), "--model", str(bundle), "--jsonl", str(out),
                     "--quiet", "--no-second-pass"]) == 0
    finals = [e for e in map(json.loads, out.read_text().splitlines())
              if e["type"] == "caption" and e["final"]]
    assert not any(e.get("second_pass") for e in finals)


def test_attach_refuses_a_folder_that_is_not_an_export(tmp_path):
    from export.whisper.attach import main

    assert main(["--bundle", str(write_fake_bundle(tmp_path / "b")), "--asr",
                 str(tmp_path), "--out", str(tmp_path / "o")]) == 1
