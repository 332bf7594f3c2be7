"""Evaluation shared by every model in the curriculum (the loss itself is :mod:`lm_steps.losses`).

``evaluate`` scores (context -> next) example sets. For one long token stream (WikiText),
``token_nlls`` scores every token once, either in non-overlapping chunks or with a sliding window
(``stride`` < ``block_size``: every token keeps at least ``block_size - stride`` tokens of
context), and ``evaluate_stream`` turns the total into nats per token, bits per byte and
word-level perplexity. ``evaluate_checkpoints`` does that for every checkpoint in a folder.
"""
from __future__ import annotations

import itertools
import math
import numbers
import os
from pathlib import Path
from typing import Callable

import torch

from .checkpoint import gpt_from_checkpoint
from .losses import IGNORE_INDEX, lm_loss
from .utils import eval_mode, progress_bar

__all__ = ["evaluate", "token_nlls", "sliding_windows", "evaluate_stream", "nll_metrics",
           "evaluate_checkpoints", "distinct_ngrams"]

def _device_of(model: torch.nn.Module) -> torch.device:
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


@torch.no_grad()
def evaluate(model: torch.nn.Module, X: torch.Tensor, Y: torch.Tensor, *, batch_size: int = 4096,
             device: str | torch.device | None = None, chars_per_token: float = 1.0) -> dict:
    """Average negative log-likelihood of ``Y`` given ``X`` over the whole set, in eval mode.

    The NLL comes from the model's logits (not its returned loss, which may include a
    regulariser). Returns ``loss`` (nats per token), ``ppl``, ``bits_per_token``,
    ``bits_per_char`` (``bits_per_token / chars_per_token``) and ``n_tokens``.
    The model's train/eval mode is restored afterwards.
    """
    if len(X) == 0 or len(X) != len(Y):
        raise ValueError(f"need as many examples in X as targets in Y, at least one; got {len(X)} and {len(Y)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(chars_per_token, bool) or not isinstance(chars_per_token, numbers.Real) \
            or not 0 < chars_per_token < math.inf:
        raise ValueError(f"chars_per_token must be a positive number (1 for a character model), got {chars_per_token!r}")
    device = _device_of(model) if device is None else device
    total, count = 0.0, 0
    with eval_mode(model):
        for i in range(0, len(X), batch_size):
            xb, yb = X[i:i + batch_size].to(device), Y[i:i + batch_size].to(device)
            logits, _ = model(xb)
            total += lm_loss(logits, yb, reduction="sum").item()
            count += int((yb != IGNORE_INDEX).sum())
    if count == 0:
        raise ValueError(f"every target in Y is the ignore index {IGNORE_INDEX}: there is nothing to score")
    out = nll_metrics(total, count)
    out["bits_per_char"] = out["bits_per_token"] / chars_per_token
    return out


@torch.no_grad()
def token_nlls(model: torch.nn.Module, tokens: torch.Tensor, *, block_size: int | None = None,
               stride: int | None = None, batch_size: int = 8, device: str | torch.device | None = None,
               progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """NLL (nats) of every token of a 1-D stream after the first, and the context each one had.

    Windows of ``block_size`` tokens (default: the model's) start every ``stride`` tokens (default:
    ``block_size``, i.e. non-overlapping chunks). The first window scores all its positions; each
    later one scores only the targets no earlier window reached (its last ``stride``), so every
    token is scored exactly once, with at least ``block_size - stride`` tokens of context once
    the stream is that long. Returns ``nll`` and ``context`` (float32 and int64, length
    ``len(tokens) - 1``; ``context[j]`` tokens preceded target ``tokens[j + 1]``). Runs in eval
    mode and restores the model's mode.
    """
    T = model.block_size if block_size is None else block_size
    stride = T if stride is None else stride
    if not 1 <= stride <= T:
        raise ValueError(f"stride must be between 1 and block_size={T}, got {stride}")
    if tokens.dim() != 1 or len(tokens) < 2:
        raise ValueError(f"need a 1-D stream of at least 2 tokens, got shape {tuple(tokens.shape)}")
    device = _device_of(model) if device is None else device
    N = len(tokens) - 1  # number of targets
    windows = sliding_windows(N, T, stride)
    nll = torch.empty(N, dtype=torch.float32)
    context = torch.empty(N, dtype=torch.long)
    with eval_mode(model), progress_bar(total=len(windows), desc="evaluate", unit="window",
                                        disable=not progress) as bar:
        i = 0
        while i < len(windows):
            length = windows[i][1]
            group = [w for w in windows[i:i + batch_size] if w[1] == length]  # equal lengths batch together
            x = torch.stack([tokens[s:s + length] for s, _, _ in group]).to(device)  # (B, T)
            y = torch.stack([tokens[s + 1:s + 1 + length] for s, _, _ in group]).to(device)  # (B, T)
            logits, _ = model(x)
            losses = lm_loss(logits, y, reduction="none").view(len(group), length).cpu()  # (B, T)
            for row, (s, _, first) in enumerate(group):
                nll[s + first:s + length] = losses[row, first:]
                context[s + first:s + length] = torch.arange(first + 1, length + 1)
            i += len(group)
            bar.update(len(group))
    return nll, context


def sliding_windows(n_targets: int, block_size: int, stride: int) -> list[tuple[int, int, int]]:
    """The windows that score each of ``n_targets`` targets once: ``(start, length, first)`` each.

    A window reads ``length`` (at most ``block_size``) tokens from ``start`` and scores its
    positions from ``first`` on: the targets no earlier window reached. Windows start every
    ``stride`` tokens until every target is scored (Hugging Face's documented method).
    """
    windows = []
    start, scored_to = 0, 0  # the targets before scored_to are done
    while scored_to < n_targets:
        length = min(block_size, n_targets - start)
        windows.append((start, length, scored_to - start))
        scored_to = start + length
        start += stride
    return windows


def nll_metrics(total_nll: float, n_tokens: int, *, n_bytes: int | None = None, n_words: int | None = None) -> dict:
    """Figures from a total NLL in nats: ``loss`` (nats/token), ``ppl``, ``bits_per_token``,
    ``n_tokens``, and when given, ``bits_per_byte`` (total bits / UTF-8 bytes of the scored text)
    and ``word_ppl`` (``exp(total / n_words)``, comparable across tokenizers)."""
    if n_tokens < 1:
        raise ValueError(f"n_tokens must be >= 1 (a loss per token needs a token), got {n_tokens}")
    for name, value in (("n_bytes", n_bytes), ("n_words", n_words)):
        if value is not None and not value >= 1:
            raise ValueError(f"{name} must be >= 1 (the size of the scored text), or None to leave it out; "
                             f"got {value!r}")
    loss = total_nll / n_tokens
    out = {"loss": loss, "ppl": math.exp(loss), "bits_per_token": loss / math.log(2), "n_tokens": n_tokens,
           "total_nll": total_nll}
    if n_bytes:
        out.update(n_bytes=n_bytes, bits_per_byte=total_nll / math.log(2) / n_bytes)
    if n_words:
        out.update(n_words=n_words, word_ppl=math.exp(total_nll / n_words))
    return out


def evaluate_stream(model: torch.nn.Module, tokens: torch.Tensor, *, block_size: int | None = None,
                    stride: int | None = None, n_bytes: int | None = None, n_words: int | None = None,
                    batch_size: int = 8, device: str | torch.device | None = None, progress: bool = False) -> dict:
    """Score a whole token stream (see :func:`token_nlls`) and return :func:`nll_metrics` plus
    ``min_context`` (the least context any token beyond the first window had) and ``stride``."""
    T = model.block_size if block_size is None else block_size
    nll, context = token_nlls(model, tokens, block_size=T, stride=stride, batch_size=batch_size,
                              device=device, progress=progress)
    out = nll_metrics(float(nll.double().sum()), len(nll), n_bytes=n_bytes, n_words=n_words)
    later = context[T:]
    out.update(stride=T if stride is None else stride, block_size=T,
               min_context=int(later.min()) if len(later) else int(context.min()))
    return out


def evaluate_checkpoints(folder: str | os.PathLike, tokens: torch.Tensor, *, pattern: str = "*.pt",
                         load: Callable | None = None, device: str | torch.device = "cpu",
                         progress: bool = False, **stream_kw) -> list[dict]:
    """Evaluate every checkpoint in ``folder`` (sorted by step) on one token stream.

    ``load(path, device=...)`` returns ``(model, ckpt)`` (default:
    :func:`lm_steps.checkpoint.gpt_from_checkpoint`); ``stream_kw`` goes to
    :func:`evaluate_stream`. Returns one dict per checkpoint: ``path``, ``step`` and the metrics.
    """
    load = gpt_from_checkpoint if load is None else load
    paths = sorted(Path(folder).glob(pattern))
    if not paths:
        raise FileNotFoundError(f"no checkpoints matching {pattern!r} in {folder}")
    results = []
    bar = progress_bar(total=len(paths), desc="checkpoints", unit="ckpt") if progress else None
    for path in paths:
        model, ckpt = load(path, device=device)
        metrics = evaluate_stream(model, tokens, device=device, **stream_kw)
        results.append({"path": str(path), "step": int(ckpt.get("step", 0)), **metrics})
        if bar is not None:
            bar.update(1)
            bar.set_postfix(step=results[-1]["step"], loss=f"{metrics['loss']:.3f}")
    if bar is not None:
        bar.close()
    return sorted(results, key=lambda r: (r["step"], r["path"]))


def distinct_ngrams(seq, n: int) -> float:
    """Share of the ``n``-grams of ``seq`` that are distinct (1.0: no repeats; near 0: a loop).

    A repetition measure for generated text (``distinct-n``); ``seq`` is any sequence of tokens
    or words. Returns 1.0 when ``seq`` has fewer than ``n`` items.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be a positive integer (2 counts distinct bigrams), got {n!r}")
    items = [int(x) if isinstance(x, torch.Tensor) else x for x in seq]
    grams = [tuple(items[i:i + n]) for i in range(len(items) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0
