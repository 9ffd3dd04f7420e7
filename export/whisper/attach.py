"""Attach an exported Whisper second pass to a model bundle as its ``asr`` component.

```
python -m export.whisper --out out/asr-whisper-tiny.en          # build it (make asr-export)
python -m export.whisper.attach --bundle aim_edge/models/default \\
    --asr out/asr-whisper-tiny.en --out bundles/default+asr
aim-edge run scene.wav --model bundles/default+asr               # final captions by Whisper
```

The bundle is copied to ``--out`` (or changed in place with ``--in-place``); the export
folder's ``whisper.json``, ``tokenizer.json`` and ONNX files go to ``<bundle>/asr/``; the
manifest gets the ``asr`` component written by the export (``asr_fragment.json``: model,
licence, quantization, parity figures) and one artifact entry per ONNX file (roles
``asr_encoder`` / ``asr_decoder``), with sizes and sha256 recomputed from the copied files.
The runtime validates all of it on load (:func:`aim_edge.bundle.load_bundle`) and refuses a
component without parity figures: export with ``--clips N`` (the default, 100) or pass
``--measure-clips N`` here to measure WER on N real asterisk prompts now.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["attach_asr", "main"]

FILES = ("whisper.json", "tokenizer.json")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _has_number(obj: Any) -> bool:
    if isinstance(obj, bool):
        return False
    if isinstance(obj, (int, float)):
        return True
    return isinstance(obj, Mapping) and any(_has_number(v) for v in obj.values())


def _copy(src: Path, dst: Path, link: bool) -> None:
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # another file system: copy
    shutil.copyfile(src, dst)


def measure_wer(asr_dir: Path, clips: int) -> dict[str, Any]:
    """WER of the export folder's second pass on ``clips`` real asterisk prompts."""
    from aim_edge.asr.whisper import WhisperSecondPass

    from .speech import corpus_missing, load_asterisk, wer

    missing = corpus_missing("asterisk")
    if missing:
        raise FileNotFoundError(missing)
    utts = load_asterisk(clips)
    sp = WhisperSecondPass.from_dir(asr_dir, threads=1)
    hyps = [sp.transcribe(u.samples) for u in utts]
    return {"clips_corpus": "asterisk-core-sounds-en (evenly spaced)", "clips": len(utts),
            "onnx_int8": {"clips": len(utts), "wer": wer([u.text for u in utts], hyps)}}


def attach_asr(bundle: str | Path, asr_dir: str | Path, out: str | Path | None = None, *,
               parity: Mapping[str, Any] | None = None, link: bool = False,
               prefix: str = "asr") -> Path:
    """Copy ``bundle`` to ``out`` (None: change it in place) with ``asr_dir`` attached.

    Parameters
    ----------
    bundle : bundle folder (manifest.json + files).
    asr_dir : folder written by ``python -m export.whisper``.
    out : where the new bundle goes (must not exist); None = in place.
    parity : parity figures to record instead of the export's (e.g. from :func:`measure_wer`).
    link : hard-link the large files instead of copying (same file system only).
    prefix : the component's folder inside the bundle.

    Returns the bundle folder. Raises ``FileNotFoundError`` / ``ValueError`` naming the
    problem; the result is loaded with :func:`aim_edge.bundle.load_bundle` before returning.
    """
    from aim_edge.bundle import load_bundle

    src, asr_dir = Path(bundle), Path(asr_dir)
    cfg_path = asr_dir / "whisper.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{asr_dir}: no whisper.json (build it with python -m "
                                "export.whisper --out DIR, or make asr-export)")
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    names = list(FILES) + [cfg["files"]["encoder"], cfg["files"]["decoder"]]
    for n in names:
        if not (asr_dir / n).is_file():
            raise FileNotFoundError(f"{asr_dir}: {n} is missing (re-run python -m export.whisper)")
    frag_path = asr_dir / "asr_fragment.json"
    fragment = (json.loads(frag_path.read_text(encoding="utf-8")) if frag_path.is_file()
                else {"asr": {"kind": "whisper", "model": cfg.get("model", "whisper")}})
    component = dict(fragment["asr"])
    if parity is not None:
        component["parity"] = dict(parity)
    if not _has_number(component.get("parity")):
        raise ValueError(f"{asr_dir}: the export recorded no parity figures (it ran with "
                         "--clips 0); re-export with --clips 100 or attach with "
                         "--measure-clips N")
    base = load_bundle(src)  # refuse to build on a bundle that is already broken
    if base.missing:
        raise ValueError(f"{src}: {', '.join(f for f, _, _ in base.missing)} listed in the "
                         "manifest but missing; restore the bundle before attaching a second "
                         "pass")
    if out is None:
        dst = src
    else:
        dst = Path(out)
        if dst.exists():
            raise FileExistsError(f"--out {dst} already exists; choose a new folder")
        shutil.copytree(src, dst)
    target = dst / prefix
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for n in names:
        _copy(asr_dir / n, target / n, link)

    def entry(n: str) -> dict[str, Any]:
        p = target / n
        return {"file": f"{prefix}/{n}", "size": p.stat().st_size, "sha256": _sha256(p)}

    entries = {n: entry(n) for n in names}
    component.update(dir=prefix, config=f"{prefix}/whisper.json",
                     files=[entries[n] for n in names],
                     size_bytes=sum(e["size"] for e in entries.values()))
    manifest = json.loads((dst / "manifest.json").read_text(encoding="utf-8"))
    manifest["artifacts"] = [a for a in manifest["artifacts"]
                             if not str(a.get("role", "")).startswith("asr_")]
    short = {k: v for k, v in component["parity"].items() if not isinstance(v, dict)}
    int8 = component["parity"].get("onnx_int8", {})
    precision = cfg.get("precision", "int8-dynamic")
    for key, role in (("encoder", "asr_encoder"), ("decoder", "asr_decoder")):
        manifest["artifacts"].append({**entries[cfg["files"][key]], "format": "onnx",
                                      "precision": precision, "role": role,
                                      "parity": {**short, **int8}})
    manifest["asr"] = component
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    load_bundle(dst)
    return dst


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export.whisper.attach", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, required=True, help="bundle folder to extend")
    ap.add_argument("--asr", type=Path, required=True,
                    help="folder from python -m export.whisper (make asr-export)")
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="write the extended bundle here (new folder)")
    where.add_argument("--in-place", action="store_true", help="change --bundle itself")
    ap.add_argument("--measure-clips", type=int, default=0, metavar="N",
                    help="measure WER on N asterisk prompts now (for an export made with "
                    "--clips 0)")
    ap.add_argument("--link", action="store_true",
                    help="hard-link the ONNX files instead of copying them")
    args = ap.parse_args(argv)
    try:
        parity = measure_wer(args.asr, args.measure_clips) if args.measure_clips > 0 else None
        dst = attach_asr(args.bundle, args.asr, None if args.in_place else args.out,
                         parity=parity, link=args.link)
    except (OSError, ValueError, KeyError) as exc:
        print(f"python -m export.whisper.attach: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {dst} (asr component: {dst / 'asr'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
