"""`aim-edge run` and `aim-edge info --model` on a generated WAV and the small test bundle."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from runtime_helpers import noise

from aim_edge import cli
from aim_edge.audio import write_wav
from aim_edge.respond import validate_event

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def wav(tmp_path):
    return write_wav(tmp_path / "scene.wav", 16000, noise(2.0, seed=12))


def test_run_writes_json_lines_and_a_summary(runtime_small_bundle, wav, tmp_path, capsys):
    out = tmp_path / "events.jsonl"
    rc = cli.main(["run", str(wav), "--model", str(runtime_small_bundle), "--jsonl", str(out),
                   "--instruction", "tell me if the kettle whistles"])
    assert rc == 0
    text = capsys.readouterr().out
    events = [json.loads(line) for line in out.read_text().splitlines()]
    for e in events:
        validate_event(e)
    assert events[0]["type"] == "instruction"
    assert events[0]["meaning"]["target_labels"] == ["kettle_whistle"]
    assert events[-1]["type"] == "stats" and events[-1]["chunks"] == 13
    for needle in ("instruction (cli): tell me if the kettle whistles", "summary:",
                   "13 x 160 ms", "RTF", "latency", "p99", "dropped       0 samples",
                   "algorithmic", "onnxruntime"):
        assert needle in text, needle


def test_run_jsonl_to_stdout_keeps_stdout_pure(runtime_small_bundle, wav, capsys):
    rc = cli.main(["run", str(wav), "--model", str(runtime_small_bundle), "--jsonl", "-"])
    assert rc == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines and all(json.loads(line)["type"] for line in lines)
    assert "summary:" in captured.err


def test_run_quiet_prints_only_the_summary(runtime_small_bundle, wav, capsys):
    assert cli.main(["run", str(wav), "--model", str(runtime_small_bundle), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("summary:")


def test_run_reads_a_wav_stream_from_stdin(runtime_small_bundle, wav, capsys, monkeypatch):
    """`arecord ... | aim-edge run -`: a pipe writer's open-ended header, read as it arrives;
    the same events as the file itself."""
    import io
    import struct

    def run(argv):
        assert cli.main([*argv, "--model", str(runtime_small_bundle), "--jsonl", "-"]) == 0
        cap = capsys.readouterr()
        return [json.loads(line) for line in cap.out.splitlines()], cap.err

    want, _ = run(["run", str(wav)])
    data = wav.read_bytes()
    i = data.index(b"data")
    piped = data[:i + 4] + struct.pack("<I", 0xFFFFFFFF) + data[i + 8:]
    class Pipe(io.RawIOBase):  # readable, not seekable: what a shell pipe gives
        def __init__(self, data):
            self.data = memoryview(data)

        def readable(self):
            return True

        def readinto(self, b):
            n = min(len(b), len(self.data))
            b[:n], self.data = self.data[:n], self.data[n:]
            return n

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(Pipe(piped))))
    got, err = run(["run", "-"])
    assert "<stdin> (16000 Hz, 1 ch, until the stream ends)" in err
    strip = ("latency_ms", "wall_s", "cpu_s", "rtf", "cpu_rtf", "stages_ms", "t_wall",
             "chunk_latency_ms", "response_latency_ms", "queue", "threads_cpu_s")

    def same(e):
        return {k: v for k, v in e.items() if k not in strip}

    assert [same(e) for e in got if e["type"] != "stats"] == \
        [same(e) for e in want if e["type"] != "stats"]
    assert got[-1]["type"] == "stats" and got[-1]["chunks"] == want[-1]["chunks"] == 13


def test_run_and_process_file_read_a_fifo_once(runtime_small_bundle, wav, tmp_path, capsys):
    """A named pipe (or /dev/stdin, <(...)) can be read only once: the header and the samples
    come from one open (a review found 'not a WAV file' and a hang when it was opened twice)."""
    import os
    import threading

    from aim_edge.engine import Engine

    data = wav.read_bytes()
    fifo = tmp_path / "audio.fifo"

    def feed():
        with open(fifo, "wb") as f:
            f.write(data)

    for use in ("cli", "engine"):
        os.mkfifo(fifo)
        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        if use == "cli":
            assert cli.main(["run", str(fifo), "--model", str(runtime_small_bundle),
                             "--quiet"]) == 0
            assert "13 x 160 ms" in capsys.readouterr().out
        else:
            with Engine.from_bundle(runtime_small_bundle) as engine:
                assert engine.process_file(fifo).chunks == 13
        writer.join(timeout=10)
        assert not writer.is_alive()
        fifo.unlink()


def test_run_on_an_empty_file(runtime_small_bundle, tmp_path, capsys):
    path = write_wav(tmp_path / "empty.wav", 16000, np.zeros(0, np.int16))
    assert cli.main(["run", str(path), "--model", str(runtime_small_bundle)]) == 0
    out = capsys.readouterr().out
    assert "holds no audio samples" in out and "0 x 160 ms" in out


@pytest.mark.parametrize("argv,needle", [
    (["run", "no-such.wav"], "audio file not found: no-such.wav"),
    (["run", "{wav}", "--model", "no-such-bundle"], "bundle not found: no-such-bundle"),
    (["run", "{wav}", "--model", "{bundle}", "--precision", "int8-static"],
     "no step artifact with format='onnx' precision='int8-static'"),
    (["run", "{wav}", "--model", "{bundle}", "--jsonl", "/no/such/dir/x.jsonl"],
     "--jsonl /no/such/dir/x.jsonl"),
])
def test_run_errors_are_one_line_and_exit_1(runtime_small_bundle, wav, capsys, argv, needle):
    argv = [a.format(wav=wav, bundle=runtime_small_bundle) for a in argv]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1, err
    assert err.startswith("aim-edge run: error:")


def test_run_with_a_missing_backend_names_the_install(runtime_small_bundle, wav, capsys):
    with mock.patch.dict(sys.modules, {"ai_edge_litert": None,
                                       "ai_edge_litert.interpreter": None}):
        rc = cli.main(["run", str(wav), "--model", str(runtime_small_bundle),
                       "--backend", "litert"])
    assert rc == 1
    assert "pip install aim-edge[tflite]" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["run"], ["run", "x.wav", "--threads", "0"],
                                  ["run", "x.wav", "--backend", "tensorflow"],
                                  ["run", "x.wav", "--stats-every", "-1"],
                                  ["listen", "--stats-every", "nan"]])
def test_run_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    if "--stats-every" in argv:
        assert f"--stats-every: {argv[-1]} must be a number of seconds >= 0" in (
            capsys.readouterr().err)


def test_run_help_teaches_with_examples(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = capsys.readouterr().out
    for needle in ("examples:", "--realtime", "--jsonl", "--instruction", "JSON lines"):
        assert needle in out


def test_info_shows_the_bundle(runtime_small_bundle, capsys):
    assert cli.main(["info", "--model", str(runtime_small_bundle)]) == 0
    out = capsys.readouterr().out
    for needle in ("bundle   runtime-test-small", "smoke_alarm [safety]", "doorbell",
                   "model.fp32.onnx", "role=step", "algorithmic", "encoder: hashed-bow",
                   "16000 Hz, 80 mels", "ai-edge-litert", "event head       reads the instruction"):
        assert needle in out, needle


def test_ctrl_c_stops_a_realtime_run_cleanly(runtime_small_bundle, tmp_path):
    path = write_wav(tmp_path / "long.wav", 16000, noise(30.0))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with subprocess.Popen(
            [sys.executable, "-m", "aim_edge.cli", "run", str(path), "--model",
             str(runtime_small_bundle), "--realtime", "--jsonl", "-", "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            cwd=ROOT,
            # as from a terminal: when the test runner itself runs as a background job, SIGINT
            # is ignored and the child would inherit that (Python then installs no handler)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) as proc:
        try:
            line = proc.stdout.readline()  # the first event: the loop is running
            assert line.startswith("{"), proc.stderr.read()
            time.sleep(0.3)
            t0 = time.perf_counter()
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(timeout=10)
            elapsed = time.perf_counter() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err = proc.stderr.read()
    assert rc == 130, err
    assert "interrupted" in err
    assert elapsed < 3.0, "Ctrl-C must not wait for the 30 s file to finish"


def test_run_asr_folder_missing_is_a_clear_error(tmp_path, capsys):
    path = write_wav(tmp_path / "a.wav", 16000, noise(1.0))
    assert cli.main(["run", str(path), "--asr", str(tmp_path / "nope"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "--asr" in err and "make asr-export" in err


def test_no_second_pass_wins_over_asr(tmp_path):
    import argparse

    args = argparse.Namespace(no_second_pass=True, asr=str(tmp_path / "nope"), model=None)
    assert cli._second_pass(args) is None


@pytest.mark.parametrize("command", [["run", "x.wav"], ["listen"]])
def test_run_and_listen_take_the_same_second_pass_options(command):
    args = cli.build_parser().parse_args(
        command + ["--asr", "/opt/asr", "--endpoints", "silero", "--no-second-pass"])
    assert (args.asr, args.endpoints, args.no_second_pass) == ("/opt/asr", "silero", True)


@pytest.mark.parametrize("second_pass,expected", [(None, "student"), ("whisper", "silero")])
def test_engine_from_args_uses_silero_endpoints_only_with_a_second_pass(second_pass, expected):
    args = cli.build_parser().parse_args(["listen", "--endpoints", "silero", "--threads", "2"])
    with mock.patch.object(cli, "_second_pass", return_value=second_pass), \
            mock.patch("aim_edge.engine.Engine.from_bundle", return_value="engine") as build:
        assert cli.engine_from_args(args) == "engine"
    kwargs = build.call_args.kwargs
    assert (kwargs["endpoints"], kwargs["second_pass"], kwargs["threads"]) == (
        expected, second_pass, 2)


def test_run_takes_policy_settings_and_names_a_bad_one(runtime_small_bundle, wav, capsys):
    base = ["run", str(wav), "--model", str(runtime_small_bundle), "--quiet"]
    assert cli.main([*base, "--policy", "refractory_s=10", "--policy", "kws_threshold=0"]) == 0
    assert cli.main([*base, "--policy", "refractory=10"]) == 2  # a usage error, as argparse
    err = capsys.readouterr().err
    assert "policy setting 'refractory=10': unknown field 'refractory'" in err
    assert "refractory_s" in err and "Traceback" not in err


def test_policy_help_lists_every_field_with_its_real_default_and_meaning():
    import dataclasses

    from aim_edge.cli import _POLICY_FIELDS, _policy_help
    from aim_edge.policy import PolicyConfig

    text = _policy_help()
    names = [f.name for f in dataclasses.fields(PolicyConfig) if not f.name.startswith("_")]
    assert sorted(_POLICY_FIELDS) == sorted(names)  # a new field needs its line here
    for piece in ("refractory_s (default 5 or the bundle's)", "wake_tolerance (default 0.25)",
                  "wake_draft_questions (default true)", "kws_threshold (default 0.5)",
                  "safety_without_instruction (default true)", "rearm_s (default 3 or the"):
        assert piece in text


def test_an_unknown_option_shows_the_subcommands_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "--no-colour"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: aim-edge demo") and "unrecognized arguments: --no-colour" in err


def test_options_that_cannot_take_effect_say_so(runtime_small_bundle, wav, capsys, monkeypatch):
    monkeypatch.setattr(cli, "_cores", lambda: 2)
    assert cli.main(["run", str(wav), "--model", str(runtime_small_bundle), "--quiet",
                     "--endpoints", "silero", "--no-second-pass", "--threads", "4"]) == 0
    err = capsys.readouterr().err
    assert "--endpoints silero only cuts utterances for a second pass" in err
    assert "--threads 4 is more than this machine's 2 core(s)" in err
    assert cli.main(["run", str(wav), "--model", str(runtime_small_bundle), "--quiet"]) == 0
    assert "note:" not in capsys.readouterr().err


def test_run_says_where_captions_come_from_without_a_second_pass(runtime_small_bundle, wav,
                                                                 capsys):
    assert cli.main(["run", str(wav), "--model", str(runtime_small_bundle)]) == 0
    out = capsys.readouterr().out
    assert cli.CAPTIONS_NOTE in out and "make asr-export" in out
    assert cli.main(["run", str(wav), "--model", str(runtime_small_bundle), "--quiet"]) == 0
    assert cli.CAPTIONS_NOTE not in capsys.readouterr().out
