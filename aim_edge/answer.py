"""A small, honest answer engine: replies from what the stream itself perceived.

The default model decides *when* to answer (speak-now with intent ``answer``, or a caption
that starts with the wake phrase); it has no language model to say *what*. This module fills
the ``answer`` event's ``text`` from the runtime's own state, and says plainly when a question
is outside what it knows. It answers four kinds of question, matched by keywords so that the
streaming student's rough captions still reach the right rule:

=============================  ==========================================================
question (examples)            answer
=============================  ==========================================================
"what was that sound?",        the most recent sound event the model detected (any label,
"did you hear that?"           alerted or not) within ``recent_s``, with how long ago
"what time is it?"             the local wall-clock time (``clock``)
"what did he say?",            the last final caption
"what was said?"
"did I miss anything?",        the alerts of the last ``recent_s`` seconds
"any alerts?"
"what's seven times forty?",   the result, worked out (plus, minus, times, multiplied by,
"what is 12 plus 15?"          divided by; numbers as words or digits)
anything else                  what it can answer, and that it did not understand
=============================  ==========================================================

It is deliberately not a chatbot: every reply is a fact the runtime observed, so it cannot
make things up. The policy keeps the context (:class:`AnswerContext`) up to date; a caller may
replace the engine with any ``question -> str`` callable (``Engine(answerer=...)``) or any
object with ``answer(question, context)``.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["AnswerContext", "SoundSeen", "StateAnswerer"]


@dataclasses.dataclass
class SoundSeen:
    """One activation of a sound-event label (stream seconds)."""

    label: str
    start_s: float
    end_s: float
    peak: float


@dataclasses.dataclass
class AnswerContext:
    """What the stream perceived recently; kept by :class:`~aim_edge.policy.DecisionPolicy`.

    Attributes
    ----------
    now_s : stream time of the deciding chunk, seconds.
    sounds : recent sound activations, oldest first (bounded).
    captions : recent final caption texts with their end time ``(end_s, text)``.
    alerts : recent alerts ``(t, label)``.
    """

    now_s: float = 0.0
    sounds: deque[SoundSeen] = dataclasses.field(default_factory=lambda: deque(maxlen=32))
    captions: deque[tuple[float, str]] = dataclasses.field(
        default_factory=lambda: deque(maxlen=16))
    alerts: deque[tuple[float, str]] = dataclasses.field(default_factory=lambda: deque(maxlen=32))

    def clear(self) -> None:
        self.now_s = 0.0
        self.sounds.clear()
        self.captions.clear()
        self.alerts.clear()


_SOUND = re.compile(r"\b(sound|sounds|noise|noises|hear|heard|hearing|beep|beeping|ringing|"
                    r"that was|was that)\b")
_TIME = re.compile(r"\b(time|clock|o'?clock|hour)\b")
_SAID = re.compile(r"\b(say|said|saying|says|told|speak|spoke|talking)\b")
_MISSED = re.compile(r"\b(miss|missed|alert|alerts|happen|happened|anything)\b")

_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    " fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate(
    "twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)}
_OPS = {"plus": "+", "minus": "-", "times": "*", "multiplied": "*", "divided": "/",
        "x": "*"}
#: real words one letter from an operator: never read as one ("is it ten time two")
_NOT_OPS = frozenset("time tims tomes timed plug plum mines minis minds".split())
#: words that ask for a result; a sum must follow one of them (or the wake phrase alone)
_SUM_CUES = frozenset("what whats what's how calculate compute work".split())
_WAKE_WORDS = frozenset("hey okay ok hi excuse me aim".split())
#: after an operand they make it a duration or a count, not a sum ("three times five minutes
#: ago"); before or after it they mean the number goes on ("two point five", "1 000")
_NOT_SUM_NEIGHBOURS = frozenset(
    "point and minute minutes second seconds hour hours day days week weeks ago o'clock"
    " percent".split())
_NUMBER_KIND = {**{w: "unit" for w in _UNITS}, **{w: "tens" for w in _TENS},
                "hundred": "hundred", "thousand": "thousand", "and": "and", "a": "a"}
#: which number word may follow which ("nineteen eighty four" is a year, not 103)
_NEXT = {"start": {"unit", "tens", "a"}, "a": {"hundred", "thousand"},
         "unit": {"hundred", "thousand"}, "tens": {"unit", "thousand"},
         "hundred": {"and", "unit", "tens", "thousand"}, "thousand": {"and", "unit", "tens"},
         "and": {"unit", "tens"}}


def _is_number_word(w: str) -> bool:
    return w in _UNITS or w in _TENS or w in ("hundred", "thousand") or bool(
        re.fullmatch(r"\d+(\.\d+)?", w))


def _number(words: list[str]) -> float | None:
    """The value of number words or digits ("twenty one", "a hundred and five", "12"), or
    None when ``words`` is not exactly one well-formed number."""
    if len(words) == 1 and re.fullmatch(r"\d+(\.\d+)?", words[0]):
        return float(words[0])
    total = current = 0
    state = "start"
    for w in words:
        kind = _NUMBER_KIND.get(w)
        if kind is None or kind not in _NEXT[state]:
            return None
        if kind == "tens" and w in _TENS:
            current += _TENS[w]
        elif kind == "unit":
            if state == "tens" and not 1 <= _UNITS[w] <= 9:
                return None  # "twenty zero", "twenty twelve"
            current += _UNITS[w]
        elif kind == "hundred":
            current = (current or 1) * 100
        elif kind == "thousand":
            total += (current or 1) * 1000
            current = 0
        state = kind
    if state in ("start", "a", "and"):
        return None
    return float(total + current)


def _arithmetic(q: str) -> str | None:
    """``"what's seven times forty"`` -> ``"7 times 40 is 280."``; None unless the question
    is one sum between two whole numbers, asked for ("what", "how much", ...)."""
    if re.search(r"(^|[\s(])-\s?\d", q):
        return None  # a negative operand: not read as a minus sign
    q = re.sub(r"(?<=\d),(?=\d{3}\b)", "", q)  # Whisper's "1,000"
    words = [w.strip(".'") for w in re.sub(r"[^a-z0-9.' ]+", " ", q.replace("-", " ")).split()]
    words = [w for w in words if w]
    ops = [(i, _operator(w)) for i, w in enumerate(words) if _operator(w) in _OPS]
    if len(ops) != 1:
        return None  # no sum, or a chain of them
    i, w = ops[0]
    op = _OPS[w]
    j = i + 1 + (1 if w in ("multiplied", "divided") and words[i + 1:i + 2] == ["by"] else 0)
    left = right = None
    k_left = k_right = i
    for k in range(max(0, i - 6), i):  # the longest number that ends before the operator
        left = _number(words[k:i])
        if left is not None:
            k_left = k
            break
    for k in range(min(len(words), j + 6), j, -1):  # ... and starts after it
        right = _number(words[j:k])
        if right is not None:
            k_right = k
            break
    if left is None or right is None:
        return None
    before = words[k_left - 1] if k_left > 0 else ""
    after = words[k_right] if k_right < len(words) else ""
    if {before, after} & _NOT_SUM_NEIGHBOURS or _is_number_word(before) or \
            _is_number_word(after):
        return None  # part of a longer number, a decimal, a duration: not this sum
    asked = [x for x in words[:k_left] if x not in _WAKE_WORDS]
    if asked and not (set(asked) & _SUM_CUES or " ".join(asked[-2:]) == "how much"):
        return None  # "did it beep three times five ..." is not a question about a sum
    if op == "/" and right == 0:
        return "Dividing by zero has no answer."
    value = {"+": left + right, "-": left - right, "*": left * right}.get(op) \
        if op != "/" else left / right
    shown = f"{value:.0f}" if float(value).is_integer() else f"{value:.4g}"
    return f"{_said_number(left)} {w}{' by' if j > i + 1 else ''} {_said_number(right)}" \
        f" is {shown}."


def _operator(word: str) -> str:
    """``word``, or the operator it misspells by one letter ("tfimes", "pflus": the streaming
    draft's spelling; the numbers on both sides must still be exact)."""
    if word in _OPS or len(word) < 4 or word in _NOT_OPS:
        return word
    for op in ("plus", "minus", "times", "multiplied", "divided"):
        if abs(len(op) - len(word)) <= 1 and _within_one_edit(op, word):
            return op
    return word


def _within_one_edit(a: str, b: str) -> bool:
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1:] == b[i + 1:]
    return a[i:] == b[i + 1:]


