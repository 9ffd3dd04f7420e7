"""Response-timing loss on hand-made cases with known orderings and values."""

import math

import pytest

torch = pytest.importorskip("torch", reason="torch is needed by export/: pip install -e .[export]")

from export.losses import (  # noqa: E402
    ZONE_EARLY,
    ZONE_IGNORE,
    ZONE_LATE,
    ZONE_NONE,
    ZONE_WINDOW,
    TimingWeights,
    response_timing_loss,
)

# one stream: 3 quiet chunks, 1 early chunk, a 4-chunk window, 1 late chunk, 1 ignored
ZONE = torch.tensor([[ZONE_NONE] * 3 + [ZONE_EARLY] + [ZONE_WINDOW] * 4 + [ZONE_LATE, ZONE_IGNORE]])
WIN = torch.tensor([[-1] * 4 + [0] * 4 + [-1, -1]])
LOW, HIGH = -8.0, 8.0


def _loss(fire_at, weights=None):
    weights = weights or TimingWeights()
    logits = torch.full(ZONE.shape, LOW)
    for k in fire_at:
        logits[0, k] = HIGH
    return response_timing_loss(logits, ZONE, WIN, weights)


def test_firing_at_the_window_start_is_best():
    best, _ = _loss([4])
    for other in ([5], [7], [3], [8], [0], [], [4, 0]):
        worse, _ = _loss(other)
        assert worse.item() > best.item(), other


def test_each_term_matches_its_formula():
    _, parts = _loss([])
    sp_low = math.log1p(math.exp(LOW))
    assert parts["fa"] == pytest.approx(sp_low, rel=1e-5)
    assert parts["early"] == pytest.approx(sp_low, rel=1e-5)
    # never firing: P(hit) = 1 - (1 - sigmoid(LOW))^4
    p = 1 / (1 + math.exp(-LOW))
    assert parts["miss"] == pytest.approx(-math.log(1 - (1 - p) ** 4), rel=1e-4)
    _, parts = _loss([0])
    assert parts["fa"] == pytest.approx((math.log1p(math.exp(HIGH)) + 2 * sp_low) / 3, rel=1e-5)


def test_delay_is_the_expected_first_fire_position():
    _, first = _loss([4])
    _, last = _loss([7])
    assert first["delay"] == pytest.approx(0.0, abs=1e-3)
    assert last["delay"] == pytest.approx(3 / 4, abs=1e-3)  # fired at offset 3 of 4 chunks


def test_late_and_early_are_penalised_by_their_weights():
    w = TimingWeights(fa=0, early=0, late=0, miss=0, delay=0)
    base, _ = _loss([8], w)
    assert base.item() == 0.0
    late_only, parts = _loss([8], TimingWeights(fa=0, early=0, late=1, miss=0, delay=0))
    assert late_only.item() == pytest.approx(parts["late"]) and parts["late"] > 7.9


def test_batches_with_several_windows_and_gradients_are_finite():
    zone = torch.tensor([[ZONE_WINDOW, ZONE_WINDOW, ZONE_NONE, ZONE_WINDOW],
                         [ZONE_NONE, ZONE_WINDOW, ZONE_WINDOW, ZONE_NONE]])
    win = torch.tensor([[0, 0, -1, 1], [-1, 0, 0, -1]])
    logits = torch.tensor([[50.0, -50.0, 0.0, -50.0], [0.0, 0.0, 0.0, 0.0]], requires_grad=True)
    loss, parts = response_timing_loss(logits, zone, win)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    # window 1 of stream 0 (one chunk at -50) is essentially missed: miss term is large
    assert parts["miss"] > 10
    assert logits.grad[0, 3] < 0  # raising that logit lowers the loss


