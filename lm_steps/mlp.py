"""Stage 3: the MLP language model of Bengio et al. (2003), as in makemore parts 2-3.

Each of the ``block_size`` previous characters is looked up in an embedding table, the vectors
are concatenated, pass through a tanh hidden layer (optionally several, optionally with
BatchNorm) and a linear layer gives the logits of the next character.

It stands on :class:`lm_steps.fixed_context.FixedContextLM`: ``predict`` maps contexts to logits,
and the base gives the curriculum's ``forward(idx, targets)`` over every position. Its recipes
are :class:`lm_steps.config.Recipe` values, trained with ``fit(LastPosition(model), X, Y, recipe)``
(:func:`lm_steps.training.fit`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import Recipe, check_ints
from .fixed_context import FixedContextLM
from .layers import BatchNorm1d, Embedding, Linear, Sequential, Tanh

__all__ = ["MLPConfig", "MLP", "MLP_CONFIGS", "INITS", "TANH_GAIN", "MLP_RECIPES"]

TANH_GAIN = 5 / 3  # PyTorch's gain for tanh, torch.nn.init.calculate_gain("tanh")
INITS = ("naive", "scaled_output", "kaiming")


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
        check_ints(self, ("vocab_size", "block_size", "n_embd", "n_hidden", "n_layers"), minimum=1)
        if not isinstance(self.batchnorm, bool):
            raise ValueError(f"batchnorm must be True or False, got {self.batchnorm!r}")
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
        if not isinstance(cfg, MLPConfig):
            raise TypeError(f"cfg must be an MLPConfig, got {type(cfg).__name__}; build one with MLPConfig(**fields)")
        self.config = cfg
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

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """Draw every parameter afresh for ``config.init`` (all draws from ``generator``, in layer order).

        Every draw is a standard normal (mean 0, standard deviation 1) times a scale, so the scale
        is the standard deviation:

        - ``naive``: embedding, weights and biases all of standard deviation 1, makemore part 3's
          starting point (loss at init far above ln V, every tanh saturated);
        - ``scaled_output``: as naive, but the output weights of standard deviation 0.01 and its
          bias 0, so the logits start near 0 and the loss near ln V;
        - ``kaiming``: as scaled_output, but hidden weights of standard deviation (5/3) / sqrt(fan_in)
          and hidden biases of standard deviation 0.01, so the tanh inputs have about unit spread.

        BatchNorm layers start at gamma = 1, beta = 0.
        """
        def randn_like(p):
            return torch.randn(p.shape, generator=generator).to(p.device)

        self.wte.weight.copy_(randn_like(self.wte.weight))
        linears = [m for m in self.net if isinstance(m, Linear)]
        for i, lin in enumerate(linears):
            last = i == len(linears) - 1
            if last and self.config.init != "naive":
                w_scale, b_scale = 0.01, 0.0
            elif not last and self.config.init == "kaiming":
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


MLP_RECIPES = {
    # makemore part 3: 200,000 SGD steps of 32 examples, lr 0.1 then 0.01 from step 100,000
    "lecture": Recipe(steps=200_000, batch_size=32, optimizer="sgd", lr=0.1, final_lr=0.01, decay_at=0.5),
    # a recipe that fits a few minutes on a laptop CPU: Adam, larger batches, cosine decay
    "cpu": Recipe(steps=20_000, batch_size=256, optimizer="adamw", lr=1e-2, final_lr=1e-4, schedule="cosine",
                  warmup=200),
}
