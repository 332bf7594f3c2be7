"""Checkpoints: model, optimizer, both configs, step, RNG states, history and the tokenizer.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)`` (no pickled classes): :func:`save_checkpoint` checks every value
before it writes (NumPy numbers become Python numbers; anything else that would not load back, a
``Path`` or a NumPy array, is refused), so a loadable checkpoint is never replaced by one that
cannot be read. It is written to a temporary file in the same folder and then renamed over the
target, so a crash or a full disk mid-write never leaves a half checkpoint where a good one was.
Reading a truncated, corrupt or mismatched file raises :class:`CheckpointError` saying what is wrong.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from .gpt import GPT, GPTConfig
from .utils import atomic_write, unwrap

__all__ = ["FORMAT", "CheckpointError", "check_tokenizer_dict", "save_checkpoint", "load_checkpoint",
           "check_model_config", "check_fits", "restore_model",
           "gpt_from_checkpoint", "save_model", "load_model", "load_tokenizer", "MODEL_FILE"]

MODEL_FILE = "ckpt.pt"  # the checkpoint in a model folder (save_model) or a run folder (lm-steps train)

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
         len(tokenizer.get("chars", ())) + len(tokenizer.get("specials", ())) if kind == "chat" else
         len(tokenizer.get("tokens", ())) + len(tokenizer.get("special_tokens", {})) if kind == "tiktoken" else None)
    if n is not None and n > vocab_size:
        raise ValueError(f"the tokenizer has {n} tokens but the model reads only vocab_size={vocab_size}: the "
                         f"checkpoint would pair them; build the model with vocab_size >= {n} or pass its own "
                         f"tokenizer")


#: Types ``torch.load(weights_only=True)`` reads back as they are (besides tensors, lists, tuples and dicts).
_PLAIN = (str, bytes, int, float, bool, complex, type(None), torch.dtype, torch.device, torch.Size)


def _loadable(value, where: str):
    """``value`` as plain data that ``torch.load(weights_only=True)`` reads back: NumPy numbers become
    Python numbers; anything else that is not a tensor, a number, a string, None or a list, tuple or
    dict of them raises TypeError naming where it is. Unchanged containers are returned as they are."""
    kind = type(value)
    if kind in _PLAIN or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.generic) and not isinstance(value, np.void):  # np.float32(1.5), np.int64(3), np.bool_
        return value.item()
    if kind in (dict, OrderedDict):
        items = [(_loadable(k, f"a key of {where}"), _loadable(v, f"{where}[{k!r}]")) for k, v in value.items()]
        if all(k2 is k and v2 is v for (k2, v2), (k, v) in zip(items, value.items())):
            return value  # keeps a state dict's _metadata
        return kind(items)
    if kind in (list, tuple):
        items = [_loadable(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value if all(a is b for a, b in zip(items, value)) else kind(items)
    hint = ("str(path)" if isinstance(value, os.PathLike) else "array.tolist() or torch.from_numpy(array)"
            if isinstance(value, np.ndarray) else "a number, string, list, dict or tensor")
    raise TypeError(f"{where} is a {kind.__module__}.{kind.__qualname__} ({str(value)[:60]!r}), which a checkpoint "
                    f"cannot load back (torch.load(weights_only=True) reads tensors, numbers, strings, lists, "
                    f"tuples and dicts only); convert it first: {hint}")


def save_checkpoint(path: str | os.PathLike, *, model: torch.nn.Module, model_config=None, optimizer=None,
                    train_config=None, step: int = 0, rng: dict | None = None, tokenizer: dict | None = None,
                    history: dict | None = None) -> Path:
    """Write a checkpoint atomically (temporary file, fsync, rename) and return its path.

    ``model_config`` defaults to ``model.config``; configs are stored as plain dicts
    (``dataclasses.asdict``), the tokenizer as the plain dict its ``to_dict()`` gives. Every value is
    checked first (see :func:`_loadable`): NumPy numbers are stored as Python numbers, and a value
    that could not be loaded back (a ``Path``, a NumPy array, any other object) raises TypeError
    naming it, before the file is touched. A failed write (a full disk) leaves the old file as it was.
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
    state = {key: _loadable(value, key) for key, value in state.items()}  # before the file is touched
    with atomic_write(path) as f:
        torch.save(state, f)
    return path


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with ``torch.load(weights_only=True)`` and check its layout.

    ``path`` is the file, or a folder holding it as ``ckpt.pt`` (a :func:`save_model` folder or a
    run folder of ``lm-steps train``)."""
    path = Path(path)
    if path.is_dir():
        if not (path / MODEL_FILE).is_file():
            raise FileNotFoundError(f"{path} is a folder without {MODEL_FILE}; give a checkpoint file, or a folder "
                                    f"written by save_model() or `lm-steps train`")
        path = path / MODEL_FILE
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


def check_fits(ckpt: dict, config: GPTConfig, path: str | os.PathLike = "the checkpoint") -> None:
    """Raise :class:`CheckpointError` unless a GPT built from ``config`` fits the checkpoint's weights.

    The GPT is built on the ``meta`` device (shapes, no memory), so a config edited to ask for
    10**11 positions is refused before anything is allocated: every parameter must have its stored
    shape, and the tables the config computes (rotary or sinusoidal positions) may not dwarf the weights.
    """
    weights = ckpt.get("model")
    if not isinstance(weights, dict) or not all(isinstance(t, torch.Tensor) for t in weights.values()):
        raise CheckpointError(f"checkpoint {path}: its model entry is not a state dict of tensors")
    with torch.device("meta"):
        shell = GPT(config)
    ours = shell.state_dict()
    for name in sorted(set(ours) | set(weights)):
        if name not in weights or name not in ours or tuple(ours[name].shape) != tuple(weights[name].shape):
            want = tuple(ours[name].shape) if name in ours else "no such parameter"
            have = tuple(weights[name].shape) if name in weights else "nothing"
            raise CheckpointError(f"checkpoint {path}: its model_config does not fit its weights ({name}: the config "
                                  f"makes {want}, the file holds {have}); the config was edited or the file is "
                                  f"corrupt: use the checkpoint as train wrote it")
    stored = sum(t.numel() for t in weights.values())
    tables = sum(b.numel() for n, b in shell.named_buffers() if n not in ours)
    if tables > 16 * stored + 2 ** 24:
        raise CheckpointError(f"checkpoint {path}: its model_config (block_size={config.block_size:,}) asks for "
                              f"{tables:,} values of position tables against {stored:,} stored weights; the config "
                              f"was edited or the file is corrupt: use the checkpoint as train wrote it")


def gpt_from_checkpoint(path: str | os.PathLike, *, device: str | torch.device = "cpu"):
    """Rebuild the :class:`~lm_steps.gpt.GPT` of a checkpoint; returns ``(model, ckpt)``.

    The tokenizer is ``ckpt["tokenizer"]`` (a plain dict, e.g. for ``CharTokenizer.from_dict``).
    The model comes back in eval mode (dropout off), ready to evaluate or sample; call
    ``model.train()`` to train it further.
    """
    ckpt = load_checkpoint(path, map_location=device)
    if not isinstance(ckpt["model_config"], dict):
        raise CheckpointError(f"checkpoint {path} has no model config (model_config={ckpt['model_config']!r})")
    try:
        config = GPTConfig(**ckpt["model_config"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} has an unknown or invalid model config: {err}") from None
    check_fits(ckpt, config, path)  # before any memory is allocated
    model = GPT(config).to(device)
    restore_model(ckpt, model)
    return model.eval(), ckpt


def save_model(folder: str | os.PathLike, model: torch.nn.Module, *, tokenizer) -> Path:
    """Keep ``model`` with its ``tokenizer`` in ``folder``: ``ckpt.pt`` (weights, config, tokenizer)
    and ``config.json`` (the model's config, to read); return the folder.

    ``tokenizer`` is a :class:`~lm_steps.tokenizers.CharTokenizer`, a tiktoken ``Encoding`` or their
    plain dict. :func:`load_model`, :func:`gpt_from_checkpoint`, ``lm-steps sample``/``eval`` and
    :func:`lm_steps.gpt2.export_hf` (after loading) all take the folder."""
    import json

    from .tokenizers import tokenizer_to_dict

    tok = tokenizer if isinstance(tokenizer, dict) else tokenizer_to_dict(tokenizer)
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file; save_model writes a folder (choose a folder name)")
    save_checkpoint(folder / MODEL_FILE, model=model, tokenizer=tok)
    with atomic_write(folder / "config.json", "w") as f:
        f.write(json.dumps({"model": _plain(unwrap(model).config), "tokenizer": tok.get("type", "bpe")}, indent=1)
                + "\n")
    return folder


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu"):
    """``(model, tokenizer)`` kept by :func:`save_model` (or any checkpoint with a tokenizer): a
    :class:`~lm_steps.gpt.GPT` in eval mode and the tokenizer object (a ``CharTokenizer`` or a
    tiktoken ``Encoding``). ``path`` is the folder or the checkpoint file."""
    model, ckpt = gpt_from_checkpoint(path, device=device)
    return model, load_tokenizer(ckpt, path)


def load_tokenizer(ckpt: dict, path: str | os.PathLike = "the checkpoint"):
    """The tokenizer object a loaded checkpoint holds (a ``CharTokenizer`` or a tiktoken ``Encoding``);
    a CheckpointError naming ``path`` if it holds none or a broken one."""
    from .tokenizers import tokenizer_from_dict

    d = ckpt.get("tokenizer")
    if not isinstance(d, dict):
        raise CheckpointError(f"{path} holds no tokenizer: it was not written by `lm-steps train` or save_model()")
    try:
        return tokenizer_from_dict(d)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # KeyError, TypeError, ...; tiktoken's Rust panics are BaseExceptions
        detail = " ".join(str(err).split())[:200]
        raise CheckpointError(f"{path}: the checkpoint's tokenizer is broken ({type(err).__name__}: {detail}): the "
                              f"file was edited or is corrupt; use another checkpoint or train again") from None
