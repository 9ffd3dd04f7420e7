"""Does the instruction in force move the event head?

    python -m benchmarks.instruction_effect --split P/dev2.npz [--checkpoint CKPT] [--bundle DIR]

Up to v0.8 the decide head's query carries the instruction embedding, and the event head reads
the same query, so what the user asked for can change whether a sound is detected (a model with
``ModelConfig.event_branch``, like experiment v0.9, has events without the instruction: both
runs agree).
This scores a checkpoint (fp32, the strict full-sequence graph: what the runtime computes) on
a packed split twice, with the scenes' own instructions and with none (the zero embedding the
runtime uses when it hears none), the way the runtime alerts: the bundle's thresholds,
confirmations, hysteresis and refractory times (``PolicyConfig``'s defaults where the manifest
has none) and the re-arm gap. Prints tp/fn/fp per label and macro F1 over the labels the split
holds; ``--json`` writes them. Needs the export extra (torch).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = ROOT / "export/checkpoints/student-v0.8.npz"
DEFAULT_BUNDLE = ROOT / "aim_edge/models/default"


def score(streams, outs, labels: Sequence[str], engine) -> dict[str, Any]:
    """Per-label P/R/F1 (with tp/fp/fn) and macro F1 of the alerts ``engine``'s policy raises
    on ``outs`` (``run_model``'s probabilities, columns in ``labels`` order): the rules and the
    scoring of ``benchmarks.eval``."""
    from types import SimpleNamespace

    from benchmarks.eval.runtime import policy_detections, score_event_set
    from calibration.metrics import decision_time

    pol = engine.new_policy()
    cols = [labels.index(label) for label in pol.events]
    scenes_dets = [(SimpleNamespace(events=s.record["events"]),
                    policy_detections(pol, o["events"][:, cols],
                                      decision_time(np.arange(s.n_chunks)),
                                      engine.bundle.chunk_seconds))
                   for s, o in zip(streams, outs, strict=True)]
    return score_event_set(scenes_dets, pol.events)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.instruction_effect",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--split", required=True, type=Path, help="export.pack .npz (or folder)")
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, type=Path)
    p.add_argument("--bundle", default=DEFAULT_BUNDLE, type=Path,
                   help="whose thresholds and confirmations to use (default: the shipped one)")
    p.add_argument("--json", type=Path, help="also write the counts here")
    args = p.parse_args(argv)
    for path in (args.split, args.checkpoint, args.bundle / "manifest.json"):
        if not path.exists():
            p.error(f"{path} does not exist")
    try:
        from export.bundle import load_checkpoint
        from export.evaluate import run_model
        from export.targets import load_split
    except ImportError as exc:
        p.error(f"needs the export extra (torch): pip install -e .[export] ({exc})")
    from aim_edge.engine import Engine
    from aim_edge.errors import AimEdgeError

    model, _ = load_checkpoint(args.checkpoint)
    try:
        engine = Engine.from_bundle(args.bundle)
    except AimEdgeError as exc:
        p.error(f"{args.bundle}: {exc}")
    labels = list(model.cfg.events)
    bundle_labels = [e.name for e in engine.bundle.events]
    missing = sorted(set(labels) - set(bundle_labels))
    extra = sorted(set(bundle_labels) - set(labels))
    if missing or extra:
        p.error(f"{args.bundle} has no event label(s) {missing} of {args.checkpoint}"
                + (f" and others it lacks {extra}" if extra else "")
                + ": a bundle of another model? (--bundle)")
    streams, _, _ = load_split(args.split)
    result = {"split": str(args.split), "checkpoint": str(args.checkpoint),
              "events_read_instruction": not model.cfg.event_branch}
    for mode in ("with", "none"):
        ss = copy.deepcopy(streams)
        if mode == "none":
            for s in ss:
                s.instruction_ids[:] = 0
        result[mode] = score(ss, run_model(model, ss, 2), labels, engine)

    def fmt(f1: float | None) -> str:
        return "- (the split holds no labelled event)" if f1 is None else f"{f1:.3f}"

    def counts(mode: str, label: str) -> str:
        c = result[mode]["per_class"][label]
        return f"{c['tp']}/{c['fn']}/{c['fp']}"

    print(f"macro F1: with the scenes' instructions {fmt(result['with']['macro_f1'])}, "
          f"with none {fmt(result['none']['macro_f1'])}")
    if model.cfg.event_branch:
        print("(this model's events come from their own branch without the instruction: the two "
              "runs must agree)")
    print(f"{'label':16s} {'with: tp/fn/fp':>16s} {'none: tp/fn/fp':>16s}")
    for label in bundle_labels:
        print(f"{label:16s} {counts('with', label):>16s} {counts('none', label):>16s}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
