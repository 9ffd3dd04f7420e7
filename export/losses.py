"""Training losses of the AIM model, in particular the **response-timing loss** for speak-now.

Response timing
---------------
Per chunk k of a stream the data gives a *zone*:

=====  ===========  =====================================================================
code   zone         meaning
=====  ===========  =====================================================================
0      NONE         verified no-response audio: speaking here is a false alert
1      WINDOW       inside a response window [earliest, latest] (``window_id`` names it)
2      EARLY        the cause has begun but speaking is premature (e.g. mid-question)
3      LATE         after ``latest`` while the cause still sounds: too late to be useful
4      IGNORE       no supervision (just after a response, label edges)
=====  ===========  =====================================================================

With speak-now logits ``s_k`` and ``p_k = sigmoid(s_k)``:

* false alert  ``L_fa    = mean_{k in NONE} softplus(s_k)``            (BCE towards 0)
* too early    ``L_early = mean_{k in EARLY} softplus(s_k)``
* too late     ``L_late  = mean_{k in LATE} softplus(s_k)``
* miss         ``L_miss  = mean_W -log(1 - prod_{k in W} (1 - p_k))``  -- the probability of
  firing at least once inside the window; a window is satisfied by one confident chunk, so the
  model is not pushed to fire on every chunk of it;
* delay        ``L_delay = mean_W sum_{k in W} q_k (k - e_W) / |W|``, with the first-fire
  distribution ``q_k = p_k prod_{e_W <= j < k} (1 - p_j)``: the expected position of the first
  firing inside the window, so earlier responses are preferred.

Total: ``w_fa L_fa + w_early L_early + w_late L_late + w_miss L_miss + w_delay L_delay`` with
defaults 1.0, 1.0, 0.5, 2.0, 0.5 (misses cost the most; a late answer is less bad than one
nobody asked for). ``mean_W`` may weight windows (``window_weight``): training gives alert
windows (hazards, requested sounds, keywords) ``TrainConfig.alert_window_weight`` so that a
missed siren costs more than a missed answer. All terms are computed in log space
(``softplus``, ``log(-expm1)``) so saturated logits give finite gradients.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor

ZONE_NONE, ZONE_WINDOW, ZONE_EARLY, ZONE_LATE, ZONE_IGNORE = range(5)


@dataclasses.dataclass(frozen=True)
class TimingWeights:
    fa: float = 1.0
    early: float = 1.0
    late: float = 0.5
    miss: float = 2.0
    delay: float = 0.5


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    n = mask.sum()
    return (values * mask).sum() / n.clamp(min=1)


def response_timing_loss(speak_logit: Tensor, zone: Tensor, window_id: Tensor,
                         weights: TimingWeights = TimingWeights(),
                         window_weight: Tensor | None = None
                         ) -> tuple[Tensor, dict[str, float]]:
    """Response-timing loss (see module docstring).

    Parameters
    ----------
    speak_logit : (B, C) float logits, one per chunk.
    zone : (B, C) int zone codes.
    window_id : (B, C) int, the window a WINDOW chunk belongs to (unique within its stream,
        >= 0), -1 elsewhere. Chunks of one window must be contiguous.
    window_weight : optional (B, C) float, > 0 on WINDOW chunks: the weight of each window in
        the miss and delay means (read off its chunks; the largest counts). None = all 1.

    Returns
    -------
    loss : scalar tensor; parts : the unweighted terms as floats, for logging.
    """
    b, c = speak_logit.shape
    s = speak_logit.float()
    sp_pos = F.softplus(s)  # -log(1 - p)
    parts: dict[str, Tensor] = {
        "fa": _masked_mean(sp_pos, (zone == ZONE_NONE).float()),
        "early": _masked_mean(sp_pos, (zone == ZONE_EARLY).float()),
        "late": _masked_mean(sp_pos, (zone == ZONE_LATE).float()),
    }
    in_win = (zone == ZONE_WINDOW) & (window_id >= 0)
    if in_win.any():
        # give every (stream, window) pair one global index
        n_win_per_stream = int(window_id.max().item()) + 1
        gid = torch.where(in_win, window_id + torch.arange(b, device=s.device)[:, None]
                          * n_win_per_stream, torch.zeros_like(window_id)).reshape(-1)
        mask = in_win.reshape(-1).float()
        n_groups = b * n_win_per_stream
        # float64: a window where every p_k ~ 1e-22 must still give a finite, useful gradient
        s64 = s.double()
        mask = mask.double()
        log_not = -F.softplus(s64).reshape(-1) * mask  # log(1 - p_k) inside windows, else 0
        total_log_not = torch.zeros(n_groups, dtype=torch.float64,
                                    device=s.device).scatter_add(0, gid, log_not)
        present = torch.zeros(n_groups, dtype=torch.float64,
                              device=s.device).scatter_add(0, gid, mask) > 0
        # -log(1 - exp(x)) for x = sum log(1-p) <= 0, stable via expm1
        miss = -torch.log(-torch.expm1(total_log_not.clamp(max=-1e-300)))

        # first-fire distribution inside each window: cumulative log(1-p) before k
        cum = torch.cumsum(log_not.view(b, c), dim=1) - log_not.view(b, c)  # exclusive
        flat_cum = cum.reshape(-1)
        # subtract the cumulative value at each window's first chunk
        pos = torch.arange(b * c, device=s.device)
        first = torch.full((n_groups,), b * c, device=s.device, dtype=torch.long)
        mask_bool = mask > 0
        first = first.scatter_reduce(0, gid, torch.where(mask_bool, pos, b * c), reduce="amin")
        start_cum = flat_cum[first.clamp(max=b * c - 1)]
        before = flat_cum - start_cum[gid]
        log_p = -F.softplus(-s64).reshape(-1)
        # outside windows ``before`` is measured against another window's start and can be
        # hundreds: exp would overflow to inf and inf * 0 is NaN, so those chunks get exp(-inf)
        q = torch.exp(torch.where(mask_bool, log_p + before, torch.full_like(before, -math.inf)))
        length = torch.zeros(n_groups, dtype=torch.float64,
                             device=s.device).scatter_add(0, gid, mask)
        offset = (pos - first[gid]).double() / length[gid].clamp(min=1)
        delay = torch.zeros(n_groups, dtype=torch.float64,
                            device=s.device).scatter_add(0, gid, q * offset)
        if window_weight is None:
            w_group = present.double()
        else:
            w_group = torch.zeros(n_groups, dtype=torch.float64, device=s.device).scatter_reduce(
                0, gid, window_weight.double().reshape(-1) * mask, reduce="amax")
            w_group = torch.where(present, w_group, torch.zeros_like(w_group))
        w_sum = w_group.sum().clamp(min=1e-12)
        parts["miss"] = ((miss.masked_fill(~present, 0.0) * w_group).sum() / w_sum).float()
        parts["delay"] = ((delay.masked_fill(~present, 0.0) * w_group).sum() / w_sum).float()
    else:
        parts["miss"] = s.sum() * 0.0
        parts["delay"] = s.sum() * 0.0
    loss = (weights.fa * parts["fa"] + weights.early * parts["early"]
            + weights.late * parts["late"] + weights.miss * parts["miss"]
            + weights.delay * parts["delay"])
    return loss, {k: float(v.detach()) for k, v in parts.items()}


def event_loss(event_logits: Tensor, targets: Tensor, mask: Tensor | None = None,
               pos_weight: Tensor | None = None) -> Tensor:
    """Per-class BCE over chunks. targets: (B, C, E) in [0, 1] (soft targets allowed)."""
    loss = F.binary_cross_entropy_with_logits(event_logits, targets, reduction="none",
                                              pos_weight=pos_weight)
    if mask is None:
        return loss.mean()
    return _masked_mean(loss, mask[..., None].expand_as(loss).float())


def distillation_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 2.0
                    ) -> Tensor:
    """Soft-target KL for softmax heads (intents), scaled by T^2 as usual."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, -1), F.log_softmax(teacher_logits / t, -1),
                    log_target=True, reduction="batchmean") * t * t


def distillation_bce(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 2.0
                     ) -> Tensor:
    """Soft-target BCE for sigmoid heads (events, speak-now)."""
    t = temperature
    return F.binary_cross_entropy_with_logits(student_logits / t,
                                              torch.sigmoid(teacher_logits / t)) * t * t
