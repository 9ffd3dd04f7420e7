"""The CLI entry points that exist so far, through the installed console script."""

import subprocess
import sys
from pathlib import Path

import pytest

from aim_edge import cli


def test_demo_runs_the_shipped_bundle_on_the_demo_scene(capsys):
    """The shipped student must still catch the demo's siren inside its response window."""
    import json
    import re
    from importlib import resources

    labels = json.loads(resources.files("aim_edge").joinpath("data", "demo_scene.json")
                        .read_text())
    siren = next(r for r in labels["responses"] if r["trigger"].get("label") == "siren")
    assert cli.main(["demo", "--fast"]) == 0
    out = capsys.readouterr().out
    assert "what the scene really holds" in out and "dropped       0 samples" in out
    times = [float(m) for m in re.findall(r"\[\s*([0-9.]+)s\] SAFETY ALERT: siren", out)]
    assert times, out
    assert siren["earliest"] <= times[0] <= siren["latest"] + 0.2


def test_the_letters_the_model_writes_over_the_demo_siren_are_not_shown(capsys):
    """The siren (18.1-26.0 s, no speech until 28.9 s) makes the student write unsure
    letters; the bundle's caption gate drops them, and keeping every caption shows them."""
    import re
    from importlib import resources

    wav = str(resources.files("aim_edge").joinpath("data", "demo_scene.wav"))

    def captions_between(out, a, b):
        lines = re.findall(r"\[\s*([0-9.]+)s\] (.*)", out)
        return [(float(t), x) for t, x in lines if a < float(t) < b
                and not x.startswith(("SAFETY ALERT", "ALERT", "answer", "instruction"))]

    assert cli.main(["run", wav]) == 0
    out = capsys.readouterr().out
    assert captions_between(out, 18.0, 28.9) == [], out
    assert re.search(r"\(\d+ utterances? dropped as not speech\)", out), out
    assert cli.main(["run", wav, "--policy", "caption_confidence=0"]) == 0
    out = capsys.readouterr().out
    assert captions_between(out, 18.0, 28.9), out  # the siren's letters, kept
    assert "dropped as not speech" not in out


def test_demo_without_bundle_exits_zero_with_a_clear_message(capsys, monkeypatch):
    from aim_edge import bundles

    monkeypatch.setattr(bundles, "default_bundle_path", lambda: None)
    assert cli.main(["demo", "--fast"]) == 0
    assert "no model bundle yet" in capsys.readouterr().out


def test_info_lists_native_extensions_and_backends(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "ring_buffer  ok" in out
    assert "fbank        ok" in out
    assert "onnxruntime" in out and "CPUExecutionProvider" in out
    assert "sounddevice (listen)" in out and "matplotlib (plots)" in out
    # the shipped bundle's parity: gate bars and figures in the same unit (percent)
    from aim_edge.bundle import load_bundle
    from aim_edge.bundles import default_bundle_path

    b = load_bundle(default_bundle_path())
    bar = b.manifest["parity_gate"]["bars"]["decision_agreement"]
    assert f"export gate: decision agreement >= {100 * bar:g} %" in out
    onnx = b.artifact(format="onnx", precision="int8-dynamic")
    assert f"decision agreement {100 * onnx.parity['decision_agreement']:.2f} %" in out


def test_info_shows_the_bundles_caption_gate(capsys):
    from aim_edge import bundles
    from aim_edge.bundle import load_bundle

    gate = load_bundle(bundles.default_bundle_path()).manifest["thresholds"].get(
        "caption_confidence")
    assert cli.main(["info"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "caption gate" in ln]
    if not gate:
        assert lines == []
    else:
        assert len(lines) == 1 and f"< {gate:g} (chosen on dev2)" in lines[0]


def test_info_shows_each_artifacts_parity_against_the_gate(capsys):
    from aim_edge import bundles
    from aim_edge.bundle import load_bundle

    b = load_bundle(bundles.default_bundle_path())
    gate = b.manifest["parity_gate"]
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"{gate['streams']} labelled held-out streams, {gate['chunks']} chunks" in out
    assert f"proactive F1 delta <= {gate['bars']['proactive_f1_delta']:g}" in out
    for a in b.artifacts:
        line = next(ln for ln in out.splitlines()
                    if ln.strip().startswith(a.file) and "decisions" in ln)
        assert f"decisions {100 * a.parity['decision_agreement']:.2f} %" in line
        assert f"CER {100 * a.parity['cer']:.1f} %" in line
    if any(a.precision == "int8-dynamic" for a in b.artifacts):  # what an NPU deployer needs
        assert "not a full-integer model" in out


def test_info_shows_which_labels_wait_for_a_confirming_chunk(capsys):
    from aim_edge import bundles
    from aim_edge.bundle import load_bundle

    waits = {k: n for k, n in load_bundle(bundles.default_bundle_path()).confirm_chunks.items()
             if n > 1}
    assert cli.main(["info"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "confirmation" in ln]
    if not waits:
        assert not lines
        return
    assert len(lines) == 1 and "others 1" in lines[0]
    for label, n in waits.items():
        assert f"{label} {n}" in lines[0]


def test_info_names_the_calibration_split_and_each_false_alert_target(capsys, tmp_path):
    import json
    import shutil

    from aim_edge import bundles

    src = bundles.default_bundle_path()
    thr = json.loads((src / "manifest.json").read_text())["thresholds"]
    assert cli.main(["info"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "thresholds  " in ln)
    assert f"calibrated on {thr['calibrated_on']} for {thr['false_alerts_per_hour']:g}" in line
    assert line.endswith(f"per event label, speak-now "
                         f"{thr['speak_now_false_alerts_per_hour']:g}/h")
    # one target for both (bundles made before speak-now had its own): said once
    copy = tmp_path / "b"
    shutil.copytree(src, copy)
    m = json.loads((copy / "manifest.json").read_text())
    del m["thresholds"]["speak_now_false_alerts_per_hour"]
    (copy / "manifest.json").write_text(json.dumps(m))
    assert cli.main(["info", "--model", str(copy)]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "thresholds  " in ln)
    far = thr["false_alerts_per_hour"]
    assert line.endswith(f"calibrated on {thr['calibrated_on']} for "
                         f"{far:g} false alert{'' if far == 1 else 's'}/h")


def test_info_without_sounddevice_or_matplotlib_says_what_to_install(capsys):
    from unittest import mock

    with mock.patch.object(cli, "_module_version",
                           side_effect=lambda m: None if m in ("sounddevice", "matplotlib")
                           else "1.0"):
        assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "sounddevice (listen)    not installed (pip install aim-edge[audio]; apt-get install" \
        " libportaudio2)" in out
    assert "matplotlib (plots)      not installed (pip install matplotlib)" in out


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "aim-edge demo" in capsys.readouterr().out


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "aim-edge"
    assert exe.exists(), f"{exe} missing: install the package with `pip install -e .`"
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "examples:" in proc.stdout


def test_unknown_command_is_a_usage_error():
    with pytest.raises(SystemExit) as info:
        cli.main(["frobnicate"])
    assert info.value.code == 2
