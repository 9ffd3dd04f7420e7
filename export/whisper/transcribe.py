"""Teacher transcripts of real speech, cached so training never re-runs Whisper.

```
python -m export.whisper.transcribe --asr out/asr-whisper-tiny.en --corpus asterisk \\
    --out data/teacher/asterisk.jsonl
python -m export.whisper.transcribe --asr out/asr-whisper-tiny.en --wav recordings/ \\
    --out data/teacher/mine.jsonl
```

Every utterance is keyed by the sha256 of its audio as the model hears it: float32
little-endian mono samples at 16 kHz (after decoding and resampling), so the same recording in
another container or file name is the same key. Entries live under
``<cache>/<model fingerprint>/<sha[:2]>/<sha>.json`` -- the fingerprint hashes the export
folder's ``whisper.json`` and the sizes and sha256 of its ONNX and tokenizer files, so a
re-exported or different model never reads another model's transcripts. The default cache is
``$AIM_EDGE_CACHE/teacher-transcripts`` (``~/.cache/aim-edge/teacher-transcripts``).

Each JSON line of ``--out``: ``name``, ``corpus``, ``audio_sha256``, ``seconds``, ``text``
(the teacher's transcript), ``reference`` (when the corpus has one), ``tokens``, ``cached``.
A corrupt cache entry is recomputed and counted in the summary, never trusted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TranscriptCache", "audio_sha256", "model_fingerprint", "main"]


def audio_sha256(samples: np.ndarray) -> str:
    """sha256 of float32 little-endian mono samples (the key of a transcript)."""
    x = np.ascontiguousarray(np.asarray(samples, dtype="<f4").reshape(-1))
    return hashlib.sha256(x.tobytes()).hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def model_fingerprint(asr_dir: str | Path) -> str:
    """A short hash of an export folder: whisper.json plus the size and sha256 of each file it
    names."""
    root = Path(asr_dir)
    cfg_path = root / "whisper.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    h = hashlib.sha256(cfg_path.read_bytes())
    for key in sorted(cfg["files"]):
        p = root / cfg["files"][key]
        h.update(f"{key}={p.stat().st_size}:{_file_sha256(p)}".encode())
    return h.hexdigest()[:16]


class TranscriptCache:
    """Transcripts on disk keyed by (model fingerprint, audio sha256).

    Parameters
    ----------
    root : cache folder (created on first write).
    fingerprint : the model's :func:`model_fingerprint`.
    """

    def __init__(self, root: str | Path, fingerprint: str) -> None:
        self.root = Path(root)
        self.fingerprint = fingerprint
        self.hits = self.misses = self.corrupt = 0

    def path(self, sha: str) -> Path:
        return self.root / self.fingerprint / sha[:2] / f"{sha}.json"

    def get(self, sha: str) -> dict[str, Any] | None:
        p = self.path(sha)
        if not p.is_file():
            return None
        try:
            entry = json.loads(p.read_text(encoding="utf-8"))
            if entry.get("audio_sha256") != sha or not isinstance(entry.get("text"), str):
                raise ValueError("wrong key or no text")
        except (ValueError, UnicodeDecodeError):
            self.corrupt += 1
            return None
        return entry

    def put(self, sha: str, entry: dict[str, Any]) -> None:
        p = self.path(sha)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(entry, ensure_ascii=False), encoding="utf-8")
        tmp.replace(p)  # atomic: a reader never sees half an entry

    def transcribe(self, samples: np.ndarray, second_pass: Any) -> tuple[dict[str, Any], bool]:
        """The cached entry for ``samples``, computing it with ``second_pass`` on a miss.
        Returns ``(entry, cached)``."""
        sha = audio_sha256(samples)
        entry = self.get(sha)
        if entry is not None:
            self.hits += 1
            return entry, True
        self.misses += 1
        detailed = getattr(second_pass, "transcribe_detailed", None)
        if detailed is not None:
            res = detailed(samples)
            text, tokens = res.text, list(res.tokens)
        else:
            text, tokens = str(second_pass.transcribe(samples)), []
        entry = {"audio_sha256": sha, "text": text, "tokens": tokens,
                 "model": self.fingerprint,
                 "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.put(sha, entry)
        return entry, False


def default_cache_root() -> Path:
    return Path(os.environ.get("AIM_EDGE_CACHE", Path.home() / ".cache" / "aim-edge")
                ) / "teacher-transcripts"


def _wav_utterances(paths: Iterable[Path]) -> Iterator[Any]:
    from aim_edge.audio import AudioConverter, read_wav

    from .speech import Utterance

    for root in paths:
        files = sorted(root.rglob("*.wav")) if root.is_dir() else [root]
        for f in files:
            rate, samples = read_wav(f)
            conv = AudioConverter(16000)
            x = np.concatenate([conv.convert(rate, samples), conv.flush()])
            yield Utterance(name=str(f), samples=x.astype(np.float32), text="", corpus="wav")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export.whisper.transcribe", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--asr", type=Path, required=True,
                    help="export folder of the teacher (python -m export.whisper)")
    ap.add_argument("--corpus", action="append", choices=["asterisk", "fsdd"], default=[],
                    help="a real-speech corpus to transcribe (repeatable)")
    ap.add_argument("--wav", type=Path, action="append", default=[],
                    help="WAV file or folder of WAVs (any rate/channels; repeatable)")
    ap.add_argument("--limit", type=int, default=None, help="at most N clips per corpus")
    ap.add_argument("--cache", type=Path, default=None,
                    help="cache folder (default $AIM_EDGE_CACHE/teacher-transcripts)")
    ap.add_argument("--out", type=Path, required=True, help="JSON lines to write")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default 1)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    prog = "python -m export.whisper.transcribe"
    if not args.corpus and not args.wav:
        print(f"{prog}: error: nothing to transcribe: give --corpus and/or --wav",
              file=sys.stderr)
        return 2
    if not (args.asr / "whisper.json").is_file():
        print(f"{prog}: error: {args.asr} has no whisper.json (build it with make asr-export)",
              file=sys.stderr)
        return 2
    from aim_edge.asr.whisper import WhisperSecondPass

    from .speech import corpus_missing, load_corpus

    utts: list[Any] = []
    for corpus in args.corpus:
        missing = corpus_missing(corpus)
        if missing:
            print(f"{prog}: error: {missing}", file=sys.stderr)
            return 2
        utts.extend(load_corpus(corpus, args.limit))
    try:
        utts.extend(_wav_utterances(args.wav))
    except (OSError, ValueError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    cache = TranscriptCache(args.cache or default_cache_root(), model_fingerprint(args.asr))
    second_pass = None
    rows = []
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(utts), unit="clip", desc="teacher transcripts")
    for u in utts:
        if second_pass is None and cache.get(audio_sha256(u.samples)) is None:
            second_pass = WhisperSecondPass.from_dir(args.asr, threads=args.threads)
        entry, cached = cache.transcribe(u.samples, second_pass)
        rows.append({"name": u.name, "corpus": u.corpus, "audio_sha256": entry["audio_sha256"],
                     "seconds": round(u.seconds, 3), "text": entry["text"],
                     "reference": u.text or None, "tokens": entry["tokens"], "cached": cached})
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}: {len(rows)} transcripts ({cache.hits} from the cache, "
          f"{cache.misses} computed, {cache.corrupt} corrupt cache entries recomputed); "
          f"cache {cache.root / cache.fingerprint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
