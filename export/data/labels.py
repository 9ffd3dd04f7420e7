"""The label sets of the data, defined once, as data.

Event labels
------------
Each event label has a name, a *safety* flag and a description. Safety classes are alerted even
when no instruction is active, unless the active instruction mutes them; the others are alerted
only when the instruction asks for them ("tell me when the kettle whistles").

Why these four are safety classes: each one signals a danger to life or property where a
missed alert costs far more than a false one, and which a person who cannot hear (deaf or hard
of hearing users, headphones on, another room) would want to be told about unprompted:

- ``smoke_alarm`` — fire (ISO 8201 T3 pattern);
- ``co_alarm`` — carbon monoxide, odourless (T4 pattern);
- ``siren`` — an emergency vehicle approaching, or a civil-defence warning;
- ``glass_break`` — a break-in or an accident.

``car_horn`` is a warning too, but at home it is almost always a street sound: it is a
requestable class ("tell me if someone honks"), not an unprompted alert.

``other_sound`` holds real recordings that fit no class (music stings, UI clicks, shutters):
negatives the model must hear without responding to. It is never a target.

Instruction intents
-------------------
==================  ============  ==================  ===================================
intent              safety alert  requested alerts    what the instruction says
==================  ============  ==================  ===================================
``none``            yes           —                   (no instruction)
``watch_events``    yes           ``target_labels``   "tell me if the doorbell rings"
``watch_keywords``  yes           ``target_keywords`` "let me know when someone says dinner"
``transcribe_only`` yes           no                  "just transcribe"
``emergency_only``  yes           no                  "don't bother me unless it's an emergency"
``mute_safety``     not muted     no                  "I'm testing the smoke alarm, ignore it"
==================  ============  ==================  ===================================

A question addressed to the assistant with a wake phrase ("hey aim, what time is it") is an
explicit request and is answered under every intent. An instruction spoken to the assistant is
acknowledged.

Response kinds: ``alert`` (an event, a keyword), ``answer`` (an addressed question),
``acknowledge`` (a spoken instruction).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "EVENT_LABELS",
    "EVENT_NAMES",
    "INTENTS",
    "NEVER_TARGET",
    "RESPONSE_KINDS",
    "SAFETY_LABELS",
    "SPLITS",
    "WAKE_NAME",
    "EventLabel",
    "event_label",
]

SPLITS = ("train", "dev", "test")
WAKE_NAME = "aim"


@dataclass(frozen=True)
class EventLabel:
    """One sound-event class.

    Parameters
    ----------
    name : str
        Identifier used in manifests, bundles and the runtime.
    is_safety : bool
        Alerted without an instruction unless muted.
    description : str
        What sounds belong to the class.
    """

    name: str
    is_safety: bool
    description: str


EVENT_LABELS: tuple[EventLabel, ...] = (
    EventLabel("smoke_alarm", True,
               "smoke/fire alarm: ~3 kHz piezo tone in the ISO 8201 T3 pattern"),
    EventLabel("co_alarm", True,
               "carbon-monoxide alarm: ~3 kHz tone in the T4 pattern (4 short beeps, pause)"),
    EventLabel("siren", True, "emergency-vehicle or warning siren: wail, yelp, hi-lo"),
    EventLabel("glass_break", True, "glass shattering: crash followed by falling shards"),
    EventLabel("car_horn", False, "a car or truck horn: short toots or a long honk"),
    EventLabel("kettle_whistle", False, "a whistling kettle coming to the boil"),
    EventLabel("microwave_beep", False, "microwave/oven/appliance end-of-cycle beeps"),
    EventLabel("doorbell", False, "a ding-dong door chime"),
    EventLabel("knock", False, "knocking on a door"),
    EventLabel("phone_ring", False, "a telephone or mobile phone ringing"),
    EventLabel("alarm_clock", False, "an alarm clock or timer going off"),
    EventLabel("bell", False, "a single bell strike or chime"),
    EventLabel("notification", False, "a device notification chime, message or warning sound"),
    EventLabel("other_sound", False,
               "any other non-speech sound (music stings, clicks, shutters): never a target"),
)

EVENT_NAMES: tuple[str, ...] = tuple(e.name for e in EVENT_LABELS)
SAFETY_LABELS: tuple[str, ...] = tuple(e.name for e in EVENT_LABELS if e.is_safety)
NEVER_TARGET: frozenset[str] = frozenset({"other_sound"})

INTENTS: tuple[str, ...] = (
    "none",
    "watch_events",
    "watch_keywords",
    "transcribe_only",
    "emergency_only",
    "mute_safety",
)

RESPONSE_KINDS: tuple[str, ...] = ("alert", "answer", "acknowledge")

_BY_NAME = {e.name: e for e in EVENT_LABELS}


def event_label(name: str) -> EventLabel:
    """Return the :class:`EventLabel` called ``name`` (``KeyError`` naming the known ones)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown event label {name!r}; known: {', '.join(EVENT_NAMES)}") from None
