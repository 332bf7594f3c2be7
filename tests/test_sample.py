"""Sampling: top-k / top-p / temperature, KV-cached generation, beam search, prompts."""
import pytest
import torch

from conftest import gen, tiny_gpt
from lm_steps.bigram import CountingBigram
from lm_steps.gpt import GPT, GPTConfig
from lm_steps.inference import beam_search, left_pad
from lm_steps.sample import complete, generate, sample_next
from lm_steps.tokenizers import CharTokenizer

V = 65



def tiny(**kw) -> GPT:
    m = tiny_gpt(V, **{"block_size": 12, **kw})
    with torch.no_grad():  # sharper than the near-uniform init, so greedy choices are well separated
        m.lm_head.weight.mul_(20)
    return m


def test_top_k_keeps_exactly_k():
    logits = torch.randn(4, V, generator=torch.Generator().manual_seed(0))
    allowed = logits.topk(5, dim=-1).indices
    g = torch.Generator().manual_seed(1)
    draws = torch.cat([sample_next(logits, top_k=5, generator=g) for _ in range(400)], dim=1)  # (4, 400)
    for row in range(4):
        assert set(draws[row].tolist()) == set(allowed[row].tolist())


def test_top_p_keeps_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    g = torch.Generator().manual_seed(0)
    for p, keep in [(0.5, {0}), (0.6, {0, 1}), (0.8, {0, 1}), (0.81, {0, 1, 2}), (1.0, {0, 1, 2, 3})]:
        draws = {sample_next(probs.log(), top_p=p, generator=g).item() for _ in range(300)}
        assert draws == keep, (p, draws)


