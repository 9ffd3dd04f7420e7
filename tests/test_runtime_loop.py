"""The threaded loop: clean shutdown, errors reach the caller, drops are counted, JSON lines."""

import io
import json
import threading
import time

import numpy as np
import pytest
from runtime_helpers import ScriptedBackend, noise

from aim_edge.audio import write_wav
from aim_edge.bundle import load_bundle
from aim_edge.config import RingConfig
from aim_edge.engine import Engine
from aim_edge.errors import AudioTypeError
from aim_edge.loop import ArraySource, Loop, LoopConfig, WavSource
from aim_edge.respond import (
    CallbackResponder,
    ConsoleResponder,
    JsonLinesResponder,
    SpeechResponder,
    validate_event,
)


def aim_threads():
    return {t for t in threading.enumerate() if t.name.startswith("aim-edge")}


def scripted_engine(path, script=None, **kw):
    bundle = load_bundle(path)
    be = ScriptedBackend(bundle, script, **{k: kw.pop(k) for k in ("delay_s", "fail_at")
                                            if k in kw})
    return Engine.from_bundle(bundle, backend=be, **kw)


def test_loop_on_a_real_bundle_leaves_no_threads(runtime_small_bundle, tmp_path):
    before = set(threading.enumerate())
    path = write_wav(tmp_path / "a.wav", 16000, noise(2.0))
    events = []
    with Engine.from_bundle(runtime_small_bundle) as engine:
        loop = Loop(engine, WavSource(path), [events.append],
                    instruction="tell me if the doorbell rings")
        summary = loop.run()
        # a spoken instruction would use the engine's worker: start it to check it is joined
        engine.submit(lambda: None).result()
        assert aim_threads()
    assert set(threading.enumerate()) == before
    assert summary["chunks"] == 13 and summary["dropped_samples"] == 0
    assert summary["audio_s"] == pytest.approx(2.0)
    assert events[0]["type"] == "instruction" and events[0]["source"] == "cli"
    assert events[-1]["type"] == "stats" and events[-1]["final"] is True
    for e in events:
        validate_event(e)
    recs = loop.stream.timings.records()
    assert len(recs) == 13
    for r in recs:
        stamps = [r.t_ring, r.t_features, r.t_decide, r.t_model, r.t_decision, r.t_emitted]
        assert all(stamps) and stamps == sorted(stamps)
    assert set(summary["thread_cpu_s"]) == {"source", "perceive", "decide", "respond"}


def test_loop_matches_the_synchronous_path(runtime_small_bundle):
    x = noise(1.5, seed=21)
    with Engine.from_bundle(runtime_small_bundle) as engine:
        ref = engine.process_array(x, 16000)
        got = []
        Loop(engine, ArraySource(x, 16000, block_ms=7), [got.append]).run()
    strip = [{k: v for k, v in e.items() if k != "latency_ms"} for e in got[:-1]]
    assert strip == [{k: v for k, v in e.items() if k != "latency_ms"} for e in ref.events]


@pytest.mark.parametrize("where", ["backend", "responder", "source"])
def test_a_worker_exception_reaches_the_caller(runtime_fake_bundle, where):
    before = set(threading.enumerate())
    engine = scripted_engine(runtime_fake_bundle, fail_at=5 if where == "backend" else None)
    x = np.zeros(32000, np.float32)
    responders = []
    if where == "responder":
        def boom(event):
            if event["type"] == "stats":
                raise ValueError("responder broke")
        responders.append(boom)
    if where == "source":
        x = np.zeros(32000, np.int32)  # refused by the converter in the source thread
    loop = Loop(engine, ArraySource(x, 16000), responders)
    expected = {"backend": (RuntimeError, "scripted failure at chunk 5"),
                "responder": (ValueError, "responder broke"),
                "source": (AudioTypeError, "int32")}[where]
    with pytest.raises(expected[0], match=expected[1]) as info:
        loop.run()
    if hasattr(info.value, "__notes__"):
        assert any("aim-edge" in n and "thread" in n for n in info.value.__notes__)
    engine.close()
    assert set(threading.enumerate()) == before


