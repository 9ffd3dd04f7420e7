"""Evaluation sets as labelled scenes: the generated test split, Asterisk prompts, real sounds.

Every set becomes a list of :class:`Scene` with the generator's label schema
(``export/data/README.md``): speech segments with transcripts, sound events with onsets,
instruction intervals, response windows and the no-response intervals. The scoring code
therefore treats all sets alike.

* ``test`` -- a folder written by ``python -m export.data build --split test`` (or a small one
  the harness builds into its cache folder when no path is given);
* ``asterisk`` -- ``n`` real Asterisk prompts (Debian ``asterisk-core-sounds-en``) joined into
  one continuous stream with 1 s pauses: real speech, no events and no instruction, so every
  alert or answer is a false alert;
* ``real-sounds`` -- scenes of other Asterisk prompts with real recordings from Debian sound
  packages that the generator holds out for test only (``export.data.sources``:
  ``Recording.split == "test"``) mixed in, under an instruction that asks for one of their
  labels (or none), with windows made by the generator's rule: ``[onset, onset + min(duration,
  3 s) + 2 s]`` for requested labels.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SR = 16000
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = Path.home() / ".cache" / "aim-edge" / "eval"
GAP_S = 1.0  # pause between joined prompts


@dataclasses.dataclass
class Scene:
    """One labelled stream: float32 mono 16 kHz ``samples`` and its labels (seconds)."""

    id: str
    samples: np.ndarray
    speech: list[dict[str, Any]]
    events: list[dict[str, Any]]
    instructions: list[dict[str, Any]]
    responses: list[dict[str, Any]]
    no_response: list[list[float]]
    source: str = ""

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / SR


def no_response_of(responses: Sequence[dict[str, Any]], duration: float) -> list[list[float]]:
    """The complement of the union of the response windows in ``[0, duration)``."""
    out, t = [], 0.0
    for a, b in sorted((r["earliest"], r["latest"]) for r in responses):
        if a > t:
            out.append([t, a])
        t = max(t, b)
    if t < duration:
        out.append([t, duration])
    return out


# ------------------------------------------------------------------------- generated split
def load_generated(folder: Path, limit: int = 0) -> list[Scene]:
    """Scenes of a folder written by ``python -m export.data build`` (all ``*.jsonl``)."""
    from aim_edge.audio import as_float32, mix_down, read_wav

    manifests = sorted(Path(folder).rglob("*.jsonl"))
    if not manifests:
        raise FileNotFoundError(f"{folder}: no *.jsonl scene manifests; build a split with "
                                "python -m export.data build --split test --out DIR")
    scenes = []
    for manifest in manifests:
        for line in manifest.read_text().splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            if "responses" not in r:
                continue
            rate, samples = read_wav(manifest.parent / r["audio"])
            if rate != SR:
                raise ValueError(f"{r['audio']}: {rate} Hz, the generator writes {SR} Hz")
            if samples.ndim > 1:
                samples, _ = mix_down(samples, what=r["audio"])
            # int16 PCM -> [-1, 1]: the scale the models were trained on (int16-scaled floats
            # would shift every log-mel by 2 ln 32768 = 20.79)
            samples = as_float32(samples, what=r["audio"])
            scenes.append(Scene(r["id"], np.ascontiguousarray(samples, np.float32),
                                r["speech"], r["events"], r["instructions"], r["responses"],
                                r["no_response"], source=str(folder)))
            if limit and len(scenes) >= limit:
                return scenes
    return scenes


def build_test_split(cache: Path, minutes: float, seed: int = 0) -> Path:
    """Build (once) a small held-out test split into ``cache`` with the project's generator."""
    out = cache / f"test-{minutes:g}min-s{seed}"
    if (out / "build.json").is_file():
        return out
    cmd = [sys.executable, "-m", "export.data", "build", "--out", str(out), "--minutes",
           f"{minutes:g}", "--seed", str(seed), "--split", "test", "--stream-seconds", "30", "45",
           "--workers", "1", "--force", "--no-progress"]
    print("building the test split: " + " ".join(cmd[1:]), file=sys.stderr)
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"python -m export.data build failed ({res.returncode}):\n"
                           f"{res.stderr.strip()[-2000:]}")
    return out


# ------------------------------------------------------------------------- asterisk
def asterisk_utterances(n_speech: int, n_sounds: int) -> tuple[list[Any], list[Any]]:
    """Two disjoint picks of real Asterisk prompts: ``n_speech`` evenly spaced over the corpus
    (the same pick as ``benchmarks.bench_asr --asterisk N``) and ``n_sounds`` of the rest."""
    from export.whisper.speech import _evenly, load_asterisk

    every = load_asterisk()
    speech = _evenly(every, n_speech) if n_speech else []
    taken = {u.name for u in speech}
    rest = [u for u in every if u.name not in taken]
    return speech, (_evenly(rest, n_sounds) if n_sounds else [])


