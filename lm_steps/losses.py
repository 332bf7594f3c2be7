"""The language-model loss and the input checks every model shares (the bottom of the package).

Every model's ``forward(idx, targets)`` first checks ``idx`` with :func:`check_tokens` (and a
padding mask with :func:`check_attention_mask`) and returns
:func:`lm_loss` of its logits, and every evaluation scores with the same loss, so a model and its
evaluation can never disagree about it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["IGNORE_INDEX", "lm_loss", "check_tokens", "check_attention_mask"]

IGNORE_INDEX = -1
_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", lambda: False)  # torch.compile tracing?


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, *, reduction: str = "mean",
            label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of next-token ``logits`` (B, T, V) against ``targets``.

    ``targets`` of shape (B, T) score every position (``IGNORE_INDEX`` = -1 marks a position to
    ignore); ``targets`` of shape (B,) score only the last position, as in (context -> next) examples.
    """
    if logits.dim() != 3:
        raise ValueError(f"logits must be (B, T, V), got shape {tuple(logits.shape)}")
    if targets.dim() == 1:
        logits = logits[:, -1:, :]  # (B, 1, V)
        targets = targets[:, None]  # (B, 1)
    if targets.shape != logits.shape[:2]:
        raise ValueError(f"targets of shape {tuple(targets.shape)} do not match logits {tuple(logits.shape)}")
    if targets.dtype not in (torch.int64, torch.int32, torch.uint8):
        raise ValueError(f"targets must hold integer token ids (torch.long), got dtype {targets.dtype}; "
                         f"convert them with targets.long()")
    try:
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(),  # (B*T, V)
                               targets.reshape(-1).long(),  # (B*T,)
                               ignore_index=IGNORE_INDEX, reduction=reduction, label_smoothing=label_smoothing)
    except IndexError:  # torch's "Target 99 is out of bounds": checked only on failure, so the step pays nothing
        V = logits.size(-1)
        bad = targets[(targets != IGNORE_INDEX) & ((targets < 0) | (targets >= V))]
        if len(bad) == 0:
            raise
        raise ValueError(f"target id {int(bad[0])} is outside the vocabulary: targets must be in [0, {V}) "
                         f"(vocab_size={V}), or {IGNORE_INDEX} for a position to ignore; encode them with the "
                         f"model's own tokenizer") from None


def check_tokens(idx: torch.Tensor, vocab_size: int, *, values: bool | None = None) -> None:
    """Raise ValueError unless ``idx`` is a (B, T) tensor of integer token ids in ``[0, vocab_size)``.

    Every model calls it first in ``forward``, so a bad input gets an error naming the bad id and
    the vocabulary size instead of torch's "index out of range in self". The ids themselves are
    read where that costs no wait for a device: on the CPU (``values=None``), or where
    ``values=True`` asks for it (generation checks its prompt once, on any device). Skipped while
    ``torch.compile`` traces, where reading a value would break the graph.
    """
    if not isinstance(idx, torch.Tensor):
        raise TypeError(f"idx must be a (B, T) tensor of token ids, got {type(idx).__name__}; "
                        f"wrap it with torch.tensor([ids])")
    if idx.dtype not in (torch.int64, torch.int32):  # uint8 would index as a mask, float not at all
        raise ValueError(f"idx must hold integer token ids (torch.long), got dtype {idx.dtype}; "
                         f"convert it with idx.long()")
    if idx.dim() != 2:
        hint = "; add a batch dimension with idx[None]" if idx.dim() == 1 else ""
        raise ValueError(f"idx must be (B, T): a batch of token sequences, got shape {tuple(idx.shape)}{hint}")
    if _compiling() or idx.numel() == 0 or not (values or values is None and idx.device.type == "cpu"):
        return
    low, high = torch.aminmax(idx)
    if low < 0 or high >= vocab_size:
        first = int(idx[(idx < 0) | (idx >= vocab_size)][0])
        raise ValueError(f"token id {first} is outside the vocabulary: ids must be in [0, {vocab_size}) "
                         f"(vocab_size={vocab_size}); encode the text with the model's own tokenizer")


def check_attention_mask(attention_mask: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``attention_mask`` as a bool (B, T) tensor, True at real tokens, after checking it.

    The one check of a padding mask, used by every model and by generation, so one mask gets one
    answer everywhere: it must have the shape of ``idx`` and hold 1 (a real token) and 0 (padding)
    only, or be a bool tensor. Anything else (a 2, a -1, a 0.9999) is refused, not rounded. A bool
    mask needs no look at its values (nothing to wait for on a GPU).
    """
    if not isinstance(attention_mask, torch.Tensor):
        raise TypeError(f"attention_mask must be a (B, T) tensor of 1 (real token) and 0 (padding), "
                        f"got {type(attention_mask).__name__}")
    if tuple(attention_mask.shape) != tuple(idx.shape):
        raise ValueError(f"attention_mask must have the shape of idx, (B, T) = {tuple(idx.shape)}; "
                         f"got {tuple(attention_mask.shape)}")
    if attention_mask.dtype == torch.bool:
        return attention_mask
    other = (attention_mask != 0) & (attention_mask != 1)
    if bool(other.any()):
        raise ValueError(f"attention_mask must hold 1 for real tokens and 0 for padding, nothing else (or be a "
                         f"bool tensor); got {attention_mask[other][0].item()!r}")
    return attention_mask == 1
