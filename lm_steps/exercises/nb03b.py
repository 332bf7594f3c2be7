"""Checks for notebook 03b (backprop by hand): each hand-written backward piece against :mod:`lm_steps.backprop`.

Every check runs in float64 on fresh random inputs, with tolerances far below any real mistake (a
missing 1/n, a transposed matrix, the wrong variance) and far above float64 rounding.
"""
from __future__ import annotations

import torch

from ..backprop import batchnorm_backward, cross_entropy_backward, linear_backward, tanh_backward
from . import Passed, check_function

__all__ = ["check_cross_entropy_grad", "check_linear_grad", "check_tanh_grad", "check_batchnorm_grad",
           "WRONG_ANSWERS"]

#: Plausible mistakes each check must catch (tests/test_exercises.py applies each to the worked solution):
#: exercise name -> [(text of the solution, what a learner might write instead), ...].
WRONG_ANSWERS = {
    "cross_entropy_grad": [
        ("return dlogits / n", "return dlogits"),  # forgot the mean's 1/n
        ("F.softmax(logits, dim=1)", "F.softmax(logits, dim=0)"),  # softmax over the batch, not the characters
        ("] -= 1", "] += 1"),  # onehot added instead of subtracted
    ],
    "linear_grad": [
        ("dW = x.T @ dout", "dW = dout.T @ x"),  # transposed: (fan_out, fan_in)
        ("db = dout.sum(0)", "db = dout.mean(0)"),  # the bias is broadcast over the batch: its gradient is a sum
        ("dx = dout @ W.T", "dx = dout @ W"),  # W not transposed
    ],
    "tanh_grad": [
        ("(1 - h ** 2) * dh", "(1 - torch.tanh(h) ** 2) * dh"),  # tanh's derivative taken at the output, not the input
        ("(1 - h ** 2) * dh", "(1 - h) ** 2 * dh"),  # the square in the wrong place
    ],
    "batchnorm_grad": [
        ("unbiased=False", "unbiased=True"),  # the n - 1 variance: not the one the forward pass divided by
        ("n * dout - dout.sum(0)", "dout - dout.sum(0)"),  # the n dropped
        (" - xhat * (dout * xhat).sum(0)", ""),  # the path through the variance left out
    ],
}

TOL = dict(atol=1e-10, rtol=1e-8)  # float64: rounding is about 1e-16, every mistake above is far larger


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def check_cross_entropy_grad(cross_entropy_grad) -> Passed:
    """``cross_entropy_grad(logits, targets) -> dlogits``: the gradient of the mean cross-entropy, (N, V)."""

    def make_case(i):
        g = _gen(3100 + i)
        n, V = (4, 16, 31)[i], (27, 5, 27)[i]
        return 3 * _randn(g, n, V), torch.randint(0, V, (n,), generator=g)

    return check_function(cross_entropy_grad, cross_entropy_backward, make_case, name="cross_entropy_grad", **TOL,
                          hint="take the softmax of each row (dim=1), subtract 1 at each row's target "
                               "(dlogits[range(n), targets] -= 1), then divide by the number of rows n")


def check_linear_grad(linear_grad) -> Passed:
    """``linear_grad(x, W, dout) -> (dx, dW, db)`` for ``out = x @ W + b``."""

    def make_case(i):
        g = _gen(3200 + i)
        n, fan_in, fan_out = (8, 32, 5)[i], (6, 7, 30)[i], (3, 4, 27)[i]
        return _randn(g, n, fan_in), _randn(g, fan_in, fan_out), _randn(g, n, fan_out)

    return check_function(linear_grad, linear_backward, make_case, name="linear_grad", **TOL,
                          hint="match the shapes: dx = dout @ W.T is (N, fan_in), dW = x.T @ dout is (fan_in, fan_out), "
                               "and db, like b, is (fan_out,): dout summed over the batch")


def check_tanh_grad(tanh_grad) -> Passed:
    """``tanh_grad(h, dh) -> dpre`` for ``h = tanh(pre)``, written with the output ``h``."""

    def make_case(i):
        g = _gen(3300 + i)
        n, d = (4, 32, 7)[i], (5, 200, 3)[i]
        return torch.tanh(2 * _randn(g, n, d)), _randn(g, n, d)

    return check_function(tanh_grad, tanh_backward, make_case, name="tanh_grad", **TOL,
                          hint="the derivative of tanh is 1 - tanh(x)^2, and h already is tanh(x): (1 - h**2) * dh")


def check_batchnorm_grad(batchnorm_grad) -> Passed:
    """``batchnorm_grad(x, gamma, dout, eps) -> (dx, dgamma, dbeta)`` for training-mode BatchNorm of ``x`` (N, C)."""

    def make_case(i):
        g = _gen(3400 + i)
        n, C, eps = (8, 32, 5)[i], (5, 7, 3)[i], (1e-5, 1e-3, 0.1)[i]
        x = _randn(g, n, C) * (0.5 + 3 * torch.rand(C, generator=g, dtype=torch.float64)) + _randn(g, C)
        return x, 1 + 0.3 * _randn(g, C), _randn(g, n, C), eps

    return check_function(batchnorm_grad, batchnorm_backward, make_case, name="batchnorm_grad", **TOL,
                          hint="xhat = (x - mean) / sqrt(var + eps) with the biased variance (unbiased=False); "
                               "dx = gamma / (n * std) * (n * dout - dout.sum(0) - xhat * (dout * xhat).sum(0)), "
                               "dgamma = (xhat * dout).sum(0), dbeta = dout.sum(0)")
