"""The AIM streaming model: perceive (conformer-lite encoder) + decide (instruction-conditioned).

One module, two entry points that compute the same function:

* :meth:`AimModel.forward` -- the full-sequence training graph: a whole fbank sequence at once,
  with attention masks that reproduce exactly what the streaming step can see;
* :meth:`AimModel.step` -- one 160 ms chunk (16 fbank frames) with explicit state tensors in and
  out; this is what is exported to ONNX / TFLite and what the runtime calls.

``tests/test_model_streaming.py`` shows the two agree to 1e-5 over streams longer than every
context. Shapes use B = batch, T = fbank frames, N = encoder frames (T / 4), C = chunks (T / 16).

Perceive
    Causal Conv1d subsampling (2 x stride 2: 10 ms -> 40 ms frames; each conv keeps one input
    frame of cache), then ``n_layers`` pre-LN blocks: chunk-limited multi-head self-attention
    (a frame sees its own chunk and ``left_context`` earlier frames, through a key/value cache),
    a causal depthwise convolution (cache of ``conv_kernel - 1`` frames) and a feed-forward
    block. A CTC head over the encoder frames gives streaming character log-probabilities.

Decide
    Once per chunk, a query token (learned, plus the projected instruction embedding) attends
    over the last ``decide_context`` encoder frames in ``decide_layers`` small pre-LN
    cross-attention blocks; heads give the speak-now logit, intent logits and multi-label event
    logits for the chunk.

    With ``event_branch`` (experiment v0.9; the shipped v0.8 has none) the event logits come
    from a second, identical branch (``event_query``, ``event_decide``, ``event_norm``) whose
    query carries no instruction: whether a sound happened cannot depend on what the user asked
    for. v0.8's shared query let an unrelated instruction push a glass break from p 0.958 to
    0.104 on the demo scene. :func:`add_event_branch` grows the branch from a trained model (as
    its zero-instruction events) and ``python -m export.train_decide --event-branch`` trains it
    alone.

Masks. The streaming step (what is exported) gives its empty cache slots (a stream's first
seconds) no attention at all, through :func:`masked_softmax`: a softmax over the valid slots in
bounded arithmetic. DESIGN.md records that large additive masks (-1e4) break static INT8
quantization; the bounded additive ``MASK_VALUE = -100`` the step used before still let empty
slots take the attention whenever a trained model's real scores fell that far (v0.7's event
logits moved by up to 5 in the first chunks). The decide head keeps the additive -100 for its
empty slots in both graphs alike, so training sees what the runtime computes there. The
full-sequence graph (training and offline evaluation, never exported) masks future and too-old
frames with ``FULL_MASK_VALUE = -1e9``: a trained model's attention scores can exceed 100 (v0.3
and v0.7 do on real features), and with -100 the full graph then attended to frames the
streaming step never has: the future, within a training crop. Every model up to v0.7 was
trained and evaluated with that look-ahead (v0.7: event logits of the two graphs differ by up to
5.2, 0.9 on average, on a dev2 stream).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MASK_VALUE = -100.0
FULL_MASK_VALUE = -1e9

#: CTC alphabet: index 0 is the blank.
DEFAULT_VOCAB = ("<blank>", " ", "'", *"abcdefghijklmnopqrstuvwxyz")

#: Intent classes of the decide head (index 0 = stay silent).
DEFAULT_INTENTS = ("silent", "alert", "answer", "acknowledge")

#: State tensor names in the order :meth:`AimModel.step` takes and returns them.
STATE_NAMES = (
    "sub_cache1",  # (B, n_mels, 1)            last input frame of subsampling conv 1
    "sub_cache2",  # (B, d_model, 1)           last input frame of subsampling conv 2
    "att_cache",   # (L, B, 2, H, left_ctx, dh) keys and values of the last left_ctx frames
    "conv_cache",  # (L, B, d_model, k - 1)    inputs of each causal depthwise conv
    "enc_valid",   # (B, left_ctx)             1 where the attention cache holds a real frame
    "dec_cache",   # (B, decide_ctx, d_model)   last encoder outputs seen by the decide head
    "dec_valid",   # (B, decide_ctx)           1 where dec_cache holds a real frame
)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters; stored with every checkpoint and in the bundle manifest."""

    n_mels: int = 80
    chunk_frames: int = 16  # fbank frames per decision step (160 ms)
    d_model: int = 192
    n_heads: int = 4
    n_layers: int = 6
    ffn_mult: int = 4
    conv_kernel: int = 7
    left_context: int = 48  # encoder frames of attention left context (1.92 s)
    decide_context: int = 50  # encoder frames the decide head sees (2.0 s)
    decide_layers: int = 2
    instruction_dim: int = 384  # all-MiniLM-L6-v2 sentence embedding
    vocab: tuple[str, ...] = DEFAULT_VOCAB
    events: tuple[str, ...] = ()
    intents: tuple[str, ...] = DEFAULT_INTENTS
    dropout: float = 0.1
    #: events come from their own decide branch (``event_query``, ``event_decide``,
    #: ``event_norm``) whose query carries no instruction: whether a sound happened cannot depend
    #: on what the user asked for (:func:`add_event_branch`). False: the event head reads the
    #: instruction-conditioned query like speak-now and intent (every model up to v0.8).
    event_branch: bool = False

    @property
    def subsampling(self) -> int:
        return 4

    @property
    def enc_chunk(self) -> int:
        """Encoder frames per chunk."""
        return self.chunk_frames // self.subsampling

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def validate(self) -> None:
        if self.chunk_frames % self.subsampling:
            raise ValueError(f"chunk_frames={self.chunk_frames} must be a multiple of 4")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} not divisible by n_heads={self.n_heads}")
        if self.left_context < 1 or self.decide_context < self.enc_chunk:
            raise ValueError(
                f"left_context={self.left_context} must be >= 1 and decide_context="
                f"{self.decide_context} >= {self.enc_chunk} (one chunk)"
            )
        if not self.events:
            raise ValueError("events is empty: give the event labels of the training data")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("vocab", "events", "intents"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        data = dict(data)
        for key in ("vocab", "events", "intents"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


def masked_softmax(scores: Tensor, valid: Tensor) -> Tensor:
    """Softmax over the slots where ``valid`` is 1; exactly 0 on the others. Bounded arithmetic.

    scores : (..., S); valid : 0/1 floats broadcastable to scores, at least one 1 per row (the
    current chunk's own frames always are). Empty slots take the row's smallest score, so the
    row's peak is a valid slot's; every exponent is then <= 0 and the sum >= 1, and no value
    leaves the range of the scores themselves: nothing large for static INT8 to calibrate on,
    and no empty slot drawing attention however far below a constant mask the real scores
    fall (the bounded ``MASK_VALUE`` had let them at a stream's start: v0.7's event logits moved
    by up to 5 in the first chunks).
    """
    floor = scores.amin(dim=-1, keepdim=True)
    kept = scores * valid + floor * (1.0 - valid)
    e = torch.exp(kept - kept.amax(dim=-1, keepdim=True)) * valid
    return e / e.sum(dim=-1, keepdim=True)


class CausalSubsampling(nn.Module):
    """Two causal Conv1d layers with stride 2 (4x fewer frames), each caching one input frame.

    With kernel 3, stride 2 and a chunk length divisible by 2, prepending the single previous
    input frame makes each chunk's outputs identical to a left-zero-padded full-sequence conv.
    """

    def __init__(self, n_mels: int, d_model: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, d_model, kernel_size=3, stride=2)
        self.conv2 = nn.Conv1d(d_model, d_model, kernel_size=3, stride=2)
        self.act = nn.GELU()

    def forward(self, x: Tensor, cache1: Tensor, cache2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: (B, n_mels, T) with T even -> (B, d_model, T/4) and the new caches."""
        h = torch.cat([cache1, x], dim=2)
        new_cache1 = h[:, :, -1:]
        h = self.act(self.conv1(h))
        h2 = torch.cat([cache2, h], dim=2)
        new_cache2 = h2[:, :, -1:]
        out = self.act(self.conv2(h2))
        return out, new_cache1, new_cache2


class EncoderBlock(nn.Module):
    """Pre-LN conformer-lite block: self-attention, causal depthwise conv, feed-forward."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d, h = cfg.d_model, cfg.n_heads
        self.n_heads, self.head_dim = h, cfg.head_dim
        self.norm_att = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.norm_conv = nn.LayerNorm(d)
        self.pw_in = nn.Linear(d, 2 * d)
        self.dw = nn.Conv1d(d, d, kernel_size=cfg.conv_kernel, groups=d)
        self.pw_out = nn.Linear(d, d)
        self.norm_ffn = nn.LayerNorm(d)
        self.ffn = nn.Sequential(
            nn.Linear(d, cfg.ffn_mult * d), nn.GELU(), nn.Dropout(cfg.dropout),
            nn.Linear(cfg.ffn_mult * d, d),
        )
        self.drop = nn.Dropout(cfg.dropout)

    def _split(self, t: Tensor) -> Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, N, dh)

    def attend(self, x: Tensor, k_prev: Tensor, v_prev: Tensor, mask: Tensor, *,
               additive: bool) -> tuple[Tensor, Tensor, Tensor]:
        """Self-attention of x's frames over [k_prev/v_prev, x].

        x: (B, N, d); k_prev, v_prev: (B, H, P, dh); mask: (B or 1, 1, N or 1, P + N), an
        additive bias (``additive``, the full graph) or 1 = valid / 0 = empty slot (the step,
        through :func:`masked_softmax`). Returns the residual update and this call's keys and
        values (B, H, N, dh).
        """
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm_att(x)).chunk(3, dim=-1)
        q, k, v = self._split(q), self._split(k), self._split(v)
        keys = torch.cat([k_prev, k], dim=2)
        values = torch.cat([v_prev, v], dim=2)
        scores = q @ keys.transpose(-1, -2) / math.sqrt(self.head_dim)
        weights = torch.softmax(scores + mask, dim=-1) if additive else masked_softmax(scores, mask)
        ctx = weights @ values
        ctx = ctx.transpose(1, 2).reshape(b, n, d)
        return self.drop(self.out(ctx)), k, v

    def convolve(self, x: Tensor, cache: Tensor) -> tuple[Tensor, Tensor]:
        """Causal depthwise conv module. x: (B, N, d); cache: (B, d, k-1)."""
        a, g = self.pw_in(self.norm_conv(x)).chunk(2, dim=-1)
        h = (a * torch.sigmoid(g)).transpose(1, 2)  # GLU -> (B, d, N)
        h = torch.cat([cache, h], dim=2)
        new_cache = h[:, :, h.shape[2] - cache.shape[2]:]
        h = nn.functional.silu(self.dw(h)).transpose(1, 2)
        return self.drop(self.pw_out(h)), new_cache

    def forward(self, x: Tensor, k_prev: Tensor, v_prev: Tensor, mask: Tensor, conv_cache: Tensor,
                *, additive: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        upd, k, v = self.attend(x, k_prev, v_prev, mask, additive=additive)
        x = x + upd
        upd, new_conv = self.convolve(x, conv_cache)
        x = x + upd
        x = x + self.drop(self.ffn(self.norm_ffn(x)))
        return x, k, v, new_conv


class DecideBlock(nn.Module):
    """Pre-LN cross-attention of the query token over recent encoder frames, then an FFN."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.norm_q = nn.LayerNorm(d)
        self.norm_kv = nn.LayerNorm(d)
        self.att = nn.MultiheadAttention(d, cfg.n_heads, dropout=0.0, batch_first=True)
        self.norm_ffn = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, query: Tensor, frames: Tensor, bias: Tensor) -> Tensor:
        """query: (B', 1, d); frames: (B', M, d); bias: (B', M) additive."""
        kv = self.norm_kv(frames)
        n_heads = self.att.num_heads
        mask = bias[:, None, None, :].expand(-1, n_heads, 1, -1).reshape(-1, 1, bias.shape[-1])
        upd, _ = self.att(self.norm_q(query), kv, kv, attn_mask=mask, need_weights=False)
        query = query + upd
        return query + self.ffn(self.norm_ffn(query))

    def forward_windows(self, query: Tensor, seq: Tensor, valid: Tensor, m: int, stride: int
                        ) -> Tensor:
        """``forward`` for C queries at once, query c attending to ``seq[c*stride : c*stride+m]``.

        The same arithmetic as ``forward`` on each window (the streaming step's graph), but the
        key/value norm and projections run once per frame instead of once per window that
        holds it (m / stride = 12.5 times here): the full-sequence training graph is ~5x faster.

        query: (B, C, d); seq: (B, m + (C-1)*stride, d); valid: (B, same) 1 = attendable.
        """
        att = self.att
        b, c, d = query.shape
        h = att.num_heads
        hd = d // h
        w_q, w_k, w_v = att.in_proj_weight.chunk(3)
        b_q, b_k, b_v = att.in_proj_bias.chunk(3)
        q = F.linear(self.norm_q(query), w_q, b_q).view(b, c, h, hd) * hd ** -0.5
        kv = self.norm_kv(seq)
        k = F.linear(kv, w_k, b_k).unfold(1, m, stride).reshape(b, c, h, hd, m)
        v = F.linear(kv, w_v, b_v).unfold(1, m, stride).reshape(b, c, h, hd, m)
        bias = ((1.0 - valid) * MASK_VALUE).unfold(1, m, stride)  # (B, C, m)
        scores = torch.einsum("bchi,bchim->bchm", q, k) + bias[:, :, None, :]
        o = torch.einsum("bchm,bchim->bchi", torch.softmax(scores, dim=-1), v)
        query = query + att.out_proj(o.reshape(b, c, d))
        return query + self.ffn(self.norm_ffn(query))


class AimModel(nn.Module):
    """Streaming perceive-decide model (see the module docstring)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        d = cfg.d_model
        self.subsample = CausalSubsampling(cfg.n_mels, d)
        self.blocks = nn.ModuleList(EncoderBlock(cfg) for _ in range(cfg.n_layers))
        self.norm_enc = nn.LayerNorm(d)
        self.ctc_head = nn.Linear(d, len(cfg.vocab))
        self.query = nn.Parameter(torch.zeros(1, 1, d))
        self.instr_proj = nn.Linear(cfg.instruction_dim, d)
        self.decide = nn.ModuleList(DecideBlock(cfg) for _ in range(cfg.decide_layers))
        self.norm_dec = nn.LayerNorm(d)
        self.speak_head = nn.Linear(d, 1)
        self.intent_head = nn.Linear(d, len(cfg.intents))
        self.event_head = nn.Linear(d, len(cfg.events))
        nn.init.normal_(self.query, std=0.02)
        if cfg.event_branch:
            self.event_query = nn.Parameter(torch.zeros(1, 1, d))
            self.event_decide = nn.ModuleList(DecideBlock(cfg) for _ in range(cfg.decide_layers))
            self.event_norm = nn.LayerNorm(d)
            nn.init.normal_(self.event_query, std=0.02)

    # ------------------------------------------------------------------ state
    def initial_state(self, batch: int = 1) -> dict[str, Tensor]:
        """Zero state: empty caches, nothing valid. The manifest records the same shapes."""
        c = self.cfg
        z = torch.zeros
        return {
            "sub_cache1": z(batch, c.n_mels, 1),
            "sub_cache2": z(batch, c.d_model, 1),
            "att_cache": z(c.n_layers, batch, 2, c.n_heads, c.left_context, c.head_dim),
            "conv_cache": z(c.n_layers, batch, c.d_model, c.conv_kernel - 1),
            "enc_valid": z(batch, c.left_context),
            "dec_cache": z(batch, c.decide_context, c.d_model),
            "dec_valid": z(batch, c.decide_context),
        }

    # ------------------------------------------------------------------ shared pieces
    def _heads(self, pooled: Tensor, pooled_events: Tensor | None = None
               ) -> tuple[Tensor, Tensor, Tensor]:
        h = self.norm_dec(pooled)
        events = (self.event_head(h) if pooled_events is None
                  else self.event_head(self.event_norm(pooled_events)))
        return self.speak_head(h).squeeze(-1), self.intent_head(h), events

    def _decide_events(self, frames: Tensor, bias: Tensor) -> Tensor | None:
        """The event branch's pooled query (B', d), or None without a branch (``_decide``'s)."""
        if not self.cfg.event_branch:
            return None
        q = self.event_query.expand(frames.shape[0], -1, -1)
        for block in self.event_decide:
            q = block(q, frames, bias)
        return q[:, 0, :]

    def _decide(self, frames: Tensor, bias: Tensor, instruction: Tensor) -> Tensor:
        """frames: (B', M, d), bias: (B', M), instruction: (B', instruction_dim) -> (B', d)."""
        q = self.query.expand(frames.shape[0], -1, -1) + self.instr_proj(instruction)[:, None, :]
        for block in self.decide:
            q = block(q, frames, bias)
        return q[:, 0, :]

    # ------------------------------------------------------------------ streaming step
    def step(self, fbank: Tensor, instruction: Tensor, state: dict[str, Tensor]
             ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """One chunk.

        Parameters
        ----------
        fbank : (B, chunk_frames, n_mels) log-mel frames of this chunk.
        instruction : (B, instruction_dim) sentence embedding of the active instruction.
        state : the tensors named in :data:`STATE_NAMES`.

        Returns
        -------
        outputs : ``ctc_logprobs`` (B, enc_chunk, vocab), ``speak_logit`` (B,),
            ``intent_logits`` (B, n_intents), ``event_logits`` (B, n_events).
        new_state : same names and shapes as ``state``.
        """
        c = self.cfg
        n = c.enc_chunk
        x, sub1, sub2 = self.subsample(fbank.transpose(1, 2), state["sub_cache1"],
                                       state["sub_cache2"])
        x = x.transpose(1, 2)  # (B, n, d)
        valid = torch.cat([state["enc_valid"], torch.ones_like(state["enc_valid"][:, :n])], 1)
        slots = valid[:, None, None, :]  # (B, 1, 1, P + n)
        att_out, conv_out = [], []
        for i, block in enumerate(self.blocks):
            kv = state["att_cache"][i]
            x, k, v, conv = block(x, kv[:, 0], kv[:, 1], slots, state["conv_cache"][i],
                                  additive=False)
            keys = torch.cat([kv[:, 0], k], dim=2)[:, :, n:]
            values = torch.cat([kv[:, 1], v], dim=2)[:, :, n:]
            att_out.append(torch.stack([keys, values], dim=1))
            conv_out.append(conv)
        enc = self.norm_enc(x)
        ctc = torch.log_softmax(self.ctc_head(enc), dim=-1)
        frames = torch.cat([state["dec_cache"], enc], dim=1)[:, n:]
        dvalid = torch.cat([state["dec_valid"], torch.ones_like(state["dec_valid"][:, :n])], 1)
        dvalid = dvalid[:, n:]
        bias = (1.0 - dvalid) * MASK_VALUE
        pooled = self._decide(frames, bias, instruction)
        speak, intent, event = self._heads(pooled, self._decide_events(frames, bias))
        new_state = {
            "sub_cache1": sub1,
            "sub_cache2": sub2,
            "att_cache": torch.stack(att_out, dim=0),
            "conv_cache": torch.stack(conv_out, dim=0),
            "enc_valid": valid[:, n:],
            "dec_cache": frames,
            "dec_valid": dvalid,
        }
        outputs = {"ctc_logprobs": ctc, "speak_logit": speak, "intent_logits": intent,
                   "event_logits": event}
        return outputs, new_state

    # ------------------------------------------------------------------ full sequence
    def encode(self, fbank: Tensor) -> Tensor:
        """Encoder frames (B, N, d) of a whole sequence from zero state (``forward``'s first half).

        fbank : (B, T, n_mels) with T a multiple of ``chunk_frames``.
        """
        c = self.cfg
        b, t, _ = fbank.shape
        if t % c.chunk_frames:
            raise ValueError(f"T={t} is not a multiple of chunk_frames={c.chunk_frames}")
        d = c.d_model
        zeros = self.initial_state(b)
        x, _, _ = self.subsample(fbank.transpose(1, 2), zeros["sub_cache1"].to(fbank),
                                 zeros["sub_cache2"].to(fbank))
        x = x.transpose(1, 2)  # (B, N, d)
        n = x.shape[1]
        idx = torch.arange(n, device=fbank.device)
        chunk_end = (idx // c.enc_chunk + 1) * c.enc_chunk  # exclusive
        chunk_start = chunk_end - c.enc_chunk
        # frame i sees j in [chunk_start(i) - left_context, chunk_end(i))
        visible = (idx[None, :] < chunk_end[:, None]) & (
            idx[None, :] >= chunk_start[:, None] - c.left_context)
        # strict: a bounded constant lets large trained scores see the future (module docstring)
        bias = torch.where(visible, 0.0, FULL_MASK_VALUE).to(fbank)[None, None]  # (1,1,N,N)
        empty = fbank.new_zeros(b, c.n_heads, 0, c.head_dim)
        for block in self.blocks:
            conv0 = fbank.new_zeros(b, d, c.conv_kernel - 1)
            x, _, _, _ = block(x, empty, empty, bias, conv0, additive=True)
        return self.norm_enc(x)

    def decide_chunks(self, enc: Tensor, instruction: Tensor, history: Tensor | None = None,
                      history_valid: Tensor | None = None) -> dict[str, Tensor]:
        """Speak-now, intent and event logits of every chunk of ``enc`` (``forward``'s second half).

        Chunk k sees encoder frames (k+1)*enc_chunk - decide_context .. (k+1)*enc_chunk.

        enc : (B, N, d) encoder frames of the chunks, N a multiple of ``enc_chunk``.
        instruction : (B, C, instruction_dim) or (B, instruction_dim).
        history : (B, decide_context - enc_chunk, d) encoder frames just before ``enc`` (a crop
            taken from inside a stream), with ``history_valid`` (B, same) 1 where a frame exists.
            Absent: the sequence starts the stream (no frame before it), as in ``forward``.
        """
        c = self.cfg
        b, n, d = enc.shape
        n_chunks = n // c.enc_chunk
        m = c.decide_context
        h = m - c.enc_chunk
        if history is None:
            history = enc.new_zeros(b, h, d)
            history_valid = enc.new_zeros(b, h)
        elif history_valid is None:
            raise ValueError("history needs history_valid")
        seq = torch.cat([history, enc], dim=1)
        valid = torch.cat([history_valid, enc.new_ones(b, n)], dim=1)
        if instruction.dim() == 2:
            instruction = instruction[:, None, :].expand(-1, n_chunks, -1)
        # as _decide, for all chunks at once
        q = self.query + self.instr_proj(instruction)  # (B, C, d)
        for block in self.decide:
            q = block.forward_windows(q, seq, valid, m, c.enc_chunk)
        qe = None
        if c.event_branch:  # as _decide_events
            qe = self.event_query.expand(b, n_chunks, -1)
            for block in self.event_decide:
                qe = block.forward_windows(qe, seq, valid, m, c.enc_chunk)
        speak, intent, event = self._heads(q, qe)
        return {
            "speak_logit": speak.view(b, n_chunks),
            "intent_logits": intent.view(b, n_chunks, -1),
            "event_logits": event.view(b, n_chunks, -1),
        }

    def forward(self, fbank: Tensor, instruction: Tensor) -> dict[str, Tensor]:
        """Full-sequence graph (training). Equal to stepping chunk by chunk from zero state.

        Parameters
        ----------
        fbank : (B, T, n_mels) with T a multiple of ``chunk_frames``.
        instruction : (B, C, instruction_dim) -- the instruction active at each chunk (it may
            change mid-stream), or (B, instruction_dim) for one instruction throughout.

        Returns
        -------
        ``ctc_logprobs`` (B, N, vocab), ``speak_logit`` (B, C), ``intent_logits`` (B, C, I),
        ``event_logits`` (B, C, E), ``encoder`` (B, N, d).
        """
        enc = self.encode(fbank)
        ctc = torch.log_softmax(self.ctc_head(enc), dim=-1)
        return {"ctc_logprobs": ctc, **self.decide_chunks(enc, instruction), "encoder": enc}


#: parameters of the event branch (prefixes of state-dict names)
EVENT_BRANCH_PARAMS = ("event_query", "event_decide.", "event_norm.", "event_head.")


def add_event_branch(model: AimModel) -> AimModel:
    """``model`` with its events moved to their own decide branch (``event_branch``).

    The branch starts as a copy of the shared decide head with no instruction: its query is
    ``query + instr_proj(0)``, its blocks and norm copies of ``decide`` and ``norm_dec``. So the
    new model's event logits equal ``model``'s with a zero instruction, under any instruction;
    speak-now, intent and CTC are ``model``'s, bit for bit. Train the branch from there
    (``python -m export.train_decide --event-branch``).
    """
    if model.cfg.event_branch:
        return model
    new = AimModel(dataclasses.replace(model.cfg, event_branch=True))
    state = model.state_dict()
    for i in range(model.cfg.decide_layers):
        for k, v in model.decide[i].state_dict().items():
            state[f"event_decide.{i}.{k}"] = v.clone()
    for k, v in model.norm_dec.state_dict().items():
        state[f"event_norm.{k}"] = v.clone()
    with torch.no_grad():
        state["event_query"] = model.query + model.instr_proj.bias
    new.load_state_dict(state)
    return new.train(model.training)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
