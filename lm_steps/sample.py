"""Sampling from any model of the curriculum (anything with ``forward(idx) -> (logits, loss)``)."""
from __future__ import annotations

import torch

from .utils import eval_mode

__all__ = ["sample_next", "generate", "beam_search", "complete", "sample_words"]


def sample_next(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token id per row from ``logits`` (B, V); returns (B, 1).

    ``temperature=0`` is greedy (argmax); ``top_k`` keeps the k most likely tokens; ``top_p``
    keeps the smallest set of most likely tokens whose probability reaches ``p``. A generator
    on another device than the logits (a CPU generator with a CUDA model) draws on its own device.
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
    if generator is not None and generator.device != probs.device:  # e.g. a CPU generator with a CUDA model
        return torch.multinomial(probs.to(generator.device), num_samples=1, generator=generator).to(probs.device)
    return torch.multinomial(probs, num_samples=1, generator=generator)


def _start(idx: torch.Tensor, start_token: int) -> torch.Tensor:
    if idx.dim() != 2:
        raise ValueError(f"idx must be (B, T) token ids, got shape {tuple(idx.shape)}")
    if idx.size(1) == 0:  # an empty prompt starts from start_token
        return torch.full((idx.size(0), 1), start_token, dtype=torch.long, device=idx.device)
    return idx


@torch.no_grad()
def generate(model: torch.nn.Module, idx: torch.Tensor, max_new_tokens: int, *, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, generator: torch.Generator | None = None,
             use_cache: bool | None = None, start_token: int = 0) -> torch.Tensor:
    """Extend ``idx`` (B, T) by ``max_new_tokens`` sampled tokens; returns (B, T + max_new_tokens).

    ``temperature=0`` is greedy. An empty prompt (B, 0) starts from ``start_token`` (which is
    then part of the result). The model sees at most its last ``block_size`` tokens; a longer
    prompt is cropped to them (the result still holds all of it). It runs in eval mode; its
    mode is restored afterwards.

    ``use_cache`` (default: whenever the model has ``new_cache``, as :class:`~lm_steps.gpt.GPT`
    does) keeps keys and values between steps instead of recomputing the window. Within the
    block it gives the same logits as recomputation. Past the block: a rotary-position model
    drops the oldest cached position each step, which is exactly recomputation's sliding window;
    a model with absolute positions cannot shift its cache (every position would change), so
    when the cache is full it is refilled from the last ``block_size // 2`` tokens and the
    window grows again from there; each step's logits equal recomputing that window.
    """
    idx = _start(idx, start_token)
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if use_cache is None:
        use_cache = hasattr(model, "new_cache")
    if use_cache and not hasattr(model, "new_cache"):
        raise ValueError(f"{type(model).__name__} has no KV cache; call generate with use_cache=False")
    bs = model.block_size
    pick = lambda logits: sample_next(logits[:, -1, :], temperature=temperature, top_k=top_k,  # noqa: E731
                                      top_p=top_p, generator=generator)
    with eval_mode(model):
        if not use_cache:
            for _ in range(max_new_tokens):
                logits, _ = model(idx[:, -bs:])
                idx = torch.cat([idx, pick(logits)], dim=1)
            return idx
        cache = model.new_cache(idx.size(0))
        logits, _ = model(idx[:, -bs:], cache=cache)  # prefill with the (cropped) prompt
        for i in range(max_new_tokens):
            nxt = pick(logits)  # (B, 1)
            idx = torch.cat([idx, nxt], dim=1)
            if i == max_new_tokens - 1:
                break
            if cache.length < bs:
                logits, _ = model(nxt, cache=cache)
            elif cache.can_roll:
                cache.drop_oldest(1)
                logits, _ = model(nxt, cache=cache)
            else:
                cache.length = 0
                logits, _ = model(idx[:, -max(bs // 2, 1):], cache=cache)
    return idx


@torch.no_grad()
def beam_search(model: torch.nn.Module, idx: torch.Tensor, beam_width: int, max_new_tokens: int, *,
                length_penalty: float = 1.0, eos_token: int | None = None, start_token: int = 0) -> torch.Tensor:
    """The most likely continuation of one prompt ``idx`` (1, T) found by beam search: (1, T + n).

    Each step keeps the ``beam_width`` partial sequences with the highest total log-probability.
    A beam that emits ``eos_token`` is finished and leaves the search; sequences are ranked by
    ``log p / n_new ** length_penalty``, so ``length_penalty`` > 0 stops short ones from winning
    merely for being short (it only matters with an ``eos_token``: otherwise every sequence has
    ``max_new_tokens`` new tokens). ``beam_width=1`` is greedy decoding.
    """
    idx = _start(idx, start_token)
    if idx.size(0) != 1:
        raise ValueError(f"beam_search takes one prompt, shape (1, T); got {tuple(idx.shape)}")
    if beam_width < 1:
        raise ValueError(f"beam_width must be >= 1, got {beam_width}")
    beams, scores = idx, torch.zeros(1, device=idx.device)  # (nb, T), (nb,)
    finished: list[tuple[float, torch.Tensor]] = []
    with eval_mode(model):
        for n in range(1, max_new_tokens + 1):
            logits, _ = model(beams[:, -model.block_size:])
            logp = torch.log_softmax(logits[:, -1, :].float(), dim=-1)  # (nb, V)
            cand = (scores[:, None] + logp).view(-1)  # (nb * V,)
            top = cand.topk(min(beam_width, cand.numel()))
            V = logp.size(-1)
            beams = torch.cat([beams[top.indices // V], (top.indices % V)[:, None]], dim=1)  # (nb, T + n)
            scores = top.values
            if eos_token is not None:
                done = beams[:, -1] == eos_token
                finished += [(s.item() / n ** length_penalty, b) for s, b in zip(scores[done], beams[done])]
                beams, scores = beams[~done], scores[~done]
                if len(beams) == 0:
                    break
        n_new = beams.size(1) - idx.size(1)
        finished += [(s.item() / max(n_new, 1) ** length_penalty, b) for s, b in zip(scores, beams)]
    best = max(finished, key=lambda item: item[0])[1]
    return best[None, :]  # (1, T + n)


def complete(model: torch.nn.Module, tokenizer, prompt: str, max_new_tokens: int, *,
             device: str | torch.device = "cpu", start_token: int = 0, **kw) -> str:
    """Text in, text out: ``prompt`` plus ``max_new_tokens`` generated tokens (``kw`` go to :func:`generate`).

    A prompt with symbols outside the tokenizer's vocabulary raises the tokenizer's ValueError,
    which lists them. An empty prompt starts from ``start_token``.
    """
    ids = tokenizer.encode(prompt)
    idx = torch.tensor([ids], dtype=torch.long, device=device).view(1, len(ids))  # (1, T)
    out = generate(model, idx, max_new_tokens, start_token=start_token, **kw)
    return tokenizer.decode(out[0].tolist())


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
