"""Does the instruction in force move the event head?

    python -m benchmarks.instruction_effect --split P/dev2.npz [--checkpoint CKPT] [--bundle DIR]

The decide head's query carries the instruction embedding, and the event head reads the same
query, so what the user asked for can change whether a sound is detected. This scores a
checkpoint (fp32, the strict full-sequence graph: what the runtime computes) on a packed split
twice, with the scenes' own instructions and with none (the zero embedding the runtime uses when
it hears none), the way the runtime alerts: the bundle's thresholds, confirmations, hysteresis
and refractory times (``PolicyConfig``'s defaults where the manifest has none) and the re-arm
gap. Prints tp/fn/fp per label and macro F1 over the labels the split holds; ``--json`` writes
them. Needs the export extra (torch).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = ROOT / "export/checkpoints/student-v0.8.npz"
DEFAULT_BUNDLE = ROOT / "aim_edge/models/default"


def score(streams, outs, labels, bundle) -> dict[str, list[int]]:
    """Runtime-like tp/fn/fp per label, with ``bundle``'s alert rules."""
    from aim_edge.metrics import score_events
    from aim_edge.policy import PolicyConfig
    from benchmarks.eval.runtime import event_detections
    from calibration.metrics import CHUNK_S, decision_time

    policy = PolicyConfig()
    hysteresis = bundle.manifest.get("thresholds", {}).get("hysteresis", policy.hysteresis)
    refractory = bundle.per_label("refractory_s")
    confirm = bundle.confirm_chunks
    counts = {}
    for i, label in enumerate(labels):
        tp = fn = fp = 0
        for s, o in zip(streams, outs, strict=True):
            t = decision_time(np.arange(s.n_chunks))
            det = event_detections(o["events"][:, i], t, bundle.event_thresholds[label],
                                   hysteresis, refractory.get(label, policy.refractory_s),
                                   CHUNK_S, policy.rearm_s, confirm.get(label, 1))
            r = score_events(s.record["events"], det, label)
            tp, fn, fp = tp + r["tp"], fn + r["fn"], fp + r["fp"]
        counts[label] = [tp, fn, fp]
    return counts


def macro_f1(counts: dict[str, list[int]]) -> float | None:
    """Over the labels the split holds; None when it holds none."""
    present = [c for c in counts.values() if c[0] + c[1] > 0]
    if not present:
        return None
    return float(np.mean([2 * tp / max(1, 2 * tp + fn + fp) for tp, fn, fp in present]))


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
        from aim_edge.bundle import load_bundle
        from export.bundle import load_checkpoint
        from export.evaluate import run_model
        from export.targets import load_split
    except ImportError as exc:
        p.error(f"needs the export extra (torch): pip install -e .[export] ({exc})")
    model, _ = load_checkpoint(args.checkpoint)
    from aim_edge.errors import AimEdgeError

    try:
        bundle = load_bundle(args.bundle)
    except AimEdgeError as exc:
        p.error(f"{args.bundle}: {exc}")
    labels = list(model.cfg.events)
    missing = sorted(set(labels) - {e.name for e in bundle.events})
    if missing:
        p.error(f"{args.bundle} has no event label(s) {missing} of {args.checkpoint}: a bundle "
                "of another model? (--bundle)")
    streams, _, _ = load_split(args.split)
    result = {"split": str(args.split), "checkpoint": str(args.checkpoint)}
    for mode in ("with", "none"):
        ss = copy.deepcopy(streams)
        if mode == "none":
            for s in ss:
                s.instruction_ids[:] = 0
        counts = score(ss, run_model(model, ss, 2), labels, bundle)
        result[mode] = {"macro_f1": macro_f1(counts), "tp_fn_fp": counts}
    def fmt(f1: float | None) -> str:
        return "- (the split holds no labelled event)" if f1 is None else f"{f1:.3f}"

    print(f"macro F1: with the scenes' instructions {fmt(result['with']['macro_f1'])}, "
          f"with none {fmt(result['none']['macro_f1'])}")
    print(f"{'label':16s} {'with: tp/fn/fp':>16s} {'none: tp/fn/fp':>16s}")
    for label in labels:
        w, n = result["with"]["tp_fn_fp"][label], result["none"]["tp_fn_fp"][label]
        print(f"{label:16s} {'/'.join(map(str, w)):>16s} {'/'.join(map(str, n)):>16s}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
