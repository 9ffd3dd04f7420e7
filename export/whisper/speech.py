"""Real speech with reference transcripts, text normalisation and word error rate.

Two corpora, both real recorded voices (never TTS):

* **asterisk** -- the Asterisk PBX English prompts (one speaker, Allison Smith; CC-BY-SA-3.0),
  from Debian's ``asterisk-core-sounds-en-g722`` (16 kHz G.722) with transcripts from
  ``asterisk-core-sounds-en`` (``core-sounds-en.txt.gz``). Prompts whose transcript is a
  bracketed description (tones, beeps) or that last over 30 s are left out.
* **fsdd** -- the Free Spoken Digit Dataset (6 speakers, 8 kHz WAV, CC BY-SA 4.0) in
  ``../shared/data/fsdd`` next to the checkout (or ``$AIM_EDGE_FSDD``); resampled to 16 kHz
  with soxr. The reference is the digit's word.

Selections are deterministic: a corpus is sorted by name and ``limit`` items are taken evenly
spaced over it, so a small selection still spans short and long prompts and every speaker.

``apt-get install asterisk-core-sounds-en asterisk-core-sounds-en-g722`` and
``pip install av soxr`` provide what this needs.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import re
import wave
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from aim_edge.metrics import edit_distance  # shared with the runtime metrics

__all__ = [
    "ASTERISK_DIR",
    "ASTERISK_TRANSCRIPTS",
    "Utterance",
    "corpus_missing",
    "edit_distance",
    "fsdd_dir",
    "load_asterisk",
    "load_corpus",
    "load_fsdd",
    "normalize_text",
    "word_errors",
    "wer",
]

SAMPLE_RATE = 16000
ASTERISK_DIR = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
ASTERISK_TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
MAX_SECONDS = 30.0
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One real recording: ``samples`` float32 mono in [-1, 1] at 16 kHz, and its reference."""

    name: str
    samples: np.ndarray
    text: str
    corpus: str

    @property
    def seconds(self) -> float:
        return self.samples.shape[0] / SAMPLE_RATE


def fsdd_dir() -> Path:
    """The FSDD recordings folder: ``$AIM_EDGE_FSDD`` or ``<checkout>/../shared/data/fsdd``."""
    env = os.environ.get("AIM_EDGE_FSDD")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "fsdd" / "recordings"


def corpus_missing(corpus: str) -> str | None:
    """``None`` when ``corpus`` can be loaded here, else what is missing (for skip reasons)."""
    if corpus == "asterisk":
        if not ASTERISK_TRANSCRIPTS.is_file() or not ASTERISK_DIR.is_dir():
            return ("asterisk prompts: apt-get install asterisk-core-sounds-en "
                    "asterisk-core-sounds-en-g722")
        try:
            import av  # noqa: F401
        except ImportError:
            return "PyAV for G.722 decoding: pip install av"
        return None
    if corpus == "fsdd":
        if not fsdd_dir().is_dir():
            return f"FSDD recordings at {fsdd_dir()} (or set AIM_EDGE_FSDD)"
        try:
            import soxr  # noqa: F401
        except ImportError:
            return "soxr for resampling: pip install soxr"
        return None
    raise ValueError(f"corpus={corpus!r}, expected 'asterisk' or 'fsdd'")


def _evenly(items: Sequence, limit: int | None) -> list:
    if limit is None or limit >= len(items):
        return list(items)
    if limit <= 0:
        raise ValueError(f"limit={limit}, expected a positive count")
    idx = np.linspace(0, len(items) - 1, limit).round().astype(int)
    return [items[i] for i in idx]


