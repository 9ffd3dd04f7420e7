"""Train the AIM model on generated streams.

    python -m export.train --config export/configs/student.json --data DIR --dev DIR \\
        --out ckpt/student [--minutes 30] [--threads 2] [--resume]

Runs until ``--minutes`` of wall time or ``--steps`` steps, whichever comes first (the fixed
CPU budget mode for a 2-core machine), with a progress bar, a metrics log
(``OUT/metrics.jsonl``), checkpoints (``OUT/last.pt`` every ``--ckpt-every`` steps and at the
end, ``OUT/best.pt`` by dev loss) and ``--resume`` from ``OUT/last.pt``. Run it in the
background with a log and a pid, e.g.::

    nohup python -m export.train ... > train.log 2>&1 & echo $! > train.pid
    kill $(cat train.pid)   # stops after the current step, with the dev check and checkpoints

Data: folders written by ``python -m export.data build``; features and per-chunk targets are
computed once with the runtime's own native front end and cached (``--cache``, default
``~/.cache/aim-edge/features``) so training and runtime see bit-identical features.

Losses (weights in the config): CTC on each speech segment that lies wholly inside the crop,
per-class BCE on events, cross-entropy on the response intent of response windows, the
response-timing loss for speak-now (``export/losses.py``), and -- when a teacher checkpoint is
given -- distillation of the teacher's events, speak-now and intent outputs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .losses import (
    ZONE_IGNORE,
    ZONE_WINDOW,
    TimingWeights,
    distillation_bce,
    distillation_kl,
    event_loss,
    response_timing_loss,
)
from .model import AimModel, ModelConfig, count_parameters
from .targets import INTENT_INDEX, StreamTargets, load_split


@dataclasses.dataclass
class TrainConfig:
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    crop_chunks: int = 64  # 10.24 s per training crop
    first_pass_crop_chunks: int = 24  # short-to-long: shorter crops for the first steps
    short_steps: int = 300
    batch: int = 12
    lr: float = 1e-3
    warmup: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 5.0
    w_ctc: float = 0.5
    w_event: float = 1.0
    w_intent: float = 0.3
    w_timing: float = 1.0
    w_distill: float = 0.5
    event_pos_weight: float = 1.0  # events are rare per chunk: weight positives up
    # weight of alert windows (intent "alert") against answer/acknowledge windows in the
    # timing loss's miss and delay terms: a missed hazard costs more than a missed answer
    alert_window_weight: float = 1.0
    # share of crops placed around an event onset or a response window (the rest are uniform):
    # hazards are a few percent of the audio, so uniform crops rarely show the model one
    focus_fraction: float = 0.0
    specaugment_after: int = 600  # SpecAugment only once the loss has started to fall
    # export.train_decide only: dropout on the frozen encoder's frames (no SpecAugment there)
    encoder_dropout: float = 0.0
    seed: int = 0

    @classmethod
    def load(cls, path: Path | None) -> TrainConfig:
        if path is None:
            return cls()
        data = json.loads(Path(path).read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SystemExit(f"{path}: unknown config key(s) {unknown}; known: {sorted(known)}")
        return cls(**data)


def _spec_augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Two frequency masks (<= 10 bins) and two time masks (<= 20 frames) per example."""
    x = x.clone()
    b, t, f = x.shape
    for i in range(b):
        for _ in range(2):
            w = int(rng.integers(0, 11))
            f0 = int(rng.integers(0, f - w + 1))
            x[i, :, f0:f0 + w] = x[i].mean()
            w = int(rng.integers(0, 21))
            t0 = int(rng.integers(0, max(1, t - w + 1)))
            x[i, t0:t0 + w, :] = x[i].mean()
    return x


