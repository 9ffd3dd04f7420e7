"""Decision policy, captions and instructions, driven by a scripted backend (no model)."""

import json
import shutil

import numpy as np
import pytest
from runtime_helpers import ScriptedBackend, chunk_end_s, samples_for_chunks, spell

from aim_edge.bundle import load_bundle
from aim_edge.engine import Engine
from aim_edge.errors import BundleError, ConfigError
from aim_edge.instructions import match_wake_phrase, parse_instruction, strip_wake_phrase
from aim_edge.policy import CaptionDecoder, PolicyConfig, ctc_greedy

VOCAB = ["<blank>", " ", "'", *"abcdefghijklmnopqrstuvwxyz"]
EVENTS = ("smoke_alarm", "co_alarm", "doorbell", "kettle_whistle", "other_sound")
SAFETY = ("smoke_alarm", "co_alarm")


def spelled_from(frames, first_chunk, speak=None):
    """A backend script that feeds ``frames`` (CTC rows) 4 per chunk from ``first_chunk``;
    with ``speak``, speak-now is that probability for the 3 chunks after the last frame (a
    model that wants to respond once a question is over)."""
    def script(i, feeds):
        j = i - first_chunk
        if 0 <= 4 * j < len(frames):
            return {"ctc": frames[4 * j:4 * j + 4]}
        if speak is not None and 0 <= 4 * j - len(frames) < 12:
            return {"speak": speak}
        return {}
    return script


def make_engine(bundle_path, script, **kw):
    bundle = load_bundle(bundle_path)
    return Engine.from_bundle(bundle, backend=ScriptedBackend(bundle, script), **kw)


def run_chunks(engine, n_chunks, *, instruction=None, at=None):
    """Feed silence for n_chunks, decoding as we go; ``at = {chunk: instruction}`` changes the
    instruction before that chunk is decided."""
    stream = engine.create_stream(instruction=instruction)
    events = []
    x = np.zeros(samples_for_chunks(n_chunks), np.float32)
    stream.accept_waveform(16000, x)
    stream.input_finished()
    while stream.is_ready():
        if at and stream._chunk_index in at:
            stream.set_instruction(at.pop(stream._chunk_index))
        events.extend(stream.decode())
    return stream, events


def alerts(events, label=None):
    return [e for e in events if e["type"] == "alert" and (label is None or e["label"] == label)]


# ---------------------------------------------------------------------------- CTC captions

def logprobs_for(frames, vocab=VOCAB):
    lp = np.full((len(frames), len(vocab)), -9.0, np.float32)
    for i, tok in enumerate(frames):
        lp[i, 0 if tok is None else vocab.index(tok)] = -0.01
    return lp


def test_ctc_greedy_collapses_repeats_and_drops_blanks():
    # h h e l _ l l o _ _ -> "hello": repeats collapse, a blank separates the two l's
    frames = ["h", "h", "e", "l", None, "l", "l", "o", None, None]
    assert ctc_greedy(logprobs_for(frames), VOCAB) == "hello"
    assert ctc_greedy(logprobs_for([None] * 5), VOCAB) == ""
    assert ctc_greedy(logprobs_for(["a", "a", "a"]), VOCAB) == "a"
    assert ctc_greedy(logprobs_for(["a", None, "a"]), VOCAB) == "aa"
    # spaces collapse and are stripped at the edges
    assert ctc_greedy(logprobs_for([" ", "h", " ", None, " ", "i", " "]), VOCAB) == "h i"


def test_ctc_streaming_equals_one_shot_across_chunk_boundaries():
    frames = spell("good morning") + [None] * 3
    one_shot = ctc_greedy(logprobs_for(frames), VOCAB)
    for split in range(1, len(frames)):
        dec = CaptionDecoder(VOCAB)
        dec.accept(logprobs_for(frames[:split]), 0)
        dec.accept(logprobs_for(frames[split:]), split)
        assert dec.text == one_shot == "good morning"
    # a token repeated across a boundary is one token, not two
    dec = CaptionDecoder(VOCAB)
    dec.accept(logprobs_for(["a", "b"]), 0)
    dec.accept(logprobs_for(["b", "c"]), 2)
    assert dec.text == "abc"
    assert [f for _, f in dec.tokens] == [0, 1, 3]


def test_ctc_decoder_rejects_a_wrong_vocabulary_size():
    with pytest.raises(ValueError, match="expected"):
        CaptionDecoder(VOCAB).accept(np.zeros((4, 5), np.float32), 0)


def test_partial_and_final_captions_with_times(runtime_fake_bundle):
    text = "hello there"
    frames = spell(text)

    def script(i, feeds):
        return {"ctc": frames[4 * i:4 * i + 4]} if 4 * i < len(frames) else {}

    engine = make_engine(runtime_fake_bundle, script)
    _, events = run_chunks(engine, 12)
    caps = [e for e in events if e["type"] == "caption"]
    partials = [c for c in caps if not c["final"]]
    finals = [c for c in caps if c["final"]]
    assert [c["text"] for c in partials][-1] == text
    assert all(text.startswith(c["text"]) for c in partials)
    assert len(finals) == 1 and finals[0]["text"] == text
    # 11 tokens + 1 blank (double l) = 12 CTC frames of 40 ms; the endpoint needs endpoint_s
    # (0.8 s) of blanks, decided at the end of the chunk that completes them
    ep = PolicyConfig().endpoint_s
    assert finals[0]["start_s"] == pytest.approx(0.0)
    assert finals[0]["end_s"] == pytest.approx(12 * 0.04)
    assert finals[0]["end_s"] + ep - 0.04 <= finals[0]["t"] <= finals[0]["end_s"] + ep + 0.16
    assert all(c["latency_ms"] >= 0 for c in caps)


# ---------------------------------------------------------------------------- alerts

def window_script(windows):
    """windows: {label: [(first_chunk, last_chunk, p), ...]} -> script."""
    def script(i, feeds):
        ev = {}
        for label, spans in windows.items():
            for a, b, p in spans:
                if a <= i <= b:
                    ev[label] = p
        return {"events": ev}
    return script


def test_safety_alert_fires_inside_its_window_without_instruction(runtime_fake_bundle):
    engine = make_engine(runtime_fake_bundle, window_script(
        {"smoke_alarm": [(10, 20, 0.9)], "doorbell": [(30, 40, 0.9)]}))
    _, events = run_chunks(engine, 50)
    smoke = alerts(events, "smoke_alarm")
    assert len(smoke) == 1
    a = smoke[0]
    assert chunk_end_s(10) == pytest.approx(a["t"])  # the first chunk above threshold
    assert a["start_s"] == pytest.approx(10 * 0.16)
    assert a["safety"] is True and a["source"] == "safety"
    assert a["score"] == pytest.approx(0.9, abs=1e-4)
    assert not alerts(events, "doorbell"), "a non-safety event needs an instruction or the model"


def test_hysteresis_keeps_one_activation_and_refractory_blocks_a_quick_repeat(
        runtime_fake_bundle):
    # on at 5 (0.9); 0.45 is between off (0.4) and on (0.5): still active, no new alert;
    # off at 10 (0.2); on again at 12 -> refractory (5 s = 31.25 chunks) holds it back until
    # chunk 37 while it stays active; then it fires once.
    probs = {5: 0.9, 6: 0.45, 7: 0.45, 8: 0.9, 9: 0.45, 10: 0.2, 11: 0.2}
    probs.update({i: 0.8 for i in range(12, 45)})

    def script(i, feeds):
        return {"events": {"smoke_alarm": probs.get(i, 0.01)}}

    # rearm_s 0: every new activation is a new sound (the default merges this one: below)
    engine = make_engine(runtime_fake_bundle, script, policy=PolicyConfig(rearm_s=0.0))
    _, events = run_chunks(engine, 50)
    smoke = alerts(events, "smoke_alarm")
    assert [round(a["t"], 3) for a in smoke] == [round(chunk_end_s(5), 3),
                                                 round(chunk_end_s(37), 3)]
    assert smoke[1]["t"] - smoke[0]["t"] >= 5.0
    assert smoke[1]["start_s"] == pytest.approx(12 * 0.16)  # the activation that waited


def test_without_hysteresis_flicker_would_alert_again_after_refractory(runtime_fake_bundle):
    # same flicker as above but refractory 0: every re-activation alerts
    probs = {5: 0.9, 6: 0.2, 7: 0.9, 8: 0.45, 9: 0.9}

    def script(i, feeds):
        return {"events": {"smoke_alarm": probs.get(i, 0.01)}}

    engine = make_engine(runtime_fake_bundle, script,
                         policy=PolicyConfig(refractory_s=0.0, rearm_s=0.0))
    _, events = run_chunks(engine, 12)
    # 5 on, 6 off, 7 on (alert), 8 stays on (0.45 > off 0.4), 9 same activation
    assert [round(a["t"], 3) for a in alerts(events, "smoke_alarm")] == [
        round(chunk_end_s(5), 3), round(chunk_end_s(7), 3)]


