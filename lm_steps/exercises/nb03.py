"""Checks for notebook 03 (the MLP): the learner's forward pass and loops against ``lm_steps.mlp`` and ``fit``."""
from __future__ import annotations

import math

import torch

from ..fixed_context import LastPosition
from ..mlp import MLP, MLPConfig
from ..training import fit
from . import Passed, check_function

__all__ = ["check_mlp_forward", "check_train_loop", "check_train_at_best_rate", "WRONG_ANSWERS"]

#: Plausible mistakes each check must catch (tests/test_exercises.py applies each to the worked solution).
WRONG_ANSWERS = {
    "mlp_forward": [
        ("h = torch.tanh(x @ W1 + b1)", "h = x @ W1 + b1"),  # no non-linearity
        ("x = emb.view(emb.shape[0], -1)", "x = emb.transpose(1, 2).reshape(emb.shape[0], -1)"),  # interleaved
        ("return h @ W2 + b2", "return h @ W2"),  # the output bias forgotten
    ],
    "train_loop": [
        ("ix = torch.randint(0, len(X), (batch_size,), generator=generator)",
         "ix = torch.randint(0, len(X), (batch_size,))"),  # batches from the global generator
        ("loss = F.cross_entropy(logits, Y[ix])", "loss = F.cross_entropy(logits, Y[:batch_size])"),  # wrong targets
        ("p -= lr * p.grad", "p += lr * p.grad"),  # a step up the gradient
    ],
}

V = 27  # the names vocabulary


def _sizes(i: int) -> tuple[int, int, int]:
    """(block_size, n_embd, n_hidden) of case ``i``: the notebook's context of 3 first, then others."""
    return ((3, 2, 16), (4, 5, 7), (2, 3, 20))[i % 3]


def _mlp(i: int, seed: int) -> MLP:
    block, d, h = _sizes(i)
    return MLP(MLPConfig(vocab_size=V, block_size=block, n_embd=d, n_hidden=h),
               generator=torch.Generator().manual_seed(seed))


def _examples(i: int, seed: int, n: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (n, _sizes(i)[0]), generator=g), torch.randint(0, V, (n,), generator=g)


def check_mlp_forward(mlp_forward) -> Passed:
    """``mlp_forward(C, W1, b1, W2, b2, X) -> logits``: the MLP's logits (N, V) for contexts X (N, block_size)."""

    def make_case(i):
        block, d, h = _sizes(i)
        g = torch.Generator().manual_seed(3000 + i)
        C = torch.randn(V, d, generator=g)
        W1 = torch.randn(block * d, h, generator=g) / math.sqrt(block * d)
        b1, W2, b2 = torch.randn(h, generator=g), torch.randn(h, V, generator=g), torch.randn(V, generator=g)
        return C, W1, b1, W2, b2, _examples(i, 3100 + i, n=20)[0]

    def package(C, W1, b1, W2, b2, X):
        model = MLP(MLPConfig(vocab_size=C.shape[0], block_size=X.shape[1], n_embd=C.shape[1], n_hidden=W1.shape[1]))
        with torch.no_grad():
            for p, value in zip((model.wte.weight, model.net[0].weight, model.net[0].bias, model.net[2].weight,
                                 model.net[2].bias), (C, W1, b1, W2, b2)):
                p.copy_(value)
            return model.predict(X)

    return check_function(mlp_forward, package, make_case, name="mlp_forward", atol=1e-5, rtol=1e-5,
                          hint="emb = C[X] is (N, block_size, d); x = emb.view(N, -1) puts a context's vectors side "
                               "by side; h = torch.tanh(x @ W1 + b1); the logits are h @ W2 + b2")


def _trained(train):
    """Run ``train(model, X, Y, ...)`` (the learner's loop, or ``fit``) on a fresh case; return weights and losses."""

    def run(i, *args):
        model = _mlp(i, 3200 + i)
        X, Y = _examples(i, 3300 + i)
        losses = train(model, X, Y, *args)
        return {"losses": losses, **{name: p.detach() for name, p in model.named_parameters()}}

    return run


def check_train_loop(train_loop) -> Passed:
    """``train_loop(model, X, Y, steps, batch_size, lr, generator) -> losses``: minibatch SGD, as ``fit`` does it."""

    def make_case(i):
        return i, 5, (32, 8, 64)[i], (0.1, 0.5, 0.05)[i], torch.Generator().manual_seed(3400 + i)

    def package(model, X, Y, steps, batch_size, lr, generator):
        return fit(LastPosition(model), X, Y, steps=steps, lr=lr, batch_size=batch_size, generator=generator,
                   optimizer="sgd")["loss"]

    return check_function(_trained(train_loop) if callable(train_loop) else train_loop, _trained(package),
                          make_case, name="train_loop (weights and losses after 5 steps)", atol=1e-5, rtol=1e-4,
                          hint="each step: ix = torch.randint(0, len(X), (batch_size,), generator=generator); "
                               "loss = F.cross_entropy(model.predict(X[ix]), Y[ix]); set every p.grad = None, "
                               "loss.backward(), then under torch.no_grad() p -= lr * p.grad for every parameter p; "
                               "collect loss.item()")


def check_train_at_best_rate(train_at_best_rate) -> Passed:
    """``train_at_best_rate(model, X, Y, best_lr, steps, generator) -> losses``: SGD at the range test's rate."""

    def make_case(i):
        return i, (0.2, 0.1, 0.3)[i], 20, torch.Generator().manual_seed(3500 + i)

    def package(model, X, Y, best_lr, steps, generator):
        return fit(LastPosition(model), X, Y, steps=steps, lr=best_lr, batch_size=32, generator=generator,
                   optimizer="sgd")["loss"]

    return check_function(_trained(train_at_best_rate) if callable(train_at_best_rate) else train_at_best_rate,
                          _trained(package), make_case, name="train_at_best_rate", atol=1e-5, rtol=1e-4,
                          hint="the range test's best rate is already the rate to train at: the loss there was "
                               "lowest, and ten times it is far up the rising side of the curve; pass lr=best_lr")
