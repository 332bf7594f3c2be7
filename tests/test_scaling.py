"""The scaling-law fit recovers a known law, the compute-optimal size is the minimum along a budget."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import gen, tiny_gpt
from lm_steps.scaling import CHINCHILLA, ScalingLaw, compute_optimal, fit_scaling_law, non_embedding_params, predicted_loss


@pytest.mark.parametrize("law", [CHINCHILLA, ScalingLaw(E=1.2, A=30.0, B=80.0, alpha=0.4, beta=0.35)])
def test_compute_optimal_is_the_minimum_along_the_budget(law):
    C = 1e15
    N, D = compute_optimal(law, C)
    assert math.isclose(6 * N * D, C, rel_tol=1e-12)
    best = predicted_loss(law, N, D)
    for f in (0.8, 0.95, 1.05, 1.25):
        assert predicted_loss(law, N * f, C / (6 * N * f)) > best


def test_fit_recovers_the_compute_optimal_size_of_a_known_law():
    law = ScalingLaw(E=1.2, A=30.0, B=80.0, alpha=0.4, beta=0.35)
    N = [n for n in (5e3, 2e4, 5e4, 1e5) for _ in range(3)]
    D = [d for _ in range(4) for d in (2.5e5, 5e5, 1e6)]
    g = gen(0)
    L = [predicted_loss(law, n, d) * (1 + 0.002 * torch.randn((), generator=g).item()) for n, d in zip(N, D)]
    fit = fit_scaling_law(N, D, L)
    residual = max(abs(predicted_loss(fit, n, d) - l) for n, d, l in zip(N, D, L))
    assert residual < 0.02
    n_true, _ = compute_optimal(law, 6e11)
    n_fit, _ = compute_optimal(fit, 6e11)
    assert abs(math.log(n_fit / n_true)) < 0.2  # within 20% inside the grid's range


def test_fit_with_E_held_fixed_keeps_it_and_fits_the_rest():
    law = ScalingLaw(E=1.2, A=30.0, B=80.0, alpha=0.4, beta=0.35)
    N = [n for n in (5e3, 2e4, 5e4, 1e5) for _ in range(3)]
    D = [d for _ in range(4) for d in (2.5e5, 5e5, 1e6)]
    L = [predicted_loss(law, n, d) for n, d in zip(N, D)]
    right, wrong = fit_scaling_law(N, D, L, E=1.2), fit_scaling_law(N, D, L, E=0.6)
    assert right.E == 1.2 and wrong.E == 0.6
    miss = lambda f: max(abs(predicted_loss(f, n, d) - l) for n, d, l in zip(N, D, L))  # noqa: E731
    assert miss(right) < 0.01 and miss(wrong) > miss(right)
    with pytest.raises(ValueError, match="positive"):
        fit_scaling_law(N, D, L, E=0.0)


@pytest.mark.parametrize("args,message", [
    (([1e3] * 4, [1e5] * 4, [3.0] * 4), "at least 5"),
    (([1e3, 2e3, 3e3, 4e3, -5e3], [1e5] * 5, [3.0] * 5), "positive and finite"),
])
def test_fit_refuses_too_few_or_bad_points(args, message):
    with pytest.raises(ValueError, match=message):
        fit_scaling_law(*args)


def test_non_embedding_params_skip_the_tables_and_a_tied_head():
    tied, untied = tiny_gpt(), tiny_gpt(tie_weights=False)
    emb = sum(m.weight.numel() for m in tied.modules() if isinstance(m, torch.nn.Embedding))
    assert non_embedding_params(tied) == tied.num_params() - emb
    assert non_embedding_params(untied) == non_embedding_params(tied) + untied.lm_head.weight.numel()
