"""The GPT: shapes, causality, loss at init, overfitting, KV cache, attention variants."""
import math

import pytest
import torch

from conftest import tiny_gpt
from lm_steps.gpt import GPT, GPTConfig, written_out_attention

V = 65



def tiny(**kw) -> GPT:
    return tiny_gpt(V, **kw)


def test_shapes_and_names():
    m = tiny()
    idx = torch.randint(V, (3, 10))
    logits, loss = m(idx)
    assert logits.shape == (3, 10, V) and loss is None
    names = set(dict(m.named_parameters()))
    for n in ["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight",
              "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_proj.weight",
              "transformer.h.1.mlp.c_fc.weight", "transformer.h.1.mlp.c_proj.weight", "transformer.ln_f.weight"]:
        assert n in names, n
    assert m.block_size == 16
    with pytest.raises(ValueError, match="block_size"):
        m(torch.randint(V, (1, 17)))


@pytest.mark.parametrize("bad, match", [
    (dict(n_embd=30), "divisible by n_head"), (dict(n_kv_head=3), "must divide n_head"),
    (dict(pos_encoding="alibi"), "pos_encoding"), (dict(ffn="tanh"), "ffn"), (dict(dropout=1.0), "dropout"),
    (dict(n_embd=24, n_head=8, pos_encoding="rope"), "even head size")])
def test_invalid_configs(bad, match):
    with pytest.raises(ValueError, match=match):
        GPTConfig(**{**dict(vocab_size=V, block_size=16, n_layer=2, n_head=4, n_embd=32), **bad})


@pytest.mark.parametrize("pos", ["learned", "sinusoidal", "rope"])
def test_causality(pos):
    m = tiny(pos_encoding=pos).eval()
    idx = torch.randint(V, (2, 12))
    changed = idx.clone()
    changed[:, 7] = (changed[:, 7] + 1) % V
    a, _ = m(idx)
    b, _ = m(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7], atol=0, rtol=0)
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_loss_at_init_near_uniform():
    m = tiny()
    g = torch.Generator().manual_seed(1)
    _, loss = m(torch.randint(V, (8, 16), generator=g), torch.randint(V, (8, 16), generator=g))
    assert abs(loss.item() - math.log(V)) < 0.2


def test_one_batch_overfits():
    m = tiny()
    g = torch.Generator().manual_seed(2)
    x, y = torch.randint(V, (2, 8), generator=g), torch.randint(V, (2, 8), generator=g)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    for _ in range(60):
        _, loss = m(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1


def test_init_is_deterministic_and_scaled():
    a, b = tiny(), tiny()
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, atol=0, rtol=0)
    big = tiny(n_layer=8, n_embd=128)
    std = big.transformer.h[0].mlp.c_proj.weight.std().item()
    assert abs(std - 0.02 / math.sqrt(16)) < 0.001
    assert abs(big.transformer.h[0].mlp.c_fc.weight.std().item() - 0.02) < 0.001


def test_weight_tying_and_param_count():
    m = tiny()
    assert m.transformer.wte.weight is m.lm_head.weight
    untied = tiny(tie_weights=False)
    assert untied.transformer.wte.weight is not untied.lm_head.weight
    assert untied.num_params() - m.num_params() == V * 32
    assert m.num_params(exclude_positions=True) == m.num_params() - 16 * 32