def join_utterances(utts: Sequence[Any], scene_id: str, gap_s: float = GAP_S) -> Scene:
    """One scene of utterances separated by ``gap_s`` of silence; no events, no instruction."""
    gap = np.zeros(int(gap_s * SR), np.float32)
    parts, speech, t = [gap], [], gap_s
    for u in utts:
        speech.append({"start": t, "end": t + u.seconds, "transcript": u.text,
                       "name": u.name, "category": "everyday"})
        parts += [u.samples.astype(np.float32), gap]
        t += u.seconds + gap_s
    samples = np.concatenate(parts)
    dur = samples.shape[0] / SR
    return Scene(scene_id, samples, speech, [], [{"start": 0.0, "end": dur, "text": None,
                                                  "delivery": None, "meaning": {"intent": "none"}}],
                 [], [[0.0, dur]], source="asterisk-core-sounds-en (CC-BY-SA-3.0)")


# ------------------------------------------------------------------------- real sounds
#: (instruction text, the labels it requests): the reference meaning of each scene's request
REAL_SOUND_INSTRUCTIONS: tuple[tuple[str | None, tuple[str, ...]], ...] = (
    ("tell me if the phone rings", ("phone_ring",)),
    ("let me know when I get a notification", ("notification",)),
    ("tell me if you hear a bell", ("bell",)),
    (None, ()),
)


def test_recordings() -> list[Any]:
    """Real recordings the generator never trains on (its test split), other_sound included."""
    from export.data.sources import list_recordings

    return [r for r in list_recordings() if r.split == "test"]


def real_sound_scenes(utts: Sequence[Any], recordings: Sequence[Any], n_scenes: int,
                      seed: int = 0, snr_db: tuple[float, float] = (0.0, 20.0)) -> list[Scene]:
    """Scenes of real speech with real test-only recordings placed in the pauses.

    Each scene takes its share of ``utts`` in order; after every utterance one recording (drawn
    in turn from a seeded shuffle) may follow in a 1.5 s pause, scaled to an SNR against the
    speech level; the instruction cycles through :data:`REAL_SOUND_INSTRUCTIONS`, and a scene
    with a request gets one recording of a requested label first.
    """
    from export.data.sources import load_recording

    if not recordings:
        raise FileNotFoundError("no test-split recordings installed: apt-get install "
                                "sound-theme-freedesktop deepin-sound-theme (see "
                                "scripts/install-system-deps.sh)")
    rng = np.random.default_rng(seed)
    order = [int(i) for i in rng.permutation(len(recordings))]
    drawn = 0
    per = max(1, len(utts) // n_scenes)
    scenes = []
    for s in range(n_scenes):
        text, targets = REAL_SOUND_INSTRUCTIONS[s % len(REAL_SOUND_INSTRUCTIONS)]
        mine = utts[s * per:(s + 1) * per]
        parts, speech, events, t = [np.zeros(int(0.5 * SR), np.float32)], [], [], 0.5
        for i, u in enumerate(mine):
            x = u.samples.astype(np.float32)
            speech.append({"start": t, "end": t + u.seconds, "transcript": u.text,
                           "name": u.name, "category": "everyday"})
            parts.append(x)
            t += u.seconds
            level = float(np.sqrt(np.mean(x ** 2))) + 1e-6
            pause = np.zeros(int(0.7 * SR), np.float32)
            parts.append(pause)
            t += 0.7
            if i % 2 == 0:  # a recording after every other utterance
                wanted = [r for r in recordings if r.label in targets]
                if not events and wanted:  # the requested sound occurs at least once
                    rec = wanted[int(rng.integers(len(wanted)))]
                else:
                    rec = recordings[order[drawn % len(order)]]
                    drawn += 1
                y = np.asarray(load_recording(rec.path), np.float32)
                snr = rng.uniform(*snr_db)
                y = y * (level * 10 ** (snr / 20) / (float(np.sqrt(np.mean(y ** 2))) + 1e-9))
                peak = float(np.max(np.abs(y)))
                if peak > 0.9:
                    y *= 0.9 / peak
                events.append({"label": rec.label, "onset": t, "offset": t + y.size / SR,
                               "is_safety": False, "snr_db": round(snr, 1),
                               "file": rec.path, "package": rec.package, "licence": rec.licence})
                parts += [y, np.zeros(int(0.8 * SR), np.float32)]
                t += y.size / SR + 0.8
        samples = np.concatenate(parts)
        dur = samples.shape[0] / SR
        responses = [{"earliest": ev["onset"],
                      "latest": min(dur, ev["onset"] + min(ev["offset"] - ev["onset"], 3.0) + 2),
                      "kind": "alert", "trigger": {"type": "event", "index": k,
                                                   "label": ev["label"], "reason": "requested"}}
                     for k, ev in enumerate(events) if ev["label"] in targets]
        intent = "watch_events" if targets else "none"
        instr = [{"start": 0.0, "end": dur, "text": text, "delivery": "text" if text else None,
                  "meaning": {"intent": intent, "target_labels": list(targets)}}]
        scenes.append(Scene(f"real-sounds-{s:02d}", samples, speech, events, instr, responses,
                            no_response_of(responses, dur),
                            source="asterisk prompts + Debian sound themes (test split)"))
    return scenes