def test_keyboard_interrupt_in_a_worker_stops_everything(runtime_fake_bundle):
    before = set(threading.enumerate())
    engine = scripted_engine(runtime_fake_bundle)

    def interrupt(event):
        raise KeyboardInterrupt

    loop = Loop(engine, ArraySource(np.zeros(16000 * 30, np.float32), 16000), [interrupt],
                instruction="just transcribe", config=LoopConfig(realtime=True))
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        loop.run()
    assert time.perf_counter() - t0 < 5
    assert set(threading.enumerate()) == before


def test_stop_ends_a_realtime_run_promptly_and_context_manager_joins(runtime_fake_bundle):
    before = set(threading.enumerate())
    engine = scripted_engine(runtime_fake_bundle)
    with Loop(engine, ArraySource(np.zeros(16000 * 60, np.float32), 16000),
              config=LoopConfig(realtime=True)) as loop:
        time.sleep(0.5)
        assert loop.running
        t0 = time.perf_counter()
        loop.stop()
        summary = loop.join(timeout=5)
        assert time.perf_counter() - t0 < 1.0
    assert 0 < summary["audio_s"] < 2.0
    assert set(threading.enumerate()) == before


def test_slow_decide_drops_audio_at_the_ring_and_reports_it(runtime_fake_bundle):
    # chunks take 0.4 s to decide but arrive every 0.16 s; the ring holds 0.26 s: while the
    # source plays (1.5 s) the ring overflows; what is left drains once the source has ended
    engine = scripted_engine(runtime_fake_bundle, delay_s=0.4, ring=RingConfig(capacity=4096))
    events = []
    loop = Loop(engine, ArraySource(noise(1.5), 16000), [events.append],
                config=LoopConfig(realtime=True, decide_queue=1, respond_queue=1))
    summary = loop.run()
    dropped = summary["dropped_samples"]
    assert dropped > 2560, "more than a chunk of audio must have been dropped"
    assert summary["overflow_events"] > 0
    assert any(f"{dropped} samples" in n and "dropped at the ring" in n
               for n in summary["notes"])
    assert events[-1]["type"] == "stats" and events[-1]["dropped_samples"] == dropped
    # the timeline keeps counting dropped audio: the last chunk ends at the end of the input
    assert summary["audio_s"] == pytest.approx(1.5, abs=0.05)
    assert summary["chunks"] <= 10 - dropped // 2560
    recs = loop.stream.timings.records()
    assert recs[-1].dropped_samples == dropped
    assert recs[-1].end_sample == pytest.approx(24000, abs=200)
    assert recs[-1].start_sample >= recs[0].start_sample + 2560 * (len(recs) - 1)


def test_lossless_fast_mode_never_drops_with_a_small_ring(runtime_fake_bundle):
    engine = scripted_engine(runtime_fake_bundle, delay_s=0.002, ring=RingConfig(capacity=1024))
    summary = Loop(engine, ArraySource(noise(2.0), 16000, block_ms=50)).run()
    assert summary["dropped_samples"] == 0 and summary["chunks"] == 13


def test_json_lines_schema(runtime_small_bundle, tmp_path):
    out = tmp_path / "events.jsonl"
    with Engine.from_bundle(runtime_small_bundle) as engine:
        jl = JsonLinesResponder(out)
        Loop(engine, ArraySource(noise(2.5, seed=8), 16000), [jl],
             instruction="let me know when someone says dinner",
             config=LoopConfig(stats_every_s=1.0)).run()
    lines = out.read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert len(events) == jl.count >= 4
    for e in events:
        validate_event(e)
        assert list(e)[:3] == ["type", "t", "latency_ms"]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "instruction" and kinds[-1] == "stats"
    assert kinds.count("stats") >= 3  # every 1 s of audio plus the final one
    assert events[-1]["final"] is True and events[-1]["chunks"] == 16
    caps = [e for e in events if e["type"] == "caption"]
    for c in caps:
        assert c["start_s"] <= c["end_s"] <= c["t"] + 1e-6
    ts = [e["t"] for e in events]
    assert ts == sorted(ts)


