"""The language-model loss and the token check every model shares (the bottom of the package).

Every model's ``forward(idx, targets)`` returns :func:`lm_loss` of its logits, and every
evaluation scores with it, so a model and its evaluation can never disagree about the loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["IGNORE_INDEX", "lm_loss"]

IGNORE_INDEX = -1


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
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1),  # (B*T, V), (B*T,)
                           ignore_index=IGNORE_INDEX, reduction=reduction, label_smoothing=label_smoothing)
