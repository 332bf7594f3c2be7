"""Training loops, as plain functions that return their history."""
from __future__ import annotations

from typing import Callable

import torch

from .evaluate import evaluate, lm_loss

__all__ = ["fit"]


def fit(model: torch.nn.Module, X: torch.Tensor, Y: torch.Tensor, *, steps: int, lr: float | Callable[[int], float],
        batch_size: int | None = None, optimizer: str = "sgd", weight_decay: float = 0.0,
        generator: torch.Generator | None = None, val: tuple[torch.Tensor, torch.Tensor] | None = None,
        eval_every: int = 0, progress: bool = False, device: str | torch.device = "cpu",
        callback: Callable[[int, torch.nn.Module], None] | None = None) -> dict:
    """Fit a model on (context -> next) examples ``X``, ``Y`` by (minibatch) gradient descent.

    ``batch_size=None`` uses the whole set every step. ``lr`` is a number or a function of the
    step. ``optimizer`` is ``"sgd"`` or ``"adamw"``; ``weight_decay`` with SGD is L2
    regularisation (it adds ``weight_decay * w`` to each gradient). Every ``eval_every`` steps
    (and at the end) the full ``val`` set is scored. ``callback(step, model)`` runs after each
    update (for diagnostics). Returns ``{"step", "loss", "lr", "val_step", "val_loss"}`` lists.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    X, Y = X.to(device), Y.to(device)
    lr_at = lr if callable(lr) else (lambda step: lr)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr_at(0), weight_decay=weight_decay)
    elif optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=lr_at(0), weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {optimizer!r}")
    history = {"step": [], "loss": [], "lr": [], "val_step": [], "val_loss": []}
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, desc="train")
    model.train()
    for step in range(steps):
        if batch_size is None:
            xb, yb = X, Y
        else:
            ix = torch.randint(0, len(X), (batch_size,), generator=generator).to(device)
            xb, yb = X[ix], Y[ix]
        logits, loss = model(xb, yb)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower the learning rate")
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history["step"].append(step)
        history["loss"].append(loss.item())
        history["lr"].append(lr_at(step))
        if callback is not None:
            callback(step, model)
        if val is not None and ((eval_every and (step + 1) % eval_every == 0) or step == steps - 1):
            history["val_step"].append(step)
            history["val_loss"].append(evaluate(model, *val, device=device)["loss"])
            model.train()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{history['loss'][-1]:.4f}")
    if bar is not None:
        bar.close()
    return history
