"""Per-chunk training targets from the labels of a generated stream (``export.data``).

A chunk k covers fbank frames [16k, 16k + 16) and is decided when its last frame is complete:
with ``snip_edges`` fbank (25 ms window, 10 ms hop) that is at stream time
``t_k = 0.16 (k + 1) + 0.015`` s. Targets for chunk k are read off the labels at ``t_k``:

* ``events[k, e]``: event e overlaps the chunk's audio span by at least 40 ms;
* ``zone[k]`` (see ``export/losses.py``): WINDOW if ``earliest <= t_k <= latest`` of a response;
  EARLY while the question / instruction that triggers an answer / acknowledgement is still
  being spoken; LATE after ``latest`` while the triggering event still sounds; IGNORE for
  0.3 s after a window and wherever labels overlap; NONE in the verified no-response intervals;
* ``window_id[k]``: which response window (per stream, in time order);
* ``intent[k]``: the response kind inside windows (alert 1, answer 2, acknowledge 3), 0 (stay
  silent) in NONE chunks, -1 (unsupervised) elsewhere;
* ``instruction_ids[k]``: the instruction active at ``t_k`` (row of ``instruction_table``; row 0
  is "no instruction" = the zero embedding);
* ``segments``: (first chunk, end chunk, transcript) of each speech segment, for CTC.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import wave
from pathlib import Path

import numpy as np

from aim_edge.config import FbankConfig
from aim_edge.text_embedding import HashedBagOfWords

from .losses import ZONE_EARLY, ZONE_IGNORE, ZONE_LATE, ZONE_NONE, ZONE_WINDOW

CHUNK_S = 0.16
DECISION_OFFSET_S = 0.015  # 25 ms window - 10 ms hop
EVENT_MIN_OVERLAP_S = 0.04
AFTER_WINDOW_IGNORE_S = 0.3
INTENT_INDEX = {"alert": 1, "answer": 2, "acknowledge": 3}


@dataclasses.dataclass
class StreamTargets:
    id: str
    feats: np.ndarray  # (T, n_mels) float16, T = 16 * n_chunks
    events: np.ndarray  # (C, E) uint8
    zone: np.ndarray  # (C,) int8
    window_id: np.ndarray  # (C,) int16
    intent: np.ndarray  # (C,) int8
    instruction_ids: np.ndarray  # (C,) int16
    instruction_table: np.ndarray  # (K + 1, dim) float32, row 0 = zeros
    segments: list[tuple[int, int, str]]
    record: dict

    @property
    def n_chunks(self) -> int:
        return len(self.zone)

    @property
    def instruction(self) -> np.ndarray:
        return self.instruction_table[self.instruction_ids]


def decision_time(k: np.ndarray | int) -> np.ndarray:
    return CHUNK_S * (np.asarray(k) + 1) + DECISION_OFFSET_S


def chunk_targets(record: dict, n_chunks: int, event_names: list[str],
                  encoder: HashedBagOfWords) -> dict:
    """Per-chunk targets for one stream record (pure function of the labels; tested)."""
    t = decision_time(np.arange(n_chunks))
    span_start = CHUNK_S * np.arange(n_chunks)
    span_end = t
    index = {name: i for i, name in enumerate(event_names)}

    events = np.zeros((n_chunks, len(event_names)), np.uint8)
    for ev in record["events"]:
        overlap = np.minimum(span_end, ev["offset"]) - np.maximum(span_start, ev["onset"])
        events[overlap >= EVENT_MIN_OVERLAP_S, index[ev["label"]]] = 1

    zone = np.full(n_chunks, ZONE_IGNORE, np.int8)
    for a, b in record["no_response"]:
        zone[(t >= a) & (t < b)] = ZONE_NONE
    window_id = np.full(n_chunks, -1, np.int16)
    intent = np.full(n_chunks, -1, np.int8)
    intent[zone == ZONE_NONE] = 0
    for w, r in enumerate(sorted(record["responses"], key=lambda r: r["earliest"])):
        inside = (t >= r["earliest"]) & (t <= r["latest"]) & (window_id < 0)
        if not inside.any():  # a window shorter than a chunk: give it the nearest chunk
            k = int(np.clip(np.searchsorted(t, r["earliest"]), 0, n_chunks - 1))
            inside = np.zeros(n_chunks, bool)
            inside[k] = window_id[k] < 0
        zone[inside] = ZONE_WINDOW
        window_id[inside] = w
        intent[inside] = INTENT_INDEX[r["kind"]]
        after = ((t > r["latest"]) & (t <= r["latest"] + AFTER_WINDOW_IGNORE_S)
                 & (zone != ZONE_WINDOW))
        zone[after] = ZONE_IGNORE
        intent[after] = -1
        trig = r.get("trigger", {})
        if trig.get("type") == "event":
            ev = record["events"][trig["index"]]
            late = (t > r["latest"] + AFTER_WINDOW_IGNORE_S) & (t <= ev["offset"]) & (
                zone != ZONE_WINDOW)
            zone[late] = ZONE_LATE
            intent[late] = -1
        elif trig.get("type") in ("question", "instruction"):
            seg = record["speech"][trig["index"]]
            early = (t >= seg["start"]) & (t < r["earliest"]) & (zone != ZONE_WINDOW)
            zone[early] = ZONE_EARLY
            intent[early] = -1

    texts: list[str] = []
    ids = np.zeros(n_chunks, np.int16)
    for iv in record["instructions"]:
        if not iv.get("text"):
            continue
        if iv["text"] not in texts:
            texts.append(iv["text"])
        ids[(t >= iv["start"]) & (t < iv["end"])] = texts.index(iv["text"]) + 1
    table = np.zeros((len(texts) + 1, encoder.dim), np.float32)
    for i, text in enumerate(texts):
        table[i + 1] = encoder.encode(text)

    segments = []
    for seg in record["speech"]:
        if seg.get("transcript"):
            c0 = int(math.floor(seg["start"] / CHUNK_S))
            c1 = min(n_chunks, int(math.ceil((seg["end"] + 0.05) / CHUNK_S)))
            if c1 > c0:
                segments.append((c0, c1, seg["transcript"]))
    return {"events": events, "zone": zone, "window_id": window_id, "intent": intent,
            "instruction_ids": ids, "instruction_table": table, "segments": segments}


def read_wav(path: Path) -> np.ndarray:
    """16-bit PCM mono WAV -> float32 in [-1, 1]."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono PCM, got {w.getsampwidth() * 8}-bit "
                             f"{w.getnchannels()} channel(s)")
        data = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    return data.astype(np.float32) / 32768.0


