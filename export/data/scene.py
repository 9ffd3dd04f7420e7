"""One labelled stream: plan a scene, render it, derive the response targets.

A stream is a 30-120 s household scene: a background bed (noise and/or babble), foreground
speech by one to three people (one of them, "the user", sometimes talks to the assistant),
sound events (synthesised or real recordings), an instruction that may change mid-stream, an
optional room and telephone channel. Every random draw comes from one ``numpy.random.Generator``
seeded by ``SeedSequence([seed, split code, stream index])``, in a fixed order, so a stream is a
pure function of (split, seed, index, duration, config) — worker count and the TTS cache do not
change a byte.

Levels: the background bed is set to ``bg_dbfs`` (RMS, dBFS); each foreground item gets an SNR
drawn per item and is scaled so that its *active* level (RMS over its 20 ms frames within 20 dB
of its loudest frame: pauses inside a T4 pattern or a sentence do not count) is ``bg_dbfs +
snr_db``. Without background the SNR is ``null`` and items get an absolute level. Finally the
whole mix is scaled to a random RMS level (``output_dbfs``), and further down if it would clip;
one gain for everything keeps every SNR.

Label times are the *dry* source's first and last audible samples; reverberation tails are not
part of a label.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import background, hazards, sources, speech, text
from .labels import EVENT_NAMES, NEVER_TARGET, SAFETY_LABELS, event_label
from .splits import SPLIT_CODES, check_split

__all__ = ["SCHEMA", "SceneConfig", "alert_window", "compute_responses", "make_stream",
           "stream_id"]

SR = 16000
SCHEMA = "aim-edge-scenes/1"

#: latest alert time after an event's onset: onset + min(duration, _ALERT_SPAN) + _REPLY_SLACK
_ALERT_SPAN = 3.0
_REPLY_SLACK = 2.0


def alert_window(onset: float, offset: float) -> tuple[float, float]:
    """``(earliest, latest)`` of the alert a sound from ``onset`` to ``offset`` asks for."""
    return onset, onset + min(offset - onset, _ALERT_SPAN) + _REPLY_SLACK


@dataclass(frozen=True)
class SceneConfig:
    """What a stream may contain (probabilities per stream unless said otherwise)."""

    engines: tuple[str, ...] = speech.DEFAULT_ENGINES
    shippable_only: bool = False
    speech: bool = True
    events: bool = True
    p_background: float = 0.9
    p_babble: float = 0.2
    p_reverb: float = 0.7
    p_telephone: float = 0.08
    p_instruction: float = 0.75
    p_spoken_instruction: float = 0.5
    p_instruction_change: float = 0.3
    p_event_overlap: float = 0.2
    speech_snr_db: tuple[float, float] = (0.0, 30.0)
    event_snr_db: tuple[float, float] = (-5.0, 30.0)
    bg_dbfs: tuple[float, float] = (-55.0, -30.0)
    quiet_item_dbfs: tuple[float, float] = (-35.0, -18.0)
    output_dbfs: tuple[float, float] = (-40.0, -18.0)
    event_labels: tuple[str, ...] = EVENT_NAMES
    events_per_minute: float = 2.5
    #: share of everyday utterances replaced by wake-phrase look-alikes ("Hey, I'm back");
    #: 0 draws nothing extra, so builds without it are unchanged
    p_lookalike: float = 0.0
    engine_weights: dict = field(default_factory=lambda: {
        "espeak-ng": 0.45, "flite": 0.25, "festival": 0.15, "mbrola": 0.1, "pico": 0.05})

    def to_dict(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d


def stream_id(split: str, seed: int, index: int) -> str:
    return f"{split}-s{seed}-{index:06d}"


# ---------------------------------------------------------------------------------------------
# helpers


def _active_rms(x: np.ndarray) -> float:
    frame = 320
    n = x.size // frame
    if n == 0:
        return float(np.sqrt(np.mean(x**2) + 1e-20))
    e = np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1)
    act = e[e >= e.max() * 0.01]
    return float(np.sqrt(np.mean(act) + 1e-20))


def _db(x: float) -> float:
    return float(20 * np.log10(max(x, 1e-12)))


def _r(x: float) -> float:
    return round(float(x), 3)


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


class _Material:
    """The split's voices, recordings and sentence banks (computed once per process)."""

    _cache: dict = {}

    @classmethod
    def get(cls, split: str, cfg: SceneConfig) -> _Material:
        key = (split, cfg.engines, cfg.shippable_only, cfg.event_labels)
        if key not in cls._cache:
            cls._cache[key] = cls(split, cfg)
        return cls._cache[key]

    def __init__(self, split: str, cfg: SceneConfig):
        voices = [v for v in speech.list_voices(tuple(cfg.engines)) if v.split == split]
        if cfg.shippable_only:
            voices = [v for v in voices if v.shippable]
        self.voices_by_engine: dict[str, list[speech.Voice]] = {}
        for v in voices:
            self.voices_by_engine.setdefault(v.engine, []).append(v)
        if not voices:
            raise RuntimeError(f"no TTS voice of engines {cfg.engines} belongs to split {split}")
        recs = [r for r in sources.list_recordings() if r.split == split]
        if cfg.shippable_only:
            recs = [r for r in recs if r.shippable]
        self.recordings: dict[str, list[sources.Recording]] = {}
        for r in recs:
            self.recordings.setdefault(r.label, []).append(r)
        self.labels = [lb for lb in cfg.event_labels
                       if lb in hazards.SYNTHS or lb in self.recordings]
        self.engines = [e for e in cfg.engines if e in self.voices_by_engine]
        self.weights = np.array([cfg.engine_weights.get(e, 0.1) for e in self.engines])
        self.weights = self.weights / self.weights.sum()

    def voice(self, rng) -> speech.Voice:
        e = self.engines[int(rng.choice(len(self.engines), p=self.weights))]
        return _pick(rng, self.voices_by_engine[e])


