"""Instructions: what the user asked the assistant to do, as an embedding and as rules.

An instruction ("tell me if the doorbell rings", "I'm testing the smoke alarm, ignore it") acts
in two places:

1. **The model** is conditioned on an embedding of the text (``instruction`` input,
   ``instruction_dim`` floats). The embedding comes from an :class:`InstructionEncoder`, chosen
   from the bundle by :func:`encoder_for_bundle`:

   * an artifact with ``role: instruction_encoder`` (ONNX sentence encoder such as
     all-MiniLM-L6-v2, with a ``tokenizer`` file; needs the optional ``tokenizers`` package)
     -> :class:`OnnxSentenceEncoder`;
   * ``instructions.encoder = {"kind": "hashed-bow", ...}`` in the manifest ->
     :class:`HashedEncoder` (weight-free, see :mod:`aim_edge.text_embedding`);
   * neither -> :class:`ZeroEncoder`, the documented fallback: every instruction embeds to the
     zero vector, which the model was trained to read as "no instruction". ``aim-edge info``
     and every ``instruction`` event say so.

2. **The decision policy** reads a structured :class:`InstructionMeaning` parsed from the text
   by deterministic rules (:func:`parse_instruction`): which event labels to watch, which
   keywords to listen for, which safety labels are muted, and whether the user asked for
   emergencies or captions only. These rules work with every bundle, including those without an
   encoder, and are what makes "safety classes are always on unless muted" enforceable.

Encoding runs off the audio path: the engine's worker thread encodes spoken instructions and
the stream swaps the new embedding in at the next chunk boundary.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from .errors import BundleError, OptionalDependencyError
from .metrics import edit_distance

if TYPE_CHECKING:
    from .bundle import Artifact, Bundle

__all__ = [
    "LABEL_PHRASES",
    "HashedEncoder",
    "InstructionEncoder",
    "InstructionMeaning",
    "OnnxSentenceEncoder",
    "ZeroEncoder",
    "encoder_for_bundle",
    "find_wake_phrase",
    "match_wake_phrase",
    "normalize_words",
    "parse_instruction",
    "strip_wake_phrase",
]


@runtime_checkable
class InstructionEncoder(Protocol):
    """Text -> float32 embedding of the model's ``instruction_dim``."""

    kind: str  # short name shown in `aim-edge info` and instruction events
    dim: int
    note: str  # "" or a sentence the user should know (e.g. the zero fallback)

    def encode(self, text: str | None) -> np.ndarray:
        """Embedding of ``text`` as float32 ``(dim,)``; zeros for None / empty text."""
        ...


class ZeroEncoder:
    """Fallback for bundles without an instruction encoder: every text -> zeros (= none)."""

    kind = "none"

    def __init__(self, dim: int) -> None:
        self.dim = int(dim)
        self.note = ("this bundle has no instruction encoder: the model sees a zero embedding"
                     " (no instruction) and the instruction acts through the runtime's text"
                     " rules only")

    def encode(self, text: str | None) -> np.ndarray:
        return np.zeros(self.dim, np.float32)


class HashedEncoder:
    """The weight-free hashed bag-of-words encoder named by the manifest."""

    kind = "hashed-bow"
    note = ""

    def __init__(self, spec: Mapping[str, Any], dim: int) -> None:
        from .text_embedding import HashedBagOfWords

        spec = {"dim": dim, **dict(spec)}
        try:
            self._impl = HashedBagOfWords.from_dict(spec)
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"manifest: instructions.encoder = {dict(spec)!r}: {exc}") from exc
        if self._impl.dim != dim:
            raise BundleError(f"manifest: instructions.encoder.dim = {self._impl.dim} but"
                              f" model.instruction_dim = {dim}")
        self.dim = dim

    def encode(self, text: str | None) -> np.ndarray:
        return np.asarray(self._impl.encode(text), np.float32)


