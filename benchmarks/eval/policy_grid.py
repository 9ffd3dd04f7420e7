"""Score runtime policy settings on generated dev scenes: how runtime rules are chosen.

    python -m benchmarks.eval.policy_grid --scenes /data/dev2 --grid keyword_settle_s=0,0.16
    python -m benchmarks.eval.policy_grid --scenes /data/dev --set wake_inside=false

Each combination of the ``--grid`` values (``FIELD=V1,V2,...``, repeatable; fields of
:class:`aim_edge.policy.PolicyConfig`, values as ``aim-edge run --policy`` takes them) plays
every scene through the runtime (``Engine`` / ``Stream``, 160 ms chunks, the bundle's
thresholds, the scenes' own text and spoken instructions) and is scored like
``python -m benchmarks.eval``'s proactive table: response windows on time, late, missed,
false alerts, proactive F1, per response kind, and what said each false alert. ``--set``
fixes fields for every row. Choose on dev splits, never on test. ``--json`` writes the rows.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _grid(items: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``FIELD=V1,V2`` items as ``[(field, [values])]``; ValueError names a bad item."""
    out: list[tuple[str, list[str]]] = []
    for item in items:
        name, sep, values = item.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not name.strip() or not vals:
            raise ValueError(f"--grid {item!r}: expected FIELD=V1,V2,... e.g."
                             " keyword_settle_s=0,0.16")
        if name.strip() in [n for n, _ in out]:
            raise ValueError(f"--grid {name.strip()} is given twice: put all its values in"
                             " one --grid")
        out.append((name.strip(), vals))
    return out


def score(model: str | None, scenes: Sequence[Any], policy: dict[str, Any]) -> dict[str, Any]:
    """Proactive figures of ``policy`` (field -> value) over ``scenes``
    (:func:`benchmarks.eval.sets.load_generated`)."""
    from aim_edge.engine import Engine

    from .runtime import proactive, run_scene

    with Engine.from_bundle(model, policy=policy or None) as engine:
        runs = [run_scene(engine, sc) for sc in scenes]
    p = proactive(runs)
    kinds = {k: f"{v['hits']}/{v['windows']}" for k, v in p["by_kind"].items()
             if isinstance(v, dict) and "hits" in v}
    return {"policy": policy, "scenes": len(scenes), "windows": p["windows"],
            "on_time": p["hits"], "late": p["late"], "missed": p["misses"],
            "false_alerts": p["false_alerts"], "proactive_f1": round(p["f1"], 4),
            "false_alerts_per_hour": round(p["false_alerts_per_hour"], 2),
            "on_time_by_kind": kinds, "false_alerts_by_source": p["false_alerts_by_source"]}


def main(argv: Sequence[str] | None = None) -> int:
    from aim_edge.policy import PolicyConfig

    ap = argparse.ArgumentParser(prog="python -m benchmarks.eval.policy_grid",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=Path, required=True, metavar="DIR",
                    help="generated scenes (python -m export.data build --split dev ...)")
    ap.add_argument("--model", default=None, metavar="BUNDLE",
                    help="bundle folder or .zip (default: the shipped bundle)")
    ap.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2",
                    help="values to try for one policy field (repeatable: every combination)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="a policy field fixed for every row (repeatable)")
    ap.add_argument("--limit", type=int, default=None, metavar="N",
                    help="only the first N scenes (a quick look)")
    ap.add_argument("--json", type=Path, default=None, metavar="PATH",
                    help="write the rows as JSON")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(argv)
    if not args.scenes.is_dir():
        ap.error(f"--scenes {args.scenes}: not a folder of generated scenes")
    if args.limit is not None and args.limit < 1:
        ap.error(f"--limit {args.limit}: give a number of scenes >= 1")
    try:
        fixed = PolicyConfig.parse_settings(args.set)
        grid = _grid(args.grid)
        both = sorted(set(fixed) & {n for n, _ in grid})
        if both:
            raise ValueError(f"{', '.join(both)}: given to both --set and --grid; keep one")
        combos = [dict(zip([n for n, _ in grid], c, strict=True))
                  for c in itertools.product(*[v for _, v in grid])] or [{}]
        policies = [{**fixed, **PolicyConfig.parse_settings([f"{k}={v}" for k, v in c.items()])}
                    for c in combos]
    except ValueError as exc:  # ConfigError names the field and what it takes
        ap.error(str(exc))
    from .sets import load_generated

    try:
        scenes = load_generated(args.scenes, args.limit or 0)
    except FileNotFoundError:
        scenes = []
    if not scenes:
        ap.error(f"--scenes {args.scenes}: no generated scenes in it (python -m export.data"
                 " build --split dev --out DIR makes some)")
    rows = []
    print(f"{'policy':<40} {'on time':>8} {'late':>5} {'missed':>6} {'false':>6} {'F1':>6}"
          "  by kind (on time/windows)")
    for pol in policies:
        r = score(args.model, scenes, pol)
        rows.append(r)
        name = ", ".join(f"{k}={v}" for k, v in pol.items()) or "(bundle defaults)"
        print(f"{name:<40} {r['on_time']:>4}/{r['windows']:<3} {r['late']:>5} {r['missed']:>6}"
              f" {r['false_alerts']:>6} {r['proactive_f1']:>6.3f}  "
              + " ".join(f"{k} {v}" for k, v in r["on_time_by_kind"].items()), flush=True)
        print(f"{'':<40} false alerts by source: {r['false_alerts_by_source']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"scenes": str(args.scenes), "model": args.model,
                                         "command": "python -m benchmarks.eval.policy_grid "
                                         + shlex.join(argv), "rows": rows},
                                        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