@dataclass
class _Person:
    voice: speech.Voice
    params: dict
    rate: float


def _person(rng, mat: _Material) -> _Person:
    v = mat.voice(rng)
    return _Person(v, speech.engine_params(rng, v), float(rng.uniform(0.94, 1.06)))


# ---------------------------------------------------------------------------------------------
# instruction and event choice


_INTENT_WEIGHTS = {"watch_events": 0.35, "watch_keywords": 0.25, "transcribe_only": 0.1,
                   "emergency_only": 0.12, "mute_safety": 0.18}
_CANCEL = ("never mind, you can stop that now", "forget what I asked earlier",
           "cancel that instruction", "back to normal, please", "you can stop listening for that",
           "okay, that's done, go back to normal")


def _draw_instruction(rng, split: str, mat: _Material) -> text.Instruction:
    intents = list(_INTENT_WEIGHTS)
    w = np.array([_INTENT_WEIGHTS[i] for i in intents])
    intent = intents[int(rng.choice(len(intents), p=w / w.sum()))]
    if intent == "watch_events":
        requestable = [lb for lb in text.requestable_labels() if lb in mat.labels]
        k = 1 if rng.random() < 0.75 or len(requestable) < 2 else 2
        idx = rng.choice(len(requestable), size=k, replace=False)
        return text.make_instruction(rng, split, intent,
                                     labels=tuple(requestable[i] for i in sorted(idx)))
    if intent == "watch_keywords":
        return text.make_instruction(rng, split, intent, keywords=(_pick(rng, text.KEYWORDS),))
    if intent == "mute_safety":
        labels = (tuple(SAFETY_LABELS) if rng.random() < 0.25
                  else (_pick(rng, [lb for lb in SAFETY_LABELS if lb in mat.labels]),))
        return text.make_instruction(rng, split, intent, labels=labels)
    return text.make_instruction(rng, split, intent)


def _cancel_instruction(rng, split: str) -> text.Instruction:
    # "cancel" phrasings are few: split by hash of the phrase like the other templates
    from .splits import stratified

    assign = stratified("instruction:cancel", _CANCEL)
    options = [c for c in _CANCEL if assign[c] == split] or list(_CANCEL[:1])
    t = _pick(rng, options)
    return text.Instruction(t, "none", "cancel:" + t)


