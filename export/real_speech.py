"""Real voices for training and for keyword-spotting tests: streams of recorded spoken digits.

The student learns speech from TTS voices only, and greedy CTC of real voices was close to
noise (a probe in DESIGN.md: 65 % CER). The Free Spoken Digit Dataset (``../shared/data/fsdd``:
3,000 recordings, 6 real speakers, 8 kHz, CC BY-SA 4.0) is small but real; this module turns it
into streams in the generator's record format, split **by speaker** so that a keyword-spotting
test on held-out speakers measures unseen voices:

    TRAIN_SPEAKERS = jackson, nicolas, theo, yweweler   (mixed into training)
    TEST_SPEAKERS  = george, lucas                      (benchmarks/bench_kws.py only)

A stream is silence-separated utterances of 1-3 digits ("seven", "three one four"), each
digit level-normalised, 1.0-1.8 s gaps, 8 kHz audio resampled to 16 kHz with soxr, and a
noise floor drawn per stream. Labels: speech segments with transcripts (for CTC), no events,
and no response expected anywhere (digits alone are not something to speak up about; keyword
alerts come from the policy, not from speak-now).

    python -m export.real_speech --out pack/fsdd-train.npz --streams 120     # a training pack
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TEST_SPEAKERS", "TRAIN_SPEAKERS", "digit_stream", "fsdd_by_speaker", "pack_streams"]

TRAIN_SPEAKERS = ("jackson", "nicolas", "theo", "yweweler")
TEST_SPEAKERS = ("george", "lucas")
SAMPLE_RATE = 16000


def fsdd_by_speaker(speakers: Sequence[str]) -> dict[str, list[Any]]:
    """FSDD utterances (16 kHz) of the named speakers, grouped by speaker."""
    from export.whisper.speech import load_fsdd

    unknown = sorted(set(speakers) - set(TRAIN_SPEAKERS) - set(TEST_SPEAKERS))
    if unknown:
        raise SystemExit(f"unknown FSDD speaker(s) {unknown}; known: "
                         f"{sorted(TRAIN_SPEAKERS + TEST_SPEAKERS)}")
    out: dict[str, list[Any]] = {s: [] for s in speakers}
    for u in load_fsdd():
        spk = u.name.split("_")[1]
        if spk in out:
            out[spk].append(u)
    return out


def digit_stream(pool: Sequence[Any], rng: np.random.Generator, n_utterances: int, *,
                 max_digits: int = 1, noise_dbfs: float = -60.0, level_rms: float = 0.08
                 ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One stream: audio (float32, 16 kHz) and its speech segments ``{start, end,
    transcript, words: [(onset, offset, word)]}``."""
    sr = SAMPLE_RATE
    pieces: list[np.ndarray] = []
    segments: list[dict[str, Any]] = []
    t = 0
    for _ in range(n_utterances):
        gap = int(sr * rng.uniform(1.0, 1.8))
        pieces.append(np.zeros(gap, np.float32))
        t += gap
        start = t
        words = []
        for d in range(int(rng.integers(1, max_digits + 1))):
            if d:
                inner = int(sr * rng.uniform(0.05, 0.3))
                pieces.append(np.zeros(inner, np.float32))
                t += inner
            u = pool[int(rng.integers(len(pool)))]
            gain = level_rms * 10 ** (rng.uniform(-6, 6) / 20)
            x = u.samples / max(1e-4, float(np.sqrt(np.mean(u.samples ** 2)))) * gain
            pieces.append(x.astype(np.float32))
            words.append((t / sr, (t + x.size) / sr, u.text))
            t += x.size
        segments.append({"start": start / sr, "end": t / sr,
                         "transcript": " ".join(w for *_, w in words), "words": words})
    pieces.append(np.zeros(sr, np.float32))
    audio = np.concatenate(pieces)
    audio += rng.normal(0, 10 ** (noise_dbfs / 20), audio.size).astype(np.float32)
    return np.clip(audio, -1, 1).astype(np.float32), segments


def _record(stream_id: str, duration: float, segments: list[dict[str, Any]]) -> dict[str, Any]:
    speech = [{"start": s["start"], "end": s["end"], "transcript": s["transcript"],
               "source": "fsdd"} for s in segments]
    return {"id": stream_id, "duration": duration, "split": "train", "events": [],
            "speech": speech, "instructions": [], "responses": [],
            "no_response": [[0.0, duration]],
            "attribution": "Free Spoken Digit Dataset, CC BY-SA 4.0"}


def pack_streams(out: Path, n_streams: int, speakers: Sequence[str], seed: int = 0,
                 utterances: int = 24) -> dict[str, Any]:
    """Write ``n_streams`` digit streams as an ``export.pack`` file (features + records)."""
    from aim_edge.config import FbankConfig

    from .pack import Q_OFFSET, Q_SCALE, quantise
    from .targets import stream_features

    cfg = FbankConfig()
    pools = fsdd_by_speaker(speakers)
    rng = np.random.default_rng(seed)
    blocks, lengths, records = [], [], []
    total = 0.0
    for i in range(n_streams):
        spk = speakers[i % len(speakers)]
        audio, segs = digit_stream(pools[spk], rng, utterances, max_digits=3,
                                   noise_dbfs=float(rng.uniform(-65, -40)))
        feats = stream_features(audio, cfg)
        blocks.append(quantise(feats))
        lengths.append(len(feats))
        duration = audio.size / SAMPLE_RATE
        records.append(json.dumps(_record(f"fsdd-{spk}-{seed}-{i:04d}", duration, segs)))
        total += duration
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, feats=np.concatenate(blocks), lengths=np.array(lengths, np.int64),
                        records=np.array(records), features=json.dumps(cfg.to_dict()),
                        quantisation=json.dumps({"offset": Q_OFFSET, "scale": Q_SCALE}))
    return {"streams": n_streams, "hours": total / 3600, "bytes": out.stat().st_size}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.real_speech",
                                description=__doc__.split("\n\n")[0],
                                epilog="speakers: train " + ", ".join(TRAIN_SPEAKERS)
                                + "; held out for tests " + ", ".join(TEST_SPEAKERS))
    p.add_argument("--out", type=Path, required=True, help="output .npz pack")
    p.add_argument("--streams", type=int, default=120, help="streams of 24 utterances each")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--speakers", default=",".join(TRAIN_SPEAKERS),
                   help="comma-separated FSDD speakers (default: the training speakers)")
    args = p.parse_args(argv)
    info = pack_streams(args.out, args.streams, args.speakers.split(","), args.seed)
    print(f"packed {info['streams']} digit streams, {info['hours']:.2f} h -> {args.out} "
          f"({info['bytes'] / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
