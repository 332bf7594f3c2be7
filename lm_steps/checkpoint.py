"""Checkpoints: model, optimizer, both configs, step, RNG states, history and the tokenizer.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)`` (no pickled classes). It is written to a temporary file in
the same folder and then renamed over the target, so a crash mid-write never leaves a half
checkpoint where a good one was. Reading a truncated, corrupt or mismatched file raises
:class:`CheckpointError` saying what is wrong.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

import torch

from .gpt import GPT, GPTConfig
from .utils import atomic_write, unwrap

__all__ = ["FORMAT", "CheckpointError", "check_tokenizer_dict", "save_checkpoint", "load_checkpoint",
           "check_model_config", "restore_model", "gpt_from_checkpoint"]

FORMAT = "lm_steps-checkpoint-1"
REQUIRED = ("format", "model", "model_config", "step")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read, or does not fit the model it is loaded into."""


def _plain(cfg) -> dict | None:
    if cfg is None or isinstance(cfg, dict):
        return cfg
    return dataclasses.asdict(cfg)


def check_tokenizer_dict(tokenizer, vocab_size: int | None = None) -> None:
    """Raise TypeError unless ``tokenizer`` is None or a plain dict: a checkpoint holding an object
    could not be loaded back (``weights_only`` refuses pickled objects), so every save would be lost.
    With ``vocab_size`` (the model's), raise ValueError if the tokenizer has more tokens than the
    model can read (a model's vocabulary may be larger, e.g. padded to a multiple of 64)."""
    if tokenizer is not None and not isinstance(tokenizer, dict):
        raise TypeError(f"tokenizer must be a plain dict (a checkpoint loads only plain data), got "
                        f"{type(tokenizer).__name__}; pass tokenizer.to_dict() or encoding_to_dict(enc)")
    if tokenizer is None or vocab_size is None:
        return
    kind = tokenizer.get("type")
    n = (len(tokenizer.get("chars", ())) if kind == "char" else
         len(tokenizer.get("tokens", ())) + len(tokenizer.get("special_tokens", {})) if kind == "tiktoken" else None)
    if n is not None and n > vocab_size:
        raise ValueError(f"the tokenizer has {n} tokens but the model reads only vocab_size={vocab_size}: the "
                         f"checkpoint would pair them; build the model with vocab_size >= {n} or pass its own "
                         f"tokenizer")


def save_checkpoint(path: str | os.PathLike, *, model: torch.nn.Module, model_config=None, optimizer=None,
                    train_config=None, step: int = 0, rng: dict | None = None, tokenizer: dict | None = None,
                    history: dict | None = None) -> Path:
    """Write a checkpoint atomically (temporary file, fsync, rename) and return its path.

    ``model_config`` defaults to ``model.config``; configs are stored as plain dicts
    (``dataclasses.asdict``), the tokenizer as the plain dict its ``to_dict()`` gives.
    """
    check_tokenizer_dict(tokenizer)
    path = Path(path)
    model = unwrap(model)
    state = {
        "format": FORMAT,
        "model": model.state_dict(),
        "model_config": _plain(model_config if model_config is not None else getattr(model, "config", None)),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "train_config": _plain(train_config),
        "step": int(step),
        "rng": rng or {},
        "tokenizer": tokenizer,
        "history": history or {},
    }
    with atomic_write(path) as f:
        torch.save(state, f)
    return path


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with ``torch.load(weights_only=True)`` and check its layout."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): whatever wrote it did not finish. "
                              f"Delete it and resume from an earlier checkpoint (or train again).")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, random bytes, pickled objects: unreadable here
        if isinstance(err, pickle.UnpicklingError) and "weights only" in str(err).lower():
            # torch's advice (weights_only=False) would run whatever code the file holds: not ours to give
            raise CheckpointError(f"cannot read checkpoint {path}: it holds pickled Python objects, which a "
                                  f"lm_steps checkpoint never does (loading them could run code); it is "
                                  f"corrupt or not a lm_steps checkpoint") from None
        detail = next((line for line in str(err).splitlines() if line.strip()), "")
        raise CheckpointError(f"cannot read checkpoint {path}: the file is truncated, corrupt or not a "
                              f"lm_steps checkpoint ({type(err).__name__}{': ' + detail if detail else ''})") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} checkpoint (format={ckpt.get('format') if isinstance(ckpt, dict) else type(ckpt).__name__!r})")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}")
    return ckpt


def check_model_config(ckpt: dict, model: torch.nn.Module) -> None:
    """Raise :class:`CheckpointError` listing the fields where ``model.config`` differs from the stored one."""
    cfg, stored = _plain(getattr(unwrap(model), "config", None)), ckpt.get("model_config")
    if cfg is not None and stored is not None and cfg != stored:
        diff = {k: (stored.get(k), cfg.get(k)) for k in sorted(set(cfg) | set(stored)) if stored.get(k) != cfg.get(k)}
        raise CheckpointError("checkpoint does not match the model: " +
                              ", ".join(f"{k}: checkpoint {a!r} vs model {b!r}" for k, (a, b) in diff.items()))


def restore_model(ckpt: dict, model: torch.nn.Module, optimizer=None) -> None:
    """Load the checkpoint's weights (and optimizer state) into ``model``, checking the config first.

    A model whose ``config`` differs from the stored one raises :class:`CheckpointError`
    listing the differing fields.
    """
    model = unwrap(model)
    check_model_config(ckpt, model)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint weights do not fit the model: {err}") from err
    if optimizer is not None:
        if not ckpt.get("optimizer"):
            raise CheckpointError("checkpoint holds no optimizer state to resume from")
        try:
            optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError) as err:
            raise CheckpointError(f"checkpoint optimizer state does not fit: {err}") from err


def gpt_from_checkpoint(path: str | os.PathLike, *, device: str | torch.device = "cpu"):
    """Rebuild the :class:`~lm_steps.gpt.GPT` of a checkpoint; returns ``(model, ckpt)``.

    The tokenizer is ``ckpt["tokenizer"]`` (a plain dict, e.g. for ``CharTokenizer.from_dict``).
    The model comes back in eval mode (dropout off), ready to evaluate or sample; call
    ``model.train()`` to train it further.
    """
    ckpt = load_checkpoint(path, map_location=device)
    try:
        config = GPTConfig(**ckpt["model_config"])
    except TypeError as err:
        raise CheckpointError(f"checkpoint {path} has an unknown model config: {err}") from err
    model = GPT(config).to(device)
    restore_model(ckpt, model)
    return model.eval(), ckpt
