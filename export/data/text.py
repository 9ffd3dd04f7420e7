"""What people say in the scenes: sentences, questions, keywords and instructions.

Sentences come from templates filled with small word lists, so there are thousands of distinct
ones; each *filled* sentence is assigned to a split by a hash of its text
(:func:`export.data.splits.split_of`), so no sentence is spoken in two splits. Instruction
paraphrases are split by *template*: dev and test hold phrasings never seen in train.

Categories of speech:

- ``everyday`` — conversation not addressed to the assistant (no response);
- ``question`` — a question to the assistant, spoken after a wake phrase ("hey aim, ...");
- ``keyword`` — everyday speech that contains one of :data:`KEYWORDS` (a response only when the
  active instruction watches that keyword);
- ``instruction`` — an instruction spoken to the assistant (acknowledged);
- ``lookalike`` — everyday speech that starts like a wake phrase but is not one ("Hey, I'm
  back", "Okay Jamie, ...", "We aim to ..."): no response. Scenes use it only when
  ``SceneConfig.p_lookalike`` > 0, so builds without it draw exactly what they drew before.
  ``benchmarks/bench_wake.py``'s confusable sentences are not among these.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from functools import cache

from .labels import SAFETY_LABELS, WAKE_NAME
from .splits import split_of, stratified

__all__ = [
    "KEYWORDS",
    "WAKE_PHRASES",
    "Instruction",
    "Sentence",
    "find_keywords",
    "instruction_templates",
    "make_instruction",
    "sentences",
]

KEYWORDS: tuple[str, ...] = (
    "dinner", "lunch", "package", "taxi", "doctor", "meeting", "help", "bus",
)

WAKE_PHRASES: tuple[str, ...] = (
    f"hey {WAKE_NAME}", f"okay {WAKE_NAME}", f"hi {WAKE_NAME}", f"excuse me {WAKE_NAME}",
    WAKE_NAME,
)

_PEOPLE = ["Sam", "Alex", "Maria", "Tom", "Priya", "Jordan", "Grandma", "Dad", "Mum", "Chris",
           "Lena", "Omar", "Nina", "Ben"]
_PLACES = ["the shop", "the park", "work", "the station", "the library", "the gym", "school",
           "the garden centre", "the post office", "the bakery", "the beach", "town"]
_TIMES = ["tonight", "tomorrow morning", "later", "at six", "after work", "on Saturday",
          "next week", "in an hour", "this afternoon", "on Sunday"]
_THINGS = ["the charger", "the remote", "your jacket", "the umbrella", "the shopping list",
           "my glasses", "the blue folder", "the scissors", "my wallet", "the spare blanket"]
_FOODS = ["pasta", "soup", "curry", "pancakes", "a salad", "fish", "pizza", "rice", "tacos",
          "stew"]
_ROOMS = ["kitchen", "living room", "bedroom", "hallway", "bathroom", "garage", "office"]
_GENRES = ["jazz", "classical", "rock", "relaxing", "folk", "piano", "dance"]
_NUMBERS = ["two", "three", "five", "seven", "ten", "twelve", "fifteen", "twenty", "forty"]
_WORDS = ["necessary", "rhythm", "Wednesday", "receipt", "colonel", "separate", "queue"]

_EVERYDAY = [
    "I'm going to {place} {time}.",
    "Have you seen {thing}?",
    "I left {thing} in the car.",
    "{person} said they would call {time}.",
    "Can you pick up some milk on the way back from {place}?",
    "We're having {food} {time}.",
    "I think {person} is coming over {time}.",
    "Don't forget {thing} when you go to {place}.",
    "The weather was lovely at {place} today.",
    "I can't find {thing} anywhere.",
    "Did {person} ring you back?",
    "Let's watch a film {time}.",
    "Is {thing} in the {room}?",
    "I tidied the {room} this morning.",
    "{person} wants {food} again.",
    "Could you put {thing} back in the {room}?",
    "The heating in the {room} isn't working.",
    "I'll be at {place} until about five.",
    "{person} borrowed {thing} and never gave it back.",
    "Honestly, {food} sounds perfect right now.",
    "We should clean the {room} {time}.",
    "I met {person} at {place} yesterday.",
    "Did you water the plants in the {room}?",
    "{person} is picking me up {time}.",
    "I'm so tired, I might go to bed early.",
    "Shall we walk to {place} or drive?",
    "The light in the {room} keeps flickering.",
    "I'll ask {person} about it {time}.",
    "There's some {food} left in the fridge.",
    "Turn the music down a bit, please.",
    "I need to renew my library card at {place}.",
    "{person} sent a lovely photo from {place}.",
    "Where did you put {thing}?",
    "My back hurts after all that gardening.",
    "Let's try that new place near {place} {time}.",
    "It's freezing in the {room}.",
    "{person} has finally finished the puzzle.",
    "I'm just going to make a cup of tea.",
    "The neighbours are having a party {time}.",
    "Remember to lock the {room} window.",
]

#: names that sound like the wake name or follow a greeting the way it does
_LOOKALIKE_NAMES = ["Jamie", "Amy", "Tim", "Kim", "Jane", "Mae", "Abe", "Wayne", "Ray", "Faye",
                    "Dave", "Kate"]
_LOOKALIKE = [
    "Hey, I'm back from {place}.",
    "Hey, I'm in the {room}.",
    "Hey, I'm making {food} {time}, do you want some?",
    "Hey, I'm off to {place}.",
    "Okay, I'm going to {place} {time}.",
    "Okay, I'm nearly done in the {room}.",
    "Hi, I'm back, where did you put {thing}?",
    "Hi, I'm in the {room} if you need me.",
    "Excuse me, I'm just getting {thing}.",
    "I'm in the {room}.",
    "Hey {lname}, have you seen {thing}?",
    "Hey {lname}, are you going to {place} {time}?",
    "Okay {lname}, I'll meet you at {place}.",
    "Okay {lname}, {food} it is.",
    "Hi {lname}, how did it go at {place}?",
    "Hi {lname}, come and sit down.",
    "Excuse me {lname}, is that {thing}?",
    "{lname}, can you grab {thing}?",
    "We aim to be at {place} {time}.",
    "Aim to get there {time} if you can.",
    "The aim is to clear the {room} {time}.",
    "I aim to finish the {room} {time}.",
    "Hey, hey, I'm talking to {lname}.",
    "Hey, it's me, I'm at {place}.",
]

_QUESTIONS = [
    "what time is it?",
    "what's the weather like {time}?",
    "how long should I cook the {food}?",
    "set a timer for {number} minutes.",
    "remind me to call {person} {time}.",
    "what's on my calendar {time}?",
    "how do you spell {word}?",
    "what's {number} times {number2}?",
    "play some {genre} music.",
    "turn the lights off in the {room}.",
    "how far is it to {place}?",
    "is it going to rain {time}?",
    "what's the date today?",
    "add {food} to the shopping list.",
    "when does {place} open {time}?",
    "what temperature is it in the {room}?",
    "read me the news headlines.",
    "how many days until Christmas?",
    "call {person}.",
    "send {person} a message saying I'm on my way.",
    "what's a good recipe for {food}?",
    "turn up the heating in the {room}.",
    "what song is this?",
    "how do I get to {place} from here?",
    "wake me up {time}.",
    "what's {number} plus {number2}?",
    "is {person} free {time}?",
    "pause the music.",
    "what did I ask you to remind me about?",
    "how long has the timer got left?",
]

_KEYWORD_SENTENCES = {
    "dinner": ["{person}, dinner is ready!", "Come down for dinner, {person}.",
               "Dinner will be ready in {number} minutes.",
               "What does {person} want for dinner {time}?",
               "{person} is cooking dinner {time}."],
    "lunch": ["{person}, lunch is on the table.", "Shall we have lunch at {place}?",
              "{person} is bringing lunch {time}.", "Lunch is in {number} minutes."],
    "package": ["{person}, there's a package for you.", "The package arrived at {place}.",
                "Did {person} send a package {time}?", "I left the package in the {room}."],
    "taxi": ["{person}, your taxi is here!", "The taxi will come {time}.",
             "Should we get a taxi to {place}?", "{person} booked a taxi for {time}."],
    "doctor": ["{person} has a doctor's appointment {time}.", "Did the doctor call back?",
               "The doctor said to rest for {number} days.",
               "{person}, the doctor is on the phone."],
    "meeting": ["{person}, your meeting starts in {number} minutes.",
                "The meeting at {place} was moved to {time}.",
                "{person} is still in a meeting.", "Is the meeting {time}?"],
    "help": ["{person}, can you help me with this?", "I need some help in the {room}!",
             "Help! {person}, come quickly!", "{person} offered to help {time}."],
    "bus": ["{person}, the bus is coming!", "The bus to {place} is late again.",
            "I'll take the bus {time}.", "{person} missed the bus."],
}

# ---------------------------------------------------------------------------------------------
# instructions


#: label -> phrases completing "tell me if ..."
_EVENT_PHRASES = {
    "doorbell": ["the doorbell rings", "someone rings the doorbell", "the doorbell goes"],
    "knock": ["someone knocks", "someone knocks on the door", "there's a knock at the door"],
    "kettle_whistle": ["the kettle whistles", "the kettle boils",
                       "the kettle starts whistling"],
    "microwave_beep": ["the microwave beeps", "the microwave is done", "the oven beeps"],
    "phone_ring": ["the phone rings", "my phone rings", "someone calls"],
    "alarm_clock": ["the alarm clock goes off", "the timer goes off", "my alarm rings"],
    "bell": ["a bell rings", "you hear a bell", "the bell chimes"],
    "notification": ["I get a notification", "a message comes in", "my computer pings"],
    "car_horn": ["a car honks", "someone honks", "you hear a car horn"],
    "smoke_alarm": ["the smoke alarm goes off", "the fire alarm sounds"],
    "co_alarm": ["the carbon monoxide alarm goes off", "the CO detector beeps"],
    "siren": ["you hear a siren", "an ambulance goes by"],
    "glass_break": ["something breaks", "you hear glass breaking"],
}

#: safety label -> noun phrases for muting
_ALARM_NOUNS = {
    "smoke_alarm": ["smoke alarm", "fire alarm", "smoke detector"],
    "co_alarm": ["carbon monoxide alarm", "CO alarm"],
    "siren": ["siren", "sirens outside"],
    "glass_break": ["glass breaking noise", "sound of breaking glass"],
}

_TEMPLATES: dict[str, list[str]] = {
    "watch_events": [
        "tell me if {ev}", "let me know when {ev}", "let me know if {ev}",
        "give me a shout if {ev}", "alert me when {ev}", "can you tell me when {ev}",
        "please tell me if {ev}", "I'm expecting someone, tell me if {ev}",
        "keep an ear out in case {ev}", "listen out for when {ev}", "ping me if {ev}",
        "warn me when {ev}", "if {ev}, let me know", "when {ev}, tell me",
        "I need to know if {ev}", "could you notify me if {ev}",
        "I've got headphones on, tell me if {ev}", "make sure you tell me if {ev}",
        "shout if {ev}", "do let me know the moment {ev}",
    ],
    "watch_keywords": [
        "let me know when someone says {kw}", "tell me if anyone mentions {kw}",
        "listen for the word {kw}", "alert me if you hear the word {kw}",
        "if someone says {kw}, tell me", "shout if somebody says {kw}",
        "keep an ear out for {kw}", "tell me when {kw} is mentioned",
        "let me know if the word {kw} comes up", "ping me whenever someone says {kw}",
        "I'm waiting to hear about {kw}, tell me if anyone says it",
        "watch for anyone saying {kw}", "notify me when you hear {kw}",
        "give me a nudge if someone says {kw}", "flag it if anybody mentions {kw}",
    ],
    "transcribe_only": [
        "just transcribe", "only transcribe, please", "just write down what people say",
        "captions only, please", "just do the subtitles", "transcription only",
        "just caption everything", "write down what you hear and nothing else",
        "only show me what's being said", "just give me the transcript",
        "keep transcribing, no comments", "subtitles only from now on",
        "just type out what people are saying", "caption mode, please",
    ],
    "emergency_only": [
        "don't bother me unless it's an emergency", "only interrupt me for emergencies",
        "stay quiet unless something's dangerous", "I'm busy, emergencies only",
        "do not disturb, except for emergencies", "only speak up if there's danger",
        "keep quiet unless it's urgent", "emergencies only, please",
        "I'm concentrating, only tell me about emergencies",
        "no interruptions unless it's serious", "silence unless there's a real problem",
        "leave me alone unless something is wrong", "only alert me for real alarms",
    ],
    "mute_safety": [
        "I'm testing the {alarm}, ignore it", "ignore the {alarm} for now",
        "the {alarm} is just a test, don't tell me about it",
        "don't alert me about the {alarm}, I know about it",
        "we're doing a drill, stay quiet about the {alarm}",
        "I know about the {alarm}, you can ignore it", "no need to tell me about the {alarm}",
        "the {alarm} is a false alarm, ignore it", "please don't announce the {alarm}",
        "mute alerts for the {alarm}", "you can ignore the {alarm}, I'm handling it",
        "the {alarm} is being serviced, don't warn me about it",
    ],
    "mute_all_safety": [
        "ignore all alarms for now", "don't tell me about any alarms, we're testing them",
        "stay completely silent, even for alarms", "no alerts at all, not even alarms",
        "mute every alarm until I say otherwise", "we're running drills, ignore all the alarms",
    ],
}


@dataclass(frozen=True)
class Sentence:
    """One sentence of the bank: its text, category, split and keywords it contains."""

    text: str
    category: str
    split: str
    keywords: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Instruction:
    """An instruction and its structured meaning.

    ``template_id`` identifies the paraphrase template (split-disjoint); ``text`` is the
    instruction without wake phrase.
    """

    text: str
    intent: str
    template_id: str
    target_labels: tuple[str, ...] = ()
    target_keywords: tuple[str, ...] = ()
    muted_labels: tuple[str, ...] = ()

    def meaning(self) -> dict:
        """The structured meaning written to the manifest."""
        return {
            "intent": self.intent,
            "target_labels": list(self.target_labels),
            "target_keywords": list(self.target_keywords),
            "muted_labels": list(self.muted_labels),
            "safety_muted": bool(self.muted_labels),
        }


_KW_RE = {kw: re.compile(rf"\b{re.escape(kw)}\b", re.IGNORECASE) for kw in KEYWORDS}


def find_keywords(text: str) -> tuple[str, ...]:
    """The :data:`KEYWORDS` that occur in ``text`` as whole words."""
    return tuple(kw for kw, rx in _KW_RE.items() if rx.search(text))


def keyword_char_end(text: str, keyword: str) -> int:
    """Index just after the first whole-word occurrence of ``keyword`` in ``text``."""
    m = _KW_RE[keyword].search(text)
    if m is None:
        raise ValueError(f"keyword {keyword!r} not in {text!r}")
    return m.end()


def _fill(template: str) -> list[str]:
    slots = {
        "person": _PEOPLE, "place": _PLACES, "time": _TIMES, "thing": _THINGS, "food": _FOODS,
        "room": _ROOMS, "genre": _GENRES, "number": _NUMBERS, "number2": _NUMBERS[::-1],
        "word": _WORDS, "lname": _LOOKALIKE_NAMES,
    }
    names = [n for n in slots if "{" + n + "}" in template]
    if not names:
        return [template]
    out = []
    for combo in itertools.product(*(slots[n] for n in names)):
        out.append(template.format(**dict(zip(names, combo, strict=True))))
    return out


@cache
def _bank() -> tuple[Sentence, ...]:
    out: dict[str, Sentence] = {}
    groups = [("everyday", _EVERYDAY), ("question", _QUESTIONS)]
    groups += [("keyword", v) for v in _KEYWORD_SENTENCES.values()]
    groups.append(("lookalike", _LOOKALIKE))
    for category, templates in groups:
        for t in templates:
            for text in _fill(t):
                text = text[0].upper() + text[1:]
                kws = find_keywords(text)
                cat = category
                if category == "everyday" and kws:
                    cat = "keyword"
                if category == "keyword" and not kws:
                    raise AssertionError(f"keyword sentence without keyword: {text!r}")
                if category == "lookalike" and kws:
                    raise AssertionError(f"look-alike sentence with a keyword: {text!r}")
                if text not in out:
                    out[text] = Sentence(text, cat, split_of("sentence", text.lower()), kws)
    return tuple(out.values())


@cache
def sentences(split: str, category: str) -> tuple[Sentence, ...]:
    """All sentences of ``category`` in ``split``, in a fixed order."""
    return tuple(s for s in _bank() if s.split == split and s.category == category)


@cache
def keyword_sentences(split: str, keyword: str) -> tuple[Sentence, ...]:
    """Sentences of ``split`` that contain ``keyword``."""
    return tuple(s for s in _bank() if s.split == split and keyword in s.keywords)


@cache
def instruction_templates(split: str, family: str) -> tuple[str, ...]:
    """Paraphrase templates of an instruction ``family`` assigned to ``split``."""
    assignment = stratified(f"instruction:{family}", _TEMPLATES[family])
    return tuple(t for t in _TEMPLATES[family] if assignment[t] == split)


def all_instruction_templates() -> dict[str, tuple[str, ...]]:
    """Every template of every family (for tests and documentation)."""
    return {k: tuple(v) for k, v in _TEMPLATES.items()}


def event_phrases(label: str) -> tuple[str, ...]:
    """Phrases completing "tell me if ..." for event ``label`` (empty if not requestable)."""
    return tuple(_EVENT_PHRASES.get(label, ()))


def requestable_labels() -> tuple[str, ...]:
    """Event labels an instruction can ask for."""
    return tuple(_EVENT_PHRASES)


def make_instruction(rng, split: str, intent: str, *, labels: tuple[str, ...] = (),
                     keywords: tuple[str, ...] = ()) -> Instruction:
    """Draw a paraphrase of ``intent`` from ``split``'s templates.

    Parameters
    ----------
    rng : numpy.random.Generator
        The stream's generator.
    split : str
        Split whose paraphrase templates are used.
    intent : str
        One of :data:`export.data.labels.INTENTS` except ``none``.
    labels : tuple of str
        ``watch_events``: the target labels (1 or 2); ``mute_safety``: the muted safety labels
        (one label, or all of :data:`SAFETY_LABELS`).
    keywords : tuple of str
        ``watch_keywords``: the target keyword(s).
    """
    def pick(seq):
        return seq[int(rng.integers(len(seq)))]

    if intent == "watch_events":
        t = pick(instruction_templates(split, "watch_events"))
        ev = " or ".join(pick(_EVENT_PHRASES[lb]) for lb in labels)
        return Instruction(t.format(ev=ev), intent, "watch_events:" + t, target_labels=labels)
    if intent == "watch_keywords":
        t = pick(instruction_templates(split, "watch_keywords"))
        kw = " or ".join(keywords)
        return Instruction(t.format(kw=kw), intent, "watch_keywords:" + t,
                           target_keywords=keywords)
    if intent in ("transcribe_only", "emergency_only"):
        t = pick(instruction_templates(split, intent))
        return Instruction(t, intent, f"{intent}:{t}")
    if intent == "mute_safety":
        if set(labels) == set(SAFETY_LABELS) and len(labels) > 1:
            t = pick(instruction_templates(split, "mute_all_safety"))
            return Instruction(t, intent, "mute_all_safety:" + t, muted_labels=SAFETY_LABELS)
        (label,) = labels
        t = pick(instruction_templates(split, "mute_safety"))
        return Instruction(t.format(alarm=pick(_ALARM_NOUNS[label])), intent,
                           "mute_safety:" + t, muted_labels=(label,))
    raise ValueError(f"no instruction templates for intent {intent!r}")