def test_a_beeping_alarm_is_one_sound_until_it_pauses_for_rearm_s(runtime_fake_bundle):
    # a smoke alarm's pattern: 3 chunks on, 6 off (0.96 s pauses) for 12 s, far past the 5 s
    # refractory; then 20 quiet chunks (3.2 s >= rearm_s 3.0) and it sounds again
    beeping = {i for i in range(5, 80) if (i - 5) % 9 < 3}
    again = set(range(100, 104))

    def script(i, feeds):
        return {"events": {"smoke_alarm": 0.9 if i in beeping | again else 0.01}}

    _, events = run_chunks(make_engine(runtime_fake_bundle, script), 110)
    smoke = alerts(events, "smoke_alarm")
    assert [round(a["t"], 3) for a in smoke] == [round(chunk_end_s(5), 3),
                                                 round(chunk_end_s(100), 3)]
    assert smoke[1]["start_s"] == pytest.approx(100 * 0.16)  # the new sound's own start

    # without the rule every beep past the refractory time was a new alert (the old policy)
    _, events = run_chunks(make_engine(runtime_fake_bundle, script,
                                       policy=PolicyConfig(rearm_s=0.0)), 110)
    # beeps at chunks 5, 41 and 77 (5.76 s apart); the new sound at 100 is inside 77's
    # refractory time
    assert [round(a["t"], 3) for a in alerts(events, "smoke_alarm")] == [
        round(chunk_end_s(k), 3) for k in (5, 41, 77)]


def test_a_continuation_may_still_alert_when_its_sound_had_not_been_allowed(
        runtime_fake_bundle):
    # the kettle is heard, not allowed (no instruction, model silent), pauses 0.48 s and goes
    # on; when the model then decides to speak, the sound (since its first chunk) alerts once
    def script(i, feeds):
        if 5 <= i <= 9 or 13 <= i <= 20:
            return {"events": {"kettle_whistle": 0.9}, "speak": 0.9 if i >= 16 else 0.2,
                    "intent": "alert"}
        return {}

    _, events = run_chunks(make_engine(runtime_fake_bundle, script), 30)
    kettle = alerts(events, "kettle_whistle")
    assert [round(a["t"], 3) for a in kettle] == [round(chunk_end_s(16), 3)]
    assert kettle[0]["start_s"] == pytest.approx(5 * 0.16)


def test_safety_is_muted_only_by_an_instruction_that_mutes_it(runtime_fake_bundle):
    script = window_script({"smoke_alarm": [(3, 6, 0.95)], "co_alarm": [(10, 13, 0.95)]})
    engine = make_engine(runtime_fake_bundle, script)
    _, events = run_chunks(engine, 16, instruction="I'm testing the smoke alarm, ignore it")
    assert not alerts(events, "smoke_alarm")
    assert len(alerts(events, "co_alarm")) == 1, "muting one alarm leaves the others on"
    instr = [e for e in events if e["type"] == "instruction"]
    assert instr[0]["meaning"]["muted_labels"] == ["smoke_alarm"]

    engine = make_engine(runtime_fake_bundle, script)
    _, events = run_chunks(engine, 16, instruction="emergencies only please")
    assert len(alerts(events, "smoke_alarm")) == 1 and len(alerts(events, "co_alarm")) == 1

    engine = make_engine(runtime_fake_bundle, script)
    _, events = run_chunks(engine, 16, instruction="ignore all alarms for now")
    assert not alerts(events)


def test_instruction_change_mid_stream_changes_what_is_alerted(runtime_fake_bundle):
    script = window_script({"doorbell": [(5, 8, 0.9), (30, 33, 0.9)],
                            "smoke_alarm": [(15, 17, 0.9), (40, 42, 0.9)]})
    backend_holder = {}

    def make():
        bundle = load_bundle(runtime_fake_bundle)
        be = ScriptedBackend(bundle, script)
        backend_holder["be"] = be
        return Engine.from_bundle(bundle, backend=be)

    engine = make()
    _, events = run_chunks(engine, 45, at={20: "tell me if the doorbell rings",
                                           35: "ignore the smoke alarm"})
    door = alerts(events, "doorbell")
    smoke = alerts(events, "smoke_alarm")
    assert [round(a["t"], 3) for a in door] == [round(chunk_end_s(30), 3)]
    assert door[0]["source"] == "instruction"
    assert [round(a["t"], 3) for a in smoke] == [round(chunk_end_s(15), 3)]
    instr = [e for e in events if e["type"] == "instruction"]
    assert [e["text"] for e in instr] == ["tell me if the doorbell rings",
                                          "ignore the smoke alarm"]
    assert instr[0]["t"] == pytest.approx(chunk_end_s(20))
    assert instr[0]["encoder"] == "none" and "zero embedding" in instr[0]["note"]


def test_model_decides_non_safety_alerts_with_speak_now_and_intent(runtime_fake_bundle):
    def script(i, feeds):
        if 5 <= i <= 8:
            return {"events": {"kettle_whistle": 0.9}, "speak": 0.2}
        if 29 <= i <= 33:  # a new sound: 20 quiet chunks (3.2 s >= rearm_s) after the first
            return {"events": {"kettle_whistle": 0.9}, "speak": 0.9 if i >= 31 else 0.2,
                    "intent": "alert"}
        if 40 <= i <= 43:  # speak-now with another intent is not an alert
            return {"events": {"doorbell": 0.9}, "speak": 0.9, "intent": "acknowledge"}
        if 50 <= i <= 53:  # never-target class even when the model asks
            return {"events": {"other_sound": 0.9}, "speak": 0.9, "intent": "alert"}
        return {}

    engine = make_engine(runtime_fake_bundle, script)
    _, events = run_chunks(engine, 58)
    kettle = alerts(events, "kettle_whistle")
    assert [round(a["t"], 3) for a in kettle] == [round(chunk_end_s(31), 3)]
    assert kettle[0]["source"] == "model" and kettle[0]["start_s"] == pytest.approx(29 * 0.16)
    assert not alerts(events, "doorbell") and not alerts(events, "other_sound")
    answers = [e for e in events if e["type"] == "answer"]
    assert [(a["intent"], a["source"]) for a in answers] == [("acknowledge", "model")]
    assert answers[0]["text"] == "Okay."

    engine = make_engine(runtime_fake_bundle, script)
    _, events = run_chunks(engine, 58, instruction="just transcribe")
    assert not alerts(events, "kettle_whistle"), "captions-only mutes model alerts"


def test_acknowledge_speak_threshold_lets_the_model_acknowledge_below_the_bundles(
        runtime_fake_bundle):
    """The model may acknowledge a spoken instruction below the bundle's calibrated
    speak-now (0.5 here); its answers and alerts stay on the bundle's threshold."""
    def script(i, feeds):
        if 5 <= i <= 7:  # the model wants to acknowledge, speak-now under the bundle's 0.5
            return {"speak": 0.4, "intent": "acknowledge"}
        if 12 <= i <= 14:  # and to answer a question at the same speak-now
            return {"speak": 0.4, "intent": "answer"}
        if 20 <= i <= 23:  # and to alert a non-safety sound
            return {"events": {"kettle_whistle": 0.9}, "speak": 0.4, "intent": "alert"}
        return {}

    def said(**policy):
        engine = make_engine(runtime_fake_bundle, script, policy=policy or None)
        _, events = run_chunks(engine, 30)
        return ([(e["intent"], e["source"], round(e["t"], 3)) for e in events
                 if e["type"] == "answer"], alerts(events, "kettle_whistle"))

    answers, kettle = said()
    assert answers == [] and kettle == []
    answers, kettle = said(acknowledge_speak_threshold=0.35)
    assert answers == [("acknowledge", "model", round(chunk_end_s(5), 3))], \
        "only the acknowledgement: an answer still needs the bundle's speak-now"
    assert kettle == [], "a model alert still needs the bundle's speak-now"
    # one acknowledgement per rise: speak-now staying up is not a second one
    assert said(acknowledge_speak_threshold=0.35, answer_refractory_s=0.0)[0] == answers
    # never stricter than the bundle: a higher value keeps the bundle's 0.5
    engine = make_engine(runtime_fake_bundle, script,
                         policy={"acknowledge_speak_threshold": 0.9})
    assert engine.new_policy().ack_on == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="acknowledge_speak_threshold.*0, 1"):
        PolicyConfig(acknowledge_speak_threshold=0).validate()