@pytest.mark.parametrize("kv", [None, 2, 1])
def test_written_out_attention_equals_sdpa(kv):
    m = tiny(n_kv_head=kv).eval()
    idx = torch.randint(V, (2, 16))
    x = torch.randn(2, 16, 32)
    for block in m.transformer.h:  # each block, its attention written out or on SDPA: the same output
        fast = block(x)
        slow, att = block(x, need_weights=True)
        torch.testing.assert_close(slow, fast, atol=1e-5, rtol=1e-5)
        assert att.shape == (2, 4, 16, 16) and att.triu(1).abs().max() == 0
        x = fast
    q, k, v = torch.randn(3, 2, 4, 5, 8).unbind(0)
    y, att = written_out_attention(q, k, v)
    torch.testing.assert_close(y, torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(att.sum(-1), torch.ones(2, 4, 5), atol=1e-6, rtol=0)
    maps = m.attention_maps(idx)
    assert maps.shape == (2, 2, 4, 16, 16) and maps.triu(1).abs().max() == 0


@pytest.mark.parametrize("pos", ["learned", "sinusoidal", "rope"])
def test_kv_cache_equals_recomputation_within_block(pos):
    m = tiny(pos_encoding=pos, n_kv_head=2).eval()
    idx = torch.randint(V, (2, 16))
    full, _ = m(idx)
    cache = m.new_cache(2)
    parts = [m(idx[:, :5], cache=cache)[0], m(idx[:, 5:9], cache=cache)[0]]  # prefill, then a chunk
    parts += [m(idx[:, t:t + 1], cache=cache)[0] for t in range(9, 16)]  # then one token at a time
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pos, ffn, kv", [
    ("learned", "gelu", None), ("sinusoidal", "relu", 1), ("rope", "swiglu", 2),
    ("rope", "gelu", 1), ("learned", "swiglu", 2), ("sinusoidal", "gelu", None), ("rope", "relu", None)])
def test_each_variant_trains_a_step(pos, ffn, kv):
    m = tiny(pos_encoding=pos, ffn=ffn, n_kv_head=kv, dropout=0.1)
    g = torch.Generator().manual_seed(3)
    x, y = torch.randint(V, (4, 16), generator=g), torch.randint(V, (4, 16), generator=g)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    before = m.eval()(x, y)[1].item()
    _, loss = m.train()(x, y)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    opt.step()
    assert m.eval()(x, y)[1].item() < before


@pytest.mark.parametrize("pos", ["learned", "sinusoidal", "rope"])
def test_attention_mask_makes_a_padded_row_equal_its_prompt_alone(pos):
    """forward with attention_mask: at real positions, the logits of each left-padded row equal the
    prompt's own; the same through the cache, filled in chunks."""
    m = tiny(pos_encoding=pos, n_kv_head=2).eval()
    lengths = [16, 9, 4]
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(V, (n,), generator=g) for n in lengths]
    idx = torch.stack([torch.cat([torch.full((16 - len(p),), 7), p]) for p in prompts])  # (3, 16)
    mask = (torch.arange(16)[None, :] >= 16 - torch.tensor(lengths)[:, None]).long()  # (3, 16)
    full, _ = m(idx, attention_mask=mask)
    cache = m.new_cache(3)
    parts = [m(idx[:, :10], cache=cache, attention_mask=mask[:, :10])[0],
             m(idx[:, 10:13], cache=cache, attention_mask=mask[:, 10:13])[0]]
    parts += [m(idx[:, t:t + 1], cache=cache)[0] for t in range(13, 16)]  # new tokens without a mask are real
    chunked = torch.cat(parts, dim=1)
    for b, p in enumerate(prompts):
        alone, _ = m(p[None])
        torch.testing.assert_close(full[b, 16 - len(p):], alone[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(chunked[b, 16 - len(p):], alone[0], atol=1e-5, rtol=1e-5)
    assert torch.isfinite(full).all()  # padding queries look at themselves: no NaN anywhere
    maps = m.attention_maps(idx, attention_mask=mask)  # (n_layer, B, nh, T, T)
    real_queries = mask.bool()[None, :, None, :, None]
    pad_keys = ~mask.bool()[None, :, None, None, :]
    assert maps.masked_select(real_queries & pad_keys).abs().max() == 0
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 3, 4, 16), atol=1e-6, rtol=0)
    unmasked, _ = m(idx)
    torch.testing.assert_close(m(idx, attention_mask=torch.ones_like(mask))[0], unmasked, atol=0, rtol=0)
    # the written-out attention takes the same mask: the hidden states agree with the SDPA path
    sdpa, _ = m._hidden(idx, cache=None, attention_mask=mask)
    written, weights = m._hidden(idx, cache=None, attention_mask=mask, need_weights=True)
    torch.testing.assert_close(written, sdpa, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.stack(weights), maps, atol=0, rtol=0)
