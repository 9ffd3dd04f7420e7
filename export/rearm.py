"""Choose each label's re-arm pause through the runtime, and write it into a bundle.

```
python -m export.rearm aim_edge/models/default --scenes /root/aim-data/dev2          # show
python -m export.rearm aim_edge/models/default --scenes /root/aim-data/dev2 --write  # ship
```

One sound gives one alert: an activation that starts less than ``rearm_s`` after the label's
previous activation ended continues the same sound (:mod:`aim_edge.policy`). One pause does
not fit every alarm. A CO alarm sounds the temporal-four pattern: four beeps, then 5 s of
silence, again and again; a smoke alarm's temporal-three pauses 1.5 s. With the runtime's
3 s default every burst of a CO alarm was a new sound, announced again once the 5 s refractory
time had passed (v0.8 on the 2 h dev2 split: 7 of the 47 false alerts were a CO alarm
announced a second time during the same alarm).

This streams dev scenes (``python -m export.data build --split dev``; never the test split)
through the bundle's runtime, replays every label's alerts with each pause of ``--grid`` by
the policy's own rules (threshold, hysteresis, refractory time, confirmation:
:func:`aim_edge.metrics.alerts`), and counts per label the sounds alerted inside their
response window (the generator's: from the onset to ``min(duration, 3 s) + 2 s`` after it)
and the alerts inside none. It picks with :func:`calibration.thresholds.choose_rearm`: a
longer pause only where it removes repeated alerts and loses no sound alerted in time.
``--write`` stores the choice and the counts behind it in the manifest
(``thresholds.rearm_s``, ``thresholds.rearm_chosen_on``); thresholds are not covered by the
artifact hashes, so nothing else changes. Run it after ``export.confirm`` (the replay uses the
bundle's confirmations).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "rearm_counts", "write_rearm"]


def rearm_counts(engine: Any, scenes: Sequence[Any], grid: Sequence[float],
                 progress: bool = True
                 ) -> tuple[dict[str, dict[float, tuple[int, int, int]]], float]:
    """``({label: {pause: (hit, missed, extra)}}, hours)`` of the engine's alerts on
    ``scenes`` replayed with each re-arm pause of ``grid`` (seconds)."""
    from aim_edge.metrics import alerts
    from benchmarks.eval.runtime import run_scene
    from export.data.scene import alert_window

    pol = engine.new_policy()
    labels = list(pol.events)
    chunk_s = engine.bundle.chunk_seconds
    counts = {label: {float(r): [0, 0, 0] for r in grid} for label in labels}
    items: Any = scenes
    if progress:
        from tqdm import tqdm

        items = tqdm(scenes, desc="dev scenes through the runtime", unit="scene",
                     file=sys.stderr, dynamic_ncols=True)
    hours = 0.0
    for scene in items:
        run = run_scene(engine, scene)
        hours += scene.duration / 3600
        for i, label in enumerate(labels):
            windows = [alert_window(float(e["onset"]), float(e["offset"]))
                       for e in scene.events if e["label"] == label]
            for r in grid:
                fired = alerts(run.p_events[:, i], float(pol.on[i]), pol.hysteresis,
                               float(pol.refractory[i]), chunk_s, float(r), int(pol.confirm[i]))
                times = [float(run.t[f]) for _, f, _ in fired]
                hit = sum(any(a <= t <= b for t in times) for a, b in windows)
                extra = sum(not any(a <= t <= b for a, b in windows) for t in times)
                c = counts[label][float(r)]
                c[0], c[1], c[2] = c[0] + hit, c[1] + len(windows) - hit, c[2] + extra
    return {k: {r: (c[0], c[1], c[2]) for r, c in v.items()} for k, v in counts.items()}, hours


def write_rearm(bundle: Path, chosen: dict[str, float], record: dict[str, Any]) -> None:
    """Store ``chosen`` and ``record`` in the bundle's manifest and check that it loads."""
    from .confirm import write_thresholds

    write_thresholds(bundle, {"rearm_s": dict(chosen), "rearm_chosen_on": record})


def _table(counts: dict[str, dict[float, tuple[int, int, int]]], chosen: dict[str, float],
           safety: set[str]) -> str:
    grid = sorted(next(iter(counts.values())))
    rows = ["label".ljust(16) + "".join(f"{r:g} s".rjust(12) for r in grid)
            + "   chosen   (hit/missed/extra alerts)"]
    for label, by_r in counts.items():
        cells = "".join(f"{'/'.join(map(str, by_r[r])):>12}" for r in grid)
        mark = " (safety)" if label in safety else ""
        rows.append(f"{label:<16}{cells}   {chosen[label]:g} s{mark}")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    from aim_edge.policy import PolicyConfig
    from calibration.thresholds import REARM_GRID, choose_rearm

    from .confirm import dev_scene_parser, load_dev_scenes

    parser = dev_scene_parser("export.rearm", __doc__, "also write the counts and choice here")
    reference = PolicyConfig().rearm_s
    parser.add_argument("--grid", default=",".join(f"{r:g}" for r in REARM_GRID),
                        help="re-arm pauses to try, in seconds; must include the runtime's"
                        f" default {reference:g} (the reference) (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        grid = sorted({float(v) for v in args.grid.split(",") if v.strip()})
    except ValueError:
        parser.error(f"--grid {args.grid}: give seconds separated by commas, e.g. 3,4,6,8")
    if reference not in grid or any(not r >= 0 for r in grid):
        parser.error(f"--grid {args.grid}: give pauses >= 0 s that include the reference"
                     f" {reference:g} s (the runtime's default rearm_s)")
    scenes = load_dev_scenes(parser, args)
    if scenes is None:
        return 2

    import aim_edge

    # the reference replay must not inherit a pause an earlier --write stored
    with aim_edge.Engine.from_bundle(args.bundle, backend=args.backend,
                                     policy={"rearm_s": reference}) as engine:
        safety = set(engine.bundle.safety_events)
        counts, hours = rearm_counts(engine, scenes, grid, progress=not args.no_progress)
    chosen = choose_rearm(counts, reference)
    print(f"{len(scenes)} scenes, {hours:.2f} h of {args.scenes}, backend {args.backend}")
    print(_table(counts, chosen, safety))
    record = {"scenes": args.scenes.name, "n_scenes": len(scenes), "hours": round(hours, 4),
              "backend": args.backend, "reference_s": reference,
              "rule": "fewest extra alerts (inside no response window) among the pauses that"
              f" keep every sound the reference {reference:g} s alerts in time; ties: the"
              " shorter pause",
              "counts_hit_missed_extra": {k: {f"{r:g}": list(c) for r, c in v.items()}
                                          for k, v in counts.items()}}
    if args.json:
        args.json.write_text(json.dumps({"rearm_s": chosen, **record}, indent=1) + "\n")
    if args.write:
        write_rearm(args.bundle, chosen, record)
        print(f"wrote thresholds.rearm_s to {args.bundle / 'manifest.json'}")
    else:
        print("(shown only: add --write to store it in the bundle)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
