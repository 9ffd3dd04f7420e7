"""Choose each label's alert confirmation through the runtime, and write it into a bundle.

```
python -m export.confirm aim_edge/models/default --scenes /root/aim-data/dev2          # show
python -m export.confirm aim_edge/models/default --scenes /root/aim-data/dev2 --write  # ship
```

A sound alerts once ``confirm_chunks`` of its chunks reached the label's threshold (manifest
``thresholds.confirm_chunks``, :mod:`aim_edge.policy`). Which labels should wait for a second
chunk is a property of the *shipped* model: its INT8 artifact has lone one-chunk spikes that
the fp32 checkpoint the thresholds are calibrated with does not (v0.3 on the 2 h dev2 split:
the runtime's smoke-alarm false activations fall from 27 to 17 with a second chunk, the fp32
model's from 10 to 8). So this streams dev scenes (``python -m export.data build --split
dev``; never the test split) through the bundle's runtime, scores every label's alerts with 1
to ``--max-chunks`` chunks by the policy's own rules (threshold, hysteresis, refractory time,
one alert per sound), and picks per label with
:func:`calibration.thresholds.choose_confirm`: a second chunk only where it removes false
alerts and loses no detection. ``--write`` stores the choice and the counts behind it in the
manifest (``thresholds.confirm_chunks``, ``thresholds.confirm_chosen_on``); thresholds are not
covered by the artifact hashes, so nothing else changes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["confirm_counts", "dev_scene_parser", "load_dev_scenes", "main", "write_confirm",
           "write_thresholds"]


def confirm_counts(engine: Any, scenes: Sequence[Any], max_chunks: int, progress: bool = True
                   ) -> tuple[dict[str, dict[int, tuple[int, int, int]]], float]:
    """``({label: {chunks: (tp, fn, fp)}}, hours)`` of the engine's alerts on ``scenes``."""
    from aim_edge.metrics import score_events
    from benchmarks.eval.runtime import run_scene, runtime_detections

    labels = [e.name for e in engine.bundle.events]
    counts = {label: {n: [0, 0, 0] for n in range(1, max_chunks + 1)} for label in labels}
    items: Any = scenes
    if progress:
        from tqdm import tqdm

        items = tqdm(scenes, desc="dev scenes through the runtime", unit="scene",
                     file=sys.stderr, dynamic_ncols=True)
    hours = 0.0
    for scene in items:
        run = run_scene(engine, scene)
        hours += scene.duration / 3600
        for n in range(1, max_chunks + 1):
            dets = runtime_detections(engine, run, confirm_chunks=n)
            for label in labels:
                s = score_events(scene.events, dets[label], label)
                c = counts[label][n]
                c[0], c[1], c[2] = c[0] + s["tp"], c[1] + s["fn"], c[2] + s["fp"]
    return {k: {n: (c[0], c[1], c[2]) for n, c in v.items()} for k, v in counts.items()}, hours


def write_thresholds(bundle: Path, fields: dict[str, Any]) -> None:
    """Set ``fields`` in the bundle manifest's ``thresholds`` and check that it still loads
    (restored as it was when the runtime refuses it). Shared by the tools that choose a
    runtime setting on dev scenes (this one, :mod:`export.caption_gate`)."""
    from aim_edge.bundle import load_bundle

    path = Path(bundle) / "manifest.json"
    before = path.read_text(encoding="utf-8")
    manifest = json.loads(before)
    manifest.setdefault("thresholds", {}).update(fields)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")  # as export.bundle
    tmp.replace(path)
    try:
        load_bundle(bundle)  # the runtime's own validation of what was written
    except Exception:
        path.write_text(before, encoding="utf-8")  # leave the bundle as it was
        raise


def write_confirm(bundle: Path, chosen: dict[str, int], record: dict[str, Any]) -> None:
    """Store ``chosen`` and ``record`` in the bundle's manifest and check that it loads."""
    write_thresholds(bundle, {"confirm_chunks": dict(chosen), "confirm_chosen_on": record})


