"""Sampling from any model of the curriculum (anything with ``forward(idx) -> (logits, loss)``).

:func:`sample_next` draws one token from logits (temperature, top-k, top-p), :func:`generate` is
the loop around it, :func:`complete` and :func:`sample_words` work in text. The KV cache, padded
batches and beam search are :mod:`lm_steps.inference`.
"""
from __future__ import annotations

import warnings
from functools import partial

import torch

from . import inference
from .checks import is_int, is_number
from .data import boundary_id
from .losses import check_tokens
from .utils import eval_mode

__all__ = ["sample_next", "generate", "complete", "sample_words"]


def sample_next(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token id per row from ``logits`` (B, V); returns (B, 1).

    ``top_k`` keeps the k most likely tokens; ``top_p`` keeps the smallest set of most likely
    tokens whose probability reaches ``p``. Both choose from the model's own distribution, before
    the temperature: ``temperature`` then divides the logits of the tokens kept (``0`` is greedy,
    the argmax). A generator on another device than the logits (a CPU generator with a CUDA model)
    draws on its own device. Raises ValueError for a temperature that is not a finite number >= 0
    and for a row of logits with a NaN or +inf, or with no finite logit (nothing to sample); the
    rows are read only when torch's sampler fails, or for greedy choices on the CPU, so a step
    never waits for a GPU to check them.
    """
    if not is_number(temperature) or not 0 <= temperature < float("inf"):
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy, 1 = the model's "
                         f"distribution), got {temperature!r}")
    if logits.dim() != 2:
        raise ValueError(f"logits must be (B, V), got shape {tuple(logits.shape)}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator (or None), got {generator!r}; "
                        f"write generator=torch.Generator().manual_seed({generator!r})")
    raw = logits = logits.float()
    if top_k is not None:
        if not is_number(top_k) or int(top_k) != top_k or top_k < 1:
            raise ValueError(f"top_k must be an integer >= 1 (or None for no cut), got {top_k!r}")
        kth = torch.topk(logits, min(int(top_k), logits.size(-1)), dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        if not is_number(top_p) or not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] (or None for no cut), got {top_p!r}")
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        drop = probs.cumsum(dim=-1) - probs >= top_p  # mass before this token already >= p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    if temperature == 0:
        if raw.device.type == "cpu":
            _check_rows(raw)
        return logits.argmax(dim=-1, keepdim=True)
    # the best logit becomes 0 before dividing, so a tiny temperature cannot overflow to +inf; one below
    # float32's smallest normal number would round to 0 (0 / 0 = NaN), so it is raised to that (still greedy)
    temperature = max(float(temperature), torch.finfo(torch.float32).tiny)
    probs = ((logits - logits.max(dim=-1, keepdim=True).values) / temperature).softmax(dim=-1)
    try:
        if generator is not None and generator.device != probs.device:  # e.g. a CPU generator with a CUDA model
            return torch.multinomial(probs.to(generator.device), 1, generator=generator).to(probs.device)
        return torch.multinomial(probs, num_samples=1, generator=generator)
    except RuntimeError:  # "probability tensor contains either inf, nan or element < 0"
        _check_rows(raw)
        raise


def _check_rows(logits: torch.Tensor) -> None:
    """ValueError naming the first row of ``logits`` with a NaN or +inf, or with no finite value."""
    bad = (torch.isnan(logits) | (logits == float("inf"))).any(dim=-1) | ~torch.isfinite(logits).any(dim=-1)
    if bool(bad.any()):
        raise ValueError(f"row {int(bad.nonzero()[0, 0])} of the logits has a NaN or +inf, or no finite value "
                         f"(every token -inf): there is no distribution to sample from; check the model's output")


@torch.no_grad()
def generate(model: torch.nn.Module, idx: torch.Tensor, max_new_tokens: int, *, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, generator: torch.Generator | None = None,
             use_cache: bool | None = None, start_token: int = 0,
             attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Extend ``idx`` (B, T) by ``max_new_tokens`` sampled tokens; returns (B, T + max_new_tokens).

    Each step crops the context to the last ``block_size`` tokens, runs the model, samples from
    the last position's logits (:func:`sample_next`; ``temperature=0`` is greedy) and appends. An
    empty prompt (B, 0) starts from ``start_token``. The model runs in eval mode, restored after.
    A causal GPT uses its KV cache (``use_cache``, default on) and takes left-padded prompts with
    an ``attention_mask``: :func:`lm_steps.inference.generate` does that, with the same result.
    """
    idx = inference.prompt_or_start(idx, start_token)
    if not is_int(max_new_tokens) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0 (an integer), got {max_new_tokens!r}")
    check_tokens(idx, model.vocab_size, values=True)  # once here, so the steps need not wait for a GPU
    pick = partial(sample_next, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
    if attention_mask is not None or use_cache or use_cache is None and inference.can_cache(model):
        return inference.generate(model, idx, max_new_tokens, pick, use_cache=use_cache, attention_mask=attention_mask)
    with eval_mode(model):
        for _ in range(max_new_tokens):
            logits, _ = model(idx[:, -model.block_size:])  # (B, T, V): at most the last block_size tokens
            idx = torch.cat([idx, pick(logits[:, -1, :])], dim=1)  # sample from the last position, append
    return idx


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


_MOVED = {"left_pad": "lm_steps.inference", "beam_search": "lm_steps.inference"}


def __getattr__(name: str):
    """Names that moved to :mod:`lm_steps.inference` keep working from here for one release."""
    if name in _MOVED:
        warnings.warn(f"lm_steps.sample.{name} moved to {_MOVED[name]}.{name}", DeprecationWarning, stacklevel=2)
        return getattr(inference, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
