"""Runs: what a long training run on a token stream needs around :func:`lm_steps.training.train_loop`.

:func:`train` (``lm_steps.train``) batches the stream, builds the optimizer
(:func:`~lm_steps.training.adamw`), estimates the loss every ``cfg.eval_interval`` steps, writes
checkpoints and the best one, resumes a checkpoint exactly (weights, optimizer, step, RNG states,
history, tokenizer) and refuses what it cannot continue exactly (:func:`check_resumable`), and
runs as DistributedDataParallel under ``torchrun`` (:func:`setup_distributed`). The loop itself
is :func:`~lm_steps.training.train_loop`, unchanged.
"""
from __future__ import annotations

import contextlib
import itertools
import math
import os
import time
from typing import Callable, Collection

import torch
import torch.distributed as dist

from .checkpoint import (CheckpointError, check_model_config, check_tokenizer_dict, load_checkpoint, restore_model,
                         save_checkpoint)
from .config import TrainConfig, lr_at
from .data import get_batch
from .losses import lm_loss
from .training import StepLog, _autocast, _estimate, adamw, train_loop
from .utils import unwrap

__all__ = ["train", "check_resumable", "RUN_INDEPENDENT", "setup_distributed"]

RUN_INDEPENDENT = ("eval_interval", "eval_iters", "checkpoint_every")  # fields that leave the updates unchanged


def train(model: torch.nn.Module, data, cfg: TrainConfig, *, device: str | torch.device = "cpu",
          progress: bool = False, callback: Callable[[int, torch.nn.Module], None] | None = None,
          checkpoint_path: str | os.PathLike | None = None, resume: str | os.PathLike | None = None,
          tokenizer: dict | None = None, best_checkpoint_path: str | os.PathLike | None = None,
          accept_changes: Collection[str] = (),
          on_evaluate: Callable[[int, dict, torch.nn.Module], None] | None = None) -> dict:
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
    optimizer, step, batch and dropout RNG states, history, and its tokenizer (``tokenizer`` may be left
    out; a different one is refused). It refuses what it cannot continue exactly
    (see :func:`check_resumable`): ``cfg`` must equal the stored config in every field that changes the
    run, unless the field is named in ``accept_changes`` (e.g. ``("max_iters",)`` to train on further). Dropout draws from torch's global
    generator, which is seeded with ``cfg.seed + rank``. ``callback(step, model)`` runs after
    each step; ``on_evaluate(step, history, model)`` after each evaluation (rank 0), with the
    history so far (the command line prints and logs it there). Returns lists ``step``, ``loss``, ``lr`` per step and ``val_step``,
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
    draw = _draw(data, model)

    def global_batch(split, g):  # (world * B, T) each: what one process with the global batch draws
        return draw(split, cfg.batch_size * world, g, device)

    opt = adamw(model, lr=lr_at(0, cfg), betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(cfg.seed)  # batches: the same on every rank, which takes its share
    torch.manual_seed(cfg.seed + rank)  # dropout draws from torch's global generator
    history = {"step": [], "loss": [], "lr": [], "val_step": [], "train_eval_loss": [], "val_loss": [], "elapsed": []}
    if resume is not None:
        history, tokenizer = _resume(resume, model, opt, cfg, g, device, accept_changes, tokenizer)
    net = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None) if ddp else model
    autocast = _autocast(cfg, device)
    micro = itertools.count()
    t0 = time.perf_counter() - (history["elapsed"][-1] if history["elapsed"] else 0.0)

    def batch():  # this rank's share of one global batch
        x, y = global_batch("train", g)
        return x[rank * cfg.batch_size:(rank + 1) * cfg.batch_size], y[rank * cfg.batch_size:(rank + 1) * cfg.batch_size]

    def forward(x, y):  # bf16 autocast; under DDP the gradients are all-reduced on the last micro-step only
        last = next(micro) % cfg.grad_accum == cfg.grad_accum - 1
        with (net.no_sync() if ddp and not last else contextlib.nullcontext()), autocast:
            logits, loss = net(x, y)
            if cfg.label_smoothing:
                loss = lm_loss(logits, y, label_smoothing=cfg.label_smoothing)
        return logits, loss

    def save(step, path):
        log.sync()  # raises, before anything is written, if a step since the last check was not finite
        save_checkpoint(path, model=model, optimizer=opt, train_config=cfg, step=step, rng=_rng_state(g, device),
                        tokenizer=tokenizer, history=history)

    def evaluate(step):  # before step `step`: rank 0 estimates (a run resumed from its best checkpoint has it)
        if rank != 0 or not cfg.eval_iters or history["val_step"][-1:] == [step]:
            log.sync()
            return
        train_loss, val_loss = log.sync(*_estimate(model, global_batch, cfg, autocast=autocast))
        improved = val_loss < min(history["val_loss"], default=math.inf)
        history["val_step"].append(step)
        history["train_eval_loss"].append(train_loss)
        history["val_loss"].append(val_loss)
        history["elapsed"].append(time.perf_counter() - t0)
        if best_checkpoint_path and improved:
            save(step, best_checkpoint_path)
        if on_evaluate is not None:
            on_evaluate(step, history, model)

    def after_step(step, model):
        if callback is not None:
            callback(step, model)
        if checkpoint_path and rank == 0 and cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0:
            save(step + 1, checkpoint_path)

    with StepLog(model, opt, history, total=cfg.max_iters, progress=progress and rank == 0) as log:
        train_loop(model, opt, batch, cfg, log, forward=forward, evaluate=evaluate, callback=after_step)
        if checkpoint_path and rank == 0:
            save(cfg.max_iters, checkpoint_path)
    if ddp:
        dist.barrier()  # every rank leaves together, after rank 0's last write: a rank that ends its process
        # group while another still talks to it can abort the other (gloo's "terminate called ...")
    return history


