"""The base of the fixed-context models (stages 3-4): a window of ``block_size`` tokens in, one prediction out.

Every fixed-context model here (:class:`lm_steps.mlp.MLP`, :class:`lm_steps.wavenet.WaveNet`)
speaks the curriculum's interface: ``forward(idx)`` takes (B, T) tokens of any length T and
returns logits (B, T, V), position t predicted from the ``block_size`` tokens ending at t,
left-padded with token 0 (the '.' boundary). For (context -> next) examples only the last
position counts; :class:`LastPosition` computes just that one, which is what training on
examples needs.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from .losses import check_tokens, lm_loss

__all__ = ["context_windows", "FixedContextLM", "LastPosition"]


def context_windows(idx: torch.Tensor, block_size: int) -> torch.Tensor:
    """The window of ``block_size`` tokens ending at each position: (B, T) -> (B, T, block_size).

    Positions before the start are token 0 (the '.' boundary): the window ending at position 0
    of ``[e, m]`` with block size 3 is ``[., ., e]``.
    """
    padded = F.pad(idx, (block_size - 1, 0), value=0)  # (B, T + block_size - 1)
    return padded.unfold(1, block_size, 1)  # (B, T, block_size)


class FixedContextLM(nn.Module):
    """Base of the models that read a fixed window: subclasses keep their config in ``self.config``
    (with ``block_size`` and ``vocab_size``; :func:`~lm_steps.checkpoint.save_checkpoint` stores it)
    and define ``predict(context)``.

    ``predict`` maps contexts (N, block_size) to logits (N, V): the lecture's model. ``forward``
    applies it to the window ending at every position. In training mode a BatchNorm inside then
    normalises over all B * T windows; in eval mode it uses its running statistics, so a
    one-token prompt from :func:`lm_steps.sample.generate` is scored like any other window.
    """

    @property
    def block_size(self) -> int:
        """Tokens of context: the window every prediction reads (``config.block_size``)."""
        return self.config.block_size

    @property
    def vocab_size(self) -> int:
        """Number of tokens (``config.vocab_size``)."""
        return self.config.vocab_size

    @property
    def cfg(self):
        """Deprecated: the model's config is ``self.config``, as every model's."""
        warnings.warn(f"{type(self).__name__}.cfg is deprecated and goes in the next release; use .config",
                      DeprecationWarning, stacklevel=2)
        return self.config

    def predict(self, context: torch.Tensor) -> torch.Tensor:
        """Logits (N, V) of the next token after each context (N, block_size)."""
        raise NotImplementedError

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits (B, T, V) for every position; loss as :func:`lm_steps.losses.lm_loss` if ``targets``."""
        check_tokens(idx, self.vocab_size)
        B, T = idx.shape
        windows = context_windows(idx, self.block_size)  # (B, T, block_size)
        logits = self.predict(windows.reshape(B * T, self.block_size))  # (B * T, V)
        logits = logits.view(B, T, -1)  # (B, T, V)
        return logits, None if targets is None else lm_loss(logits, targets)


class LastPosition(nn.Module):
    """The same model scoring only the last position: (B, T) -> logits (B, 1, V).

    Training on (context -> next) examples scores only the last position, so computing the
    other T - 1 windows would be wasted work (8x for the WaveNet) and would let their padded
    windows into the BatchNorm statistics. ``fit(LastPosition(model), X, Y, ...)`` trains
    ``model``'s own parameters exactly as the lecture does: one context in, one prediction out.
    """

    def __init__(self, model: FixedContextLM):
        super().__init__()
        self.model = model

    @property
    def config(self):
        """The wrapped model's config."""
        return self.model.config

    @property
    def block_size(self) -> int:
        """The wrapped model's context length."""
        return self.model.block_size

    @property
    def vocab_size(self) -> int:
        """The wrapped model's number of tokens."""
        return self.model.vocab_size

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits (B, 1, V) from the last ``block_size`` tokens (left-padded if fewer); loss if ``targets``."""
        check_tokens(idx, self.model.vocab_size)
        context = context_windows(idx[:, -self.block_size:], self.block_size)[:, -1]  # (B, block_size)
        logits = self.model.predict(context)[:, None, :]  # (B, 1, V)
        return logits, None if targets is None else lm_loss(logits, targets)
