"""The one figure helper refuses figures a reader cannot read at a glance; every notebook shows its
figures through it, so nbval in the smoke profile runs every figure through these checks."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lm_steps.nb import FigureError, check_figure, show_figure  # noqa: E402

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def _good_lines():
    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [3, 2, 1], label="train")
    ax.plot([0, 1, 2], [3, 2.5, 2], label="val")
    ax.legend()
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats)")
    return fig, ax


def test_a_readable_figure_passes():
    fig, ax = _good_lines()
    check_figure(fig)
    img = show_figure(fig, "two falling lines")
    assert "<img alt=\"two falling lines\"" in str(getattr(img, "data", img))


@pytest.mark.parametrize("axis", ["x", "y"])
def test_an_unlabelled_axis_is_refused(axis):
    fig, ax = _good_lines()
    getattr(ax, f"set_{axis}label")("")
    with pytest.raises(FigureError, match=f"the {axis} axis has no label"):
        check_figure(fig)
    plt.close(fig)


def test_a_log_axis_must_say_so():
    fig, ax = _good_lines()
    ax.set_xscale("log")
    with pytest.raises(FigureError, match="logarithmic"):
        check_figure(fig)
    ax.set_xlabel("step (log scale)")
    check_figure(fig)
    plt.close(fig)


def test_a_bare_offset_is_refused():
    fig, ax = plt.subplots()
    ax.plot([1e7, 2e7, 3e7], [1.0, 2.0, 3.0])
    ax.set_xlabel("parameters")
    ax.set_ylabel("loss")
    with pytest.raises(FigureError, match="bare offset"):
        check_figure(fig)
    ax.ticklabel_format(style="plain", useOffset=False)
    check_figure(fig)
    plt.close(fig)


def test_colour_needs_a_colour_bar_or_a_shared_scale():
    data = np.random.default_rng(0).random((4, 4))
    fig, (a, b) = plt.subplots(1, 2)
    for ax in (a, b):
        ax.set_xlabel("key")
        ax.set_ylabel("query")
    a.imshow(data)
    b.imshow(data * 2)
    with pytest.raises(FigureError, match="no colour bar"):
        check_figure(fig)
    plt.close(fig)
    fig, (a, b) = plt.subplots(1, 2)
    for ax in (a, b):
        ax.set_xlabel("key")
        ax.set_ylabel("query")
    im = a.imshow(data, vmin=0, vmax=2)
    b.imshow(data * 2, vmin=0, vmax=2)
    fig.colorbar(im, ax=[a, b])
    check_figure(fig)  # one bar, one scale for both
    b.images[0].set_clim(0, 5)
    with pytest.raises(FigureError, match="no colour bar"):
        check_figure(fig)  # the second panel's scale is no longer the bar's
    plt.close(fig)


def test_a_legend_entry_hidden_under_another_line_is_refused():
    fig, ax = _good_lines()
    ax.plot([0, 1, 2], [3, 2, 1], label="top-k")
    ax.legend()
    with pytest.raises(FigureError, match="hidden"):
        check_figure(fig)
    ax.lines[-1].set_linestyle("--")  # dashed over solid: both visible
    check_figure(fig)
    plt.close(fig)


def test_shared_and_figure_labels_count():
    fig, axes = plt.subplots(2, 2, sharex=True, sharey=True)
    for ax in axes.flat:
        ax.plot([0, 1], [1, 0])
    axes[1, 0].set_xlabel("step")
    axes[1, 1].set_xlabel("step")
    with pytest.raises(FigureError, match="the y axis has no label"):
        check_figure(fig)
    fig.supylabel("loss")
    check_figure(fig)
    plt.close(fig)


def test_values_printed_on_cells_stand_for_a_colour_bar():
    fig, ax = plt.subplots()
    ax.imshow(np.arange(4).reshape(2, 2))
    ax.set(xlabel="next", ylabel="previous")
    with pytest.raises(FigureError, match="no colour bar"):
        check_figure(fig)
    for i in range(2):
        for j in range(2):
            ax.text(j, i, str(2 * i + j))
    check_figure(fig)
    plt.close(fig)


def test_bars_off_zero_need_their_values():
    fig, ax = plt.subplots()
    bars = ax.bar(["bigram", "mlp"], [2.45, 2.0])
    ax.set_ylim(1.8, 2.6)
    ax.set_xlabel("model")
    ax.set_ylabel("val loss")
    with pytest.raises(FigureError, match="start it at 0"):
        check_figure(fig)
    ax.bar_label(bars, fmt="%.3f")
    check_figure(fig)
    plt.close(fig)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_show_figures_only_through_the_checked_helper(path):
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    for cell in cells:
        src = "".join(cell["source"])
        assert "plt.show(" not in src and "fig.show(" not in src, \
            f"{path.name}: a figure shown with plt.show() skips show_figure's checks:\n{src[:200]}"
