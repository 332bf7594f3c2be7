"""The training loop, as a plain function that returns its history.

:func:`train_loop` is the loop a learner reads (about nanoGPT's training step): set the learning
rate, draw a batch, forward, loss, backward, clip, update, evaluate now and then, one callback.
:func:`fit` runs it on (context -> next) example sets (stages 2-4). What a long run on a token
stream adds (checkpoints, exact resume, the best checkpoint, DistributedDataParallel) stands on
it one layer out, in :mod:`lm_steps.runs`, whose :func:`~lm_steps.runs.train` is ``lm_steps.train``.

:class:`StepLog` keeps each step's loss on the device and, on the device too, lets no update
through from the first step whose loss or gradient is not finite, so the host waits for the
device once per logging interval, not once per step; :meth:`StepLog.sync` raises the error.
"""
from __future__ import annotations

import contextlib
import functools
import math
import warnings
from typing import Callable

import torch

from .config import OPTIMIZERS, SCHEDULES, Recipe, Schedule, TrainConfig, lr_at
from .evaluation import evaluate
from .fixed_context import FixedContextLM, LastPosition
from .losses import lm_loss
from .utils import eval_mode, progress_bar

__all__ = ["train_loop", "StepLog", "fit", "adamw", "clip_grads", "estimate_loss", "grad_norm", "check_finite",
           "check_lr", "train_recipe", "TrainConfig", "Recipe", "Schedule", "lr_at", "SCHEDULES"]


