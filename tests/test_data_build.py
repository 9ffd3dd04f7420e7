"""export.data: determinism of a build, and the command line's errors."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from export.data import cli, speech

ROOT = Path(__file__).resolve().parents[1]
INSTALL = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "festival", "sox": "sox"}


def _require(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}: apt-get install "
                    + " ".join(INSTALL[t] for t in missing))


def _digest(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and (p.suffix in (".wav", ".jsonl") or p.name == "ATTRIBUTION.md"):
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


ARGS = ["build", "--minutes", "1", "--seed", "7", "--split", "train",
        "--stream-seconds", "30", "30", "--no-progress"]


def test_same_seed_same_bytes_regardless_of_workers_and_cache(tmp_path, capsys):
    _require("espeak-ng", "flite", "festival", "sox")
    cache = tmp_path / "cache"
    # cold cache, two workers
    assert cli.main([*ARGS, "--out", str(tmp_path / "a"), "--tts-cache", str(cache)]) == 0
    # warm cache, one worker
    assert cli.main([*ARGS, "--out", str(tmp_path / "b"), "--tts-cache", str(cache),
                     "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "x real time" in out and "SNR histogram" in out and "events per label" in out
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert len([k for k in a if k.endswith(".wav")]) == 2
    assert a == b
    assert any(cache.rglob("*.wav")), "the TTS cache was not used"
    lines = (tmp_path / "a" / "shard-00000.jsonl").read_text().splitlines()
    recs = [json.loads(line) for line in lines]
    assert [r["duration"] for r in recs] == [30.0, 30.0]
    assert all(r["split"] == "train" and r["sample_rate"] == 16000 for r in recs)
    assert (tmp_path / "a" / "build.json").exists()


def test_another_seed_gives_other_audio(tmp_path):
    _require("espeak-ng", "flite", "festival", "sox")
    from export.data import scene

    cfg = scene.SceneConfig()
    a, _ = scene.make_stream("dev", 1, 0, 30.0, cfg, None)
    b, _ = scene.make_stream("dev", 2, 0, 30.0, cfg, None)
    assert a.shape == b.shape == (480000,)
    assert a.tobytes() != b.tobytes()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--split", "validation", "--hours", "1"], "unknown split 'validation'"),
        (["--split", "train", "--hours", "-1"], "--hours must be a positive number, got -1.0"),
        (["--split", "train", "--minutes", "0"], "--minutes must be a positive number"),
        (["--split", "train", "--hours", "1", "--seed", "-3"], "--seed must be >= 0"),
        (["--split", "train", "--hours", "1", "--engines", "espeak-ng,bogus"],
         "unknown TTS engine 'bogus'"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(tmp_path, capsys, argv, message):
    rc = cli.main(["build", "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("engine", "hint"),
    [("flite", "flite not found: apt-get install flite"),
     ("espeak-ng", "espeak-ng not found: apt-get install espeak-ng"),
     ("festival", "festival not found: apt-get install festival festvox-kallpc16k")],
)
def test_missing_tts_engine_names_the_package(tmp_path, capsys, monkeypatch, engine, hint):
    real = shutil.which
    monkeypatch.setattr(speech, "_which", lambda name: None if name == engine else real(name))
    rc = cli.main(["build", "--out", str(tmp_path / "o"), "--split", "train", "--minutes", "1",
                   "--engines", engine])
    assert rc == 2
    assert hint in capsys.readouterr().err


def test_existing_build_is_not_overwritten_without_force(tmp_path, capsys):
    _require("espeak-ng", "flite", "festival", "sox")
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "shard-00000.jsonl").write_text("")
    rc = cli.main(["build", "--out", str(tmp_path / "o"), "--split", "train", "--minutes", "1"])
    assert rc == 2
    assert "already holds a build" in capsys.readouterr().err


def test_module_entry_point_exits_2_without_traceback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "export.data", "build", "--out",
                          str(tmp_path / "o"), "--split", "nope", "--hours", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "unknown split 'nope': expected one of train, dev, test" in res.stderr
    assert "Traceback" not in res.stderr
