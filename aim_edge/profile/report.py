"""The profile report: ``report.json`` (versioned), ``report.html`` (self-contained, offline) and
PNG plots.

``report.json`` carries :data:`SCHEMA` and :data:`SCHEMA_VERSION`; it holds every figure and the
per-chunk stage durations, so the HTML and the plots are drawn from it alone
(:func:`write_report` on a loaded JSON re-renders a report). The HTML embeds the PNGs as
``data:`` URIs and needs nothing from the network. Plots need matplotlib
(``pip install 'aim-edge[plot]'``); without it the JSON and an HTML with the tables are still
written, and the HTML and the command both say what to install.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OptionalDependencyError
from ..timing import STAGES
from .sweep import TABLE_COLUMNS, table_rows

__all__ = ["PLOT_HINT", "SCHEMA", "SCHEMA_VERSION", "environment", "require_matplotlib",
           "tail_breakdown", "write_report"]

SCHEMA = "aim-edge-profile"
SCHEMA_VERSION = 1
PLOT_HINT = "pip install 'aim-edge[plot]'  (matplotlib)"

#: Stages drawn in the CDFs and the timeline, in pipeline order (capture -> ring is zero for
#: file sources and left out when it is).
_DRAWN = ("capture_to_ring", "ring_wait", "features", "queue", "model", "decision", "respond")
#: The stages end to end is made of (capture -> ring comes before the ring time it starts at)
_E2E_PARTS = _DRAWN[1:]
_COLORS = {"capture_to_ring": "#8c564b", "ring_wait": "#7f7f7f", "features": "#1f77b4",
           "queue": "#bcbd22",
           "model": "#ff7f0e", "decision": "#2ca02c", "respond": "#9467bd",
           "end_to_end": "#000000"}


def require_matplotlib() -> Any:
    """Import matplotlib with the non-interactive Agg canvas, or raise with the install hint."""
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError as exc:
        raise OptionalDependencyError("plotting (matplotlib)", PLOT_HINT) from exc
    return matplotlib


def environment() -> dict[str, Any]:
    """Versions and machine facts stored with the report."""
    from .. import __version__

    env: dict[str, Any] = {"aim_edge": __version__, "python": platform.python_version(),
                           "numpy": np.__version__, "platform": platform.platform(),
                           "machine": platform.machine(), "cpu_count": os.cpu_count()}
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        env["onnxruntime"] = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                env["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        env["loadavg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return env


def tail_breakdown(result: dict[str, Any]) -> dict[str, Any]:
    """What the slowest 1 % of chunks (at least one) spend their time on.

    Returns ``{"chunks": n, "threshold_ms": e2e at the cut, "mean_ms": {stage: mean},
    "dominant": stage with the largest mean}``. ``capture_to_ring`` is in ``mean_ms`` but
    never ``dominant``: it happens before the ring time end to end starts from.
    """
    pc = result["per_chunk"]
    e2e = np.asarray(pc["end_to_end"], np.float64)
    if e2e.size == 0:
        return {"chunks": 0, "threshold_ms": None, "mean_ms": {}, "dominant": None}
    k = max(1, int(np.ceil(e2e.size * 0.01)))
    idx = np.argsort(e2e)[-k:]
    means = {s: round(float(np.mean(np.asarray(pc[s], np.float64)[idx])), 3) for s in _DRAWN}
    return {"chunks": int(k), "threshold_ms": round(float(e2e[idx].min()), 3),
            "mean_ms": means, "dominant": max(_E2E_PARTS, key=lambda s: means[s])}


def _slug(row: dict[str, Any]) -> str:
    return f"{row['backend']}_{row['precision']}_x{row['threads']}".replace("/", "-")


# ---------------------------------------------------------------------- plots
def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _plot_cdf(result: dict[str, Any], budget_ms: float, title: str) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.2), layout="constrained")
    ax = fig.add_subplot()
    pc = result["per_chunk"]
    for s in (*_DRAWN, "end_to_end"):
        v = np.sort(np.asarray(pc[s], np.float64))
        if v.size == 0 or (s == "capture_to_ring" and not v.any()):
            continue
        y = np.arange(1, v.size + 1) / v.size
        ax.step(np.maximum(v, 1e-3), y, where="post", color=_COLORS[s],
                lw=2.2 if s == "end_to_end" else 1.3, label=s.replace("_", " "))
    ax.axvline(budget_ms, color="red", ls="--", lw=1, label=f"budget {budget_ms:g} ms")
    ax.axhline(0.99, color="grey", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("milliseconds per chunk (log scale)")
    ax.set_ylabel("fraction of chunks")
    ax.set_ylim(0, 1.01)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def timeline_window(result: dict[str, Any], seconds: float) -> tuple[float, float]:
    """Wall-clock window (s since the loop started) of ``seconds`` around the slowest chunk
    (the first chunk, a cold start reported on its own, is not a candidate)."""
    t = _timeline_x(result)
    e2e = np.asarray(result["per_chunk"]["end_to_end"], np.float64)
    if t.size == 0:
        return 0.0, seconds
    worst = int(np.argmax(e2e[1:]) + 1) if t.size > 1 else 0
    lo = max(float(t[0]) - 0.2, float(t[worst]) - seconds / 2)
    hi = lo + seconds
    if hi > float(t[-1]) + 0.2:
        hi = float(t[-1]) + 0.2
        lo = max(float(t[0]) - 0.2, hi - seconds)
    return lo, hi


def _timeline_x(result: dict[str, Any]) -> np.ndarray:
    """Where each chunk's bar goes: its wall-clock ring time when paced in real time, its
    audio start time with --fast (chunks then enter the ring microseconds apart, and bars at
    wall-clock times would all overlap)."""
    pc = result["per_chunk"]
    key = "t_s" if result.get("realtime", True) else "start_s"
    return np.asarray(pc[key], np.float64)


def _plot_timeline(result: dict[str, Any], budget_ms: float, seconds: float,
                   title: str) -> bytes:
    from matplotlib.figure import Figure

    pc = result["per_chunk"]
    t = _timeline_x(result)
    lo, hi = timeline_window(result, seconds)
    sel = np.flatnonzero((t >= lo) & (t <= hi))
    chunk_s = result["chunk_ms"] / 1000.0
    fig = Figure(figsize=(10, 4.4), layout="constrained")
    ax = fig.add_subplot()
    bottom = np.zeros(sel.size)
    for s in _E2E_PARTS:  # a bar is a chunk's end to end (capture -> ring: the CDF plot)
        v = np.asarray(pc[s], np.float64)[sel]
        ax.bar(t[sel], v, width=chunk_s * 0.7, bottom=bottom, color=_COLORS[s], align="edge",
               label=s.replace("_", " "))
        bottom += v
    top = float(bottom.max()) if bottom.size else 1.0
    # decisions: markers above the chunk that decided them
    marks = {"alert": ("^", "#d62728"), "caption": ("o", "#17becf"), "answer": ("D", "#e377c2")}
    shown: set[str] = set()
    for d in result["decisions"]:
        i = d["chunk"]
        if i is None or i not in set(sel.tolist()):
            continue
        m, c = marks[d["type"]]
        ax.plot(t[i] + chunk_s * 0.35, top * 1.12, marker=m, color=c, ls="none", ms=8,
                label=d["type"] if d["type"] not in shown else None)
        shown.add(d["type"])
        if d["type"] == "alert":
            ax.annotate(d["what"], (t[i] + chunk_s * 0.35, top * 1.12), fontsize=7,
                        xytext=(0, 6), textcoords="offset points", ha="center")
    # drops: chunks whose cumulative drop count grew, and gaps in the audio
    dropped = np.asarray(pc["dropped"], np.int64)
    grew = np.flatnonzero(np.diff(dropped, prepend=dropped[:1] if dropped.size else 0) > 0)
    start, end = np.asarray(pc["start_s"]), np.asarray(pc["end_s"])
    gaps = np.flatnonzero(start[1:] > end[:-1] + 0.02) + 1 if start.size > 1 else np.array([])
    first_drop = True
    for i in sorted(set(grew.tolist()) | set(np.asarray(gaps, int).tolist())):
        if lo <= t[i] <= hi:
            ax.axvspan(t[i] - chunk_s, t[i], color="red", alpha=0.25,
                       label="dropped audio" if first_drop else None)
            first_drop = False
    if budget_ms <= top * 1.4:
        ax.axhline(budget_ms, color="red", ls="--", lw=1, label=f"budget {budget_ms:g} ms")
    ax.set_xlim(lo, hi)
    ax.set_ylim(0, top * 1.3 + 1e-3)
    if result.get("realtime", True):
        ax.set_xlabel("wall-clock seconds since the loop started (each bar: one chunk, at the"
                      " time its last sample entered the ring)")
    else:
        ax.set_xlabel("audio seconds (--fast: each bar is one chunk at its place in the audio;"
                      " chunks were read as fast as possible)")
    ax.set_ylabel("milliseconds, stacked by stage")
    drops_note = "" if not first_drop else "; no audio dropped in this window"
    ax.set_title(f"{title}: {hi - lo:.1f} s around the slowest chunk{drops_note}", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="upper left", ncol=4)
    return _png(fig)


def _plot_sweep(rows: list[dict[str, Any]], budget_ms: float) -> bytes:
    from matplotlib.figure import Figure

    measured = [r for r in rows if r["status"] == "measured"]
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    labels = []
    for r in measured:
        v = np.sort(np.asarray(r["result"]["per_chunk"]["end_to_end"], np.float64))
        label = f"{r['backend']} {r['precision']} x{r['threads']}"
        labels.append(label)
        if v.size:
            ax1.step(np.maximum(v, 1e-3), np.arange(1, v.size + 1) / v.size, where="post",
                     label=label)
    ax1.axvline(budget_ms, color="red", ls="--", lw=1, label=f"budget {budget_ms:g} ms")
    ax1.set_xscale("log")
    ax1.set_xlabel("end-to-end ms per chunk (log scale)")
    ax1.set_ylabel("fraction of chunks")
    ax1.set_title("end-to-end latency CDF per configuration", fontsize=10)
    ax1.grid(alpha=0.3, which="both")
    ax1.legend(fontsize=7, loc="lower right")
    x = np.arange(len(measured))
    w = 0.27
    for j, (key, stage, color) in enumerate((("p50", "end_to_end", "#1f77b4"),
                                             ("p99", "end_to_end", "#d62728"),
                                             ("p50", "model", "#ff7f0e"))):
        vals = [r["result"]["stages_ms"][stage][key] or 0.0 for r in measured]
        ax2.bar(x + (j - 1) * w, vals, width=w, color=color,
                label=f"{stage.replace('_', ' ')} {key}")
    ax2.set_xticks(x, labels, rotation=20, ha="right", fontsize=7)
    ax2.set_ylabel("milliseconds")
    ax2.set_title("per configuration", fontsize=10)
    ax2.grid(alpha=0.3, axis="y")
    ax2.legend(fontsize=7)
    return _png(fig)


# ---------------------------------------------------------------------- HTML
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;
max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}
.verdict{font-size:1.3em;padding:10px 14px;border-radius:6px;display:inline-block}
.PASS{background:#d9f2d9;color:#145214}.FAIL{background:#f8d7d7;color:#7a1010}
.NONE{background:#eee}.note{color:#555;font-size:13px}img{max-width:100%;display:block;
margin:8px 0;border:1px solid #eee}.warn{background:#fff3cd;padding:8px;border-radius:4px}
code{background:#f5f5f5;padding:1px 4px}
"""

