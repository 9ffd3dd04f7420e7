"""``aim-edge profile``: the subcommand's parser and handler (registered by aim_edge.cli)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

from .._argtypes import nonneg_int, positive_int, positive_number

EXIT_OVER_BUDGET = 3

DESCRIPTION = """\
Profile the perceive-decide-respond loop on INPUT: per stage (capture -> ring, ring wait,
features, queue, model, decision, respond) and end to end (the chunk's last sample entering
the ring -> its responses emitted) p50/p95/p99/max, the model's algorithmic latency beside it,
real-time factors, CPU seconds per thread, peak RSS, dropped samples and cold start (bundle
load, first chunk). Every combination of --backends x --precisions x --threads runs in a fresh
process, one after another on the same input, so the comparison is fair. Real-time pacing
(like a microphone) is the default."""

EPILOG = """\
verdict and exit status:
  PASS when every measured configuration's end-to-end p99 <= --budget-ms and no sample was
  dropped. With --fast the file runs ahead of the loop, so chunks wait in the ring and the
  decide queue: the service time (features + model + decision + respond per chunk, no
  waiting) is judged instead. Fewer than 100 chunks make p99 the maximum of a few values:
  the report says so (use --seconds 30 or more).
  exit 0 PASS, 3 FAIL (over budget, drops, or a configuration that crashed: usable in CI),
  1 nothing could be measured or an error, 2 bad usage, 143 terminated (SIGTERM; the worker
  and CPU-hog processes are stopped first). A requested backend that is not installed, or a
  precision the bundle does not list, is a row that says so (with the install hint); it does
  not fail the verdict.

report (--report DIR):
  report.json   every figure and the per-chunk stage durations (schema aim-edge-profile v1)
  report.html   self-contained, opens offline: sweep table, latency CDFs per stage, a timeline
                of a few seconds around the slowest chunk (chunks, decisions, drops)
  *.png         the same plots (need matplotlib: pip install 'aim-edge[plot]')

examples:
  aim-edge profile                                   the demo scene, default bundle, real time
  aim-edge profile scene.wav --seconds 30 --load 1   30 s beside one CPU-hog process
  aim-edge profile scene.wav --precisions fp32 int8-dynamic --threads 1 2 --report out/prof
  aim-edge profile scene.wav --backends onnxruntime litert --fast --budget-ms 50
  aim-edge profile --device USB --seconds 30        a live microphone: capture -> ring too