def test_validate_event_rejects_schema_violations():
    with pytest.raises(ValueError, match="start with type"):
        validate_event({"t": 0.0, "type": "alert", "latency_ms": 1.0})
    with pytest.raises(ValueError, match="without 'label'"):
        validate_event({"type": "alert", "t": 0.0, "latency_ms": 1.0, "score": 0.5,
                        "start_s": 0.0})
    with pytest.raises(ValueError, match="not one of"):
        validate_event({"type": "beep", "t": 0.0, "latency_ms": None})


def test_console_view_plain_and_tty():
    events = [
        {"type": "caption", "t": 1.0, "latency_ms": 2.0, "final": False, "text": "hel",
         "start_s": 0.5, "end_s": 0.9},
        {"type": "caption", "t": 2.0, "latency_ms": 2.0, "final": True, "text": "hello",
         "start_s": 0.5, "end_s": 1.5},
        {"type": "alert", "t": 3.0, "latency_ms": 3.5, "label": "smoke_alarm", "score": 0.9,
         "start_s": 2.8, "safety": True, "source": "safety"},
    ]
    plain = io.StringIO()
    c = ConsoleResponder(plain)
    for e in events:
        c.emit(e)
    c.close()
    text = plain.getvalue()
    assert "hel" not in text.replace("hello", "")  # partials are not printed to pipes
    assert "hello" in text and "SAFETY ALERT: smoke_alarm" in text and "\x1b" not in text

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    c = ConsoleResponder(tty)
    for e in events:
        c.emit(e)
    c.close()
    out = tty.getvalue()
    assert "\r\x1b[2K" in out and "hel" in out  # partial redrawn in place
    assert "\x1b[1;31m" in out  # alert highlighted


def test_speech_responder_fails_on_first_use_with_a_hint(monkeypatch):
    from aim_edge.errors import OptionalDependencyError

    sp = SpeechResponder(executable="espeak-ng-that-does-not-exist")
    sp.emit({"type": "caption", "t": 0, "latency_ms": 0, "final": True, "text": "x",
             "start_s": 0, "end_s": 0})  # nothing to say: no lookup yet
    with pytest.raises(OptionalDependencyError, match="apt-get install espeak-ng"):
        sp.emit({"type": "alert", "t": 0, "latency_ms": 0, "label": "siren", "score": 1.0,
                 "start_s": 0})
    assert SpeechResponder.phrase({"type": "alert", "label": "keyword:dinner"}) == \
        "Someone said dinner"


def test_speech_without_an_audio_output_is_reported_once(tmp_path, capsys):
    """espeak-ng exits 0 when ALSA has no output device; its stderr says so."""
    fake = tmp_path / "espeak-ng"
    fake.write_text("#!/bin/sh\n"
                    "echo \"ALSA lib pcm.c:2666:(snd_pcm_open_noupdate) Unknown PCM default\" >&2\n"
                    "echo 'error: No such file or directory' >&2\nexit 0\n")
    fake.chmod(0o755)
    sp = SpeechResponder(executable=str(fake))
    alert = {"type": "alert", "t": 0, "latency_ms": 0, "label": "siren", "score": 1.0,
             "start_s": 0}
    for _ in range(3):
        sp.emit(alert)
        sp._proc.wait(timeout=10)
    sp.close()
    assert (sp.spoken, sp.failed) == (3, 3)
    assert sp.error == "error: No such file or directory"
    err = capsys.readouterr().err
    assert err.count("could not play audio") == 1 and "Unknown PCM default" in err
    # a working player says nothing
    ok = tmp_path / "ok"
    ok.write_text("#!/bin/sh\nexit 0\n")
    ok.chmod(0o755)
    sp = SpeechResponder(executable=str(ok))
    sp.emit(alert)
    sp.close()
    assert (sp.spoken, sp.failed, sp.error) == (1, 0, "")
    assert capsys.readouterr().err == ""


def test_callback_responder_and_loop_config_validation():
    got = []
    CallbackResponder(got.append).emit({"type": "stats"})
    assert got == [{"type": "stats"}]
    from aim_edge.errors import ConfigError

    with pytest.raises(ConfigError, match="loop.decide_queue = 0"):
        LoopConfig(decide_queue=0).validate()
    assert LoopConfig(realtime=True).is_lossless is False
    assert LoopConfig().is_lossless is True