class OnnxSentenceEncoder:
    """A Hugging Face sentence encoder exported to ONNX (optimum ``feature-extraction``).

    Tokenizes with ``tokenizers`` (optional dependency), runs the model, mean-pools the last
    hidden state over the attention mask and L2-normalises (the all-MiniLM-L6-v2 recipe).
    """

    kind = "onnx-sentence-encoder"
    note = ""

    def __init__(self, artifact: Artifact, dim: int, *, threads: int = 1,
                 max_tokens: int = 256) -> None:
        tokenizer_path = getattr(artifact, "tokenizer", None)
        if tokenizer_path is None:
            raise BundleError(f"manifest: the instruction_encoder artifact {artifact.file} has"
                              " no tokenizer file (artifact field 'tokenizer')")
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise OptionalDependencyError(
                "the instruction encoder (tokenizers)",
                "`pip install tokenizers` (or `pip install aim-edge[instructions]`); without"
                " it, use a bundle without an instruction_encoder artifact") from None
        import onnxruntime as ort

        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_tokens)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(artifact.path), opts,
                                            providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.dim = int(dim)
        probe = self.encode("hello")
        if probe.shape != (self.dim,):
            raise BundleError(f"{artifact.file}: embeddings have shape {probe.shape}, the model"
                              f" expects ({self.dim},)")

    def encode(self, text: str | None) -> np.ndarray:
        if not text:
            return np.zeros(self.dim, np.float32)
        enc = self.tokenizer.encode(text)
        ids = np.asarray([enc.ids], np.int64)
        mask = np.asarray([enc.attention_mask], np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask,
                 "token_type_ids": np.zeros_like(ids)}
        out = self.session.run(None, {k: feeds[k] for k in self.input_names if k in feeds})[0]
        out = np.asarray(out, np.float32)
        if out.ndim == 3:  # (1, T, d): mean over real tokens
            m = mask[..., None].astype(np.float32)
            out = (out * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        vec = out.reshape(-1)
        norm = float(np.linalg.norm(vec))
        return (vec / norm if norm > 0 else vec).astype(np.float32)


def encoder_for_bundle(bundle: Bundle, *, threads: int = 1) -> InstructionEncoder:
    """The encoder the bundle names (see the module docstring for the order)."""
    enc = [a for a in bundle.artifacts if a.role == "instruction_encoder" and a.format == "onnx"]
    if enc:
        return OnnxSentenceEncoder(min(enc, key=lambda a: a.size), bundle.instruction_dim,
                                   threads=threads)
    spec = (bundle.manifest.get("instructions") or {}).get("encoder")
    if isinstance(spec, Mapping) and spec.get("kind") == HashedEncoder.kind:
        return HashedEncoder(spec, bundle.instruction_dim)
    if isinstance(spec, Mapping) and spec.get("kind"):
        raise BundleError(f"manifest: instructions.encoder.kind = {spec.get('kind')!r} is not"
                          f" known to this runtime (it knows {HashedEncoder.kind!r} and ONNX"
                          " instruction_encoder artifacts)")
    return ZeroEncoder(bundle.instruction_dim)


# ----------------------------------------------------------------------------- text rules

#: Phrases that name an event label in an instruction (regular expressions, whole words).
#: Bundles may add phrases with ``labels.events[i].aliases``; a label without any gets its
#: name with spaces ("kettle_whistle" -> "kettle whistle").
LABEL_PHRASES: dict[str, tuple[str, ...]] = {
    "smoke_alarm": (r"smoke alarms?", r"fire alarms?", r"smoke detectors?", r"smoke"),
    "co_alarm": (r"carbon monoxide", r"co alarms?", r"co detectors?"),
    "siren": (r"sirens?", r"ambulances?", r"police cars?", r"fire engines?"),
    "glass_break": (r"glass", r"breaks", r"breaking", r"shatter\w*"),
    "car_horn": (r"honks?", r"horns?", r"hooting"),
    "kettle_whistle": (r"kettles?",),
    "microwave_beep": (r"microwaves?", r"oven"),
    "doorbell": (r"door ?bells?",),
    "knock": (r"knocks?", r"knocking"),
    "phone_ring": (r"phones?", r"calls", r"ringtone"),
    "alarm_clock": (r"alarm clocks?", r"timers?", r"my alarm"),
    "bell": (r"bells?", r"chimes?"),
    "notification": (r"notifications?", r"message comes in", r"pings", r"messages?"),
}

#: the data generator's wake phrases (``export.data.text.WAKE_PHRASES``), bare name included:
#: "Aim, what's two plus two?" is a question to the assistant
WAKE_PHRASES = ("hey aim", "okay aim", "ok aim", "hi aim", "excuse me aim", "aim")

_MUTE_CUE = re.compile(
    r"\b(ignore|mute|don'?t (?:tell|alert|warn|announce|bother)|do not (?:tell|alert|warn)|"
    r"no need to (?:tell|alert|warn)|stay (?:quiet|silent) about|no alerts?|not even alarms|"
    r"even for alarms|completely silent|false alarm|is (?:just )?a test|drills?|"
    r"i know about)\b")
_ALL_ALARMS = re.compile(
    r"\b(all (?:the )?alarms|any alarms|every alarm|even alarms|even for alarms|"
    r"all alerts|no alerts at all)\b")
_ALARM_WORD = re.compile(r"\balarms?\b")
_EMERGENCY = re.compile(
    r"\b(emergenc(?:y|ies)|danger\w*|urgent|serious|real alarms|something is wrong|"
    r"real problem)\b")
_ONLY = re.compile(r"\b(only|unless|except)\b")
_TRANSCRIBE = re.compile(
    r"\b(transcri\w*|captions? only|caption mode|caption everything|subtitles?|"
    r"write down what|type out what|what's being said|what is being said|nothing else|"
    r"no comments)\b")
_KEYWORD = re.compile(
    r"\b(?:says?|saying|mentions?|word|hear|about|for)\s+(?:the word\s+)?([a-z][a-z'-]*)"
    r"(?:\s+or\s+([a-z][a-z'-]*))?")
_KEYWORD_AFTER = re.compile(r"\bwhen\s+([a-z][a-z'-]*)\s+is\s+mentioned\b")
_NOT_KEYWORDS = frozenset(
    "a an the it its anyone anybody someone somebody me you when if whenever word words now "
    "emergencies emergency danger alarms alarm that this to in on of and or".split())


@dataclasses.dataclass(frozen=True)
class InstructionMeaning:
    """What an instruction asks for, as the decision policy uses it.

    Attributes
    ----------
    text : the instruction (wake phrase removed); "" = no instruction.
    intent : ``none`` | ``watch_events`` | ``watch_keywords`` | ``transcribe_only`` |
        ``emergency_only`` | ``mute_safety`` (the families of the training data).
    target_labels : event labels to alert on (besides safety labels).
    target_keywords : words whose appearance in the captions raises an alert.
    muted_labels : safety labels not to alert on.
    """

    text: str = ""
    intent: str = "none"
    target_labels: tuple[str, ...] = ()
    target_keywords: tuple[str, ...] = ()
    muted_labels: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"intent": self.intent, "target_labels": list(self.target_labels),
                "target_keywords": list(self.target_keywords),
                "muted_labels": list(self.muted_labels)}


