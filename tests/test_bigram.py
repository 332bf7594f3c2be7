"""Stage 1-2: the counting and neural bigrams, the shared interface, evaluation and sampling."""
from __future__ import annotations

import math

import pytest
import torch

from lm_steps import data
from lm_steps.bigram import CountingBigram, NeuralBigram, count_bigrams
from lm_steps.evaluation import evaluate
from lm_steps.losses import lm_loss
from lm_steps.sample import generate, sample_words
from lm_steps.training import fit


@pytest.fixture(scope="module")
def counts(names, names_tok):
    return count_bigrams(names, names_tok)


def test_counts_cover_every_bigram(names, counts):
    assert counts.shape == (27, 27)
    assert counts.sum().item() == sum(len(w) + 1 for w in names) == 228_146
    assert counts[0, 0].item() == 0  # no empty name


@pytest.mark.parametrize("smoothing, expected", [(0.0, 2.4540), (1.0, 2.4546)])
def test_average_nll_of_all_names(names, names_tok, counts, smoothing, expected):
    X, Y = data.make_examples(names, 1, names_tok)
    result = evaluate(CountingBigram(counts, smoothing), X, Y)
    assert round(result["loss"], 4) == expected
    assert result["n_tokens"] == 228_146
    assert result["bits_per_char"] == pytest.approx(result["loss"] / math.log(2))


def test_unseen_bigram_is_infinite_without_smoothing(names_tok, counts):
    assert counts[names_tok.stoi["j"], names_tok.stoi["q"]] == 0
    X, Y = data.make_examples(["andrejq"], 1, names_tok)
    assert math.isinf(evaluate(CountingBigram(counts), X, Y)["loss"])
    assert math.isfinite(evaluate(CountingBigram(counts, 1.0), X, Y)["loss"])


def test_interface_shapes(counts):
    idx = torch.randint(0, 27, (4, 6))
    for model in (CountingBigram(counts, 1.0), NeuralBigram(27, generator=torch.Generator().manual_seed(0))):
        logits, loss = model(idx)
        assert logits.shape == (4, 6, 27) and loss is None
        _, loss = model(idx, idx)
        assert loss.ndim == 0
        _, last = model(idx, idx[:, -1])
        torch.testing.assert_close(last, lm_loss(logits[:, -1:], idx[:, -1:]), atol=1e-6, rtol=0)


def test_counting_rows_are_distributions(counts):
    model = CountingBigram(counts, 1.0)
    torch.testing.assert_close(model.probs.sum(1), torch.ones(27), atol=1e-5, rtol=0)
    torch.testing.assert_close(model.log_probs.exp(), model.probs, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="square"):
        CountingBigram(torch.ones(3, 4))


def test_neural_bigram_init_loss_and_overfit():
    g = torch.Generator().manual_seed(1)
    model = NeuralBigram(5, generator=g)
    model.W.data.zero_()  # uniform predictions
    X = torch.tensor([[0], [1], [2], [3]])
    Y = torch.tensor([1, 2, 3, 4])
    assert model(X, Y)[1].item() == pytest.approx(math.log(5), abs=1e-6)
    hist = fit(model, X, Y, steps=200, lr=10.0)
    assert hist["loss"][-1] < 0.05 < hist["loss"][0]


def test_sampling_is_determined_by_the_generator(names_tok, counts):
    model = CountingBigram(counts, 1.0)
    a = sample_words(model, names_tok, 10, generator=torch.Generator().manual_seed(2147483647))
    b = sample_words(model, names_tok, 10, generator=torch.Generator().manual_seed(2147483647))
    c = sample_words(model, names_tok, 10, generator=torch.Generator().manual_seed(1))
    assert a == b and a != c
    assert all(set(w) <= set("abcdefghijklmnopqrstuvwxyz") for w in a)


def test_generate_shapes_and_greedy(counts):
    model = CountingBigram(counts, 1.0)
    out = generate(model, torch.zeros(3, 1, dtype=torch.long), 5, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 6) and torch.equal(out[:, 0], torch.zeros(3, dtype=torch.long))
    greedy = generate(model, torch.zeros(1, 1, dtype=torch.long), 1, temperature=0)
    assert greedy[0, 1].item() == counts[0].argmax().item()


def test_fit_rejects_non_finite_loss():
    model = NeuralBigram(3)
    X, Y = torch.tensor([[0]]), torch.tensor([1])
    with torch.no_grad():
        model.W.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="step 0"):
        fit(model, X, Y, steps=1, lr=1.0)


def test_count_ngrams_frames_like_make_examples(names, names_tok):
    from lm_steps.bigram import count_ngrams

    words = names[:300]
    assert torch.equal(count_ngrams(words, names_tok, 2), count_bigrams(words, names_tok))
    N3 = count_ngrams(words, names_tok, 3)
    assert N3.shape == (27, 27, 27) and N3.dtype == torch.long
    assert N3.sum().item() == sum(len(w) + 1 for w in words)
    assert torch.equal(N3.sum(0), count_bigrams(words, names_tok))  # drop the oldest symbol: the bigrams
    X, Y = data.make_examples(words, 2, names_tok)  # the same n-grams as (context -> next) examples
    by_examples = torch.zeros(27, 27, 27, dtype=torch.long).index_put_((X[:, 0], X[:, 1], Y), torch.tensor(1),
                                                                       accumulate=True)
    assert torch.equal(N3, by_examples)
    with pytest.raises(ValueError, match="n must be"):
        count_ngrams(words, names_tok, 0)