def test_keyword_alert_from_captions(runtime_fake_bundle):
    script = spelled_from(spell("dinner is ready"), 3)
    engine = make_engine(runtime_fake_bundle, script)
    _, events = run_chunks(engine, 16, instruction="let me know when someone says dinner")
    kw = alerts(events, "keyword:dinner")
    assert len(kw) == 1 and kw[0]["source"] == "keyword"
    assert kw[0]["start_s"] == pytest.approx(3 * 0.16)
    engine = make_engine(runtime_fake_bundle, script)
    _, events = run_chunks(engine, 16)
    assert not alerts(events)


def test_spoken_instruction_after_the_wake_phrase_takes_over(runtime_fake_bundle):
    frames = spell("hey aim tell me if the doorbell rings")
    n_speech = (len(frames) + 3) // 4

    def script(i, feeds):
        if i < n_speech:
            return {"ctc": frames[4 * i:4 * i + 4]}
        if i == n_speech:  # speak-now confirms that the draft's wake phrase addressed us
            return {"speak": 0.95}
        if 40 <= i <= 43:
            return {"events": {"doorbell": 0.9}}
        return {}

    engine = make_engine(runtime_fake_bundle, script)
    with engine:
        _, events = run_chunks(engine, 48)
    instr = [e for e in events if e["type"] == "instruction"]
    assert [(e["text"], e["source"]) for e in instr] == [
        ("tell me if the doorbell rings", "spoken")]
    final = [e for e in events if e["type"] == "caption" and e["final"]]
    assert final[0]["text"] == "hey aim tell me if the doorbell rings"
    # taken at the 0.48 s pause (wake_endpoint_s), before the caption's 0.8 s endpoint
    assert final[0]["end_s"] + 0.48 - 0.04 <= instr[0]["t"] < final[0]["t"]
    ack = [e for e in events if e["type"] == "answer"]
    assert ack and ack[0]["intent"] == "acknowledge" and ack[0]["source"] == "wake_phrase"
    assert [a["source"] for a in alerts(events, "doorbell")] == ["instruction"]


def test_wake_phrase_question_gets_an_answer_event(runtime_fake_bundle):
    script = spelled_from(spell("hey aim what time is it"), 0, speak=0.95)
    bundle = load_bundle(runtime_fake_bundle)
    engine = Engine.from_bundle(bundle, backend=ScriptedBackend(bundle, script),
                                answerer=lambda q: f"you asked: {q}")
    _, events = run_chunks(engine, 16)
    answers = [e for e in events if e["type"] == "answer"]
    assert len(answers) == 1
    assert answers[0]["question"] == "what time is it"
    assert answers[0]["text"] == "you asked: what time is it"
    assert not [e for e in events if e["type"] == "instruction"]


def test_thresholds_and_refractory_come_from_the_manifest(tmp_path):
    from runtime_helpers import write_fake_bundle

    path = write_fake_bundle(tmp_path / "b", thresholds={
        "speak_now": 0.5, "events": {"smoke_alarm": 0.8}, "hysteresis": 0.3,
        "refractory_s": {"smoke_alarm": 0.4}})
    probs = {3: 0.7, 4: 0.85, 5: 0.6, 6: 0.4, 7: 0.9}

    def script(i, feeds):
        return {"events": {"smoke_alarm": probs.get(i, 0.01)}}

    _, events = run_chunks(make_engine(path, script, policy=PolicyConfig(rearm_s=0.0)), 10)
    # on at 4 (0.85 >= 0.8, 0.7 is not); off below 0.5: 0.6 stays on, 0.4 turns off; 7 again,
    # 0.48 s later: allowed by the manifest's 0.4 s refractory time, not by the default 5 s
    # (rearm_s 0: the re-activation is a new sound, not the default's continuation)
    assert [round(a["t"], 3) for a in alerts(events, "smoke_alarm")] == [
        round(chunk_end_s(4), 3), round(chunk_end_s(7), 3)]



def test_a_label_with_confirm_chunks_alerts_at_its_second_chunk_above_threshold(tmp_path):
    from runtime_helpers import write_fake_bundle

    from aim_edge.metrics import alerts as metric_alerts

    path = write_fake_bundle(tmp_path / "b", thresholds={
        "speak_now": 0.5, "events": {"smoke_alarm": 0.8, "co_alarm": 0.8},
        "confirm_chunks": {"smoke_alarm": 2}})
    # smoke: a lone spike at 5 (0.9; 6 is 0.75: still active, below on), then a real sound
    # from 60 whose second chunk above threshold is 62 (61 is 0.7). co (confirm 1, the
    # default) alerts on the same lone spike.
    smoke = {5: 0.9, 6: 0.75, 60: 0.85, 61: 0.7, 62: 0.95, 63: 0.9}
    co = {5: 0.9, 6: 0.75}

    def script(i, feeds):
        return {"events": {"smoke_alarm": smoke.get(i, 0.01), "co_alarm": co.get(i, 0.01)}}

    engine = make_engine(path, script)
    assert engine.bundle.confirm_chunks["smoke_alarm"] == 2
    assert engine.bundle.confirm_chunks["co_alarm"] == 1
    _, events = run_chunks(engine, 70)
    got = alerts(events, "smoke_alarm")
    assert [round(a["t"], 3) for a in got] == [round(chunk_end_s(62), 3)]
    assert got[0]["start_s"] == pytest.approx(60 * 0.16)  # the sound's start, not the alert's
    assert [round(a["t"], 3) for a in alerts(events, "co_alarm")] == [round(chunk_end_s(5), 3)]
    # the evaluation's mirror of the rule gives the same alert chunk and sound start
    p = np.array([smoke.get(i, 0.01) for i in range(70)])
    assert metric_alerts(p, 0.8, 0.1, 5.0, 0.16, 3.0, confirm_chunks=2) == [(60, 62, 64)]
    assert metric_alerts(p, 0.8, 0.1, 5.0, 0.16, 3.0) == [(5, 5, 7), (60, 60, 64)]


def test_confirmation_counts_across_the_pauses_of_one_sound(tmp_path):
    from runtime_helpers import write_fake_bundle

    path = write_fake_bundle(tmp_path / "b", thresholds={
        "speak_now": 0.5, "events": {"smoke_alarm": 0.8}, "confirm_chunks": 2})
    # a beeping alarm whose beeps are one chunk each, 0.8 s apart (< rearm_s 3 s): one sound,
    # confirmed by its second beep
    beeps = {10, 15, 20}

    def script(i, feeds):
        return {"events": {"smoke_alarm": 0.9 if i in beeps else 0.01}}

    _, events = run_chunks(make_engine(path, script), 30)
    got = alerts(events, "smoke_alarm")
    assert [round(a["t"], 3) for a in got] == [round(chunk_end_s(15), 3)]
    assert got[0]["start_s"] == pytest.approx(10 * 0.16)



def _policy_alert_chunks(p, *, refractory_s, rearm_s, confirm):
    """Alert chunks of ``DecisionPolicy`` driven directly by one safety label's scores."""
    from aim_edge.policy import ChunkInfo, DecisionPolicy

    pol = DecisionPolicy(vocab=VOCAB, events=["smoke_alarm"], intents=["silent", "alert"],
                         safety=["smoke_alarm"], speak_threshold=0.5,
                         event_thresholds={"smoke_alarm": 0.8},
                         config=PolicyConfig(refractory_s=refractory_s, rearm_s=rearm_s),
                         confirm={"smoke_alarm": confirm})
    blank = logprobs_for([None] * 4)
    fired = []
    for k, v in enumerate(p):
        logit = np.log(v / (1 - v))
        events, _ = pol.step({"ctc_logprobs": blank, "speak_logit": np.array([-9.0]),
                              "intent_logits": np.array([1.0, 0.0]),
                              "event_logits": np.array([logit])},
                             ChunkInfo(k, k * 0.16, (k + 1) * 0.16 + 0.015, 0.04, 4 * k))
        fired += [k for e in events if e["type"] == "alert"]
    return fired


@pytest.mark.parametrize("refractory_s,rearm_s", [(0.0, 0.0), (0.6, 0.0), (5.0, 3.0),
                                                   (0.48, 0.32), (1.0, 0.5)])
@pytest.mark.parametrize("confirm", [1, 2, 3])
def test_the_evaluation_mirror_alerts_where_the_policy_does(refractory_s, rearm_s, confirm):
    from aim_edge.metrics import alerts as metric_alerts

    # bursty random scores: runs above on (0.8), hysteresis band (0.7-0.8), below off (0.7)
    rng = np.random.default_rng(int(refractory_s * 100 + rearm_s * 10 + confirm))
    levels = np.array([0.02, 0.75, 0.85, 0.97])
    for _ in range(25):
        state, p = 0, []
        for _ in range(150):
            if rng.random() < 0.25:
                state = int(rng.integers(0, 4))
            p.append(levels[state])
        want = _policy_alert_chunks(p, refractory_s=refractory_s, rearm_s=rearm_s,
                                    confirm=confirm)
        got = [f for _, f, _ in metric_alerts(np.array(p), 0.8, 0.1, refractory_s, 0.16,
                                              rearm_s, confirm)]
        assert got == want, (p, got, want)


