"""Plots for the notebooks. Each function draws on an axis (new if none given) and returns it."""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["bigram_heatmap", "loss_curve"]


def _axes(ax, figsize):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=figsize)
    return ax


def bigram_heatmap(table, labels: Sequence[str], *, ax=None, fmt: str = "{:d}", title: str | None = None,
                   cmap: str = "Blues", fontsize: float = 5.5):
    """A (V, V) table as a heatmap with each cell's bigram and value written in it.

    ``table`` is counts (``fmt="{:d}"``) or probabilities (``fmt="{:.2f}"``). Rows are the
    previous symbol, columns the next one.
    """
    t = np.asarray(table.detach().cpu() if hasattr(table, "detach") else table)
    V = t.shape[0]
    if t.shape != (V, V) or len(labels) != V:
        raise ValueError(f"need a square table with one label per row, got {t.shape} and {len(labels)} labels")
    ax = _axes(ax, (14, 14))
    ax.imshow(t, cmap=cmap)
    for i in range(V):
        for j in range(V):
            value = int(t[i, j]) if fmt == "{:d}" else float(t[i, j])
            ax.text(j, i, labels[i] + labels[j], ha="center", va="bottom", color="gray", fontsize=fontsize)
            ax.text(j, i, fmt.format(value), ha="center", va="top", color="gray", fontsize=fontsize)
    ax.set_xticks(range(V), labels)
    ax.set_yticks(range(V), labels)
    ax.set_xlabel("next")
    ax.set_ylabel("previous")
    if title:
        ax.set_title(title)
    return ax


def loss_curve(history: dict, *, ax=None, smooth: int = 1, log_y: bool = False, title: str | None = None,
               reference: dict[str, float] | None = None):
    """Training loss per step (optionally a moving average over ``smooth`` steps) and, if the
    history has them, validation points; ``reference`` draws labelled horizontal lines."""
    ax = _axes(ax, (7, 4))
    steps, loss = np.asarray(history["step"]), np.asarray(history["loss"], dtype=float)
    if smooth > 1 and len(loss) >= smooth:
        loss = np.convolve(loss, np.ones(smooth) / smooth, mode="valid")
        steps = steps[smooth - 1:]
    ax.plot(steps, loss, label="train" + (f" (mean of {smooth})" if smooth > 1 else ""))
    if history.get("val_loss"):
        ax.plot(history["val_step"], history["val_loss"], "o-", label="validation")
    for name, y in (reference or {}).items():
        ax.axhline(y, color="gray", ls="--", lw=1)
        ax.annotate(name, (steps[0] if len(steps) else 0, y), va="bottom", color="gray", fontsize=8)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    if title:
        ax.set_title(title)
    ax.legend()
    return ax