# Marks every plot with its decoded width, and shows a visible warning for any plot the
# browser could not decode (a truncated file, a broken data URI).
_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img.plot'), bad = 0;
  imgs.forEach(function (im) {
    im.setAttribute('data-natural-width', String(im.naturalWidth));
    if (!im.complete || im.naturalWidth === 0) { bad += 1; }
  });
  document.body.setAttribute('data-plots', String(imgs.length));
  document.body.setAttribute('data-plots-broken', String(bad));
  if (bad) {
    var p = document.createElement('p'); p.className = 'warn';
    p.textContent = bad + ' plot(s) failed to load in this browser.';
    document.body.insertBefore(p, document.body.firstChild);
  }
});
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="plot" alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _stage_table(res: dict[str, Any]) -> str:
    head = "<tr><th class=l>stage</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th>" \
           "<th>max ms</th><th>n</th></tr>"
    body = []
    for s in STAGES:
        p = res["stages_ms"][s]
        body.append(f"<tr><td class=l>{_e(s.replace('_', ' '))}</td>" + "".join(
            f"<td>{'-' if p[k] is None else f'{p[k]:.3f}'}</td>" for k in
            ("p50", "p95", "p99", "max")) + f"<td>{int(p['n'] or 0)}</td></tr>")
    for name, p in (("service (features + model + decision + respond)", res["service_ms"]),
                    ("responses (events)", res["response_latency_ms"])):
        body.append(f"<tr><td class=l>{_e(name)}</td>" + "".join(
            f"<td>{'-' if p[k] is None else f'{p[k]:.3f}'}</td>" for k in
            ("p50", "p95", "p99", "max")) + f"<td>{int(p['n'] or 0)}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _kv_table(items: list[tuple[str, Any]]) -> str:
    return "<table>" + "".join(f"<tr><th class=l>{_e(k)}</th><td class=l>{_e(v)}</td></tr>"
                               for k, v in items) + "</table>"


def _html(report: dict[str, Any], images: dict[str, bytes], plot_error: str | None) -> str:
    v = report["verdict"]
    rows = report["rows"]
    budget = report["budget_ms"]
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8>"
             f"<title>aim-edge profile: {_e(v['result'])}</title><style>{_CSS}</style>"
             f"<script>{_SCRIPT}</script></head><body>",
             "<h1>aim-edge latency profile</h1>",
             f'<p class="verdict {_e(v["result"])}">{_e(v["result"])}: p99 against a'
             f" {budget:g} ms budget</p>"]
    if v["reasons"]:
        parts.append("<ul>" + "".join(f"<li>{_e(x)}</li>" for x in v["reasons"]) + "</ul>")
    run = report["run"]
    load = report["load"]
    parts.append(_kv_table([
        ("input", f"{run['input']} ({run['audio_s']} s per configuration)"),
        ("bundle", f"{report['bundle']['name']} ({report['bundle']['path']})"),
        ("pacing", "real time (like a microphone)" if run["realtime"] else
         "--fast: as fast as possible (service time judged)"),
        ("CPU load beside it", f"{load['processes']} busy-loop process(es)"
         + (f", CPU s each: {load['cpu_s']}" if load["processes"] else "")),
        ("algorithmic latency", f"{report['bundle']['algorithmic_latency_ms']:.0f} ms (chunk +"
         " lookahead + fbank window overhang), not included in the figures below"),
        ("created", report["created"]),
        ("environment", ", ".join(f"{k} {val}" for k, val in report["environment"].items())),
    ]))
    if plot_error:
        parts.append(f'<p class="warn">Plots are missing: {_e(plot_error)}</p>')
    parts.append("<h2>Sweep</h2><p class=note>milliseconds per 160 ms chunk unless named;"
                 " e2e = the chunk's last sample entering the ring to its responses emitted;"
                 " algo = algorithmic latency; RTF cpu = process CPU s / audio s; 1st = the"
                 " first (cold) chunk's end-to-end latency.</p>")
    parts.append("<table><tr>" + "".join(f"<th>{_e(c)}</th>" for c in TABLE_COLUMNS)
                 + "</tr>")
    for cells in table_rows(rows):
        if len(cells) == len(TABLE_COLUMNS):
            parts.append("<tr>" + "".join(f"<td{' class=l' if i < 3 else ''}>{_e(c)}</td>"
                                          for i, c in enumerate(cells)) + "</tr>")
        else:
            parts.append("<tr>" + "".join(f"<td class=l>{_e(c)}</td>" for c in cells[:3])
                         + f"<td class=l colspan={len(TABLE_COLUMNS) - 3}>{_e(cells[3])}"
                           "</td></tr>")
    parts.append("</table>")
    if "sweep" in images:
        parts.append(_img(images["sweep"], "end-to-end latency per configuration"))
    for r in rows:
        if r["status"] != "measured":
            continue
        res, slug = r["result"], _slug(r)
        tail = r["tail"]
        parts.append(f"<h2>{_e(r['backend'])} · {_e(r['precision'])} · {r['threads']}"
                     f" thread(s)</h2>")
        parts.append(f"<p class=note>{_e(res['backend'])}; artifact"
                     f" {_e(res['artifact']['file'])} ({res['artifact']['size_mb']} MB)</p>")
        parts.append(_stage_table(res))
        cs = res["cold_start"]
        cpu = res["cpu_s"]
        threads = ", ".join(f"{k} {val:.3f}" for k, val in cpu["loop_threads"].items())
        others = ", ".join(f"{o['name']} (tid {o['tid']}) {o['cpu_s']:.2f}"
                           for o in cpu["other_threads"])
        parts.append(_kv_table([
            ("tail (slowest 1 %)", f"{tail['chunks']} chunk(s) >= {tail['threshold_ms']} ms;"
             f" dominated by {tail['dominant']}; mean ms per stage: "
             + ", ".join(f"{k.replace('_', ' ')} {val:.2f}" for k, val in
                         tail["mean_ms"].items())),
            ("real-time factor", f"wall {res['rtf']['wall']}, CPU {res['rtf']['cpu']},"
             f" model {res['rtf']['model']}"),
            ("CPU s per loop thread", threads),
            ("CPU s, other threads", others or "-"),
            ("CPU s, process (run / load)", f"{cpu['process_run']} / {cpu['load']}"),
            ("peak RSS", f"{res['peak_rss_mb']} MB"),
            ("dropped samples", f"{res['dropped_samples']} ({res['overflow_events']} overflow"
             f" events; ring high water {res['ring_high_water']} samples)"),
            ("cold start", ("import n/a (--in-process), " if cs["import_ms"] is None else
                            f"import {cs['import_ms']} ms, ")
             + f"load {cs['load_ms']} ms, first chunk {cs['first_chunk_ms']} ms end to end,"
             f" first response"
             f" {cs['first_response_after_start_ms']} ms after the loop started"),
            ("said", ", ".join(f"{n} {k}" for k, n in res["events"].items())),
            *([("microphone", f"{res['capture']['device']}; {res['capture']['callbacks']}"
                f" callbacks, {res['capture']['input_overflows']} input overflows,"
                f" {res['capture']['dropped_samples']} samples dropped at the capture ring,"
                f" longest gap {res['capture']['max_gap_ms']} ms")]
              if res.get("capture") else []),
            ("notes", "; ".join(res["notes"]) or "-"),
        ]))
        for key, alt in ((f"cdf_{slug}", "latency CDF per stage"),
                         (f"timeline_{slug}", "timeline of chunks, decisions and drops")):
            if key in images:
                parts.append(_img(images[key], f"{alt}: {slug}"))
    parts.append("<p class=note>Written by <code>aim-edge profile</code>; the figures are in"
                 " report.json (schema aim-edge-profile, version"
                 f" {SCHEMA_VERSION}).</p></body></html>")
    return "\n".join(parts)


