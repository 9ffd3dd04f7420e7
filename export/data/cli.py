"""``python -m export.data build ...``: write labelled streams, manifests and attribution.

Output folder layout (see ``export/data/README.md`` for the manifest schema)::

    OUT/
      shard-00000/<split>-s<seed>-<index>.wav     16-bit PCM WAV, 16 kHz mono
      shard-00000.jsonl                           one JSON line per stream of the shard
      ...
      build.json                                  arguments, config, versions, summary
      ATTRIBUTION.md                              every source used, with package and licence

Exit status 2 with a one-line message (no traceback) for bad arguments and missing tools.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import sys
import time
import wave
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import scene, sources, speech
from .labels import EVENT_LABELS, EVENT_NAMES, SPLITS

__all__ = ["build", "main"]

SR = 16000


class UsageError(Exception):
    """A bad argument or a missing tool: printed as one line, exit status 2."""


def _durations(split: str, seed: int, total_s: float, lo: float, hi: float) -> list[float]:
    """Stream durations: drawn until they cover ``total_s``; the last one is shortened to what
    is left (never below ``lo``). Deterministic in (split, seed)."""
    from .splits import SPLIT_CODES

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), SPLIT_CODES[split], 0xD0]))
    out: list[float] = []
    acc = 0.0
    while acc < total_s - 1e-9:
        d = round(float(rng.uniform(lo, hi)), 2)
        left = total_s - acc
        if d > left:
            d = round(max(lo, left), 2)
        out.append(d)
        acc += d
    return out or [lo]


def _write_wav(path: Path, audio: np.ndarray) -> None:
    tmp = path.with_suffix(".wav.part")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(audio.astype("<i2").tobytes())
    os.replace(tmp, path)


def _job(args):
    split, seed, index, duration, cfg, cache_dir, out_dir, shard_size = args
    audio, rec = scene.make_stream(split, seed, index, duration, cfg, cache_dir)
    shard = index // shard_size
    rel = f"shard-{shard:05d}/{rec['id']}.wav"
    (out_dir / f"shard-{shard:05d}").mkdir(parents=True, exist_ok=True)
    _write_wav(out_dir / rel, audio)
    return {"audio": rel, **rec}


def _summary(records: list[dict], elapsed: float, workers: int) -> dict:
    hours = sum(r["duration"] for r in records) / 3600
    ev = Counter(e["label"] for r in records for e in r["events"])
    ev_src = Counter(f"{e['label']}/{e['source']}" for r in records for e in r["events"])
    sp = Counter(s["category"] for r in records for s in r["speech"])
    rk = Counter(f"{x['kind']}/{x['trigger']['type']}" for r in records for x in r["responses"])
    intents = Counter(iv["meaning"]["intent"] for r in records for iv in r["instructions"])
    engines = Counter(s["engine"] for r in records for s in r["speech"])
    snrs = [s for r in records for s in r["snrs_db"]]
    edges = list(range(-5, 35, 5))
    hist, _ = np.histogram(snrs, bins=edges) if snrs else (np.zeros(len(edges) - 1), None)
    no_resp = sum(b - a for r in records for a, b in r["no_response"])
    return {
        "streams": len(records),
        "hours": round(hours, 4),
        "wall_seconds": round(elapsed, 2),
        "workers": workers,
        "x_real_time": round(hours * 3600 / elapsed, 1) if elapsed > 0 else None,
        "events_per_label": {k: ev.get(k, 0) for k in EVENT_NAMES},
        "events_per_label_source": dict(sorted(ev_src.items())),
        "speech_per_category": dict(sorted(sp.items())),
        "speech_per_engine": dict(sorted(engines.items())),
        "responses": dict(sorted(rk.items())),
        "instruction_intervals_per_intent": dict(sorted(intents.items())),
        "no_response_fraction": round(no_resp / max(1e-9, hours * 3600), 4),
        "snr_histogram_db": {f"[{a},{b})": int(c) for a, b, c in zip(edges[:-1], edges[1:],
                                                                      hist, strict=True)},
        "items_without_background": sum(
            1 for r in records for x in (*r["speech"], *r["events"]) if x["snr_db"] is None),
        "shippable_streams": sum(1 for r in records if r["shippable"]),
    }


def _print_summary(s: dict, file=None) -> None:
    p = lambda *a: print(*a, file=file or sys.stdout)  # noqa: E731
    p(f"\n{s['streams']} streams, {s['hours']:.3f} h of audio in {s['wall_seconds']:.1f} s "
      f"({s['x_real_time']}x real time, {s['workers']} workers)")
    p("events per label:")
    for k, v in s["events_per_label"].items():
        p(f"  {k:16s} {v}")
    p("speech per category: " + ", ".join(f"{k} {v}" for k, v in
                                         s["speech_per_category"].items()))
    p("speech per engine:   " + ", ".join(f"{k} {v}" for k, v in
                                         s["speech_per_engine"].items()))
    p("responses:           " + ", ".join(f"{k} {v}" for k, v in s["responses"].items()))
    p("instructions:        " + ", ".join(f"{k} {v}" for k, v in
                                         s["instruction_intervals_per_intent"].items()))
    p(f"no-response time:    {100 * s['no_response_fraction']:.1f} %")
    p("SNR histogram (dB):")
    top = max(s["snr_histogram_db"].values()) or 1
    for k, v in s["snr_histogram_db"].items():
        p(f"  {k:9s} {v:6d} {'#' * int(40 * v / top)}")
    p(f"  (no background: {s['items_without_background']} items)")


def _attribution(records: list[dict], cfg: scene.SceneConfig) -> str:
    lines = ["# Sources of this data set", "",
             "Every stream's manifest line names the exact voice and recording of each item.", "",
             "## Text-to-speech engines", "",
             "| engine | Debian packages | licence | shippable | voices used |",
             "|---|---|---|---|---|"]
    used_voices: dict[str, set[str]] = {}
    for r in records:
        for s in r["speech"]:
            used_voices.setdefault(s["engine"], set()).add(s["voice_id"])
        for v in r["background"].get("babble", {}).get("talkers", []):
            used_voices.setdefault(v.split(":", 1)[0], set()).add(v)
    for e, vs in sorted(used_voices.items()):
        info = speech.ENGINE_INFO[e]
        lines.append(f"| {e} | {', '.join(info['packages'])} | {info['licence']} | "
                     f"{'yes' if info['shippable'] else 'no'} | {len(vs)} |")
    lines += ["", "Licences are in `/usr/share/doc/<package>/copyright` of each package.", "",
              "## Real recordings", "",
              "| file | Debian package | label | licence | copyright | uses |",
              "|---|---|---|---|---|---|"]
    uses = Counter(e["file"] for r in records for e in r["events"] if e["source"] == "recording")
    by_path = {rec.path: rec for rec in sources.list_recordings()}
    for path, k in sorted(uses.items()):
        rec = by_path[path]
        lines.append(f"| {path} | {rec.package} | {rec.label} | {rec.licence} | "
                     f"{rec.copyright} | {k} |")
    lines += ["", "## Synthesised sounds", "",
              "Smoke/CO alarms, sirens, horns, kettle, beeps, door chimes, knocks, glass, phone "
              "rings, alarm clocks and bells are generated by `export/data/hazards.py` "
              "(part of aim-edge, Apache-2.0).", ""]
    if cfg.shippable_only:
        lines.append("Built with `--shippable-only`: only redistributable sources were used.")
    return "\n".join(lines) + "\n"


def build(out: Path, split: str, seed: int, seconds: float, *, workers: int = 2,
          cfg: scene.SceneConfig | None = None, cache_dir: Path | None = None,
          shard_size: int = 100, min_seconds: float = 30.0, max_seconds: float = 120.0,
          progress: bool = True, force: bool = False) -> dict:
    """Build ``seconds`` of ``split`` into ``out``; return the summary dict."""
    cfg = cfg or scene.SceneConfig()
    out = Path(out)
    if out.exists() and any(out.glob("shard-*.jsonl")):
        if not force:
            raise UsageError(f"{out} already holds a build: choose another --out or add --force")
        for p in out.glob("shard-*"):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    durations = _durations(split, seed, seconds, min_seconds, max_seconds)
    jobs = [(split, seed, i, d, cfg, cache_dir, out, shard_size)
            for i, d in enumerate(durations)]
    # load the material once in the parent (fails early with a clear message)
    scene._Material.get(split, cfg)
    t0 = time.perf_counter()
    records: list[dict] = []
    from tqdm import tqdm

    bar = tqdm(total=round(sum(durations)), unit="s", desc=f"{split} audio", disable=not progress,
               smoothing=0.1)
    shard_files: dict[int, object] = {}
    try:
        if workers > 1 and len(jobs) > 1:
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp
            pool = ctx.Pool(workers)
            it = pool.imap(_job, jobs, chunksize=1)
        else:
            pool = None
            it = map(_job, jobs)
        for rec in it:
            shard = rec["index"] // shard_size
            f = shard_files.get(shard)
            if f is None:
                f = shard_files[shard] = open(out / f"shard-{shard:05d}.jsonl", "w")
            f.write(json.dumps(rec, sort_keys=True, ensure_ascii=False) + "\n")
            records.append(rec)
            bar.update(round(rec["duration"]))
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        bar.close()
        for f in shard_files.values():
            f.close()
    elapsed = time.perf_counter() - t0
    summary = _summary(records, elapsed, workers)
    (out / "ATTRIBUTION.md").write_text(_attribution(records, cfg))
    meta = {
        "split": split, "seed": seed, "requested_seconds": seconds,
        "stream_seconds": [min_seconds, max_seconds], "shard_size": shard_size,
        "config": cfg.to_dict(),
        "engine_versions": {e: speech._engine_version(e) for e in cfg.engines},
        "python": platform.python_version(), "numpy": np.__version__,
        "event_labels": [{"name": e.name, "is_safety": e.is_safety,
                          "description": e.description} for e in EVENT_LABELS],
        "summary": summary,
    }
    (out / "build.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return summary


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m export.data",
                                 description="Build labelled streaming scenes for aim-edge.")
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="generate streams, manifests and attribution")
    b.add_argument("--out", required=True, type=Path, help="output folder")
    amount = b.add_mutually_exclusive_group(required=True)
    amount.add_argument("--hours", type=float, help="hours of audio to generate")
    amount.add_argument("--minutes", type=float, help="minutes of audio (small runs)")
    b.add_argument("--seed", type=int, default=0, help="base seed (>= 0)")
    b.add_argument("--split", required=True, help="train, dev or test")
    b.add_argument("--workers", type=int, default=2, help="worker processes (1-2 here)")
    b.add_argument("--engines", default=None,
                   help="comma-separated TTS engines (default: espeak-ng,flite,festival plus "
                        "mbrola/pico when installed)")
    b.add_argument("--shippable-only", action="store_true",
                   help="only sources whose licences allow redistribution")
    b.add_argument("--tts-cache", type=Path, default=None,
                   help="TTS render cache (default $AIM_EDGE_TTS_CACHE or ~/.cache/aim-edge/tts)")
    b.add_argument("--no-tts-cache", action="store_true", help="render every utterance afresh")
    b.add_argument("--stream-seconds", type=float, nargs=2, default=(30.0, 120.0),
                   metavar=("MIN", "MAX"), help="stream length range (default 30 120)")
    b.add_argument("--lookalike", type=float, default=0.0, metavar="P",
                   help="share of everyday utterances replaced by wake-phrase look-alikes "
                   "(\"Hey, I'm back\", \"Okay Jamie, ...\"; never answered), 0-1; default 0 "
                   "builds exactly what earlier versions built")
    b.add_argument("--shard-size", type=int, default=100, help="streams per shard")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.add_argument("--force", action="store_true", help="replace a previous build in --out")
    return ap


def _check_args(a) -> tuple[float, tuple[str, ...]]:
    if a.split not in SPLITS:
        raise UsageError(f"unknown split {a.split!r}: expected one of {', '.join(SPLITS)}")
    seconds = a.hours * 3600 if a.hours is not None else a.minutes * 60
    name = "--hours" if a.hours is not None else "--minutes"
    given = a.hours if a.hours is not None else a.minutes
    if not np.isfinite(seconds) or seconds <= 0:
        raise UsageError(f"{name} must be a positive number, got {given}")
    if a.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {a.seed}")
    if not 1 <= a.workers <= 64:
        raise UsageError(f"--workers must be between 1 and 64, got {a.workers}")
    lo, hi = a.stream_seconds
    if not (5 <= lo <= hi <= 600):
        raise UsageError(f"--stream-seconds needs 5 <= MIN <= MAX <= 600, got {lo} {hi}")
    if not 0.0 <= a.lookalike <= 1.0:
        raise UsageError(f"--lookalike must be between 0 and 1, got {a.lookalike}")
    if a.shard_size < 1:
        raise UsageError(f"--shard-size must be >= 1, got {a.shard_size}")
    if a.engines:
        engines = tuple(e.strip() for e in a.engines.split(",") if e.strip())
    else:
        engines = speech.DEFAULT_ENGINES + speech.available_optional_engines()
    if a.shippable_only:
        engines = tuple(e for e in engines if speech.ENGINE_INFO.get(e, {}).get("shippable"))
    try:
        speech.check_engines(engines)
    except speech.MissingToolError as e:
        raise UsageError(str(e)) from None
    if shutil.which("sox") is None:
        raise UsageError("sox not found (decodes the sound-theme recordings): apt-get install sox")
    return seconds, engines


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    a = ap.parse_args(argv)
    try:
        seconds, engines = _check_args(a)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = replace(scene.SceneConfig(), engines=engines, shippable_only=a.shippable_only,
                  p_lookalike=a.lookalike)
    cache = None if a.no_tts_cache else (a.tts_cache or speech.default_cache_dir())
    try:
        summary = build(a.out, a.split, a.seed, seconds, workers=a.workers, cfg=cfg,
                        cache_dir=cache, shard_size=a.shard_size,
                        min_seconds=a.stream_seconds[0], max_seconds=a.stream_seconds[1],
                        progress=not a.no_progress, force=a.force)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _print_summary(summary)
    print(f"wrote {a.out} (manifests shard-*.jsonl, build.json, ATTRIBUTION.md)")
    return 0
