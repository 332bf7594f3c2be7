"""Losses and evaluation shared by every model in the curriculum."""
from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

__all__ = ["IGNORE_INDEX", "lm_loss", "evaluate"]

IGNORE_INDEX = -1


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, *, reduction: str = "mean",
            label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of next-token ``logits`` (B, T, V) against ``targets``.

    ``targets`` of shape (B, T) score every position (``-1`` marks a position to ignore);
    ``targets`` of shape (B,) score only the last position, as in (context -> next) examples.
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


@torch.no_grad()
def evaluate(model: torch.nn.Module, X: torch.Tensor, Y: torch.Tensor, *, batch_size: int = 4096,
             device: str | torch.device | None = None, chars_per_token: float = 1.0) -> dict:
    """Average negative log-likelihood of ``Y`` given ``X`` over the whole set, in eval mode.

    The NLL comes from the model's logits (not its returned loss, which may include a
    regulariser). Returns ``loss`` (nats per token), ``ppl``, ``bits_per_token``,
    ``bits_per_char`` (``bits_per_token / chars_per_token``) and ``n_tokens``.
    The model's train/eval mode is restored afterwards.
    """
    if device is None:
        first = next(itertools.chain(model.parameters(), model.buffers()), None)
        device = first.device if first is not None else "cpu"
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for i in range(0, len(X), batch_size):
            xb, yb = X[i:i + batch_size].to(device), Y[i:i + batch_size].to(device)
            logits, _ = model(xb)
            total += lm_loss(logits, yb, reduction="sum").item()
            count += int((yb != IGNORE_INDEX).sum())
    finally:
        model.train(was_training)
    loss = total / max(count, 1)
    bits = loss / math.log(2)
    return {"loss": loss, "ppl": math.exp(loss), "bits_per_token": bits,
            "bits_per_char": bits / chars_per_token, "n_tokens": count}
