"""The decision policy: from per-chunk model outputs to captions, alerts and answers.

Inputs per chunk (160 ms): ``ctc_logprobs`` (frames, vocab) log-probabilities,
``speak_logit`` (1,), ``intent_logits`` (intents,), ``event_logits`` (events,). Probabilities
are ``sigmoid`` of the logits; the intent is the ``argmax`` of ``intent_logits``.

Alert rule (exact)
------------------
Per event label ``e`` with calibrated threshold ``on_e`` (manifest ``thresholds.events``) and
``off_e = max(on_e - hysteresis, 0.01)``:

* **activation (hysteresis)**: ``e`` becomes *active* at the first chunk with
  ``p_e >= on_e`` and stays active until a chunk with ``p_e < off_e``. The speak-now decision
  uses the same scheme with ``thresholds.speak_now``.
* ``e`` is **allowed** when, in this order:

  1. ``e`` is muted by the active instruction -> never;
  2. ``e`` is a safety class -> always (safety is on without any instruction);
  3. ``e`` is never a target (``other_sound``), or the instruction asks for emergencies or
     captions only -> never;
  4. the instruction names ``e`` ("tell me if the doorbell rings") -> yes;
  5. the model decides to speak: speak-now is active **and** the argmax intent is ``alert``
     -> yes;
  6. otherwise -> no.

* **one sound, one alert**: an activation of ``e`` that starts less than ``rearm_s`` after the
  previous activation of ``e`` ended continues the same sound (a smoke alarm's beeps and
  pauses, a siren's dips): it is not a new sound and does not alert again. ``e`` must stay
  below ``off_e`` for ``rearm_s`` before its next activation counts as a new sound. The pause
  is per label where the manifest says so (``thresholds.rearm_s``; ``python -m export.rearm``
  chooses it on dev scenes): a CO alarm's temporal-four pattern pauses 5 s between its bursts
  of beeps, a smoke alarm's temporal-three 1.5 s.
* **confirmation**: a sound alerts only once ``confirm_chunks`` of its chunks (per label,
  manifest ``thresholds.confirm_chunks``, default 1) reached ``p_e >= on_e``; a sound that
  never gets there never alerts. ``python -m export.confirm`` sets 2 for a label where, on dev
  scenes through the runtime, waiting removes false alerts and loses no detection (lone
  one-chunk spikes).
* An **alert fires** at the first chunk where ``e`` is active, confirmed, allowed, not yet
  alerted during this sound, and at least ``refractory_s`` (per label) after the previous
  alert of ``e``.
  So one sound gives at most one alert, and a label cannot re-alert within its refractory
  time. ``score`` = ``p_e`` at that chunk; ``start_s`` = start of the sound's first chunk.
* **Keywords**: when the instruction watches keywords ("tell me if someone says dinner"), a
  keyword appearing as a whole word in the current caption fires an alert labelled
  ``keyword:<word>`` (score 1.0, ``source`` ``keyword``, ``start_s`` = start of the
  utterance), once per utterance and subject to the refractory time. The CTC keyword spotter
  (:mod:`aim_edge.kws`) watches the same keywords on the raw CTC log-probs, so a keyword that
  the greedy caption misspells still fires (``source`` ``kws``, ``score`` = the spotter's
  letter-posterior mean, ``start_s`` = its first letter); ``kws_threshold = 0`` turns it off.
  When a second pass rewrites final captions, its text is matched too (``source``
  ``second_pass``, :meth:`DecisionPolicy.final_keyword_alerts`): a keyword the student's
  letters never spelled still fires, once the utterance has ended; the refractory time keeps
  a keyword that the student or the spotter already alerted from firing twice.

Answers: when speak-now rises past the bundle's calibrated speak-now threshold with argmax
intent ``answer`` or ``acknowledge``, an ``answer`` event is emitted (refractory
``answer_refractory_s``); with intent ``acknowledge`` (a spoken instruction) a rise past
``acknowledge_speak_threshold`` is enough, if that is lower. Speech that starts with a wake
phrase ("hey aim ...", matched loosely in the streaming model's draft, see ``wake_tolerance``;
confirmed by speak-now, ``wake_confirm_speak``) is addressed to the
assistant, checked at the first pause of ``wake_endpoint_s`` and again for speech after such a
pause; speak-now above ``wake_speak_threshold`` answers it sooner, once the draft has paused
``wake_speak_pause_s``. If the rest parses as an
instruction (:func:`~aim_edge.instructions.parse_instruction`) it becomes the new instruction
and is acknowledged, otherwise it is a question and gets an ``answer`` event unless the model
already answered during that utterance. Answer text comes from an ``answerer``: an object with
``answer(question, context)`` (the engine's default is :class:`aim_edge.answer.StateAnswerer`,
which replies from what the stream perceived: the last sound, the last caption, recent alerts,
the time) or a plain ``question -> str`` callable; without one it is ``""``. Acknowledgements
are ``"Okay."`` unless a plain callable is given. When a second pass rewrites final captions
(``defer_wake``), the wake phrase is looked for in the second pass's text instead of the
student's draft (:meth:`DecisionPolicy.addressed`, called by the stream). The policy keeps the
answerer's context (:attr:`DecisionPolicy.context`: recent sound activations, alerts; the
stream adds final captions).

Captions: greedy CTC decoding (argmax per encoder frame, repeats collapsed across chunk
boundaries, blanks dropped). The current utterance is emitted as a *partial* caption whenever
its text changes; it becomes *final* at an endpoint (``endpoint_s`` of consecutive blank frames
after text), after ``max_utterance_s``, or at the end of input. A second-pass recogniser
(Whisper, issue 9) can replace the text of final captions: see
:class:`~aim_edge.engine.SecondPass`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from .answer import AnswerContext, SoundSeen, call_answerer
from .config import _Config, _is_real
from .errors import ConfigError
from .instructions import (
    WAKE_PHRASES,
    InstructionMeaning,
    find_wake_phrase,
    match_wake_phrase,
    normalize_words,
    parse_instruction,
    strip_wake_phrase,
)
from .kws import DEFAULT_KWS_THRESHOLD, CtcKeywordSpotter
from .metrics import TIME_EPS_S  # the evaluation mirror's tolerance: the two must agree

__all__ = ["CaptionDecoder", "DecisionPolicy", "PolicyConfig", "ctc_greedy"]


#: field type (as the dataclass records it) -> parser and what the message calls its values
_NUMBER_PARSERS: dict[Any, tuple[Any, str]] = {
    float: (float, "a number"), "float": (float, "a number"),
    int: (int, "a whole number"), "int": (int, "a whole number"),
}


#: The question words a wake phrase found inside a draft may be followed by when the draft
#: dropped the name's first letter ("glina im what's ...": ``PolicyConfig.wake_inside``).
WH_WORDS = frozenset(
    "what what's whats when when's where where's who who's whose why how how's which".split())

#: Longest a speak-now answer waits for the draft to pause (seconds); speech that runs on
#: longer was not the end of a question (and an answer after that would be late anyway).
MODEL_ANSWER_WAIT_S = 2.0

#: Words a drafted question must start with to be answered before a second pass's text
#: (``PolicyConfig.wake_draft_questions``); anything else waits for the second pass.
QUESTION_WORDS = frozenset(
    "what what's whats when when's where where's who who's whose why how how's which is isn't"
    " are aren't was were do does doesn't did didn't can can't could will won't would should"
    " shall have has am".split())


@dataclasses.dataclass(frozen=True)
class PolicyConfig(_Config):
    """Options of the decision policy (thresholds themselves come from the bundle).

    Parameters
    ----------
    hysteresis : float
        ``off = on - hysteresis`` for every label and speak-now (manifest
        ``thresholds.hysteresis`` wins when present, unless the engine got this field by name:
        ``Engine.from_bundle(policy={...})``, ``aim-edge run --policy``).
    refractory_s : float
        Seconds after an alert during which the same label does not alert again (manifest
        ``thresholds.refractory_s``, a number or ``{label: seconds}``, wins per label, unless
        the field was given by name as for ``hysteresis``).
    rearm_s : float
        Seconds a label must stay inactive before its next activation is a new sound that may
        alert again; a shorter pause continues the same sound (0 = every activation is new).
        Chosen on the 2 h dev2 split through the runtime (``benchmarks/results/eval.md``):
        0 / 1.5 / 2 / 3 s gave 72 / 69 / 66 / 61 false alerts with the same 234 responses.
        Manifest ``thresholds.rearm_s`` (a number or ``{label: seconds}``, from
        ``python -m export.rearm``) wins per label, unless the field was given by name.
    answer_refractory_s : float
        Minimum seconds between two answers.
    endpoint_s : float
        Seconds of consecutive CTC blanks that end an utterance (final caption).
    wake_endpoint_s : float
        Seconds of blanks after which the speech so far is checked for a wake phrase (an
        answer or a spoken instruction), before the caption's own endpoint. Speech that goes
        on after such a pause is checked again on its own, so a question whose caption runs
        on into the next sentence is still answered, and in time. Captions (and the second
        pass's segments) still end at ``endpoint_s``. Off with a second pass, which reads the
        wake phrase from its final text.
    max_utterance_s : float
        An utterance longer than this is finalised anyway.
    wake_phrases : tuple of str
        Phrases that address the assistant at the start of a caption.
    wake_tolerance, wake_lead_chars, wake_name_words : float, int, int
        How loosely the streaming model's own draft may spell a wake phrase
        (:func:`aim_edge.instructions.match_wake_phrase`): edit distance per character of the
        phrase, stray characters before it, and how many leading words may end with the bare
        name instead. A second pass's text (real words) is always matched exactly. 0 / 0 / 0
        = exact matching only.
    wake_confirm_speak : float
        A wake phrase in the streaming model's draft counts only when
        speak-now reached this probability during the utterance (0 = no confirmation). The
        draft writes "hey aim" for "Hey, I'm home" too; speak-now mostly stays low for that
        (``benchmarks/results/wake.json``). A second pass's exact wake phrase needs no
        confirmation.
    wake_speak_threshold : float
        Answer as soon as speak-now reaches this probability while the current utterance's
        draft starts with a wake phrase, instead of waiting for the caption's endpoint or for
        the unconditioned speak-now threshold (1 = off). The wake phrase is the evidence that
        the speech is addressed; speak-now says when the question is over.
    wake_speak_pause_s : float
        ... but only once the draft has paused this long (seconds without a new letter;
        0 = at once). Speak-now sometimes passes ``wake_speak_threshold`` on the last word,
        and an answer then talks over the end of the question. The model's own answers
        (speak-now rising past the bundle's threshold with intent answer) wait for the same
        pause when letters are still coming (dev2: 3 of its 4 false answers came 0.03-0.14 s
        before the question ended).
    wake_draft_questions : bool
        With a second pass (which reads wake phrases from its final text, after the caption's
        endpoint and its own decoding), still answer a question that the draft starts with a
        wake phrase at the ``wake_endpoint_s`` pause, when speak-now confirmed it
        (``wake_confirm_speak``), its first word after the wake phrase is a question word
        (:data:`QUESTION_WORDS`) and nothing answered the utterance yet. Instructions, and
        drafts too garbled to tell, wait for the second pass's words. Speech that goes on
        after the pause is checked again on its own, so a question inside a caption that runs
        on is still answered in time (dev with Whisper: 37 -> 39 of 54 questions on time, no
        more false alerts).
    wake_inside : bool
        A wake phrase glued to the sentence before it, inside a running draft ("... next
        weekakay aim when does ...": :func:`aim_edge.instructions.find_wake_phrase`), also
        addresses the assistant when speak-now reached ``wake_speak_threshold`` in the
        utterance (the stricter of the two confirmations). The draft runs a question on from
        the sentence before when nobody pauses between them. Also the name drafted without
        its first letter right before a wh-word ("glina im what's ..."). A request found
        this way is always answered as a question, never taken as an instruction: what came
        before it was somebody else's sentence. Dev2 (2 h):
        questions answered on time 192 -> 205 of 242, false alerts 39 -> 39; dev 44 -> 45 of
        54, 9 -> 9; look-alike dev scenes 56 -> 60 of 72, false alerts 14 -> 15;
        ``bench_wake`` (isolated questions and look-alikes) unchanged.
    wake_alone_s : float
        A wake phrase said alone ("Okay aim," then a pause of ``wake_endpoint_s``) addresses
        the next stretch of speech checked within this many seconds: its whole draft is the
        request, confirmed by speak-now like any drafted wake phrase (0 = a wake phrase alone
        addresses nothing). People pause after the name; the draft then checks "okay ar" on
        its own and the question after it, without a wake phrase, was never answered. Dev2
        (2 h): questions answered on time 208 -> 210 of 242, false alerts 33 -> 33; dev and
        the look-alike dev scenes unchanged; 4 and 6 s gave the same counts. Only the very
        next stretch counts (any other speech checked in between ends the window), and the
        window runs to when that stretch is checked at its pause, so a question longer than
        the window after the wake phrase is not taken (with a second pass, which checks the
        whole utterance, the rule is not used).
    caption_confidence : float
        A final caption whose letters came while a sound was active (a label at or above its
        alert threshold) and whose letters' mean posterior
        (:attr:`CaptionDecoder.confidence`) is below this is dropped as not speech: the
        model wrote guesses over a siren or a beep. It is emitted with ``text`` "",
        ``dropped`` ("low_confidence") and its ``draft``, and neither reaches a second pass
        nor addresses the assistant (0 = keep every caption). Real speech the model is
        unsure of (other voices, other microphones) is kept while no sound is heard. The
        manifest's ``thresholds.caption_confidence`` (chosen on dev scenes by ``python -m
        export.caption_gate``) wins unless the field was given by name, as for ``hysteresis``.
    spoken_instructions : bool
        Let a caption "hey aim, <instruction>" replace the active instruction.
    keyword_settle_s : float
        A watched keyword is a whole word: it alerts once the draft has written the next word
        (a space after it) or paused this long after it, not while its last letter may still
        be the prefix of a longer word ("bus" in "business"). The spotter's hits wait the same
        way and are dropped when the draft's next letter continues the word (0 = alert at the
        first chunk the letters are there). Dev2 (2 h): responses on time 328 -> 329 of 462,
        false alerts 36 -> 33 (two spotted 'lunch' 0.03-0.05 s before the word had ended,
        a 'dinner' and a 'package' inside longer words); dev and the look-alike dev scenes
        unchanged; 0.08-0.24 s gave the same counts. The end of an utterance (too long, end
        of input) ends its last word too; a new instruction drops the hits it no longer
        watches.
    acknowledge_speak_threshold : float
        The model acknowledges a spoken instruction (intent ``acknowledge``) when speak-now
        rises past this, or past the bundle's calibrated speak-now threshold if that is lower;
        its answers and alerts keep the bundle's threshold (1 = the bundle's only). v0.8's
        speak-now on instructions it missed was 0.95-0.99 against 0.998. Dev2: acknowledged
        in the window 26 -> 27 of 50, look-alike dev scenes answers 60 -> 61 of 72, dev
        unchanged, false alerts unchanged on all three (0.98 to 0.90 gave the same counts).
        The same rule for the model's answers too gained 14 answers on dev2 but made 14 more
        false answers to look-alike speech ("Hey, I'm home") on the look-alike scenes, so
        answers do not get it.
    kws_threshold : float
        Letter-posterior mean at which the CTC keyword spotter fires a watched keyword
        (0 = spotter off, captions only); see ``benchmarks/results/kws.json`` for the trade-off.
    safety_without_instruction : bool
        While an instruction is in force, run the model a second time per chunk without it and
        give each safety label the higher of the two scores: the event head reads the
        instruction, and an unrelated one could hide a safety sound (v0.8 on the demo scene:
        a glass break at p 0.958 fell to 0.104 under "if the bell chimes or you hear a siren,
        let me know"; on dev2 it kept 2 smoke and 3 CO alarms for 1 more false alert,
        ``benchmarks/results/model.json`` -> ``instruction_effect_on_events_v0_8``). Costs one
        more model step per chunk while an instruction is active. Skipped for a bundle whose
        events do not read the instruction (``Bundle.events_read_instruction``).
    """

    _name: ClassVar[str] = "policy"

    hysteresis: float = 0.1
    refractory_s: float = 5.0
    rearm_s: float = 3.0
    answer_refractory_s: float = 2.0
    endpoint_s: float = 0.8
    wake_endpoint_s: float = 0.48
    max_utterance_s: float = 30.0
    wake_phrases: tuple[str, ...] = WAKE_PHRASES
    wake_tolerance: float = 0.25
    wake_lead_chars: int = 2
    wake_name_words: int = 3
    wake_confirm_speak: float = 0.9
    wake_speak_threshold: float = 0.99
    wake_speak_pause_s: float = 0.16
    wake_draft_questions: bool = True
    wake_inside: bool = True
    wake_alone_s: float = 4.0
    caption_confidence: float = 0.0
    spoken_instructions: bool = True
    kws_threshold: float = DEFAULT_KWS_THRESHOLD
    safety_without_instruction: bool = True
    keyword_settle_s: float = 0.16
    acknowledge_speak_threshold: float = 0.98

    def validate(self) -> None:
        if not _is_real(self.hysteresis) or not 0.0 <= self.hysteresis < 1.0:
            self._fail("hysteresis", self.hysteresis, "a number in [0, 1)")
        for name in ("refractory_s", "rearm_s", "answer_refractory_s"):
            v = getattr(self, name)
            if not _is_real(v) or v < 0:
                self._fail(name, v, "a number of seconds >= 0")
        for name in ("endpoint_s", "max_utterance_s", "wake_endpoint_s"):
            v = getattr(self, name)
            if not _is_real(v) or v <= 0:
                self._fail(name, v, "a positive number of seconds")
        if isinstance(self.wake_phrases, str) or not all(
                isinstance(p, str) and p.strip() for p in self.wake_phrases):
            self._fail("wake_phrases", self.wake_phrases, "a tuple of non-empty strings")
        if not _is_real(self.wake_tolerance) or not 0.0 <= self.wake_tolerance < 0.5:
            self._fail("wake_tolerance", self.wake_tolerance,
                       "a number in [0, 0.5): edits per character of the phrase (0 = exact)")
        for name in ("wake_lead_chars", "wake_name_words"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                self._fail(name, v, "a whole number >= 0 (0 = off)")
        if not _is_real(self.wake_confirm_speak) or not 0.0 <= self.wake_confirm_speak <= 1.0:
            self._fail("wake_confirm_speak", self.wake_confirm_speak,
                       "a probability in [0, 1] (0 = no confirmation)")
        if not _is_real(self.wake_speak_threshold) or not 0.0 < self.wake_speak_threshold <= 1.0:
            self._fail("wake_speak_threshold", self.wake_speak_threshold,
                       "a probability in (0, 1] (1 = off)")
        if not _is_real(self.wake_speak_pause_s) or not 0.0 <= self.wake_speak_pause_s <= 5.0:
            self._fail("wake_speak_pause_s", self.wake_speak_pause_s,
                       "seconds in [0, 5] (0 = answer at once)")
        if not _is_real(self.wake_alone_s) or not 0.0 <= self.wake_alone_s <= 30.0:
            self._fail("wake_alone_s", self.wake_alone_s,
                       "seconds in [0, 30] (0 = a wake phrase alone addresses nothing)")
        if not _is_real(self.caption_confidence) or not 0.0 <= self.caption_confidence < 1.0:
            self._fail("caption_confidence", self.caption_confidence,
                       "a mean letter posterior in [0, 1) (0 = keep every caption)")
        for name in ("spoken_instructions", "safety_without_instruction", "wake_draft_questions",
                     "wake_inside"):
            if not isinstance(getattr(self, name), bool):
                self._fail(name, getattr(self, name), "True or False")
        if not _is_real(self.keyword_settle_s) or not 0.0 <= self.keyword_settle_s <= 2.0:
            self._fail("keyword_settle_s", self.keyword_settle_s,
                       "seconds in [0, 2] (0 = alert as soon as the letters are there)")
        if not _is_real(self.kws_threshold) or not 0.0 <= self.kws_threshold <= 1.0:
            self._fail("kws_threshold", self.kws_threshold, "a number in [0, 1] (0 = off)")
        if (not _is_real(self.acknowledge_speak_threshold)
                or not 0.0 < self.acknowledge_speak_threshold <= 1.0):
            self._fail("acknowledge_speak_threshold", self.acknowledge_speak_threshold,
                       "a probability in (0, 1] (1 = the bundle's speak threshold only)")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PolicyConfig:
        data = dict(data or {})
        if "wake_phrases" in data and isinstance(data["wake_phrases"], list):
            data["wake_phrases"] = tuple(data["wake_phrases"])
        return super().from_dict(data)

    @classmethod
    def parse_settings(cls, items: Sequence[str]) -> dict[str, Any]:
        """``["refractory_s=10", "wake_phrases=hey aim,computer"]`` -> a validated field
        mapping (``aim-edge run --policy``). Numbers for the numeric fields, true/false for
        the switches, comma-separated phrases for ``wake_phrases``."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        out: dict[str, Any] = {}
        for item in items:
            name, sep, text = item.partition("=")
            name, text = name.strip(), text.strip()
            if not sep or not name:
                raise ConfigError(f"policy setting {item!r}: expected FIELD=VALUE, e.g. "
                                  f"refractory_s=10; fields: {', '.join(fields)}")
            if name not in fields:
                raise ConfigError(f"policy setting {item!r}: unknown field {name!r}; fields: "
                                  f"{', '.join(fields)}")
            if name == "wake_phrases":
                value: Any = tuple(p.strip() for p in text.split(","))
            elif fields[name].type in (bool, "bool"):
                flag = text.lower()
                if flag not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
                    raise ConfigError(f"policy setting {item!r}: expected true or false")
                value = flag in ("true", "yes", "1", "on")
            elif fields[name].type in _NUMBER_PARSERS:
                parse, kind = _NUMBER_PARSERS[fields[name].type]
                try:
                    value = parse(text)
                except ValueError:
                    raise ConfigError(f"policy setting {item!r}: {name} takes {kind}, "
                                      f"e.g. {name}={getattr(cls(), name)}") from None
            else:  # a field added without a parser here: refuse rather than guess
                raise ConfigError(f"policy setting {item!r}: {name} cannot be set from the "
                                  "command line")
            if name in out:
                raise ConfigError(f"policy setting {item!r}: {name} is given twice")
            out[name] = value
        cls.from_dict(out)  # validates every value, naming the field and its range
        return out