def _phrase_table(labels: Iterable[str], aliases: Mapping[str, Sequence[str]] | None
                  ) -> dict[str, re.Pattern[str]]:
    table = {}
    for label in labels:
        phrases = list(LABEL_PHRASES.get(label, ()))
        phrases += [re.escape(a.lower()) for a in (aliases or {}).get(label, ())]
        if not phrases:
            phrases = [re.escape(label.replace("_", " ").lower())]
        table[label] = re.compile(r"\b(?:" + "|".join(phrases) + r")\b")
    return table


def normalize_words(text: str) -> str:
    """Lower-case words (letters, digits, apostrophes) joined by single spaces: how wake
    phrases and requests are compared."""
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def _ends_with_name(word: str, name: str) -> bool:
    """``word`` ends with ``name``, or with ``name`` plus one letter inside it ("aiem",
    "aiim" for "aim"): a leading stray letter ("iaim", "lkayaim") is the draft gluing the
    greeting to the name."""
    if word.endswith(name):
        return True
    tail = word[-(len(name) + 1):]
    if len(tail) != len(name) + 1 or tail[0] != name[0] or tail[-1] != name[-1]:
        return False
    letters = iter(tail)
    return all(ch in letters for ch in name)  # name is a subsequence of tail


def match_wake_phrase(text: str, wake_phrases: Sequence[str] = WAKE_PHRASES, *,
                      tolerance: float = 0.0, lead_chars: int = 0,
                      name_words: int = 0) -> str | None:
    """The text after a wake phrase heard at the start of ``text``, or None.

    With the defaults this is an exact match of a whole leading phrase (case and punctuation
    ignored). The streaming model's greedy draft misspells the phrase it heard ("okay aim" ->
    "lkayaim", "hey aim" -> "iy aim", "excuse me aim" -> "xcus me aim"), so the policy loosens
    it for drafts:

    - ``tolerance``: a leading span whose edit distance to a phrase is at most
      ``floor(tolerance * len(phrase))`` matches; the span must end at a word end. Phrases of
      3 characters or fewer (the bare name) still need an exact match.
    - ``lead_chars``: up to this many stray characters before the phrase are skipped (noise
      the draft spelled before the greeting: "dexcuse me aim").
    - ``name_words``: one of the first ``name_words`` words ending with the assistant's name
      (the last word of the wake phrases: "aim") also addresses it; the rest follows that
      word. This catches greetings the draft garbled beyond the tolerance ("hria aim",
      "lin meim"), at the price of words that end in the name ("claim").

    Chosen on the dev2 split's 1 486 final captions of the v0.8 student (240 start with an
    addressed utterance): exact 93 / 240 with no false match; ``tolerance=0.25, lead_chars=2,
    name_words=3`` 191 / 240 with none (0.3 and 0.35 began to match ordinary speech).
    """
    t = normalize_words(text)
    phrases = sorted({w for w in map(normalize_words, wake_phrases) if w}, key=len,
                     reverse=True)
    for p in phrases:  # exact first: the longest phrase wins
        if t == p or t.startswith(p + " "):
            return t[len(p):].strip()
    if tolerance > 0:
        for p in phrases:
            k = int(tolerance * len(p)) if len(p) > 3 else 0
            for a in range(min(lead_chars, len(t)) + 1):
                for b in range(a + max(1, len(p) - k), min(len(t), a + len(p) + k) + 1):
                    if b < len(t) and t[b] != " ":
                        continue  # the span must end at a word end
                    if edit_distance(t[a:b], p) <= k:
                        return t[b:].strip()
    if name_words > 0:
        names = {p.split()[-1] for p in phrases}
        words = t.split()
        for i, w in enumerate(words[:name_words]):
            if any(len(n) >= 2 and _ends_with_name(w, n) for n in names):
                return " ".join(words[i + 1:])
    return None


