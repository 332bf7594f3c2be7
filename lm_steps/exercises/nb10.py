"""Checks for notebook 10 (scaling laws): each runs the learner's function and the package's on fresh inputs."""
from __future__ import annotations

import torch

from ..gpt import GPT, GPTConfig
from ..scaling import ScalingLaw, compute_optimal, non_embedding_params
from . import Passed, check_function

__all__ = ["check_count_params", "check_compute_optimal", "WRONG_ANSWERS"]

#: Plausible mistakes each check must catch: exercise name -> [(text of the solution, a wrong replacement)].
WRONG_ANSWERS = {
    "count_params": [
        ("if id(p) not in tables", "if True"),  # counts the embedding tables too
    ],
    "compute_optimal": [
        ("(C / 6) ** (law.beta / (law.alpha + law.beta))", "(C / 6) ** (law.alpha / (law.alpha + law.beta))"),  # swapped
        ("return N, C / (6 * N)", "return N, C / N"),  # forgot that a token costs 6 N operations
    ],
}


def check_count_params(count_params) -> Passed:
    """``count_params(model) -> int``: the parameters outside the token and position embedding tables."""

    def make_case(i):
        cfg = [dict(n_layer=1, n_head=2, n_embd=16), dict(n_layer=2, n_head=2, n_embd=24, tie_weights=False),
               dict(n_layer=3, n_head=4, n_embd=32, bias=True)][i]
        return (GPT(GPTConfig(vocab_size=50 + i, block_size=8 + i, **cfg), generator=torch.Generator().manual_seed(i)),)

    return check_function(count_params, non_embedding_params, make_case, name="count_params",
                          hint="sum p.numel() over model.parameters(), skipping the weight of every nn.Embedding "
                               "(collect their id()s first: a tied output layer shares the token table's tensor)")


def check_compute_optimal(compute_optimal_fn) -> Passed:
    """``compute_optimal(law, C) -> (N, D)``: the loss-minimising size and tokens at compute C = 6 N D."""

    def make_case(i):
        law = [ScalingLaw(1.69, 406.4, 410.7, 0.34, 0.28), ScalingLaw(1.0, 20.0, 60.0, 0.5, 0.3),
               ScalingLaw(0.5, 5.0, 9.0, 0.3, 0.45)][i]
        return law, [1e12, 3e15, 6e20][i]

    return check_function(compute_optimal_fn, compute_optimal, make_case, name="compute_optimal", atol=0, rtol=1e-9,
                          hint="G = (alpha A / (beta B)) ** (1 / (alpha + beta)), N = G * (C / 6) ** "
                               "(beta / (alpha + beta)), and the tokens are whatever the budget leaves: D = C / (6 N)")