def _said_number(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() else f"{v:g}"


def _words(label: str) -> str:
    return label.replace("_", " ")


def _ago(seconds: float) -> str:
    s = max(0, round(seconds))
    if s <= 1:
        return "just now"
    if s < 90:
        return f"{s} seconds ago"
    return f"{round(s / 60)} minutes ago"


class StateAnswerer:
    """Answers questions from an :class:`AnswerContext` (see the module docstring).

    Parameters
    ----------
    recent_s : how far back "that sound" and "did I miss anything" look, seconds.
    clock : returns a ``time.struct_time`` for "what time is it" (default ``time.localtime``;
        tests inject a fixed one).
    """

    kind = "state"

    def __init__(self, *, recent_s: float = 30.0,
                 clock: Callable[[], time.struct_time] = time.localtime) -> None:
        if not recent_s > 0:
            raise ValueError(f"recent_s = {recent_s!r} must be > 0 seconds")
        self.recent_s = float(recent_s)
        self.clock = clock

    def answer(self, question: str, context: AnswerContext) -> str:
        q = " ".join((question or "").lower().split())
        worked = _arithmetic(q)
        if worked is not None:
            return worked
        if _TIME.search(q):
            now = self.clock()
            return f"It is {now.tm_hour:02d}:{now.tm_min:02d}."
        if _SAID.search(q):
            return self._said(context)
        if _MISSED.search(q) and not _SOUND.search(q):
            return self._missed(context)
        if _SOUND.search(q):
            return self._sound(context)
        heard = f" I heard: {q!r}." if q else ""
        return ("I can tell you what that sound was, what was just said, whether you missed an"
                f" alert and the time, and work out a sum.{heard}")

    def __call__(self, question: str, context: AnswerContext | None = None) -> str:
        return self.answer(question, context or AnswerContext())

    def _recent(self, context: AnswerContext) -> list[SoundSeen]:
        return [s for s in context.sounds if context.now_s - s.end_s <= self.recent_s]

    def _sound(self, context: AnswerContext) -> str:
        recent = self._recent(context)
        named = [s for s in recent if s.label != "other_sound"]
        if named:
            s = named[-1]
            return (f"That sounded like a {_words(s.label)}, {_ago(context.now_s - s.start_s)}"
                    f" (confidence {s.peak:.2f}).")
        if recent:
            return "I heard a sound, but not one I can name."
        return f"I did not hear a sound I recognise in the last {self.recent_s:.0f} seconds."

    def _said(self, context: AnswerContext) -> str:
        for _end_s, text in reversed(context.captions):
            if text.strip():
                return f"The last thing I heard said was: \"{text.strip()}\"."
        return "I have not heard anyone say anything yet."

    def _missed(self, context: AnswerContext) -> str:
        recent = [(t, label) for t, label in context.alerts
                  if context.now_s - t <= self.recent_s]
        if not recent:
            return f"No alerts in the last {self.recent_s:.0f} seconds."
        parts = [f"{_words(label.removeprefix('keyword:'))} {_ago(context.now_s - t)}"
                 for t, label in recent[-3:]]
        return "Alerts: " + "; ".join(parts) + "."


def call_answerer(answerer: Any, question: str, context: AnswerContext) -> str:
    """Call either kind of answerer: an object with ``answer(question, context)`` or a plain
    ``question -> str`` callable."""
    method = getattr(answerer, "answer", None)
    if callable(method):
        return str(method(question, context))
    return str(answerer(question))
