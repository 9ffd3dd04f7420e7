"""export.data: nothing leaks between train, dev and test; TTS renders are deterministic."""

import shutil
from collections import defaultdict
from dataclasses import replace

import numpy as np
import pytest

from export.data import scene, sources, speech, text
from export.data.labels import SPLITS
from export.data.splits import SPLIT_CODES, split_of, stratified


def _require(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}: apt-get install {' '.join(missing)}")


def _disjoint(groups: dict[str, set]) -> None:
    names = list(groups)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = groups[a] & groups[b]
            assert not both, f"{a} and {b} share {sorted(both)[:5]}"


def test_sentences_are_disjoint_and_every_split_has_each_kind():
    groups = {}
    for s in SPLITS:
        texts = set()
        for cat in ("everyday", "question", "keyword", "lookalike"):
            bank = text.sentences(s, cat)
            assert len(bank) >= 20, (s, cat, len(bank))
            texts |= {x.text.lower() for x in bank}
        for kw in text.KEYWORDS:
            assert text.keyword_sentences(s, kw), (s, kw)
        groups[s] = texts
    _disjoint(groups)


def test_instruction_paraphrases_are_disjoint_and_present_in_every_split():
    for family, templates in text.all_instruction_templates().items():
        per = {s: set(text.instruction_templates(s, family)) for s in SPLITS}
        _disjoint(per)
        assert set().union(*per.values()) == set(templates)
        for s in SPLITS:
            assert per[s], (family, s)
        assert len(per["train"]) > len(per["test"])


def test_voices_speakers_are_disjoint():
    _require("espeak-ng", "flite", "festival")
    voices = speech.list_voices(speech.DEFAULT_ENGINES)
    by_split_speaker = defaultdict(set)
    by_split_voice = defaultdict(set)
    for v in voices:
        by_split_speaker[v.split].add(v.speaker)
        by_split_voice[v.split].add(v.voice_id)
    _disjoint(by_split_speaker)
    _disjoint(by_split_voice)
    for s in SPLITS:
        assert len(by_split_voice[s]) >= 20, s
    # one speaker in two engines stays in one split
    slt = {v.split for v in voices if v.speaker == "slt"}
    assert len(slt) == 1


def test_recordings_are_disjoint_files():
    _require("sox")
    recs = sources.list_recordings()
    if not recs:
        pytest.skip("no sound themes installed: apt-get install sound-theme-freedesktop "
                    "oxygen-sounds yaru-theme-sound deepin-sound-theme sound-icons gnome-audio")
    groups = defaultdict(set)
    for r in recs:
        groups[r.split].add(r.path)
        assert r.package and r.licence
    _disjoint(groups)
    assert groups["dev"] and groups["test"]


def test_seeds_differ_between_splits():
    assert len(set(SPLIT_CODES.values())) == 3
    seqs = {s: np.random.SeedSequence([0, SPLIT_CODES[s], 0]).generate_state(4).tobytes()
            for s in SPLITS}
    assert len(set(seqs.values())) == 3


def test_split_assignment_is_stable():
    # fixed values: a change here moves material between splits and must be deliberate
    assert split_of("sentence", "what time is it?") == split_of("sentence", "what time is it?")
    assert stratified("k", ["a", "b", "c", "d", "e", "f", "g"]) == stratified(
        "k", ["g", "f", "e", "d", "c", "b", "a"])
    assert sorted(stratified("k", ["a", "b"]).values()) == ["test", "train"]


def test_generated_streams_use_only_their_split(tmp_path):
    _require("espeak-ng", "flite", "festival", "sox")
    cfg = replace(scene.SceneConfig(), p_instruction=1.0, p_babble=1.0, p_lookalike=0.5)
    templates = {s: {f"{fam}:{t}" for fam in text.all_instruction_templates()
                     for t in text.instruction_templates(s, fam)} for s in SPLITS}
    for split in ("dev", "test"):
        _, rec = scene.make_stream(split, 4, 0, 40.0, cfg, None)
        assert rec["split"] == split
        for seg in rec["speech"]:
            assert seg["voice_split"] == split
            if seg["category"] in ("everyday", "keyword", "lookalike"):
                assert split_of("sentence", seg["transcript"].lower()) == split
        for iv in rec["instructions"]:
            tid = iv.get("template_id")
            if tid and not tid.startswith("cancel:"):
                assert tid in templates[split], tid
        for e in rec["events"]:
            if e["source"] == "recording":
                rec_split = {r.path: r.split for r in sources.list_recordings()}[e["file"]]
                assert rec_split == split


@pytest.mark.parametrize("engine", ["espeak-ng", "flite", "festival"])
def test_tts_renders_are_byte_identical(engine):
    _require(engine)
    voices = [v for v in speech.list_voices((engine,))]
    assert voices
    v = voices[0]
    params = speech.engine_params(np.random.default_rng(0), v)
    a = speech.render_bytes(v, "Hey aim, what time is it?", params, None)
    other = speech.render_bytes(v, "Something else entirely.", params, None)
    b = speech.render_bytes(v, "Hey aim, what time is it?", params, None)
    assert a == b and a != other


def test_shippable_only_uses_only_redistributable_sources():
    _require("espeak-ng", "flite", "festival", "sox")
    cfg = replace(scene.SceneConfig(), shippable_only=True, events_per_minute=10.0,
                  engines=speech.DEFAULT_ENGINES + speech.available_optional_engines())
    _, rec = scene.make_stream("train", 21, 0, 40.0, cfg, None)
    assert rec["shippable"] is True
    for seg in rec["speech"]:
        assert speech.ENGINE_INFO[seg["engine"]]["shippable"]
    by_path = {r.path: r for r in sources.list_recordings()}
    for e in rec["events"]:
        if e["source"] == "recording":
            assert by_path[e["file"]].shippable, e["file"]
    assert not any(r.shippable for r in sources.list_recordings()
                   if r.licence.startswith("unstated"))


def test_lookalikes_are_never_addressed_and_off_by_default():
    _require("espeak-ng", "flite", "festival", "sox")
    _, plain = scene.make_stream("dev", 7, 0, 60.0, scene.SceneConfig(), None)
    assert not [s for s in plain["speech"] if s["category"] == "lookalike"]
    cfg = replace(scene.SceneConfig(), p_lookalike=1.0, events=False)
    _, rec = scene.make_stream("dev", 7, 0, 60.0, cfg, None)
    look = [i for i, s in enumerate(rec["speech"]) if s["category"] == "lookalike"]
    assert look, [s["category"] for s in rec["speech"]]
    bank = {s.text for s in text.sentences("dev", "lookalike")}
    for i in look:
        seg = rec["speech"][i]
        assert seg["transcript"] in bank and not seg["is_addressed_to_assistant"]
        assert not [r for r in rec["responses"] if r["trigger"].get("index") == i
                    and r["trigger"]["type"] != "event"]


def test_bench_wake_confusables_stay_out_of_the_generated_lookalikes():
    from benchmarks.bench_wake import CONFUSABLE

    bank = {s.text.lower() for sp in SPLITS for s in text.sentences(sp, "lookalike")}
    assert len(bank) > 1000
    assert not bank & {c.lower() for c in CONFUSABLE}
