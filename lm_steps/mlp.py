"""Stage 3: the MLP language model of Bengio et al. (2003), as in makemore parts 2-3.

Each of the ``block_size`` previous characters is looked up in an embedding table, the vectors
are concatenated, pass through a tanh hidden layer (optionally several, optionally with
BatchNorm) and a linear layer gives the logits of the next character.

Every fixed-context model here (this one and :class:`lm_steps.wavenet.WaveNet`) speaks the
curriculum's interface: ``forward(idx)`` takes (B, T) tokens of any length T and returns logits
(B, T, V), position t predicted from the ``block_size`` tokens ending at t, left-padded with
token 0 (the '.' boundary). For (context -> next) examples only the last position counts;
:class:`LastPosition` computes just that one, which is what training on examples needs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .evaluate import lm_loss
from .layers import BatchNorm1d, Embedding, Linear, Sequential, Tanh
from .train import fit

__all__ = ["context_windows", "FixedContextLM", "LastPosition", "MLPConfig", "MLP", "MLP_CONFIGS",
           "INITS", "TANH_GAIN", "Recipe", "MLP_RECIPES", "train_recipe"]

TANH_GAIN = 5 / 3  # PyTorch's gain for tanh, torch.nn.init.calculate_gain("tanh")
INITS = ("naive", "scaled_output", "kaiming")


def context_windows(idx: torch.Tensor, block_size: int, pad: int = 0) -> torch.Tensor:
    """The window of ``block_size`` tokens ending at each position: (B, T) -> (B, T, block_size).

    Positions before the start are ``pad``: the window ending at position 0 of ``[e, m]``
    with block size 3 is ``[pad, pad, e]``.
    """
    padded = F.pad(idx, (block_size - 1, 0), value=pad)  # (B, T + block_size - 1)
    return padded.unfold(1, block_size, 1)  # (B, T, block_size)


class FixedContextLM(nn.Module):
    """Base of the models that read a fixed window: subclasses define ``predict(context)``.

    ``predict`` maps contexts (N, block_size) to logits (N, V): the lecture's model. ``forward``
    applies it to the window ending at every position. In training mode a BatchNorm inside then
    normalises over all B * T windows; in eval mode it uses its running statistics, so a
    one-token prompt from :func:`lm_steps.sample.generate` is scored like any other window.
    """

    block_size: int

    def predict(self, context: torch.Tensor) -> torch.Tensor:
        """Logits (N, V) of the next token after each context (N, block_size)."""
        raise NotImplementedError

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits (B, T, V) for every position; loss as :func:`lm_steps.evaluate.lm_loss` if ``targets``."""
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
    def block_size(self) -> int:
        """The wrapped model's context length."""
        return self.model.block_size

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits (B, 1, V) from the last ``block_size`` tokens (left-padded if fewer); loss if ``targets``."""
        context = context_windows(idx[:, -self.block_size:], self.block_size)[:, -1]  # (B, block_size)
        logits = self.model.predict(context)[:, None, :]  # (B, 1, V)
        return logits, None if targets is None else lm_loss(logits, targets)


@dataclass(frozen=True)
class MLPConfig:
    """Sizes of the MLP: context ``block_size``, embedding ``n_embd``, ``n_layers`` hidden layers of ``n_hidden``.

    ``batchnorm`` puts a BatchNorm after each hidden Linear (which then has no bias). ``init``
    is one of :data:`INITS`, the steps of the initialisation lesson (see :meth:`MLP.init_weights`).
    """

    vocab_size: int = 27
    block_size: int = 3
    n_embd: int = 10
    n_hidden: int = 200
    n_layers: int = 1
    batchnorm: bool = False
    init: str = "kaiming"

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_embd", "n_hidden", "n_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")


MLP_CONFIGS = {
    "writeup": MLPConfig(n_embd=5),  # the popular write-up's model: 8,762 parameters
    "lecture": MLPConfig(n_embd=10),  # makemore part 3: 11,897 parameters
    "lecture_bn": MLPConfig(n_embd=10, batchnorm=True),  # with BatchNorm: 12,097 parameters
    "deep": MLPConfig(n_embd=10, n_hidden=100, n_layers=5, batchnorm=True),  # the diagnostics network
}


class MLP(FixedContextLM):
    """Embedding -> [Linear -> (BatchNorm) -> Tanh] x n_layers -> Linear. Parameters: ``wte`` and ``net``."""

    def __init__(self, cfg: MLPConfig, *, generator: torch.Generator | None = None,
                 device: str | torch.device = "cpu"):
        super().__init__()
        self.cfg = cfg
        self.wte = Embedding(cfg.vocab_size, cfg.n_embd, generator=generator, device=device)
        layers, width = [], cfg.block_size * cfg.n_embd
        for _ in range(cfg.n_layers):
            layers.append(Linear(width, cfg.n_hidden, bias=not cfg.batchnorm, generator=generator, device=device))
            if cfg.batchnorm:
                layers.append(BatchNorm1d(cfg.n_hidden, device=device))
            layers.append(Tanh())
            width = cfg.n_hidden
        layers.append(Linear(width, cfg.vocab_size, generator=generator, device=device))
        self.net = Sequential(*layers)
        self.init_weights(generator)

    @property
    def block_size(self) -> int:
        """Characters of context."""
        return self.cfg.block_size

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """Draw every parameter afresh for ``cfg.init`` (all draws from ``generator``, in layer order).

        - ``naive``: embedding, weights and biases all N(0, 1), makemore part 3's starting point
          (loss at init far above ln V, every tanh saturated);
        - ``scaled_output``: as naive, but the output weights are N(0, 1) * 0.01 and its bias 0,
          so the logits start near 0 and the loss near ln V;
        - ``kaiming``: as scaled_output, but hidden weights N(0, 1) * (5/3) / sqrt(fan_in) and
          hidden biases N(0, 1) * 0.01, so the tanh inputs have about unit spread.

        BatchNorm layers start at gamma = 1, beta = 0.
        """
        def randn_like(p):
            return torch.randn(p.shape, generator=generator).to(p.device)

        self.wte.weight.copy_(randn_like(self.wte.weight))
        linears = [m for m in self.net if isinstance(m, Linear)]
        for i, lin in enumerate(linears):
            last = i == len(linears) - 1
            if last and self.cfg.init != "naive":
                w_scale, b_scale = 0.01, 0.0
            elif not last and self.cfg.init == "kaiming":
                w_scale, b_scale = TANH_GAIN / math.sqrt(lin.weight.size(0)), 0.01
            else:
                w_scale, b_scale = 1.0, 1.0
            lin.weight.copy_(randn_like(lin.weight) * w_scale)
            if lin.bias is not None:
                lin.bias.copy_(randn_like(lin.bias) * b_scale)

    def predict(self, context: torch.Tensor) -> torch.Tensor:
        """Logits (N, V) of the next token after each context (N, block_size)."""
        emb = self.wte(context)  # (N, block_size, n_embd)
        x = emb.view(emb.size(0), -1)  # (N, block_size * n_embd): the embeddings side by side
        return self.net(x)


# ----------------------------------------------------------------------------- training recipes
@dataclass(frozen=True)
class Recipe:
    """How to train on examples: ``steps`` of ``batch_size``, an optimizer and a learning-rate schedule.

    ``schedule="step"`` keeps ``lr`` until ``decay_at * steps`` then uses ``final_lr`` (the
    lectures' 0.1 -> 0.01); ``"cosine"`` warms up linearly for ``warmup`` steps, then follows a
    half cosine from ``lr`` down to ``final_lr``. ``weight_decay`` is passed to
    :func:`lm_steps.train.fit` (decoupled decay with ``adamw``, L2 with ``sgd``).
    """

    steps: int
    batch_size: int
    optimizer: str = "sgd"
    lr: float = 0.1
    final_lr: float = 0.01
    schedule: str = "step"
    decay_at: float = 0.5
    warmup: int = 0
    weight_decay: float = 0.0

    def __post_init__(self):
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError(f"need steps >= 0 and batch_size >= 1, got {self.steps} and {self.batch_size}")
        if self.schedule not in ("step", "cosine"):
            raise ValueError(f"schedule must be 'step' or 'cosine', got {self.schedule!r}")
        if not 0 < self.final_lr <= self.lr:
            raise ValueError(f"need 0 < final_lr <= lr, got final_lr={self.final_lr}, lr={self.lr}")
        if not 0 <= self.decay_at <= 1:
            raise ValueError(f"decay_at is a fraction of the steps in [0, 1], got {self.decay_at}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based), a pure function of the recipe."""
        if self.schedule == "step":
            return self.lr if step < self.decay_at * self.steps else self.final_lr
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        progress = (step - self.warmup) / max(self.steps - self.warmup, 1)
        return self.final_lr + 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))) * (self.lr - self.final_lr)


MLP_RECIPES = {
    # makemore part 3: 200,000 SGD steps of 32 examples, lr 0.1 then 0.01 from step 100,000
    "lecture": Recipe(steps=200_000, batch_size=32, optimizer="sgd", lr=0.1, final_lr=0.01, decay_at=0.5),
    # a recipe that fits a few minutes on a laptop CPU: Adam, larger batches, cosine decay
    "cpu": Recipe(steps=20_000, batch_size=256, optimizer="adamw", lr=1e-2, final_lr=1e-4, schedule="cosine",
                  warmup=200),
}


def train_recipe(model: FixedContextLM, X: torch.Tensor, Y: torch.Tensor, recipe: Recipe, **fit_kw) -> dict:
    """Train ``model`` on examples ``X`` (N, block_size), ``Y`` (N,) with ``recipe``; return the history.

    A thin layer over :func:`lm_steps.train.fit` (``fit_kw``: ``generator``, ``val``,
    ``eval_every``, ``progress``, ``device``, ``callback``) that scores only the last position.
    """
    return fit(LastPosition(model), X, Y, steps=recipe.steps, lr=recipe.lr_at, batch_size=recipe.batch_size,
               optimizer=recipe.optimizer, weight_decay=recipe.weight_decay, **fit_kw)
