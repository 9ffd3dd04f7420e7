"""The parity gate: every artifact against the fp32 streaming reference (numpy only).

Each artifact is streamed over held-out streams with its own state fed back, exactly as the
runtime runs it, and compared with the fp32 torch streaming reference run over the same
chunks:

* ``max_abs_<head>`` for every output head;
* ``speak_agreement`` / ``event_agreement``: the fraction of chunks (chunk x label for events)
  where the artifact takes the same decision as the reference at the *calibrated* per-label
  thresholds of the manifest; ``decision_agreement`` is the smaller of the two;
* ``cer_delta_points``: greedy-CTC CER of the artifact minus the reference's, in percentage
  points, and ``proactive_f1_delta``: the reference's proactive F1 minus the artifact's, both
  scored on the streams' labels (None when the parity data has no labels).

:func:`check_gate` turns a miss into :class:`ParityGateError`, naming the artifact, the
metric, its value and the bar.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .metrics import captions, outputs_to_scores, proactive
from .streams import StepFn, iter_step_inputs, stream_chunks

HEADS = ("ctc_logprobs", "speak_logit", "intent_logits", "event_logits")

#: Default bars (issue 4): decision agreement >= 99.5 %, CER delta <= 0.5 points,
#: proactive F1 delta <= 0.01.
DEFAULT_BARS = {"decision_agreement": 0.995, "cer_delta_points": 0.5,
                "proactive_f1_delta": 0.01}


class ParityGateError(SystemExit):
    """An artifact missed a parity bar (a SystemExit: the export command fails with it)."""

    def __init__(self, artifact: str, metric: str, value: float, bar: float, kind: str,
                 details: Mapping[str, Any]) -> None:
        self.artifact, self.metric, self.value, self.bar = artifact, metric, value, bar
        self.details = dict(details)
        rel = ">=" if kind == "min" else "<="
        super().__init__(
            f"parity gate failed for {artifact}: {metric} = {value:.4f}, the bar is {rel} {bar}"
            f" (against the fp32 torch streaming reference over {details.get('chunks')} chunks)."
            " Fix the export (precision, calibration data) or, knowingly, relax the bar"
            f" (--min-agreement / --max-cer-delta / --max-f1-delta). All figures: {dict(details)}")


@dataclasses.dataclass
class ParityStream:
    """A held-out stream for the gate: fbank (T, n_mels), instruction per chunk (C, dim) or
    one vector, and the generator's labels (``record``) when known."""

    feats: np.ndarray
    instruction: np.ndarray
    record: dict | None = None
    id: str = "stream"
    chunk_frames: int = 16

    @property
    def n_chunks(self) -> int:
        return len(self.feats) // self.chunk_frames


def stream_outputs(step: StepFn, streams: Sequence[Any], chunk_frames: int,
                   initial_state: Mapping[str, np.ndarray], *, progress: str | None = None
                   ) -> list[dict[str, np.ndarray]]:
    """Run ``step`` over each stream with its state fed back; the heads stacked per stream
    (``speak_logit`` (C, 1), ``event_logits`` (C, E), ``ctc_logprobs`` (C, n, V), ...).
    ``progress``: a tqdm bar with this label (tqdm is in the export extra)."""
    results = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(s.n_chunks for s in streams), desc=progress, unit="chunk",
                   leave=False)
    for s in streams:
        chunks, instr = stream_chunks(s, chunk_frames)
        heads: dict[str, list[np.ndarray]] = {k: [] for k in HEADS}
        state = dict(initial_state)

        def run(feeds, _heads=heads):
            out = step(feeds)
            if bar is not None:
                bar.update(1)
            for k in HEADS:
                _heads[k].append(np.asarray(out[k])[0])
            return out

        for _ in iter_step_inputs(run, chunks, instr, state):
            pass
        results.append({k: np.stack(v) if v else np.zeros((0,)) for k, v in heads.items()})
    if bar is not None:
        bar.close()
    return results


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


def compare(reference: Sequence[Mapping[str, np.ndarray]],
            candidate: Sequence[Mapping[str, np.ndarray]], *, speak_threshold: float,
            event_thresholds: Sequence[float], streams: Sequence[Any] | None = None,
            vocab: Sequence[str] | None = None, enc_chunk: int = 4) -> dict[str, Any]:
    """Parity figures of ``candidate`` against ``reference`` (lists of per-stream heads)."""
    ref = {k: np.concatenate([r[k] for r in reference]) for k in HEADS}
    can = {k: np.concatenate([c[k] for c in candidate]) for k in HEADS}
    res: dict[str, Any] = {f"max_abs_{k}": float(np.abs(ref[k] - can[k]).max()) if ref[k].size
                           else 0.0 for k in HEADS}
    st = _logit(speak_threshold)
    et = np.array([_logit(t) for t in event_thresholds])
    speak_ref, speak_can = ref["speak_logit"].reshape(-1) > st, can["speak_logit"].reshape(-1) > st
    ev_ref = ref["event_logits"].reshape(len(ref["event_logits"]), -1) > et
    ev_can = can["event_logits"].reshape(len(can["event_logits"]), -1) > et
    res["chunks"] = int(len(speak_ref))
    res["speak_agreement"] = float((speak_ref == speak_can).mean())
    res["event_agreement"] = float((ev_ref == ev_can).mean())
    res["decision_agreement"] = min(res["speak_agreement"], res["event_agreement"])
    res["ctc_argmax_agreement"] = float(
        (ref["ctc_logprobs"].argmax(-1) == can["ctc_logprobs"].argmax(-1)).mean())
    res["cer_delta_points"] = res["proactive_f1_delta"] = None
    labelled = streams is not None and all(getattr(s, "record", None) for s in streams)
    if labelled and vocab is not None:
        ref_s = [outputs_to_scores(r) for r in reference]
        can_s = [outputs_to_scores(c) for c in candidate]
        cer_ref = captions(streams, ref_s, vocab, enc_chunk)["cer"]
        cer_can = captions(streams, can_s, vocab, enc_chunk)["cer"]
        f1_ref = proactive(streams, ref_s, speak_threshold)["f1"]
        f1_can = proactive(streams, can_s, speak_threshold)["f1"]
        res.update({"cer_reference": cer_ref, "cer": cer_can,
                    "cer_delta_points": 100.0 * (cer_can - cer_ref),
                    "proactive_f1_reference": f1_ref, "proactive_f1": f1_can,
                    "proactive_f1_delta": f1_ref - f1_can, "streams": len(streams)})
    return res


def check_gate(artifact: str, figures: Mapping[str, Any],
               bars: Mapping[str, float] | None = None) -> None:
    """Raise :class:`ParityGateError` for the first bar ``figures`` misses.

    A metric that is None (no labels in the parity data) is not gated; the manifest shows it
    as null.
    """
    bars = {**DEFAULT_BARS, **(bars or {})}
    checks = (("decision_agreement", "min"), ("cer_delta_points", "max"),
              ("proactive_f1_delta", "max"))
    for metric, kind in checks:
        value = figures.get(metric)
        if value is None or metric not in bars:
            continue
        bar = bars[metric]
        if (kind == "min" and value < bar) or (kind == "max" and value > bar):
            raise ParityGateError(artifact, metric, float(value), bar, kind, figures)