def _draw_event_label(rng, mat: _Material, instr: text.Instruction | None) -> str:
    if instr is not None and rng.random() < 0.5:
        wanted = [lb for lb in (*instr.target_labels, *instr.muted_labels) if lb in mat.labels]
        if wanted:
            return _pick(rng, wanted)
    safety = [lb for lb in mat.labels if lb in SAFETY_LABELS]
    other = [lb for lb in mat.labels if lb not in SAFETY_LABELS and lb not in NEVER_TARGET]
    never = [lb for lb in mat.labels if lb in NEVER_TARGET]
    u = rng.random()
    if safety and u < 0.4:
        return _pick(rng, safety)
    if never and u > 0.87:
        return _pick(rng, never)
    return _pick(rng, other or safety)


def _make_event(rng, label: str, mat: _Material) -> tuple[np.ndarray, dict]:
    recs = mat.recordings.get(label, [])
    use_rec = bool(recs) and (label not in hazards.SYNTHS or rng.random() < 0.5)
    if use_rec:
        r = _pick(rng, recs)
        x = np.array(sources.load_recording(r.path), dtype=np.float32)
        # small variation of a real recording: playback speed +-4 % (pitch and tempo)
        rate = float(rng.uniform(0.96, 1.04))
        if abs(rate - 1.0) > 1e-3:
            import soxr

            x = soxr.resample(x, SR, SR / rate, quality="HQ").astype(np.float32)
        info = {"source": "recording", "file": r.path, "package": r.package,
                "licence": r.licence, "recording_split": r.split, "shippable": r.shippable,
                "rate": _r(rate)}
        return x, info
    ev_rng = np.random.default_rng(rng.integers(2**63))
    x, params = hazards.synthesise(label, ev_rng)
    return x, {"source": "synth", "params": params, "shippable": True}


# ---------------------------------------------------------------------------------------------
# responses


def _instruction_at(instructions: list[dict], t: float) -> dict:
    for iv in instructions:
        if iv["start"] <= t < iv["end"]:
            return iv
    return instructions[-1]


def compute_responses(duration: float, speech_segs: list[dict], events: list[dict],
                      instructions: list[dict]) -> tuple[list[dict], list[list[float]]]:
    """Response targets and no-response intervals from the labels (see README.md)."""
    resp: list[dict] = []
    for i, ev in enumerate(events):
        meaning = _instruction_at(instructions, ev["onset"])["meaning"]
        label = ev["label"]
        safety = event_label(label).is_safety and label not in meaning["muted_labels"]
        requested = label in meaning["target_labels"]
        if safety or requested:
            latest = alert_window(ev["onset"], ev["offset"])[1]
            resp.append({"kind": "alert", "earliest": ev["onset"],
                         "latest": _r(min(latest, duration)),
                         "trigger": {"type": "event", "index": i, "label": label,
                                     "reason": "safety" if safety else "requested"}})
    for i, seg in enumerate(speech_segs):
        end = seg["end"]
        latest = _r(min(end + _REPLY_SLACK, duration))
        if seg["category"] == "question":
            resp.append({"kind": "answer", "earliest": end, "latest": latest,
                         "trigger": {"type": "question", "index": i}})
        elif seg["category"] == "instruction":
            resp.append({"kind": "acknowledge", "earliest": end, "latest": latest,
                         "trigger": {"type": "instruction", "index": i}})
        elif seg["keywords"]:
            for kw, t_kw in zip(seg["keywords"], seg["keyword_times"], strict=True):
                meaning = _instruction_at(instructions, t_kw)["meaning"]
                if kw in meaning["target_keywords"]:
                    resp.append({"kind": "alert", "earliest": t_kw, "latest": latest,
                                 "trigger": {"type": "keyword", "index": i, "keyword": kw}})
    resp.sort(key=lambda r: (r["earliest"], r["latest"]))
    # no-response: the complement of the union of the windows
    quiet: list[list[float]] = []
    t = 0.0
    for r in resp:
        if r["earliest"] > t:
            quiet.append([_r(t), _r(r["earliest"])])
        t = max(t, r["latest"])
    if t < duration:
        quiet.append([_r(t), _r(duration)])
    return resp, quiet


# ---------------------------------------------------------------------------------------------
# the stream


