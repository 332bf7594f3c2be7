"""Stage 1-2: the character bigram, counted (stage 1) and learned by gradient descent (stage 2).

Both speak the curriculum's model interface ``forward(idx, targets=None) -> (logits, loss)``
with logits of shape (B, T, V), so :func:`lm_steps.sample.generate` and
:func:`lm_steps.evaluation.evaluate` serve them unchanged. Their ``config`` is a
:class:`BigramConfig`, so :func:`~lm_steps.checkpoint.save_checkpoint` stores it as it does every
model's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import boundary_id
from .losses import check_tokens, lm_loss

__all__ = ["count_bigrams", "BigramConfig", "CountingBigram", "NeuralBigram"]


@dataclass(frozen=True)
class BigramConfig:
    """The bigram's one size: ``vocab_size`` symbols (it reads one: ``block_size`` is 1)."""

    vocab_size: int


def count_bigrams(words: Sequence[str], tokenizer, *, boundary: str = ".") -> torch.Tensor:
    """Count every bigram of ``words`` framed by ``boundary``: an int64 (V, V) table N[prev, next]."""
    V = tokenizer.vocab_size
    b = [boundary_id(tokenizer, boundary)]
    N = torch.zeros(V * V, dtype=torch.long)
    for w in words:
        ids = torch.tensor(b + tokenizer.encode(w) + b)
        N += torch.bincount(ids[:-1] * V + ids[1:], minlength=V * V)
    return N.view(V, V)  # (V, V)


class CountingBigram(nn.Module):
    """P(next | prev) = (N[prev, next] + smoothing) / row sum: a model with no parameters.

    Its logits are log-probabilities, ``log P[idx]``; with ``smoothing=0`` an unseen bigram has
    logit ``-inf`` and so infinite negative log-likelihood.
    """

    block_size = 1

    def __init__(self, counts: torch.Tensor, smoothing: float = 0.0):
        super().__init__()
        if counts.dim() != 2 or counts.size(0) != counts.size(1):
            raise ValueError(f"counts must be a square (V, V) table, got shape {tuple(counts.shape)}")
        if smoothing < 0:
            raise ValueError(f"smoothing must be >= 0, got {smoothing}")
        if not bool(torch.isfinite(counts).all()) or bool((counts < 0).any()):
            raise ValueError(f"counts must be finite and >= 0 (how often each pair was seen), got values from "
                             f"{counts.min().item()} to {counts.max().item()}")
        self.config = BigramConfig(counts.size(0))
        P = counts.double() + smoothing
        P = P / P.sum(dim=1, keepdim=True)
        self.register_buffer("probs", P.float())
        self.register_buffer("log_probs", P.log().float())

    @property
    def vocab_size(self) -> int:
        """Number of symbols."""
        return self.probs.size(0)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits (B, T, V) = log P[idx]; loss = mean NLL of ``targets`` if given."""
        check_tokens(idx, self.vocab_size)
        logits = self.log_probs[idx]  # (B, T, V)
        return logits, None if targets is None else lm_loss(logits, targets)


class NeuralBigram(nn.Module):
    """The same model with a learned (V, V) weight matrix: logits = one_hot(idx) @ W = W[idx]."""

    block_size = 1

    def __init__(self, vocab_size: int, *, generator: torch.Generator | None = None):
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        self.config = BigramConfig(vocab_size)
        self.W = nn.Parameter(torch.randn(vocab_size, vocab_size, generator=generator))

    @property
    def vocab_size(self) -> int:
        """Number of symbols."""
        return self.W.size(0)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits (B, T, V) = W[idx] (row lookup, the same as one-hot times W); loss if ``targets``."""
        check_tokens(idx, self.vocab_size)
        logits = F.embedding(idx, self.W)  # (B, T, V): row idx of W, i.e. one_hot(idx) @ W
        return logits, None if targets is None else lm_loss(logits, targets)


# ----------------------------------------------------------------------------- longer contexts, counted
def count_ngrams(words: Sequence[str], tokenizer, n: int, *, boundary: str = ".") -> torch.Tensor:
    """Count every n-gram of ``words``: an int64 table of shape (V,) * n, N[c_1, ..., c_n].

    Each word is framed by ``n - 1`` boundaries before it and one after, as
    :func:`lm_steps.data.make_examples` frames it with a context of ``n - 1``: every symbol of a word,
    and its end, is the last symbol of one n-gram (``len(w) + 1`` per word). ``n=2`` gives
    :func:`count_bigrams`' table; ``n=3`` is the trigram model of the makemore lecture's exercise E01.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 4:
        raise ValueError(f"n must be an integer from 1 to 4 (2 for bigrams, 3 for trigrams; a table of V**n "
                         f"counts grows fast), got {n!r}")
    V = tokenizer.vocab_size
    b = [boundary_id(tokenizer, boundary)]
    place = V ** torch.arange(n - 1, -1, -1)  # (n,): an n-gram is a base-V number of n digits
    index = [torch.tensor(b * (n - 1) + tokenizer.encode(w) + b).unfold(0, n, 1) @ place for w in words]
    N = torch.bincount(torch.cat(index), minlength=V ** n) if index else torch.zeros(V ** n, dtype=torch.long)
    return N.view((V,) * n)  # (V, ..., V)


__all__ += ["count_ngrams"]
