"""Helpers of the runtime tests: a placeholder bundle, a scripted backend, test audio."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from aim_edge.bundle import SCHEMA_VERSION, Bundle, sha256_file
from aim_edge.config import FbankConfig
from aim_edge.metrics import edit_distance

VOCAB = ["<blank>", " ", "'", *"abcdefghijklmnopqrstuvwxyz"]


def write_fake_bundle(root: Path, *, events: dict[str, bool] | None = None,
                      thresholds: dict | None = None, instruction_dim: int = 8,
                      features: FbankConfig | None = None) -> Path:
    """A valid bundle whose step file is a placeholder (for scripted backends)."""
    events = events or {"smoke_alarm": True, "co_alarm": True, "doorbell": False,
                        "kettle_whistle": False, "other_sound": False}
    root.mkdir(parents=True, exist_ok=True)
    step = root / "model.onnx"
    step.write_bytes(b"placeholder: a scripted backend runs this bundle")
    vocab = VOCAB
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "name": "fake (scripted backend)",
        "created": "2026-11-26T00:00:00+00:00",
        "features": (features or FbankConfig()).to_dict(),
        "model": {"chunk_frames": 16, "subsampling": 4, "lookahead_frames": 0,
                  "instruction_dim": instruction_dim},
        "state": [{"name": "h", "shape": [1, 4], "dtype": "float32", "init": 0.0}],
        "labels": {"vocab": vocab,
                   "events": [{"name": k, "safety": v} for k, v in events.items()],
                   "intents": ["silent", "alert", "answer", "acknowledge"]},
        "thresholds": thresholds or {"speak_now": 0.5, "events": {k: 0.5 for k in events}},
        "artifacts": [{"file": step.name, "format": "onnx", "precision": "fp32",
                       "role": "step", "size": step.stat().st_size,
                       "sha256": sha256_file(step)}],
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return root



class ScriptedBackend:
    """Implements the backend protocol with outputs chosen by ``script(chunk, feeds)``.

    ``script`` returns a dict with any of: ``speak`` (probability), ``intent`` (name),
    ``events`` ({label: probability}), ``ctc`` (list of per-frame tokens: a vocabulary
    string or None for blank) or ``ctc_logprobs`` (raw ``(frames, vocab)`` array). Missing
    heads default to silence. State is fed back unchanged except ``h``, which counts chunks
    (so tests can check state hand-over).
    """

    name = "scripted"
    description = "scripted test backend"

    def __init__(self, bundle: Bundle,
                 script: Callable[[int, Mapping[str, np.ndarray]], dict[str, Any]] | None = None,
                 delay_s: float = 0.0, fail_at: int | None = None) -> None:
        self.bundle = bundle
        self.script = script or (lambda i, feeds: {})
        self.delay_s = delay_s
        self.fail_at = fail_at
        self.calls = 0
        self.instructions: list[np.ndarray] = []
        self._last: tuple[int, Any] | None = None
        self.closed = False

    @staticmethod
    def _logit(p: float) -> float:
        p = min(max(p, 1e-6), 1 - 1e-6)
        return float(np.log(p / (1 - p)))

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import time

        # the chunk this call decides: the ``h`` state counts them (a stream may run the model
        # twice for one chunk: PolicyConfig.safety_without_instruction)
        i = int(np.asarray(feeds["h"]).flat[0]) if "h" in feeds else self.calls
        self.calls += 1
        if self.fail_at is not None and i == self.fail_at:
            raise RuntimeError(f"scripted failure at chunk {i}")
        if self.delay_s:
            time.sleep(self.delay_s)
        # one entry per chunk decided: a second step for the same chunk (the same fbank, a
        # zero instruction) is the stream's safety re-check, not a new chunk
        again = self._last is not None and self._last[0] == i and self._last[1] is feeds["fbank"]
        self._last = (i, feeds["fbank"])
        if not again:
            self.instructions.append(np.array(feeds["instruction"][0], copy=True))
        b = self.bundle
        spec = self.script(i, feeds) or {}
        events = [e.name for e in b.events]
        ev = np.full((1, len(events)), -10.0, np.float32)
        for label, p in spec.get("events", {}).items():
            ev[0, events.index(label)] = self._logit(p)
        intents = np.full((1, len(b.intents)), -5.0, np.float32)
        intents[0, b.intents.index(spec.get("intent", b.intents[0]))] = 5.0
        n_ctc = b.chunk_frames // b.subsampling
        ctc = np.full((1, n_ctc, len(b.vocab)), -20.0, np.float32)
        tokens = list(spec.get("ctc", [None] * n_ctc)) + [None] * n_ctc
        for j, tok in enumerate(tokens[:n_ctc]):
            ctc[0, j, 0 if tok is None else b.vocab.index(tok)] = 0.0
        if "ctc_logprobs" in spec:  # raw (n_ctc, vocab) log-probs, for the keyword spotter
            ctc[0] = np.asarray(spec["ctc_logprobs"], np.float32)
        out = {"ctc_logprobs": ctc,
               "speak_logit": np.array([self._logit(spec.get("speak", 0.01))], np.float32),
               "intent_logits": intents, "event_logits": ev}
        for s in b.state:
            new = np.array(feeds[s.name], copy=True)
            if s.name == "h":
                new += 1.0
            out[f"new_{s.name}"] = new
        return out

    def close(self) -> None:
        self.closed = True


def spell(text: str) -> list[str | None]:
    """CTC frames that greedy-decode to ``text``: one frame per character, a blank between
    repeated characters."""
    frames: list[str | None] = []
    for ch in text:
        if frames and frames[-1] == ch:
            frames.append(None)
        frames.append(ch)
    return frames


def chunk_end_s(i: int) -> float:
    """Stream time of the last sample of chunk ``i`` (16 frames, 25 ms / 10 ms at 16 kHz)."""
    return ((16 * i + 15) * 160 + 400) / 16000


def samples_for_chunks(n: int) -> int:
    """Samples that make exactly ``n`` full chunks."""
    return (16 * n - 1) * 160 + 400


def noise(seconds: float, rate: int = 16000, seed: int = 0, channels: int = 1) -> np.ndarray:
    """Seeded low-level noise with a tone, float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    x = 0.05 * rng.standard_normal((n, channels)) + 0.2 * np.sin(2 * np.pi * 440 * t)[:, None]
    x = x.astype(np.float32)
    return x[:, 0].copy() if channels == 1 else x