#: English words (and names) ending in "im", the name "aim" without its first letter: never
#: read as the assistant's name by :func:`find_wake_phrase`
_WORDS_ENDING_LIKE_THE_NAME = frozenset(
    "him tim kim jim slim swim trim prim dim rim whim grim skim brim vim shim sim denim victim"
    " maxim pilgrim interim muslim passim verbatim seraphim cherubim ibrahim karim hakim"
    " nadim wasim salim".split())


def find_wake_phrase(text: str, wake_phrases: Sequence[str] = WAKE_PHRASES, *,
                     tolerance: float = 0.0,
                     question_words: Iterable[str] = ()) -> str | None:
    """The text after the last greeting-plus-name wake phrase anywhere in ``text``, or None.

    A question asked without a pause after someone else's sentence is drafted as one run of
    letters, its wake phrase glued to the word before: "... call next weekakay aim when does
    ...", "... tomorrow morninghey aim how ...". :func:`match_wake_phrase` only reads the
    start of a caption. This looks for each word that ends with the assistant's name and
    checks whether the letters before it spell a wake phrase within ``tolerance`` (edits per
    character, as there), wherever they start. The bare name is not used: inside speech it
    is too often part of a word ("claim") or a misspelling of "I'm".

    With ``question_words`` (the policy passes the wh-words), the name without its first
    letter ("im"), alone or ending a garbled greeting ("glina im what's ...", "lin meim
    what's ...", "ainim when ..."), directly followed by one of them also counts, and the
    question is the rest: the draft often drops the name's first letter, and "... I'm
    what's" / "... I'm when" is not something people say (dev2: 0 of the captions of speech
    not addressed to the assistant have it). English words and names that end in those
    letters ("call him when ...", "Tim, what's ...") do not; the policy also wants speak-now
    at its early-answer threshold (:class:`aim_edge.policy.PolicyConfig` ``wake_inside``).
    """
    t = normalize_words(text)
    phrases = sorted({w for w in map(normalize_words, wake_phrases) if " " in w}, key=len,
                     reverse=True)
    best: tuple[int, str] | None = None
    for name in {p.split()[-1] for p in phrases}:
        for m in re.finditer(re.escape(name) + r"(?= |$)", t):
            e = m.end()
            if best is not None and e <= best[0]:
                continue
            for p in phrases:
                if not p.endswith(" " + name):
                    continue
                k = int(tolerance * len(p))
                if any(edit_distance(t[a:e], p) <= k
                       for a in range(max(0, e - len(p) - k), max(0, e - len(p) + k) + 1)):
                    best = (e, t[e:].strip())
                    break
    qw = sorted({normalize_words(w) for w in question_words if w}, key=len, reverse=True)
    if qw:
        for name in {p.split()[-1][1:] for p in phrases if len(p.split()[-1]) > 2}:
            alt = "|".join(re.escape(w) for w in qw)
            # the fragment alone, or glued to a greeting the draft garbled ("meim", "ainim"),
            # but not an English word that ends that way ("call him when ...", "Tim, what ...")
            for m in re.finditer(rf"(?:^| )(\S*){re.escape(name)} (?=(?:{alt})(?: |$))", t):
                if (m.group(1) + name) in _WORDS_ENDING_LIKE_THE_NAME:
                    continue
                if best is None or m.end() > best[0]:
                    best = (m.end(), t[m.end():].strip())
    return best[1] if best is not None else None