def dev_scene_parser(prog: str, doc: str, json_help: str) -> argparse.ArgumentParser:
    """The command line both dev-scene tools share: ``bundle``, ``--scenes``, ``--backend``,
    ``--limit``, ``--write``, ``--json``, ``--no-progress`` (add a tool's own options)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {prog}", description=doc.split("\n\n")[0],
        epilog=f"Example: python -m {prog} aim_edge/models/default "
               "--scenes /root/aim-data/dev2 --write",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path, help="bundle folder (its manifest is rewritten"
                        " with --write)")
    parser.add_argument("--scenes", type=Path, required=True,
                        help="dev scenes from `python -m export.data build --split dev` (a"
                        " folder of *.jsonl + wav); never the test split")
    parser.add_argument("--backend", default="onnxruntime",
                        help="runtime backend whose outputs are scored (default %(default)s)")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N scenes")
    parser.add_argument("--write", action="store_true",
                        help="store the choice in the bundle's manifest (default: only show)")
    parser.add_argument("--json", type=Path, help=json_help)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def load_dev_scenes(parser: argparse.ArgumentParser, args: argparse.Namespace
                    ) -> list[Any] | None:
    """Check the bundle folder (a parser error names it) and load ``--scenes``; None after
    printing what is missing there."""
    from benchmarks.eval.sets import load_generated

    if not (args.bundle / "manifest.json").is_file():
        parser.error(f"{args.bundle}: no manifest.json; give a bundle folder such as "
                     "aim_edge/models/default")
    try:
        return load_generated(args.scenes, args.limit)
    except FileNotFoundError as exc:
        print(f"--scenes: {exc}", file=sys.stderr)
        return None


def _table(counts: dict[str, dict[int, tuple[int, int, int]]], chosen: dict[str, int],
           safety: set[str]) -> str:
    ns = sorted(next(iter(counts.values())))
    head = "label".ljust(16) + "".join(f"{n} chunk{'s' if n > 1 else ''}: tp/fn/fp".rjust(22)
                                      for n in ns) + "   chosen"
    rows = [head]
    for label, by_n in counts.items():
        cells = "".join(f"{'/'.join(map(str, by_n[n])):>22}" for n in ns)
        mark = " (safety)" if label in safety else ""
        rows.append(f"{label:<16}{cells}   {chosen[label]}{mark}")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    from calibration.thresholds import MAX_CONFIRM_CHUNKS, choose_confirm

    parser = dev_scene_parser("export.confirm", __doc__,
                              "also write the counts and choice here")
    parser.add_argument("--max-chunks", type=int, default=MAX_CONFIRM_CHUNKS,
                        help="largest confirmation tried; each chunk delays an alert by one"
                        " chunk (160 ms) (default %(default)s)")
    args = parser.parse_args(argv)
    if args.max_chunks < 1:
        parser.error(f"--max-chunks {args.max_chunks}: give a whole number >= 1")
    scenes = load_dev_scenes(parser, args)
    if scenes is None:
        return 2

    import aim_edge

    with aim_edge.Engine.from_bundle(args.bundle, backend=args.backend) as engine:
        safety = set(engine.bundle.safety_events)
        counts, hours = confirm_counts(engine, scenes, args.max_chunks,
                                       progress=not args.no_progress)
    chosen = choose_confirm(counts)
    print(f"{len(scenes)} scenes, {hours:.2f} h of {args.scenes}, backend {args.backend}")
    print(_table(counts, chosen, safety))
    record = {"scenes": args.scenes.name, "n_scenes": len(scenes), "hours": round(hours, 4),
              "backend": args.backend, "rule": "fewest false positives among the"
              " confirmations that keep every true detection of 1 chunk; ties: fewer chunks",
              "counts_tp_fn_fp": {k: {str(n): list(c) for n, c in v.items()}
                                  for k, v in counts.items()}}
    if args.json:
        args.json.write_text(json.dumps({"confirm_chunks": chosen, **record}, indent=1) + "\n")
    if args.write:
        write_confirm(args.bundle, chosen, record)
        print(f"wrote thresholds.confirm_chunks to {args.bundle / 'manifest.json'}")
    else:
        print("(shown only: add --write to store it in the bundle)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
