"""Retrain the decide head (speak-now, intent, events) on a frozen encoder.

    python -m export.train_decide --init ckpt/best.pt --config export/configs/decide_cpu.json \\
        --data P/train.npz P/train5.npz --dev P/dev2.npz --out ckpt/decide --minutes 40

Why: on this 2-core machine a full training step (encoder forward and backward over 12 crops of
7.7 s) takes ~1.7 s, so an hour buys ~2000 steps -- about three passes of the decide head over
the data. The decide head is where the weak numbers are (events, speak-now, intent), and it
only reads the encoder's frames. This script encodes every stream once with the frozen encoder
(``AimModel.encode``, ~50x real time here; cached in ``OUT/encodings.npz`` for ``--resume``),
then trains only the decide-side parameters (``DECIDE_PARAMS``) on crops of those frames: 32
crops per ~0.7 s step on 2 cores, about 6x the crops per second of ``export.train``. The
encoder, the CTC head and thus captions and keyword spotting are unchanged, bit for bit.

Crops see what the runtime sees: the encoder frames come from encoding the whole stream from its
start (not from a zero state at the crop's start), and a crop's first chunks attend to the
stream's frames before the crop (``AimModel.decide_chunks``'s ``history``).

Losses: the event, intent and response-timing terms of ``export.train`` (``head_losses``) with
the config's weights. ``encoder_dropout`` drops encoder-frame features during training: with the
encoder frozen there is no SpecAugment, and the head would otherwise see the same frames every
pass.

Output: ``OUT/best.pt`` (lowest dev loss) and ``OUT/last.pt``, full checkpoints (encoder from
``--init``) that ``export.evaluate`` and ``export.bundle`` take as they are, and
``OUT/metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ._args import require_paths
from .model import EVENT_BRANCH_PARAMS, AimModel, add_event_branch
from .targets import StreamTargets, load_split
from .train import (
    Batcher,
    TrainConfig,
    evaluate,
    head_losses,
    resume,
    run_steps,
    start_run,
)

# parameters the decide head owns (prefixes of state-dict names); everything else is frozen
DECIDE_PARAMS = ("query", "instr_proj.", "decide.", "norm_dec.", "speak_head.", "intent_head.",
                 *EVENT_BRANCH_PARAMS)


def decide_parameters(model: AimModel, prefixes: tuple[str, ...] = DECIDE_PARAMS
                      ) -> list[torch.nn.Parameter]:
    """Freeze every parameter outside ``prefixes`` (default :data:`DECIDE_PARAMS`); return the
    trainable ones."""
    train = []
    for name, p in model.named_parameters():
        own = name.startswith(prefixes)
        p.requires_grad_(own)
        if own:
            train.append(p)
    return train


def encode_streams(model: AimModel, streams: list[StreamTargets], desc: str = "encoding"
                   ) -> list[np.ndarray]:
    """Encoder frames (N, d) float16 of every whole stream, from the stream's start."""
    from tqdm import tqdm

    out = []
    model.eval()
    with torch.no_grad():
        for s in tqdm(streams, desc=desc, unit="stream", dynamic_ncols=True, mininterval=2.0):
            x = torch.from_numpy(s.feats.astype(np.float32))[None]
            out.append(model.encode(x)[0].numpy().astype(np.float16))
    return out


