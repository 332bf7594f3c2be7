"""The stage 3-4 plots render to files, fed by the diagnostics helpers."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lm_steps import plots  # noqa: E402
from lm_steps.config import Recipe  # noqa: E402
from lm_steps.diagnostics import (UpdateRatioTracker, cosine_similarity, dead_units, layer_stats,  # noqa: E402
                                  param_stats, saturation, vowels_first)
from lm_steps.fixed_context import LastPosition  # noqa: E402
from lm_steps.mlp import MLP, MLPConfig  # noqa: E402
from lm_steps.training import fit  # noqa: E402

LABELS = list(".abcdefghijklmnopqrstuvwxyz")



@pytest.fixture(scope="module")
def trained():
    g = torch.Generator().manual_seed(0)
    model = MLP(MLPConfig(n_embd=2, n_hidden=20, n_layers=2, batchnorm=True), generator=g)
    X = torch.randint(0, 27, (128, 3), generator=g)
    Y = torch.randint(0, 27, (128,), generator=g)
    tracker = UpdateRatioTracker(model)
    fit(LastPosition(model), X, Y, Recipe(steps=30, batch_size=32, lr=0.1, final_lr=0.01), generator=g, callback=tracker)
    return model, X, Y, tracker


def _save(ax, path):
    ax.figure.savefig(path)
    plt.close(ax.figure)
    assert path.stat().st_size > 1000


def test_diagnostics_values(trained):
    model, X, Y, tracker = trained
    stats = layer_stats(LastPosition(model), X, Y)
    assert [s.kind for s in stats] == ["Tanh", "Tanh"] and all(s.grad is not None for s in stats)
    assert stats[0].out.shape == (128, 20) and 0 <= stats[0].saturated <= 1
    rows = param_stats(model)
    assert [r["name"] for r in rows] == tracker.names  # the embedding and the three weight matrices
    assert len(rows) == 4 and all(r["ratio"] > 0 for r in rows)
    assert tracker.ratios.shape == (30, 4) and np.isfinite(tracker.ratios).all()
    h = torch.tensor([[1.0, 0.0], [-1.0, 0.5]])
    assert saturation(h) == 0.5 and dead_units(h) == 1
    sim = cosine_similarity(torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]]))
    torch.testing.assert_close(sim, torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
                               atol=1e-6, rtol=0)
    order = vowels_first(LABELS)
    assert [LABELS[i] for i in order[:6]] == list("aeiou.") and sorted(order) == list(range(27))


def test_plots_render(trained, tmp_path):
    model, X, Y, tracker = trained
    stats = layer_stats(LastPosition(model), X, Y)
    _save(plots.lr_range(10 ** np.linspace(-3, 0, 100), np.linspace(3, 2, 100)), tmp_path / "lr.png")
    _save(plots.activation_histograms(stats), tmp_path / "act.png")
    _save(plots.gradient_histograms(stats), tmp_path / "grad.png")
    _save(plots.weight_gradient_histograms(param_stats(model)), tmp_path / "wgrad.png")
    _save(plots.update_ratios(tracker.ratios, tracker.names), tmp_path / "ud.png")
    _save(plots.saturation_map(stats[0].out), tmp_path / "sat.png")
    _save(plots.embedding_scatter(model.wte.weight, LABELS), tmp_path / "emb.png")
    sim = cosine_similarity(model.wte.weight)
    _save(plots.similarity_heatmap(sim, LABELS, order=vowels_first(LABELS)), tmp_path / "sim.png")
    with pytest.raises(ValueError):
        plots.embedding_scatter(torch.zeros(27, 3), LABELS)


def test_loss_curve_points_and_legend_references():
    history = {"step": list(range(10)), "loss": [3.0 - 0.1 * i for i in range(10)],
               "val_step": [0, 5, 9], "val_loss": [3.0, 2.6, 2.2]}
    ax = plots.loss_curve(history, val_line=False, reference={"uniform": 3.3, "unigram": 2.8}, reference_at="legend",
                          legend_outside=True)
    val = next(line for line in ax.lines if line.get_label() == "validation")
    assert val.get_linestyle() == "None" and val.get_marker() == "o"  # points, no line joining them
    assert not ax.texts  # the references are named in the legend, not written over the curve
    names = [t.get_text() for t in ax.get_legend().get_texts()]
    assert names[-2:] == ["uniform", "unigram"]
    styles = [line.get_linestyle() for line in ax.lines if line.get_label() in ("uniform", "unigram")]
    assert len(set(styles)) == 2  # told apart in the legend
    with pytest.raises(ValueError, match="reference_at"):
        plots.loss_curve(history, reference_at="middle")
    plt.close("all")
