"""Sampling from any model of the curriculum (anything with ``forward(idx) -> (logits, loss)``)."""
from __future__ import annotations

import inspect
import math

import torch

from .data import boundary_id
from .utils import eval_mode

__all__ = ["sample_next", "left_pad", "generate", "beam_search", "complete", "sample_words"]


def _is_number(x) -> bool:
    """A real number (Python, NumPy or a one-element tensor), not a bool or a string."""
    if isinstance(x, (bool, str, bytes)) or x is None:
        return False
    try:
        float(x)
    except (TypeError, ValueError):
        return False
    return True


def sample_next(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token id per row from ``logits`` (B, V); returns (B, 1).

    ``top_k`` keeps the k most likely tokens; ``top_p`` keeps the smallest set of most likely
    tokens whose probability reaches ``p``. Both choose from the model's own distribution, before
    the temperature: ``temperature`` then divides the logits of the tokens kept (``0`` is greedy,
    the argmax). A generator on another device than the logits (a CPU generator with a CUDA model)
    draws on its own device. Raises ValueError for a temperature that is not a finite number >= 0
    and for a row of logits with a NaN or +inf, or with no finite logit (nothing to sample).
    """
    if not _is_number(temperature) or not 0 <= temperature < float("inf"):
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy, 1 = the model's "
                         f"distribution), got {temperature!r}")
    if logits.dim() != 2:
        raise ValueError(f"logits must be (B, V), got shape {tuple(logits.shape)}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator (or None), got {generator!r}; "
                        f"write generator=torch.Generator().manual_seed({generator!r})")
    logits = logits.float()
    bad_rows = (torch.isnan(logits) | (logits == float("inf"))).any(dim=-1) | ~torch.isfinite(logits).any(dim=-1)
    if bad_rows.any():
        row = int(bad_rows.nonzero()[0, 0])
        raise ValueError(f"row {row} of the logits has a NaN or +inf, or no finite value (every token -inf): "
                         f"there is no distribution to sample from; check the model's output")
    if top_k is not None:
        if not _is_number(top_k) or int(top_k) != top_k or top_k < 1:
            raise ValueError(f"top_k must be an integer >= 1 (or None for no cut), got {top_k!r}")
        kth = torch.topk(logits, min(int(top_k), logits.size(-1)), dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        if not _is_number(top_p) or not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] (or None for no cut), got {top_p!r}")
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        drop = probs.cumsum(dim=-1) - probs >= top_p  # mass before this token already >= p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    # the best logit becomes 0 before dividing, so a tiny temperature cannot overflow to +inf
    probs = ((logits - logits.max(dim=-1, keepdim=True).values) / temperature).softmax(dim=-1)
    if generator is not None and generator.device != probs.device:  # e.g. a CPU generator with a CUDA model
        return torch.multinomial(probs.to(generator.device), num_samples=1, generator=generator).to(probs.device)
    return torch.multinomial(probs, num_samples=1, generator=generator)


def left_pad(prompts, *, pad_id: int = 0, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts of different lengths as one left-padded batch: ``(idx, attention_mask)``, both
    (B, T) with T the longest prompt; ``attention_mask`` is 1 at real tokens, 0 at padding.

    ``prompts`` is a sequence of token-id lists or 1-D tensors, each with at least one token.
    ``pad_id`` fills the padding (any valid id: the mask keeps the model from reading it).

    >>> left_pad([[5, 6, 7], [8]])
    (tensor([[5, 6, 7],
            [0, 0, 8]]), tensor([[1, 1, 1],
            [0, 0, 1]]))
    """
    rows = [p.tolist() if hasattr(p, "tolist") else list(p) for p in prompts]
    if not rows:
        raise ValueError("left_pad needs at least one prompt")
    for b, row in enumerate(rows):
        if not row:
            raise ValueError(f"prompt {b} is empty; give every prompt at least one token (e.g. a start token)")
        if any(isinstance(t, list) for t in row):
            raise ValueError(f"prompt {b} is not a flat sequence of token ids")
    T = max(len(row) for row in rows)
    idx = torch.tensor([[pad_id] * (T - len(row)) + row for row in rows], dtype=torch.long, device=device)  # (B, T)
    mask = torch.tensor([[0] * (T - len(row)) + [1] * len(row) for row in rows], dtype=torch.long, device=device)
    return idx, mask


def _check_left_padding(attention_mask: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """``attention_mask`` as a 0/1 long tensor, after checking it suits :func:`generate`."""
    if tuple(attention_mask.shape) != tuple(shape):
        raise ValueError(f"attention_mask must have the shape of idx, {tuple(shape)}; got {tuple(attention_mask.shape)}")
    m = attention_mask.long()
    if not ((m == 0) | (m == 1)).all():
        raise ValueError("attention_mask must hold 1 for real tokens and 0 for padding, nothing else")
    if (m[:, 1:] < m[:, :-1]).any():
        b = int((m[:, 1:] < m[:, :-1]).any(dim=1).nonzero()[0, 0])
        raise ValueError(f"row {b} of attention_mask has padding after a real token; generate needs prompts "
                         f"padded on the left (lm_steps.sample.left_pad does that)")
    if (m.sum(dim=1) == 0).any():
        b = int((m.sum(dim=1) == 0).nonzero()[0, 0])
        raise ValueError(f"row {b} of attention_mask has no real token; give every prompt at least one token")
    return m


def _start(idx: torch.Tensor, start_token: int) -> torch.Tensor:
    if not isinstance(idx, torch.Tensor):
        raise TypeError(f"idx must be a (B, T) tensor of token ids, got {type(idx).__name__}; "
                        f"wrap it with torch.tensor([ids])")
    if idx.dim() != 2:
        raise ValueError(f"idx must be (B, T) token ids, got shape {tuple(idx.shape)}")
    if idx.size(1) == 0:  # an empty prompt starts from start_token
        return torch.full((idx.size(0), 1), start_token, dtype=torch.long, device=idx.device)
    return idx


@torch.no_grad()
def generate(model: torch.nn.Module, idx: torch.Tensor, max_new_tokens: int, *, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, generator: torch.Generator | None = None,
             use_cache: bool | None = None, start_token: int = 0,
             attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Extend ``idx`` (B, T) by ``max_new_tokens`` sampled tokens; returns (B, T + max_new_tokens).

    ``temperature=0`` is greedy. An empty prompt (B, 0) starts from ``start_token`` (which is
    then part of the result). The model sees at most its last ``block_size`` tokens; a longer
    prompt is cropped to them (the result still holds all of it). It runs in eval mode; its
    mode is restored afterwards.

    Prompts of different lengths go in one batch the Hugging Face way: padded on the left (see
    :func:`left_pad`), with ``attention_mask`` (B, T) holding 1 for real tokens and 0 for padding.
    The model (it must take ``attention_mask``, as :class:`~lm_steps.gpt.GPT` does) never attends
    to padding and counts positions from each row's first real token, so every step's logits
    for row ``b`` equal those of generating from prompt ``b`` alone: greedy decoding gives row
    ``b`` the same new tokens (sampled ones differ, since one generator's draws are spread over
    the batch). Row ``b`` of the result is its padding, its prompt and its new tokens. The padding
    takes room in the window: the batch is past the block once the padded width plus the new
    tokens is longer than ``block_size``.

    ``use_cache`` (default: whenever the model has ``new_cache``, as :class:`~lm_steps.gpt.GPT`
    does) changes the speed only, never the result: every step's logits equal recomputing the
    model over the last ``block_size`` tokens (fp32, within float rounding). While the sequence
    fits in the block, the cache keeps every position's keys and values and each step runs the
    model on the one new token. Once the sequence is longer than the block, the window slides
    by one token per step and every token in it moves to a new position: with learned or
    sinusoidal positions every key and value changes, and with rotary positions the keys of every
    layer after the first depend on tokens that have left the window. So past the block each step
    re-runs the model on the window of the last ``block_size`` tokens, exactly as
    ``use_cache=False`` does, and the cache no longer saves time.
    """
    mask = None if attention_mask is None else _check_left_padding(attention_mask.to(idx.device), idx.shape)
    idx = _start(idx, start_token)
    if mask is not None and mask.size(1) == 0:
        mask = torch.ones_like(idx)  # an empty prompt became the start token
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if mask is not None and "attention_mask" not in inspect.signature(model.forward).parameters:
        raise ValueError(f"{type(model).__name__}.forward takes no attention_mask; generate from one prompt "
                         f"at a time, or from prompts of equal length without a mask")
    if use_cache is None:
        use_cache = hasattr(model, "new_cache")
    if use_cache and not hasattr(model, "new_cache"):
        raise ValueError(f"{type(model).__name__} has no KV cache; call generate with use_cache=False")
    bs = model.block_size
    padding = lambda m, start=0: {} if m is None else {"attention_mask": m[:, start:]}  # noqa: E731
    with eval_mode(model):
        cache = model.new_cache(idx.size(0)) if use_cache else None
        for _ in range(max_new_tokens):
            if cache is not None and cache.length == 0 and idx.size(1) <= bs:
                logits, _ = model(idx, cache=cache, **padding(mask))  # prefill: the whole prompt at once
            elif cache is not None and cache.length == idx.size(1) - 1 and idx.size(1) <= bs:
                logits, _ = model(idx[:, -1:], cache=cache)  # the cache holds every earlier position
            else:  # no cache, or past the block: recompute the window of the last block_size tokens
                logits, _ = model(idx[:, -bs:], **padding(mask, -bs))
            nxt = sample_next(logits[:, -1, :], temperature=temperature, top_k=top_k, top_p=top_p,
                              generator=generator)  # (B, 1)
            idx = torch.cat([idx, nxt], dim=1)
            if mask is not None:
                mask = torch.cat([mask, torch.ones_like(nxt)], dim=1)  # new tokens are real
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
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if not _is_number(length_penalty) or not math.isfinite(length_penalty):
        raise ValueError(f"length_penalty must be a finite number (0 ranks by total log-probability), "
                         f"got {length_penalty!r}")
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
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be a positive integer (the most tokens a word may have), got {max_len!r}")
    b = boundary_id(tokenizer, boundary)
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