# ---------------------------------------------------------------------------------------------
# generated scenes (export.data manifests) through the real runtime


def run_scene(engine: Any, wav: Path, record: Mapping[str, Any], *,
              text_instructions: bool = True) -> Any:
    """Stream one generated scene through ``engine`` chunk by chunk, the way a caller would:
    each ``delivery: "text"`` instruction interval is given with ``set_instruction`` when the
    stream reaches its start (spoken ones are in the audio). Returns the stream's Result."""
    from aim_edge.audio import iter_wav_blocks, wav_info

    info = wav_info(wav)
    changes = [(float(iv["start"]), iv.get("text")) for iv in record.get("instructions", [])
               if iv.get("delivery") in ("text", None) and text_instructions]
    changes.sort(key=lambda c: c[0])
    first = changes[0][1] if changes and changes[0][0] <= 0.0 else None
    pending = [c for c in changes if c[0] > 0.0]
    step = engine.bundle.chunk_samples * info.sample_rate // engine.sample_rate
    with engine.create_stream(instruction=first) as stream:
        done = 0
        for _, block in iter_wav_blocks(wav, step):
            while pending and pending[0][0] <= done / info.sample_rate:
                stream.set_instruction(pending.pop(0)[1])
            stream.accept_waveform(info.sample_rate, block)
            done += block.shape[0]
            while stream.is_ready():
                stream.decode()
        stream.input_finished()
        while stream.is_ready():
            stream.decode()
        return stream.get_result()


def alert_hits(record: Mapping[str, Any], alerts: list[Mapping[str, Any]]
               ) -> list[dict[str, Any]]:
    """For every labelled alert window of an event (``responses`` with kind ``alert`` and an
    ``event`` trigger): did an alert of that label fire inside ``[earliest, latest]`` (+0.2 s,
    the end of the deciding chunk)?"""
    out = []
    used: set[int] = set()  # one alert answers one window (overlapping windows of repeats)
    for r in record.get("responses", []):
        trig = r.get("trigger", {})
        if r.get("kind") != "alert" or trig.get("type") != "event":
            continue
        label = trig["label"]
        match = [i for i, a in enumerate(alerts) if i not in used and a["label"] == label
                 and r["earliest"] <= a["t"] <= r["latest"] + 0.2]
        hit = bool(match)
        used.update(match[:1])
        out.append({"label": label, "reason": trig.get("reason"), "hit": bool(hit),
                    "window": (r["earliest"], r["latest"])})
    return out


def false_alerts(record: Mapping[str, Any], alerts: list[Mapping[str, Any]]) -> list[dict]:
    """Alerts of an event label outside every window labelled for that label."""
    windows: dict[str, list[tuple[float, float]]] = {}
    for r in record.get("responses", []):
        trig = r.get("trigger", {})
        if r.get("kind") == "alert" and trig.get("type") == "event":
            windows.setdefault(trig["label"], []).append((r["earliest"], r["latest"] + 0.2))
    return [a for a in alerts if not a["label"].startswith("keyword:") and not any(
        lo <= a["t"] <= hi for lo, hi in windows.get(a["label"], []))]


def normalise_text(text: str, vocab: list[str] | tuple[str, ...] = VOCAB) -> str:
    """Lower case, characters outside the CTC vocabulary become spaces, spaces collapsed."""
    allowed = set(vocab[1:])
    chars = [c if c in allowed else " " for c in text.lower()]
    return " ".join("".join(chars).split())


def caption_cer(record: Mapping[str, Any], captions: list[Mapping[str, Any]]
                ) -> tuple[int, int]:
    """Character errors and reference characters of a scene's final captions against its
    speech transcripts (each joined in time order; insertions and deletions count)."""
    ref = normalise_text(" ".join(s["transcript"] for s in
                                  sorted(record.get("speech", []), key=lambda s: s["start"])))
    hyp = normalise_text(" ".join(c["text"] for c in captions))
    return edit_distance(hyp, ref), len(ref)
