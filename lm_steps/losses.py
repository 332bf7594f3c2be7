"""The language-model loss and the token check every model shares (the bottom of the package).

Every model's ``forward(idx, targets)`` first checks ``idx`` with :func:`check_tokens` and returns
:func:`lm_loss` of its logits, and every evaluation scores with the same loss, so a model and its
evaluation can never disagree about it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["IGNORE_INDEX", "lm_loss", "check_tokens"]

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


def check_tokens(idx: torch.Tensor, vocab_size: int) -> None:
    """Raise ValueError unless ``idx`` is a (B, T) tensor of integer token ids in ``[0, vocab_size)``.

    Every model calls it first in ``forward``, so a bad input gets an error naming the bad id and
    the vocabulary size instead of torch's "index out of range in self" (or, on a GPU, a device-side
    assert). Skipped while ``torch.compile`` traces, where reading a value would break the graph.
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
    if _compiling() or idx.numel() == 0:
        return
    bad = (idx < 0) | (idx >= vocab_size)
    if bool(bad.any()):
        first = int(idx[bad][0])
        raise ValueError(f"token id {first} is outside the vocabulary: ids must be in [0, {vocab_size}) "
                         f"(vocab_size={vocab_size}); encode the text with the model's own tokenizer")
