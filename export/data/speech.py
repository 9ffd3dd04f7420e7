"""Speech from text-to-speech engines: voice inventory, rendering, the on-disk render cache.

Engines (Debian packages; each voice's licence is in :data:`ENGINE_INFO`):

- ``espeak-ng`` — formant synthesis, 22.05 kHz. Speakers are the *variants* (``+f3``,
  ``+Storm``, ...; about 100), each combined with the English accents of :data:`ESPEAK_BASES`.
  The split is decided per variant, so a variant's timbre never appears in two splits.
- ``flite`` — CMU diphone/clustergen voices kal, kal16, awb, rms, slt (16 kHz).
- ``festival`` — festvox kal_diphone and cmu_us_slt_arctic_hts (any other installed
  ``voice_*`` is used too). One persistent ``festival --interactive`` per worker process:
  starting festival costs ~1 s, an utterance ~0.03 s (diphone) to ~0.3 s (HTS).
- ``mbrola`` (through espeak-ng ``mb-*`` voices) and ``pico`` (``pico2wave``): non-free,
  used only when installed, never shippable.

Speakers shared between engines (flite slt and festival's slt HTS voice are the same woman;
flite kal/kal16 and festival kal_diphone the same man) are one speaker, so they sit in one split.

Renders are deterministic given engine, voice, parameters and text (checked byte for byte in
``tests/test_data_speech.py``); the cache only saves time: a cached file holds exactly the bytes
the engine wrote. The cache key is a hash of engine, engine version, voice, parameters and text.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from .splits import split_of

__all__ = [
    "ENGINE_INFO",
    "MissingToolError",
    "Voice",
    "check_engines",
    "default_cache_dir",
    "list_voices",
    "render",
]

SR = 16000

ESPEAK_BASES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                "en-gb-x-gbcwmd", "en-029", "en-us-nyc")

#: engine -> (Debian packages to install, licence of engine + voice data, shippable)
ENGINE_INFO: dict[str, dict] = {
    "espeak-ng": {"install": "apt-get install espeak-ng", "packages": ["espeak-ng",
                  "espeak-ng-data"], "licence": "GPL-3.0-or-later", "shippable": True},
    "flite": {"install": "apt-get install flite", "packages": ["flite", "libflite1"],
              "licence": "BSD-style (CMU Flite licence; voices from CMU ARCTIC, free)",
              "shippable": True},
    "festival": {"install": "apt-get install festival festvox-kallpc16k festvox-us-slt-hts",
                 "packages": ["festival", "festvox-kallpc16k", "festvox-us-slt-hts"],
                 "licence": "festival: BSD-style (Edinburgh); kal_diphone: BSD-style "
                            "(Black & Lenzo); cmu_us_slt_arctic_hts: BSD-3-Clause/EST",
                 "shippable": True},
    "mbrola": {"install": "apt-get install mbrola mbrola-us1 mbrola-us2 mbrola-us3 (Debian "
                          "contrib/non-free)", "packages": ["mbrola"],
               "licence": "non-free (MBROLA voices: non-commercial, no redistribution)",
               "shippable": False},
    "pico": {"install": "apt-get install libttspico-utils (Debian non-free)",
             "packages": ["libttspico-utils"], "licence": "non-free (SVOX Pico)",
             "shippable": False},
}

DEFAULT_ENGINES = ("espeak-ng", "flite", "festival")
OPTIONAL_ENGINES = ("mbrola", "pico")

# speaker identities shared across engines, and their fixed splits (too few to hash)
_FIXED_SPEAKERS = {"kal": "train", "awb": "train", "rms": "dev", "slt": "test",
                   "mbrola-us1": "train", "mbrola-en1": "train", "mbrola-us2": "dev",
                   "mbrola-us3": "test", "pico-en-US": "train", "pico-en-GB": "test"}
_FLITE_SPEAKER = {"kal": "kal", "kal16": "kal", "awb": "awb", "rms": "rms", "slt": "slt"}
_FESTIVAL_SPEAKER = {"kal_diphone": "kal", "cmu_us_slt_arctic_hts": "slt",
                     "cmu_us_awb_arctic_hts": "awb", "cmu_us_rms_arctic_hts": "rms"}


class MissingToolError(RuntimeError):
    """A required program or package is not installed; the message says what to install."""


@dataclass(frozen=True)
class Voice:
    """One TTS voice.

    ``voice_id`` is globally unique (``engine:name``); ``speaker`` is the person/timbre the
    split is decided on; ``split`` is where the speaker belongs.
    """

    engine: str
    name: str
    speaker: str
    split: str

    @property
    def voice_id(self) -> str:
        return f"{self.engine}:{self.name}"

    @property
    def shippable(self) -> bool:
        return bool(ENGINE_INFO[self.engine]["shippable"])

    @property
    def licence(self) -> str:
        return str(ENGINE_INFO[self.engine]["licence"])


def _which(name: str) -> str | None:
    return shutil.which(name)


def check_engines(engines) -> None:
    """Raise :class:`MissingToolError` naming the package for the first missing engine."""
    for e in engines:
        if e not in ENGINE_INFO:
            raise MissingToolError(f"unknown TTS engine {e!r}: expected some of "
                                   f"{', '.join(ENGINE_INFO)}")
        if not _engine_available(e):
            raise MissingToolError(f"{e} not found: {ENGINE_INFO[e]['install']}")


def _engine_available(engine: str) -> bool:
    if engine == "espeak-ng":
        return _which("espeak-ng") is not None
    if engine == "flite":
        return _which("flite") is not None
    if engine == "festival":
        return _which("festival") is not None and bool(_festival_voices())
    if engine == "mbrola":
        return _which("espeak-ng") is not None and bool(_mbrola_voices())
    if engine == "pico":
        return _which("pico2wave") is not None
    return False


def available_optional_engines() -> tuple[str, ...]:
    """The non-free engines that happen to be installed."""
    return tuple(e for e in OPTIONAL_ENGINES if _engine_available(e))


@functools.cache
def _espeak_variants() -> tuple[str, ...]:
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True,
                         check=True).stdout
    names = []
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and parts[4].startswith("!v/"):
            names.append(parts[4][3:])
    return tuple(sorted(set(names)))


@functools.cache
def _espeak_bases() -> tuple[str, ...]:
    out = subprocess.run(["espeak-ng", "--voices=en"], capture_output=True, text=True,
                         check=True).stdout
    have = {line.split()[1] for line in out.splitlines()[1:] if len(line.split()) > 1}
    return tuple(b for b in ESPEAK_BASES if b in have)


@functools.cache
def _festival_voices() -> tuple[str, ...]:
    root = Path("/usr/share/festival/voices")
    if not root.is_dir():
        return ()
    return tuple(sorted(p.name for p in root.glob("*/*") if p.is_dir()))


@functools.cache
def _mbrola_voices() -> tuple[str, ...]:
    out = []
    for name in ("us1", "us2", "us3", "en1"):
        if Path(f"/usr/share/mbrola/{name}/{name}").exists():
            out.append(name)
    return tuple(out)


@functools.cache
def _flite_voices() -> tuple[str, ...]:
    res = subprocess.run(["flite", "-lv"], capture_output=True, text=True, check=True)
    listed = res.stdout.split(":", 1)[-1].split()
    return tuple(v for v in ("kal", "kal16", "awb", "rms", "slt") if v in listed)


def _speaker_split(speaker: str) -> str:
    return _FIXED_SPEAKERS.get(speaker) or split_of("speaker", speaker)


@functools.cache
def list_voices(engines: tuple[str, ...]) -> tuple[Voice, ...]:
    """Every voice of ``engines`` (all splits), in a fixed order."""
    voices: list[Voice] = []
    for e in engines:
        if e == "espeak-ng":
            for var in _espeak_variants():
                sp = f"espeak-variant:{var}"
                for base in _espeak_bases():
                    voices.append(Voice(e, f"{base}+{var}", sp, _speaker_split(sp)))
        elif e == "flite":
            for v in _flite_voices():
                sp = _FLITE_SPEAKER[v]
                voices.append(Voice(e, v, sp, _speaker_split(sp)))
        elif e == "festival":
            for v in _festival_voices():
                sp = _FESTIVAL_SPEAKER.get(v, f"festival:{v}")
                voices.append(Voice(e, v, sp, _speaker_split(sp)))
        elif e == "mbrola":
            for v in _mbrola_voices():
                sp = f"mbrola-{v}"
                voices.append(Voice(e, f"mb-{v}", sp, _speaker_split(sp)))
        elif e == "pico":
            for v in ("en-US", "en-GB"):
                sp = f"pico-{v}"
                voices.append(Voice(e, v, sp, _speaker_split(sp)))
    return tuple(voices)


# ---------------------------------------------------------------------------------------------
# rendering


def default_cache_dir() -> Path:
    """``$AIM_EDGE_TTS_CACHE`` or ``~/.cache/aim-edge/tts``."""
    env = os.environ.get("AIM_EDGE_TTS_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aim-edge" / "tts"


@functools.cache
def _engine_version(engine: str) -> str:
    cmd = {"espeak-ng": ["espeak-ng", "--version"], "mbrola": ["espeak-ng", "--version"],
           "flite": ["flite", "--version"], "festival": ["festival", "--version"],
           "pico": None}[engine]
    if cmd is None:
        return "pico"
    res = subprocess.run(cmd, capture_output=True, text=True)
    return re.sub(r"\s+", " ", (res.stdout + res.stderr).strip())[:200]


def _clean_text(text: str) -> str:
    # what reaches a command line / scheme string: no quotes, backslashes or control chars
    text = text.replace("\\", " ").replace('"', "").replace("\n", " ")
    return re.sub(r"\s+", " ", text).strip()


class _Festival:
    """One persistent ``festival --interactive`` per process (started on first use)."""

    _proc: subprocess.Popen | None = None

    @classmethod
    def say(cls, voice: str, text: str, stretch: float, path: str) -> None:
        if cls._proc is None or cls._proc.poll() is not None:
            cls._proc = subprocess.Popen(
                ["festival", "--interactive"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True, bufsize=1)
        p = cls._proc
        cmd = (f"(begin (voice_{voice}) (Parameter.set 'Duration_Stretch {stretch:.3f}) "
               f"(utt.save.wave (utt.synth (Utterance Text \"{text}\")) \"{path}\" 'riff) "
               f"(print \"AIMDONE\"))\n")
        assert p.stdin is not None and p.stdout is not None
        p.stdin.write(cmd)
        p.stdin.flush()
        while True:
            line = p.stdout.readline()
            if not line:
                cls._proc = None
                raise RuntimeError(f"festival exited while rendering {text!r} with {voice}")
            if "AIMDONE" in line:
                return


def _render_engine(voice: Voice, text: str, params: dict, path: str) -> None:
    e = voice.engine
    if e in ("espeak-ng", "mbrola"):
        cmd = ["espeak-ng", "-v", voice.name, "-s", str(params["speed"]),
               "-p", str(params["pitch"]), "-a", "100", "-w", path, text]
    elif e == "flite":
        cmd = ["flite", "-voice", voice.name, "--setf",
               f"duration_stretch={params['stretch']:.3f}", "-t", text, "-o", path]
    elif e == "pico":
        cmd = ["pico2wave", "-l", voice.name, "-w", path, text]
    elif e == "festival":
        _Festival.say(voice.name, text, params["stretch"], path)
        return
    else:
        raise ValueError(f"unknown engine {e!r}")
    res = subprocess.run(cmd, capture_output=True)
    if res.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({res.returncode}) on {text!r}: "
                           f"{res.stderr.decode(errors='replace')[:300]}")


def engine_params(rng, voice: Voice) -> dict:
    """Draw engine-side prosody parameters, quantised so renders can be re-used."""
    if voice.engine in ("espeak-ng", "mbrola"):
        return {"speed": int(rng.choice([130, 145, 160, 175, 190])),
                "pitch": int(rng.choice([30, 40, 50, 60, 70]))}
    if voice.engine in ("flite", "festival"):
        return {"stretch": float(rng.choice([0.85, 0.95, 1.0, 1.1, 1.2]))}
    return {}


def _cache_key(voice: Voice, text: str, params: dict) -> str:
    blob = json.dumps([voice.engine, _engine_version(voice.engine), voice.name, params, text],
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def render_bytes(voice: Voice, text: str, params: dict, cache_dir: Path | None) -> bytes:
    """The WAV bytes the engine writes for ``text`` (from the cache when present)."""
    text = _clean_text(text)
    key = _cache_key(voice, text, params)
    cached = None
    if cache_dir is not None:
        cached = cache_dir / key[:2] / f"{key}.wav"
        if cached.exists():
            return cached.read_bytes()
    with tempfile.TemporaryDirectory(prefix="aim-tts-") as tmp:
        out = os.path.join(tmp, "out.wav")
        _render_engine(voice, text, params, out)
        data = Path(out).read_bytes()
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=cached.parent, suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp_name, cached)
    return data


def decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    """16-bit PCM WAV bytes → (float32 mono in [-1, 1], sample rate)."""
    with wave.open(io.BytesIO(data)) as w:
        sr = w.getframerate()
        ch = w.getnchannels()
        if w.getsampwidth() != 2:
            raise ValueError(f"expected 16-bit PCM, got {8 * w.getsampwidth()}-bit")
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32)
    if ch > 1:
        x = x.reshape(-1, ch).mean(axis=1)
    return x / 32768.0, sr


def trim(x: np.ndarray, rel_db: float = -40.0) -> np.ndarray:
    """Cut leading/trailing samples quieter than ``rel_db`` below the peak."""
    if x.size == 0:
        return x
    peak = float(np.max(np.abs(x)))
    if peak <= 0.0:
        return x[:0]
    idx = np.flatnonzero(np.abs(x) > peak * 10 ** (rel_db / 20))
    return x[idx[0]: idx[-1] + 1]


def render(voice: Voice, text: str, params: dict, *, rate: float = 1.0,
           cache_dir: Path | None = None) -> np.ndarray:
    """Render ``text`` as float32 mono at 16 kHz, silence trimmed.

    ``rate`` > 1 speeds up and raises the pitch (a resampling "tape speed" change applied after
    the engine, on top of the engine's own prosody parameters).
    """
    x, sr = decode_wav(render_bytes(voice, text, params, cache_dir))
    x = trim(x)
    out_sr = SR / rate
    if abs(sr - out_sr) > 1e-6:
        x = soxr.resample(x, sr, out_sr, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)
