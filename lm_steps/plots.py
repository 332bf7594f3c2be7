"""Plots for the notebooks. Each function draws on an axis (new if none given) and returns it."""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["bigram_heatmap", "loss_curve", "lr_range", "activation_histograms", "gradient_histograms",
           "weight_gradient_histograms", "update_ratios", "saturation_map", "embedding_scatter",
           "similarity_heatmap"]


def _axes(ax, figsize):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=figsize)
    return ax


def bigram_heatmap(table, labels: Sequence[str], *, ax=None, fmt: str = "{:d}", title: str | None = None,
                   cmap: str = "Blues", fontsize: float = 8):
    """A (V, V) table as a heatmap with each cell's bigram and value written in it.

    ``table`` is counts (``fmt="{:d}"``) or probabilities (``fmt="{:.2f}"``). Rows are the
    previous symbol, columns the next one.
    """
    t = np.asarray(table.detach().cpu() if hasattr(table, "detach") else table)
    V = t.shape[0]
    if t.shape != (V, V) or len(labels) != V:
        raise ValueError(f"need a square table with one label per row, got {t.shape} and {len(labels)} labels")
    ax = _axes(ax, (11, 11))
    ax.imshow(t, cmap=cmap)
    dark = np.nanmax(t) * 0.6
    for i in range(V):
        for j in range(V):
            value = int(t[i, j]) if fmt == "{:d}" else float(t[i, j])
            color = "white" if t[i, j] > dark else "dimgray"
            ax.text(j, i, labels[i] + labels[j], ha="center", va="bottom", color=color, fontsize=fontsize)
            ax.text(j, i, fmt.format(value), ha="center", va="top", color=color, fontsize=fontsize)
    ax.set_xticks(range(V), labels)
    ax.set_yticks(range(V), labels)
    ax.set_xlabel("next")
    ax.set_ylabel("previous")
    if title:
        ax.set_title(title)
    return ax


def loss_curve(history: dict, *, ax=None, smooth: int = 1, log_y: bool = False, title: str | None = None,
               reference: dict[str, float] | None = None, unit: str = "nats per token",
               reference_at: str = "start", val_line: bool = True, legend_outside: bool = False):
    """Training loss per step (optionally a moving average over ``smooth`` steps) and, if the
    history has them, validation points (joined by a line unless ``val_line`` is False: markers
    only); ``reference`` draws horizontal lines, labelled at the ``reference_at`` ("start" or
    "end") of the x axis, or named in the legend ("legend"); ``unit`` names the loss's unit;
    ``legend_outside`` puts the legend to the right of the axis, clear of the lines."""
    ax = _axes(ax, (7, 4))
    steps, loss = np.asarray(history["step"]), np.asarray(history["loss"], dtype=float)
    if smooth > 1 and len(loss) >= smooth:
        loss = np.convolve(loss, np.ones(smooth) / smooth, mode="valid")
        steps = steps[smooth - 1:]
    ax.plot(steps, loss, label="train" + (f" (mean of {smooth})" if smooth > 1 else ""))
    if history.get("val_loss"):
        ax.plot(history["val_step"], history["val_loss"], "o-" if val_line else "o", label="validation")
    if reference_at not in ("start", "end", "legend"):
        raise ValueError(f"reference_at must be 'start', 'end' or 'legend', got {reference_at!r}")
    x_ref = (steps[0] if reference_at == "start" else steps[-1]) if len(steps) else 0
    for i, (name, y) in enumerate((reference or {}).items()):
        if reference_at == "legend":  # a style of its own per line, so the legend tells them apart
            ax.axhline(y, color="gray", ls=("--", ":", "-.")[i % 3], lw=1.2, label=name)
            continue
        ax.axhline(y, color="gray", ls="--", lw=1)
        ax.annotate(name, (x_ref, y), va="bottom", ha="left" if reference_at == "start" else "right",
                    color="gray", fontsize=8)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"loss ({unit}{', log scale' if log_y else ''})")
    if title:
        ax.set_title(title)
    if legend_outside:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=9)
    else:
        ax.legend()
    return ax


