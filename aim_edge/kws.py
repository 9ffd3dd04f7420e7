"""Keyword spotting on the student's CTC output, restricted to the instruction's keywords.

Greedy CTC captions of real voices are rough (a character error rate of tens of percent), so
"tell me when someone says seven" rarely finds the exact word ``seven`` in them. A keyword
spotter asks a narrower question of the same per-frame log-probabilities: *did the letters of
this keyword go by, in order, within about the time it takes to say it?*

For a keyword of characters ``c_1 .. c_n`` it keeps, per prefix length ``i``, the best sum of
log-posteriors of ``c_1 .. c_i`` taken at strictly increasing encoder frames, all within
``max_frames`` of the first one (the max-pooling keyword decoder of WeKws, bounded in time)::

    S_t[0] = 0
    S_t[i] = max(S_{t-1}[i], S_{t-1}[i-1] + log p_t(c_i))   (spans > max_frames expire)

The keyword fires when ``exp(S_t[n] / n)`` — the geometric mean of the letters' best
posteriors — reaches the threshold; then its state resets so one utterance fires once. It is
causal (one pass, O(n) per frame per keyword), uses only numpy, and runs on the decide thread
beside the greedy caption decoder.

The threshold is an operating point: ``benchmarks/bench_kws.py`` measures recall and false
accepts per hour against it on real recorded digits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from .errors import ConfigError

__all__ = ["DEFAULT_KWS_THRESHOLD", "CtcKeywordSpotter", "KeywordHit"]

#: Geometric-mean letter posterior at which a keyword fires (see bench_kws for its trade-off).
DEFAULT_KWS_THRESHOLD = 0.5

_NEG = -np.inf


@dataclasses.dataclass(frozen=True)
class KeywordHit:
    keyword: str
    score: float  # geometric mean of the letters' posteriors, 0..1
    start_frame: int  # absolute encoder frame of the first letter
    end_frame: int  # absolute encoder frame of the last letter


class _Keyword:
    def __init__(self, word: str, tokens: list[int], max_frames: int) -> None:
        self.word = word
        self.tokens = np.asarray(tokens, np.int64)
        self.max_frames = max_frames
        self.reset()

    def reset(self) -> None:
        n = len(self.tokens)
        self.score = np.full(n + 1, _NEG)
        self.score[0] = 0.0
        self.start = np.full(n + 1, -1, np.int64)


class CtcKeywordSpotter:
    """Streaming spotter for a set of keywords over ``(frames, vocab)`` CTC log-probs.

    Parameters
    ----------
    vocab : the model's CTC vocabulary (index ``blank`` is the blank); keywords are spelled
        with it, lower-cased; a keyword with a character outside it raises ConfigError.
    keywords : words to spot (at least 2 spellable characters each).
    threshold : geometric-mean letter posterior that fires a keyword, in (0, 1].
    frames_per_char, min_frames : the time limit of one keyword, ``max(min_frames,
        frames_per_char * len(word))`` encoder frames (40 ms each for the default model).
    """

    def __init__(self, vocab: Sequence[str], keywords: Iterable[str], *,
                 threshold: float = DEFAULT_KWS_THRESHOLD, blank: int = 0,
                 frames_per_char: int = 5, min_frames: int = 12) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ConfigError(f"keyword threshold {threshold} must be in (0, 1]")
        self.vocab = tuple(vocab)
        self.threshold = float(threshold)
        self._log_threshold = float(np.log(threshold))
        index = {v: i for i, v in enumerate(self.vocab) if i != blank}
        self.keywords: list[_Keyword] = []
        for word in keywords:
            w = str(word).lower().strip()
            missing = sorted({ch for ch in w if ch not in index})
            if missing:
                raise ConfigError(f"keyword {word!r}: characters {missing} are not in the "
                                  "model's CTC vocabulary; spell it with letters it knows")
            if len(w) < 2:
                raise ConfigError(f"keyword {word!r} is too short to spot (2+ letters)")
            max_frames = max(min_frames, frames_per_char * len(w))
            self.keywords.append(_Keyword(w, [index[ch] for ch in w], max_frames))
        self._frame = 0

    def reset(self) -> None:
        for kw in self.keywords:
            kw.reset()

    def accept(self, logprobs: np.ndarray, first_frame: int | None = None) -> list[KeywordHit]:
        """Consume ``(frames, vocab)`` log-probs (absolute first frame optional); hits."""
        lp = np.asarray(logprobs, np.float64)
        if lp.ndim != 2 or lp.shape[1] != len(self.vocab):
            raise ValueError(f"ctc log-probs have shape {lp.shape}; expected (frames, "
                             f"{len(self.vocab)})")
        if first_frame is not None:
            self._frame = int(first_frame)
        hits: list[KeywordHit] = []
        for row in lp:
            t = self._frame
            for kw in self.keywords:
                hit = self._step(kw, row, t)
                if hit is not None:
                    hits.append(hit)
            self._frame += 1
        return hits

    def _step(self, kw: _Keyword, row: np.ndarray, t: int) -> KeywordHit | None:
        score, start = kw.score, kw.start
        n = len(kw.tokens)
        # expire partial matches that began too long ago
        old = (start >= 0) & (t - start >= kw.max_frames)
        old[0] = False
        score[old] = _NEG
        start[old] = -1
        # extend prefixes, longest first so each frame is used by one letter of a path
        lp_tok = row[kw.tokens]
        for i in range(n, 0, -1):
            prev = score[i - 1]
            if prev == _NEG:
                continue
            cand = prev + lp_tok[i - 1]
            if cand > score[i]:
                score[i] = cand
                start[i] = t if i == 1 else start[i - 1]
        if score[n] >= n * self._log_threshold:
            hit = KeywordHit(kw.word, float(np.exp(score[n] / n)), int(start[n]), t)
            kw.reset()
            return hit
        return None
