"""Training diagnostics (makemore part 3): what the activations, gradients and updates look like.

- :func:`layer_stats` runs one forward and backward pass and collects every chosen layer's output
  and the gradient flowing into it (mean, std, share of saturated tanh units).
- :func:`param_stats` summarises each weight matrix's gradient, with its gradient-to-data ratio.
- :class:`UpdateRatioTracker`, a ``fit`` callback, logs log10(std(update) / std(weight)) per
  weight matrix at every step; about -3 (updates a thousandth of the weights) is a healthy rate.
- :class:`TrainingHealth`, a ``train``/``fit`` callback for deep models (the GPT): per watched layer the
  std of its output and of the gradient flowing into it, per weight matrix the gradient-to-data and
  update-to-data ratios, at every training step.
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
           "TrainingHealth", "cosine_similarity", "vowels_first"]


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


class TrainingHealth:
    """A ``train``/``fit`` callback that records how healthy training is, at every step.

    For each module named in ``layers`` (e.g. a GPT's blocks ``transformer.h.0``, ...): the std
    of its output (``act_std``) and the std of the gradient of the loss with respect to that
    output (``act_grad_std``), over the training forward passes of the step (mean over
    micro-batches with gradient accumulation; evaluation passes without gradients are ignored).
    For each weight matrix (``names``, as :class:`UpdateRatioTracker`): log10(std(grad) /
    std(weight)) of the step's accumulated gradient before clipping (``grad_ratios``) and
    log10(std(update) / std(weight)) of the update the optimizer made (``update_ratios``).
    Each is a (steps, n) array. Create it just before training; call :meth:`remove` afterwards
    to take its hooks off the model.
    """

    def __init__(self, model: nn.Module, layers: Sequence[str], *, min_dim: int = 2):
        modules = dict(model.named_modules())
        missing = [n for n in layers if n not in modules]
        if missing:
            raise ValueError(f"no submodules named {missing} in {type(model).__name__}; "
                             f"pick names from model.named_modules(), e.g. {list(modules)[1:4]}")
        if not layers:
            raise ValueError("layers is empty; name at least one submodule to watch")
        self.layers = list(layers)
        self._updates = UpdateRatioTracker(model, min_dim=min_dim)
        self.names = self._updates.names
        self._act: list[list[float]] = [[] for _ in self.layers]  # this step's values, one list per layer
        self._act_grad: list[list[float]] = [[] for _ in self.layers]
        self._grad: list[float] = [math.nan] * len(self.names)
        self._rows: dict[str, list[list[float]]] = {"act_std": [], "act_grad_std": [], "grad_ratios": []}
        self._handles = [modules[n].register_forward_hook(self._forward_hook(i)) for i, n in enumerate(self.layers)]
        self._handles += [p.register_post_accumulate_grad_hook(self._grad_hook(j))
                          for j, p in enumerate(self._updates._params)]

    def _forward_hook(self, i: int):
        def hook(module, _inputs, output):
            if not (module.training and torch.is_grad_enabled() and isinstance(output, torch.Tensor)):
                return
            self._act[i].append(output.detach().float().std().item())
            if output.requires_grad:
                output.register_hook(lambda grad: self._act_grad[i].append(grad.detach().float().std().item()))
        return hook

    def _grad_hook(self, j: int):
        def hook(p):  # runs after each backward's accumulation: the last call sees the step's whole gradient
            self._grad[j] = math.log10(max(p.grad.detach().float().std().item(), 1e-30) / p.detach().float().std().item())
        return hook

    @torch.no_grad()
    def __call__(self, step: int, model: nn.Module | None = None) -> None:
        """Close the step the optimizer just finished: store its row of every statistic."""
        mean = lambda xs: sum(xs) / len(xs) if xs else math.nan  # noqa: E731
        self._rows["act_std"].append([mean(a) for a in self._act])
        self._rows["act_grad_std"].append([mean(a) for a in self._act_grad])
        self._rows["grad_ratios"].append(list(self._grad))
        self._act = [[] for _ in self.layers]
        self._act_grad = [[] for _ in self.layers]
        self._grad = [math.nan] * len(self.names)
        self._updates(step, model)

    def _array(self, key: str, width: int) -> np.ndarray:
        rows = self._rows[key]
        return np.asarray(rows, dtype=float).reshape(len(rows), width)

    @property
    def act_std(self) -> np.ndarray:
        """(steps, n_layers) std of each watched layer's output."""
        return self._array("act_std", len(self.layers))

    @property
    def act_grad_std(self) -> np.ndarray:
        """(steps, n_layers) std of the loss's gradient with respect to each watched layer's output."""
        return self._array("act_grad_std", len(self.layers))

    @property
    def grad_ratios(self) -> np.ndarray:
        """(steps, n_weights) log10(std(grad) / std(weight)), before clipping."""
        return self._array("grad_ratios", len(self.names))

    @property
    def update_ratios(self) -> np.ndarray:
        """(steps, n_weights) log10(std(update) / std(weight))."""
        return self._updates.ratios

    def remove(self) -> None:
        """Take the hooks off the model (the recorded statistics stay)."""
        for h in self._handles:
            h.remove()
        self._handles = []


def cosine_similarity(weight: torch.Tensor) -> torch.Tensor:
    """(V, d) embedding rows -> (V, V) cosine similarities."""
    w = weight.detach().float()
    w = w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return w @ w.T


def vowels_first(labels: Sequence[str], vowels: str = "aeiou") -> list[int]:
    """An ordering of ``labels`` with the vowels together first, then the other symbols in their order."""
    first = [i for i, c in enumerate(labels) if c in vowels]
    return first + [i for i in range(len(labels)) if i not in first]