def test_policy_confirm_is_validated_with_the_bad_value_named():
    from aim_edge.policy import DecisionPolicy

    kw = dict(vocab=VOCAB, events=["smoke_alarm"], intents=["silent", "alert"],
              safety=["smoke_alarm"], speak_threshold=0.5, event_thresholds={"smoke_alarm": 0.8})
    for bad, match in (({"siren": 2}, "unknown event label 'siren'"),
                       ({"smoke_alarm": 0}, r"confirm\['smoke_alarm'\] = 0"),
                       ({"smoke_alarm": 1.5}, r"= 1\.5"), ({"smoke_alarm": True}, "= True")):
        with pytest.raises(ValueError, match=match):
            DecisionPolicy(**kw, confirm=bad)
    pol = DecisionPolicy(**kw, confirm={"smoke_alarm": np.int64(2)})
    assert pol.confirm.tolist() == [2]


# ---------------------------------------------------------------------------- parsing

@pytest.mark.parametrize("text,intent,field,values", [
    ("tell me if the doorbell rings", "watch_events", "target_labels", ["doorbell"]),
    ("let me know when the kettle whistles or someone rings the doorbell", "watch_events",
     "target_labels", ["doorbell", "kettle_whistle"]),
    ("I'm testing the smoke alarm, ignore it", "mute_safety", "muted_labels", ["smoke_alarm"]),
    ("the CO alarm is just a test, don't tell me about it", "mute_safety", "muted_labels",
     ["co_alarm"]),
    ("we're running drills, ignore all the alarms", "mute_safety", "muted_labels",
     ["smoke_alarm", "co_alarm"]),
    ("don't bother me unless it's an emergency", "emergency_only", "muted_labels", []),
    ("captions only, please", "transcribe_only", "target_labels", []),
    ("tell me if anyone mentions dinner or taxi", "watch_keywords", "target_keywords",
     ["dinner", "taxi"]),
    ("listen for the word package", "watch_keywords", "target_keywords", ["package"]),
    ("", "none", "target_labels", []),
    ("what a lovely day", "none", "target_labels", []),
])
def test_instruction_rules(text, intent, field, values):
    m = parse_instruction(text, EVENTS, SAFETY)
    assert m.intent == intent
    assert sorted(getattr(m, field)) == sorted(values)


def test_bundle_aliases_extend_the_phrases():
    m = parse_instruction("tell me when the chime goes", EVENTS, SAFETY,
                          aliases={"doorbell": ["chime"]})
    assert m.target_labels == ("doorbell",)


def test_wake_phrase_stripping():
    assert strip_wake_phrase("Hey AIM, tell me if the kettle boils") == \
        "tell me if the kettle boils"
    assert strip_wake_phrase("hey aimee") is None
    assert strip_wake_phrase("they said hey aim") is None
    assert strip_wake_phrase("okay aim") == ""


def test_loose_wake_matching_reads_the_drafts_misspellings():
    # drafts of real "okay aim / hey aim / excuse me aim / hi aim" questions (dev2 split)
    loose = {"tolerance": 0.25, "lead_chars": 2, "name_words": 3}
    assert match_wake_phrase("lkayaim what's two times free", **loose) == "what's two times free"
    assert match_wake_phrase("iy aim is tom cree at six", **loose) == "is tom cree at six"
    assert match_wake_phrase("xcus me aim wmyt me to call", **loose) == "wmyt me to call"
    assert match_wake_phrase("dexcuse me aim when des the shop", **loose) == \
        "when des the shop"  # two stray letters before the phrase
    assert match_wake_phrase("hria aiem le tis", **loose) == "le tis"  # the name, 2nd word
    # exact by default: none of these match, and strip_wake_phrase stays exact
    for draft in ("lkayaim what's two", "iy aim is tom", "hria aiem le tis"):
        assert match_wake_phrase(draft) is None and strip_wake_phrase(draft) is None
    # the bare name is a wake phrase (the data generator's fifth); it never matches loosely
    assert strip_wake_phrase("Aim, what's two plus two?") == "what's two plus two"
    assert match_wake_phrase("am what's two", tolerance=0.25, lead_chars=0) is None
    # a phrase glued to the next word, or far into the caption, is not at the start
    assert match_wake_phrase("hey aimee", **loose) is None
    assert match_wake_phrase("they said that hey aim", **loose) is None
    assert match_wake_phrase("we walked to the park", **loose) is None


def test_a_misspelled_wake_phrase_answers_only_when_speak_now_confirms(runtime_fake_bundle):
    def answers(speak):
        script = spelled_from(spell("lkayaim what time is it"), 2, speak)
        with make_engine(runtime_fake_bundle, script) as engine:
            _, events = run_chunks(engine, 24)
        return [e for e in events if e["type"] == "answer"]

    got = answers(0.95)
    assert [(a["intent"], a["source"], a["question"]) for a in got] == [
        ("answer", "wake_phrase", "what time is it")]
    assert answers(0.5) == []  # below wake_confirm_speak (0.9): "Hey, I'm home" stays quiet
    assert answers(None) == []
    # an instruction needs the confirmation too: "Hey, I'm hungry, what's for dinner?" would
    # otherwise replace the instruction in force with "watch for the keyword dinner"
    for speak, expect in ((None, []), (0.95, [["doorbell"]])):
        script = spelled_from(spell("lkayaim tell me if the doorbell rings"), 2, speak)
        with make_engine(runtime_fake_bundle, script) as engine:
            _, events = run_chunks(engine, 30)
        assert [e["meaning"]["target_labels"] for e in events
                if e["type"] == "instruction"] == expect


def test_a_question_after_a_short_pause_is_answered_inside_a_running_caption(
        runtime_fake_bundle):
    # 13 blank frames (0.52 s) between two sentences: longer than wake_endpoint_s (0.48 s),
    # shorter than the caption's endpoint (0.8 s), so the caption holds both, as on dev2
    frames = spell("we should go") + [None] * 13 + spell(" hey aim what time is it")
    script = spelled_from(frames, 2, speak=0.95)
    with make_engine(runtime_fake_bundle, script) as engine:
        _, events = run_chunks(engine, 40)
    finals = [e for e in events if e["type"] == "caption" and e["final"]]
    answers = [e for e in events if e["type"] == "answer"]
    assert [f["text"] for f in finals] == ["we should go hey aim what time is it"]
    assert [(a["question"], a["source"]) for a in answers] == [("what time is it", "wake_phrase")]
    assert answers[0]["t"] < finals[0]["t"]
    # with the check at the caption's endpoint only (as before), the wake phrase is
    # mid-caption and nobody answers
    with make_engine(runtime_fake_bundle, script, policy={"wake_endpoint_s": 0.8}) as engine:
        _, events = run_chunks(engine, 40)
    assert [e for e in events if e["type"] == "answer"] == []


def test_find_wake_phrase_reads_a_greeting_glued_inside_a_draft():
    from aim_edge.instructions import find_wake_phrase

    # drafts of dev2 questions asked right after someone else's sentence
    cases = {
        "lena saed they would call next weekakay aim whemindme to call tom":
            "whemindme to call tom",
        "i'l ask dam about it tomorrow morninghey aim how op the geto": "how op the geto",
        "grandma is picking me up garexcuse me aim what's seven plus titen":
            "what's seven plus titen",
        "ten t su ceahey aim what's free plus feten": "what's free plus feten",
        # the last of two: the latest request
        "hey aim what time is it okay aim what was that sound": "what was that sound",
    }
    for draft, rest in cases.items():
        assert find_wake_phrase(draft, tolerance=0.25) == rest, draft
    # not a greeting before the name, the bare name alone, or nothing at all
    for draft in ("he made a claim about it", "i met nina at the shop", "hi im home now",
                  "aim what's two", "they said aim high"):
        assert find_wake_phrase(draft, tolerance=0.25) is None, draft
    # exact by default: a misspelled greeting needs the tolerance
    assert find_wake_phrase("next weekakay aim when") is None
    assert find_wake_phrase("next week okay aim when") == "when"


def test_a_question_glued_to_the_sentence_before_is_answered_when_speak_now_is_sure(
        runtime_fake_bundle):
    # no pause between the two sentences: one run of letters, the wake phrase inside it
    frames = spell("we should go nowhey aim what time is it")

    def answers(speak, **policy):
        script = spelled_from(frames, 2, speak)
        with make_engine(runtime_fake_bundle, script, policy=policy or None) as engine:
            _, events = run_chunks(engine, 40)
        return [(a["question"], a["source"]) for a in events if a["type"] == "answer"]

    assert answers(0.995) == [("what time is it", "wake_phrase")]
    # speak-now below wake_speak_threshold (0.99): a wake phrase inside is not enough
    assert answers(0.95) == []
    assert answers(0.995, wake_inside=False) == []


