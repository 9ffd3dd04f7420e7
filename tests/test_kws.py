"""The CTC keyword spotter on hand-made posteriors with known answers."""

import numpy as np
import pytest

from aim_edge.errors import ConfigError
from aim_edge.kws import CtcKeywordSpotter

VOCAB = ("<blank>", " ", "'", *"abcdefghijklmnopqrstuvwxyz")


def _frames(spec: list[tuple[str, float]]) -> np.ndarray:
    """One frame per (char, posterior); the rest of the mass on blank."""
    lp = np.full((len(spec), len(VOCAB)), np.log(1e-6))
    for i, (ch, p) in enumerate(spec):
        if ch == "_":
            lp[i, 0] = np.log(0.999)
        else:
            lp[i, VOCAB.index(ch)] = np.log(p)
            lp[i, 0] = np.log(1 - p)
    return lp


def test_fires_once_on_the_letters_in_order_with_the_geometric_mean_score():
    kws = CtcKeywordSpotter(VOCAB, ["seven"], threshold=0.5)
    lp = _frames([("_", 0), ("s", .9), ("e", .8), ("_", 0), ("v", .7), ("e", .9), ("n", .6),
                  ("_", 0), ("_", 0)])
    hits = kws.accept(lp, first_frame=100)
    assert len(hits) == 1
    h = hits[0]
    assert h.keyword == "seven" and (h.start_frame, h.end_frame) == (101, 106)
    assert h.score == pytest.approx((.9 * .8 * .7 * .9 * .6) ** (1 / 5), rel=1e-9)


def test_letters_out_of_order_or_too_weak_do_not_fire():
    kws = CtcKeywordSpotter(VOCAB, ["seven"], threshold=0.5)
    assert kws.accept(_frames([("n", .9), ("e", .9), ("v", .9), ("e", .9), ("s", .9)])) == []
    kws.reset()
    assert kws.accept(_frames([("s", .3), ("e", .3), ("v", .3), ("e", .3), ("n", .3)])) == []


def test_a_match_spread_over_too_long_a_time_expires():
    kws = CtcKeywordSpotter(VOCAB, ["six"], threshold=0.5, frames_per_char=2, min_frames=6)
    spread = [("s", .9)] + [("_", 0)] * 10 + [("i", .9), ("x", .9)]
    assert kws.accept(_frames(spread)) == []
    kws.reset()
    assert len(kws.accept(_frames([("s", .9), ("_", 0), ("i", .9), ("x", .9)]))) == 1


def test_streaming_in_pieces_equals_one_pass():
    rng = np.random.default_rng(0)
    lp = np.log(rng.dirichlet(np.full(len(VOCAB), 0.05), size=400) + 1e-12)
    words = ["seven", "three", "tea"]
    one = CtcKeywordSpotter(VOCAB, words, threshold=0.3).accept(lp)
    piecewise = CtcKeywordSpotter(VOCAB, words, threshold=0.3)
    got = [h for k in range(0, 400, 4) for h in piecewise.accept(lp[k:k + 4])]
    assert got == one and len(one) > 0


def test_bad_configuration_is_named():
    with pytest.raises(ConfigError, match="not in the model's CTC vocabulary"):
        CtcKeywordSpotter(VOCAB, ["café"])
    with pytest.raises(ConfigError, match="must be in"):
        CtcKeywordSpotter(VOCAB, ["seven"], threshold=0.0)
    with pytest.raises(ValueError, match="expected"):
        CtcKeywordSpotter(VOCAB, ["seven"]).accept(np.zeros((3, 5)))


# ------------------------------------------------------------------ in the decision policy

def _quiet_letters(word: str, p: float, vocab) -> np.ndarray:
    """One frame per letter with posterior p < 0.5: greedy CTC reads only blanks."""
    lp = np.full((len(word), len(vocab)), np.log(1e-4), np.float32)
    for i, ch in enumerate(word):
        lp[i, vocab.index(ch)] = np.log(p)
        lp[i, 0] = np.log(1 - p)
    return lp


def _run_policy(bundle_path, kws_threshold):
    from runtime_helpers import ScriptedBackend, samples_for_chunks

    from aim_edge.bundle import load_bundle
    from aim_edge.engine import Engine
    from aim_edge.policy import PolicyConfig

    bundle = load_bundle(bundle_path)
    lp = _quiet_letters("seven", 0.45, list(bundle.vocab))
    n_ctc = bundle.chunk_frames // bundle.subsampling
    frames = np.concatenate([lp, np.tile(_quiet_letters("a", 1e-3, list(bundle.vocab)),
                                         (2 * n_ctc - len(lp), 1))])

    def script(i, feeds):
        j = i - 3
        return {"ctc_logprobs": frames[n_ctc * j:n_ctc * (j + 1)]} if j in (0, 1) else {}

    engine = Engine.from_bundle(bundle, backend=ScriptedBackend(bundle, script),
                                policy=PolicyConfig(kws_threshold=kws_threshold))
    with engine:
        stream = engine.create_stream(instruction="tell me when someone says seven")
        stream.accept_waveform(16000, np.zeros(samples_for_chunks(12), np.float32))
        stream.input_finished()
        events = []
        while stream.is_ready():
            events.extend(stream.decode())
    return events


def test_the_policy_spots_a_keyword_the_greedy_caption_misses(runtime_fake_bundle):
    events = _run_policy(runtime_fake_bundle, 0.4)
    assert not [e for e in events if e["type"] == "caption"]  # greedy read nothing
    kw = [e for e in events if e["type"] == "alert" and e["label"] == "keyword:seven"]
    assert len(kw) == 1 and kw[0]["source"] == "kws"
    assert kw[0]["score"] == pytest.approx(0.45, rel=1e-4)
    assert kw[0]["start_s"] <= kw[0]["t"]


def test_kws_threshold_zero_turns_the_spotter_off(runtime_fake_bundle):
    assert not [e for e in _run_policy(runtime_fake_bundle, 0.0) if e["type"] == "alert"]


def test_evaluation_counts_spotted_keywords_and_false_accepts():
    from types import SimpleNamespace

    from calibration.metrics import keyword_spotting

    n_chunks, ec = 40, 4
    lp = np.full((n_chunks * ec, len(VOCAB)), np.log(1e-4))
    lp[:, 0] = 0.0
    lp[4 * ec:4 * ec + 5] = _frames([("t", .9), ("e", .9), ("a", .9), ("_", 0), ("_", 0)])
    # a segment without the keyword whose letters still go by: one false accept
    lp[24 * ec:24 * ec + 3] = _frames([("t", .8), ("e", .8), ("a", .8)])
    speech = [{"start": 0.6, "end": 1.2, "transcript": "tea is ready", "keywords": ["tea"]},
              {"start": 2.2, "end": 2.8, "transcript": "hello there"},
              {"start": 3.8, "end": 4.4, "transcript": "the end"}]
    stream = SimpleNamespace(record={"speech": speech}, n_chunks=n_chunks)
    r = keyword_spotting([stream], [{"ctc_logprobs": lp}], VOCAB, ec, threshold=0.5)
    assert (r["kws_recall"], r["kws_keywords"], r["kws_false_accepts"]) == (1.0, 1, 1)
    hours = 2 * 7 * 0.16 / 3600  # two segments of 7 chunks (to end + 0.3 s, rounded up) x 1 kw
    assert r["kws_false_accepts_per_keyword_hour"] == pytest.approx(1 / hours)