def train_loop(model: torch.nn.Module, opt: torch.optim.Optimizer, batch: Callable, cfg: TrainConfig,
               log: StepLog, *, schedule: Callable[[int], float] | None = None, forward: Callable | None = None,
               evaluate: Callable[[int], None] | None = None,
               callback: Callable[[int, torch.nn.Module], None] | None = None) -> dict:
    """Train ``model`` with ``opt`` from step ``log.next_step`` to ``cfg.max_iters``; return ``log.history``.

    Each step takes the learning rate ``schedule(step)`` (default ``cfg.lr_schedule``), draws
    ``cfg.grad_accum`` batches ``x, y = batch()``, backpropagates their mean loss (``forward(x, y)
    -> (logits, loss)``, by default the model), clips the gradient norm to ``cfg.grad_clip`` (0:
    no clipping) and updates. ``evaluate(step)`` runs before every ``cfg.eval_interval``-th step
    and after the last one; ``callback(step, model)`` after every update.
    """
    schedule = cfg.lr_schedule if schedule is None else schedule
    forward = model if forward is None else forward
    model.train()
    for step in range(log.next_step, cfg.max_iters):
        if evaluate is not None and step % cfg.eval_interval == 0:
            evaluate(step)
        lr = schedule(step)
        for group in opt.param_groups:
            group["lr"] = lr
        loss = 0.0
        for _ in range(cfg.grad_accum):
            x, y = batch()
            logits, micro_loss = forward(x, y)
            (micro_loss / cfg.grad_accum).backward()
            loss = loss + micro_loss.detach() / cfg.grad_accum
        norm = log.step(step, lr, loss)  # the gradient norm; a step that is not finite updates nothing
        if cfg.grad_clip:
            clip_grads(model, cfg.grad_clip, norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if callback is not None:
            callback(step, model)
    if evaluate is not None:
        evaluate(cfg.max_iters)
    log.sync()  # every loss to the host; raises if a step was not finite
    return log.history


class StepLog:
    """The history of a training run; each step's loss stays on the device until :meth:`sync`.

    ``log.step(step, lr, loss)``, once per step after the backward pass, computes the gradient
    norm on the device and returns it. If the loss or the gradient is not finite it remembers the
    step (its loss, norm and which gradients were bad) and makes ``opt`` skip this update and
    every later one, through the ``found_inf`` flag that :class:`torch.amp.GradScaler` hands to
    torch's fused SGD, Adam and AdamW, all without the host waiting for the device. An optimizer
    without that flag is checked at every step instead (one wait per step). :meth:`sync`, once
    per evaluation, before every checkpoint and at the end, is the one wait: it moves the losses
    into :attr:`history` and raises ``FloatingPointError`` naming the first bad step. A ``with``
    block closes the progress bar (``progress=True``).
    """

    def __init__(self, model: torch.nn.Module, opt: torch.optim.Optimizer, history: dict | None = None, *,
                 total: int | None = None, progress: bool = False):
        self.history = {"step": [], "loss": [], "lr": []} if history is None else history
        self.names, self.params = zip(*[(n, p) for n, p in model.named_parameters() if p.requires_grad])
        self.opt, self.pending, self.failed = opt, [], None  # pending: (step, lr, loss on the device)
        self.on_device = getattr(opt, "_step_supports_amp_scaling", False)  # fused: takes opt.found_inf
        self.bar = progress_bar(total=total, initial=self.next_step, desc="train") if progress else None

    @property
    def next_step(self) -> int:
        """The step after the last one logged (0 for a new history)."""
        steps = self.history["step"] + [s for s, _, _ in self.pending]
        return steps[-1] + 1 if steps else 0

    def step(self, step: int, lr: float, loss: torch.Tensor) -> torch.Tensor:
        """Log step ``step``'s learning rate and (0-d) loss; return the gradient norm, all on the device."""
        norms = _grad_norms(self.params)  # (n_params,)
        norm = torch.linalg.vector_norm(norms)
        bad = ~(torch.isfinite(loss) & torch.isfinite(norm))
        record = torch.cat([loss.detach().reshape(1), norm.reshape(1), (~torch.isfinite(norms)).to(norm.dtype)])
        if self.failed is None:
            self.failed, self.first_step, self.first = bad, torch.full_like(bad, step, dtype=torch.long), record
        else:
            first = bad & ~self.failed  # only the first bad step is remembered
            self.first_step = torch.where(first, step, self.first_step)
            self.first = torch.where(first, record, self.first)
            self.failed = self.failed | bad
        self.pending.append((step, lr, loss.detach()))
        if self.on_device:
            self.opt.found_inf = self.failed.float()  # the optimizer's kernel skips the update while it is 1
        elif bool(self.failed):  # no such flag: wait for the device now
            self._raise()
        if self.bar is not None:
            self.bar.update(1)
        return norm

    def sync(self, *figures: torch.Tensor) -> list[float]:
        """Wait for the device once: move the pending losses into :attr:`history` and return
        ``figures`` (0-d tensors on the device) as floats. Raise ``FloatingPointError`` if a step
        logged so far was not finite."""
        if not self.pending and not figures:
            return []
        values = [loss for _, _, loss in self.pending] + list(figures)
        flag = [] if self.failed is None else [self.failed]
        dtype = functools.reduce(torch.promote_types, [v.dtype for v in values if v.is_floating_point()],
                                 torch.float32)
        host = torch.stack([v.reshape(()).to(dtype) for v in values + flag]).tolist()  # the one transfer
        if flag and host.pop():
            self._raise()
        for (step, lr, _), loss in zip(self.pending, host):
            self.history["step"].append(step)
            self.history["loss"].append(loss)
            self.history["lr"].append(lr)
        self.pending.clear()
        if self.bar is not None and self.history["loss"]:
            self.bar.set_postfix(loss=f"{self.history['loss'][-1]:.4f}")
        return host[len(host) - len(figures):]

    def _raise(self):
        step = int(self.first_step)
        loss, norm, *bad = self.first.tolist()
        lr = next((lr for s, lr, _ in self.pending if s == step), float("nan"))
        raise _non_finite(step, loss, lr, norm, next((n for n, b in zip(self.names, bad) if b), "?"))

    def __enter__(self) -> StepLog:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def _grad_norms(params) -> torch.Tensor:
    """The L2 norm of each parameter's gradient (0 where it has none), stacked: (n_params,)."""
    grads = [p.grad for p in params if p.grad is not None]
    if len(grads) < len(params):  # a parameter the loss did not reach: a zero gradient
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
    return torch.stack(torch._foreach_norm(grads))  # one kernel for them all, as clip_grad_norm_ does


def _non_finite(step: int, loss: float, lr, norm: float | None, bad: str = "?") -> FloatingPointError:
    """The error for step ``step``: its loss, or (``loss`` finite) its gradient, is not finite."""
    if not math.isfinite(loss):
        return FloatingPointError(
            f"step {step}: the loss is {loss}; the weights were not updated. "
            + ("Lower the learning rate (it is {:.3g}) or check the data.".format(lr) if step else
               "It is the first step, so the model or the data is at fault (check the inputs and the "
               "initialisation), not the learning rate."))
    return FloatingPointError(
        f"step {step}: the loss is finite ({loss:.4g}) but the gradient is not (norm {norm}), first in "
        f"parameter {bad!r}; the weights were not updated. Lower the learning rate (it is {lr:.3g}), use "
        f"gradient clipping or float32, or check the model for an operation with an infinite derivative.")


def clip_grads(model: torch.nn.Module, max_norm: float, norm: torch.Tensor) -> None:
    """Scale ``model``'s gradients so their global norm ``norm`` (already computed) is at most ``max_norm``."""
    if hasattr(torch.nn.utils, "clip_grads_with_norm_"):  # torch >= 2.6
        torch.nn.utils.clip_grads_with_norm_(model.parameters(), max_norm, norm)
        return
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    torch._foreach_mul_(grads, torch.clamp(max_norm / (norm + 1e-6), max=1.0))  # what clip_grad_norm_ does


def grad_norm(model: torch.nn.Module) -> torch.Tensor:
    """The global L2 norm of ``model``'s gradients (what ``clip_grad_norm_`` clips), a 0-d tensor."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6: the very norm clip_grad_norm_ computes
        return torch.nn.utils.get_total_norm(grads)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach()) for g in grads]))


def check_finite(model: torch.nn.Module, step: int, loss: float, lr: float, *, gradients: bool = False,
                 norm: torch.Tensor | None = None) -> None:
    """Raise ``FloatingPointError`` if ``loss`` or, with ``gradients``, the gradient norm (``norm``
    if already computed) is not finite, naming the step, which of the two went wrong, the first
    parameter with a non-finite gradient, and what to try. A check for one step that waits for
    the device; the loop uses :class:`StepLog`, which does not."""
    if not gradients:
        if not math.isfinite(loss):
            raise _non_finite(step, loss, lr, None)
        return
    norm = grad_norm(model) if norm is None else norm
    if bool(torch.isfinite(norm)):
        return
    bad = next((name for name, p in model.named_parameters()
                if p.grad is not None and not bool(torch.isfinite(p.grad).all())), "?")
    raise _non_finite(step, loss, lr, norm.item(), bad)


def check_lr(lr, step: int) -> float:
    """``lr`` (the learning rate of step ``step``) if it is a finite number >= 0, else a ValueError
    naming it and the step: SGD with a NaN rate would turn every weight into NaN without a word."""
    try:  # a number, or a one-element tensor (e.g. one entry of torch.logspace)
        value = None if isinstance(lr, (bool, str, bytes)) else float(lr)
    except (TypeError, ValueError, RuntimeError):
        value = None
    if value is None or not 0 <= value < math.inf:
        raise ValueError(f"lr must be a finite number >= 0 (or a function of the step returning one), "
                         f"got {lr!r} at step {step}")
    return lr


def adamw(model: torch.nn.Module, *, lr: float, betas: tuple[float, float] = (0.9, 0.99),
          weight_decay: float = 0.1, fused: bool = True) -> torch.optim.AdamW:
    """AdamW over ``model``'s trainable parameters, with weight decay on matrices only.

    Matrices (embeddings, linear weights) decay; vectors (biases, LayerNorm gains) do not. With
    ``fused``, it is torch's fused implementation where this torch has one for the parameters'
    device (CUDA, and the CPU from torch 2.4: a third of the for-loop version's time on the baby
    GPT), else torch's default one. The same update either way, up to rounding.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return _fused_if_possible(torch.optim.AdamW, groups, fused, lr=lr, betas=betas)


def _fused_if_possible(cls, params, fused: bool = True, **kw) -> torch.optim.Optimizer:
    if fused:
        try:
            return cls(params, fused=True, **kw)
        except (RuntimeError, ValueError, TypeError):  # no fused kernel for this device or dtype in this torch
            pass
    return cls(params, **kw)


@torch.no_grad()
def estimate_loss(model: torch.nn.Module, batch: Callable, cfg: TrainConfig, *, autocast=None) -> dict[str, float]:
    """Mean loss over ``cfg.eval_iters`` batches of each split, as nanoGPT's ``estimate_loss``.

    ``batch(split, generator)`` gives ``(x, y)``; the batches come from a generator seeded with
    ``cfg.seed + 1`` at every call, so every evaluation sees the same batches.
    """
    return dict(zip(("train", "val"), _estimate(model, batch, cfg, autocast=autocast).tolist()))


@torch.no_grad()
def _estimate(model, batch, cfg: TrainConfig, *, autocast=None) -> torch.Tensor:
    """:func:`estimate_loss` left on the device: a tensor (train loss, val loss)."""
    means = []
    with eval_mode(model):
        for split in ("train", "val"):
            g = torch.Generator().manual_seed(cfg.seed + 1)
            losses = []
            for _ in range(cfg.eval_iters):
                x, y = batch(split, g)
                with autocast or contextlib.nullcontext():
                    logits, _ = model(x)
                losses.append(lm_loss(logits, y))
            means.append(torch.stack(losses).mean() if losses else torch.zeros(()))
    return torch.stack(means)


def _autocast(cfg: TrainConfig, device: torch.device):
    use_bf16 = cfg.dtype == "bfloat16" or (
        cfg.dtype == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())
    return torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()


# ----------------------------------------------------------------------------- example sets (stages 2-4)
def fit(model: torch.nn.Module, X: torch.Tensor, Y: torch.Tensor, recipe: Recipe | None = None, *,
        steps: int | None = None, lr: float | Callable[[int], float] | None = None, batch_size: int | None = None,
        optimizer: str | None = None, weight_decay: float | None = None,
        generator: torch.Generator | None = None, val: tuple[torch.Tensor, torch.Tensor] | None = None,
        eval_every: int = 0, progress: bool = False, device: str | torch.device = "cpu",
        callback: Callable[[int, torch.nn.Module], None] | None = None) -> dict:
    """Fit a model on (context -> next) examples ``X``, ``Y`` by (minibatch) gradient descent.

    How to train is a :class:`~lm_steps.config.Recipe` (``fit(LastPosition(model), X, Y, recipe)``)
    or the keywords: ``steps``; ``lr``, a number or a function of the step; ``batch_size`` (None:
    the whole set every step); ``optimizer``, ``"sgd"`` (the default), ``"adam"`` or ``"adamw"``;
    ``weight_decay``: with SGD and Adam, L2 regularisation of every parameter (it adds
    ``weight_decay * w`` to each gradient, the gradient of ``weight_decay / 2 * ||w||^2``); with
    AdamW, decoupled weight decay of the matrices only, the optimizer :func:`adamw` builds (betas
    0.9, 0.999). Every ``eval_every`` steps (and at the end) the full ``val`` set is scored.
    ``callback(step, model)`` runs after each update (for diagnostics). It is :func:`train_loop`
    over random rows of ``X``; returns ``{"step", "loss", "lr", "val_step", "val_loss"}`` lists.
    """
    if recipe is not None:
        if steps is not None or lr is not None or batch_size is not None or optimizer is not None \
                or weight_decay is not None:
            raise TypeError("fit() takes a recipe or steps=, lr=, batch_size=, optimizer=, weight_decay=, not both")
        steps, lr, batch_size = recipe.steps, recipe.lr_schedule, recipe.batch_size
        optimizer, weight_decay = recipe.optimizer, recipe.weight_decay
    if steps is None or lr is None:
        raise TypeError("fit() needs steps= and lr= (or a Recipe)")
    optimizer, weight_decay = optimizer or "sgd", 0.0 if weight_decay is None else weight_decay
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0 (0 turns it off), got {weight_decay}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (or None for the whole set every step), got {batch_size}")
    if len(X) == 0 or len(X) != len(Y):
        raise ValueError(f"need as many targets as examples, at least one: got {len(X)} examples, {len(Y)} targets")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    X, Y = X.to(device), Y.to(device)
    lr_of = (lambda step: float(check_lr(lr(step), step))) if callable(lr) else (lambda step: float(check_lr(lr, step)))
    lr0, params = lr_of(0), [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adamw":
        opt = adamw(model, lr=lr0, betas=(0.9, 0.999), weight_decay=weight_decay)
    else:
        opt = _fused_if_possible(torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam, params,
                                 lr=lr0, weight_decay=weight_decay)

    def batch():
        if batch_size is None:
            return X, Y
        ix = torch.randint(0, len(X), (batch_size,), generator=generator).to(device)
        return X[ix], Y[ix]

    # the loop's shape: steps, no clipping, an evaluation every eval_every steps (the rate comes from lr_of)
    shape = TrainConfig(max_iters=steps, batch_size=batch_size or len(X), warmup_iters=0, grad_clip=0.0,
                        eval_interval=eval_every or max(steps, 1), eval_iters=0, dtype="float32")
    history = {"step": [], "loss": [], "lr": [], "val_step": [], "val_loss": []}
    with StepLog(model, opt, history, total=steps, progress=progress) as log:

        def score(step):  # after `step` updates; fit records the index of the last one
            if step > 0:
                log.sync()
                history["val_step"].append(step - 1)
                history["val_loss"].append(evaluate(model, *val, device=device)["loss"])

        return train_loop(model, opt, batch, shape, log, schedule=lr_of, evaluate=score if val is not None else None,
                          callback=callback)


def train_recipe(model: FixedContextLM, X: torch.Tensor, Y: torch.Tensor, recipe: Recipe, **fit_kw) -> dict:
    """Deprecated: ``fit(LastPosition(model), X, Y, recipe, **fit_kw)``, which this calls."""
    warnings.warn("train_recipe(model, X, Y, recipe) is deprecated and goes in the next release; use "
                  "fit(LastPosition(model), X, Y, recipe)", DeprecationWarning, stacklevel=2)
    return fit(LastPosition(model), X, Y, recipe, **fit_kw)
