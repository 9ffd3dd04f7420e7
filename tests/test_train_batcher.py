"""Training helpers: the batcher's focused crops (hazards are rare, so some crops must show one),
the learning-rate schedule (by steps or by a time budget) and the loop's graceful stop on
SIGTERM."""

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


def test_the_cosine_decays_over_steps_or_over_the_time_budget():
    from export.train import TrainConfig, _lr

    cfg = TrainConfig(lr=1e-3, warmup=10)
    assert _lr(0, cfg, 110) == pytest.approx(1e-4)  # warmup: 1/10 of the rate
    assert _lr(10, cfg, 110) == pytest.approx(1e-3)  # peak right after warmup
    assert _lr(60, cfg, 110) == pytest.approx(5.5e-4)  # half-way down the cosine
    assert _lr(110, cfg, 110) == pytest.approx(1e-4)  # floor: a tenth of the peak
    # by time: the step count no longer matters, the spent share of the budget does
    assert _lr(60, cfg, 100000, progress=0.5) == pytest.approx(5.5e-4)
    assert _lr(20, cfg, 100000, progress=1.0) == pytest.approx(1e-4)
    assert _lr(20, cfg, 100000, progress=3.0) == pytest.approx(1e-4)  # past the budget: floor
    assert _lr(5, cfg, 100000, progress=0.9) == pytest.approx(6e-4)  # warmup still by steps


def test_the_command_refuses_a_time_schedule_without_a_budget_before_loading(capsys):
    from export.train import main

    with pytest.raises(SystemExit) as info:
        main(["--data", "/nonexistent/never-read.npz", "--out", "/nonexistent/out",
              "--lr-by-time"])
    assert info.value.code == 2
    assert "--lr-by-time needs a --minutes budget" in capsys.readouterr().err


def test_a_time_schedule_without_a_time_budget_is_refused():
    from export.model import AimModel
    from export.train import TrainConfig, run_steps

    model = AimModel(ModelConfig(d_model=32, n_heads=2, n_layers=1, events=("a", "b")))
    opt = torch.optim.AdamW(model.parameters())
    with pytest.raises(SystemExit, match="--lr-by-time needs a --minutes"):
        run_steps(model, opt, list(model.parameters()), cfg=TrainConfig(), out=None,
                  meta_base={}, step=0, best=float("inf"), total=10, minutes=0, ckpt_every=5,
                  log_every=5, lr_by_time=True, losses_at=None, dev_losses=None,
                  postfix=None)
