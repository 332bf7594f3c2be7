"""What more compute buys: fitting a scaling law to small GPTs (Hoffmann et al., 2022, "Chinchilla").

A model of ``N`` parameters trained on ``D`` tokens reaches a loss that the Chinchilla paper writes
as ``L(N, D) = E + A / N**alpha + B / D**beta``: an irreducible loss ``E`` plus one term that a
bigger model removes and one that more data removes. Training costs about ``C = 6 N D``
floating-point operations (a multiply and an add per parameter per token, forward, and twice that
backward). For a budget ``C``, the size that minimises the loss is (setting the derivative along
``D = C / 6N`` to zero) ``N_opt = G * (C / 6) ** (beta / (alpha + beta))`` with
``G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))``.

:func:`fit_scaling_law` fits the five numbers to measured ``(N, D, loss)`` triples, as the paper's
approach 3 does: a Huber loss on the log of the predicted loss, minimised from a grid of starts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

__all__ = ["ScalingLaw", "CHINCHILLA", "predicted_loss", "compute_optimal", "fit_scaling_law", "non_embedding_params"]


@dataclass(frozen=True)
class ScalingLaw:
    """``L(N, D) = E + A / N**alpha + B / D**beta`` (losses in nats per token)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float


#: The Chinchilla paper's fit (Hoffmann et al. 2022, approach 3; MassiveText, nats per token of its tokenizer).
CHINCHILLA = ScalingLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)


def predicted_loss(law: ScalingLaw, N, D):
    """``E + A / N**alpha + B / D**beta`` for numbers or tensors ``N`` (parameters) and ``D`` (tokens)."""
    return law.E + law.A / N ** law.alpha + law.B / D ** law.beta


def compute_optimal(law: ScalingLaw, C: float) -> tuple[float, float]:
    """``(N_opt, D_opt)``: the size and token count that minimise ``law``'s loss at compute ``C = 6 N D``."""
    a, b = law.alpha, law.beta
    G = (a * law.A / (b * law.B)) ** (1 / (a + b))
    N = G * (C / 6) ** (b / (a + b))
    return N, C / (6 * N)


def non_embedding_params(model: torch.nn.Module) -> int:
    """Parameters outside the token and position tables (Kaplan et al.'s N: what scales the compute per token)."""
    skip = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def fit_scaling_law(N: Sequence[float], D: Sequence[float], loss: Sequence[float], *, delta: float = 1e-3,
                    steps: int = 300, E: float | None = None) -> ScalingLaw:
    """Fit :class:`ScalingLaw` to measured losses: minimise the Huber loss (``delta``) between
    ``log L(N, D)`` and ``log loss``, writing ``A = exp(a)``, ``B = exp(b)``, ``E = exp(e)`` so each stays
    positive, with L-BFGS from a small grid of starting points (as the paper does); the best fit wins.
    With ``E`` given, the irreducible loss is held at that value and only the other four are fitted."""
    if not len(N) == len(D) == len(loss) >= 5:
        raise ValueError(f"need at least 5 (N, D, loss) triples of equal length to fit 5 numbers, got "
                         f"{len(N)}, {len(D)}, {len(loss)}")
    logN, logD = torch.tensor(N, dtype=torch.float64).log(), torch.tensor(D, dtype=torch.float64).log()
    target = torch.tensor(loss, dtype=torch.float64).log()
    if not bool(torch.isfinite(logN).all() & torch.isfinite(logD).all() & torch.isfinite(target).all()):
        raise ValueError("N, D and the losses must be positive and finite")
    if E is not None and not E > 0:
        raise ValueError(f"a fixed E must be positive, got {E}")
    e_fixed = None if E is None else torch.tensor(math.log(E), dtype=torch.float64)

    def objective(p):
        e, a, b, alpha, beta = p
        e = e if e_fixed is None else e_fixed
        # log(E + A/N^alpha + B/D^beta), each term through logsumexp for accuracy
        pred = torch.logsumexp(torch.stack([e.expand_as(logN), a - alpha * logN, b - beta * logD]), dim=0)
        return torch.nn.functional.huber_loss(pred, target, delta=delta, reduction="sum")

    best, best_value = None, math.inf
    for e0 in (-1.0, 0.0, 0.5):
        for a0 in (0.0, 5.0, 10.0):
            for alpha0 in (0.2, 0.5):
                p = torch.tensor([e0, a0, a0, alpha0, alpha0], dtype=torch.float64, requires_grad=True)
                opt = torch.optim.LBFGS([p], max_iter=steps, line_search_fn="strong_wolfe")

                def closure():
                    opt.zero_grad()
                    value = objective(p)
                    value.backward()
                    return value

                opt.step(closure)
                with torch.no_grad():
                    value = float(objective(p))
                if math.isfinite(value) and value < best_value and bool((p[3:] > 0).all()):
                    best, best_value = p.detach().clone(), value
    if best is None:
        raise ValueError("no fit converged to positive exponents; measure more (N, D) points")
    e, a, b, alpha, beta = best.tolist()
    return ScalingLaw(E=math.exp(e) if E is None else E, A=math.exp(a), B=math.exp(b), alpha=alpha, beta=beta)
