"""Pack a generated split into one compact file of features + labels.

    python -m export.pack --data /data/train --out pack/train.npz [--max-hours 2.5]

Features are computed with the runtime's native front end (bit-identical to what the runtime
will see) and quantised to uint8: ``q = round((x + 16) * 8)``, i.e. 1/8 steps of natural-log
energy over [-16, 15.875] (the log floor is log(FLT_EPSILON) = -15.94). The rounding error,
<= 1/16, is far below the variation of the data. The labels travel as the generator's JSON
records. One file is what a training machine without TTS engines or the native extension
needs (e.g. a lent GPU machine): ``export.targets.load_split`` reads it like a folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

Q_OFFSET = 16.0
Q_SCALE = 8.0


def quantise(feats: np.ndarray) -> np.ndarray:
    return np.clip(np.round((feats + Q_OFFSET) * Q_SCALE), 0, 255).astype(np.uint8)


def dequantise(q: np.ndarray) -> np.ndarray:
    return (q.astype(np.float32) / Q_SCALE - Q_OFFSET).astype(np.float16)


def pack(data: Path, out: Path, max_hours: float = 0.0) -> dict:
    from aim_edge.config import FbankConfig

    from .targets import _audio_path, read_wav, stream_features

    cfg = FbankConfig()
    records, blocks, lengths = [], [], []
    total_s = 0.0
    for manifest in sorted(Path(data).rglob("*.jsonl")):
        for line in manifest.read_text().splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            if "responses" not in rec:
                continue
            if max_hours and total_s + rec["duration"] > max_hours * 3600:
                break
            feats = stream_features(read_wav(_audio_path(rec, manifest)), cfg)
            blocks.append(quantise(feats))
            lengths.append(len(feats))
            rec = {k: v for k, v in rec.items() if k not in ("audio", "path", "file", "wav")}
            records.append(json.dumps(rec))
            total_s += rec["duration"]
    if not records:
        raise SystemExit(f"{data}: no streams found (generate with python -m export.data build)")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, feats=np.concatenate(blocks), lengths=np.array(lengths, np.int64),
                        records=np.array(records), features=json.dumps(cfg.to_dict()),
                        quantisation=json.dumps({"offset": Q_OFFSET, "scale": Q_SCALE}))
    return {"streams": len(records), "hours": total_s / 3600, "bytes": out.stat().st_size}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.pack", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="split folder from export.data")
    p.add_argument("--out", type=Path, required=True, help="output .npz")
    p.add_argument("--max-hours", type=float, default=0.0, help="stop after this much audio")
    args = p.parse_args(argv)
    info = pack(args.data, args.out, args.max_hours)
    print(f"packed {info['streams']} streams, {info['hours']:.2f} h -> {args.out} "
          f"({info['bytes'] / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