def _encodings_key(model: AimModel, streams: list[StreamTargets]) -> str:
    """Identifies an encoding cache: the encoder's weights and the streams' ids and lengths."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        if not name.startswith(DECIDE_PARAMS):
            h.update(name.encode())
            h.update(t.detach().cpu().numpy().tobytes())
    for s in streams:
        h.update(f"{s.id}:{s.n_chunks};".encode())
    return h.hexdigest()[:16]


def cached_encodings(model: AimModel, streams: list[StreamTargets], path: Path | None,
                     desc: str) -> list[np.ndarray]:
    """:func:`encode_streams`, kept in ``path`` (reused only when the key matches)."""
    key = _encodings_key(model, streams)
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) == key:
                print(f"{desc}: reusing {path}")
                return [z[f"s{i}"] for i in range(len(streams))]
        print(f"{desc}: {path} is for another encoder or other streams; encoding again")
    enc = encode_streams(model, streams, desc)
    if path is not None:
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, key=np.array(key), **{f"s{i}": e for i, e in enumerate(enc)})
        tmp.replace(path)
    return enc


def crop_frames(encodings: list[np.ndarray], origins: list[tuple[int, int, int]], crop: int,
                enc_chunk: int, history: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The encoder frames of each crop (B, crop * enc_chunk, d), zero past a short stream's end,
    and the ``history`` frames before it (B, history, d) with their validity (B, history)."""
    d = encodings[0].shape[1]
    b = len(origins)
    frames = np.zeros((b, crop * enc_chunk, d), np.float32)
    hist = np.zeros((b, history, d), np.float32)
    hvalid = np.zeros((b, history), np.float32)
    for i, (si, c0, n) in enumerate(origins):
        e = encodings[si]
        f0 = c0 * enc_chunk
        frames[i, : n * enc_chunk] = e[f0:f0 + n * enc_chunk]
        h0 = max(0, f0 - history)
        if f0 > h0:
            hist[i, history - (f0 - h0):] = e[h0:f0]
            hvalid[i, history - (f0 - h0):] = 1.0
    return torch.from_numpy(frames), torch.from_numpy(hist), torch.from_numpy(hvalid)


def decide_losses(model: AimModel, encodings: list[np.ndarray], batch: dict[str, Any],
                  cfg: TrainConfig, crop: int, training: bool
                  ) -> tuple[torch.Tensor, dict[str, float]]:
    c = model.cfg
    frames, hist, hvalid = crop_frames(encodings, batch["origins"], crop, c.enc_chunk,
                                       c.decide_context - c.enc_chunk)
    if training and cfg.encoder_dropout > 0:
        frames = F.dropout(frames, cfg.encoder_dropout)
        hist = F.dropout(hist, cfg.encoder_dropout)
    out = model.decide_chunks(frames, batch["instruction"], hist, hvalid)
    loss, parts = head_losses(out, batch, cfg)
    parts["loss"] = float(loss.detach())
    return loss, parts


def dev_losses(model: AimModel, streams: list[StreamTargets], encodings: list[np.ndarray],
               cfg: TrainConfig, batches: int) -> dict[str, float]:
    """Mean losses over the same ``batches`` dev crops every time (fixed seed)."""
    return evaluate(model, streams, cfg, batches=batches, losses=lambda batch: decide_losses(
        model, encodings, batch, cfg, cfg.crop_chunks, False))


