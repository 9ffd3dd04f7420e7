"""Pictures of a model's quality and of its training, for the model report.

    python -m export.plots evaluation v0.2.json v0.3.json --out evaluation.png
    python -m export.plots training /ckpt/a/metrics.jsonl /ckpt/b/metrics.jsonl --out training.png

``evaluation`` takes the JSON files ``python -m export.evaluate --json`` writes (one line per
file, named after its checkpoint unless ``--labels`` says otherwise) and draws:

* the **proactive operating curve** on the held-out split: recall of the response windows
  against false alerts per hour of no-response audio, one point per speak-now threshold, with
  the threshold calibrated on dev marked and the issue's target region shaded. A curve that
  never enters the region is a model problem; a curve that does but whose mark sits elsewhere
  is a calibration problem;
* **recall per kind of response** (hazard alerts, keyword alerts, answers, acknowledgements)
  against the threshold: one speak-now head serves them all, and they need not be equally
  easy for it;
* **event F1 per class** at the calibrated thresholds, side by side.

``training`` reads the metrics log of ``python -m export.train`` (JSON lines with ``step``,
``split`` and the loss terms) and draws total, CTC, event and response-timing losses against
the step, train thin and dev thick.

matplotlib is needed (``pip install 'aim-edge[plot]'``); it is imported on first use.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: The issue-10 targets the evaluation picture shades.
TARGET_FA_PER_HOUR = 1.0
TARGET_PROACTIVE_RECALL = 0.85


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit("export.plots needs matplotlib: pip install 'aim-edge[plot]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, out: Path) -> Path:
    """Lay ``fig`` out, write it to ``out`` (PNG, 110 dpi; folders made) and free it."""
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def load_evaluation(path: Path) -> dict[str, Any]:
    """One ``export.evaluate --json`` result, checked for what the picture needs."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{path}: not a readable evaluation JSON ({exc})") from exc
    test = result.get("test") if isinstance(result, dict) else None
    if not isinstance(test, dict) or "events" not in test or "proactive" not in test:
        raise SystemExit(f"{path}: no 'test' results with 'events' and 'proactive'; write it "
                         "with `python -m export.evaluate ... --json FILE`")
    if not test.get("proactive_curve"):
        raise SystemExit(f"{path}: no 'proactive_curve' (written by export.evaluate since the "
                         "operating curve was added); evaluate the checkpoint again")
    return result