def test_a_wake_phrase_inside_someone_elses_speech_never_sets_an_instruction(
        runtime_fake_bundle):
    """With a second pass, a wake phrase only the draft found inside a run of speech makes the
    second pass's whole text the request: the sentence before it must not become the
    instruction ("tell me when the doorbell rings" said to someone else)."""
    draft = "tel me when the dorbel ringshey aim what time is it"
    frames = spell(draft)

    def script(i, feeds):
        j = i - 2
        if 0 <= 4 * j < len(frames):
            return {"ctc": frames[4 * j:4 * j + 4],
                    "speak": 0.995 if 4 * j > len(frames) - 12 else 0.01}
        return {}

    whisper = FixedWhisper("Tell me when the doorbell rings. Hey, I'm, what time is it?")
    with make_engine(runtime_fake_bundle, script, second_pass=whisper) as engine:
        _, events = run_chunks(engine, 40)
    assert [e["type"] for e in events if e["type"] in ("answer", "instruction")] == ["answer"]
    answer = next(e for e in events if e["type"] == "answer")
    assert answer["intent"] == "answer" and answer["question"] == "what time is it"


def test_a_held_back_model_answer_is_the_utterances_one_answer_with_a_second_pass(
        runtime_fake_bundle):
    """The input ends while the model's answer waits for a pause: the answer is given as the
    utterance ends, before the second pass looks, which then does not answer it again (a
    review found two answers)."""
    frames = spell("hey aim what time is it")
    n = (len(frames) + 3) // 4

    def script(i, feeds):
        spec = {"ctc": frames[4 * i:4 * i + 4]} if 4 * i < len(frames) else {}
        if i == n - 1:  # speak-now rises on the last letters, and then the input ends
            spec.update(speak=0.9, intent="answer")
        return spec

    whisper = FixedWhisper("Hey aim, what time is it?")
    with make_engine(runtime_fake_bundle, script, second_pass=whisper) as engine:
        _, events = run_chunks(engine, n)
    got = [(a["source"], a["question"]) for a in events if a["type"] == "answer"]
    assert got == [("model", "hey aim what time is it")]


def test_a_drafted_instruction_needs_a_real_keyword(runtime_fake_bundle):
    # "Excuse me aim, don't bother me unless it's an emergency" drafted on dev2; "for ao"
    # parsed as a keyword to watch raised 8 false alerts
    def run(draft):
        script = spelled_from(spell(draft), 2, speak=0.95)
        with make_engine(runtime_fake_bundle, script) as engine:
            _, events = run_chunks(engine, 30)
        return ([e["meaning"]["target_keywords"] for e in events if e["type"] == "instruction"],
                [e["intent"] for e in events if e["type"] == "answer"])

    assert run("excuste me aim dant for ao e orly") == ([], ["answer"])
    assert run("hey aim tell me if someone says dinner") == ([["dinner"]], ["acknowledge"])


@pytest.mark.parametrize("pause_s, after", [(0.0, 0), (0.16, 1), (0.32, 2)])
def test_speak_now_answers_a_drafted_wake_phrase_before_the_endpoint(runtime_fake_bundle,
                                                                     pause_s, after):
    frames = spell("hey aim what time is it")
    n = (len(frames) + 3) // 4
    assert 4 * n - len(frames) == 1  # one blank frame (40 ms) after the last letter

    def script(i, feeds):
        if i < n:
            return {"ctc": frames[4 * i:4 * i + 4]}
        if i == n:  # below the bundle's speak-now threshold (0.5), above wake_speak_threshold
            return {"speak": 0.45, "intent": "answer"}
        if i <= n + 3:  # speak-now falls after the last word; the model still wants to answer
            return {"speak": 0.1, "intent": "answer"}
        return {}

    policy = {"wake_speak_threshold": 0.4, "wake_confirm_speak": 0.4,
              "wake_speak_pause_s": pause_s}
    with make_engine(runtime_fake_bundle, script, policy=policy) as engine:
        _, events = run_chunks(engine, 24)
    got = [e for e in events if e["type"] == "answer"]
    final = [e for e in events if e["type"] == "caption" and e["final"]]
    assert [(a["source"], a["question"]) for a in got] == [("wake_model", "what time is it")]
    # at once, or once the draft has paused pause_s (4 blank frames of 40 ms per chunk)
    assert got[0]["t"] == pytest.approx(chunk_end_s(n + after), abs=1e-3)
    assert got[0]["t"] < final[0]["t"]  # the endpoint (0.8 s of blanks) came later
    # the same speak-now without the wake phrase in the draft says nothing
    frames = spell("what time is it")
    n = (len(frames) + 3) // 4
    with make_engine(runtime_fake_bundle, script, policy=policy) as engine:
        _, events = run_chunks(engine, 24)
    assert [e for e in events if e["type"] == "answer"] == []


def test_a_speak_now_answer_waits_for_the_question_to_end(runtime_fake_bundle):
    """Speak-now often rises on the question's last word: the model's answer waits until the
    draft pauses wake_speak_pause_s (0.16 s: one chunk of blank frames) rather than talk over
    it (dev2: 3 of the model's 4 false answers were 0.03-0.14 s early)."""
    frames = spell("what time is it")  # no wake phrase: the model's own decision
    n = (len(frames) + 3) // 4

    def script(i, feeds):
        spec = {"ctc": frames[4 * i:4 * i + 4]} if i < n else {}
        if i == n - 1:  # speak-now rises while the last letters are written
            spec.update(speak=0.9, intent="answer")
        return spec

    def answers(**policy):
        with make_engine(runtime_fake_bundle, script, policy=policy or None) as engine:
            _, events = run_chunks(engine, 30)
        return [(round(a["t"], 3), a["source"], a["question"]) for a in events
                if a["type"] == "answer"]

    # the last chunk holds one blank after the last letter: the next chunk completes the pause
    assert 4 * n - len(frames) == 1
    assert answers() == [(round(chunk_end_s(n), 3), "model", "what time is it")]
    # at once, the answer came with the last word still unwritten
    assert answers(wake_speak_pause_s=0.0) == [(round(chunk_end_s(n - 1), 3), "model",
                                                "what time is")]


def test_policy_config_validation_names_the_field():
    with pytest.raises(ConfigError, match="policy.wake_tolerance = 0.6"):
        PolicyConfig(wake_tolerance=0.6).validate()
    with pytest.raises(ConfigError, match="policy.wake_lead_chars = 1.5"):
        PolicyConfig(wake_lead_chars=1.5).validate()
    with pytest.raises(ConfigError, match="policy.wake_speak_threshold = 0"):
        PolicyConfig(wake_speak_threshold=0).validate()
    with pytest.raises(ConfigError, match="policy.wake_confirm_speak = 2"):
        PolicyConfig(wake_confirm_speak=2).validate()
    with pytest.raises(ConfigError, match="policy.wake_endpoint_s = 0"):
        PolicyConfig(wake_endpoint_s=0).validate()
    with pytest.raises(ConfigError, match="policy.wake_speak_pause_s = -0.1"):
        PolicyConfig(wake_speak_pause_s=-0.1).validate()
    assert PolicyConfig.parse_settings(["wake_name_words=0", "wake_tolerance=0"]) == {
        "wake_name_words": 0, "wake_tolerance": 0.0}
    with pytest.raises(ConfigError, match="wake_lead_chars takes a whole number"):
        PolicyConfig.parse_settings(["wake_lead_chars=two"])
    with pytest.raises(ConfigError, match="policy.hysteresis = 1.5"):
        PolicyConfig(hysteresis=1.5).validate()
    with pytest.raises(ConfigError, match="policy.rearm_s = -1"):
        PolicyConfig(rearm_s=-1).validate()
    with pytest.raises(ConfigError, match="unknown field"):
        PolicyConfig.from_dict({"hysteresys": 0.1})
    cfg = PolicyConfig.from_dict({"wake_phrases": ["hello aim"], "refractory_s": 2})
    assert cfg.wake_phrases == ("hello aim",)
    assert PolicyConfig.from_dict(cfg.to_dict()) == cfg


