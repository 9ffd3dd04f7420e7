"""Representative calibration streams and the real cache states they produce.

Static INT8 quantization sets each tensor's range from calibration samples; for a streaming
model a sample is a whole step input: the fbank chunk *and the state tensors the previous step
produced*. Zero states (the start of a stream) are not representative of a model that has been
listening for minutes (DESIGN.md: "calibrate with real cache states ... never zeros"), so
:func:`capture_step_inputs` streams the fp32 model over the chosen streams with its state fed
back and records every step's inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

#: One model step: named inputs -> named outputs (``new_<state>`` among them).
StepFn = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


def coverage(stream: Any, events: Sequence[str]) -> dict[str, float]:
    """What a stream contains: seconds of each event label, of speech and of quiet audio."""
    rec = stream.record
    out = {f"event:{e}": 0.0 for e in events}
    for ev in rec.get("events", []):
        key = f"event:{ev['label']}"
        if key in out:
            out[key] += float(ev["offset"]) - float(ev["onset"])
    out["speech"] = sum(float(s["end"]) - float(s["start"]) for s in rec.get("speech", []))
    out["quiet"] = sum(float(b) - float(a) for a, b in rec.get("no_response", []))
    out["responses"] = float(len(rec.get("responses", [])))
    return out


def select_streams(streams: Sequence[Any], events: Sequence[str], max_chunks: int
                   ) -> list[Any]:
    """Greedy coverage: repeatedly add the stream that covers most not-yet-covered kinds of
    content (each event label, speech, quiet audio, response windows), ties to the shorter
    stream, until ``max_chunks`` chunks are chosen or nothing new is covered; then fill with
    the remaining streams in order while they fit.

    Returns streams in the order chosen. Raises ValueError for an empty input or a
    ``max_chunks`` below one stream.
    """
    if not streams:
        raise ValueError("select_streams: no streams given (pass a dev split)")
    if max_chunks <= 0:
        raise ValueError(f"max_chunks = {max_chunks!r}: give a positive number of chunks")
    covs = [coverage(s, events) for s in streams]
    kinds = sorted({k for c in covs for k, v in c.items() if v > 0})
    covered: set[str] = set()
    chosen: list[int] = []
    total = 0
    while True:
        best, best_gain = None, 0
        for i, c in enumerate(covs):
            if i in chosen or total + streams[i].n_chunks > max_chunks:
                continue
            gain = sum(1 for k in kinds if c[k] > 0 and k not in covered)
            if gain > best_gain or (gain == best_gain and gain > 0 and best is not None
                                    and streams[i].n_chunks < streams[best].n_chunks):
                best, best_gain = i, gain
        if best is None:
            break
        chosen.append(best)
        total += streams[best].n_chunks
        covered.update(k for k in kinds if covs[best][k] > 0)
    for i, s in enumerate(streams):
        if i not in chosen and total + s.n_chunks <= max_chunks:
            chosen.append(i)
            total += s.n_chunks
    if not chosen:  # every stream is longer than max_chunks: take the shortest one
        chosen = [int(np.argmin([s.n_chunks for s in streams]))]
    return [streams[i] for i in chosen]


def stream_chunks(stream: Any, chunk_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(fbank chunks (C, 1, chunk_frames, n_mels), instruction per chunk (C, 1, dim)) of a
    stream, float32, as the runtime feeds them."""
    feats = np.asarray(stream.feats, np.float32)
    n = len(feats) // chunk_frames
    chunks = feats[: n * chunk_frames].reshape(n, 1, chunk_frames, feats.shape[-1])
    instr = np.asarray(stream.instruction, np.float32)
    if instr.ndim == 1:
        instr = np.broadcast_to(instr, (n, instr.shape[-1]))
    return chunks, np.ascontiguousarray(instr[:n, None, :])


def iter_step_inputs(step: StepFn, chunks: np.ndarray, instructions: np.ndarray,
                     initial_state: Mapping[str, np.ndarray]
                     ) -> Iterator[dict[str, np.ndarray]]:
    """Stream ``chunks`` through ``step`` with its state fed back, yielding each step's inputs
    (fbank, instruction and the real state it was given)."""
    state = {k: np.asarray(v) for k, v in initial_state.items()}
    for chunk, instr in zip(chunks, instructions, strict=True):
        feeds = {"fbank": chunk, "instruction": instr, **state}
        yield feeds
        out = step(feeds)
        state = {k: np.asarray(out[f"new_{k}"]) for k in state}


def capture_step_inputs(step: StepFn, streams: Sequence[Any], chunk_frames: int,
                        initial_state: Mapping[str, np.ndarray], *, every: int = 1,
                        max_samples: int | None = None) -> list[dict[str, np.ndarray]]:
    """Calibration samples: the inputs of every ``every``-th step of ``step`` streamed over
    ``streams`` (state fed back, reset at each stream start), at most ``max_samples``."""
    if every < 1:
        raise ValueError(f"every = {every!r}: give an int >= 1")
    samples: list[dict[str, np.ndarray]] = []
    for s in streams:
        chunks, instr = stream_chunks(s, chunk_frames)
        for k, feeds in enumerate(iter_step_inputs(step, chunks, instr, initial_state)):
            if k % every == 0:
                samples.append({n: np.array(v, copy=True) for n, v in feeds.items()})
                if max_samples is not None and len(samples) >= max_samples:
                    return samples
    return samples


def onnx_step(path: str, threads: int = 1) -> StepFn:
    """A step function over an ONNX file (onnxruntime CPU, ``threads`` intra-op threads)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    inputs = [i.name for i in sess.get_inputs()]

    def step(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, sess.run(None, {k: feeds[k] for k in inputs}), strict=True))

    return step
