"""Stream evaluation: sliding windows and chunks against brute force, metrics, checkpoint folders."""
from __future__ import annotations

import math

import pytest
import torch

from lm_steps.checkpoint import save_checkpoint
from lm_steps.evaluation import distinct_ngrams, evaluate, evaluate_checkpoints, evaluate_stream, nll_metrics, token_nlls
from lm_steps.gpt import GPT, GPTConfig

V = 23


class WindowModel(torch.nn.Module):
    """A causal model that reads only the last ``k`` tokens (a causal convolution)."""

    def __init__(self, k: int, block_size: int):
        super().__init__()
        self.k, self.block_size = k, block_size
        g = torch.Generator().manual_seed(0)
        self.emb = torch.nn.Parameter(torch.randn(V, 8, generator=g))
        self.conv = torch.nn.Parameter(torch.randn(k, 8, V, generator=g) * 0.5)

    def forward(self, idx, targets=None):
        x = torch.nn.functional.pad(self.emb[idx], (0, 0, self.k - 1, 0))  # (B, T + k - 1, 8)
        T = idx.size(1)
        logits = sum(x[:, j:j + T] @ self.conv[j] for j in range(self.k))  # (B, T, V)
        return logits, None


@pytest.fixture(scope="module")
def gpt():
    return GPT(GPTConfig(vocab_size=V, block_size=12, n_layer=2, n_head=2, n_embd=16),
               generator=torch.Generator().manual_seed(0)).eval()


@pytest.fixture(scope="module")
def stream():
    return torch.randint(0, V, (41,), generator=torch.Generator().manual_seed(3))


def brute_force(model, tokens, context):
    """NLL of each target ``tokens[j + 1]`` from exactly ``context[j]`` preceding tokens, one call each."""
    out = []
    for j in range(len(tokens) - 1):
        ctx = tokens[j + 1 - int(context[j]):j + 1]
        logits, _ = model(ctx[None])
        out.append(torch.nn.functional.cross_entropy(logits[0, -1:], tokens[j + 1:j + 2]))
    return torch.stack(out)


@pytest.mark.parametrize("stride,batch_size", [(1, 4), (3, 1), (5, 4), (12, 1), (12, 3)])
def test_sliding_window_equals_brute_force(gpt, stream, stride, batch_size):
    nll, context = token_nlls(gpt, stream, stride=stride, batch_size=batch_size)
    assert nll.shape == context.shape == (len(stream) - 1,)
    T = gpt.block_size
    # every token scored once, with all the context it could have in the first window,
    # and at least block_size - stride tokens of context after it
    torch.testing.assert_close(context[:T], torch.arange(1, T + 1), atol=0, rtol=0)
    assert int(context[T:].min()) >= T - stride + 1 and int(context.max()) <= T
    with torch.no_grad():
        torch.testing.assert_close(nll, brute_force(gpt, stream, context), atol=1e-5, rtol=1e-5)
    if stride == 1:  # stride 1 = every token with the full window: the per-position ideal
        full = torch.minimum(torch.arange(1, len(stream)), torch.tensor(T))
        torch.testing.assert_close(context, full, atol=0, rtol=0)


def test_chunks_are_non_overlapping_windows(gpt, stream):
    nll, context = token_nlls(gpt, stream)  # stride = block_size
    T = gpt.block_size
    expected = torch.arange(len(stream) - 1) % T + 1  # context restarts at every chunk
    torch.testing.assert_close(context, expected, atol=0, rtol=0)
    chunked = evaluate_stream(gpt, stream)
    sliding = evaluate_stream(gpt, stream, stride=4)
    assert chunked["min_context"] == 1 and sliding["min_context"] >= T - 4
    assert chunked["n_tokens"] == sliding["n_tokens"] == len(stream) - 1


def test_limited_receptive_field_gives_the_same_answer_at_any_stride(stream):
    model = WindowModel(k=4, block_size=10)  # reads 4 tokens; any stride <= 10 - 4 + 1 gives it all
    reference = evaluate_stream(model, stream, stride=1)["loss"]
    for stride in (2, 5, 7):
        assert math.isclose(evaluate_stream(model, stream, stride=stride)["loss"], reference, rel_tol=1e-6)
    assert not math.isclose(evaluate_stream(model, stream, stride=10)["loss"], reference, rel_tol=1e-6)


def test_metrics_bits_per_byte_and_word_ppl():
    m = nll_metrics(100.0, 50, n_bytes=200, n_words=40)
    assert math.isclose(m["loss"], 2.0) and math.isclose(m["ppl"], math.exp(2.0))
    assert math.isclose(m["bits_per_byte"], 100.0 / math.log(2) / 200)
    assert math.isclose(m["word_ppl"], math.exp(100.0 / 40))
    assert "word_ppl" not in nll_metrics(1.0, 1)


def test_stream_loss_agrees_with_example_evaluate(gpt, stream):
    T = gpt.block_size
    x = torch.stack([stream[i:i + T] for i in range(0, 36, T)])  # (3, T) non-overlapping chunks
    y = torch.stack([stream[i + 1:i + T + 1] for i in range(0, 36, T)])  # (3, T)
    assert math.isclose(evaluate(gpt, x, y)["loss"], evaluate_stream(gpt, stream[:37])["loss"], rel_tol=1e-5)


def test_restores_train_mode_and_checks_arguments(gpt, stream):
    gpt.train()
    token_nlls(gpt, stream, stride=6)
    assert gpt.training
    gpt.eval()
    with pytest.raises(ValueError, match="stride"):
        token_nlls(gpt, stream, stride=13)


def test_evaluate_checkpoint_folder(tmp_path, gpt, stream):
    for step in (30, 10, 20):
        torch.manual_seed(step)
        model = GPT(gpt.config)
        save_checkpoint(tmp_path / f"ckpt_{step:03d}.pt", model=model, step=step)
    rows = evaluate_checkpoints(tmp_path, stream, stride=6, progress=False)
    assert [r["step"] for r in rows] == [10, 20, 30]
    assert len({round(r["loss"], 6) for r in rows}) == 3
    with pytest.raises(FileNotFoundError):
        evaluate_checkpoints(tmp_path / "empty", stream)


def test_distinct_ngrams():
    assert distinct_ngrams([1, 2, 3, 4], 2) == 1.0
    assert distinct_ngrams([7, 7, 7, 7, 7], 2) == 0.25  # one distinct bigram out of four
    assert distinct_ngrams(torch.tensor([1, 2, 1, 2, 1, 2]), 3) == 0.5
    assert distinct_ngrams("the cat the cat".split(), 2) == 2 / 3 and distinct_ngrams([1], 3) == 1.0
