"""Synthesised sound events with realistic variation.

Every generator takes a numpy ``Generator`` and returns ``(audio, params)``: float32 mono at
16 kHz, peak-normalised to 1, starting at the first audible sample and ending at the last
(so the labelled onset/offset are the array's ends), and the drawn parameters for the manifest.
Devices differ, so every timing and frequency is drawn from a range around the nominal value;
each docstring says what the range is based on.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SYNTHS", "synthesise"]

SR = 16000


def _t(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / SR


def _ramp(x: np.ndarray, ms: float) -> np.ndarray:
    n = min(int(ms * SR / 1000), x.size // 2)
    if n > 0:
        r = np.linspace(0.0, 1.0, n)
        x[:n] *= r
        x[-n:] *= r[::-1]
    return x


def _norm(x: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(x)))
    return (x / peak if peak > 0 else x).astype(np.float32)


def _piezo_tone(rng, dur: float, f0: float) -> np.ndarray:
    """A piezo sounder: a near-square wave (odd harmonics below Nyquist) with slight drift."""
    n = int(dur * SR)
    t = _t(n)
    drift = 1.0 + 0.004 * np.sin(2 * np.pi * rng.uniform(0.5, 3.0) * t + rng.uniform(0, 6.28))
    phase = 2 * np.pi * np.cumsum(f0 * drift) / SR
    x = np.sin(phase)
    for k, a in ((3, 0.25), (5, 0.1)):
        if k * f0 < SR / 2 - 200:
            x += a * np.sin(k * phase)
    # piezo discs ring at sub-multiples too: a weak rattle at f0/2
    x += rng.uniform(0.0, 0.08) * np.sin(phase / 2)
    return _ramp(x, rng.uniform(2.0, 8.0))


def _pattern(rng, on_off: list[tuple[float, float]], tone) -> np.ndarray:
    parts = []
    for on, off in on_off:
        parts.append(tone(on))
        parts.append(np.zeros(int(off * SR)))
    x = np.concatenate(parts[:-1])  # no trailing silence: the event ends with the last beep
    return x


def _temporal_pattern(rng, cycles: int, *, pulses: int, on: float, gap: float, pause: float
                      ) -> list[tuple[float, float]]:
    """(on, off) seconds of an ISO 8201-style temporal pattern, each interval drawn within
    +-10 %: ``pulses`` pulses ``on`` long, ``gap`` apart, then ``pause``, ``cycles`` times; the
    final pause is dropped (its draw still happens, so the random stream stays as it was)."""
    def tol(v: float) -> float:
        return v * rng.uniform(0.9, 1.1)

    seq = []
    for c in range(cycles):
        for i in range(pulses):
            last = i == pulses - 1
            off = tol(pause) if last else tol(gap)
            seq.append((tol(on), 0.0 if last and c == cycles - 1 else off))
    return seq


def smoke_alarm(rng):
    """Smoke alarm: ISO 8201 / NFPA 72 temporal-three (T3) pattern on a ~3 kHz piezo.

    T3: three 0.5 s ON pulses separated by 0.5 s OFF, then 1.5 s OFF, repeated; ISO 8201 allows
    ±10 % on each interval, so each is drawn within that. Tone 2.9-3.5 kHz (typical piezo
    sounders, ~3.1 kHz nominal), near-square (odd harmonics) with slight frequency drift.
    1 to 4 cycles (4 s each).
    """
    f0 = rng.uniform(2900, 3500)
    cycles = int(rng.integers(1, 5))
    seq = _temporal_pattern(rng, cycles, pulses=3, on=0.5, gap=0.5, pause=1.5)
    x = _pattern(rng, seq, lambda d: _piezo_tone(rng, d, f0))
    return _norm(x), {"pattern": "T3", "f0_hz": round(f0, 1), "cycles": cycles}


def co_alarm(rng):
    """Carbon-monoxide alarm: temporal-four (T4) pattern (NFPA 720 / UL 2034 / EN 50291 units).

    T4: four 0.1 s ON pulses separated by 0.1 s OFF, then 5 s OFF, repeated (±10 %). Piezo tone
    2.9-3.5 kHz. 1 to 3 cycles (the 5 s pause between cycles is part of the event).
    """
    f0 = rng.uniform(2900, 3500)
    cycles = int(rng.integers(1, 4))
    seq = _temporal_pattern(rng, cycles, pulses=4, on=0.1, gap=0.1, pause=5.0)
    x = _pattern(rng, seq, lambda d: _piezo_tone(rng, d, f0))
    return _norm(x), {"pattern": "T4", "f0_hz": round(f0, 1), "cycles": cycles}


def _horn_wave(phase: np.ndarray, bright: float) -> np.ndarray:
    # a band-limited sawtooth-ish wave: harmonics with 1/k^bright roll-off
    x = np.zeros_like(phase)
    for k in range(1, 9):
        x += np.sin(k * phase) / k**bright
    return x


def siren(rng):
    """Emergency siren: wail, yelp or hi-lo, passing by.

    - wail: slow sweep 600-700 Hz up to 1300-1600 Hz, 3-6 s per up/down cycle (US/EU electronic
      sirens);
    - yelp: the same range swept 3-4 times a second;
    - hi-lo: two tones (e.g. 450/600 Hz UK/EU, 660/880 Hz variants) alternating every 0.4-1 s.
    Harmonic-rich (horn loudspeaker), with a slow amplitude swell and a small Doppler pitch
    shift of a passing vehicle. Duration 3-10 s.
    """
    kind = str(rng.choice(["wail", "yelp", "hilo"]))
    dur = rng.uniform(3.0, 10.0)
    n = int(dur * SR)
    t = _t(n)
    if kind in ("wail", "yelp"):
        lo, hi = rng.uniform(600, 700), rng.uniform(1300, 1600)
        period = rng.uniform(3.0, 6.0) if kind == "wail" else rng.uniform(0.25, 0.35)
        tri = 2 * np.abs((t / period + rng.uniform(0, 1)) % 1.0 - 0.5)  # 0..1 triangle
        f = lo + (hi - lo) * tri
        params = {"kind": kind, "lo_hz": round(lo), "hi_hz": round(hi),
                  "period_s": round(period, 3)}
    else:
        pair = [(450, 600), (660, 880), (560, 770)][int(rng.integers(3))]
        scale = rng.uniform(0.95, 1.05)
        half = rng.uniform(0.4, 1.0)
        f = np.where((t // half) % 2 == 0, pair[0], pair[1]) * scale
        params = {"kind": kind, "tones_hz": [round(pair[0] * scale), round(pair[1] * scale)],
                  "half_period_s": round(half, 3)}
    # Doppler: approaching then receding (+-2 %)
    tc = rng.uniform(0.3, 0.7) * dur
    doppler = 1.0 + 0.02 * np.tanh((tc - t) / rng.uniform(0.5, 2.0))
    phase = 2 * np.pi * np.cumsum(f * doppler) / SR
    x = _horn_wave(phase, rng.uniform(1.0, 1.6))
    env = np.exp(-(((t - tc) / (dur * rng.uniform(0.4, 0.9))) ** 2))
    x *= 0.3 + 0.7 * env
    params["doppler_center_s"] = round(tc, 2)
    return _norm(_ramp(x, 30)), params


def car_horn(rng):
    """Car horn: two electromagnetic horns a major/minor third apart (~400 + ~500 Hz).

    Vehicle horns are typically 300-500 Hz "low" and 400-600 Hz "high" units sounding together;
    the diaphragm's buzz is harmonic-rich (sawtooth-like, slightly clipped). Patterns: a short
    toot (0.15-0.4 s), a double toot, or a long honk (0.8-2.5 s).
    """
    f_lo = rng.uniform(330, 450)
    ratio = rng.choice([1.19, 1.26])  # minor / major third
    pattern = str(rng.choice(["toot", "double", "long"]))
    if pattern == "toot":
        seq = [(rng.uniform(0.15, 0.4), 0.0)]
    elif pattern == "double":
        seq = [(rng.uniform(0.12, 0.3), rng.uniform(0.08, 0.2)), (rng.uniform(0.15, 0.4), 0.0)]
    else:
        seq = [(rng.uniform(0.8, 2.5), 0.0)]

    def tone(d):
        t = _t(int(d * SR))
        x = _horn_wave(2 * np.pi * f_lo * t, 1.0) + _horn_wave(2 * np.pi * f_lo * ratio * t, 1.0)
        x = np.tanh(1.5 * x / np.max(np.abs(x)))
        return _ramp(x, 10)

    x = _pattern(rng, seq, tone)
    return _norm(x), {"pattern": pattern, "f_lo_hz": round(f_lo), "ratio": float(ratio)}


def kettle_whistle(rng):
    """Whistling kettle: an edge-tone whistle that starts breathy and rises to a steady pitch.

    A stove-top whistle sounds at ~1.5-3 kHz; as the steam flow builds the tone emerges from
    turbulent noise, its pitch rises by ~10-20 % and it gets louder; flow fluctuations give
    a flutter (4-9 Hz). Band-passed noise plus an FM sine, 3-8 s.
    """
    dur = rng.uniform(3.0, 8.0)
    n = int(dur * SR)
    t = _t(n)
    f_end = rng.uniform(1500, 3000)
    rise = rng.uniform(0.8, 2.5)
    f = f_end * (1 - rng.uniform(0.1, 0.2) * np.exp(-t / rise))
    flutter = 1 + 0.01 * np.sin(2 * np.pi * rng.uniform(4, 9) * t)
    phase = 2 * np.pi * np.cumsum(f * flutter) / SR
    tone = np.sin(phase) + 0.15 * np.sin(2 * phase)
    amp = 1 - np.exp(-t / rise)
    noise = rng.standard_normal(n)
    # noise band-passed around the whistle by modulating onto the carrier
    breath = noise * np.sin(phase) * 0.3
    x = amp * tone + (0.4 + 0.6 * np.exp(-t / rise)) * breath * 0.5
    return _norm(_ramp(x, 40)), {"f_hz": round(f_end), "rise_s": round(rise, 2),
                                 "dur_s": round(dur, 2)}


def microwave_beep(rng):
    """Microwave/oven end-of-cycle beeps: 3-5 beeps of a 1.8-3 kHz piezo buzzer.

    Beep 0.15-0.5 s on, 0.15-0.4 s off (appliances vary widely); square-ish tone.
    """
    f0 = rng.uniform(1800, 3000)
    k = int(rng.integers(3, 6))
    on = rng.uniform(0.15, 0.5)
    off = rng.uniform(0.15, 0.4)
    seq = [(on * rng.uniform(0.97, 1.03), off if i < k - 1 else 0.0) for i in range(k)]
    x = _pattern(rng, seq, lambda d: _piezo_tone(rng, d, f0))
    return _norm(x), {"f0_hz": round(f0), "beeps": k, "on_s": round(on, 3)}


def _chime(rng, f: float, decay: float, dur: float) -> np.ndarray:
    # struck metal bar: inharmonic partials 1, 2.76, 5.40 (free-free bar modes), each decaying
    # faster the higher it is, and a short strike transient
    t = _t(int(dur * SR))
    x = np.zeros_like(t)
    for ratio, amp in ((1.0, 1.0), (2.756, 0.5), (5.404, 0.25), (3.0, 0.1)):
        if f * ratio < SR / 2 - 200:
            x += amp * np.exp(-t * ratio / decay) * np.sin(2 * np.pi * f * ratio * t
                                                           + rng.uniform(0, 6.28))
    strike = rng.standard_normal(t.size) * np.exp(-t / 0.004) * 0.3
    return _ramp(x + strike, 2)


def doorbell(rng):
    """Ding-dong door chime: two struck bars, a major third apart (e.g. E5 then C5).

    Mechanical chimes strike a higher then a lower tone bar 0.3-0.7 s apart; partials of a free
    bar (1, 2.76, 5.40), decay 0.6-1.5 s. Sometimes rung twice (two ding-dongs).
    """
    f_hi = rng.uniform(600, 900)
    ratio = rng.choice([1.26, 1.19, 1.33])
    decay = rng.uniform(0.6, 1.5)
    gap = rng.uniform(0.3, 0.7)
    rings = int(rng.choice([1, 1, 2]))
    tail = min(3 * decay, 2.5)
    ding = _chime(rng, f_hi, decay, gap)
    dong = _chime(rng, f_hi / ratio, decay, tail)
    one = np.concatenate([ding, dong])
    parts = [one]
    if rings == 2:
        parts = [one[: int((gap + rng.uniform(0.5, 1.0)) * SR)], one]
    x = np.concatenate(parts)
    # cut the decayed tail where it drops 50 dB below the peak so the label ends with the sound
    env = np.abs(x)
    idx = np.flatnonzero(env > env.max() * 10 ** (-50 / 20))
    return _norm(x[: idx[-1] + 1]), {"f_hi_hz": round(f_hi), "ratio": float(ratio),
                                     "decay_s": round(decay, 2), "rings": rings}


def knock(rng):
    """Knocking on a door: 2-5 knuckle raps, sometimes two groups.

    Each rap is a click (broadband, ~2 ms) exciting the door panel's low resonances
    (80-250 Hz, plus a 400-900 Hz mode), damped within 30-80 ms. Raps 0.12-0.3 s apart, with
    human timing jitter.
    """
    groups = int(rng.choice([1, 1, 2]))
    f1, f2 = rng.uniform(80, 250), rng.uniform(400, 900)
    damp = rng.uniform(0.03, 0.08)
    spacing = rng.uniform(0.12, 0.3)
    knocks = []
    for g in range(groups):
        m = int(rng.integers(2, 6))
        base = g * (m * spacing + rng.uniform(0.6, 1.2)) if g else 0.0
        knocks += [base + i * spacing * rng.uniform(0.85, 1.15) for i in range(m)]
    rap_len = int(5 * damp * SR)
    total = int((knocks[-1]) * SR) + rap_len
    x = np.zeros(total)
    tr = _t(rap_len)
    for k in knocks:
        a = rng.uniform(0.6, 1.0)
        body = np.sin(2 * np.pi * f1 * tr) + 0.5 * np.sin(2 * np.pi * f2 * tr)
        rap = np.exp(-tr / damp) * body + rng.standard_normal(rap_len) * np.exp(-tr / 0.002)
        s = int(k * SR)
        x[s: s + rap_len] += a * rap
    env = np.abs(x)
    idx = np.flatnonzero(env > env.max() * 10 ** (-50 / 20))
    return _norm(x[: idx[-1] + 1]), {"knocks": len(knocks), "f1_hz": round(f1),
                                     "spacing_s": round(spacing, 3)}


def glass_break(rng):
    """Glass breaking: an impact crash then falling, tinkling shards.

    The impact is a broadband noise burst (high-passed, 20-60 ms decay); shards are many
    damped high-frequency resonances (2-7 kHz, 5-40 ms decay) whose density falls off over
    0.4-1.5 s as pieces come to rest, with a few later bounces.
    """
    dur = rng.uniform(0.6, 1.8)
    n = int(dur * SR)
    t = _t(n)
    crash_decay = rng.uniform(0.02, 0.06)
    crash = rng.standard_normal(n) * np.exp(-t / crash_decay)
    crash = np.diff(crash, prepend=0.0)  # first difference: tilt to high frequencies
    x = crash * 2.0
    n_shards = int(rng.integers(25, 80))
    fall = rng.uniform(0.15, 0.5)
    onsets = np.minimum(rng.exponential(fall, n_shards), dur - 0.05)
    for o in onsets:
        f = rng.uniform(2000, 7000)
        d = rng.uniform(0.005, 0.04)
        length = min(int(6 * d * SR), n - int(o * SR))
        ts = _t(length)
        s = int(o * SR)
        x[s: s + length] += (rng.uniform(0.1, 0.6) * np.exp(-ts / d)
                             * np.sin(2 * np.pi * f * ts + rng.uniform(0, 6.28)))
    env = np.abs(x)
    idx = np.flatnonzero(env > env.max() * 10 ** (-50 / 20))
    x = x[idx[0]: idx[-1] + 1]
    return _norm(_ramp(x, 1)), {"shards": n_shards, "dur_s": round(dur, 2)}


def phone_ring(rng):
    """Telephone ringing: classic line ring cadences or an electronic trill.

    - ``uk``: 400 + 450 Hz, 0.4 s on, 0.2 s off, 0.4 s on, 2 s off (BT cadence);
    - ``us``: 440 + 480 Hz, 2 s on, 4 s off (North American ring);
    - ``trill``: an electronic ringer alternating ~1.0/1.3 kHz at 16-25 Hz, 1 s on, 2 s off.
    Frequencies vary by ±3 %, 1-3 cycles (the last one without its trailing pause).
    """
    kind = str(rng.choice(["uk", "us", "trill"]))
    s = rng.uniform(0.97, 1.03)
    cycles = int(rng.integers(1, 4))

    def dual(f1, f2):
        def tone(d):
            t = _t(int(d * SR))
            return _ramp(np.sin(2 * np.pi * f1 * s * t) + np.sin(2 * np.pi * f2 * s * t), 5)
        return tone

    if kind == "uk":
        unit = [(0.4, 0.2), (0.4, 2.0)]
        tone = dual(400, 450)
    elif kind == "us":
        unit = [(2.0, 4.0)]
        tone = dual(440, 480)
    else:
        rate = rng.uniform(16, 25)

        def tone(d):
            t = _t(int(d * SR))
            f = np.where(np.sin(2 * np.pi * rate * t) >= 0, 1000 * s, 1300 * s)
            return _ramp(np.sign(np.sin(2 * np.pi * np.cumsum(f) / SR)) * 0.5, 5)

        unit = [(1.0, 2.0)]
    seq = unit * cycles
    seq[-1] = (seq[-1][0], 0.0)
    return _norm(_pattern(rng, seq, tone)), {"kind": kind, "cycles": cycles}


def alarm_clock(rng):
    """Alarm clock: a digital clock's beep groups or a mechanical twin-bell ringer.

    - ``digital``: groups of 4 beeps (2-4 kHz, 60-90 ms on/off), a group every 0.8-1.2 s,
      3-8 groups;
    - ``bell``: a hammer striking a bell 14-22 times a second for 2-5 s (bell partials 1, 2.76,
      5.4 of a 1.5-3 kHz bell), with a little strike-to-strike variation.
    """
    kind = str(rng.choice(["digital", "bell"]))
    if kind == "digital":
        f0 = rng.uniform(2000, 4000)
        on = rng.uniform(0.06, 0.09)
        period = rng.uniform(0.8, 1.2)
        groups = int(rng.integers(3, 9))
        seq = []
        for g in range(groups):
            for i in range(4):
                off = on if i < 3 else period - 7 * on
                seq.append((on, off if g < groups - 1 or i < 3 else 0.0))
        x = _pattern(rng, seq, lambda d: _piezo_tone(rng, d, f0))
        return _norm(x), {"kind": kind, "f0_hz": round(f0), "groups": groups}
    rate = rng.uniform(14, 22)
    dur = rng.uniform(2.0, 5.0)
    f = rng.uniform(1500, 3000)
    n = int(dur * SR)
    x = np.zeros(n + int(0.3 * SR))
    strike = _chime(rng, f, 0.15, 0.3)
    for k in range(int(dur * rate)):
        s = int(k / rate * SR)
        x[s: s + strike.size] += rng.uniform(0.7, 1.0) * strike
    env = np.abs(x)
    idx = np.flatnonzero(env > env.max() * 10 ** (-50 / 20))
    return _norm(x[: idx[-1] + 1]), {"kind": kind, "rate_hz": round(rate, 1), "f_hz": round(f)}


def bell(rng):
    """A bell: 1-3 strikes of a struck bell/bar (partials 1, 2.76, 5.4), 400-2000 Hz, decay
    0.5-2 s, strikes 0.4-1.2 s apart."""
    f = rng.uniform(400, 2000)
    decay = rng.uniform(0.5, 2.0)
    k = int(rng.integers(1, 4))
    gap = rng.uniform(0.4, 1.2)
    tail = min(3 * decay, 3.0)
    one = _chime(rng, f, decay, tail)
    x = np.zeros(int((k - 1) * gap * SR) + one.size)
    for i in range(k):
        s = int(i * gap * SR)
        x[s: s + one.size] += one
    env = np.abs(x)
    idx = np.flatnonzero(env > env.max() * 10 ** (-50 / 20))
    return _norm(x[: idx[-1] + 1]), {"f_hz": round(f), "decay_s": round(decay, 2),
                                     "strikes": k}


#: event label -> generator
SYNTHS = {
    "smoke_alarm": smoke_alarm,
    "co_alarm": co_alarm,
    "siren": siren,
    "car_horn": car_horn,
    "kettle_whistle": kettle_whistle,
    "microwave_beep": microwave_beep,
    "doorbell": doorbell,
    "knock": knock,
    "glass_break": glass_break,
    "phone_ring": phone_ring,
    "alarm_clock": alarm_clock,
    "bell": bell,
}


def synthesise(label: str, rng) -> tuple[np.ndarray, dict]:
    """Synthesise one event of ``label`` (see :data:`SYNTHS`)."""
    try:
        fn = SYNTHS[label]
    except KeyError:
        raise ValueError(f"no synthesiser for {label!r}; have {', '.join(SYNTHS)}") from None
    return fn(rng)
