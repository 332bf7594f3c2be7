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

__all__ = ["WaveNetConfig", "WaveNet", "WAVENET_CONFIGS", "WAVENET_RECIPES", "CausalConvWaveNet", "GatedWaveNetConfig",
           "GatedWaveNet"]


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
    have standard deviation 1/sqrt(fan_in) (variance 1/fan_in); the output layer's are scaled by
    0.1 so the loss starts near ln V.
    """

    def __init__(self, cfg: WaveNetConfig, *, generator: torch.Generator | None = None,
                 device: str | torch.device = "cpu"):
        super().__init__()
        self.config = cfg
        self.wte = Embedding(cfg.vocab_size, cfg.n_embd, generator=generator, device=device)
        layers, width = [], cfg.n_embd
        for _ in range(cfg.n_levels):
            layers += [FlattenConsecutive(2),
                       Linear(2 * width, cfg.n_hidden, bias=False, generator=generator, device=device),
                       BatchNorm1d(cfg.n_hidden, device=device), Tanh()]
            width = cfg.n_hidden
        layers.append(Linear(width, cfg.vocab_size, generator=generator, device=device).scale_(0.1))
        self.net = Sequential(*layers)

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
    def config(self) -> WaveNetConfig:
        """The wrapped model's config."""
        return self.model.config

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


# ----------------------------------------------------------------------------- the gated WaveNet
@dataclass(frozen=True)
class GatedWaveNetConfig:
    """Sizes of :class:`GatedWaveNet`: context ``block_size`` (a power of two), embedding ``n_embd``,
    ``n_residual`` channels in the residual stream and ``n_skip`` in the skip sum. The defaults
    give 73,349 parameters, about the lecture WaveNet's 76,579."""

    vocab_size: int = 27
    block_size: int = 8
    n_embd: int = 24
    n_residual: int = 58
    n_skip: int = 116

    def __post_init__(self):
        check_ints(self, ("vocab_size", "block_size", "n_embd", "n_residual", "n_skip"), minimum=1)
        if self.block_size < 2 or self.block_size & (self.block_size - 1):
            raise ValueError(f"block_size must be a power of two >= 2 (one gated layer per doubling), "
                             f"got {self.block_size}")

    @property
    def n_levels(self) -> int:
        """Number of gated layers, log2(block_size)."""
        return int(math.log2(self.block_size))


class GatedWaveNet(FixedContextLM):
    """The original WaveNet's layer (van den Oord et al., 2016): gated, with residual and skip connections.

    Each layer k reads pairs (t - d, t) of the residual stream, d = 2^k, as a kernel-2 dilated
    causal convolution does, and computes ``z = tanh(W_f [x_{t-d}, x_t]) * sigmoid(W_g [x_{t-d}, x_t])``:
    the sigmoid gate decides, unit by unit, how much of the tanh filter passes. ``z`` goes two
    ways: back into the stream through a 1x1 projection added to ``x_t`` (the residual connection,
    so each layer learns a correction and gradients reach the embedding directly), and into the
    skip sum through another 1x1 projection (every layer speaks to the output). The logits are a
    linear map of ReLU(skip sum). No BatchNorm. Parameters: ``wte``, ``inp``, ``filters``,
    ``gates``, ``residual`` (one fewer: the last layer's stream is not read), ``skip``, ``out``.

    Only the last position of a context is predicted, so :meth:`predict` computes only the
    positions that prediction reads (a tree, as the hierarchical :class:`WaveNet` does): at layer
    k the positions ``L - 1, L - 1 - 2d, ...``, each paired with the one ``d`` before it; the
    convolution over every position gives the same logits with about twice the work.
    """

    def __init__(self, cfg: GatedWaveNetConfig, *, generator: torch.Generator | None = None,
                 device: str | torch.device = "cpu"):
        super().__init__()
        self.config = cfg
        R, S = cfg.n_residual, cfg.n_skip

        def linear(fan_in, fan_out):
            return Linear(fan_in, fan_out, generator=generator, device=device)

        self.wte = Embedding(cfg.vocab_size, cfg.n_embd, generator=generator, device=device)
        self.inp = linear(cfg.n_embd, R)
        self.filters = nn.ModuleList(linear(2 * R, R) for _ in range(cfg.n_levels))
        self.gates = nn.ModuleList(linear(2 * R, R) for _ in range(cfg.n_levels))
        self.residual = nn.ModuleList(linear(R, R) for _ in range(cfg.n_levels - 1))
        self.skip = nn.ModuleList(linear(R, S) for _ in range(cfg.n_levels))
        self.out = linear(S, cfg.vocab_size).scale_(0.1)  # logits start small: loss near ln V

    def predict(self, context: torch.Tensor) -> torch.Tensor:
        """Logits (N, V) after each context (N, block_size)."""
        x = self.inp(self.wte(context))  # (N, n, R): positions spaced d = 2^k apart, the last one L - 1
        N, R = x.size(0), self.config.n_residual
        skips = 0
        for k in range(self.config.n_levels):
            pairs = x.reshape(N, x.size(1) // 2, 2 * R)  # (N, n/2, 2R): each (t - d, t) with t every second position
            z = torch.tanh(self.filters[k](pairs)) * torch.sigmoid(self.gates[k](pairs))  # (N, n/2, R)
            skips = skips + self.skip[k](z[:, -1])  # (N, S): only the last position is predicted
            if k < self.config.n_levels - 1:
                x = pairs[..., R:] + self.residual[k](z)  # (N, n/2, R): the stream at t, corrected
        return self.out(torch.relu(skips))  # (N, V)