"""


_SECONDS = positive_number("seconds")
_MS = positive_number("milliseconds")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``profile`` subcommand to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "profile", help="latency profile against a budget: per stage, end to end, sweeps,"
        " HTML/JSON report", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="INPUT", nargs="?", default=None,
                   help="WAV file to play (default: the shipped demo scene)")
    p.add_argument("--model", metavar="PATH", default=None,
                   help="model bundle folder or .zip (default: the shipped bundle)")
    p.add_argument("--backends", nargs="+", default=["onnxruntime"], metavar="NAME",
                   choices=["onnxruntime", "litert", "tflite-runtime"],
                   help="backends to sweep: onnxruntime, litert, tflite-runtime"
                        " (default onnxruntime)")
    p.add_argument("--precisions", nargs="+", default=None, metavar="P",
                   choices=["fp32", "fp16", "int8-dynamic", "int8-static"],
                   help="artifact precisions to sweep: fp32 fp16 int8-dynamic int8-static"
                        " (default: every one the bundle lists)")
    p.add_argument("--threads", nargs="+", type=positive_int, default=[1], metavar="N",
                   help="inference thread counts to sweep (default 1)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--realtime", dest="realtime", action="store_true", default=True,
                      help="pace the input at 1x like a microphone (the default)")
    pace.add_argument("--fast", dest="realtime", action="store_false",
                      help="as fast as possible, lossless: throughput, not live latency")
    p.add_argument("--seconds", type=_SECONDS, default=None, metavar="S",
                   help="audio per configuration: INPUT is repeated or cut to S seconds"
                        " (default: INPUT once)")
    p.add_argument("--load", type=nonneg_int, default=0, metavar="N",
                   help="run N CPU-hog processes beside the loop (contention; default 0)")
    p.add_argument("--budget-ms", type=_MS, default=200.0, metavar="MS",
                   help="end-to-end p99 budget in milliseconds (default 200)")
    p.add_argument("--report", metavar="DIR", default=None,
                   help="write report.json, report.html and PNG plots into DIR")
    p.add_argument("--no-plots", action="store_true",
                   help="with --report: tables only, no PNGs (no matplotlib needed)")
    p.add_argument("--timeline-seconds", type=_SECONDS, default=4.0, metavar="S",
                   help="length of the report's timeline window (default 4)")
    p.add_argument("--instruction", default=None, metavar="TEXT",
                   help="instruction active from the first chunk")
    p.add_argument("--providers", default=None, metavar="LIST",
                   help="onnxruntime execution providers, e.g. tensorrt,cuda (Jetson / GPU)")
    p.add_argument("--device", metavar="DEV", default=None,
                   help="profile a live microphone instead of INPUT: an index or part of the"
                        " name from `aim-edge devices`, or 'default'; needs --seconds. Capture"
                        " -> ring then measures the PortAudio callback to the decoding ring"
                        " (mix-down and resampling included)")
    p.add_argument("--in-process", action="store_true",
                   help="run every configuration in this process (faster; cold start and"
                        " peak RSS then mix configurations)")
    p.set_defaults(func=cmd_profile)
    return p


def _input_path(args: argparse.Namespace) -> str:
    if args.input is not None:
        return str(args.input)
    from importlib import resources

    res = resources.files("aim_edge").joinpath("data", "demo_scene.wav")
    if not res.is_file():
        from ..errors import AimEdgeError

        raise AimEdgeError("no INPUT given and no demo scene is shipped; pass a WAV file")
    return str(res)


class _Progress:
    """A tqdm bar over the audio seconds of each configuration (real-time runs take that
    long) when tqdm is installed and stderr is a terminal; plain lines otherwise."""

    def __init__(self, path: str, args: argparse.Namespace) -> None:
        self.bar: Any = None
        self.seconds = args.seconds
        if self.seconds is None:
            from ..audio import wav_info

            try:
                self.seconds = wav_info(path).seconds
            except Exception:  # the profiler itself reports a bad file
                self.seconds = None
        self.enabled = bool(args.realtime and self.seconds and sys.stderr.isatty())
        try:
            import tqdm  # noqa: F401  - optional
        except ImportError:
            self.enabled = False

    def message(self, text: str) -> None:
        if self.enabled:
            from tqdm import tqdm

            self.close()
            self.bar = tqdm(total=round(self.seconds, 1), desc=text, unit="s audio",
                            leave=False, bar_format="{desc} {bar} {n:.0f}/{total:.0f} s")
        else:
            print(f"  {text}", flush=True)

    def tick(self, index: int, elapsed: float) -> None:
        if self.bar is not None:
            self.bar.n = min(elapsed, self.bar.total)
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class _Terminated(BaseException):
    """SIGTERM during the sweep: unwinds like Ctrl-C, so the worker and the CPU hogs are
    killed by the ``finally`` blocks that started them (a BaseException, so no per-row
    ``except Exception`` takes it for a failed configuration)."""


_NOT_SET = object()  # _on_sigterm could not install its handler: nothing to restore


def _on_sigterm() -> Any:
    """Turn SIGTERM (systemd, CI runners, ``kill``) into :class:`_Terminated` while the sweep
    runs; returns the previous handler to restore (``_NOT_SET`` off the main thread, where
    none can be set; a handler installed outside Python reads as None: restored as the
    default)."""
    def handler(signum: int, frame: Any) -> None:
        raise _Terminated()

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        return _NOT_SET
    return signal.SIG_DFL if old is None else old


def _have_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def cmd_profile(args: argparse.Namespace) -> int:
    from . import profile
    from .report import PLOT_HINT, write_report

    out = sys.stdout
    if args.device is not None:
        from ..cli import UsageError

        if args.input is not None:
            raise UsageError(f"give INPUT ({args.input}) or --device {args.device}, not both")
        if args.seconds is None:
            raise UsageError(f"--device {args.device}: give --seconds S, how long to listen"
                             " per configuration")
        if not args.realtime:
            raise UsageError(f"--device {args.device}: a microphone runs in real time; drop"
                             " --fast")
    path = _input_path(args) if args.device is None else f"microphone {args.device}"
    if args.report:  # before the sweep: a report that cannot be written would lose it
        report_dir = Path(args.report)
        try:
            report_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"aim-edge profile: error: --report {args.report}: cannot create the folder "
                  f"({exc.strerror}); give a folder path that can be written", file=sys.stderr)
            return 2
        if not os.access(report_dir, os.W_OK | os.X_OK):
            print(f"aim-edge profile: error: --report {args.report}: folder is not writable; "
                  "give a folder path that can be written", file=sys.stderr)
            return 2
    if args.report and not args.no_plots:
        if not _have_matplotlib():
            print(f"aim-edge profile: plots need matplotlib: {PLOT_HINT}; report.json and"
                  " report.html (tables only) will still be written", file=out)
    providers = [p for p in args.providers.split(",") if p] if args.providers else None
    mode = "real time" if args.realtime else "as fast as possible (--fast)"
    print(f"aim-edge profile: {path}, {mode}"
          + (f", {args.seconds:g} s per configuration" if args.seconds else "")
          + (f", {args.load} CPU-hog process(es) beside it" if args.load else "")
          + f", budget {args.budget_ms:g} ms at p99", file=out, flush=True)
    bar = _Progress(path, args)
    old_term = _on_sigterm()
    try:
        report = profile(path, model=args.model, backends=args.backends,
                         precisions=args.precisions, threads=args.threads,
                         realtime=args.realtime, seconds=args.seconds, load=args.load,
                         budget_ms=args.budget_ms, instruction=args.instruction,
                         providers=providers, in_process=args.in_process,
                         device=args.device,
                         progress=bar.message, tick=bar.tick)
    except _Terminated:
        print("aim-edge profile: terminated (SIGTERM); the worker and CPU-hog processes were"
              " stopped, nothing was reported", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        bar.close()
        if old_term is not _NOT_SET:
            signal.signal(signal.SIGTERM, old_term)
    print_report(report, out)
    if args.report:
        files = write_report(report, args.report, plots=not args.no_plots,
                             timeline_s=args.timeline_seconds)
        print(f"report: {files['html']} and {files['json']}"
              + (f", {len(files['png'])} PNG plots" if files["png"] else ""), file=out)
        if files["plot_error"] and not args.no_plots:
            print(f"  no plots: {files['plot_error']}", file=out)
    result = report["verdict"]["result"]
    if result == "NONE":
        return 1
    return EXIT_OVER_BUDGET if result == "FAIL" else 0


def print_report(report: dict[str, Any], out: Any) -> None:
    """The console view: sweep table, per-configuration facts, tail, verdict."""
    from .report import tail_breakdown
    from .sweep import format_table

    b = report["bundle"]
    print(f"\nbundle {b['name']}: algorithmic latency {b['algorithmic_latency_ms']:.0f} ms"
          " (chunk + lookahead + window; not in the figures below)", file=out)
    print("milliseconds per 160 ms chunk; e2e = last sample in the ring -> responses emitted",
          file=out)
    print(format_table(report["rows"]), file=out)
    for r in report["rows"]:
        if r["status"] != "measured":
            continue
        res = r["result"]
        tail = tail_breakdown(res)
        st = res["stages_ms"]
        print(f"\n{r['backend']} {r['precision']} x{r['threads']}: {res['chunks']} chunks,"
              f" {res['audio_s']:.1f} s audio in {res['wall_s']:.1f} s", file=out)
        cap = res.get("capture")
        stages = ("ring_wait", "features", "queue", "model", "decision", "respond")
        print("  per stage p50/p99 ms: " + ", ".join(
            f"{k.replace('_', ' ')} {st[k]['p50']:.2f}/{st[k]['p99']:.2f}" for k in
            (("capture_to_ring", *stages) if cap else stages) if st[k]["n"]), file=out)
        if cap:
            print(f"  {cap['device']}: {cap['callbacks']} callbacks, {cap['input_overflows']}"
                  f" PortAudio input overflows, {cap['dropped_samples']} samples dropped at"
                  f" the capture ring, longest gap between callbacks {cap['max_gap_ms']} ms",
                  file=out)
        sv = res["service_ms"]
        if sv["n"]:
            print(f"  service (compute, no waiting) p50/p99 ms: {sv['p50']:.2f}/{sv['p99']:.2f}"
                  + ("  <- judged with --fast" if not res["realtime"] else ""), file=out)
        cpu = res["cpu_s"]
        print("  CPU s per thread: " + ", ".join(
            f"{k} {v:.3f}" for k, v in cpu["loop_threads"].items())
            + "".join(f", {o['name']} {o['cpu_s']:.2f}" for o in cpu["other_threads"]
                      if o["cpu_s"] > 0)
            + f"; process {cpu['process_run']:.2f} (RTF {res['rtf']['cpu']})", file=out)
        cs = res["cold_start"]
        imp = (f"import {cs['import_ms']} ms, " if cs["import_ms"] is not None else
               "import n/a (--in-process), ")
        print(f"  cold start: {imp}load {cs['load_ms']} ms, first"
              f" chunk {cs['first_chunk_ms']} ms; peak RSS {res['peak_rss_mb']} MB;"
              f" dropped {res['dropped_samples']} samples", file=out)
        for note in res["notes"]:
            print(f"  note: {note}", file=out)
        if tail["dominant"]:
            print(f"  tail: slowest {tail['chunks']} chunk(s) (>= {tail['threshold_ms']} ms)"
                  f" spend most in {tail['dominant']} ({tail['mean_ms'][tail['dominant']]}"
                  " ms mean)", file=out)
    load = report["load"]
    if load["processes"]:
        print(f"\nload: {load['processes']} CPU-hog process(es) got "
              + ", ".join("?" if c is None else f"{c:.1f}" for c in load["cpu_s"])
              + " CPU s", file=out)
    v = report["verdict"]
    print(f"\nverdict: {v['result']} (p99 budget {v['budget_ms']:g} ms)", file=out)
    for reason in v["reasons"]:
        print(f"  {reason}", file=out)
