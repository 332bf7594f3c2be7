"""The GPT: shapes, causality, loss at init, overfitting, KV cache, attention variants."""
import math

import pytest
import torch

from conftest import tiny_gpt
from lm_steps.gpt import GPT, GPTConfig
from lm_steps.inference import attention_maps, new_cache, written_out_attention

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
    for block in m.transformer.h:  # each block's attention written out from its own q, k, v: the same output
        attn, h = block.attn, block.ln_1(x)
        q, k, v = attn.qkv(h)
        assert q.shape == (2, 4, 16, 8) and k.shape == v.shape == (2, attn.n_kv_head, 16, 8)
        reps = attn.n_head // attn.n_kv_head
        y, att = written_out_attention(q, k.repeat_interleave(reps, 1), v.repeat_interleave(reps, 1))
        torch.testing.assert_close(attn.c_proj(y.transpose(1, 2).reshape(2, 16, 32)), attn(h), atol=1e-5, rtol=1e-5)
        assert att.shape == (2, 4, 16, 16) and att.triu(1).abs().max() == 0
        x = block(x)
    q, k, v = torch.randn(3, 2, 4, 5, 8).unbind(0)
    y, att = written_out_attention(q, k, v)
    torch.testing.assert_close(y, torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(att.sum(-1), torch.ones(2, 4, 5), atol=1e-6, rtol=0)
    maps = attention_maps(m, idx)
    assert maps.shape == (2, 2, 4, 16, 16) and maps.triu(1).abs().max() == 0


def test_attention_maps_are_the_softmax_weights():
    """attention_maps equals softmax(q k^T / sqrt(hs)) under the causal mask, computed by hand from each
    layer's input; the model's mode is left as it was."""
    m = tiny(n_kv_head=2, pos_encoding="rope").train()
    idx = torch.randint(V, (2, 10), generator=torch.Generator().manual_seed(4))
    maps = attention_maps(m, idx)
    assert m.training
    m.eval()
    x = m.transformer.wte(idx)
    rope = (m.rope_cos[:10], m.rope_sin[:10])
    for i, block in enumerate(m.transformer.h):
        q, k, _ = block.attn.qkv(block.ln_1(x), rope)
        k = k.repeat_interleave(2, dim=1)  # (B, nh, T, hs)
        scores = (q @ k.transpose(-2, -1) / math.sqrt(8)).masked_fill(~torch.ones(10, 10, dtype=torch.bool).tril(),
                                                                      float("-inf"))
        torch.testing.assert_close(maps[i], scores.softmax(-1), atol=1e-6, rtol=1e-5)
        x = block(x, rope)


@pytest.mark.parametrize("pos", ["learned", "sinusoidal", "rope"])
def test_kv_cache_equals_recomputation_within_block(pos):
    m = tiny(pos_encoding=pos, n_kv_head=2).eval()
    idx = torch.randint(V, (2, 16))
    full, _ = m(idx)
    cache = new_cache(m, 2)
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
    cache = new_cache(m, 3)
    parts = [m(idx[:, :10], cache=cache, attention_mask=mask[:, :10])[0],
             m(idx[:, 10:13], cache=cache, attention_mask=mask[:, 10:13])[0]]
    parts += [m(idx[:, t:t + 1], cache=cache)[0] for t in range(13, 16)]  # new tokens without a mask are real
    chunked = torch.cat(parts, dim=1)
    for b, p in enumerate(prompts):
        alone, _ = m(p[None])
        torch.testing.assert_close(full[b, 16 - len(p):], alone[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(chunked[b, 16 - len(p):], alone[0], atol=1e-5, rtol=1e-5)
    assert torch.isfinite(full).all()  # padding queries look at themselves: no NaN anywhere
    maps = attention_maps(m, idx, attention_mask=mask)  # (n_layer, B, nh, T, T)
    real_queries = mask.bool()[None, :, None, :, None]
    pad_keys = ~mask.bool()[None, :, None, None, :]
    assert maps.masked_select(real_queries & pad_keys).abs().max() == 0
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 3, 4, 16), atol=1e-6, rtol=0)
    unmasked, _ = m(idx)
    torch.testing.assert_close(m(idx, attention_mask=torch.ones_like(mask))[0], unmasked, atol=0, rtol=0)
    # the written-out attention takes the same mask: each layer's weights are the masked softmax of its q, k
    pos, attn_mask = m.positions(idx, attention_mask=mask)
    assert torch.equal(pos[1, -9:], torch.arange(9)) and attn_mask.shape == (3, 1, 16, 16)


def test_one_mask_check_for_every_entry_point():
    """A mask with a value other than 0 and 1 (0.9999 too) gets the same refusal from the model's forward
    and from generate; a bool mask and a float 0/1 mask give the long mask's answer."""
    from lm_steps.sample import generate

    m = tiny().eval()
    idx = torch.randint(V, (2, 5), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    for bad in (mask * 0.9999, mask + 1, -mask):
        for call in (lambda: m(idx, attention_mask=bad), lambda: generate(m, idx, 2, attention_mask=bad),
                     lambda: generate(m, idx, 2, attention_mask=bad, use_cache=False)):
            with pytest.raises(ValueError, match="attention_mask must hold 1 for real tokens and 0 for padding"):
                call()
    want = m(idx, attention_mask=mask)[0]
    for same in (mask.bool(), mask.float(), mask.int()):
        torch.testing.assert_close(m(idx, attention_mask=same)[0], want, atol=0, rtol=0)
        assert torch.equal(generate(m, idx, 3, temperature=0, attention_mask=same),
                           generate(m, idx, 3, temperature=0, attention_mask=mask))


def test_bad_token_ids_are_named_once_at_generate_and_in_forward():
    from lm_steps.sample import generate

    m = tiny()
    with pytest.raises(ValueError, match=f"token id {V} is outside the vocabulary"):
        generate(m, torch.tensor([[1, V]]), 2)
    with pytest.raises(ValueError, match="token id -2 is outside the vocabulary"):
        m(torch.tensor([[1, -2]]))


def test_moved_names_still_work_with_a_warning():
    import lm_steps.gpt as G
    from lm_steps import inference

    m = tiny()
    with pytest.warns(DeprecationWarning, match="lm_steps.inference.KVCache"):
        assert G.KVCache is inference.KVCache
    with pytest.warns(DeprecationWarning, match="written_out_attention"):
        assert G.written_out_attention is inference.written_out_attention
    with pytest.warns(DeprecationWarning, match="new_cache"):
        assert isinstance(m.new_cache(2), inference.KVCache)
    idx = torch.randint(V, (1, 6))
    with pytest.warns(DeprecationWarning, match="attention_maps"):
        torch.testing.assert_close(m.attention_maps(idx), attention_maps(m, idx), atol=0, rtol=0)
    with pytest.raises(AttributeError):
        G.no_such_name  # noqa: B018


def test_same_logits_as_nanogpt():
    """nanoGPT's model.py (the anchor beside the shared data) with our weights gives our logits, bit for bit."""
    import importlib.util
    import os
    from pathlib import Path

    anchor = Path(os.environ.get("LM_STEPS_DATA", "../shared/data")).parent / "anchors" / "nanoGPT" / "model.py"
    if not anchor.is_file():
        pytest.skip(f"nanoGPT's model.py not found at {anchor}")
    spec = importlib.util.spec_from_file_location("nanogpt_model", anchor)
    nano = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nano)
    ours = tiny().eval()
    theirs = nano.GPT(nano.GPTConfig(block_size=16, vocab_size=V, n_layer=2, n_head=4, n_embd=32, dropout=0.0,
                                     bias=False)).eval()
    theirs.load_state_dict({k: v for k, v in ours.state_dict().items()}, strict=False)
    idx = torch.randint(V, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        their_logits, _ = theirs(idx, idx)  # with targets: the logits of every position
    torch.testing.assert_close(ours(idx)[0], their_logits, atol=0, rtol=0)