def test_second_pass_replaces_final_captions_off_the_decide_path(runtime_fake_bundle):
    import threading

    seen = []

    class FakeWhisper:
        def transcribe(self, samples):
            seen.append((len(samples), threading.current_thread().name))
            return "hello world"

    script = spelled_from(spell("helo wrld"), 2)
    with make_engine(runtime_fake_bundle, script, second_pass=FakeWhisper()) as engine:
        _, events = run_chunks(engine, 14)
    finals = [e for e in events if e["type"] == "caption" and e["final"]]
    assert len(finals) == 1
    f = finals[0]
    assert f["text"] == "hello world" and f["draft"] == "helo wrld" and f["second_pass"]
    n, thread = seen[0]
    assert thread.startswith("aim-edge-worker")
    assert f["start_s"] == pytest.approx(2 * 0.16)
    # the utterance plus SECOND_PASS_LEAD_S before (clipped at the stream start) and
    # SECOND_PASS_TAIL_S after its CTC span
    from aim_edge.engine import SECOND_PASS_LEAD_S, SECOND_PASS_TAIL_S

    start = max(0.0, f["start_s"] - SECOND_PASS_LEAD_S)
    assert abs(n - (f["end_s"] + SECOND_PASS_TAIL_S - start) * 16000) <= 16


class FixedWhisper:
    """A second pass that hears ``text`` in every utterance."""

    def __init__(self, text):
        self.text = text

    def transcribe(self, samples):
        return self.text


def _second_pass_run(runtime_fake_bundle, draft, final_text, n_chunks, instruction=None,
                     speak=None, policy=None):
    """Events of the student spelling ``draft`` from chunk 3, Whisper hearing ``final_text``
    (``speak``: speak-now after the draft, see :func:`spelled_from`)."""
    script = spelled_from(spell(draft), 3, speak)
    with make_engine(runtime_fake_bundle, script, second_pass=FixedWhisper(final_text),
                     policy=policy) as engine:
        _, events = run_chunks(engine, n_chunks, instruction=instruction)
    return events


def _keyword_run(runtime_fake_bundle, draft, final_text):
    events = _second_pass_run(runtime_fake_bundle, draft, final_text, 24,
                              instruction="let me know when someone says dinner")
    final = [e for e in events if e["type"] == "caption" and e["final"]]
    return final, alerts(events, "keyword:dinner")


def test_keyword_in_the_second_pass_text_alerts_when_the_draft_missed_it(runtime_fake_bundle):
    final, kw = _keyword_run(runtime_fake_bundle, "supper is redy", "Dinner is ready.")
    assert len(final) == 1 and final[0]["draft"] == "supper is redy"
    assert len(kw) == 1 and kw[0]["source"] == "second_pass"
    assert kw[0]["t"] == pytest.approx(final[0]["t"], abs=1e-3)
    assert kw[0]["start_s"] == pytest.approx(final[0]["start_s"], abs=1e-3)


def test_a_keyword_the_draft_already_alerted_is_not_alerted_again(runtime_fake_bundle):
    final, kw = _keyword_run(runtime_fake_bundle, "dinner is ready", "Dinner is ready.")
    assert len(final) == 1
    assert [a["source"] for a in kw] == ["keyword"]


def test_no_keyword_alert_when_neither_text_has_it(runtime_fake_bundle):
    final, kw = _keyword_run(runtime_fake_bundle, "supper is redy", "Supper is ready.")
    assert len(final) == 1 and final[0]["text"] == "Supper is ready." and kw == []


def _wake_run(runtime_fake_bundle, draft, final_text, speak=0.95,
              policy=(("wake_draft_questions", False),)):
    events = _second_pass_run(runtime_fake_bundle, draft, final_text, 30, speak=speak,
                              policy=dict(policy))
    return events, [e for e in events if e["type"] == "answer"]


def test_a_wake_phrase_only_the_draft_heard_still_addresses_the_assistant(runtime_fake_bundle):
    # Whisper writes "Hi, name is ..." for "hey aim is ..." (tiny.en does not know "aim"); the
    # student's draft heard the wake phrase: the whole second-pass text is the question
    # (drafted questions are left to the second pass here: see the next test)
    _, answers = _wake_run(runtime_fake_bundle, "hey aim is nina fre",
                           "Hi, name is Nina free on Sunday?")
    assert len(answers) == 1
    assert answers[0]["intent"] == "answer" and answers[0]["source"] == "wake_phrase"
    assert answers[0]["question"] == "hi name is nina free on sunday"
    # an instruction heard that way becomes the instruction
    events, answers = _wake_run(runtime_fake_bundle, "hey aim tel me if the dorbel rings",
                                "Hey, I'm, tell me if the doorbell rings.")
    assert [a["intent"] for a in answers] == ["acknowledge"]
    instr = [e for e in events if e["type"] == "instruction"]
    assert [(e["text"], e["source"], e["meaning"]["target_labels"]) for e in instr] == [
        ("hey i'm tell me if the doorbell rings", "spoken", ["doorbell"])]
    # Whisper heard it, the draft did not: as before
    _, answers = _wake_run(runtime_fake_bundle, "he am is it late", "Hey aim, is it late?")
    assert len(answers) == 1 and answers[0]["question"] == "is it late"
    # neither heard it: not addressed
    _, answers = _wake_run(runtime_fake_bundle, "is nina fre", "Is Nina free on Sunday?")
    assert answers == []
    # only the draft heard it, and speak-now never confirmed it ("Hey, I'm home" drafted as
    # "hey aim home"): not addressed; Whisper's own exact phrase needs no confirmation
    _, answers = _wake_run(runtime_fake_bundle, "hey aim home", "Hey, I'm home.", speak=None)
    assert answers == []
    _, answers = _wake_run(runtime_fake_bundle, "he am is it late", "Hey aim, is it late?",
                           speak=None)
    assert len(answers) == 1 and answers[0]["question"] == "is it late"


def test_a_drafted_question_is_answered_at_the_pause_while_the_second_pass_waits(
        runtime_fake_bundle):
    # the draft "hey aim is nina fre" is a confirmed question at the 0.48 s pause: answered
    # then, from the draft, and the second pass (0.8 s endpoint + decoding) does not answer it
    # again
    events, answers = _wake_run(runtime_fake_bundle, "hey aim is nina fre",
                                "Hi, name is Nina free on Sunday?", policy=())
    assert [(a["intent"], a["source"], a["question"]) for a in answers] == [
        ("answer", "wake_phrase", "is nina fre")]
    final = [e for e in events if e["type"] == "caption" and e["final"]][0]
    end_s = final["end_s"]
    wake_s = PolicyConfig().wake_endpoint_s
    assert end_s + wake_s - 0.04 <= answers[0]["t"] <= end_s + wake_s + 0.2
    assert answers[0]["t"] < final["t"]  # before the utterance even ends
    # not confirmed by speak-now: left to the second pass, as before
    _, answers = _wake_run(runtime_fake_bundle, "hey aim home", "Hey, I'm home.", speak=None,
                           policy=())
    assert answers == []
    # an instruction waits for the second pass's words
    events, answers = _wake_run(runtime_fake_bundle, "hey aim tel me if the dorbel rings",
                                "Hey, I'm, tell me if the doorbell rings.", policy=())
    assert [(a["intent"], a["question"]) for a in answers] == [
        ("acknowledge", "hey i'm tell me if the doorbell rings")]


def test_a_question_the_model_already_answered_is_not_answered_again_by_the_second_pass(
        runtime_fake_bundle):
    frames = spell("hey aim what time is it")

    def script(i, feeds):
        out = {"ctc": frames[4 * i:4 * i + 4]} if 4 * i < len(frames) else {}
        if 3 <= i <= 4:  # the model decides to answer while the question is still spoken
            out.update(speak=0.9, intent="answer")
        return out

    with make_engine(runtime_fake_bundle, script,
                     second_pass=FixedWhisper("Hey aim, what time is it?")) as engine:
        _, events = run_chunks(engine, 20)
    answers = [e for e in events if e["type"] == "answer"]
    assert [(a["intent"], a["source"]) for a in answers] == [("answer", "model")]
    final = [e for e in events if e["type"] == "caption" and e["final"]]
    assert len(final) == 1 and final[0]["second_pass"]
    assert not [k for k in final[0] if k.startswith("_")]  # no private keys leak out


class OnesEncoder:
    """Any instruction -> a non-zero embedding (the fake bundle names no encoder)."""

    kind, note, dim = "ones", "", 8

    def encode(self, text):
        return np.full(self.dim, 1.0 if text else 0.0, np.float32)


