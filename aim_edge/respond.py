"""Responders: where events go (console, JSON lines, a Python callback, speech).

Event schema
============

Every event is a JSON-ready ``dict``; the first three keys are always present::

    {"type": "caption" | "alert" | "answer" | "instruction" | "stats",
     "t": float,            # stream seconds (audio time, dropped audio included) the event
                            # refers to: the end of the deciding chunk
     "latency_ms": float | null,   # wall-clock ms from the moment the last sample of the
                            # deciding chunk entered the ring to the moment the event was
                            # emitted (instruction events: from the set_instruction call;
                            # second-pass captions: from the endpoint; stats: null)
     ...}

``caption``
    ``final`` (bool: false = partial, replaced by later captions of the same utterance),
    ``text`` (str), ``start_s`` / ``end_s`` (stream seconds of the utterance's first and last
    CTC frame), ``confidence`` (mean posterior of the streaming model's letters, 0-1); a final
    caption also has ``over_sound`` (bool: a sound was active while its letters came). A final
    caption rewritten by a second pass also has ``second_pass: true`` and ``draft`` (the
    streaming text). A final caption dropped as not speech (letters too uncertain, see
    ``PolicyConfig.caption_confidence``) has ``text`` "", ``dropped: "low_confidence"`` and
    ``draft``: it ends the utterance. Partial captions are held back while the gate would drop
    them (those shown before the letters became doubtful stay until it ends).
``alert``
    ``label`` (event label, or ``keyword:<word>``), ``score`` (probability in [0, 1]),
    ``start_s`` (stream seconds when the event became active), ``safety`` (bool), ``source``
    (``safety`` | ``instruction`` | ``model`` | ``keyword``: which rule allowed it; see
    :mod:`aim_edge.policy`).
``answer``
    ``intent`` (``answer`` | ``acknowledge``), ``text`` (the reply; ``""`` when no answer
    engine is configured), ``question`` (what was asked, from the captions), ``score``,
    ``source`` (``model`` | ``wake_phrase``).
``instruction``
    ``text`` (the new instruction, ``""`` = none), ``source`` (``api`` | ``cli`` |
    ``spoken``), ``encoder`` (instruction encoder kind, ``none`` = zero-embedding fallback),
    ``meaning`` (``{intent, target_labels, target_keywords, muted_labels}`` as the policy reads
    it), ``note`` when the bundle has no instruction encoder, and ``hint`` when no rule
    understood a non-empty instruction (what the rules do understand).
``stats``
    ``chunks``, ``alerts``, ``captions``, ``captions_dropped``, ``dropped_samples``,
    ``overflow_events``, ``chunk_latency_ms`` (``{p50, p95, p99, max}``), and in loop
    summaries ``audio_s``, ``wall_s``, ``rtf``, ``final`` (bool: the end-of-run summary).

Example line of ``--jsonl``::

    {"type": "alert", "t": 12.32, "latency_ms": 3.1, "label": "smoke_alarm", "score": 0.91,
     "start_s": 11.84, "safety": true, "source": "safety"}
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from .errors import OptionalDependencyError

__all__ = [
    "EVENT_TYPES",
    "CallbackResponder",
    "ConsoleResponder",
    "JsonLinesResponder",
    "Responder",
    "SpeechResponder",
    "validate_event",
]

EVENT_TYPES = ("caption", "alert", "answer", "instruction", "stats")
_REQUIRED = {
    "caption": {"final": bool, "text": str, "start_s": float, "end_s": float},
    "alert": {"label": str, "score": float, "start_s": float},
    "answer": {"intent": str, "text": str},
    "instruction": {"text": str, "source": str, "encoder": str},
    "stats": {"chunks": int},
}


def validate_event(event: dict[str, Any]) -> None:
    """Raise ``ValueError`` when ``event`` does not follow the schema above."""
    keys = list(event)
    if keys[:3] != ["type", "t", "latency_ms"]:
        raise ValueError(f"event keys must start with type, t, latency_ms: {keys}")
    kind = event["type"]
    if kind not in EVENT_TYPES:
        raise ValueError(f"event type {kind!r} is not one of {EVENT_TYPES}")
    if not isinstance(event["t"], (int, float)) or not math.isfinite(event["t"]):
        raise ValueError(f"event t = {event['t']!r} must be a finite number of seconds")
    lat = event["latency_ms"]
    if lat is not None and (not isinstance(lat, (int, float)) or lat < 0):
        raise ValueError(f"event latency_ms = {lat!r} must be null or >= 0")
    for key, typ in _REQUIRED[kind].items():
        if key not in event:
            raise ValueError(f"{kind} event without {key!r}: {event}")
        value = event[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) \
            if typ is float else isinstance(value, typ)
        if not ok:
            raise ValueError(f"{kind} event field {key} = {value!r} is not {typ.__name__}")


@runtime_checkable
class Responder(Protocol):
    """Receives events on the respond thread; ``close`` gets the final stats event."""

    def emit(self, event: dict[str, Any]) -> None: ...

    def close(self, summary: dict[str, Any] | None = None) -> None: ...


class CallbackResponder:
    """Calls ``fn(event)`` for every event (on the respond thread: keep it quick)."""

    def __init__(self, fn: Callable[[dict[str, Any]], None]) -> None:
        self.fn = fn

    def emit(self, event: dict[str, Any]) -> None:
        self.fn(event)

    def close(self, summary: dict[str, Any] | None = None) -> None:
        pass


class JsonLinesResponder:
    """One JSON object per line to a file, or to stdout for ``"-"``; flushed per event."""

    def __init__(self, target: str | Path | IO[str]) -> None:
        if hasattr(target, "write"):
            self.file, self._owned = target, False  # type: ignore[assignment]
        elif str(target) == "-":
            self.file, self._owned = sys.stdout, False
        else:
            path = Path(target)
            if path.parent and not path.parent.exists():
                raise FileNotFoundError(f"folder {path.parent} does not exist")
            self.file, self._owned = open(path, "w", encoding="utf-8", buffering=1), True
        self.count = 0

    def emit(self, event: dict[str, Any]) -> None:
        self.file.write(json.dumps(event, separators=(", ", ": "), allow_nan=False) + "\n")
        self.file.flush()
        self.count += 1

    def close(self, summary: dict[str, Any] | None = None) -> None:
        if self._owned and not self.file.closed:
            self.file.close()


class ConsoleResponder:
    """Live console view.

    On a terminal the current partial caption is redrawn in place (``\\r`` + erase line) and
    alerts are highlighted (bold red); otherwise (pipes, files, CI logs) plain lines are written
    for final captions, alerts, answers and instructions only.

    Parameters
    ----------
    stream : text stream (default ``sys.stdout``).
    color : force ANSI styling on/off (default: when ``stream`` is a TTY).
    show_partials : redraw partial captions (TTY only).
    """

    def __init__(self, stream: IO[str] | None = None, *, color: bool | None = None,
                 show_partials: bool = True) -> None:
        self.out = stream or sys.stdout
        tty = bool(getattr(self.out, "isatty", lambda: False)())
        self.live = tty and show_partials
        self.color = tty if color is None else color
        self._partial_shown = False

    def _style(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def _clear_partial(self) -> None:
        if self._partial_shown:
            self.out.write("\r\x1b[2K")
            self._partial_shown = False

    def _line(self, text: str) -> None:
        self._clear_partial()
        self.out.write(text + "\n")
        self.out.flush()

    def emit(self, event: dict[str, Any]) -> None:
        kind, t = event["type"], event["t"]
        stamp = f"[{t:7.2f}s]"
        if kind == "caption":
            if event["final"]:
                if event["text"]:
                    self._line(f"{stamp} {event['text']}")
                else:  # dropped as not speech: take its partial off the screen
                    self._clear_partial()
                    self.out.flush()
            elif self.live:
                width = shutil.get_terminal_size((100, 20)).columns
                text = f"{stamp} {event['text']} …"[-max(width - 1, 10):]
                self.out.write("\r\x1b[2K" + self._style(text, "2"))
                self.out.flush()
                self._partial_shown = True
        elif kind == "alert":
            mark = "ALERT" if not event.get("safety") else "SAFETY ALERT"
            text = (f"{stamp} {mark}: {event['label']} (score {event['score']:.2f},"
                    f" since {event['start_s']:.2f}s, {event['latency_ms']:.1f} ms)")
            self._line(self._style(text, "1;31"))
        elif kind == "answer":
            what = event.get("question") or ""
            reply = event["text"] or "(no answer engine configured)"
            self._line(self._style(f"{stamp} {event['intent']}: {reply}"
                                   + (f"  <- \"{what}\"" if what else ""), "1;36"))
        elif kind == "instruction":
            text = event["text"] or "(none)"
            line = f"{stamp} instruction ({event['source']}): {text}"
            meaning = event.get("meaning") or {}
            if meaning.get("intent", "none") != "none":
                line += f"  [{meaning['intent']}]"
            self._line(self._style(line, "1;33"))
            if event.get("note"):
                self._line(f"           note: {event['note']}")
            if event.get("hint"):
                self._line(f"           note: {event['hint']}")

    def close(self, summary: dict[str, Any] | None = None) -> None:
        self._clear_partial()
        self.out.flush()


class SpeechResponder:
    """Speaks alerts and answers with espeak-ng (a subprocess; at most one utterance at once).

    espeak-ng is looked up on first use; when absent, :class:`OptionalDependencyError` says
    how to install it. Utterances arriving while one is still playing are skipped and counted
    in ``skipped`` (speech must never delay the loop).
    """

    def __init__(self, *, voice: str | None = None, rate_wpm: int = 175,
                 executable: str = "espeak-ng") -> None:
        self.voice = voice
        self.rate_wpm = rate_wpm
        self.executable = executable
        self._exe: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.spoken = 0
        self.skipped = 0
        self.failed = 0  # utterances espeak-ng could not play (no audio output, ...)
        self.error = ""  # the first such failure, as espeak-ng / ALSA said it

    def _find(self) -> str:
        if self._exe is None:
            exe = shutil.which(self.executable)
            if exe is None:
                raise OptionalDependencyError(
                    "speech output (espeak-ng)",
                    "install it with `apt-get install espeak-ng` (Debian/Ubuntu) or `brew"
                    " install espeak-ng`, or run without --speak")
            self._exe = exe
        return self._exe

    @staticmethod
    def phrase(event: dict[str, Any]) -> str | None:
        if event["type"] == "alert":
            label = str(event["label"])
            if label.startswith("keyword:"):
                return f"Someone said {label.split(':', 1)[1]}"
            return label.replace("_", " ")
        if event["type"] == "answer":
            return event["text"] or None
        return None

    def emit(self, event: dict[str, Any]) -> None:
        text = self.phrase(event)
        if not text:
            return
        exe = self._find()
        if self._proc is not None and self._proc.poll() is None:
            self.skipped += 1
            return
        self._reap()
        cmd = [exe, "-s", str(self.rate_wpm)]
        if self.voice:
            cmd += ["-v", self.voice]
        self._proc = subprocess.Popen(cmd + ["--", text], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.spoken += 1

    def _reap(self) -> None:
        """Check the finished utterance: espeak-ng exits 0 even when no audio device opens
        (ALSA: "Unknown PCM default"), so its stderr says whether anything was heard. The
        first failure is reported once on stderr and kept in ``error``."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
        lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
        if proc.returncode == 0 and not any(ln.lower().startswith("error") for ln in lines):
            return
        self.failed += 1
        if not self.error:
            self.error = lines[-1] if lines else f"exit code {proc.returncode}"
            alsa = next((ln for ln in lines if "PCM" in ln or "card" in ln), "")
            print(f"aim-edge: warning: --speak: espeak-ng could not play audio ({self.error}"
                  + (f"; {alsa}" if alsa and alsa != self.error else "") + "); is there an"
                  " audio output? `aplay -l` lists them", file=sys.stderr, flush=True)

    def close(self, summary: dict[str, Any] | None = None) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.terminate()  # cut short by us: not a playback failure
                proc.wait(timeout=5)
                self._proc = None
                if proc.stderr:
                    proc.stderr.close()
        self._reap()
