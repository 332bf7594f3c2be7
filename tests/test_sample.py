"""Sampling: top-k / top-p / temperature, KV-cached generation, beam search, prompts."""
import pytest
import torch

from lm_steps.gpt import GPT, GPTConfig
from lm_steps.sample import beam_search, complete, generate, sample_next
from lm_steps.tokenizers import CharTokenizer

V = 65



def tiny(**kw) -> GPT:
    cfg = GPTConfig(**{**dict(vocab_size=V, block_size=12, n_layer=2, n_head=4, n_embd=32), **kw})
    m = GPT(cfg, generator=torch.Generator().manual_seed(0))
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


def test_rope_cache_rolls_past_the_block_exactly():
    """A rotary cache drops its oldest position: the same sliding window recomputation uses."""
    m = tiny(pos_encoding="rope")
    idx = torch.randint(V, (2, 20), generator=torch.Generator().manual_seed(0))  # longer than the block too
    a = generate(m, idx, 30, temperature=0, use_cache=True)
    b = generate(m, idx, 30, temperature=0, use_cache=False)
    assert torch.equal(a, b)
    assert a.shape == (2, 50) and torch.equal(a[:, :20], idx)


@pytest.mark.parametrize("pos", ["learned", "sinusoidal"])
def test_absolute_cache_refills_past_the_block(pos):
    """With absolute positions the cache is refilled from the last block_size // 2 tokens when full;
    every step's logits equal recomputing that window."""
    m = tiny(pos_encoding=pos).eval()
    bs = m.block_size
    prompt = torch.randint(V, (2, 5), generator=torch.Generator().manual_seed(0))
    out = generate(m, prompt, 25, use_cache=True, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)  # replay the same draws from recomputed windows
    start = 0  # the window the cached model sees before each new token
    for t in range(prompt.size(1), out.size(1)):
        if t - start > bs:
            start = t - bs // 2
        logits, _ = m(out[:, start:t])
        torch.testing.assert_close(out[:, t:t + 1], sample_next(logits[:, -1], generator=g), atol=0, rtol=0)
    # within the first block both paths agree token for token
    assert torch.equal(out[:, :bs + 1], generate(m, prompt, bs + 1 - 5, use_cache=False,
                                                generator=torch.Generator().manual_seed(1)))


def test_beam_search():
    m = tiny()
    idx = torch.randint(V, (1, 4), generator=torch.Generator().manual_seed(0))
    assert torch.equal(beam_search(m, idx, 1, 10), generate(m, idx, 10, temperature=0))
    best = beam_search(m, idx, 4, 6)

    def logp(seq):
        lp = torch.log_softmax(m(seq[:, :-1])[0].float(), -1)
        return lp[0, 3:].gather(-1, seq[0, 4:, None]).sum().item()

    assert best.shape == (1, 10)
    assert logp(best) >= logp(beam_search(m, idx, 1, 6)) - 1e-5
    with pytest.raises(ValueError, match="one prompt"):
        beam_search(m, idx.repeat(2, 1), 2, 3)
    eos = int(best[0, 5])  # a token the search likes early: with eos it ends sequences
    short = beam_search(m, idx, 4, 6, eos_token=eos, length_penalty=1.0)
    assert short.size(1) <= 10


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