def test_an_instruction_cannot_hide_a_safety_sound(runtime_fake_bundle):
    """The event head reads the instruction; an unrelated one must not silence a safety label
    (v0.8 lost a glass break on the demo scene under a bell/siren instruction). The stream runs
    the model a second time without the instruction and keeps the safety labels' higher score;
    other labels keep what the instruction gives them."""
    def script(chunk, feeds):
        if 10 <= chunk < 14:
            heard = 0.95 if not feeds["instruction"].any() else 0.05
            return {"events": {"smoke_alarm": heard, "doorbell": heard}}
        return {}

    def run(**kw):
        bundle = load_bundle(runtime_fake_bundle)
        be = ScriptedBackend(bundle, script)
        engine = Engine.from_bundle(bundle, backend=be, encoder=OnesEncoder(), **kw)
        _, events = run_chunks(engine, 30, instruction="tell me if the doorbell rings")
        return events, be

    events, be = run()
    smoke = alerts(events, "smoke_alarm")
    assert [round(a["t"], 3) for a in smoke] == [round(chunk_end_s(10), 3)]
    assert alerts(events, "doorbell") == []  # not a safety label: the instruction's score stands
    assert be.calls == 60  # two steps per chunk while the instruction is in force
    assert len(be.instructions) == 30 and all(v.any() for v in be.instructions)
    events, be = run(policy={"safety_without_instruction": False})
    assert alerts(events, "smoke_alarm") == [] and be.calls == 30
    # without an instruction there is nothing to undo: one step per chunk
    bundle = load_bundle(runtime_fake_bundle)
    be = ScriptedBackend(bundle, script)
    _, events = run_chunks(Engine.from_bundle(bundle, backend=be, encoder=OnesEncoder()), 30)
    assert len(alerts(events, "smoke_alarm")) == 1 and be.calls == 30


def test_no_safety_recheck_for_a_model_whose_events_ignore_the_instruction(runtime_fake_bundle,
                                                                            tmp_path):
    """A bundle whose manifest says ``model.architecture.event_branch`` (events from a decide
    branch without the instruction, experiment v0.9) runs one step per chunk even while an
    instruction is in force; a malformed flag is refused by name."""
    root = tmp_path / "branch"
    shutil.copytree(runtime_fake_bundle, root)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["model"].setdefault("architecture", {})["event_branch"] = True
    (root / "manifest.json").write_text(json.dumps(manifest))

    bundle = load_bundle(root)
    assert not bundle.events_read_instruction
    assert load_bundle(runtime_fake_bundle).events_read_instruction
    be = ScriptedBackend(bundle, lambda chunk, feeds: {})
    engine = Engine.from_bundle(bundle, backend=be, encoder=OnesEncoder())
    assert engine.safety_recheck.size == 0
    run_chunks(engine, 12, instruction="tell me if the doorbell rings")
    assert be.calls == 12
    manifest["model"]["architecture"]["event_branch"] = "yes"
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="event_branch = 'yes' must be true or false"):
        load_bundle(root)


# ---------------------------------------------------------------------------- caption gate

def sure_of(frames, p, vocab=VOCAB):
    """CTC log-probs whose argmax is ``frames`` (None = blank) with posterior ``p`` per frame."""
    lp = np.full((len(frames), len(vocab)), np.log((1 - p) / (len(vocab) - 1)), np.float32)
    for i, tok in enumerate(frames):
        lp[i, 0 if tok is None else vocab.index(tok)] = np.log(p)
    return lp


def test_caption_confidence_is_the_mean_posterior_of_the_letter_frames():
    dec = CaptionDecoder(VOCAB)
    assert dec.confidence == 0.0  # no letter yet
    dec.accept(sure_of([None, None], 0.99), 0)  # blanks do not count, however sure
    assert dec.confidence == 0.0
    dec.accept(sure_of(["h", "h", "i"], 0.9), 2)  # a repeated frame is still a letter frame
    dec.accept(sure_of([None, "i"], 0.3), 5)
    assert dec.text == "hii"
    assert dec.confidence == pytest.approx((3 * 0.9 + 0.3) / 4, abs=1e-6)
    dec.new_utterance()
    assert dec.confidence == 0.0
    # the new utterance's first frame repeats the old last letter: that emission belonged to
    # the previous utterance, so neither its text nor its posterior counts
    dec.accept(sure_of(["i", None, "o"], 0.5), 7)
    assert dec.text == "o" and dec.confidence == pytest.approx(0.5, abs=1e-6)


def _gated_run(bundle_path, p, n_chunks=14, sound=0.9, **kw):
    """Letters "i ie ie" at posterior ``p`` from chunk 2, while a doorbell (not a safety
    label, no instruction: no alert) sounds at probability ``sound`` (threshold 0.5)."""
    frames = spell("i ie ie") + [None] * 4
    lp = sure_of(frames, p, VOCAB)

    def script(i, feeds):
        j = i - 2
        if 0 <= 4 * j < len(lp) - 3:
            return {"ctc_logprobs": lp[4 * j:4 * j + 4], "events": {"doorbell": sound}}
        return {}

    engine = make_engine(bundle_path, script, **kw)
    stream, events = run_chunks(engine, n_chunks)
    return engine, stream, events


def test_a_caption_the_model_is_unsure_of_is_dropped_and_counted(runtime_fake_bundle):
    _, stream, events = _gated_run(runtime_fake_bundle, 0.4, policy={"caption_confidence": 0.58})
    caps = [e for e in events if e["type"] == "caption"]
    partials, finals = [c for c in caps if not c["final"]], [c for c in caps if c["final"]]
    assert partials == []  # held back: what the gate would drop is not shown live either
    assert len(finals) == 1
    f = finals[0]
    assert f["text"] == "" and f["dropped"] == "low_confidence" and f["draft"] == "i ie ie"
    assert f["confidence"] == pytest.approx(0.4, abs=1e-3)
    res = stream.get_result()
    assert res.captions == [] and res.captions_dropped == 1
    assert stream.stats_event()["captions_dropped"] == 1
    # the same letters written with confidence are a caption like any other
    _, stream, events = _gated_run(runtime_fake_bundle, 0.9, policy={"caption_confidence": 0.58})
    res = stream.get_result()
    assert [c["text"] for c in res.captions] == ["i ie ie"] and res.captions_dropped == 0
    assert res.captions[0]["confidence"] == pytest.approx(0.9, abs=1e-3)
    assert "dropped" not in res.captions[0] and res.captions[0]["over_sound"]
    # unsure letters with no sound heard are kept: real speech in a voice the model knows
    # badly is still speech
    _, stream, events = _gated_run(runtime_fake_bundle, 0.4, sound=0.3,
                                   policy={"caption_confidence": 0.58})
    res = stream.get_result()
    assert [c["text"] for c in res.captions] == ["i ie ie"] and res.captions_dropped == 0
    assert res.captions[0]["over_sound"] is False
    assert [c["text"] for c in events if c["type"] == "caption" and not c["final"]][-1] == \
        "i ie ie"  # and its partials are shown as they come
    assert not [e for e in events if e["type"] == "alert"]
    # and with the gate off (the default without a manifest value) nothing is dropped
    _, stream, _ = _gated_run(runtime_fake_bundle, 0.4)
    assert [c["text"] for c in stream.get_result().captions] == ["i ie ie"]


def test_the_caption_gate_comes_from_the_manifest_unless_named(runtime_fake_bundle):
    path = runtime_fake_bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["thresholds"]["caption_confidence"] = 0.58
    path.write_text(json.dumps(manifest))
    engine, stream, _ = _gated_run(runtime_fake_bundle, 0.4)
    assert engine.new_policy().caption_confidence == 0.58
    assert stream.get_result().captions_dropped == 1
    engine, stream, _ = _gated_run(runtime_fake_bundle, 0.4, policy={"caption_confidence": 0.0})
    assert engine.new_policy().caption_confidence == 0.0
    assert stream.get_result().captions_dropped == 0
    manifest["thresholds"]["caption_confidence"] = 1.5
    path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"thresholds.caption_confidence = 1.5 must be in"):
        load_bundle(runtime_fake_bundle)
    with pytest.raises(ConfigError, match="policy.caption_confidence = -0.1"):
        PolicyConfig(caption_confidence=-0.1).validate()
    assert PolicyConfig.parse_settings(["caption_confidence=0.5"]) == {"caption_confidence": 0.5}


def test_a_dropped_caption_never_reaches_the_second_pass(runtime_fake_bundle):
    heard = []

    class CountingWhisper:
        def transcribe(self, samples):
            heard.append(len(samples))
            return "hey aim what time is it"

    _, stream, events = _gated_run(runtime_fake_bundle, 0.4, second_pass=CountingWhisper(),
                                   policy={"caption_confidence": 0.58})
    assert heard == []  # Whisper would have heard words in the siren; it is not asked
    finals = [e for e in events if e["type"] == "caption" and e["final"]]
    assert len(finals) == 1 and finals[0]["dropped"] == "low_confidence"
    assert not [e for e in events if e["type"] == "answer"]
    _, stream, events = _gated_run(runtime_fake_bundle, 0.9, second_pass=CountingWhisper(),
                                   policy={"caption_confidence": 0.58})
    assert len(heard) == 1
    assert [c["text"] for c in stream.get_result().captions] == ["hey aim what time is it"]


