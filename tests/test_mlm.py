"""The masked-LM encoder: shapes, bidirectional attention, padding invariance, BERT masking, bad input."""
from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from lm_steps.losses import IGNORE_INDEX, lm_loss
from lm_steps.gpt import GPT, CausalSelfAttention
from lm_steps.inference import written_out_attention
from lm_steps.mlm import MaskedLM, MLMConfig, mask_tokens, pad_batch, text_lines

CFG = MLMConfig(vocab_size=20, pad_id=18, mask_id=19, block_size=16, n_layer=2, n_head=2, n_embd=16)
ROPE = MLMConfig(vocab_size=20, pad_id=18, mask_id=19, block_size=16, n_layer=2, n_head=2, n_embd=16, pos_encoding="rope")
both_positions = pytest.mark.parametrize("cfg", [CFG, ROPE], ids=["learned", "rope"])


def tiny(seed: int = 0, cfg: MLMConfig = CFG) -> MaskedLM:
    return MaskedLM(cfg, generator=torch.Generator().manual_seed(seed)).eval()


def tokens(*shape, seed=0):
    return torch.randint(0, 18, shape, generator=torch.Generator().manual_seed(seed))


@both_positions
def test_shapes_and_loss_at_init(cfg):
    model = tiny(cfg=cfg)
    idx = tokens(3, 7)
    logits, loss = model(idx)
    assert logits.shape == (3, 7, CFG.vocab_size) and loss is None
    _, loss = model(idx, tokens(3, 7, seed=1))
    assert abs(loss.item() - math.log(CFG.vocab_size)) < 0.2


@both_positions
def test_position_zero_sees_later_positions(cfg):
    model = tiny(cfg=cfg)
    idx = tokens(1, 8)
    changed = idx.clone()
    changed[0, -1] = (idx[0, -1] + 1) % 18
    a, _ = model(idx)
    b, _ = model(changed)
    assert (a[0, 0] - b[0, 0]).abs().max() > 1e-4  # bidirectional: the last token reaches position 0
    assert (a[0, :-1] - b[0, :-1]).abs().max(dim=-1).values.min() > 1e-4  # and every other position


@both_positions
def test_padding_changes_nothing_at_real_positions(cfg):
    model = tiny(cfg=cfg)
    seqs = [tokens(1, 5, seed=1)[0].tolist(), tokens(1, 11, seed=2)[0].tolist(), tokens(1, 2, seed=3)[0].tolist()]
    idx, mask = pad_batch(seqs, CFG.pad_id)
    batched, _ = model(idx, attention_mask=mask)
    for b, seq in enumerate(seqs):
        alone, _ = model(torch.tensor([seq]))
        assert_close(batched[b, :len(seq)], alone[0], atol=1e-5, rtol=1e-5)
    # whatever sits in the padded positions does not matter either
    other = idx.masked_fill(mask == 0, 3)
    assert_close(model(other, attention_mask=mask)[0][mask.bool()], batched[mask.bool()], atol=1e-5, rtol=1e-5)


def test_without_the_mask_padding_leaks_in():
    model = tiny()
    idx, mask = pad_batch([tokens(1, 4, seed=1)[0].tolist(), tokens(1, 9, seed=2)[0].tolist()], CFG.pad_id)
    with_mask, _ = model(idx, attention_mask=mask)
    without, _ = model(idx)
    assert (with_mask[0, :4] - without[0, :4]).abs().max() > 1e-4