def _audio_path(record: dict, manifest: Path) -> Path:
    for key in ("audio", "path", "file", "wav"):
        if key in record:
            p = Path(record[key])
            return p if p.is_absolute() else manifest.parent / p
    raise KeyError(f"{manifest}: record {record.get('id')} names no audio file")


def stream_features(audio: np.ndarray, config: FbankConfig) -> np.ndarray:
    from aim_edge.features import compute_fbank

    return compute_fbank(audio, config)


def load_split(folder: Path, *, cache: Path | None = None, limit: int = 0,
               features: FbankConfig | None = None, encoder: HashedBagOfWords | None = None
               ) -> tuple[list[StreamTargets], list[str], dict[str, bool]]:
    """Load every stream of a generated split with features (cached) and targets.

    Returns the streams, the event label names (the generator's order) and their safety flags.
    """
    from export.data.labels import EVENT_LABELS

    features = features or FbankConfig()
    encoder = encoder or HashedBagOfWords()
    names = [e.name for e in EVENT_LABELS]
    safety = {e.name: e.is_safety for e in EVENT_LABELS}
    if Path(folder).suffix == ".npz":
        return _load_packed(Path(folder), names, encoder, limit), names, safety
    manifests = sorted(Path(folder).rglob("*.jsonl"))
    if not manifests:
        raise SystemExit(f"{folder}: no *.jsonl manifests "
                         "(generate them with python -m export.data build)")
    key = hashlib.sha256(json.dumps(features.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
    streams: list[StreamTargets] = []
    for manifest in manifests:
        for line in manifest.read_text().splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            if "responses" not in record:
                continue  # summary or other rows
            wav = _audio_path(record, manifest)
            cached = cache / f"{record['id']}-{key}.npy" if cache else None
            if cached is not None and cached.is_file():
                feats = np.load(cached, allow_pickle=False)
            else:
                feats = stream_features(read_wav(wav), features).astype(np.float16)
                if cached is not None:
                    cached.parent.mkdir(parents=True, exist_ok=True)
                    np.save(cached, feats, allow_pickle=False)
            n_chunks = len(feats) // 16
            feats = feats[: n_chunks * 16]
            tg = chunk_targets(record, n_chunks, names, encoder)
            streams.append(StreamTargets(id=record["id"], feats=feats, record=record, **tg))
            if limit and len(streams) >= limit:
                return streams, names, safety
    return streams, names, safety


def _load_packed(path: Path, names: list[str], encoder: HashedBagOfWords, limit: int
                 ) -> list[StreamTargets]:
    """Streams from a file written by ``python -m export.pack``."""
    from .pack import dequantise

    with np.load(path, allow_pickle=False) as z:
        q, lengths, records = z["feats"], z["lengths"], z["records"]
    streams = []
    start = 0
    for length, text in zip(lengths.tolist(), records.tolist(), strict=True):
        record = json.loads(text)
        feats = dequantise(q[start:start + length])
        start += length
        n_chunks = len(feats) // 16
        tg = chunk_targets(record, n_chunks, names, encoder)
        streams.append(StreamTargets(id=record["id"], feats=feats[: n_chunks * 16],
                                     record=record, **tg))
        if limit and len(streams) >= limit:
            break
    return streams