def plot_evaluation(results: Sequence[tuple[str, dict[str, Any]]], out: Path) -> Path:
    """Operating curves and per-class event F1 of ``(label, result)`` pairs into ``out``."""
    if not results:
        raise ValueError("plot_evaluation: no results to draw")
    plt = _pyplot()
    fig, (ax_c, ax_k, ax_e) = plt.subplots(1, 3, figsize=(18, 5.2),
                                           gridspec_kw={"width_ratios": [1, 1, 1.5]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ax_c.fill_between([0, TARGET_FA_PER_HOUR], TARGET_PROACTIVE_RECALL, 1.0,
                      color="tab:green", alpha=0.12,
                      label=f"target: recall >= {TARGET_PROACTIVE_RECALL:g} at <= "
                            f"{TARGET_FA_PER_HOUR:g} false alert/h")
    fa_max = TARGET_FA_PER_HOUR
    for k, (label, res) in enumerate(results):
        c = colors[k % len(colors)]
        curve = res["test"]["proactive_curve"]
        fa = [p["false_alerts_per_hour"] for p in curve]
        rec = [p["recall"] for p in curve]
        fa_max = max(fa_max, *fa)
        ax_c.plot(fa, rec, "-o", ms=3, color=c, label=label)
        thr = (res.get("thresholds") or {}).get("speak_now")
        if thr is not None:
            p = res["test"]["proactive"]
            ax_c.plot([p["false_alerts_per_hour"]], [p["recall"]], "*", ms=14, color=c,
                      markeredgecolor="black",
                      label=f"{label}: dev-calibrated threshold {thr:g} (F1 {p['f1']:.2f})")
    ax_c.set_xscale("symlog", linthresh=1.0)
    ax_c.set_xlim(0, fa_max * 1.3)
    ax_c.set_ylim(0, 1.02)
    ax_c.set_xlabel("false alerts per hour of no-response audio (held-out split)")
    ax_c.set_ylabel("response windows answered in time (recall)")
    ax_c.set_title("speak-now operating curve (one point per threshold)")
    ax_c.grid(alpha=0.3)
    ax_c.legend(fontsize=7, loc="lower right")

    styles = ["-", "--", ":", "-."]
    kinds = sorted({k for _, r in results for p in r["test"]["proactive_curve"]
                    for k in p.get("by_kind", {})})
    for k, (label, res) in enumerate(results):
        curve = res["test"]["proactive_curve"]
        for j, kind in enumerate(kinds):
            pts = [(p["threshold"], p["by_kind"][kind]["recall"]) for p in curve
                   if kind in p.get("by_kind", {})]
            if pts:
                xs, ys = zip(*pts, strict=True)
                n = curve[0]["by_kind"].get(kind, {}).get("windows", 0)
                ax_k.plot(xs, ys, styles[j % len(styles)], color=colors[k % len(colors)],
                          label=f"{label}: {kind} ({n})")
        thr = (res.get("thresholds") or {}).get("speak_now")
        if thr is not None:
            ax_k.axvline(thr, color=colors[k % len(colors)], lw=0.8, alpha=0.6)
    ax_k.set_ylim(0, 1.02)
    ax_k.set_xlabel("speak-now threshold (vertical line: dev-calibrated)")
    ax_k.set_ylabel("windows answered in time")
    ax_k.set_title("recall per kind of response (windows)")
    ax_k.grid(alpha=0.3)
    if kinds:
        ax_k.legend(fontsize=6, loc="lower left")

    labels = sorted({e for _, r in results for e, v in r["test"]["events"].items()
                     if v["tp"] + v["fn"] > 0})
    width = 0.8 / len(results)
    for k, (label, res) in enumerate(results):
        ev = res["test"]["events"]
        f1 = [ev[e]["f1"] if e in ev else 0.0 for e in labels]
        macro = res["test"].get("event_macro_f1")
        xs = [i + (k - (len(results) - 1) / 2) * width for i in range(len(labels))]
        ax_e.bar(xs, f1, width=width, color=colors[k % len(colors)],
                 label=f"{label} (macro {macro:.2f})" if macro is not None else label)
    ax_e.axhline(0.9, ls="--", color="tab:green", lw=1, label="target F1 0.9")
    ax_e.set_xticks(range(len(labels)))
    ax_e.set_xticklabels([e.replace("_", " ") for e in labels], rotation=40, ha="right",
                         fontsize=8)
    ax_e.set_ylim(0, 1.05)
    ax_e.set_ylabel("event F1 (dev-calibrated thresholds)")
    ax_e.set_title("sound events per class, held-out split")
    ax_e.grid(axis="y", alpha=0.3)
    ax_e.legend(fontsize=7)
    return _save(plt, fig, out)


#: The loss terms ``training`` draws, one panel each.
TRAINING_PANELS = (("loss", "total loss"), ("ctc", "CTC"), ("event", "event BCE"),
                   ("timing", "response timing"))


def load_metrics(path: Path) -> list[dict[str, Any]]:
    """Records of an ``export.train`` metrics log; a malformed line is named, not skipped."""
    rows = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise SystemExit(f"{path}: {exc}") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise SystemExit(f"{path}:{n}: not JSON ({exc})") from exc
        if "step" not in row or "split" not in row:
            raise SystemExit(f"{path}:{n}: a metrics record needs 'step' and 'split'")
        rows.append(row)
    if not rows:
        raise SystemExit(f"{path}: no metrics records")
    return rows


def plot_training(runs: Sequence[tuple[str, list[dict[str, Any]]]], out: Path) -> Path:
    """Loss curves of ``(label, metrics records)`` runs into ``out``."""
    if not runs:
        raise ValueError("plot_training: no runs to draw")
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (key, title) in zip(axes.flat, TRAINING_PANELS, strict=True):
        for k, (label, rows) in enumerate(runs):
            c = colors[k % len(colors)]
            for split, style in (("train", dict(lw=0.8, alpha=0.45)),
                                 ("dev", dict(lw=2.0, marker="o", ms=3))):
                pts = [(r["step"], r[key]) for r in rows if r["split"] == split and key in r]
                if pts:
                    xs, ys = zip(*pts, strict=True)
                    ax.plot(xs, ys, color=c, label=f"{label} {split}", **style)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("optimiser step")
    axes[0, 0].legend(fontsize=7)
    return _save(plt, fig, out)


def _labels(defaults: Sequence[str], labels: Sequence[str] | None) -> list[str]:
    """``--labels`` when given (one per file), else the names derived from the files."""
    if labels is None:
        return list(defaults)
    if len(labels) != len(defaults):
        raise SystemExit(f"--labels: {len(labels)} given for {len(defaults)} files; give one "
                         "per file, in the same order")
    return list(labels)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.plots", description=__doc__.split("\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    ev = sub.add_parser("evaluation", help="operating curves and event F1 of evaluate JSONs")
    ev.add_argument("files", nargs="+", type=Path, metavar="EVAL.json")
    tr = sub.add_parser("training", help="loss curves of export.train metrics logs")
    tr.add_argument("files", nargs="+", type=Path, metavar="METRICS.jsonl")
    for sp in (ev, tr):
        sp.add_argument("--out", type=Path, required=True, metavar="PNG")
        sp.add_argument("--labels", nargs="+", default=None,
                        help="one name per file (default: the checkpoint or folder name)")
    args = p.parse_args(argv)
    if args.what == "evaluation":
        results = [load_evaluation(f) for f in args.files]
        names = _labels([Path(r.get("checkpoint", f)).stem
                         for f, r in zip(args.files, results, strict=True)], args.labels)
        out = plot_evaluation(list(zip(names, results, strict=True)), args.out)
    else:
        runs = [load_metrics(f) for f in args.files]
        names = _labels([f.parent.name or f.stem for f in args.files], args.labels)
        out = plot_training(list(zip(names, runs, strict=True)), args.out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