def test_the_console_takes_a_dropped_captions_partial_off_the_screen():
    import io

    from aim_edge.respond import ConsoleResponder

    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    con = ConsoleResponder(out, color=False)
    base = {"t": 1.0, "latency_ms": 1.0, "start_s": 0.5, "end_s": 1.0}
    con.emit({"type": "caption", **base, "final": False, "text": "i ie"})
    assert out.getvalue().endswith("i ie …")
    con.emit({"type": "caption", **base, "final": True, "text": "", "draft": "i ie",
              "dropped": "low_confidence"})
    assert out.getvalue().endswith("\r\x1b[2K")  # the line is cleared, nothing printed
    con.emit({"type": "caption", **base, "final": True, "text": "hello"})
    assert out.getvalue().endswith("[   1.00s] hello\n")
    # one erase to draw the partial, one to take it off; none for "hello" (nothing to clear)
    assert out.getvalue().count("\r\x1b[2K") == 2


def test_the_name_drafted_without_its_first_letter_before_a_question_word():
    from aim_edge.instructions import find_wake_phrase
    from aim_edge.policy import WH_WORDS

    def find(draft):
        return find_wake_phrase(draft, tolerance=0.25, question_words=WH_WORDS)

    assert find("glina im what's tel plimes iwn") == "what's tel plimes iwn"
    assert find("hhina im when des the cark lopen") == "when des the cark lopen"
    assert find("lin meim what's then plius forty") == "what's then plius forty"  # glued
    assert find("ainim when does the bach hopen") == "when does the bach hopen"
    # "I'm" drafted as "im" before anything but a question word is ordinary speech, and so
    # are words that end in those letters (a review found "call him when ..." answered)
    assert find("hi im hungry what's for dinner") is None
    assert find("i'm going to the shop") is None
    assert find("please call him when the doorbell rings") is None
    assert find("tell tim what to do") is None
    assert find("we can swim when it is warm") is None
    assert find("the victim who called") is None
    assert find("glina im is it late") is None  # only before a wh-word
    # without question words the rule is off
    assert find_wake_phrase("glina im what's tel", tolerance=0.25) is None


def _keyword_alerts_for(runtime_fake_bundle, draft, keyword, **policy):
    script = spelled_from(spell(draft), 3)
    engine = make_engine(runtime_fake_bundle, script, policy=policy or None)
    _, events = run_chunks(engine, 20, instruction=f"tell me when someone says {keyword}")
    return alerts(events, f"keyword:{keyword}")


def test_a_keyword_is_a_whole_word_not_the_start_of_a_longer_one(runtime_fake_bundle):
    # the draft's "bus" is complete for one chunk before "iness" follows: neither the
    # caption match nor the spotter may take the prefix for the word
    assert _keyword_alerts_for(runtime_fake_bundle, "the business is closed", "bus") == []
    # before keyword_settle_s the prefix alerted (the behaviour this replaced)
    old = _keyword_alerts_for(runtime_fake_bundle, "the business is closed", "bus",
                              keyword_settle_s=0)
    assert len(old) == 1


def test_a_keyword_alerts_once_the_next_word_starts_or_the_draft_pauses(runtime_fake_bundle):
    kw = _keyword_alerts_for(runtime_fake_bundle, "the bus is late", "bus")
    assert len(kw) == 1 and kw[0]["start_s"] == pytest.approx(3 * 0.16)
    # "the bus" = 7 frames: chunks 3-4; the space after it comes in chunk 5 at the latest
    assert kw[0]["t"] <= chunk_end_s(5) + 1e-6
    # the last word of an utterance: alerted after the pause, within a chunk or two
    kw = _keyword_alerts_for(runtime_fake_bundle, "we take the bus", "bus")
    assert len(kw) == 1 and chunk_end_s(6) < kw[0]["t"] <= chunk_end_s(8) + 1e-6


def test_a_wake_phrase_said_alone_addresses_the_speech_after_the_pause(runtime_fake_bundle):
    # "Okay aim," then 13 blank frames (0.52 s: the name is checked alone, nothing to do),
    # then the question, which carries no wake phrase of its own; speak-now confirms it
    frames = spell("okay ar") + [None] * 13 + spell(" what time is it")

    def answers(**policy):
        script = spelled_from(frames, 2, speak=0.95)
        with make_engine(runtime_fake_bundle, script, policy=policy or None) as engine:
            _, events = run_chunks(engine, 40)
        return [(a["question"], a["source"]) for a in events if a["type"] == "answer"]

    assert answers() == [("what time is it", "wake_phrase")]
    assert answers(wake_alone_s=0) == []  # the behaviour this replaced
    # too long after the name, the speech is not addressed any more
    late = spell("okay ar") + [None] * 138 + spell(" what time is it")  # 5.5 s later
    script = spelled_from(late, 2, speak=0.95)
    with make_engine(runtime_fake_bundle, script) as engine:
        _, events = run_chunks(engine, 70)
    assert [e for e in events if e["type"] == "answer"] == []


def test_a_keyword_at_the_very_end_of_the_input_alerts(runtime_fake_bundle):
    # "bus" is the last word and the input ends one frame after it: no next word, no pause
    # of keyword_settle_s; the end of the utterance ends the word (a review found it lost)
    kw, _ = _keyword_alerts_for_chunks(runtime_fake_bundle, "we take the bus", "bus", 7)
    assert len(kw) == 1 and kw[0]["start_s"] == pytest.approx(3 * 0.16)


def _keyword_alerts_for_chunks(bundle, draft, keyword, n_chunks, **kw):
    engine = make_engine(bundle, spelled_from(spell(draft), 3))
    _, events = run_chunks(engine, n_chunks, instruction=f"tell me when someone says {keyword}",
                           **kw)
    return alerts(events, f"keyword:{keyword}"), events


def test_a_new_instruction_drops_a_keyword_hit_still_settling(runtime_fake_bundle):
    # "the bus" ends in chunk 4; its pause settles in chunk 5, after the instruction changed
    kept, _ = _keyword_alerts_for_chunks(runtime_fake_bundle, "the bus", "bus", 12)
    assert len(kept) == 1
    moved, events = _keyword_alerts_for_chunks(
        runtime_fake_bundle, "the bus", "bus", 12,
        at={5: "tell me when someone says train"})
    assert moved == [] and alerts(events) == []


def test_a_spotted_keyword_whose_last_letter_the_draft_writes_late_alerts(
        runtime_fake_bundle):
    # the draft writes "the bvs is" (no caption match); the spotter reads b-u-s with its
    # last letter's frame mostly blank, so the draft's "s" comes one frame after the hit:
    # the keyword's own letter, not a longer word
    rows = [{ch: 0.99} for ch in "the b"] + [{"v": 0.5, "u": 0.45},
                                              {"<blank>": 0.53, "s": 0.45}]
    rows += [{ch: 0.99} for ch in "s is"] + [{"<blank>": 0.99}] * 9
    lp = np.full((len(rows), len(VOCAB)), np.log(1e-4), np.float32)
    for i, row in enumerate(rows):
        for tok, p in row.items():
            lp[i, VOCAB.index(tok)] = np.log(p)

    def script(i, feeds):
        j = i - 3
        return {"ctc_logprobs": lp[4 * j:4 * j + 4]} if 0 <= 4 * j < len(lp) else {}

    engine = make_engine(runtime_fake_bundle, script)
    _, events = run_chunks(engine, 12, instruction="tell me when someone says bus")
    finals = [e["text"] for e in events if e["type"] == "caption" and e["final"]]
    assert finals == ["the bvs is"]
    kw = alerts(events, "keyword:bus")
    assert len(kw) == 1 and kw[0]["source"] == "kws"
    # the same late letter followed by more letters is a longer word: not alerted
    rows[7:] = [{ch: 0.99} for ch in "sy is"] + [{"<blank>": 0.99}] * 8
    lp[:] = np.log(1e-4)
    for i, row in enumerate(rows):
        for tok, p in row.items():
            lp[i, VOCAB.index(tok)] = np.log(p)
    engine = make_engine(runtime_fake_bundle, script)
    _, events = run_chunks(engine, 12, instruction="tell me when someone says bus")
    assert alerts(events, "keyword:bus") == []


def test_a_bare_wake_phrase_addresses_only_the_next_stretch_of_speech(runtime_fake_bundle):
    # "okay ar", a pause, a request with its own wake phrase (answered), a pause, "thanks":
    # the bare name's window ended with the second stretch, so "thanks" is nobody's question
    frames = (spell("okay ar") + [None] * 13 + spell(" okay ar what time is it") + [None] * 13
              + spell(" thanks"))
    spelled = spelled_from(frames, 2)

    def script(i, feeds):
        return {**spelled(i, feeds), "speak": 0.95}  # speak-now confirms every stretch

    with make_engine(runtime_fake_bundle, script) as engine:
        _, events = run_chunks(engine, 50)
    answers = [a["question"] for a in events if a["type"] == "answer"]
    assert answers == ["what time is it"]