def _latched(active: bool, p: float, on: float, off: float) -> bool:
    """One hysteresis step: inactive turns active at ``p >= on``; active stays until
    ``p < off``."""
    return p >= off if active else p >= on


def _sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


def ctc_greedy(logprobs: np.ndarray, vocab: Sequence[str], blank: int = 0) -> str:
    """Greedy CTC decoding of a whole ``(frames, vocab)`` matrix (one-shot helper)."""
    dec = CaptionDecoder(vocab, blank=blank)
    dec.accept(np.asarray(logprobs), 0)
    return dec.text


class CaptionDecoder:
    """Streaming greedy CTC decoder for one utterance at a time.

    Frame indices are absolute encoder frames; the caller converts them to seconds.
    """

    def __init__(self, vocab: Sequence[str], blank: int = 0) -> None:
        self.vocab = tuple(str(v) for v in vocab)
        self.blank = blank
        self.reset()

    def reset(self) -> None:
        self.tokens: list[tuple[int, int]] = []  # (token id, frame index)
        self.last = self.blank  # previous frame's argmax, across chunk boundaries
        self.blank_run = 0  # consecutive frames without a token since the last token
        self._conf_sum, self._conf_n = 0.0, 0

    def new_utterance(self) -> None:
        """Forget the text but keep ``last`` so a repeat across the boundary still collapses."""
        self.tokens = []
        self.blank_run = 0
        self._conf_sum, self._conf_n = 0.0, 0

    def accept(self, logprobs: np.ndarray, first_frame: int) -> bool:
        """Consume ``(frames, vocab)`` log-probs; True when tokens were added."""
        if logprobs.ndim != 2 or logprobs.shape[1] != len(self.vocab):
            raise ValueError(f"ctc_logprobs has shape {logprobs.shape}; expected (frames,"
                             f" {len(self.vocab)})")
        best = np.argmax(logprobs, axis=1)
        peak = np.exp(logprobs[np.arange(best.shape[0]), best])
        added = False
        for j, a in enumerate(best.tolist()):
            if a == self.blank:
                self.blank_run += 1
            elif a != self.last:
                self.tokens.append((a, first_frame + j))
                self.blank_run = 0
                added = True
            else:
                self.blank_run = 0  # a repeated token continues the same emission
            if a != self.blank and (self.tokens or a != self.last):
                self._conf_sum += float(peak[j])
                self._conf_n += 1
            self.last = a
        return added

    @property
    def confidence(self) -> float:
        """Mean posterior of the letters' frames in this utterance (every frame whose argmax
        is not blank; 0 before the first letter). Speech the model knows scores high; the
        letters it writes over sirens, beeps and music are guesses and score low (v0.8 on
        dev: median 0.78 on speech captions, 0.49 on captions over no speech)."""
        return self._conf_sum / self._conf_n if self._conf_n else 0.0

    @property
    def text(self) -> str:
        s = "".join(self.vocab[t] for t, _ in self.tokens).replace("\u2581", " ")
        return re.sub(r"\s+", " ", s).strip()

    @property
    def first_frame(self) -> int:
        return self.tokens[0][1] if self.tokens else -1

    @property
    def last_frame(self) -> int:
        return self.tokens[-1][1] if self.tokens else -1


