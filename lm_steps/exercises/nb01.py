"""Checks for notebook 01 (the counting bigram): each runs the learner's function and the package's on fresh inputs."""
from __future__ import annotations

import string

import torch

from ..bigram import CountingBigram, count_ngrams
from ..data import make_examples
from ..evaluation import evaluate
from ..tokenizers import CharTokenizer
from . import Passed, check_function

__all__ = ["check_average_nll", "check_normalise_rows", "check_count_trigrams", "WRONG_ANSWERS"]

#: Plausible mistakes each check must catch (tests/test_exercises.py applies each to the worked solution):
#: exercise name -> [(text of the solution, what a learner might write instead), ...].
WRONG_ANSWERS = {
    "average_nll": [
        ("return -log_likelihood / n, n", "return log_likelihood / n, n"),  # forgot the minus sign
        ('chs = ["."] + list(w) + ["."]', 'chs = list(w) + ["."]'),  # no start symbol: misses how names start
    ],
    "count_trigrams": [
        ('chs = [".", "."] + list(w) + ["."]', 'chs = ["."] + list(w) + ["."]'),  # one start symbol: no first letter
        ("N[stoi[a], stoi[b], stoi[c]] += 1", "N[stoi[c], stoi[b], stoi[a]] += 1"),  # the symbols the wrong way round
    ],
}

TOK = CharTokenizer.from_text(string.ascii_lowercase, boundary=".")  # the names vocabulary: '.', then a-z


def _words(g: torch.Generator, n: int) -> list[str]:
    """``n`` random lowercase words of 2 to 8 letters."""
    lengths = torch.randint(2, 9, (n,), generator=g).tolist()
    return ["".join(string.ascii_lowercase[i] for i in torch.randint(0, 26, (k,), generator=g).tolist())
            for k in lengths]


def _probs(g: torch.Generator, V: int = 27) -> torch.Tensor:
    """A random (V, V) table whose rows are probability distributions with no zero."""
    P = torch.rand(V, V, generator=g) + 0.01
    return P / P.sum(1, keepdim=True)


def check_average_nll(average_nll) -> Passed:
    """``average_nll(P, words, stoi) -> (nll, n)``: the mean NLL of every bigram of ``words`` framed by '.'."""

    def make_case(i):
        g = torch.Generator().manual_seed(1000 + i)
        return _probs(g), _words(g, 5 + 10 * i), dict(TOK.stoi)

    def package(P, words, stoi):
        X, Y = make_examples(words, 1, TOK)  # (N, 1) previous symbol, (N,) next symbol
        return evaluate(CountingBigram(P), X, Y)["loss"], len(Y)  # its rows already sum to 1

    return check_function(average_nll, package, make_case, name="average_nll", atol=1e-5, rtol=1e-5,
                          hint="frame each word as ['.'] + list(w) + ['.'], add up log P[stoi[a], stoi[b]] over its "
                               "pairs (a, b), count the pairs, and return (-total / count, count)")


def check_normalise_rows(normalise_rows) -> Passed:
    """``normalise_rows(N) -> P``: each row of a (V, V) count table divided by its own sum."""

    def make_case(i):
        g = torch.Generator().manual_seed(1100 + i)
        V = (27, 5, 9)[i % 3]
        N = torch.randint(0, 30, (V, V), generator=g).float()
        N[:, 0] += 1  # no empty row
        return (N,)

    return check_function(normalise_rows, lambda N: CountingBigram(N).probs, make_case, name="normalise_rows",
                          atol=1e-6, rtol=1e-5,
                          hint="N.sum(1) has shape (V,) and broadcasts as a row, dividing column j by row j's sum; "
                               "keep the summed dimension, N.sum(1, keepdim=True) of shape (V, 1), so that each row "
                               "is divided by its own sum")


def check_count_trigrams(count_trigrams) -> Passed:
    """``count_trigrams(words, stoi) -> N``: a (27, 27, 27) table of how often c follows a, b in ``words``."""

    def make_case(i):
        g = torch.Generator().manual_seed(1200 + i)
        return _words(g, 3 + 10 * i), dict(TOK.stoi)

    return check_function(count_trigrams, lambda words, stoi: count_ngrams(words, TOK, 3), make_case,
                          name="count_trigrams",
                          hint="frame each word as ['.', '.'] + list(w) + ['.'] (two dots, so that the first letter "
                               "is predicted from '. .'), and add 1 to N[stoi[a], stoi[b], stoi[c]] for every three "
                               "consecutive symbols a, b, c")
