"""Stage 4: a WaveNet-like hierarchical model (makemore part 5; van den Oord et al., 2016).

Instead of crushing all ``block_size`` characters into one hidden layer, fuse them slowly:
pairs of consecutive positions are concatenated by ``FlattenConsecutive(2)`` and mixed by
``Linear -> BatchNorm1d -> Tanh``, then pairs of those, and so on: with a context of 8, three
levels (8 -> 4 -> 2 -> 1) before the output layer.

:class:`CausalConvWaveNet` computes the same thing as a stack of dilated causal convolutions
(kernel 2, dilations 1, 2, 4) with the *same* weights: one pass over a whole name gives the
prediction at every position, where the hierarchical model needs one pass per window.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import Recipe, check_ints
from .fixed_context import FixedContextLM
from .layers import BatchNorm1d, Embedding, FlattenConsecutive, Linear, Sequential, Tanh
from .losses import check_tokens, lm_loss

__all__ = ["WaveNetConfig", "WaveNet", "WAVENET_CONFIGS", "WAVENET_RECIPES", "CausalConvWaveNet"]


@dataclass(frozen=True)
class WaveNetConfig:
    """Sizes: context ``block_size`` (a power of two: log2 of it is the number of levels),
    embedding ``n_embd``, ``n_hidden`` units per level."""

    vocab_size: int = 27
    block_size: int = 8
    n_embd: int = 24
    n_hidden: int = 128

    def __post_init__(self):
        check_ints(self, ("vocab_size", "block_size", "n_embd", "n_hidden"), minimum=1)
        if self.block_size < 2 or self.block_size & (self.block_size - 1):
            raise ValueError(f"block_size must be a power of two >= 2 (pairs are fused level by level), "
                             f"got {self.block_size}")

    @property
    def n_levels(self) -> int:
        """Number of fusing levels, log2(block_size)."""
        return int(math.log2(self.block_size))


WAVENET_CONFIGS = {
    "lecture_small": WaveNetConfig(n_embd=10, n_hidden=68),  # the first hierarchical model: 22,397 parameters
    "lecture": WaveNetConfig(n_embd=24, n_hidden=128),  # the scaled-up model: 76,579 parameters
}

WAVENET_RECIPES = {
    # makemore part 5: 200,000 SGD steps of 32 examples, lr 0.1 then 0.01 from step 150,000
    "lecture": Recipe(steps=200_000, batch_size=32, optimizer="sgd", lr=0.1, final_lr=0.01, decay_at=0.75),
    # a recipe that fits a few minutes on a laptop CPU: AdamW with weight decay (the model overfits without
    # it), larger batches, cosine decay
    "cpu": Recipe(steps=8_000, batch_size=512, optimizer="adamw", lr=1e-2, final_lr=5e-5, schedule="cosine",
                  warmup=200, weight_decay=0.1),
}


class WaveNet(FixedContextLM):
    """Embedding -> [FlattenConsecutive(2) -> Linear -> BatchNorm1d -> Tanh] x log2(block_size) -> Linear.

    Parameters: ``wte`` and ``net`` (a :class:`~lm_steps.layers.Sequential`). Linear weights
    are N(0, 1/fan_in); the output layer's are scaled by 0.1 so the loss starts near ln V.
    """

    def __init__(self, cfg: WaveNetConfig, *, generator: torch.Generator | None = None,
                 device: str | torch.device = "cpu"):
        super().__init__()
        self.cfg = cfg
        self.wte = Embedding(cfg.vocab_size, cfg.n_embd, generator=generator, device=device)
        layers, width = [], cfg.n_embd
        for _ in range(cfg.n_levels):
            layers += [FlattenConsecutive(2),
                       Linear(2 * width, cfg.n_hidden, bias=False, generator=generator, device=device),
                       BatchNorm1d(cfg.n_hidden, device=device), Tanh()]
            width = cfg.n_hidden
        layers.append(Linear(width, cfg.vocab_size, generator=generator, device=device).scale_(0.1))
        self.net = Sequential(*layers)

    @property
    def block_size(self) -> int:
        """Characters of context."""
        return self.cfg.block_size

    @property
    def vocab_size(self) -> int:
        """Number of tokens."""
        return self.cfg.vocab_size

    def predict(self, context: torch.Tensor) -> torch.Tensor:
        """Logits (N, V) after each context (N, block_size): (N, 8, d) -> (N, 4, h) -> (N, 2, h) -> (N, h) -> (N, V)."""
        return self.net(self.wte(context))


class CausalConvWaveNet(nn.Module):
    """The same network as dilated causal convolutions, sharing ``model``'s parameters.

    Where the hierarchical model fuses positions (2i, 2i+1), the convolution fuses (t - d, t)
    for *every* t, with dilation d = 1, 2, 4, ...: level k's output at t sees tokens
    t - 2^k + 1 .. t, so the last level at t sees exactly the window ending at t. In eval mode
    its logits equal ``model``'s at every position. (In training mode a BatchNorm would take
    statistics over all positions, so use the hierarchical model, on examples, to train.)
    """

    def __init__(self, model: WaveNet):
        super().__init__()
        self.model = model

    @property
    def block_size(self) -> int:
        """Characters of context (the receptive field)."""
        return self.model.block_size

    @property
    def vocab_size(self) -> int:
        """Number of tokens."""
        return self.model.vocab_size

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits (B, T, V) for every position in one pass; loss if ``targets``."""
        check_tokens(idx, self.model.vocab_size)
        x = self.model.wte(F.pad(idx, (self.block_size - 1, 0)))  # (B, T + block_size - 1, d)
        dilation = 1
        for layer in self.model.net:
            if isinstance(layer, FlattenConsecutive):
                x = torch.cat([x[:, :-dilation], x[:, dilation:]], dim=-1)  # (B, L - dilation, 2C): (t - d, t) pairs
                dilation *= layer.n
            else:
                x = layer(x)  # Linear, BatchNorm1d and Tanh act on the last dimension
        return x, None if targets is None else lm_loss(x, targets)  # x: (B, T, V)