@dataclasses.dataclass
class ChunkInfo:
    """Where a chunk sits on the stream's timeline (seconds, dropped audio included)."""

    index: int
    start_s: float  # start of the chunk's first fbank frame
    end_s: float  # time of the chunk's last sample
    frame_s: float  # duration of one CTC (encoder) frame
    first_ctc_frame: int  # absolute index of the chunk's first CTC frame


def _mentioned(keywords: Sequence[str], text: str) -> list[str]:
    """The ``keywords`` that appear in ``text`` as whole words (case-insensitive)."""
    lowered = text.lower()
    return [kw for kw in keywords if re.search(rf"\b{re.escape(kw)}\b", lowered)]


class DecisionPolicy:
    """Per-stream decision state: activations, refractory clocks, captions, instruction.

    Parameters
    ----------
    vocab, events, intents : the bundle's labels (``intents[0]`` = stay silent).
    safety : safety event labels.
    speak_threshold, event_thresholds : calibrated ``on`` thresholds (probabilities).
    config : :class:`PolicyConfig`.
    refractory : per-label refractory seconds overriding ``config.refractory_s``.
    confirm : per-label number of chunks at or above threshold before a sound alerts
        (default 1: the first one).
    rearm : per-label re-arm pause (seconds) overriding ``config.rearm_s``.
    hysteresis : overrides ``config.hysteresis`` (from the manifest).
    caption_confidence : overrides ``config.caption_confidence`` (from the manifest).
    aliases : extra instruction phrases per event label.
    answerer : :class:`aim_edge.answer.StateAnswerer`-like object or ``question -> str``.
    """

    def __init__(self, *, vocab: Sequence[str], events: Sequence[str], intents: Sequence[str],
                 safety: Sequence[str], speak_threshold: float,
                 event_thresholds: Mapping[str, float], config: PolicyConfig | None = None,
                 refractory: Mapping[str, float] | None = None, hysteresis: float | None = None,
                 confirm: Mapping[str, int] | None = None,
                 rearm: Mapping[str, float] | None = None,
                 aliases: Mapping[str, Sequence[str]] | None = None,
                 answerer: Any = None, caption_confidence: float | None = None) -> None:
        self.config = config or PolicyConfig()
        if caption_confidence is not None:  # the manifest's value, checked like the field
            self.config = dataclasses.replace(self.config,
                                              caption_confidence=caption_confidence)
        self.config.validate()
        self.caption_confidence = float(self.config.caption_confidence)
        self.events = tuple(events)
        self.intents = tuple(intents)
        self.safety = frozenset(safety)
        self.never_target = frozenset({"other_sound"})
        self.aliases = dict(aliases or {})
        self.answerer = answerer
        #: leave wake-phrase handling of final captions to the caller (a second pass runs)
        self.defer_wake = False
        h = self.config.hysteresis if hysteresis is None else float(hysteresis)
        self.hysteresis = h
        self.on = np.array([float(event_thresholds[e]) for e in self.events], np.float64)
        self.off = np.maximum(self.on - h, 0.01)
        self.speak_on = float(speak_threshold)
        self.speak_off = max(self.speak_on - h, 0.01)
        #: the model acknowledging a spoken instruction: see acknowledge_speak_threshold
        self.ack_on = min(self.speak_on, float(self.config.acknowledge_speak_threshold))
        self.ack_off = max(self.ack_on - h, 0.01)
        ref = dict(refractory or {})
        self.refractory = np.array([float(ref.get(e, self.config.refractory_s))
                                    for e in self.events], np.float64)
        self.keyword_refractory = float(self.config.refractory_s)
        rearm = dict(rearm or {})
        for label, v in rearm.items():
            if label not in self.events:
                raise ValueError(f"rearm names unknown event label {label!r}; labels are"
                                 f" {', '.join(self.events)}")
            if (isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))
                    or not math.isfinite(v) or v < 0):
                raise ValueError(f"rearm[{label!r}] = {v!r}: give a number of seconds >= 0")
        self.rearm = np.array([float(rearm.get(e, self.config.rearm_s)) for e in self.events],
                              np.float64)
        conf = dict(confirm or {})
        for label, n in conf.items():
            if label not in self.events:
                raise ValueError(f"confirm names unknown event label {label!r}; labels are"
                                 f" {', '.join(self.events)}")
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"confirm[{label!r}] = {n!r}: give a whole number of chunks"
                                 " >= 1 (1 = alert at the first chunk above threshold)")
        self.confirm = np.array([int(conf.get(e, 1)) for e in self.events], np.int64)
        self._intent_alert = self._intent_index("alert")
        self._intent_ack = self._intent_index("acknowledge")
        self._intent_answer = {i for i in (self._intent_index("answer"), self._intent_ack)
                               if i is not None}
        self.captions = CaptionDecoder(vocab)
        self.vocab = tuple(vocab)
        self.spotter: CtcKeywordSpotter | None = None
        self.meaning = InstructionMeaning()
        self.reset()

    def _intent_index(self, name: str) -> int | None:
        return self.intents.index(name) if name in self.intents else None

    def reset(self) -> None:
        n = len(self.events)
        self.active = np.zeros(n, bool)
        self.alerted = np.zeros(n, bool)
        self.activation_start = np.zeros(n, np.float64)  # start of the current sound
        self.above = np.zeros(n, np.int64)  # chunks of the current sound at or above ``on``
        self.last_off = np.full(n, -math.inf)  # when the label's last activation ended
        self.last_alert = np.full(n, -math.inf)
        self.speaking = False
        self.acking = False  # speak-now at or above ack_on (with hysteresis)
        self.last_answer = -math.inf
        self.keyword_last: dict[str, float] = {}
        self.keywords_alerted: set[str] = set()
        self._kws_pending: list[tuple[Any, float, float]] = []  # spotter hits not yet said
        self.answered_utterance = False  # in the current wake segment (see wake_endpoint_s)
        self.utterance_speak_max = 0.0  # highest speak-now in the current wake segment
        self.utterance_over_sound = False  # letters came while a sound was active
        # drafted questions while a second pass runs (wake_draft_questions): where the current
        # segment starts in the draft, and the draft's length when it was checked (-1 = not)
        self._dq_start, self._dq_checked = 0, -1
        #: a speak-now answer waiting for the draft to pause: (intent, score, decided at)
        self._model_answer: tuple[str, float, float] | None = None
        self.segment_start = 0  # where the current wake segment starts in the caption's text
        self.segment_checked = -1  # caption length when it was checked at a pause; -1 = not
        self._wake_alone_t = -math.inf  # when a wake phrase was said alone, then a pause
        self.partial_text = ""
        self.utterance_start_s = 0.0
        self.captions.reset()
        self.last_probs: dict[str, Any] = {}
        self.context = AnswerContext()
        self._sound_open: dict[int, SoundSeen] = {}

    # ------------------------------------------------------------------ instruction
    def parse(self, text: str | None) -> InstructionMeaning:
        return parse_instruction(text, self.events, self.safety, aliases=self.aliases,
                                 never_target=self.never_target)

    def set_meaning(self, meaning: InstructionMeaning) -> None:
        self.meaning = meaning
        self.spotter = None
        # a spotter hit waiting for its word to end belongs to the old instruction
        self._kws_pending = [p for p in self._kws_pending
                             if p[0].keyword in meaning.target_keywords]
        thr = float(self.config.kws_threshold)
        if thr > 0:
            alphabet = set(self.vocab[1:])
            # words the CTC cannot spell (digits, accents) stay caption-matched only
            words = [w for w in meaning.target_keywords if len(w) >= 2 and set(w) <= alphabet]
            if words:
                self.spotter = CtcKeywordSpotter(self.vocab, words, threshold=thr)

    def allowed(self, label: str, speaking: bool, intent: int) -> str | None:
        """Why ``label`` may alert now (``safety``/``instruction``/``model``) or None."""
        m = self.meaning
        if label in m.muted_labels:
            return None
        if label in self.safety:
            return "safety"
        if label in self.never_target or m.intent in ("transcribe_only", "emergency_only"):
            return None
        if label in m.target_labels:
            return "instruction"
        if speaking and self._intent_alert is not None and intent == self._intent_alert:
            return "model"
        return None

    # ------------------------------------------------------------------ per chunk
    def step(self, outputs: Mapping[str, np.ndarray], chunk: ChunkInfo
             ) -> tuple[list[dict[str, Any]], list[str]]:
        """Decide on one chunk.

        Returns ``(events, instruction_requests)``: events without ``latency_ms`` (the stream
        stamps it when they are emitted), and texts that should become the new instruction
        (spoken instructions).
        """
        out: list[dict[str, Any]] = []
        requests: list[str] = []
        t = chunk.end_s
        p_events = _sigmoid(np.asarray(outputs["event_logits"]).reshape(-1))
        p_speak = float(_sigmoid(np.asarray(outputs["speak_logit"]).reshape(-1)[:1])[0])
        intent_logits = np.asarray(outputs["intent_logits"]).reshape(-1)
        intent = int(np.argmax(intent_logits)) if intent_logits.size else 0
        self.last_probs = {"speak": p_speak, "intent": intent, "events": p_events}

        # with a pause required, speak-now may have peaked on the question's last word
        wake_speak = (max(p_speak, self.utterance_speak_max) if self.config.wake_speak_pause_s > 0
                      else p_speak)
        # speak-now with hysteresis: the bundle's threshold lets the model's alerts through
        # (allowed()) and gives its answers on the rising edge; ack_on (never higher) gives
        # its acknowledgements of a spoken instruction
        was_speaking, was_acking = self.speaking, self.acking
        self.speaking = _latched(self.speaking, p_speak, self.speak_on, self.speak_off)
        self.acking = _latched(self.acking, p_speak, self.ack_on, self.ack_off)
        rose = ((self.speaking and not was_speaking and intent in self._intent_answer)
                or (self.acking and not was_acking and intent == self._intent_ack))
        if rose and t - self.last_answer >= self.config.answer_refractory_s:
            kind = self.intents[intent]
            pause = self.config.wake_speak_pause_s
            if (self.captions.tokens and pause > 0
                    and self.captions.blank_run * chunk.frame_s < pause - TIME_EPS_S):
                # speak-now rose on the question's last word: answer once the draft pauses,
                # not over the end of the question (see wake_speak_pause_s)
                self._model_answer = (kind, p_speak, t)
            else:
                question = self.captions.text or self.partial_text
                out.append(self._answer(t, kind, question, p_speak, "model"))
        elif (wake_speak >= self.config.wake_speak_threshold and not self.answered_utterance
              and self.captions.tokens and intent in self._intent_answer
              and self.captions.blank_run * chunk.frame_s
              >= self.config.wake_speak_pause_s - TIME_EPS_S
              and t - self.last_answer >= self.config.answer_refractory_s):
            rest, _ = self._wake_rest_in(self.captions.text[self.segment_start:], wake_speak)
            if rest is not None:
                out.append(self._answer(t, self.intents[intent], rest, p_speak, "wake_model"))

        # events: hysteresis, one alert per sound (re-arm gap), confirmation, allowance,
        # refractory
        at_on = p_events >= self.on  # labels at or above their alert threshold this chunk
        rising = (~self.active) & at_on
        falling = self.active & (p_events < self.off)
        self.active = (self.active | rising) & ~falling
        new_sound = rising & (chunk.start_s - self.last_off
                              >= self.rearm - TIME_EPS_S)
        self.activation_start[new_sound] = chunk.start_s
        self.alerted[new_sound] = False  # a continuation keeps the sound's alerted state
        self.above[new_sound] = 0
        self.above[self.active & at_on] += 1
        self.last_off[falling] = chunk.start_s
        self._track_sounds(rising, p_events, chunk)
        for i in np.flatnonzero(self.active & ~self.alerted & (self.above >= self.confirm)):
            label = self.events[i]
            why = self.allowed(label, self.speaking, intent)
            if why is None or t - self.last_alert[i] < self.refractory[i] - TIME_EPS_S:
                continue
            self.alerted[i] = True
            self.last_alert[i] = t
            out.append({"type": "alert", "t": t, "label": label, "score": float(p_events[i]),
                        "start_s": float(self.activation_start[i]),
                        "safety": label in self.safety, "source": why})
            self.context.alerts.append((t, label))

        # captions
        logprobs = np.asarray(outputs["ctc_logprobs"])
        logprobs = logprobs.reshape(-1, logprobs.shape[-1])
        had_text = bool(self.captions.tokens)
        wrote = self.captions.accept(logprobs, chunk.first_ctc_frame)
        if not had_text and self.captions.tokens:
            self.utterance_start_s = self._frame_time(self.captions.first_frame, chunk)
            self.answered_utterance = False
            self.utterance_speak_max = 0.0
            self.keywords_alerted = set()
            self.utterance_over_sound = False
        if wrote and bool(at_on.any()):
            self.utterance_over_sound = True  # letters written while a sound was heard
        if 0 <= self.segment_checked < len(self.captions.text):
            # speech went on after a checked pause: a new wake segment
            self.segment_start, self.segment_checked = self.segment_checked, -1
            self.answered_utterance = False
            self.utterance_speak_max = 0.0
        if self.captions.tokens:
            self.utterance_speak_max = max(self.utterance_speak_max, p_speak)
        text = self.captions.text
        pause_s = self.captions.blank_run * chunk.frame_s
        settle = float(self.config.keyword_settle_s)
        if self.captions.tokens and text != self.partial_text:
            self.partial_text = text
            if not self._letters_over_sound():  # what the gate would drop is not shown
                out.append(self._caption(t, False, chunk))
            if settle <= 0:
                out.extend(self._keyword_alerts(t, text))
        if settle > 0 and self.captions.tokens:
            # a word at the end of the draft may go on ("bus" -> "business"): it counts once
            # the next word started or the draft paused
            ended = (pause_s >= settle - TIME_EPS_S
                     or self.vocab[self.captions.tokens[-1][0]] in (" ", "\u2581"))
            done = text if ended else text[:max(text.rfind(" "), 0)]
            out.extend(self._keyword_alerts(t, done))
        # after the caption match, which wins when both see the word in the same chunk
        if self.spotter is not None:
            for hit in self.spotter.accept(logprobs, chunk.first_ctc_frame):
                start = self._frame_time(hit.start_frame, chunk)
                if settle > 0:
                    self._kws_pending.append((hit, start, t))
                else:
                    out.extend(self._keyword_alert(t, hit.keyword, hit.score, start, "kws"))
        if self._kws_pending:
            out.extend(self._pending_keywords(t, pause_s >= settle - TIME_EPS_S))
        if self._model_answer is not None:
            kind, score, t0 = self._model_answer
            if (t - self.last_answer < self.config.answer_refractory_s
                    or t - t0 > MODEL_ANSWER_WAIT_S):
                self._model_answer = None  # answered meanwhile, or the speech ran on
            elif (not self.captions.tokens
                  or pause_s >= self.config.wake_speak_pause_s - TIME_EPS_S):
                self._model_answer = None
                out.append(self._answer(t, kind, self.captions.text or self.partial_text,
                                        score, "model"))
        if (self.captions.tokens and not self.defer_wake and self.segment_checked < 0
                and pause_s >= min(self.config.wake_endpoint_s, self.config.endpoint_s)):
            self.segment_checked = len(text)
            out.extend(self.addressed(text[self.segment_start:], t, requests,
                                      answered=self.answered_utterance))
        if self.defer_wake and self.config.wake_draft_questions and self.captions.tokens:
            out.extend(self._drafted_question(text, pause_s, t))
        endpoint = pause_s >= self.config.endpoint_s
        too_long = (self.captions.tokens and
                    t - self.utterance_start_s >= self.config.max_utterance_s)
        if self.captions.tokens and (endpoint or too_long):
            out.extend(self._finalise(t, chunk, requests))
        return out, requests

    def flush(self, t: float, chunk: ChunkInfo | None) -> tuple[list[dict[str, Any]], list[str]]:
        """End of input: finalise the current utterance."""
        out: list[dict[str, Any]] = []
        requests: list[str] = []
        if self.captions.tokens:
            out.extend(self._finalise(t, chunk, requests))
        return out, requests

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _frame_time(frame: int, chunk: ChunkInfo | None) -> float:
        if chunk is None:
            return 0.0
        return chunk.start_s + (frame - chunk.first_ctc_frame) * chunk.frame_s

    def _drafted_question(self, text: str, pause_s: float, t: float) -> list[dict[str, Any]]:
        """``wake_draft_questions``: answer a drafted question at a pause while a second pass
        runs (the second pass then sees the utterance as answered)."""
        if 0 <= self._dq_checked < len(text):  # speech went on after a checked pause
            self._dq_start, self._dq_checked = self._dq_checked, -1
        # one answer per utterance: a second pass keeps no segments of its own
        if (self._dq_checked >= 0 or self.answered_utterance
                or pause_s < self.config.wake_endpoint_s):
            return []
        self._dq_checked = len(text)
        rest, _ = self._wake_rest_in(text[self._dq_start:], self.utterance_speak_max)
        if (not rest or self.utterance_speak_max < self.config.wake_confirm_speak
                or rest.split()[0] not in QUESTION_WORDS or self.parse(rest).intent != "none"):
            return []  # a garbled instruction ("tel me if the dorbel rings") is no question
        return [self._answer(t, "answer", rest, 1.0, "wake_phrase")]

    def _letters_over_sound(self) -> bool:
        """The caption gate (``PolicyConfig.caption_confidence``): the current utterance's
        letters came while a sound was active, and the model is unsure of them."""
        return self.utterance_over_sound and self.captions.confidence < self.caption_confidence

    def _caption(self, t: float, final: bool, chunk: ChunkInfo | None) -> dict[str, Any]:
        start = self.utterance_start_s
        end = self._frame_time(self.captions.last_frame + 1, chunk) if chunk else t
        end = min(end, t)  # frames of a padded last chunk reach past the audio
        start = min(start, end)
        return {"type": "caption", "t": t, "final": final, "text": self.captions.text,
                "start_s": float(start), "end_s": float(end),
                "confidence": round(self.captions.confidence, 4)}

    def _track_sounds(self, rising: np.ndarray, p: np.ndarray, chunk: ChunkInfo) -> None:
        """Keep the answerer's record of sound activations (alerted or not)."""
        self.context.now_s = chunk.end_s
        for i in np.flatnonzero(rising):
            seen = SoundSeen(self.events[i], chunk.start_s, chunk.end_s, float(p[i]))
            self._sound_open[int(i)] = seen
            self.context.sounds.append(seen)
        for i, seen in list(self._sound_open.items()):
            if self.active[i]:
                seen.end_s = chunk.end_s
                seen.peak = max(seen.peak, float(p[i]))
            else:
                del self._sound_open[i]

    def _answer(self, t: float, kind: str, question: str, score: float, source: str
                ) -> dict[str, Any]:
        self.last_answer = t
        self.answered_utterance = True
        self.context.now_s = max(self.context.now_s, t)
        if self.answerer is None or (kind == "acknowledge"
                                     and callable(getattr(self.answerer, "answer", None))):
            text = "Okay." if kind == "acknowledge" else ""
        else:
            text = call_answerer(self.answerer, question, self.context)
        return {"type": "answer", "t": t, "intent": kind, "text": text, "question": question,
                "score": float(score), "source": source}

    def _keyword_alerts(self, t: float, text: str) -> list[dict[str, Any]]:
        out = []
        for kw in _mentioned(self.meaning.target_keywords, text):
            out.extend(self._keyword_alert(t, kw, 1.0, self.utterance_start_s, "keyword"))
        return out

    def _pending_keywords(self, t: float, ended: bool) -> list[dict[str, Any]]:
        """Spotter hits held for ``keyword_settle_s``: each alerts once the draft wrote
        something after the keyword, paused (``ended``: also the end of the utterance) or a
        second passed -- unless the draft's next letter goes on with the word ("bus" in
        "business"). The greedy draft may write the keyword's own last letter a frame or two
        after the spotter's last frame; that letter is not a continuation."""
        out, keep = [], []
        for hit, start, t0 in self._kws_pending:
            after = [(tok, f) for tok, f in self.captions.tokens if f > hit.end_frame]
            if (after and after[0][1] <= hit.end_frame + 2
                    and self.vocab[after[0][0]] == hit.keyword[-1]):
                after = after[1:]  # the keyword's own last letter, written late
            if after and self.vocab[after[0][0]].isalpha():
                continue  # the next letter continues the word: dropped
            if not self.captions.tokens or after or ended or t - t0 >= 1.0:
                out.extend(self._keyword_alert(t, hit.keyword, hit.score, start, "kws"))
            else:
                keep.append((hit, start, t0))
        self._kws_pending = keep
        return out

    def final_keyword_alerts(self, text: str, t: float, start_s: float
                             ) -> list[dict[str, Any]]:
        """Keyword alerts from a second pass's final caption ``text`` of an utterance that
        ended at ``t`` (``source`` ``second_pass``). Only the per-label refractory time is
        checked: the utterance the caption belongs to is over, so the current utterance's
        once-per-utterance set is neither consulted nor changed."""
        return [self._keyword_event(t, kw, 1.0, start_s, "second_pass")
                for kw in _mentioned(self.meaning.target_keywords, text)
                if not self._keyword_refractory(t, kw)]

    def _keyword_alert(self, t: float, kw: str, score: float, start_s: float, source: str
                       ) -> list[dict[str, Any]]:
        """One ``keyword:<kw>`` alert unless the keyword already fired in this utterance or
        within its refractory time (captions and the spotter share both)."""
        if kw in self.keywords_alerted or self._keyword_refractory(t, kw):
            return []
        self.keywords_alerted.add(kw)
        return [self._keyword_event(t, kw, score, start_s, source)]

    def _keyword_refractory(self, t: float, kw: str) -> bool:
        last = self.keyword_last.get(f"keyword:{kw}", -math.inf)
        return t - last < self.keyword_refractory

    def _keyword_event(self, t: float, kw: str, score: float, start_s: float, source: str
                       ) -> dict[str, Any]:
        """The ``keyword:<kw>`` alert event; starts the keyword's refractory time."""
        label = f"keyword:{kw}"
        self.keyword_last[label] = t
        return {"type": "alert", "t": t, "label": label, "score": float(score),
                "start_s": float(min(start_s, t)), "safety": False, "source": source}

    def _wake_rest(self, draft: str) -> str | None:
        """The streaming model's draft after a (loosely matched) wake phrase, or None."""
        c = self.config
        return match_wake_phrase(draft, c.wake_phrases, tolerance=c.wake_tolerance,
                                 lead_chars=c.wake_lead_chars, name_words=c.wake_name_words)

    def _wake_rest_in(self, draft: str, speak_max: float) -> tuple[str | None, bool]:
        """``(rest, inside)``: :meth:`_wake_rest`, or -- with ``wake_inside`` and speak-now at
        ``wake_speak_threshold`` -- the draft after a wake phrase glued inside it
        (``inside`` True: such a request is answered, never taken as an instruction, since
        what came before it was somebody else's sentence)."""
        rest = self._wake_rest(draft)
        c = self.config
        if rest is None and c.wake_inside and speak_max >= c.wake_speak_threshold:
            rest = find_wake_phrase(draft, c.wake_phrases, tolerance=c.wake_tolerance,
                                    question_words=WH_WORDS)
            return rest, rest is not None
        return rest, False

    def addressed(self, text: str, t: float, requests: list[str], *,
                  answered: bool = False, draft: str | None = None,
                  speak_max: float | None = None) -> list[dict[str, Any]]:
        """Speech whose text starts with a wake phrase: an instruction (appended to
        ``requests`` and acknowledged) or a question (answered). Returns the answer events.

        Called on the streaming model's text at the first pause of ``wake_endpoint_s`` (or by
        :meth:`_finalise` when there was none), or -- when a second pass
        rewrites final captions (``defer_wake``) -- by the stream on the second pass's text,
        which is what a real voice said, with the streaming model's ``draft`` of the same
        utterance. The wake phrase counts when either heard it: the student is trained on
        "hey aim", while Whisper does not know the word "aim" and writes "Hi, name is ..." or
        "Okay, I'm ..." for it (test split: 4 questions lost that way). When only the draft
        heard it, the whole second-pass text is the request.

        The draft is matched loosely (``wake_tolerance`` ...). A wake phrase only the draft
        heard counts only when speak-now reached ``wake_confirm_speak`` during the utterance
        (``speak_max``: the stream passes the value it kept with the caption; None = this
        utterance's).
        """
        out: list[dict[str, Any]] = []
        if speak_max is None:
            speak_max = self.utterance_speak_max
        inside = False
        if draft is None:  # the streaming model's own text: its spelling is loose
            rest, inside = self._wake_rest_in(text, speak_max)
            drafted = rest is not None
            alone = self.config.wake_alone_s
            if rest == "" and alone > 0:  # "hey aim" ... a pause ... then the request
                self._wake_alone_t = t
            elif rest is None and text.strip() and t - self._wake_alone_t <= alone:
                rest, drafted = text.strip(), True  # the speech after a bare wake phrase
                self._wake_alone_t = -math.inf
            elif text.strip():
                self._wake_alone_t = -math.inf  # only the next stretch of speech
        else:  # a second pass's words are real words: exact
            rest = strip_wake_phrase(text, self.config.wake_phrases)
            drafted = False
            if rest is None and draft:
                heard, inside = self._wake_rest_in(draft, speak_max)
                if heard is not None:
                    rest = normalize_words(text)
                    drafted = True
        if rest:
            # a request found inside someone else's speech is a question, not an instruction
            meaning = InstructionMeaning(rest) if inside else self.parse(rest)
            if (draft is None and meaning.intent == "watch_keywords"
                    and all(len(k) < 3 for k in meaning.target_keywords)):
                # the draft's "... for ao ..." is a misspelling, not a word to watch (dev2:
                # one such "instruction" raised 8 false keyword alerts): treat it as a question
                meaning = InstructionMeaning(rest)
            if drafted and speak_max < self.config.wake_confirm_speak:
                # "Hey, I'm home" drafted as "hey aim home": a drafted wake phrase needs
                # speak-now's confirmation. Instructions too: "Hey, I'm hungry, what's for
                # dinner?" parses as "watch for the keyword dinner" (exempting instructions
                # kept no more acknowledgements on dev or dev2)
                return out
            if meaning.intent != "none" and self.config.spoken_instructions:
                requests.append(rest)
                if not answered:
                    out.append(self._answer(t, "acknowledge", rest, 1.0, "wake_phrase"))
            elif not answered:
                out.append(self._answer(t, "answer", rest, 1.0, "wake_phrase"))
        return out

    def _finalise(self, t: float, chunk: ChunkInfo | None, requests: list[str]
                  ) -> list[dict[str, Any]]:
        out = [self._caption(t, True, chunk)]
        out[0]["over_sound"] = self.utterance_over_sound
        pending, self._model_answer = self._model_answer, None
        if self._letters_over_sound():
            # unsure letters written over a sound: not speech; end the utterance, say so
            out[0].update(text="", draft=out[0]["text"], dropped="low_confidence")
            pending = None  # nothing was asked
        if pending is not None and t - self.last_answer >= self.config.answer_refractory_s:
            # the utterance ended before its pause was seen: answer now, before the wake
            # check below and a second pass's, so the utterance counts as answered for both
            out.append(self._answer(t, pending[0], self.captions.text, pending[1], "model"))
        dropped = bool(out[0].get("dropped"))
        if not dropped and not self.defer_wake:
            if self.segment_checked < 0:  # not checked at a pause (too long, end of input)
                out.extend(self.addressed(out[0]["text"][self.segment_start:], t, requests,
                                          answered=self.answered_utterance))
        elif not dropped:  # the stream calls addressed() when the second pass returns: one
            out[0]["_answered"] = self.answered_utterance  # answer per utterance there too
            out[0]["_speak_max"] = self.utterance_speak_max
        if self.config.keyword_settle_s > 0:
            # the utterance ended (too long, end of input) before a keyword at its very end
            # settled: the end of the utterance ends the word. Ungated, like step()'s matches
            out.extend(self._keyword_alerts(t, self.captions.text))
            out.extend(self._pending_keywords(t, True))
        self.captions.new_utterance()
        self.partial_text = ""
        self.answered_utterance = False
        self.segment_start, self.segment_checked = 0, -1
        self._dq_start, self._dq_checked = 0, -1
        return out