def test_temperature_zero_is_greedy_and_generator_determinism():
    m = tiny()
    idx = torch.randint(V, (2, 5), generator=torch.Generator().manual_seed(0))
    greedy = idx
    for _ in range(6):
        greedy = torch.cat([greedy, m(greedy)[0][:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(generate(m, idx, 6, temperature=0), greedy)
    a = generate(m, idx, 20, generator=torch.Generator().manual_seed(5))
    b = generate(m, idx, 20, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_cached_generation_equals_recomputation_within_block(pos):
    m = tiny(pos_encoding=pos)
    idx = torch.randint(V, (3, 4), generator=torch.Generator().manual_seed(0))
    a = generate(m, idx, 8, generator=torch.Generator().manual_seed(1), use_cache=True)
    b = generate(m, idx, 8, generator=torch.Generator().manual_seed(1), use_cache=False)
    assert torch.equal(a, b)


def run_recording_logits(m, idx, n, **kw):
    """``generate(m, idx, n, **kw)`` and the logits (n, B, V) each of its steps sampled from."""
    seen = []
    handle = m.register_forward_hook(lambda mod, args, out: seen.append(out[0][:, -1].clone()))
    try:
        out = generate(m, idx, n, **kw)
    finally:
        handle.remove()
    return out, torch.stack(seen)


@pytest.mark.parametrize("prompt_len", [5, 20])  # shorter and longer than the block
@pytest.mark.parametrize("n_layer", [1, 2, 3])
@pytest.mark.parametrize("pos", ["learned", "sinusoidal", "rope"])
def test_cache_changes_speed_only_at_any_length(pos, n_layer, prompt_len):
    """Every step's logits, with and without the cache, equal the model run on the last block_size
    tokens, up to 45 tokens past the block."""
    m = tiny(pos_encoding=pos, n_layer=n_layer).eval()
    bs = m.block_size
    idx = torch.randint(V, (2, prompt_len), generator=torch.Generator().manual_seed(0))
    n = bs + 45 - min(prompt_len, bs)
    out, cached = run_recording_logits(m, idx, n, use_cache=True, generator=torch.Generator().manual_seed(1))
    out_nc, recomputed = run_recording_logits(m, idx, n, use_cache=False, generator=torch.Generator().manual_seed(1))
    assert cached.shape == recomputed.shape == (n, 2, V)
    with torch.no_grad():
        window = torch.stack([m(out[:, max(0, t - bs):t])[0][:, -1] for t in range(prompt_len, out.size(1))])
    torch.testing.assert_close(cached, window, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(recomputed, window, atol=1e-5, rtol=1e-5)
    assert torch.equal(out, out_nc) and torch.equal(out[:, :prompt_len], idx)


def test_beam_search():
    m = tiny()
    idx = torch.randint(V, (1, 4), generator=gen(0))
    assert torch.equal(beam_search(m, idx, 1, 10), generate(m, idx, 10, temperature=0))
    best = beam_search(m, idx, 4, 6)

    def logp(seq):
        lp = torch.log_softmax(m(seq[:, :-1])[0].float(), -1)
        return lp[0, 3:].gather(-1, seq[0, 4:, None]).sum().item()

    assert best.shape == (1, 10)
    assert logp(best) >= logp(beam_search(m, idx, 1, 6)) - 1e-5
    with pytest.raises(ValueError, match="one prompt"):
        beam_search(m, idx.repeat(2, 1), 2, 3)


def test_beam_search_eos_and_length_penalty():
    """A bigram where stopping at once (p 0.4) beats any single longer path in total log-probability,
    while the path 1 2 2 2 2 2 (p 0.3 x 0.9^4 = 0.197) wins per token: the length penalty picks."""
    counts = torch.tensor([[1.0, 1.0, 1.0],    # 0 = eos
                           [40.0, 30.0, 30.0],  # after 1: eos 0.4, 1 0.3, 2 0.3
                           [5.0, 5.0, 90.0]])   # after 2: mostly 2
    m, prompt = CountingBigram(counts), torch.tensor([[1]])
    assert beam_search(m, prompt, 3, 5, eos_token=0, length_penalty=0.0).tolist() == [[1, 0]]
    assert beam_search(m, prompt, 3, 5, eos_token=0, length_penalty=1.0).tolist() == [[1, 2, 2, 2, 2, 2]]
    assert beam_search(m, prompt, 3, 5).tolist() == [[1, 2, 2, 2, 2, 2]]  # no eos: every sequence is 5 long


def test_generate_restores_the_train_mode():
    m = tiny(dropout=0.5)
    idx = torch.randint(V, (2, 3), generator=gen(0))
    m.train()
    a = generate(m, idx, 6, generator=gen(1))
    assert m.training
    b = generate(m, idx, 6, generator=gen(1))
    assert torch.equal(a, b)  # dropout was off inside: the same generator, the same tokens
    m.eval()
    generate(m, idx, 2, generator=gen(1))
    assert not m.training


def test_prompts_cropped_empty_and_unknown():
    m = tiny()
    long = torch.randint(V, (1, 30), generator=torch.Generator().manual_seed(0))
    out = generate(m, long, 3, temperature=0)
    assert torch.equal(out[:, :30], long)
    assert torch.equal(out[:, 30:], generate(m, long[:, -m.block_size:], 3, temperature=0)[:, -3:])
    empty = generate(m, torch.zeros(2, 0, dtype=torch.long), 4, start_token=7, temperature=0)
    assert empty.shape == (2, 5) and (empty[:, 0] == 7).all()
    tok = CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?'\n")
    assert tok.vocab_size <= V
    text = complete(m, tok, "", 5, temperature=0)
    assert len(text) == 6 and text[0] == tok.chars[0]
    with pytest.raises(ValueError, match=r"'é', '€'"):
        complete(m, tok, "café €", 5)


def test_left_pad():
    idx, mask = left_pad([[5, 6, 7], torch.tensor([8]), (9, 10)], pad_id=3)
    assert torch.equal(idx, torch.tensor([[5, 6, 7], [3, 3, 8], [3, 9, 10]]))
    assert torch.equal(mask, torch.tensor([[1, 1, 1], [0, 0, 1], [0, 1, 1]]))
    assert idx.dtype == mask.dtype == torch.long


PROMPT_LENGTHS = [3, 9, 1, 6]  # block 12: the batch runs past the block, the short rows later alone


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("pos", ["learned", "sinusoidal", "rope"])
def test_batched_prompts_equal_each_prompt_alone(pos, use_cache):
    """Left-padded prompts with an attention mask: every step's logits for row b, and the greedy
    tokens, equal generating from prompt b alone."""
    m = tiny(pos_encoding=pos, n_layer=2).eval()
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(V, (n,), generator=g) for n in PROMPT_LENGTHS]
    idx, mask = left_pad(prompts, pad_id=5)
    n = 16
    out, logits = run_recording_logits(m, idx, n, temperature=0, use_cache=use_cache, attention_mask=mask)
    assert out.shape == (len(prompts), idx.size(1) + n) and torch.equal(out[:, :idx.size(1)], idx)
    for b, prompt in enumerate(prompts):
        alone, alone_logits = run_recording_logits(m, prompt[None], n, temperature=0, use_cache=use_cache)
        torch.testing.assert_close(logits[:, b], alone_logits[:, 0], atol=1e-5, rtol=1e-5)
        assert torch.equal(out[b, -n:], alone[0, -n:])
    # what the padding holds does not matter
    other = generate(m, torch.where(mask == 1, idx, 11), n, temperature=0, use_cache=use_cache, attention_mask=mask)
    assert torch.equal(other[:, -n:], out[:, -n:])


def test_without_the_mask_padding_changes_the_result():
    """The mask is what makes the equality hold: the same padded batch without it differs."""
    m = tiny().eval()
    g = torch.Generator().manual_seed(0)
    idx, mask = left_pad([torch.randint(V, (n,), generator=g) for n in PROMPT_LENGTHS])
    _, with_mask = run_recording_logits(m, idx, 4, temperature=0, attention_mask=mask)
    _, without = run_recording_logits(m, idx, 4, temperature=0)
    assert (with_mask[:, 0] - without[:, 0]).abs().max() > 1e-2  # row 0 is padded
    torch.testing.assert_close(with_mask[:, 1], without[:, 1], atol=1e-5, rtol=1e-5)  # row 1 is not


def test_a_tiny_temperature_is_greedy_and_nan_logits_are_named():
    logits = torch.tensor([[0.5, 3.0, -1.0], [2.0, 0.0, 1.0]])
    for t in (1e-46, 5e-324):  # below float32's smallest number: once 0 / 0 = NaN
        assert sample_next(logits, temperature=t, generator=gen(0)).tolist() == [[1], [0]]
    bad = logits.clone()
    bad[1, 2] = float("nan")
    for kw in (dict(), dict(top_k=2), dict(top_p=0.9), dict(temperature=0)):
        with pytest.raises(ValueError, match="row 1 of the logits has a NaN"):
            sample_next(bad, generator=gen(0), **kw)


def test_the_uncached_loop_is_what_generate_runs_without_a_cache():
    """generate(use_cache=False) is the small loop: crop to the block, forward, sample from the last logits, append."""
    m = tiny()
    idx = torch.randint(V, (2, 3), generator=gen(0))
    g, ours = gen(1), idx
    with torch.no_grad():
        for _ in range(20):  # past the block (12): the crop matters
            logits, _ = m(ours[:, -m.block_size:])
            ours = torch.cat([ours, sample_next(logits[:, -1], generator=g)], dim=1)
    assert torch.equal(generate(m, idx, 20, generator=gen(1), use_cache=False), ours)
    assert torch.equal(generate(m, idx, 20, generator=gen(1)), ours)  # the cache changes the speed only