class Batcher:
    """Random crops of whole chunks from cached streams."""

    MIN_CHUNKS = 8

    @classmethod
    def usable(cls, streams: list[StreamTargets]) -> list[StreamTargets]:
        """The streams crops are drawn from (``self.streams``): those of at least MIN_CHUNKS."""
        return [s for s in streams if s.n_chunks >= cls.MIN_CHUNKS]

    def __init__(self, streams: list[StreamTargets], model_cfg: ModelConfig, seed: int,
                 focus_fraction: float = 0.0) -> None:
        self.streams = self.usable(streams)
        if not self.streams:
            raise SystemExit(f"no usable streams (all shorter than {self.MIN_CHUNKS} chunks)")
        self.cfg = model_cfg
        self.rng = np.random.default_rng(seed)
        self.focus_fraction = float(focus_fraction)
        # (stream index, chunk) of every event onset and response-window start
        foci = []
        for i, s in enumerate(self.streams):
            active = s.events.astype(bool).any(axis=1)
            onsets = np.flatnonzero(active & ~np.concatenate([[False], active[:-1]]))
            win = s.zone == ZONE_WINDOW
            starts = np.flatnonzero(win & ~np.concatenate([[False], win[:-1]]))
            foci.extend((i, int(c)) for c in np.union1d(onsets, starts))
        self.foci = foci
        self.char_index = {ch: i for i, ch in enumerate(model_cfg.vocab)}

    def encode_text(self, text: str) -> list[int]:
        out = []
        for ch in text.lower():
            idx = self.char_index.get(ch)
            if idx is None:
                ch = " " if not ch.isalnum() else ch
                idx = self.char_index.get(ch)
            if idx is not None and idx != 0 and not (ch == " " and (not out or out[-1] == idx)):
                out.append(idx)
        while out and out[-1] == self.char_index[" "]:
            out.pop()
        return out

    def sample(self, batch: int, crop: int) -> dict[str, Any]:
        cf = self.cfg.chunk_frames
        ec = self.cfg.enc_chunk
        feats, events, zone, win, intent, instr, segs = [], [], [], [], [], [], []
        origins = []
        for b in range(batch):
            if self.foci and self.rng.random() < self.focus_fraction:
                si, onset = self.foci[int(self.rng.integers(len(self.foci)))]
                s = self.streams[si]
                n = min(crop, s.n_chunks)
                # the onset lands anywhere in the crop's first three quarters (context before,
                # room for the response after)
                last = s.n_chunks - n  # the latest crop start that fits the stream
                lo = min(max(0, onset - (3 * n) // 4), last)
                hi = max(lo, min(last, onset))
                c0 = int(self.rng.integers(lo, hi + 1))
            else:
                si = int(self.rng.integers(len(self.streams)))
                s = self.streams[si]
                n = min(crop, s.n_chunks)
                c0 = int(self.rng.integers(0, s.n_chunks - n + 1))
            origins.append((si, c0, n))
            sl = slice(c0, c0 + n)
            f = np.zeros((crop * cf, s.feats.shape[1]), np.float32)
            f[: n * cf] = s.feats[c0 * cf:(c0 + n) * cf]
            feats.append(f)
            pad = crop - n

            def padded(a: np.ndarray, fill: float, pad: int = pad) -> np.ndarray:
                if not pad:
                    return a
                shape = (pad,) + a.shape[1:]
                return np.concatenate([a, np.full(shape, fill, a.dtype)])

            events.append(padded(s.events[sl].astype(np.float32), 0.0))
            z = padded(s.zone[sl].astype(np.int64), ZONE_IGNORE)
            w = s.window_id[sl].astype(np.int64)
            # window ids must be contiguous per crop: renumber those present
            ids = {v: i for i, v in enumerate(sorted(set(w[w >= 0].tolist())))}
            w = np.array([ids.get(v, -1) for v in w.tolist()], np.int64)
            zone.append(z)
            win.append(padded(w, -1))
            intent.append(padded(s.intent[sl].astype(np.int64), -1))
            instr.append(padded(s.instruction_table[s.instruction_ids[sl]], 0.0))
            for start_c, end_c, text in s.segments:
                if start_c >= c0 and end_c <= c0 + n:
                    tokens = self.encode_text(text)
                    if tokens:
                        segs.append((b, (start_c - c0) * ec, (end_c - c0) * ec, tokens))
        return {
            "fbank": torch.from_numpy(np.stack(feats)),
            "events": torch.from_numpy(np.stack(events)),
            "zone": torch.from_numpy(np.stack(zone)),
            "window_id": torch.from_numpy(np.stack(win)),
            "intent": torch.from_numpy(np.stack(intent)),
            "instruction": torch.from_numpy(np.stack(instr)),
            "segments": segs,
            "origins": origins,  # (index in self.streams, first chunk, chunks) of each crop
        }


def ctc_segment_loss(ctc_logprobs: torch.Tensor, segments: list[tuple[int, int, int, list[int]]]
                     ) -> torch.Tensor:
    """CTC over each labelled segment's own encoder frames (B, N, V) -> mean per segment."""
    if not segments:
        return ctc_logprobs.sum() * 0.0
    lengths = [e - s for _, s, e, _ in segments]
    tmax = max(lengths)
    v = ctc_logprobs.shape[-1]
    lp = ctc_logprobs.new_full((tmax, len(segments), v), 0.0)
    lp[:, :, 0] = 0.0
    for i, (b, s, e, _) in enumerate(segments):
        lp[: e - s, i] = ctc_logprobs[b, s:e]
    dev = ctc_logprobs.device
    targets = torch.tensor([t for *_, toks in segments for t in toks], dtype=torch.long,
                           device=dev)
    target_len = torch.tensor([len(toks) for *_, toks in segments], dtype=torch.long,
                              device=dev)
    loss = F.ctc_loss(lp, targets, torch.tensor(lengths, device=dev), target_len, blank=0,
                      reduction="none", zero_infinity=True)
    return (loss / target_len.clamp(min=1)).mean()


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
            for k, v in batch.items()}


def head_losses(out: dict[str, torch.Tensor], batch: dict[str, Any], cfg: TrainConfig
                ) -> tuple[torch.Tensor, dict[str, float]]:
    """Event BCE, intent cross-entropy and the response-timing loss of the decide head's
    outputs (weighted sum, and each part for the log)."""
    valid = (batch["zone"] != ZONE_IGNORE).float()
    pos_weight = None
    if cfg.event_pos_weight != 1.0:
        pos_weight = torch.full((out["event_logits"].shape[-1],), cfg.event_pos_weight,
                                device=out["event_logits"].device)
    ev = event_loss(out["event_logits"], batch["events"], valid, pos_weight)
    intent_mask = batch["intent"] >= 0
    if intent_mask.any():
        it = F.cross_entropy(out["intent_logits"][intent_mask], batch["intent"][intent_mask])
    else:
        it = out["intent_logits"].sum() * 0.0
    window_weight = None
    if cfg.alert_window_weight != 1.0:
        window_weight = torch.where(batch["intent"] == INTENT_INDEX["alert"],
                                    cfg.alert_window_weight, 1.0)
    timing, tparts = response_timing_loss(out["speak_logit"], batch["zone"], batch["window_id"],
                                          TimingWeights(), window_weight)
    loss = cfg.w_event * ev + cfg.w_intent * it + cfg.w_timing * timing
    parts = dict(event=float(ev.detach()), intent=float(it.detach()),
                 timing=float(timing.detach()), **{f"t_{k}": v for k, v in tparts.items()})
    return loss, parts


def compute_losses(model: AimModel, batch: dict[str, Any], cfg: TrainConfig,
                   teacher: AimModel | None = None, fbank: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, dict[str, float]]:
    x = batch["fbank"] if fbank is None else fbank
    out = model(x, batch["instruction"])
    ctc = ctc_segment_loss(out["ctc_logprobs"], batch["segments"])
    heads, hparts = head_losses(out, batch, cfg)
    loss = cfg.w_ctc * ctc + heads
    parts: dict[str, float] = {}
    if teacher is not None:
        with torch.no_grad():
            t_out = teacher(batch["fbank"], batch["instruction"])
        kd = (distillation_bce(out["event_logits"], t_out["event_logits"])
              + distillation_bce(out["speak_logit"], t_out["speak_logit"])
              + distillation_kl(out["intent_logits"].flatten(0, 1),
                                t_out["intent_logits"].flatten(0, 1)))
        loss = loss + cfg.w_distill * kd
        parts["distill"] = float(kd.detach())
    parts.update(ctc=float(ctc.detach()), **hparts, loss=float(loss.detach()))
    return loss, parts


def evaluate(model: AimModel, streams: list[StreamTargets], cfg: TrainConfig, seed: int = 1,
             batches: int = 4, device: torch.device | None = None,
             losses: Callable[[dict[str, Any]], tuple[torch.Tensor, dict[str, float]]] | None = None
             ) -> dict[str, float]:
    """Mean losses over ``batches`` crops drawn with ``seed`` (the same crops every call).
    ``losses(batch)`` defaults to :func:`compute_losses` of the whole model."""
    model.eval()
    batcher = Batcher(streams, model.cfg, seed)
    device = device or torch.device("cpu")
    losses = losses or (lambda batch: compute_losses(model, batch, cfg))
    agg: dict[str, float] = {}
    with torch.no_grad():
        for _ in range(batches):
            batch = to_device(batcher.sample(cfg.batch, cfg.crop_chunks), device)
            _, parts = losses(batch)
            for k, v in parts.items():
                agg[k] = agg.get(k, 0.0) + v / batches
    model.train()
    return agg


class StopRequest:
    """Set by SIGTERM inside :func:`stop_on_sigterm`."""

    def __init__(self) -> None:
        self.requested = False


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[StopRequest]:
    """``kill PID`` of a background run ends it like its time budget does: the running step
    finishes, then the dev check and the checkpoints are written (instead of losing the steps
    since the last ``--ckpt-every``). The previous handler comes back on exit; outside the main
    thread (where Python cannot install handlers) nothing changes."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: object) -> None:
        stop.requested = True
        print(f"\nstopping: got signal {signum}; finishing this step and checkpointing",
              file=sys.stderr, flush=True)

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, old)


class NonFiniteGuard:
    """The optimiser step of both training loops: backward, clip, step -- unless the loss or
    the gradient is not finite. One bad batch must not turn every weight into NaN: the step is
    skipped and logged, and after more than ``max(10, total // 100)`` skips the run stops."""

    def __init__(self, total: int, log: Any) -> None:
        self.total = total
        self.log = log
        self.skipped = 0

    def step(self, opt: torch.optim.Optimizer, loss: torch.Tensor,
             params: Any, grad_clip: float, step: int, parts: dict[str, float]) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
        if torch.isfinite(loss) and torch.isfinite(norm):
            opt.step()
            return
        self.skipped += 1
        self.log.write(json.dumps({"step": step, "split": "train",
                                   "skipped_nonfinite": self.skipped, **parts}) + "\n")
        if self.skipped > max(10, self.total // 100):
            raise SystemExit(f"{self.skipped} steps had a non-finite loss or gradient (last"
                             f" at step {step}: {parts}); lower lr or check the data")


def start_run(args: argparse.Namespace) -> tuple[TrainConfig, Path, list[StreamTargets],
                                                 list[str], dict[str, bool]]:
    """What both trainers do first: threads, config, output folder, seed, and the train splits
    of ``--data`` concatenated (several splits/packs, e.g. two generator seeds). Returns the
    config, the folder, the streams, the event labels and their safety flags."""
    torch.set_num_threads(args.threads)
    cfg = TrainConfig.load(args.config)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    train_streams: list[StreamTargets] = []
    events: list[str] = []
    safety: dict[str, bool] = {}
    for data in args.data:
        streams, events, safety = load_split(data, cache=args.cache, limit=args.limit)
        train_streams.extend(streams)
    return cfg, out, train_streams, events, safety


def resume(last: Path, model: AimModel, opt: torch.optim.Optimizer, best: float
           ) -> tuple[int, float]:
    """Load ``last`` (a checkpoint of either trainer) into ``model`` and ``opt``; return its
    step and best dev loss (``best`` when it records none)."""
    blob = torch.load(str(last), map_location="cpu", weights_only=True)
    model.load_state_dict(blob["model"])
    if "optimizer" in blob["meta"]:
        opt.load_state_dict(blob["meta"]["optimizer"])
    step = int(blob["meta"].get("step", 0))
    best = float(blob["meta"].get("best", best))
    print(f"resumed from {last} at step {step}")
    return step, best


def _lr(step: int, cfg: TrainConfig, total: int, progress: float | None = None) -> float:
    """Linear warmup over ``cfg.warmup`` steps, then cosine from ``cfg.lr`` to ``cfg.lr / 10``
    over the rest of ``total`` steps, or, with ``progress`` (the share of a wall-clock budget
    spent, 0..1), over the rest of that budget."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if progress is None:
        frac = min(1.0, (step - cfg.warmup) / max(1, total - cfg.warmup))
    else:
        frac = min(1.0, max(0.0, progress))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def run_steps(model: AimModel, opt: torch.optim.Optimizer, params: Sequence[torch.Tensor], *,
              cfg: TrainConfig, out: Path, meta_base: dict[str, Any], step: int, best: float,
              total: int, minutes: float, ckpt_every: int, log_every: int,
              lr_by_time: bool = False,
              losses_at: Callable[[int], tuple[torch.Tensor, dict[str, float]]],
              dev_losses: Callable[[], dict[str, float]],
              postfix: Callable[[dict[str, float]], dict[str, str]]) -> Path:
    """The optimisation loop both trainers share: cosine learning rate, the guarded step
    (:class:`NonFiniteGuard`), a progress bar, train rows every ``log_every`` steps and dev
    rows at every check in ``out/metrics.jsonl``, ``best.pt`` when the dev loss improves and
    ``last.pt`` at every check (every ``ckpt_every`` steps and at the end). Ends at ``total``
    steps, after ``minutes`` (0 = no budget) or on SIGTERM, after the current step. With
    ``lr_by_time`` (needs ``minutes``) the cosine decays over the time budget instead of
    ``total`` steps: on a machine whose step rate is not known in advance (a lent GPU) the
    learning rate still reaches its floor when the budget ends.

    ``losses_at(step)`` draws a batch and returns ``(loss, parts)``; ``dev_losses()`` returns
    the dev losses; ``postfix(parts)`` the progress bar's fields. Returns ``out/best.pt``.
    """
    from tqdm import tqdm

    from .bundle import save_checkpoint

    if lr_by_time and not minutes:
        raise SystemExit("--lr-by-time needs a --minutes budget to decay over")
    last = out / "last.pt"
    started = time.monotonic()
    deadline = started + minutes * 60 if minutes else None
    log = open(out / "metrics.jsonl", "a")
    bar = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True, mininterval=2.0)

    def checkpoint(path: Path) -> None:
        save_checkpoint(model, path, {**meta_base, "step": step, "best": best,
                                      "optimizer": opt.state_dict()})

    def validate_and_checkpoint() -> dict[str, float]:
        """Dev losses into the log; best.pt when they improve; last.pt always."""
        nonlocal best
        dev = dev_losses()
        log.write(json.dumps({"step": step, "split": "dev", **dev}) + "\n")
        log.flush()
        if dev["loss"] < best:
            best = dev["loss"]
            checkpoint(out / "best.pt")
        checkpoint(last)
        return dev

    model.train()
    guard = NonFiniteGuard(total, log)
    with stop_on_sigterm() as stop:
        try:
            while (step < total and not stop.requested
                   and (deadline is None or time.monotonic() < deadline)):
                progress = ((time.monotonic() - started) / (minutes * 60) if lr_by_time
                            else None)
                for g in opt.param_groups:
                    g["lr"] = _lr(step, cfg, total, progress)
                loss, parts = losses_at(step)
                guard.step(opt, loss, params, cfg.grad_clip, step, parts)
                step += 1
                bar.update(1)
                bar.set_postfix(**postfix(parts))
                if step % log_every == 0:
                    log.write(json.dumps({"step": step, "split": "train", **parts}) + "\n")
                    log.flush()
                if step % ckpt_every == 0:
                    validate_and_checkpoint()
        finally:
            bar.close()
            dev = validate_and_checkpoint()
            log.close()
    print(f"done at step {step}; dev loss {dev['loss']:.4f} (best {best:.4f}); "
          f"checkpoints in {out}"
          + (f"; {guard.skipped} step(s) skipped for a non-finite loss" if guard.skipped
             else ""))
    return out / "best.pt"


def train(args: argparse.Namespace) -> Path:
    from .bundle import load_checkpoint

    cfg, out, train_streams, events, safety = start_run(args)
    dev_streams, _, _ = load_split(args.dev, cache=args.cache, limit=args.limit) if args.dev \
        else (train_streams[:4], events, safety)
    device = torch.device(args.device)
    model_cfg = ModelConfig(**{**cfg.model, "events": tuple(events)})
    model = AimModel(model_cfg).to(device)
    if args.init:
        init_model, _ = load_checkpoint(args.init)
        if init_model.cfg != model_cfg:
            raise SystemExit(f"--init {args.init}: its architecture differs from the config's")
        model.load_state_dict(init_model.state_dict())
        print(f"initialised from {args.init}")
    teacher = None
    if args.teacher:
        teacher, _ = load_checkpoint(args.teacher)
        teacher = teacher.to(device).eval()
        if teacher.cfg.events != model_cfg.events:
            raise SystemExit("teacher and student must share the event labels")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, best = 0, float("inf")
    last = out / "last.pt"
    if args.resume and last.is_file():
        step, best = resume(last, model, opt, best)
    print(f"model: {count_parameters(model) / 1e6:.2f} M parameters, {len(train_streams)} train "
          f"streams ({sum(s.n_chunks for s in train_streams) * 0.16 / 3600:.2f} h), "
          f"{len(dev_streams)} dev streams, events {list(events)}")
    batcher = Batcher(train_streams, model_cfg, cfg.seed + step, cfg.focus_fraction)
    aug_rng = np.random.default_rng(cfg.seed + 7 + step)
    meta_base = {"events_safety": {e: bool(safety.get(e, False)) for e in events},
                 "train_config": dataclasses.asdict(cfg), "name": args.name}

    def losses_at(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        crop = cfg.first_pass_crop_chunks if step < cfg.short_steps else cfg.crop_chunks
        batch = batcher.sample(cfg.batch, crop)
        x = batch["fbank"]
        if step >= cfg.specaugment_after:
            x = _spec_augment(x, aug_rng)
        batch = to_device(batch, device)
        x = x.to(device, non_blocking=True)
        return compute_losses(model, batch, cfg, teacher, fbank=x)

    best_pt = run_steps(
        model, opt, list(model.parameters()), cfg=cfg, out=out, meta_base=meta_base,
        step=step, best=best, total=args.steps, minutes=args.minutes,
        ckpt_every=args.ckpt_every, log_every=20, lr_by_time=args.lr_by_time,
        losses_at=losses_at,
        dev_losses=lambda: evaluate(model, dev_streams, cfg, device=device),
        postfix=lambda parts: {"loss": f"{parts['loss']:.3f}", "ctc": f"{parts['ctc']:.2f}",
                               "ev": f"{parts['event']:.3f}", "tm": f"{parts['timing']:.3f}"})
    if args.slim:
        blob = torch.load(str(out / "best.pt"), map_location="cpu", weights_only=True)
        blob["model"] = {k: (v.half() if v.is_floating_point() else v)
                         for k, v in blob["model"].items()}
        blob["meta"].pop("optimizer", None)
        torch.save(blob, str(args.slim))
    return best_pt


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m export.train",
        description="Train the streaming AIM model (teacher or student) on generated streams.",
        epilog="example: python -m export.train --config export/configs/student.json "
        "--data data/train --dev data/dev --out ckpt/student --minutes 30",
    )
    p.add_argument("--config", type=Path, help="JSON TrainConfig overrides (see TrainConfig)")
    p.add_argument("--data", type=Path, required=True, nargs="+",
                   help="train split folder(s) or .npz pack(s) (export.data / export.pack); "
                   "several are concatenated")
    p.add_argument("--dev", type=Path, help="dev split folder")
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder")
    p.add_argument("--name", default="aim-student", help="model name stored in checkpoints")
    p.add_argument("--teacher", type=Path, help="teacher checkpoint to distil from")
    p.add_argument("--minutes", type=float, default=0, help="wall-clock budget (0 = none)")
    p.add_argument("--lr-by-time", action="store_true",
                   help="decay the learning rate over the --minutes budget instead of --steps "
                        "(for a machine whose step rate is not known in advance)")
    p.add_argument("--steps", type=int, default=100000, help="maximum optimiser steps")
    p.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2)))
    p.add_argument("--ckpt-every", type=int, default=200)
    p.add_argument("--cache", type=Path,
                   default=Path(os.environ.get("AIM_EDGE_CACHE",
                                               Path.home() / ".cache" / "aim-edge")) / "features")
    p.add_argument("--limit", type=int, default=0, help="use at most N streams (smoke runs)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--init", type=Path, help="start from these weights (fine-tuning)")
    p.add_argument("--slim", type=Path,
                   help="also write the best weights as float16 without optimizer state here "
                   "(small enough to copy off a training machine)")
    args = p.parse_args(argv)
    if args.lr_by_time and not args.minutes:  # before minutes of data loading
        p.error("--lr-by-time needs a --minutes budget to decay over")
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