def test_self_attention_equals_written_out_attention_with_a_padding_mask():
    attn = CausalSelfAttention(CFG.encoder_config).eval()  # causal=False: attention both ways
    x = torch.randn(2, 6, CFG.n_embd, generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    q, k, v = attn.c_attn(x).split(CFG.n_embd, dim=2)
    split = lambda t: t.view(2, 6, CFG.n_head, -1).transpose(1, 2)  # noqa: E731  (B, nh, T, hs)
    allowed = mask.bool()[:, None, None, :].expand(2, 1, 6, 6)  # (B, 1, T, T): every query sees the real keys
    y, att = written_out_attention(split(q), split(k), split(v), allowed)
    expected = attn.c_proj(y.transpose(1, 2).reshape(2, 6, CFG.n_embd))
    assert_close(attn(x, None, allowed), expected, atol=1e-6, rtol=1e-5)
    assert_close(attn(x), attn(x, None, torch.ones(6, 6, dtype=torch.bool)), atol=1e-6, rtol=1e-5)  # no mask: all
    assert torch.all(att[1, :, :, 3:] == 0)  # no weight on padding
    assert torch.all(att[0, :, 0, 1:] > 0)  # position 0 attends to later positions


def test_the_encoder_is_the_gpt_configured_not_causal():
    model = tiny()
    assert isinstance(model, GPT) and model.config == CFG.encoder_config and not model.config.causal
    assert model.mlm_config is CFG and CFG.gpt_config.causal
    assert all(not block.attn.causal for block in model.transformer.h)
    with pytest.warns(DeprecationWarning, match="SelfAttention"):
        from lm_steps.mlm import SelfAttention
    old = SelfAttention(CFG).eval()
    old.load_state_dict(model.transformer.h[0].attn.state_dict())
    x = torch.randn(2, 6, CFG.n_embd, generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    assert_close(old(x, attention_mask=mask), model.transformer.h[0].attn(x, None, mask.bool()[:, None, None, :]),
                 atol=0, rtol=0)


def test_loss_ignores_padding_even_with_targets_there():
    model = tiny()
    idx, mask = pad_batch([tokens(1, 6, seed=1)[0].tolist(), tokens(1, 3, seed=2)[0].tolist()], CFG.pad_id)
    targets = tokens(2, 6, seed=5)  # a target at every position, padding included
    logits, loss = model(idx, targets, attention_mask=mask)
    expected = lm_loss(logits, targets.masked_fill(mask == 0, IGNORE_INDEX))
    assert_close(loss, expected, atol=1e-6, rtol=0)
    assert abs(loss.item() - lm_loss(logits, targets).item()) > 1e-4  # counting padding would change it


def test_masking_proportions_from_a_generator():
    idx = tokens(64, 500, seed=7)
    mask = torch.ones_like(idx)
    mask[:, 400:] = 0  # the last 100 positions are padding
    idx = idx.masked_fill(mask == 0, CFG.pad_id)
    inputs, targets = mask_tokens(idx, mask, CFG, generator=torch.Generator().manual_seed(1))
    chosen = targets != IGNORE_INDEX
    n_real = int(mask.sum())
    assert not chosen[:, 400:].any() and torch.equal(inputs[:, 400:], idx[:, 400:])  # padding never chosen
    assert torch.equal(targets[chosen], idx[chosen])  # targets are the original tokens
    assert torch.equal(inputs[~chosen], idx[~chosen])  # nothing else changes
    n = int(chosen.sum())
    assert abs(n / n_real - 0.15) < 0.005  # 25,600 real tokens: 4 standard deviations is 0.009
    masked = (inputs == CFG.mask_id) & chosen
    kept = (inputs == idx) & chosen
    swapped = chosen & ~masked & ~kept
    assert abs(masked.sum().item() / n - 0.8) < 0.02
    assert abs(swapped.sum().item() / n - 0.1 * 17 / 18) < 0.015  # a random token equals the original 1 time in 18
    assert abs(kept.sum().item() / n - (0.1 + 0.1 / 18)) < 0.015
    assert not ((inputs[swapped] == CFG.pad_id) | (inputs[swapped] == CFG.mask_id)).any()  # replacements are ordinary
    again = mask_tokens(idx, mask, CFG, generator=torch.Generator().manual_seed(1))
    other = mask_tokens(idx, mask, CFG, generator=torch.Generator().manual_seed(2))
    assert torch.equal(again[0], inputs) and torch.equal(again[1], targets)
    assert not torch.equal(other[1], targets)


def test_every_row_gets_a_blank_and_specials_are_never_chosen():
    idx, mask = pad_batch([[1, 2], [3], [4, CFG.mask_id, 5]], CFG.pad_id)
    for seed in range(20):
        _, targets = mask_tokens(idx, mask, CFG, generator=torch.Generator().manual_seed(seed))
        assert (targets != IGNORE_INDEX).any(dim=1).all()
        assert targets[2, 1] == IGNORE_INDEX and (targets[mask == 0] == IGNORE_INDEX).all()


def test_pad_batch():
    idx, mask = pad_batch([[5, 6, 7], torch.tensor([8])], pad_id=0)
    assert torch.equal(idx, torch.tensor([[5, 6, 7], [8, 0, 0]]))
    assert torch.equal(mask, torch.tensor([[1, 1, 1], [1, 0, 0]]))
    with pytest.raises(ValueError, match="at least one"):
        pad_batch([], 0)
    with pytest.raises(ValueError, match="sequence 1 is empty"):
        pad_batch([[1], []], 0)


def test_text_lines():
    assert text_lines("  ab \n\nabcdef\nabc\n", min_len=2, max_len=4) == ["ab", "abc"]


def test_tied_weights_and_gpt2_names():
    model = tiny()
    assert model.transformer.wte.weight is model.lm_head.weight
    names = {n for n, _ in model.named_parameters()}
    assert {"transformer.wpe.weight", "transformer.h.0.attn.c_attn.weight", "transformer.h.1.mlp.c_proj.weight",
            "transformer.ln_f.weight", "transformer.wte.weight"} <= names
    assert model.num_params() == sum(p.numel() for p in set(model.parameters()))
    rope = tiny(cfg=ROPE)
    assert "transformer.wpe.weight" not in dict(rope.named_parameters())
    assert rope.num_params() == model.num_params() - CFG.block_size * CFG.n_embd


def test_rope_encoder_depends_on_relative_positions_only():
    # with rotary positions and no padding, shifting a whole sequence right (behind padding) changes nothing
    model = tiny(cfg=ROPE)
    seq = tokens(1, 6, seed=4)
    idx = torch.cat([torch.full((1, 3), ROPE.pad_id), seq], dim=1)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1]])
    assert_close(model(idx, attention_mask=mask)[0][0, 3:], model(seq)[0][0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kw, match", [(dict(pad_id=20), "pad_id=20"), (dict(mask_id=-1), "mask_id=-1"),
                                       (dict(mask_id=18), "must differ"), (dict(n_embd=15), "divisible"),
                                       (dict(pos_encoding="sinusoidal"), "'learned' or 'rope'"),
                                       (dict(vocab_size=2, pad_id=0, mask_id=1), "no ordinary token")])
