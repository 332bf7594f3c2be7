"""Training loops, as plain functions that return their history.

``fit`` trains on (context -> next) example sets (stages 2-4). ``train`` trains a sequence
model on a token stream (stage 5 on): AdamW, a warmup + cosine (or inverse square root)
schedule, clipping, accumulation, bf16 autocast, periodic evaluation, checkpoints and exact
resume, and DistributedDataParallel when run under ``torchrun``.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from typing import Callable, Collection

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .checkpoint import (CheckpointError, check_model_config, check_tokenizer_dict, load_checkpoint, restore_model,
                         save_checkpoint)
from .config import OPTIMIZERS, SCHEDULES, Recipe, TrainConfig, lr_at
from .data import get_batch
from .evaluate import evaluate
from .fixed_context import FixedContextLM, LastPosition
from .losses import lm_loss
from .utils import eval_mode, unwrap

__all__ = ["fit", "check_lr", "train_recipe", "TrainConfig", "Recipe", "lr_at", "adamw", "train", "estimate_loss",
           "grad_norm", "check_finite", "check_resumable", "RUN_INDEPENDENT", "setup_distributed", "SCHEDULES"]


def fit(model: torch.nn.Module, X: torch.Tensor, Y: torch.Tensor, *, steps: int, lr: float | Callable[[int], float],
        batch_size: int | None = None, optimizer: str = "sgd", weight_decay: float = 0.0,
        generator: torch.Generator | None = None, val: tuple[torch.Tensor, torch.Tensor] | None = None,
        eval_every: int = 0, progress: bool = False, device: str | torch.device = "cpu",
        callback: Callable[[int, torch.nn.Module], None] | None = None) -> dict:
    """Fit a model on (context -> next) examples ``X``, ``Y`` by (minibatch) gradient descent.

    ``batch_size=None`` uses the whole set every step. ``lr`` is a number or a function of the
    step. ``optimizer`` is ``"sgd"``, ``"adam"`` or ``"adamw"``; with SGD and Adam
    ``weight_decay`` is L2 regularisation of every parameter (it adds ``weight_decay * w`` to each
    gradient, the gradient of ``weight_decay / 2 * ||w||^2``); with AdamW it is decoupled weight
    decay of the matrices only, the optimizer :func:`adamw` builds (betas 0.9, 0.999). Every ``eval_every`` steps
    (and at the end) the full ``val`` set is scored. ``callback(step, model)`` runs after each
    update (for diagnostics). Returns ``{"step", "loss", "lr", "val_step", "val_loss"}`` lists.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0 (0 turns it off), got {weight_decay}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (or None for the whole set every step), got {batch_size}")
    if len(X) == 0 or len(X) != len(Y):
        raise ValueError(f"need as many targets as examples, at least one: got {len(X)} examples, {len(Y)} targets")
    X, Y = X.to(device), Y.to(device)
    lr_of = (lambda step: check_lr(lr(step), step)) if callable(lr) else (lambda step: lr)
    check_lr(lr_of(0), 0)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr_of(0), weight_decay=weight_decay)
    elif optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr_of(0), weight_decay=weight_decay)
    elif optimizer == "adamw":
        opt = adamw(model, lr=lr_of(0), betas=(0.9, 0.999), weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    history = {"step": [], "loss": [], "lr": [], "val_step": [], "val_loss": []}
    bar = tqdm(total=steps, desc="train") if progress else None
    model.train()
    for step in range(steps):
        if batch_size is None:
            xb, yb = X, Y
        else:
            ix = torch.randint(0, len(X), (batch_size,), generator=generator).to(device)
            xb, yb = X[ix], Y[ix]
        logits, loss = model(xb, yb)
        check_finite(model, step, loss.item(), lr_of(step))
        for group in opt.param_groups:
            group["lr"] = lr_of(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        check_finite(model, step, loss.item(), lr_of(step), gradients=True)
        opt.step()
        history["step"].append(step)
        history["loss"].append(loss.item())
        history["lr"].append(lr_of(step))
        if callback is not None:
            callback(step, model)
        if val is not None and ((eval_every and (step + 1) % eval_every == 0) or step == steps - 1):
            history["val_step"].append(step)
            history["val_loss"].append(evaluate(model, *val, device=device)["loss"])
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{history['loss'][-1]:.4f}")
    if bar is not None:
        bar.close()
    return history


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
    """Raise ``FloatingPointError`` before a non-finite loss or gradient reaches the weights.

    Checks ``loss`` or, with ``gradients``, the gradient norm (``norm`` if already computed). The
    message names the step, which of the two went wrong, the first parameter with a non-finite
    gradient, and what to try.
    """
    if not gradients:
        if math.isfinite(loss):
            return
        raise FloatingPointError(
            f"step {step}: the loss is {loss}; the weights were not updated. "
            + ("Lower the learning rate (it is {:.3g}) or check the data.".format(lr) if step else
               "It is the first step, so the model or the data is at fault (check the inputs and the "
               "initialisation), not the learning rate."))
    norm = grad_norm(model) if norm is None else norm
    if bool(torch.isfinite(norm)):
        return
    bad = next((name for name, p in model.named_parameters()
                if p.grad is not None and not bool(torch.isfinite(p.grad).all())), "?")
    raise FloatingPointError(
        f"step {step}: the loss is finite ({loss:.4g}) but the gradient is not (norm {norm.item()}), first in "
        f"parameter {bad!r}; the weights were not updated. Lower the learning rate (it is {lr:.3g}), use "
        f"gradient clipping or float32, or check the model for an operation with an infinite derivative.")


def train_recipe(model: FixedContextLM, X: torch.Tensor, Y: torch.Tensor, recipe: Recipe, **fit_kw) -> dict:
    """Train ``model`` on examples ``X`` (N, block_size), ``Y`` (N,) with ``recipe``; return the history.

    A thin layer over :func:`fit` (``fit_kw``: ``generator``, ``val``, ``eval_every``,
    ``progress``, ``device``, ``callback``) that scores only the last position.
    """
    return fit(LastPosition(model), X, Y, steps=recipe.steps, lr=recipe.lr_at, batch_size=recipe.batch_size,
               optimizer=recipe.optimizer, weight_decay=recipe.weight_decay, **fit_kw)


# ----------------------------------------------------------------------------- token streams
RUN_INDEPENDENT = ("eval_interval", "eval_iters", "checkpoint_every")  # fields that leave the updates unchanged


def check_resumable(ckpt: dict, model: torch.nn.Module, cfg: TrainConfig, *, accept_changes: Collection[str] = (),
                    path: str | os.PathLike = "the checkpoint") -> None:
    """Raise :class:`~lm_steps.checkpoint.CheckpointError` unless :func:`train` can continue ``ckpt`` exactly.

    The model's config must match; the checkpoint must hold the training state :func:`train`
    writes (RNG states, optimizer), not a plain :func:`~lm_steps.checkpoint.save_checkpoint` file;
    ``cfg.max_iters`` must not be below the stored step; and ``cfg`` must equal the stored config in
    every field but :data:`RUN_INDEPENDENT` ones, unless the field is in ``accept_changes``.
    Nothing is loaded, so a refused resume leaves the model as it was.
    """
    check_model_config(ckpt, model)
    rng, stored = ckpt.get("rng") or {}, ckpt.get("train_config")
    if not {"batch", "torch"} <= set(rng) or not ckpt.get("optimizer") or stored is None:
        raise CheckpointError(
            f"{path} holds weights but not the training state to resume from (RNG states, optimizer, training "
            f"config): it was written by save_checkpoint(), not by train(checkpoint_path=...). To start a new run "
            f"from these weights, load them with restore_model(ckpt, model) and call train() without resume.")
    step = int(ckpt["step"])
    if cfg.max_iters < step:
        raise CheckpointError(f"{path} is at step {step}, past max_iters={cfg.max_iters}: set max_iters >= {step} "
                              f"to continue it (or use it as it is)")
    unknown = set(accept_changes) - set(TrainConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"accept_changes names no TrainConfig field: {', '.join(sorted(unknown))}")
    defaults = TrainConfig()
    diff = {name: (stored.get(name, getattr(defaults, name)), getattr(cfg, name))
            for name in TrainConfig.__dataclass_fields__
            if name not in RUN_INDEPENDENT and stored.get(name, getattr(defaults, name)) != getattr(cfg, name)}
    refused = {name: d for name, d in diff.items() if name not in accept_changes}
    if refused:
        raise CheckpointError(
            f"cannot continue {path} exactly: the training config differs in "
            + ", ".join(f"{k} (checkpoint {a!r}, now {b!r})" for k, (a, b) in refused.items())
            + f". Use the stored values, or pass accept_changes={tuple(refused)!r} to train() to continue "
              f"with the new ones knowingly.")


def setup_distributed() -> tuple[int, int, torch.device | None]:
    """Join the process group ``torchrun`` describes (nccl on GPUs, gloo on CPUs).

    Returns ``(rank, world_size, device)``; without ``torchrun`` it does nothing and returns
    ``(0, 1, None)``. :func:`train` uses DistributedDataParallel whenever a group is initialised.
    """
    if "RANK" not in os.environ or dist.is_initialized():
        return (dist.get_rank(), dist.get_world_size(), None) if dist.is_initialized() else (0, 1, None)
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    device = None
    if cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), device


@torch.no_grad()
def estimate_loss(model: torch.nn.Module, batch: Callable, cfg: TrainConfig, *, autocast=None) -> dict[str, float]:
    """Mean loss over ``cfg.eval_iters`` batches of each split, as nanoGPT's ``estimate_loss``.

    ``batch(split, generator)`` gives ``(x, y)``; the batches come from a generator seeded with
    ``cfg.seed + 1`` at every call, so every evaluation sees the same batches.
    """
    out = {}
    with eval_mode(model):
        for split in ("train", "val"):
            g = torch.Generator().manual_seed(cfg.seed + 1)
            losses = []
            for _ in range(cfg.eval_iters):
                x, y = batch(split, g)
                with autocast or contextlib.nullcontext():
                    logits, _ = model(x)
                losses.append(lm_loss(logits, y).item())
            out[split] = sum(losses) / max(len(losses), 1)
    return out


def _autocast(cfg: TrainConfig, device: torch.device):
    use_bf16 = cfg.dtype == "bfloat16" or (
        cfg.dtype == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())
    return torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()


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
    if fused:
        try:
            return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True)
        except (RuntimeError, ValueError):  # no fused kernel for this device or dtype in this torch
            pass
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