def train_decide(args: argparse.Namespace) -> Path:
    from .bundle import load_checkpoint

    cfg, out, train_streams, events, safety = start_run(args)
    model, init_meta = load_checkpoint(args.init)
    if args.event_branch:
        model = add_event_branch(model)
    last = out / "last.pt"
    if args.resume and last.is_file():  # the run's kind must match, or its weights cannot load
        was_branch = bool(torch.load(str(last), map_location="cpu", weights_only=True)
                          ["config"].get("event_branch", False))
        if was_branch != model.cfg.event_branch:
            raise SystemExit(f"--resume: {last} is {'an' if was_branch else 'not an'} "
                             f"--event-branch run; resume it "
                             f"{'with' if was_branch else 'without'} --event-branch")
    if tuple(events) != model.cfg.events:
        raise SystemExit(f"--init {args.init} was trained on events {list(model.cfg.events)}; "
                         f"the data has {events}")
    dev_streams, _, _ = load_split(args.dev, cache=args.cache, limit=args.limit)
    # encodings are indexed like the Batcher's streams: keep only those it draws from
    train_streams, dev_streams = Batcher.usable(train_streams), Batcher.usable(dev_streams)
    if not train_streams or not dev_streams:
        raise SystemExit(f"no usable streams (all shorter than {Batcher.MIN_CHUNKS} chunks)")
    train_enc = cached_encodings(model, train_streams, out / "encodings.npz", "encoding train")
    dev_enc = cached_encodings(model, dev_streams, out / "encodings-dev.npz", "encoding dev")

    params = decide_parameters(model, EVENT_BRANCH_PARAMS if args.event_branch else DECIDE_PARAMS)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, best = 0, float("inf")
    if args.resume and last.is_file():
        step, best = resume(last, model, opt, best)
    n_train = sum(p.numel() for p in params)
    print(f"decide head: {n_train / 1e6:.2f} M trainable of "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; "
          f"{len(train_streams)} train streams "
          f"({sum(s.n_chunks for s in train_streams) * 0.16 / 3600:.2f} h), "
          f"{len(dev_streams)} dev streams")
    batcher = Batcher(train_streams, model.cfg, cfg.seed + step, cfg.focus_fraction)
    meta_base = {"events_safety": {e: bool(safety.get(e, False)) for e in events},
                 "train_config": dataclasses.asdict(cfg), "name": args.name,
                 "decide_only": {"init": str(args.init), "event_branch": args.event_branch,
                                 "init_meta":
                                 {k: v for k, v in init_meta.items() if k != "optimizer"}}}
    def losses_at(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        batch = batcher.sample(cfg.batch, cfg.crop_chunks)  # CPU tensors, as the cache
        return decide_losses(model, train_enc, batch, cfg, cfg.crop_chunks, True)

    return run_steps(
        model, opt, params, cfg=cfg, out=out, meta_base=meta_base, step=step, best=best,
        total=args.steps, minutes=args.minutes, ckpt_every=args.ckpt_every, log_every=50,
        losses_at=losses_at,
        dev_losses=lambda: dev_losses(model, dev_streams, dev_enc, cfg, args.dev_batches),
        postfix=lambda parts: {"loss": f"{parts['loss']:.3f}", "ev": f"{parts['event']:.3f}",
                               "tm": f"{parts['timing']:.3f}"})


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m export.train_decide",
        description="Retrain the decide head (speak-now, intent, events) of a trained model on "
        "its frozen encoder: the streams are encoded once, then only the head trains, ~6x "
        "the crops per second of python -m export.train on a CPU. Captions and keyword spotting "
        "(encoder + CTC head) stay exactly as in --init.",
        epilog="example: python -m export.train_decide --init export/checkpoints/"
        "student-v0.8.npz --config export/configs/decide_cpu.json --data P/train.npz "
        "--dev P/dev2.npz --out ckpt/decide --minutes 40",
    )
    p.add_argument("--init", type=Path, required=True, metavar="CKPT",
                   help="trained checkpoint (.pt or .npz) whose encoder is kept")
    p.add_argument("--config", type=Path, metavar="JSON",
                   help="TrainConfig overrides; used: batch, crop_chunks, lr, warmup, "
                   "weight_decay, grad_clip, w_event, w_intent, w_timing, event_pos_weight, "
                   "alert_window_weight, focus_fraction, encoder_dropout, seed")
    p.add_argument("--data", type=Path, required=True, nargs="+", metavar="SPLIT",
                   help="train split folder(s) or .npz pack(s); several are concatenated")
    p.add_argument("--dev", type=Path, required=True, metavar="SPLIT",
                   help="dev split for checkpoint selection (best.pt)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="checkpoint folder")
    p.add_argument("--name", default="aim-student", help="model name stored in checkpoints")
    p.add_argument("--minutes", type=float, default=0, help="wall-clock budget (0 = none)")
    p.add_argument("--steps", type=int, default=20000, help="maximum optimiser steps "
                   "(also the length of the cosine learning-rate schedule)")
    p.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2)))
    p.add_argument("--ckpt-every", type=int, default=500, metavar="STEPS")
    p.add_argument("--dev-batches", type=int, default=30, metavar="N",
                   help="dev crops = N batches, the same ones at every check")
    p.add_argument("--cache", type=Path, metavar="DIR",
                   default=Path(os.environ.get("AIM_EDGE_CACHE",
                                               Path.home() / ".cache" / "aim-edge")) / "features",
                   help="feature cache of split folders (as export.train)")
    p.add_argument("--limit", type=int, default=0, help="use at most N streams (smoke runs)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--event-branch", action="store_true",
                   help="give the events their own decide branch without the instruction "
                   "(export.model.add_event_branch; it starts equal to --init's events under a "
                   "zero instruction) and train only that branch: speak-now, intent and "
                   "captions stay --init's, bit for bit. Set w_intent and w_timing to 0 in "
                   "--config so the dev loss is the event loss")
    args = p.parse_args(argv)
    require_paths(p, args, "init", "config", "dev")
    for d in args.data:
        if not d.exists():
            p.error(f"--data {d}: no such file or folder")
    for flag, value in (("--threads", args.threads), ("--steps", args.steps),
                        ("--ckpt-every", args.ckpt_every), ("--dev-batches", args.dev_batches)):
        if value < 1:
            p.error(f"{flag} {value}: must be at least 1")
    train_decide(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