def _asterisk_transcripts() -> dict[str, str]:
    out = {}
    with gzip.open(ASTERISK_TRANSCRIPTS, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(";") or ":" not in line:
                continue
            name, text = line.split(":", 1)
            text = text.strip()
            if not text or "[" in text:
                continue
            out[name.strip()] = text
    return out


def decode_g722(path: Path) -> np.ndarray:
    """A G.722 file as float32 mono 16 kHz samples in [-1, 1] (PyAV)."""
    import av

    with av.open(str(path), format="g722") as container:
        frames = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
    pcm = np.concatenate(frames) if frames else np.zeros(0, np.int16)
    return (pcm.astype(np.float32) / 32768.0).astype(np.float32)


def load_asterisk(limit: int | None = None, names: Sequence[str] | None = None
                  ) -> list[Utterance]:
    """Asterisk prompts (<= 30 s, with a spoken transcript), ``limit`` of them evenly spaced,
    or exactly the prompts ``names`` (e.g. ``["conf-locked", "vm-nomore"]``)."""
    missing = corpus_missing("asterisk")
    if missing:
        raise FileNotFoundError(missing)
    refs = _asterisk_transcripts()
    if names is not None:
        unknown = [n for n in names if n not in refs]
        if unknown:
            raise ValueError(f"no asterisk prompt with a transcript named {unknown}")
        return [Utterance(n, decode_g722(ASTERISK_DIR / f"{n}.g722"), refs[n], "asterisk")
                for n in names]
    names = sorted(n for n in refs if (ASTERISK_DIR / f"{n}.g722").is_file())
    # Durations come from the file size (G.722 at 64 kbit/s = 8000 bytes per second), so the
    # selection is known before any decoding.
    names = [n for n in names
             if (ASTERISK_DIR / f"{n}.g722").stat().st_size / 8000.0 <= MAX_SECONDS - 0.5]
    out = []
    for name in _evenly(names, limit):
        samples = decode_g722(ASTERISK_DIR / f"{name}.g722")
        out.append(Utterance(name, samples, refs[name], "asterisk"))
    return out


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: {8 * w.getsampwidth()}-bit WAV, expected 16-bit PCM")
        rate, channels = w.getframerate(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    pcm = pcm.reshape(-1, channels).mean(axis=1) if channels > 1 else pcm
    return pcm.astype(np.float32) / 32768.0, rate


def load_fsdd(limit: int | None = None) -> list[Utterance]:
    """FSDD recordings resampled to 16 kHz, ``limit`` of them evenly spaced over speakers."""
    missing = corpus_missing("fsdd")
    if missing:
        raise FileNotFoundError(missing)
    import soxr

    # sort by (speaker, digit, index) so an even spacing visits every speaker and digit
    def key(p: Path) -> tuple[str, int, int]:
        digit, speaker, index = p.stem.split("_")
        return speaker, int(index), int(digit)

    paths = sorted(fsdd_dir().glob("*.wav"), key=key)
    out = []
    for path in _evenly(paths, limit):
        samples, rate = _read_wav(path)
        if rate != SAMPLE_RATE:
            samples = soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ")
        digit = int(path.stem.split("_")[0])
        out.append(Utterance(path.stem, np.ascontiguousarray(samples, np.float32),
                             DIGIT_WORDS[digit], "fsdd"))
    return out


def load_corpus(corpus: str, limit: int | None = None) -> list[Utterance]:
    if corpus == "asterisk":
        return load_asterisk(limit)
    if corpus == "fsdd":
        return load_fsdd(limit)
    raise ValueError(f"corpus={corpus!r}, expected 'asterisk' or 'fsdd'")


# ---------------------------------------------------------------------------------------------
# text normalisation and WER

_ONES = ("", *DIGIT_WORDS[1:], "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen",
         "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SYMBOLS = {"*": " star ", "#": " pound ", "&": " and ", "%": " percent ", "@": " at ",
            "+": " plus ", "=": " equals ", "$": " dollar "}


def _number_words(n: int) -> list[str]:
    if n == 0:
        return ["zero"]
    words: list[str] = []
    for value, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand"),
                        (100, "hundred")):
        if n >= value:
            words += _number_words(n // value) + [name]
            n %= value
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
    if n:
        words.append(_ONES[n])
    return words


_ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth",
             "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}


def _ordinal(word: str) -> str:
    if word in _ORDINALS:
        return _ORDINALS[word]
    return word[:-1] + "ieth" if word.endswith("y") else word + "th"


def _spell_ordinal(match: re.Match[str]) -> str:
    words = _number_words(int(match.group(1)))
    return " " + " ".join([*words[:-1], _ordinal(words[-1])]) + " "


def _spell_number(match: re.Match[str]) -> str:
    digits = match.group(0)
    # "0" prefixed groups and long strings are read digit by digit ("0 1 2", phone numbers)
    if len(digits) > 4 or (len(digits) > 1 and digits[0] == "0"):
        return " " + " ".join(DIGIT_WORDS[int(d)] for d in digits) + " "
    return " " + " ".join(_number_words(int(digits))) + " "


def normalize_text(text: str) -> list[str]:
    """Words for WER: lower case, numbers spelled out, symbols named, punctuation dropped.

    Both reference and hypothesis go through this, so "Press 1." and "press one" agree.
    """
    text = text.lower()
    for sym, word in _SYMBOLS.items():
        text = text.replace(sym, word)
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 1,000 -> 1000
    text = re.sub(r"(\d+)(?:st|nd|rd|th)\b", _spell_ordinal, text)
    text = re.sub(r"\d+", _spell_number, text)
    text = text.replace("'", "")
    text = re.sub(r"[^a-z ]+", " ", text)
    return text.split()


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, reference word count) after :func:`normalize_text`."""
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    return edit_distance(ref, hyp), len(ref)


def wer(references: Iterable[str], hypotheses: Iterable[str]) -> float:
    """Corpus word error rate: total word edits / total reference words."""
    errors = words = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        e, n = word_errors(ref, hyp)
        errors += e
        words += n
    return errors / max(words, 1)
