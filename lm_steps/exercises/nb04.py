"""Checks for notebook 04 (WaveNet): ``FlattenConsecutive``'s forward and the 3-D BatchNorm statistics,
each against the package's layer (:mod:`lm_steps.layers`) on fresh inputs."""
from __future__ import annotations

import torch

from ..layers import BatchNorm1d, FlattenConsecutive
from . import Passed, check_function

__all__ = ["check_flatten_consecutive", "check_batchnorm_stats", "WRONG_ANSWERS"]

#: Plausible mistakes each check must catch (tests/test_exercises.py applies each to the worked solution):
#: exercise name -> [(text of the solution, what a learner might write instead), ...]. The find-the-bug
#: exercise (batchnorm_stats) is checked on its broken lines instead.
WRONG_ANSWERS = {
    "flatten_consecutive": [
        ("x.view(B, T // n, C * n)", "x.view(B, C * n, T // n)"),  # the two new axes swapped
        ("x.view(B, T // n, C * n)", "x.transpose(1, 2).reshape(B, T // n, C * n)"),  # features interleaved
        ("x = x.squeeze(1)", "x = x"),  # the length axis of 1 kept
    ],
}

# (B, T, C, n): a pair of neighbours, runs of 4, runs of 3, and T == n (one run: the length axis goes)
_FLATTEN_CASES = [(2, 8, 3, 2), (3, 8, 5, 4), (2, 6, 4, 3), (4, 4, 6, 4)]


def check_flatten_consecutive(flatten_consecutive) -> Passed:
    """``flatten_consecutive(x, n)``: (B, T, C) -> (B, T // n, C * n), or (B, C * n) when T == n."""

    def make_case(i):
        B, T, C, n = _FLATTEN_CASES[i]
        return torch.randn(B, T, C, generator=torch.Generator().manual_seed(4100 + i)), n

    return check_function(flatten_consecutive, lambda x, n: FlattenConsecutive(n)(x), make_case,
                          name="flatten_consecutive", n_cases=len(_FLATTEN_CASES), atol=0, rtol=0,
                          hint="x.view(B, T // n, C * n) puts each run of n positions side by side (the memory "
                               "order already has them there); then squeeze(1) when one position is left")


def check_batchnorm_stats(batchnorm_stats) -> Passed:
    """``batchnorm_stats(x) -> (mean, var)``: one mean and one (biased) variance per feature of ``x``,
    (B, C) or (B, T, C), shaped to broadcast against ``x``: (1, C) or (1, 1, C)."""

    def make_case(i):
        g = torch.Generator().manual_seed(4200 + i)
        shape = [(16, 4, 6), (20, 5), (8, 2, 10)][i]
        offsets = torch.randn(*shape[1:], generator=g, dtype=torch.float64)  # each position and feature its own level
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * 2 + offsets,)

    def package(x):
        bn = BatchNorm1d(x.size(-1), momentum=1.0).double()  # momentum 1: the running statistics are this batch's
        bn(x)
        n = x.numel() // x.size(-1)  # values per feature
        keep = (1,) * (x.dim() - 1) + (-1,)  # (1, C) or (1, 1, C)
        return bn.running_mean.view(keep), (bn.running_var * (n - 1) / n).view(keep)  # it keeps the unbiased variance

    return check_function(batchnorm_stats, package, make_case, name="batchnorm_stats", atol=1e-12, rtol=1e-10,
                          hint="each feature has one mean and one variance: reduce over every dimension but the "
                               "last (dims (0, 1) for (B, T, C), 0 for (B, C)), with keepdim=True")
