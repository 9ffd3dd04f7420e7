"""The streaming step and the full-sequence training graph compute the same function."""

import pytest

torch = pytest.importorskip("torch", reason="torch is needed by export/: pip install -e .[export]")

from export.model import (  # noqa: E402
    STATE_NAMES,
    AimModel,
    ModelConfig,
    add_event_branch,
    count_parameters,
)

EVENTS = ("smoke_alarm", "siren", "doorbell", "kettle_whistle")


def _small(**kw):
    base = dict(d_model=64, n_heads=4, n_layers=2, left_context=8, decide_context=10,
                conv_kernel=5, events=EVENTS, dropout=0.0)
    base.update(kw)
    return ModelConfig(**base)


def _stream(model, fbank, instruction):
    state = model.initial_state(fbank.shape[0])
    outs = []
    cf = model.cfg.chunk_frames
    for k in range(fbank.shape[1] // cf):
        instr = instruction[:, k] if instruction.dim() == 3 else instruction
        out, state = model.step(fbank[:, k * cf:(k + 1) * cf], instr, state)
        outs.append(out)
    return outs, state


@pytest.mark.parametrize("cfg", [_small(), _small(left_context=4, decide_context=4, n_layers=3),
                                 _small(event_branch=True)])
def test_chunk_by_chunk_equals_full_sequence(cfg):
    torch.manual_seed(0)
    model = AimModel(cfg).eval()
    n_chunks = 9  # 36 encoder frames: longer than every context above
    fbank = torch.randn(2, n_chunks * cfg.chunk_frames, cfg.n_mels)
    instruction = torch.randn(2, n_chunks, cfg.instruction_dim)  # changes every chunk
    with torch.no_grad():
        full = model(fbank, instruction)
        outs, state = _stream(model, fbank, instruction)
    ctc = torch.cat([o["ctc_logprobs"] for o in outs], dim=1)
    assert ctc.shape == full["ctc_logprobs"].shape
    assert (ctc - full["ctc_logprobs"]).abs().max().item() <= 1e-5
    for name, key in (("speak_logit", "speak_logit"), ("intent_logits", "intent_logits"),
                      ("event_logits", "event_logits")):
        streamed = torch.stack([o[name] for o in outs], dim=1)
        assert (streamed - full[key]).abs().max().item() <= 1e-5, name
    assert set(state) == set(STATE_NAMES)
    assert state["enc_valid"].min().item() == 1.0  # caches full after more than the context


def test_event_branch_starts_as_the_events_without_instruction_and_ignores_the_instruction():
    """add_event_branch: events equal the old model's under a zero instruction whatever the
    instruction; speak-now, intent and CTC stay the old model's; trained branch weights then
    still cannot make the events read the instruction."""
    torch.manual_seed(4)
    old = AimModel(_small()).eval()
    with torch.no_grad():  # a non-trivial instruction projection, as after training
        old.instr_proj.bias.normal_(0, 1.0)
    new = add_event_branch(old)
    assert new.cfg.event_branch and not old.cfg.event_branch
    n_chunks = 7
    fbank = torch.randn(2, n_chunks * old.cfg.chunk_frames, old.cfg.n_mels)
    instr = torch.randn(2, n_chunks, old.cfg.instruction_dim)
    with torch.no_grad():
        o_instr = old(fbank, instr)
        o_zero = old(fbank, torch.zeros_like(instr))
        n_instr = new(fbank, instr)
        outs, _ = _stream(new, fbank, instr)
    ev = n_instr["event_logits"]
    assert (ev - o_zero["event_logits"]).abs().max().item() <= 1e-5
    # the old model's events did read the instruction: the branch changed something real
    assert (o_instr["event_logits"] - o_zero["event_logits"]).abs().max().item() > 1e-2
    for key in ("speak_logit", "intent_logits", "ctc_logprobs"):
        assert torch.equal(n_instr[key], o_instr[key]), key
    streamed = torch.stack([o["event_logits"] for o in outs], dim=1)
    assert (streamed - ev).abs().max().item() <= 1e-5
    # perturb every branch weight: the events still do not depend on the instruction
    with torch.no_grad():
        for name, p in new.named_parameters():
            if name.startswith("event_"):
                p.add_(torch.randn_like(p) * 0.1)
        a = new(fbank, instr)["event_logits"]
        b = new(fbank, torch.randn_like(instr))["event_logits"]
    assert torch.equal(a, b)
    assert add_event_branch(new) is new
    params = count_parameters(new) - count_parameters(old)
    assert params == count_parameters(new.event_decide) + count_parameters(new.event_norm) + 64


@pytest.mark.parametrize("c0", [1, 6])  # history partly before the stream's start; all inside
def test_decide_on_a_crop_with_history_equals_the_whole_stream(c0):
    """export.train_decide trains on crops of encoder frames taken from inside a stream: with
    the frames before the crop as history, each chunk's outputs equal the whole stream's."""
    torch.manual_seed(2)
    cfg = _small()
    model = AimModel(cfg).eval()
    n_chunks = 10
    fbank = torch.randn(1, n_chunks * cfg.chunk_frames, cfg.n_mels)
    instruction = torch.randn(1, n_chunks, cfg.instruction_dim)
    ec, h = cfg.enc_chunk, cfg.decide_context - cfg.enc_chunk
    with torch.no_grad():
        full = model(fbank, instruction)
        enc = model.encode(fbank)
        f0 = c0 * ec
        history = torch.zeros(1, h, cfg.d_model)
        valid = torch.zeros(1, h)
        take = min(h, f0)
        history[:, h - take:] = enc[:, f0 - take:f0]
        valid[:, h - take:] = 1.0
        crop = model.decide_chunks(enc[:, f0:], instruction[:, c0:], history, valid)
        without = model.decide_chunks(enc[:, f0:], instruction[:, c0:])
    for key in ("speak_logit", "intent_logits", "event_logits"):
        assert (crop[key] - full[key][:, c0:]).abs().max().item() <= 1e-5, key
    # without the history the first chunk differs: the history is really used
    assert (without["speak_logit"][:, 0] - full["speak_logit"][:, c0]).abs().item() > 1e-4
    with pytest.raises(ValueError, match="history_valid"):
        model.decide_chunks(enc, instruction, history)


def test_context_is_bounded():
    """A change far enough in the past cannot influence the present chunk's outputs."""
    torch.manual_seed(1)
    cfg = _small()
    model = AimModel(cfg).eval()
    fbank = torch.randn(1, 12 * cfg.chunk_frames, cfg.n_mels)
    instr = torch.randn(1, cfg.instruction_dim)
    changed = fbank.clone()
    changed[:, :cfg.chunk_frames] += 3.0  # perturb only the first chunk
    with torch.no_grad():
        a, b = model(fbank, instr), model(changed, instr)
    # receptive field: layers * (left_context + chunk) encoder frames back plus conv/decide
    assert (a["speak_logit"][:, 1] - b["speak_logit"][:, 1]).abs().item() > 1e-4
    assert torch.allclose(a["speak_logit"][:, -1], b["speak_logit"][:, -1], atol=1e-6)


def _sharpen_attention(model, factor):
    """Scale every encoder block's query and key projections: attention scores grow by
    factor**2, as a trained model's do on real features (v0.7's exceed 100)."""
    with torch.no_grad():
        for block in model.blocks:
            w = block.qkv.weight
            d = w.shape[0] // 3
            w[:2 * d] *= factor
            block.qkv.bias[:2 * d] *= factor


def test_the_future_stays_out_of_the_full_sequence_graph_even_with_large_scores():
    """Training and offline evaluation run the full-sequence graph: a change in a later chunk
    must not move an earlier chunk's outputs, however large the attention scores grow. With the
    old bounded mask (-100) it did for a trained model, so training saw a look-ahead the
    streaming runtime lacks."""
    torch.manual_seed(3)
    cfg = _small()
    model = AimModel(cfg).eval()
    _sharpen_attention(model, 12.0)
    fbank = torch.randn(1, 8 * cfg.chunk_frames, cfg.n_mels) * 4
    instr = torch.randn(1, cfg.instruction_dim)
    changed = fbank.clone()
    changed[:, 5 * cfg.chunk_frames:] += 6.0  # only chunks 5.. change
    with torch.no_grad():
        a, b = model(fbank, instr), model(changed, instr)
        outs, _ = _stream(model, fbank, instr)
    for key in ("speak_logit", "event_logits", "ctc_logprobs"):
        early = 5 if key != "ctc_logprobs" else 5 * cfg.enc_chunk
        assert (a[key][:, :early] - b[key][:, :early]).abs().max().item() <= 1e-5, key
    assert (a["speak_logit"][:, 5:] - b["speak_logit"][:, 5:]).abs().max().item() > 1e-3
    # and the scores really are large enough to defeat a bounded mask
    import export.model as model_module

    old = model_module.FULL_MASK_VALUE
    model_module.FULL_MASK_VALUE = model_module.MASK_VALUE
    try:
        with torch.no_grad():
            leaky_a, leaky_b = model(fbank, instr), model(changed, instr)
    finally:
        model_module.FULL_MASK_VALUE = old
    assert (leaky_a["event_logits"][:, :5] - leaky_b["event_logits"][:, :5]).abs().max() > 1e-3
    # the streaming step, which never holds a future frame, computes the strict full graph
    streamed = torch.stack([o["event_logits"] for o in outs], dim=1)
    assert (streamed - a["event_logits"]).abs().max().item() <= 1e-5


def _push_scores_far_down(model, depth):
    """Give every real query/key pair the same score offset of -depth (one dimension per head
    whose query is -a and key +a for every frame). A softmax over real frames cancels a common
    offset; an empty cache slot (key 0) does not get it."""
    d = model.cfg.d_model
    dh = model.cfg.head_dim
    a = (depth * dh ** 0.5) ** 0.5
    with torch.no_grad():
        for block in model.blocks:
            for h in range(model.cfg.n_heads):
                for row, value in ((h * dh, -a), (d + h * dh, a)):  # query dim, key dim
                    block.qkv.weight[row] = 0.0
                    block.qkv.bias[row] = value


def test_empty_cache_slots_draw_no_attention_at_a_stream_start():
    """In a stream's first chunks the step's cache slots are empty. Real scores far below any
    bounded mask constant (a trained model's can be) must still give the empty slots nothing:
    the step equals the full graph from chunk 0. With the old additive -100 mask the empty
    slots took the attention and v0.7's event logits moved by up to 5 in the first chunks."""
    torch.manual_seed(5)
    cfg = _small(left_context=16)
    model = AimModel(cfg).eval()
    fbank = torch.randn(1, 8 * cfg.chunk_frames, cfg.n_mels)
    instr = torch.randn(1, cfg.instruction_dim)
    with torch.no_grad():
        _push_scores_far_down(model, 0.0)  # the same dimensions, without the offset
        before = model(fbank, instr)
        _push_scores_far_down(model, 300.0)
        full = model(fbank, instr)
        outs, _ = _stream(model, fbank, instr)
    # the offset is common to every real pair, so the full graph hardly moves
    assert (full["event_logits"] - before["event_logits"]).abs().max().item() <= 1e-3
    # and the step follows it from the first chunk, when 4 of 5 cache slots are empty
    streamed = torch.stack([o["event_logits"] for o in outs], dim=1)
    assert (streamed - full["event_logits"]).abs().max().item() <= 1e-4
    ctc = torch.cat([o["ctc_logprobs"] for o in outs], dim=1)
    assert (ctc - full["ctc_logprobs"]).abs().max().item() <= 1e-4
    # an additive -100, as the step had, gives those slots the attention
    from export.model import masked_softmax

    scores = torch.tensor([[-300.0, -301.0, 0.0, 0.0]])
    valid = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    leaky = torch.softmax(scores + (1.0 - valid) * -100.0, dim=-1)
    assert leaky[0, 2:].sum().item() > 0.99
    strict = masked_softmax(scores, valid)
    assert strict[0, 2:].abs().sum().item() == 0.0
    assert torch.allclose(strict[0, :2], torch.softmax(scores[0, :2], dim=-1))


def test_masked_softmax_stays_in_range():
    from export.model import masked_softmax

    scores = torch.tensor([[5.0, -2.0, 80.0, 1.0], [-1e3, -1e3 - 2.0, 1e3, 3.0]])
    valid = torch.tensor([[1.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
    p = masked_softmax(scores, valid)
    assert torch.isfinite(p).all()
    assert torch.allclose(p.sum(-1), torch.ones(2))
    assert p[0, 2].item() == 0.0 and p[1, 2:].abs().sum().item() == 0.0
    assert torch.allclose(p[1, :2], torch.softmax(torch.tensor([0.0, -2.0]), dim=-1))


def test_default_student_size_and_bad_config():
    model = AimModel(ModelConfig(events=EVENTS))
    n = count_parameters(model)
    assert 2_000_000 < n <= 5_000_000, n
    with pytest.raises(ValueError, match="events is empty"):
        ModelConfig().validate()
    with pytest.raises(ValueError, match="chunk_frames=10"):
        ModelConfig(chunk_frames=10, events=EVENTS).validate()