def write_report(report: dict[str, Any], out_dir: str | Path, *, plots: bool = True,
                 timeline_s: float = 4.0) -> dict[str, Any]:
    """Write ``report.json``, the PNGs and ``report.html`` into ``out_dir``.

    Returns ``{"json": path, "html": path, "png": [paths], "plot_error": str | None}``;
    ``plot_error`` names what to install when matplotlib is missing (the tables are still
    written).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for r in report["rows"]:
        if r["status"] == "measured":
            r["tail"] = tail_breakdown(r["result"])
    images: dict[str, bytes] = {}
    plot_error = None
    if plots:
        try:
            require_matplotlib()
        except OptionalDependencyError as exc:
            plot_error = str(exc)
    else:
        plot_error = "plots were turned off (--no-plots)"
    budget = report["budget_ms"]
    if plot_error is None:
        measured = [r for r in report["rows"] if r["status"] == "measured"]
        if measured:
            images["sweep"] = _plot_sweep(report["rows"], budget)
        for r in measured:
            slug = _slug(r)
            title = f"{r['backend']} {r['precision']} x{r['threads']}"
            images[f"cdf_{slug}"] = _plot_cdf(r["result"], budget, f"latency CDF per stage,"
                                              f" {title}")
            images[f"timeline_{slug}"] = _plot_timeline(r["result"], budget, timeline_s, title)
    pngs = []
    for name, data in images.items():
        p = out / f"{name}.png"
        p.write_bytes(data)
        pngs.append(p)
    report["plots"] = {"files": [p.name for p in pngs], "error": plot_error}
    json_path = out / "report.json"
    json_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    html_path = out / "report.html"
    html_path.write_text(_html(report, images, plot_error), encoding="utf-8")
    return {"json": json_path, "html": html_path, "png": pngs, "plot_error": plot_error}