def _babble(rng, n: int, split: str, mat: _Material, cache_dir) -> tuple[np.ndarray, dict]:
    talkers = int(rng.integers(3, 6))
    bank = text.sentences(split, "everyday")
    out = np.zeros(n)
    voices = []
    for _ in range(talkers):
        p = _person(rng, mat)
        utts = []
        for _ in range(3):
            s = _pick(rng, bank)
            y = speech.render(p.voice, s.text, p.params, rate=p.rate, cache_dir=cache_dir)
            utts += [y, np.zeros(int(rng.uniform(0.1, 0.6) * SR))]
        loop = np.concatenate(utts)
        reps = int(np.ceil(n / loop.size)) + 1
        tiled = np.tile(loop, reps)
        off = int(rng.integers(loop.size))
        track = tiled[off: off + n]
        out += track / (np.sqrt(np.mean(track**2)) + 1e-12)
        voices.append(p.voice)
    info = {"talkers": [v.voice_id for v in voices],
            "shippable": all(v.shippable for v in voices)}
    return out / (np.sqrt(np.mean(out**2)) + 1e-12), info


def make_stream(split: str, seed: int, index: int, duration: float, cfg: SceneConfig,
                cache_dir: Path | None) -> tuple[np.ndarray, dict]:
    """Render one stream.

    Returns
    -------
    audio : numpy.ndarray
        int16 mono at 16 kHz, ``round(duration * 16000)`` samples.
    record : dict
        The manifest line (without the ``audio`` path).
    """
    check_split(split)
    seed_seq = [int(seed), SPLIT_CODES[split], int(index)]
    rng = np.random.default_rng(np.random.SeedSequence(seed_seq))
    mat = _Material.get(split, cfg)
    n = int(round(duration * SR))
    shippable = True

    # people: the user (talks to the assistant) and 0-2 others
    people = [_person(rng, mat) for _ in range(int(rng.integers(1, 4)))]
    user = people[0]

    # instruction plan
    instructions: list[dict] = []
    first: text.Instruction | None = None
    spoken_first = False
    if rng.random() < cfg.p_instruction:
        first = _draw_instruction(rng, split, mat)
        spoken_first = cfg.speech and rng.random() < cfg.p_spoken_instruction
    change_at: float | None = None
    if cfg.speech and rng.random() < cfg.p_instruction_change:
        change_at = float(rng.uniform(0.35, 0.7) * duration)
    current = first if not spoken_first else None
    instructions.append({"start": 0.0, "end": _r(duration),
                         "text": current.text if current else None,
                         "delivery": "text" if current else None,
                         "template_id": current.template_id if current else None,
                         "meaning": (current.meaning() if current else
                                     text.Instruction("", "none", "").meaning())})

    def set_instruction(at: float, ins: text.Instruction, delivery: str) -> None:
        instructions[-1]["end"] = _r(at)
        instructions.append({"start": _r(at), "end": _r(duration), "text": ins.text,
                             "delivery": delivery, "template_id": ins.template_id,
                             "meaning": ins.meaning()})

    # background
    bg = np.zeros(n)
    bg_info: dict = {"kind": "none", "dbfs": None}
    bg_dbfs = None
    if rng.random() < cfg.p_background:
        kind = _pick(rng, background.NOISE_KINDS)
        noise, nparams = background.noise_bed(np.random.default_rng(rng.integers(2**63)), n,
                                              kind)
        bg_dbfs = float(rng.uniform(*cfg.bg_dbfs))
        bg_info = {"kind": kind, "params": nparams, "dbfs": _r(bg_dbfs)}
        if cfg.speech and rng.random() < cfg.p_babble:
            bab, binfo = _babble(rng, n, split, mat, cache_dir)
            mix = float(rng.uniform(0.3, 0.9))
            noise = np.sqrt(1 - mix**2) * noise + mix * bab
            noise /= np.sqrt(np.mean(noise**2)) + 1e-12
            shippable = shippable and binfo.pop("shippable")
            bg_info["babble"] = {**binfo, "share": _r(mix)}
        bg = noise * 10 ** (bg_dbfs / 20)

    room = None
    if rng.random() < cfg.p_reverb:
        room = {"rt60_s": _r(rng.uniform(0.15, 0.9))}
    telephone = rng.random() < cfg.p_telephone

    fg = np.zeros(n + SR)  # room for reverberation tails
    speech_segs: list[dict] = []
    events: list[dict] = []
    snrs: list[float] = []

    def place(x: np.ndarray, start: float, snr_range) -> float | None:
        """Scale ``x`` to its SNR, reverberate, add into fg at ``start``; return the SNR."""
        level = _active_rms(x)
        if bg_dbfs is not None:
            snr = float(rng.uniform(*snr_range))
            target = bg_dbfs + snr
        else:
            snr = None
            target = float(rng.uniform(*cfg.quiet_item_dbfs))
        y = x * (10 ** (target / 20) / level)
        if room is not None:
            rir, _ = background.room_impulse_response(
                np.random.default_rng(rng.integers(2**63)), room["rt60_s"])
            y = background.reverberate(y, rir)
        s = int(round(start * SR))
        e = min(fg.size, s + y.size)
        fg[s:e] += y[: e - s]
        if snr is not None:
            snrs.append(snr)
        return None if snr is None else _r(snr)

    def say(p: _Person, sent_text: str, category: str, start: float,
            addressed: bool) -> tuple[np.ndarray, dict]:
        y = speech.render(p.voice, sent_text, p.params, rate=p.rate, cache_dir=cache_dir)
        dur = y.size / SR
        kws = [] if addressed else list(text.find_keywords(sent_text))
        # keyword time: proportional to the character position (TTS gives no word timing)
        kw_times = [_r(start + dur * text.keyword_char_end(sent_text, k) / len(sent_text))
                    for k in kws]
        seg = {"start": _r(start), "end": _r(start + dur), "transcript": sent_text,
               "category": category, "is_addressed_to_assistant": addressed,
               "engine": p.voice.engine, "voice_id": p.voice.voice_id,
               "speaker": p.voice.speaker, "voice_split": p.voice.split,
               "engine_params": p.params, "rate": _r(p.rate),
               "keywords": kws, "keyword_times": kw_times,
               "keyword_timing": "approx_char_proportional" if kws else None}
        return y, seg

    t = float(rng.uniform(0.3, 2.0))
    end_margin = 0.3
    pending_change = change_at
    first_pending = spoken_first
    n_events_target = max(1, int(rng.poisson(cfg.events_per_minute * duration / 60)))
    n_events = 0
    last_speech: tuple[float, float] | None = None
    guard = 0
    while t < duration - end_margin and guard < 400:
        guard += 1
        active = _instruction_at(instructions, t)
        ins_now = None
        if active["text"] is not None:
            ins_now = text.Instruction(active["text"], active["meaning"]["intent"], "",
                                       tuple(active["meaning"]["target_labels"]),
                                       tuple(active["meaning"]["target_keywords"]),
                                       tuple(active["meaning"]["muted_labels"]))
        # what comes next
        if first_pending or (pending_change is not None and t >= pending_change):
            if first_pending:
                ins = first
                first_pending = False
            else:
                pending_change = None
                ins = (_cancel_instruction(rng, split) if active["text"] and rng.random() < 0.3
                       else _draw_instruction(rng, split, mat))
            assert ins is not None
            utter = f"{_pick(rng, text.WAKE_PHRASES)}, {ins.text}"
            utter = utter[0].upper() + utter[1:] + "."
            y, seg = say(user, utter, "instruction", t, True)
            if t + y.size / SR > duration - end_margin:
                break
            seg["snr_db"] = place(y, t, cfg.speech_snr_db)
            seg["instruction_template_id"] = ins.template_id
            speech_segs.append(seg)
            set_instruction(seg["end"], ins, "spoken")
            last_speech = (t, seg["end"])
            t = seg["end"] + float(rng.uniform(0.5, 2.5))
            continue
        choices = []
        if cfg.events and n_events < n_events_target and mat.labels:
            choices.append(("event", 0.4))
        if cfg.speech:
            kw_w = 0.25 if ins_now is not None and ins_now.target_keywords else 0.08
            choices += [("everyday", 0.4), ("question", 0.12), ("keyword", kw_w)]
        if not choices:
            break
        names = [c for c, _ in choices]
        w = np.array([p for _, p in choices])
        kind = names[int(rng.choice(len(names), p=w / w.sum()))]
        if kind == "event":
            label = _draw_event_label(rng, mat, ins_now)
            x, info = _make_event(rng, label, mat)
            start = t
            if last_speech is not None and rng.random() < cfg.p_event_overlap:
                s0, s1 = last_speech
                start = max(s0 + 0.2, float(rng.uniform(s0, s1)))
            if start + x.size / SR > duration - end_margin:
                if n_events == 0 and x.size / SR < duration - end_margin - 0.2:
                    start = duration - end_margin - x.size / SR
                else:
                    n_events += 1  # too long for what is left: skip it
                    continue
            snr = place(x, start, cfg.event_snr_db)
            shippable = shippable and info.pop("shippable")
            events.append({"onset": _r(start), "offset": _r(start + x.size / SR),
                           "label": label, "is_safety": event_label(label).is_safety,
                           "snr_db": snr, **info})
            n_events += 1
            t = max(t, start + x.size / SR) + float(rng.uniform(0.3, 3.0))
            continue
        p = user if kind == "question" else _pick(rng, people)
        if kind == "question":
            bank = text.sentences(split, "question")
            body = _pick(rng, bank).text
            utter = f"{_pick(rng, text.WAKE_PHRASES)}, {body[0].lower()}{body[1:]}"
            utter = utter[0].upper() + utter[1:]
            addressed = True
        elif kind == "keyword":
            if ins_now is not None and ins_now.target_keywords and rng.random() < 0.7:
                kw = _pick(rng, ins_now.target_keywords)
            else:
                kw = _pick(rng, text.KEYWORDS)
            bank = text.keyword_sentences(split, kw)
            utter = _pick(rng, bank).text
            addressed = False
        elif cfg.p_lookalike > 0 and rng.random() < cfg.p_lookalike:
            utter = _pick(rng, text.sentences(split, "lookalike")).text
            addressed = False
            kind = "lookalike"
        else:
            utter = _pick(rng, text.sentences(split, "everyday")).text
            addressed = False
        category = kind if kind in ("question", "lookalike") else (
            "keyword" if text.find_keywords(utter) and not addressed else "everyday")
        y, seg = say(p, utter, category, t, addressed)
        if t + y.size / SR > duration - end_margin:
            break
        seg["snr_db"] = place(y, t, cfg.speech_snr_db)
        speech_segs.append(seg)
        last_speech = (t, seg["end"])
        t = seg["end"] + float(rng.uniform(0.2, 3.0))

    for seg in speech_segs:
        shippable = shippable and bool(speech.ENGINE_INFO[seg["engine"]]["shippable"])

    mix = fg[:n] + bg
    if telephone:
        mix = background.telephone_band(mix)
    # overall level: the whole mix to a random RMS, then down if it would clip (SNRs unchanged)
    rms = float(np.sqrt(np.mean(mix**2))) if n else 0.0
    gain = 10 ** (float(rng.uniform(*cfg.output_dbfs)) / 20) / rms if rms > 0 else 1.0
    peak = float(np.max(np.abs(mix))) * gain if n else 0.0
    if peak > 0.98:
        gain *= 0.98 / peak
    mix = mix * gain
    audio = np.clip(np.round(mix * 32767.0), -32768, 32767).astype(np.int16)

    responses, quiet = compute_responses(duration, speech_segs, events, instructions)
    record = {
        "schema": SCHEMA,
        "id": stream_id(split, seed, index),
        "split": split,
        "seed": int(seed),
        "index": int(index),
        "synthesis_seed": seed_seq,
        "sample_rate": SR,
        "duration": _r(duration),
        "num_samples": n,
        "shippable": bool(shippable),
        "background": bg_info,
        "room": room,
        "channel": "telephone" if telephone else "full",
        "output_gain_db": _r(_db(gain)),
        "speech": speech_segs,
        "events": events,
        "instructions": instructions,
        "responses": responses,
        "no_response": quiet,
        "snrs_db": [_r(s) for s in snrs],
    }
    return audio, record
