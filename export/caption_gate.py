"""Choose the caption gate through the runtime, and write it into a bundle.

```
python -m export.caption_gate aim_edge/models/default --scenes /root/aim-data/dev2          # show
python -m export.caption_gate aim_edge/models/default --scenes /root/aim-data/dev2 --write  # ship
```

The streaming model writes letters over sounds that are not speech: a siren becomes "i i ie
iieie", a kettle "hex" (v0.8: a quarter of the final captions of the dev split lie over no
speech at all). Those letters are guesses, and the model says so: the mean posterior of a
caption's letter frames (:attr:`aim_edge.policy.CaptionDecoder.confidence`) has a median of
0.78 on captions of speech and 0.49 on captions over no speech. The runtime drops a final
caption below ``thresholds.caption_confidence`` (:class:`aim_edge.policy.PolicyConfig`).

This streams dev scenes (``python -m export.data build --split dev``; never the test split)
through the bundle's runtime with the gate off, marks each final caption as over speech when
at least ``--min-overlap`` of its span lies in labelled speech, and picks with
:func:`calibration.thresholds.choose_caption_confidence`: the highest threshold that drops
at most ``--max-speech-loss`` of the characters of captions over speech. ``--write`` stores the
threshold and the curve behind it in the manifest (``thresholds.caption_confidence``,
``thresholds.caption_confidence_chosen_on``); thresholds are not covered by the artifact
hashes, so nothing else changes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["caption_samples", "main", "write_caption_gate"]

#: A caption counts as over speech when this share of its span lies in labelled speech.
MIN_OVERLAP = 0.2


def _overlap(caption: dict[str, Any], speech: Sequence[dict[str, Any]]) -> float:
    a, b = float(caption["start_s"]), float(caption["end_s"])
    inside = sum(max(0.0, min(b, float(s["end"])) - max(a, float(s["start"]))) for s in speech)
    return inside / max(b - a, 1e-3)


def caption_samples(engine: Any, scenes: Sequence[Any], min_overlap: float = MIN_OVERLAP,
                    progress: bool = True) -> tuple[list[tuple[float, int, bool, bool]], float]:
    """``([(confidence, characters, over_speech, over_sound)] per final caption, hours)`` of
    ``scenes`` through ``engine``, whose policy must keep every caption
    (``caption_confidence`` 0)."""
    from benchmarks.eval.runtime import run_scene

    if engine.new_policy().caption_confidence > 0:
        raise ValueError("caption_samples: the engine drops captions already; open it with"
                         " policy={'caption_confidence': 0.0}")
    items: Any = scenes
    if progress:
        from tqdm import tqdm

        items = tqdm(scenes, desc="dev scenes through the runtime", unit="scene",
                     file=sys.stderr, dynamic_ncols=True)
    out: list[tuple[float, int, bool, bool]] = []
    hours = 0.0
    for scene in items:
        run = run_scene(engine, scene)
        hours += scene.duration / 3600
        for cap in run.captions:
            out.append((float(cap["confidence"]), len(cap["text"]),
                        _overlap(cap, scene.speech) >= min_overlap, bool(cap["over_sound"])))
    return out, hours


def write_caption_gate(bundle: Path, threshold: float, record: dict[str, Any]) -> None:
    """Store ``threshold`` and ``record`` in the bundle's manifest and check that it loads."""
    from .confirm import write_thresholds

    write_thresholds(bundle, {"caption_confidence": float(threshold),
                              "caption_confidence_chosen_on": record})


def _table(curve: Sequence[dict[str, Any]], chosen: float) -> str:
    rows = ["threshold   over no speech dropped   over speech dropped   speech chars lost"]
    for r in curve:
        mark = "   <- chosen" if abs(r["threshold"] - chosen) < 1e-9 else ""
        rows.append(f"{r['threshold']:9.2f}   {r['nonspeech_dropped']:>10d} of {r['nonspeech']:<8d}"
                    f"   {r['speech_dropped']:>7d} of {r['speech']:<8d}"
                    f"   {100 * r['speech_chars_lost']:>15.1f} %{mark}")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    from calibration.thresholds import DEFAULT_MAX_SPEECH_LOSS, choose_caption_confidence

    from .confirm import dev_scene_parser, load_dev_scenes

    parser = dev_scene_parser("export.caption_gate", __doc__,
                              "also write the curve and choice here")
    parser.add_argument("--max-speech-loss", type=float, default=DEFAULT_MAX_SPEECH_LOSS,
                        help="share of the characters of captions over speech the gate may"
                        " drop (default %(default)s = 2 %%)")
    parser.add_argument("--min-overlap", type=float, default=MIN_OVERLAP,
                        help="share of a caption's span in labelled speech that makes it a"
                        " caption of speech (default %(default)s)")
    args = parser.parse_args(argv)
    if not 0.0 <= args.max_speech_loss < 1.0:
        parser.error(f"--max-speech-loss {args.max_speech_loss}: give a share in [0, 1),"
                     " e.g. 0.02")
    if not 0.0 < args.min_overlap <= 1.0:
        parser.error(f"--min-overlap {args.min_overlap}: give a share in (0, 1], e.g. 0.2")
    scenes = load_dev_scenes(parser, args)
    if scenes is None:
        return 2

    import aim_edge

    with aim_edge.Engine.from_bundle(args.bundle, backend=args.backend,
                                     policy={"caption_confidence": 0.0}) as engine:
        samples, hours = caption_samples(engine, scenes, args.min_overlap,
                                         progress=not args.no_progress)
    try:
        chosen, curve = choose_caption_confidence(samples, args.max_speech_loss)
    except ValueError as exc:
        print(f"{args.scenes}: {exc}", file=sys.stderr)
        return 2
    print(f"{len(scenes)} scenes, {hours:.2f} h of {args.scenes}, backend {args.backend},"
          f" {len(samples)} final captions")
    print(_table(curve, chosen))
    record = {"scenes": args.scenes.name, "n_scenes": len(scenes), "hours": round(hours, 4),
              "backend": args.backend, "captions": len(samples),
              "rule": f"highest threshold that drops at most {args.max_speech_loss:g} of the"
                      " characters of captions over speech (a caption is over speech when"
                      f" {args.min_overlap:g} of its span lies in labelled speech)",
              "curve": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                        for r in curve]}
    if args.json:
        args.json.write_text(json.dumps({"caption_confidence": chosen, **record}, indent=1)
                             + "\n")
    if args.write:
        write_caption_gate(args.bundle, chosen, record)
        print(f"wrote thresholds.caption_confidence = {chosen:g} to"
              f" {args.bundle / 'manifest.json'}")
    else:
        print("(shown only: add --write to store it in the bundle)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