# ----------------------------------------------------------------------------- stages 3-4: diagnostics
def lr_range(lrs, losses, *, ax=None, smooth: int = 20, title: str | None = None, unit: str = "nats per token"):
    """Loss against an exponentially growing learning rate (log x axis), smoothed over ``smooth`` steps.

    The good rates are where the curve is low and still falling, before it turns up or explodes.
    """
    ax = _axes(ax, (7, 4))
    lrs, losses = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    ax.plot(lrs, losses, alpha=0.3, color="C0", label="loss per step")
    if smooth > 1 and len(losses) >= smooth:
        ax.plot(lrs[smooth - 1:], np.convolve(losses, np.ones(smooth) / smooth, mode="valid"), color="C0",
                label=f"mean of {smooth}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel(f"loss ({unit})")
    ax.set_title(title or "learning-rate range test")
    ax.legend()
    return ax


def _layer_name(name: str) -> str:
    """A module's name without the ``model.`` of a wrapper such as LastPosition, as ``param_stats`` names it."""
    return name[len("model."):] if name.startswith("model.") else name


def _legend(ax, outside: bool):
    """The axis's legend, small; ``outside``: to the right of the axis, clear of the lines."""
    if outside:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    else:
        ax.legend(fontsize=8)


def _hist_lines(ax, series, xlabel, title, bins=100, log_density=False, legend_outside=False):
    """One density line per (label, values); values far from 1 in size are drawn in a unit of 10^k that the
    x label names, so no axis needs a bare multiplier such as 1e-5 in its corner. ``log_density``: a log y
    axis (empty bins left out), so a wide histogram does not flatten narrow ones into a spike."""
    series = [(label, np.asarray(values, dtype=float).ravel()) for label, values in series]
    top = max((np.nanmax(np.abs(v)) for _, v in series if v.size), default=0.0)
    k = int(np.floor(np.log10(top))) if np.isfinite(top) and top > 0 and not 1e-2 <= top < 1e3 else 0
    for label, values in series:
        counts, edges = np.histogram(values / 10.0 ** k, bins=bins, density=True)
        if log_density:
            counts = np.where(counts > 0, counts, np.nan)
        ax.plot((edges[:-1] + edges[1:]) / 2, counts, label=label)
    ax.set_xlabel(xlabel if k == 0 else f"{xlabel} (units of 1e{k})")
    if log_density:
        ax.set_yscale("log")
        ax.set_ylabel("density (per unit of the x axis, log scale)")
        ax.ticklabel_format(axis="x", style="plain", useOffset=False)
    else:
        ax.set_ylabel("density (per unit of the x axis)")
        ax.ticklabel_format(axis="both", style="plain", useOffset=False)
    ax.set_title(title)
    _legend(ax, legend_outside)
    return ax


def activation_histograms(stats, *, ax=None, title: str = "activation distribution", legend_outside: bool = False):
    """One histogram line per layer of :func:`lm_steps.diagnostics.layer_stats` output, labelled with
    the layer's mean, std and share of saturated units (|h| > 0.99); ``legend_outside``: legend right of the axis."""
    ax = _axes(ax, (10, 4))
    series = [(f"{_layer_name(s.name)} ({s.kind}): mean {s.mean:+.2f}, std {s.std:.2f}, saturated {s.saturated:.1%}",
               s.out.cpu()) for s in stats]
    return _hist_lines(ax, series, "activation", title, legend_outside=legend_outside)


def gradient_histograms(stats, *, ax=None, title: str = "gradient distribution", legend_outside: bool = False):
    """Histograms of the gradients flowing into each layer (``LayerStats.grad``), with mean and std."""
    ax = _axes(ax, (10, 4))
    series = [(f"{_layer_name(s.name)} ({s.kind}): mean {s.grad.mean().item():+.1e}, std {s.grad.std().item():.1e}",
               s.grad.cpu()) for s in stats if s.grad is not None]
    return _hist_lines(ax, series, "gradient", title, legend_outside=legend_outside)


def weight_gradient_histograms(rows, *, ax=None, title: str = "weight gradient distribution",
                               log_density: bool = False, legend_outside: bool = False):
    """Histograms of each weight matrix's gradient (:func:`lm_steps.diagnostics.param_stats` rows),
    labelled with its shape and gradient-to-data ratio; ``log_density``: a log y axis."""
    ax = _axes(ax, (10, 4))
    series = [(f"{r['name']} {tuple(r['shape'])}: std {r['std']:.1e}, grad:data {r['ratio']:.1e}", r["grad"].cpu())
              for r in rows]
    return _hist_lines(ax, series, "gradient", title, log_density=log_density, legend_outside=legend_outside)


def update_ratios(ratios, names: Sequence[str], *, ax=None, guide: float = -3.0, title: str | None = None,
                  legend_outside: bool = False):
    """log10(update / data) per weight matrix over training, with a dashed guide line at ``guide`` (1e-3);
    ``legend_outside``: the legend right of the axis, clear of the lines' ends."""
    ax = _axes(ax, (10, 4))
    ratios = np.asarray(ratios, dtype=float)
    for j, name in enumerate(names):
        ax.plot(ratios[:, j], label=name, lw=1)
    ax.axhline(guide, color="k", ls="--", lw=1, label=f"1e{guide:g} guide")
    ax.set_xlabel("step")
    ax.set_ylabel("log10(std(update) / std(weight))")
    ax.set_title(title or "update-to-data ratio")
    _legend(ax, legend_outside)
    return ax


def saturation_map(h, *, ax=None, threshold: float = 0.99, title: str | None = None):
    """Examples (rows) by units (columns) of a tanh layer: white where |h| > ``threshold``.
    A column that is white all the way down is a dead unit."""
    ax = _axes(ax, (10, 3))
    t = np.asarray(h.detach().cpu() if hasattr(h, "detach") else h)
    t = t.reshape(-1, t.shape[-1])  # (N, C)
    from matplotlib.colors import ListedColormap

    im = ax.imshow((np.abs(t) > threshold).astype(float), cmap=ListedColormap(["black", "white"]), vmin=0, vmax=1,
                   interpolation="nearest", aspect="auto")
    bar = ax.figure.colorbar(im, ax=ax, ticks=[0.25, 0.75], fraction=0.046, pad=0.02)
    bar.ax.set_yticklabels([f"|h| ≤ {threshold:g}", f"|h| > {threshold:g}"])
    ax.set_xlabel("hidden unit")
    ax.set_ylabel("example")
    ax.set_title(title or f"|h| > {threshold} (white): {np.mean(np.abs(t) > threshold):.1%} saturated")
    return ax


def embedding_scatter(weight, labels: Sequence[str], *, ax=None, title: str | None = None):
    """Each character at its position in a 2-D embedding table ``weight`` (V, 2)."""
    ax = _axes(ax, (6, 6))
    w = np.asarray(weight.detach().cpu() if hasattr(weight, "detach") else weight)
    if w.ndim != 2 or w.shape[1] != 2 or len(labels) != w.shape[0]:
        raise ValueError(f"need a (V, 2) table and V labels, got {w.shape} and {len(labels)} labels")
    ax.scatter(w[:, 0], w[:, 1], s=200, color="C0", alpha=0.4)
    span = max(float(np.ptp(w[:, 0])), float(np.ptp(w[:, 1])), 1e-12)
    placed = []  # label positions so far: a label that would overlap one is nudged up (twice its height at most)
    for (x, y), c in zip(w, labels):
        ty = y
        for _ in range(3):
            if all(abs(x - px) > 0.035 * span or abs(ty - py) > 0.035 * span for px, py in placed):
                break
            ty += 0.04 * span
        if ty != y:
            ax.plot([x, x], [y, ty], color="gray", lw=0.5)
        placed.append((x, ty))
        ax.text(x, ty, c, ha="center", va="center", fontsize=11)
    ax.set_xlabel("embedding dimension 0")
    ax.set_ylabel("embedding dimension 1")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return ax


def similarity_heatmap(sim, labels: Sequence[str], *, ax=None, order: Sequence[int] | None = None,
                       relu: bool = True, title: str | None = None, cmap: str | None = None,
                       mask_diagonal: bool = False):
    """A (V, V) similarity matrix as a heatmap, rows and columns in ``order``; ``relu`` shows
    max(0, similarity), so only the pairs pointing the same way stand out (colour map viridis, 0 to 1).
    Without ``relu`` the colours diverge around 0 (RdBu_r, symmetric about 0 at the largest |value|
    shown), so negative pairs show as well as positive ones. ``mask_diagonal`` leaves each item's
    similarity with itself (1) blank, so it does not set the scale."""
    ax = _axes(ax, (7, 6))
    s = np.asarray(sim.detach().cpu() if hasattr(sim, "detach") else sim, dtype=float)
    if s.shape != (len(labels), len(labels)):
        raise ValueError(f"need a square matrix with one label per row, got {s.shape} and {len(labels)} labels")
    order = list(range(len(labels))) if order is None else list(order)
    if mask_diagonal:
        s = s.copy()
        np.fill_diagonal(s, np.nan)
    s = s[np.ix_(order, order)]
    import matplotlib

    colours = cmap or ("viridis" if relu else "RdBu_r")
    colours = (matplotlib.colormaps[colours] if isinstance(colours, str) else colours).with_extremes(bad="lightgray")
    if relu:
        s = np.maximum(s, 0)  # NaN stays NaN
        im = ax.imshow(s, cmap=colours, vmin=0, vmax=1)
    else:
        lim = float(np.nanmax(np.abs(s))) if np.isfinite(s).any() else 1.0
        im = ax.imshow(s, cmap=colours, vmin=-lim, vmax=lim)
    ticks = [labels[i] for i in order]
    ax.set_xticks(range(len(order)), ticks)
    ax.set_yticks(range(len(order)), ticks)
    ax.set_xlabel("character")
    ax.set_ylabel("character")
    bar = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label(("max(0, cosine similarity)" if relu else "cosine similarity")
                  + (" (diagonal blank)" if mask_diagonal else ""))
    ax.set_title(title or ("ReLU(cosine similarity)" if relu else "cosine similarity"))
    return ax
