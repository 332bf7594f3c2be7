"""Checks for notebook 02 (the gradient bigram): the learner's training steps against the package's ``fit``."""
from __future__ import annotations

import torch

from ..bigram import NeuralBigram
from ..training import fit
from . import Passed, check_function

__all__ = ["check_gradient_step", "check_train_adam", "WRONG_ANSWERS"]

#: Plausible mistakes each check must catch (tests/test_exercises.py applies each to the worked solution).
WRONG_ANSWERS = {
    "gradient_step": [
        ("W -= lr * W.grad", "W += lr * W.grad"),  # a step up the gradient
        ("W -= lr * W.grad", "W -= W.grad"),  # the learning rate forgotten
        ("W.grad = None", "pass"),  # gradients pile up from step to step
    ],
}

V = 27  # the names vocabulary


def _case(seed: int, i: int):
    """A fresh (seed, xs, ys) case: a random bigram data set of 40 to 240 pairs."""
    g = torch.Generator().manual_seed(seed + i)
    n = 40 + 100 * i
    return torch.randint(0, V, (n,), generator=g), torch.randint(0, V, (n,), generator=g)


def check_gradient_step(gradient_step) -> Passed:
    """``gradient_step(W, xs, ys, lr) -> loss``: one full-batch gradient-descent step on W, in place.

    Three steps of it must land on the weights (and losses) of :func:`lm_steps.train.fit` with plain SGD,
    from the same starting W.
    """
    steps, lrs = 3, (10.0, 50.0, 2.0)

    def make_case(i):
        xs, ys = _case(2000, i)
        W0 = torch.randn(V, V, generator=torch.Generator().manual_seed(2100 + i))
        return W0, xs, ys, lrs[i]

    def package(W0, xs, ys, lr):
        net = NeuralBigram(V)
        with torch.no_grad():
            net.W.copy_(W0)
        history = fit(net, xs[:, None], ys, steps=steps, lr=lr, optimizer="sgd")
        return {"losses": history["loss"], "weights": net.W.detach()}

    def learner(W0, xs, ys, lr):
        W = W0.clone().requires_grad_(True)
        losses = [gradient_step(W, xs, ys, lr) for _ in range(steps)]
        return {"losses": losses, "weights": W.detach()}

    return check_function(learner if callable(gradient_step) else gradient_step, package, make_case,
                          name=f"gradient_step (weights and losses after {steps} steps)", atol=1e-4, rtol=1e-4,
                          hint="logits = F.one_hot(xs, num_classes=27).float() @ W, "
                               "loss = F.cross_entropy(logits, ys); "
                               "set W.grad = None before loss.backward() (gradients add up otherwise), then under "
                               "torch.no_grad() W -= lr * W.grad; return loss.item()")


def check_train_adam(train_adam) -> Passed:
    """``train_adam(model, X, Y, steps, lr) -> losses``: full-batch Adam on a NeuralBigram, as ``fit`` does it."""
    steps = 4

    def make_case(i):
        xs, ys = _case(2200, i)
        return 2300 + i, xs[:, None], ys, (1.0, 0.1, 0.5)[i]

    def package(seed, X, Y, lr):
        model = NeuralBigram(V, generator=torch.Generator().manual_seed(seed))
        history = fit(model, X, Y, steps=steps, lr=lr, optimizer="adam")
        return {"losses": history["loss"], "weights": model.W.detach()}

    def learner(seed, X, Y, lr):
        model = NeuralBigram(V, generator=torch.Generator().manual_seed(seed))
        losses = train_adam(model, X, Y, steps, lr)
        return {"losses": losses, "weights": model.W.detach()}

    return check_function(learner if callable(train_adam) else train_adam, package, make_case,
                          name=f"train_adam (weights and losses after {steps} steps)", atol=1e-5, rtol=1e-5,
                          hint="loss.backward() adds this step's gradient to .grad; call opt.zero_grad() before it "
                               "in every step, or each update follows the sum of all gradients so far")