def test_config_errors(kw, match):
    base = dict(vocab_size=20, pad_id=18, mask_id=19, n_embd=16, n_head=2)
    with pytest.raises(ValueError, match=match):
        MLMConfig(**{**base, **kw})


def test_bad_input_errors():
    model = tiny()
    idx = tokens(2, 5)
    with pytest.raises(ValueError, match="block_size=16"):
        model(tokens(1, 17))
    with pytest.raises(ValueError, match=r"attention_mask must have the shape of idx, \(B, T\) = \(2, 5\)"):
        model(idx, attention_mask=torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="1 for real tokens and 0"):
        model(idx, attention_mask=torch.full((2, 5), 2))
    with pytest.raises(ValueError, match="1 for real tokens and 0.*got 0.99"):  # not rounded to padding
        model(idx, attention_mask=torch.full((2, 5), 0.9999))
    with pytest.raises(ValueError, match="at least one real token"):
        model(idx, attention_mask=torch.tensor([[1, 1, 0, 0, 0], [0, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="no position to score"):
        model(idx, torch.full((2, 5), IGNORE_INDEX))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model(idx[0])
    with pytest.raises(ValueError, match="token id 20 is outside"):
        model(torch.tensor([[1, 20]]))
    with pytest.raises(ValueError, match="mask_prob"):
        mask_tokens(idx, None, CFG, mask_prob=1.5)


def test_one_batch_overfits():
    torch.manual_seed(0)
    model = MaskedLM(CFG, generator=torch.Generator().manual_seed(0))
    idx, mask = pad_batch([tokens(1, 10, seed=1)[0].tolist(), tokens(1, 6, seed=2)[0].tolist()], CFG.pad_id)
    inputs, targets = mask_tokens(idx, mask, CFG, generator=torch.Generator().manual_seed(0), mask_prob=0.5)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        _, loss = model(inputs, targets, attention_mask=mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


@both_positions
def test_same_initialisation_as_the_gpt(cfg):
    from lm_steps.gpt import GPT

    encoder = MaskedLM(cfg, generator=torch.Generator().manual_seed(3))
    gpt = GPT(cfg.gpt_config, generator=torch.Generator().manual_seed(3))
    ours, theirs = encoder.state_dict(), gpt.state_dict()
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name
