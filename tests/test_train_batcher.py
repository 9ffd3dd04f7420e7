"""Training helpers: the batcher's focused crops (hazards are rare, so some crops must show one)
and the loop's graceful stop on SIGTERM."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is needed by export/: pip install -e .[export]")

from export.losses import ZONE_NONE, ZONE_WINDOW  # noqa: E402
from export.model import ModelConfig  # noqa: E402
from export.targets import StreamTargets  # noqa: E402
from export.train import Batcher  # noqa: E402


def _stream(n_chunks: int, onset: int, window: tuple[int, int]) -> StreamTargets:
    events = np.zeros((n_chunks, 2), np.uint8)
    events[onset:onset + 5, 1] = 1
    zone = np.full(n_chunks, ZONE_NONE, np.int8)
    zone[window[0]:window[1]] = ZONE_WINDOW
    window_id = np.full(n_chunks, -1, np.int16)
    window_id[window[0]:window[1]] = 0
    return StreamTargets(
        id="s", feats=np.zeros((16 * n_chunks, 80), np.float16), events=events, zone=zone,
        window_id=window_id, intent=np.zeros(n_chunks, np.int8),
        instruction_ids=np.zeros(n_chunks, np.int16),
        instruction_table=np.zeros((1, 384), np.float32), segments=[], record={})


def test_focused_crops_contain_an_onset_or_window():
    cfg = ModelConfig(events=("a", "b"))
    stream = _stream(400, onset=300, window=(302, 310))
    batcher = Batcher([stream], cfg, seed=0, focus_fraction=1.0)
    assert sorted(c for _, c in batcher.foci) == [300, 302]
    for _ in range(20):
        batch = batcher.sample(4, 32)
        ev = batch["events"].numpy()
        win = (batch["zone"].numpy() == ZONE_WINDOW)
        assert (ev[..., 1].any(axis=1) | win.any(axis=1)).all()


def test_focused_crops_fit_when_the_onset_is_near_either_end():
    cfg = ModelConfig(events=("a", "b"))
    for onset, window in ((2, (3, 6)), (395, (396, 399))):
        batcher = Batcher([_stream(400, onset, window)], cfg, seed=1, focus_fraction=1.0)
        for _ in range(30):
            batch = batcher.sample(2, 48)
            assert batch["fbank"].shape == (2, 48 * 16, 80)
            assert (batch["zone"].numpy() == ZONE_WINDOW).any(axis=1).all()


def test_uniform_crops_mostly_miss_a_rare_event():
    cfg = ModelConfig(events=("a", "b"))
    stream = _stream(400, onset=300, window=(302, 310))
    batcher = Batcher([stream], cfg, seed=0, focus_fraction=0.0)
    hits = sum(bool(batcher.sample(1, 32)["events"].numpy()[0, :, 1].any()) for _ in range(200))
    assert hits < 60  # 36 of 369 crop positions touch the event: ~10 %


def test_sigterm_asks_the_training_loop_to_stop_and_the_old_handler_returns():
    import os
    import signal

    from export.train import stop_on_sigterm

    before = signal.getsignal(signal.SIGTERM)
    with stop_on_sigterm() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGTERM)  # handled: the test process keeps running
        assert stop.requested
    assert signal.getsignal(signal.SIGTERM) is before