def train(model: torch.nn.Module, data, cfg: TrainConfig, *, device: str | torch.device = "cpu",
          progress: bool = False, callback: Callable[[int, torch.nn.Module], None] | None = None,
          checkpoint_path: str | os.PathLike | None = None, resume: str | os.PathLike | None = None,
          tokenizer: dict | None = None, best_checkpoint_path: str | os.PathLike | None = None,
          accept_changes: Collection[str] = ()) -> dict:
    """Train ``model`` (already on ``device``) on ``data``; return the history.

    ``data`` is ``(train_tokens, val_tokens)``, two 1-D LongTensors batched with
    :func:`~lm_steps.data.get_batch` at the model's ``block_size``, or a function
    ``batch(split, batch_size, generator, device) -> (x, y)``. Under ``torchrun`` each rank
    trains a DistributedDataParallel copy on its own share of every global batch (``cfg.batch_size``
    is the share); rank 0 evaluates on whole global batches, so the estimates do not depend on the
    number of processes, and logs and writes checkpoints (every ``cfg.checkpoint_every`` steps and at the end,
    holding ``tokenizer``, a plain dict). With ``best_checkpoint_path``, rank 0 also writes a
    checkpoint there whenever the validation estimate reaches a new low (nanoGPT keeps only
    that one on small data, where long runs overfit). ``resume`` continues a checkpoint exactly: weights,
    optimizer, step, batch and dropout RNG states, history. It refuses what it cannot continue exactly
    (see :func:`check_resumable`): ``cfg`` must equal the stored config in every field that changes the
    run, unless the field is named in ``accept_changes`` (e.g. ``("max_iters",)`` to train on further). Dropout draws from torch's global
    generator, which is seeded with ``cfg.seed + rank``. ``callback(step, model)`` runs after
    each step. Returns lists ``step``, ``loss``, ``lr`` per step and ``val_step``,
    ``train_eval_loss``, ``val_loss``, ``elapsed`` (seconds) per evaluation.
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}; build one with TrainConfig(**fields)")
    inner = unwrap(model)
    vocab = getattr(getattr(inner, "config", None), "vocab_size", getattr(inner, "vocab_size", None))
    check_tokenizer_dict(tokenizer, vocab)  # before training, not at the first checkpoint
    device = torch.device(device)
    ddp = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if ddp else (0, 1)
    if callable(data):
        draw = data
    else:
        streams = {"train": data[0], "val": data[1]}
        draw = lambda split, n, g, dev: get_batch(streams[split], n, model.block_size, generator=g, device=dev)  # noqa: E731

    def global_batch(split, g):  # (world * B, T) each: what one process with the global batch draws
        return draw(split, cfg.batch_size * world, g, device)

    def batch(split, g):  # this rank's share of one global batch
        x, y = global_batch(split, g)
        return x[rank * cfg.batch_size:(rank + 1) * cfg.batch_size], y[rank * cfg.batch_size:(rank + 1) * cfg.batch_size]

    opt = adamw(model, lr=lr_at(0, cfg), betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(cfg.seed)  # batches: the same on every rank, which takes its share
    torch.manual_seed(cfg.seed + rank)  # dropout draws from torch's global generator
    history = {"step": [], "loss": [], "lr": [], "val_step": [], "train_eval_loss": [], "val_loss": [], "elapsed": []}
    start = 0
    if resume is not None:
        ckpt = load_checkpoint(resume, map_location=device)
        check_resumable(ckpt, model, cfg, accept_changes=accept_changes, path=resume)
        restore_model(ckpt, model, opt)
        start, history = ckpt["step"], ckpt["history"]
        g.set_state(ckpt["rng"]["batch"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if device.type == "cuda" and "cuda" in ckpt["rng"]:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], device)
    net = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None) if ddp else model
    autocast = _autocast(cfg, device)
    t0 = time.perf_counter() - (history["elapsed"][-1] if history["elapsed"] else 0.0)

    def evaluate_now(step):
        est = estimate_loss(model, global_batch, cfg, autocast=autocast)
        improved = est["val"] < min(history["val_loss"], default=math.inf)
        history["val_step"].append(step)
        history["train_eval_loss"].append(est["train"])
        history["val_loss"].append(est["val"])
        history["elapsed"].append(time.perf_counter() - t0)
        if best_checkpoint_path and improved:
            save(step, best_checkpoint_path)

    def save(step, path=checkpoint_path):
        rng = {"batch": g.get_state(), "torch": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
        save_checkpoint(path, model=model, optimizer=opt, train_config=cfg, step=step,
                        rng=rng, tokenizer=tokenizer, history=history)

    bar = tqdm(total=cfg.max_iters, initial=start, desc="train") if progress and rank == 0 else None
    model.train()
    for step in range(start, cfg.max_iters):
        if cfg.eval_iters and step % cfg.eval_interval == 0 and rank == 0 and history["val_step"][-1:] != [step]:
            evaluate_now(step)  # (a run resumed from its best checkpoint has this step's evaluation already)
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        total = 0.0
        for micro in range(cfg.grad_accum):
            x, y = batch("train", g)
            last = micro == cfg.grad_accum - 1
            with (net.no_sync() if ddp and not last else contextlib.nullcontext()), autocast:
                logits, loss = net(x, y)
                if cfg.label_smoothing:
                    loss = lm_loss(logits, y, label_smoothing=cfg.label_smoothing)
            (loss / cfg.grad_accum).backward()
            total += loss.item() / cfg.grad_accum
        check_finite(model, step, total, lr)
        norm = grad_norm(model)
        check_finite(model, step, total, lr, gradients=True, norm=norm)  # before any update or checkpoint
        if cfg.grad_clip and hasattr(torch.nn.utils, "clip_grads_with_norm_"):
            torch.nn.utils.clip_grads_with_norm_(model.parameters(), cfg.grad_clip, norm)  # the norm just checked
        elif cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        history["step"].append(step)
        history["loss"].append(total)
        history["lr"].append(lr)
        if callback is not None:
            callback(step, model)
        if checkpoint_path and rank == 0 and cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0:
            save(step + 1)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{total:.4f}")
    if bar is not None:
        bar.close()
    if cfg.eval_iters and rank == 0 and (not history["val_step"] or history["val_step"][-1] != cfg.max_iters):
        evaluate_now(cfg.max_iters)
    if checkpoint_path and rank == 0:
        save(cfg.max_iters)
    return history