def strip_wake_phrase(text: str, wake_phrases: Sequence[str] = WAKE_PHRASES) -> str | None:
    """The text after a leading wake phrase, or None when the text does not start with one
    (exact: :func:`match_wake_phrase` with its defaults)."""
    return match_wake_phrase(text, wake_phrases)


def parse_instruction(text: str | None, events: Sequence[str], safety: Iterable[str], *,
                      aliases: Mapping[str, Sequence[str]] | None = None,
                      never_target: Iterable[str] = ("other_sound",)) -> InstructionMeaning:
    """Parse ``text`` into an :class:`InstructionMeaning` with deterministic rules.

    Rules, first match wins:

    1. empty -> ``none``;
    2. a mute cue ("ignore", "mute", "don't tell/alert/warn", "is just a test", "drill", ...)
       together with a safety label (or "alarms" in general) -> ``mute_safety``: the named
       safety labels are muted, all of them for "all/any/every alarm(s)" or when no specific
       one is named;
    3. "emergency / danger / urgent / serious / real alarms" with "only / unless / except" ->
       ``emergency_only``;
    4. "transcribe / captions only / subtitles / nothing else" -> ``transcribe_only``;
    5. one or more event labels named ("the doorbell rings", "the kettle") ->
       ``watch_events`` with those labels;
    6. "says / mentions / the word / hear / about / for X [or Y]" -> ``watch_keywords``.

    Anything else keeps intent ``none`` (the text still reaches the model as an embedding).
    """
    raw = (text or "").strip()
    if not raw:
        return InstructionMeaning()
    t = " ".join(re.sub(r"[\u2019`]", "'", raw.lower()).split())
    t = re.sub(r"[^a-z0-9' ]+", " ", t)
    t = " ".join(t.split())
    never = set(never_target)
    safety = tuple(e for e in events if e in set(safety))
    table = _phrase_table(events, aliases)
    named = [e for e in events if e not in never and table[e].search(t)]

    if _MUTE_CUE.search(t):
        named_safety = tuple(e for e in named if e in safety)
        if _ALL_ALARMS.search(t) or (not named_safety and _ALARM_WORD.search(t)):
            return InstructionMeaning(raw, "mute_safety", muted_labels=safety)
        if named_safety:
            return InstructionMeaning(raw, "mute_safety", muted_labels=named_safety)
    if _EMERGENCY.search(t) and _ONLY.search(t):
        return InstructionMeaning(raw, "emergency_only")
    if _TRANSCRIBE.search(t):
        return InstructionMeaning(raw, "transcribe_only")
    if named:
        return InstructionMeaning(raw, "watch_events", target_labels=tuple(named))
    keywords: list[str] = []
    for m in [*_KEYWORD.finditer(t), *_KEYWORD_AFTER.finditer(t)]:
        for g in m.groups():
            if g and g not in _NOT_KEYWORDS and g not in keywords:
                keywords.append(g)
    if keywords:
        return InstructionMeaning(raw, "watch_keywords", target_keywords=tuple(keywords))
    return InstructionMeaning(raw, "none")