def _draw(data, model) -> Callable:
    """``data`` as a function ``draw(split, batch_size, generator, device) -> (x, y)``."""
    if callable(data):
        return data
    streams = {"train": data[0], "val": data[1]}
    return lambda split, n, g, dev: get_batch(streams[split], n, model.block_size, generator=g, device=dev)


def _rng_state(g: torch.Generator, device: torch.device) -> dict:
    """The RNG states a run needs to continue exactly: the batch generator's, torch's (dropout), CUDA's."""
    rng = {"batch": g.get_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def _resume(path, model, opt, cfg, g, device, accept_changes, tokenizer) -> tuple[dict, dict | None]:
    """Load checkpoint ``path`` into ``model``, ``opt`` and the RNGs after :func:`check_resumable`;
    return its history and the tokenizer to keep (the stored one unless ``tokenizer`` is given)."""
    ckpt = load_checkpoint(path, map_location=device)
    check_resumable(ckpt, model, cfg, accept_changes=accept_changes, path=path, tokenizer=tokenizer)
    restore_model(ckpt, model, opt)
    g.set_state(ckpt["rng"]["batch"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    if device.type == "cuda" and "cuda" in ckpt["rng"]:
        torch.cuda.set_rng_state(ckpt["rng"]["cuda"], device)
    return ckpt["history"], ckpt.get("tokenizer") if tokenizer is None else tokenizer


def _plain(x):
    """``x`` with every tuple a list, so a tokenizer dict compares equal after a save and a load."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    return [_plain(v) for v in x] if isinstance(x, (list, tuple)) else x


def check_resumable(ckpt: dict, model: torch.nn.Module, cfg: TrainConfig, *, accept_changes: Collection[str] = (),
                    path: str | os.PathLike = "the checkpoint", tokenizer: dict | None = None) -> None:
    """Raise :class:`~lm_steps.checkpoint.CheckpointError` unless :func:`train` can continue ``ckpt`` exactly.

    The model's config must match; the checkpoint must hold the training state :func:`train`
    writes (RNG states, optimizer), not a plain :func:`~lm_steps.checkpoint.save_checkpoint` file;
    ``cfg.max_iters`` must not be below the stored step; ``cfg`` must equal the stored config in
    every field but :data:`RUN_INDEPENDENT` ones, unless the field is in ``accept_changes``; and a
    ``tokenizer`` given must be the stored one (the weights read its token ids). Nothing is loaded,
    so a refused resume leaves the model as it was.
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
    kept = ckpt.get("tokenizer")
    if tokenizer is not None and kept is not None and _plain(tokenizer) != _plain(kept):
        raise CheckpointError(
            f"{path} was trained with a different tokenizer than the one given (tokenizer=): its weights read the "
            f"stored tokenizer's token ids. Leave tokenizer out (or pass the checkpoint's own, ckpt['tokenizer']) to "
            f"continue the run, or start a new run without resume to train with the new tokenizer.")


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