def test_window_weight_makes_a_missed_alert_cost_more_than_a_missed_answer():
    # stream 0: window 0 is hit (logit +8), window 1 is missed (two chunks at -8)
    zone = torch.tensor([[ZONE_WINDOW, ZONE_NONE, ZONE_WINDOW, ZONE_WINDOW]])
    win = torch.tensor([[0, -1, 1, 1]])
    logits = torch.tensor([[HIGH, LOW, LOW, LOW]])
    p_hi, p_lo = 1 / (1 + math.exp(-HIGH)), 1 / (1 + math.exp(-LOW))
    miss_hit = -math.log(p_hi)
    miss_missed = -math.log(1 - (1 - p_lo) ** 2)
    _, plain = response_timing_loss(logits, zone, win)
    assert plain["miss"] == pytest.approx((miss_hit + miss_missed) / 2, rel=1e-4)
    # weight 4 on the missed window (set on its chunks): (1 * hit + 4 * missed) / 5
    weight = torch.tensor([[1.0, 1.0, 4.0, 4.0]])
    _, weighted = response_timing_loss(logits, zone, win, window_weight=weight)
    assert weighted["miss"] == pytest.approx((miss_hit + 4 * miss_missed) / 5, rel=1e-4)
    # the same weight on the hit window lowers the mean instead
    _, other = response_timing_loss(logits, zone, win, window_weight=torch.tensor(
        [[4.0, 1.0, 1.0, 1.0]]))
    assert other["miss"] < plain["miss"] < weighted["miss"]


def test_alert_window_weight_reaches_the_training_loss():
    from export.train import INTENT_INDEX, TrainConfig, compute_losses  # noqa: PLC0415

    class Fixed(torch.nn.Module):  # a stand-in model whose speak-now logits are given
        def __init__(self, speak):
            super().__init__()
            self.speak = torch.tensor([speak])

        def forward(self, x, instruction):
            b, c = self.speak.shape
            return {"ctc_logprobs": torch.zeros(b, c, 4).log_softmax(-1),
                    "event_logits": torch.zeros(b, c, 2), "intent_logits": torch.zeros(b, c, 4),
                    "speak_logit": self.speak}

    batch = {"fbank": torch.zeros(1, 64, 80), "instruction": torch.zeros(1, 4, 8),
             "segments": [], "events": torch.zeros(1, 4, 2),
             "zone": torch.tensor([[ZONE_WINDOW, ZONE_NONE, ZONE_WINDOW, ZONE_NONE]]),
             "window_id": torch.tensor([[0, -1, 1, -1]]),
             "intent": torch.tensor([[INTENT_INDEX["alert"], 0, INTENT_INDEX["answer"], 0]])}
    heavy = TrainConfig(alert_window_weight=3.0)

    def total(speak, cfg):
        return compute_losses(Fixed(speak), batch, cfg)[0].item()

    misses_alert = [LOW, LOW, HIGH, LOW]
    misses_answer = [HIGH, LOW, LOW, LOW]
    assert total(misses_alert, TrainConfig()) == pytest.approx(
        total(misses_answer, TrainConfig()), rel=1e-6)  # unweighted: one miss is one miss
    assert total(misses_alert, heavy) > total(misses_alert, TrainConfig())
    assert total(misses_answer, heavy) < total(misses_answer, TrainConfig())


def test_confident_windows_in_a_late_stream_give_a_finite_loss_and_gradient():
    # window 4 of the last stream only: the (stream 0, window 0) group is absent, and chunks
    # outside windows were once measured against the last stream's start (exp overflow, NaN)
    b, c = 12, 48
    zone = torch.full((b, c), ZONE_NONE)
    win = torch.full((b, c), -1)
    zone[11, 10:40] = ZONE_WINDOW
    win[11, 10:40] = 4
    logits = torch.full((b, c), -15.0)
    logits[11, 10:40] = 25.0
    logits.requires_grad_(True)
    for weight in (None, torch.where(zone == ZONE_WINDOW, 4.0, 1.0)):
        loss, parts = response_timing_loss(logits, zone, win, window_weight=weight)
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
        assert parts["delay"] == pytest.approx(0.0, abs=1e-6)  # fired at the window's start
