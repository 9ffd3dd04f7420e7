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
