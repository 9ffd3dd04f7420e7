"""Evaluate a checkpoint on generated streams and calibrate its thresholds.

    python -m export.evaluate --checkpoint ckpt/student.pt --data /data/test \\
        [--calibrate-on /data/dev --target-fa-per-hour 1] [--json out.json]

The model runs over each whole stream with the full-sequence graph, which computes exactly what
the streaming step computes (``tests/test_model_streaming.py``). Metrics:

* **events** (per class, event level): an event is *detected* when ``p_e >= threshold`` at a
  chunk decided between its onset and 0.5 s after its offset; every activation (a run of chunks
  above threshold) that overlaps no event of that class is a false positive. F1 from those.
* **proactive** (speak-now): an activation of speak-now (rising edge above threshold) inside a
  response window is a hit (one per window); a window with no activation is a miss; any other
  activation is a false alert. Proactive F1, false alerts per hour of no-response audio, and the
  delay of the first hit after the window opens (median / p95), hazards broken out.
* **captions**: CER of greedy CTC over each speech segment (characters of the model alphabet).
* **keywords**: recall of watched keywords appearing in the greedy CTC text of their segment.
* **operating curve** (``proactive_curve``): the proactive metrics at every threshold of the
  calibration grid, so a miss of the targets can be read as a model problem (no threshold
  reaches them) or a calibration one (one does, but dev chose another); ``--plot`` draws it
  (:mod:`export.plots`).

Calibration picks, on a *different* split, the speak-now threshold and each event threshold
with the best recall whose false-alert rate stays within ``--target-fa-per-hour``. The metric
and calibration code lives in :mod:`calibration` (numpy only), shared with the export's parity
gate.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from calibration.metrics import captions, event_counts, proactive
from calibration.thresholds import GRID, calibrate, operating_curve

from ._args import require_paths, require_positive
from .bundle import load_checkpoint
from .model import AimModel
from .targets import StreamTargets, load_split

__all__ = ["GRID", "calibrate", "evaluate", "run_model"]


def run_model(model: AimModel, streams: list[StreamTargets], threads: int = 2
              ) -> list[dict[str, np.ndarray]]:
    torch.set_num_threads(threads)
    outs = []
    with torch.no_grad():
        for s in streams:
            x = torch.from_numpy(s.feats.astype(np.float32))[None]
            instr = torch.from_numpy(s.instruction)[None]
            o = model(x, instr)
            outs.append({
                "speak": torch.sigmoid(o["speak_logit"][0]).numpy(),
                "events": torch.sigmoid(o["event_logits"][0]).numpy(),
                "intent": o["intent_logits"][0].argmax(-1).numpy(),
                "ctc": o["ctc_logprobs"][0].argmax(-1).numpy(),
                "ctc_logprobs": o["ctc_logprobs"][0].numpy(),  # for the keyword spotter
            })
    return outs


def evaluate(model: AimModel, streams, thresholds: dict) -> dict[str, object]:
    outs = run_model(model, streams)
    events = list(model.cfg.events)
    per_class = {}
    for i, label in enumerate(events):
        tp, fn, fp = event_counts(streams, outs, i, thresholds["events"][label], label)
        p = tp / max(1, tp + fp)
        r = tp / max(1, tp + fn)
        per_class[label] = {"tp": tp, "fn": fn, "fp": fp, "precision": p, "recall": r,
                            "f1": 2 * p * r / max(1e-9, p + r)}
    scored = [v for v in per_class.values() if v["tp"] + v["fn"] > 0]
    return {
        "streams": len(streams),
        "hours": sum(s.n_chunks for s in streams) * 0.16 / 3600,
        "events": per_class,
        "event_macro_f1": float(np.mean([v["f1"] for v in scored])) if scored else None,
        "proactive": proactive(streams, outs, thresholds["speak_now"]),
        "proactive_curve": operating_curve(streams, outs),
        "captions": captions(streams, outs, model.cfg.vocab, model.cfg.enc_chunk),
    }


EPILOG = """examples:
  python -m export.evaluate --checkpoint ckpt/best.pt --data pack/test.npz \\
      --calibrate-on pack/dev2.npz --json eval.json --plot eval.png
  python -m export.plots evaluation old.json eval.json --out compare.png   # two models

Without --calibrate-on every threshold is 0.5 (useful for a quick look, not for a report).
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.evaluate",
                                description="Evaluate a checkpoint on a held-out split and"
                                " calibrate its thresholds on another: event F1 per class,"
                                " proactive F1, false alerts per hour, response delay,"
                                " greedy-CTC CER and keyword spotting.",
                                epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, metavar="CKPT",
                   help="export.train checkpoint (.pt) or shipped weights (.npz)")
    p.add_argument("--data", type=Path, required=True, metavar="SPLIT",
                   help="held-out split: an export.data folder or an export.pack .npz")
    p.add_argument("--calibrate-on", type=Path, metavar="SPLIT",
                   help="another split (dev) to choose the thresholds on; default: all 0.5")
    p.add_argument("--target-fa-per-hour", type=float, default=1.0, metavar="RATE",
                   help="false alerts per hour of no-response audio the thresholds may cost"
                   " on the calibration split (default %(default)s)")
    p.add_argument("--speak-target-fa-per-hour", type=float, metavar="RATE",
                   help="speak-now's own false-alert target (default: --target-fa-per-hour);"
                   " events keep --target-fa-per-hour per label")
    p.add_argument("--json", type=Path, metavar="FILE",
                   help="also write the results (JSON) to this file")
    p.add_argument("--plot", type=Path, metavar="PNG",
                   help="draw the operating curve and per-class event F1 here (matplotlib)")
    p.add_argument("--threads", type=int, default=2, metavar="N",
                   help="torch CPU threads (default %(default)s)")
    args = p.parse_args(argv)
    require_paths(p, args, "checkpoint", "data", "calibrate_on")
    for flag in ("json", "plot"):
        path = getattr(args, flag)
        if path is not None and not path.resolve().parent.is_dir():
            p.error(f"--{flag} {path}: folder {path.resolve().parent} does not exist")
    if args.threads < 1:
        p.error(f"--threads {args.threads}: must be >= 1")
    require_positive(p, args, "target_fa_per_hour", "speak_target_fa_per_hour")
    model, meta = load_checkpoint(args.checkpoint)
    events = list(model.cfg.events)
    result: dict[str, object] = {"checkpoint": str(args.checkpoint)}
    if args.calibrate_on:
        dev, _, _ = load_split(args.calibrate_on)
        thresholds = calibrate(dev, run_model(model, dev, args.threads), events,
                               args.target_fa_per_hour,
                               speak_target_fa_per_hour=args.speak_target_fa_per_hour)
        result["thresholds"] = thresholds
    else:
        thresholds = {"speak_now": 0.5, "events": {e: 0.5 for e in events}}
    test, _, _ = load_split(args.data)
    result["test"] = evaluate(model, test, thresholds)
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    if args.plot:
        from .plots import plot_evaluation

        print(f"wrote {plot_evaluation([(args.checkpoint.stem, result)], args.plot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
