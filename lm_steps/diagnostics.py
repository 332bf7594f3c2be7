"""Training diagnostics (makemore part 3): what the activations, gradients and updates look like.

- :func:`layer_stats` runs one forward and backward pass and collects every chosen layer's output
  and the gradient flowing into it (mean, std, share of saturated tanh units).
- :func:`param_stats` summarises each weight matrix's gradient, with its gradient-to-data ratio.
- :class:`UpdateRatioTracker`, a ``fit`` callback, logs log10(std(update) / std(weight)) per
  weight matrix at every step; about -3 (updates a thousandth of the weights) is a healthy rate.
- :func:`cosine_similarity` and :func:`vowels_first` for looking at learned character embeddings.

Plots of all of these live in :mod:`lm_steps.plots`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn

from .layers import Tanh

__all__ = ["saturation", "dead_units", "LayerStats", "layer_stats", "param_stats", "UpdateRatioTracker",
           "cosine_similarity", "vowels_first"]


def saturation(h: torch.Tensor, threshold: float = 0.99) -> float:
    """Fraction of tanh outputs in the flat tails, |h| > ``threshold``, where the gradient nearly vanishes."""
    return (h.detach().abs() > threshold).float().mean().item()


def dead_units(h: torch.Tensor, threshold: float = 0.99) -> int:
    """Units (last dimension) saturated for *every* example: no gradient reaches their weights ("dead")."""
    flat = h.detach().reshape(-1, h.size(-1))  # (N, C)
    return int((flat.abs() > threshold).all(dim=0).sum())


@dataclass
class LayerStats:
    """One layer's output ``out`` and the gradient of the loss with respect to it, ``grad``."""

    name: str
    kind: str
    out: torch.Tensor
    grad: torch.Tensor | None

    @property
    def mean(self) -> float:
        """Mean output."""
        return self.out.mean().item()

    @property
    def std(self) -> float:
        """Standard deviation of the output."""
        return self.out.std().item()

    @property
    def saturated(self) -> float:
        """Fraction of outputs with |out| > 0.99 (meaningful for tanh layers)."""
        return saturation(self.out)

    @property
    def dead(self) -> int:
        """Units saturated for every example."""
        return dead_units(self.out)


def layer_stats(model: nn.Module, X: torch.Tensor, Y: torch.Tensor, *, kinds: tuple[type, ...] = (Tanh,),
                backward: bool = True) -> list[LayerStats]:
    """Outputs (and, with ``backward``, their gradients) of every submodule of the given ``kinds``.

    ``model(X, Y)`` must return ``(logits, loss)``; it runs in its current mode (training mode
    shows what training sees). After ``backward`` the parameters' ``.grad`` hold this batch's
    gradients, ready for :func:`param_stats`.
    """
    captured: list[tuple[str, nn.Module, torch.Tensor]] = []

    def hook(module, _inputs, output, name=None):
        if output.requires_grad:
            output.retain_grad()
        captured.append((name, module, output))

    handles = [m.register_forward_hook(lambda mod, i, o, name=n: hook(mod, i, o, name))
               for n, m in model.named_modules() if isinstance(m, kinds)]
    try:
        model.zero_grad(set_to_none=True)
        _, loss = model(X, Y)
        if backward:
            loss.backward()
    finally:
        for h in handles:
            h.remove()
    return [LayerStats(name, type(m).__name__, out.detach(), None if out.grad is None else out.grad.detach())
            for name, m, out in captured]


def param_stats(model: nn.Module, *, min_dim: int = 2) -> list[dict]:
    """For each parameter with at least ``min_dim`` dimensions and a gradient: name, shape,
    grad (a copy), its mean and std, and the gradient-to-data ratio std(grad) / std(weight)."""
    rows = []
    for name, p in model.named_parameters():
        if p.dim() >= min_dim and p.grad is not None:
            g = p.grad.detach().clone()
            rows.append({"name": name, "shape": tuple(p.shape), "grad": g, "mean": g.mean().item(),
                         "std": g.std().item(), "ratio": (g.std() / p.detach().std()).item()})
    return rows


class UpdateRatioTracker:
    """A ``fit`` callback recording log10(std(update) / std(weight)) for each weight matrix, every step.

    Create it just before training (it remembers the starting weights). The update is measured
    as the change in the weights, so it is right for any optimizer. ``ratios`` is a
    (steps, n_weights) array and ``names`` labels its columns.
    """

    def __init__(self, model: nn.Module, *, min_dim: int = 2):
        named = [(n, p) for n, p in model.named_parameters() if p.dim() >= min_dim]
        self.names = [n for n, _ in named]
        self._params = [p for _, p in named]
        self._prev = [p.detach().clone() for p in self._params]
        self._rows: list[list[float]] = []

    @torch.no_grad()
    def __call__(self, step: int, model: nn.Module | None = None) -> None:
        """Record the update the optimizer just made."""
        row = []
        for p, prev in zip(self._params, self._prev):
            update = (p - prev).std().item()
            row.append(math.log10(update / p.std().item()) if update > 0 else float("-inf"))
            prev.copy_(p)
        self._rows.append(row)

    @property
    def ratios(self) -> np.ndarray:
        """(steps, n_weights) log10 update-to-data ratios."""
        return np.asarray(self._rows, dtype=float).reshape(len(self._rows), len(self.names))


def cosine_similarity(weight: torch.Tensor) -> torch.Tensor:
    """(V, d) embedding rows -> (V, V) cosine similarities."""
    w = weight.detach().float()
    w = w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return w @ w.T


def vowels_first(labels: Sequence[str], vowels: str = "aeiou") -> list[int]:
    """An ordering of ``labels`` with the vowels together first, then the other symbols in their order."""
    first = [i for i, c in enumerate(labels) if c in vowels]
    return first + [i for i in range(len(labels)) if i not in first]
