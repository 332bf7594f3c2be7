"""Sampling from any model of the curriculum (anything with ``forward(idx) -> (logits, loss)``)."""
from __future__ import annotations

import torch

__all__ = ["sample_next", "generate", "sample_words"]


def sample_next(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token id per row from ``logits`` (B, V); returns (B, 1).

    ``temperature=0`` is greedy (argmax); ``top_k`` keeps the k most likely tokens; ``top_p``
    keeps the smallest set of most likely tokens whose probability reaches ``p``.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / temperature
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        kth = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cum - sorted_logits.softmax(dim=-1) >= top_p  # mass before this token already >= p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)


@torch.no_grad()
def generate(model: torch.nn.Module, idx: torch.Tensor, max_new_tokens: int, *, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Extend ``idx`` (B, T) by ``max_new_tokens`` sampled tokens; returns (B, T + max_new_tokens).

    The model sees at most its last ``block_size`` tokens. It runs in eval mode; its mode is
    restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        for _ in range(max_new_tokens):
            logits, _ = model(idx[:, -model.block_size:])
            nxt = sample_next(logits[:, -1, :], temperature=temperature, top_k=top_k, top_p=top_p,
                              generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
    finally:
        model.train(was_training)
    return idx


def sample_words(model: torch.nn.Module, tokenizer, n: int, *, generator: torch.Generator | None = None,
                 boundary: str = ".", max_len: int = 50, temperature: float = 1.0,
                 device: str | torch.device = "cpu") -> list[str]:
    """Sample ``n`` words, each started from the boundary token and ended at the next one.

    The words are drawn side by side, one token per step for all of them, so the result is a
    function of the generator's seed alone.
    """
    b = tokenizer.encode(boundary)[0]
    idx = torch.full((n, 1), b, dtype=torch.long, device=device)
    out = []
    for _ in range(max_len):
        idx = generate(model, idx, 1, temperature=temperature, generator=generator)
        if (idx[:, 1:] == b).any(dim=1).all():
            break
    for row in idx[:, 1:].tolist():
        word = row[: row.index(b)] if b in row else row
        out.append(tokenizer.decode(word))
    return out
