"""Models that one notebook trains and a later one reuses, kept beside the results log.

Notebook 05 keeps its character-level GPT with :func:`keep`; notebook 09 takes it back with
:func:`shakespeare_gpt`, which trains the same model again (and says so) when notebook 05 has not
run in this profile. The files are ordinary checkpoints (weights, config and tokenizer), so
``lm-steps sample build/models/05_shakespeare_gpt-cpu.pt`` samples from them too.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from .checkpoint import gpt_from_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import shakespeare_splits
from .gpt import GPT, GPTConfig
from .results import results_path
from .sizes import sizes
from .tokenizers import CharTokenizer
from .runs import train
from .utils import get_profile, make_generator

__all__ = ["kept_path", "keep", "load_kept", "shakespeare_gpt"]

SEED_05 = 1337  # notebook 05's seed


def kept_path(name: str, *, profile: str | None = None) -> Path:
    """Where the model ``name`` of ``profile`` (default: this run's) is kept: ``build/models/NAME-PROFILE.pt``."""
    profile = profile or get_profile()
    if not name or os.sep in name or name.startswith("."):
        raise ValueError(f"a kept model's name is a plain file name such as '05_shakespeare_gpt', got {name!r}")
    return results_path(profile).parent / "models" / f"{name}-{profile}.pt"


def keep(name: str, model: torch.nn.Module, *, tokenizer: dict, profile: str | None = None) -> Path:
    """Save ``model`` with its ``tokenizer`` (a plain dict) as the kept model ``name``; return the file."""
    return save_checkpoint(kept_path(name, profile=profile), model=model, tokenizer=tokenizer)


def load_kept(name: str, *, profile: str | None = None, device: str | torch.device = "cpu"):
    """``(model, tokenizer dict)`` of the kept model ``name`` (in eval mode), or None if it was never kept."""
    path = kept_path(name, profile=profile)
    if not path.exists():
        return None
    model, ckpt = gpt_from_checkpoint(path, device=device)
    return model, ckpt["tokenizer"]


def shakespeare_gpt(*, device: str | torch.device = "cpu", progress: bool = False):
    """Notebook 05's character-level GPT and tokenizer: ``(model, tokenizer, how)``, ``how`` a sentence
    saying whether it was loaded or, notebook 05 not having run in this profile, trained now (and kept)."""
    kept = load_kept("05_shakespeare_gpt", device=device)
    if kept is not None:
        model, tok = kept
        name = kept_path("05_shakespeare_gpt").name
        return model, CharTokenizer.from_dict(tok), f"loaded the GPT notebook 05 trained (kept as {name})"
    S = sizes("05")  # notebook 05's model and recipe
    train_text, val_text = shakespeare_splits()
    tok = CharTokenizer.from_text(train_text + val_text)
    streams = [torch.tensor(tok.encode(t), dtype=torch.long) for t in (train_text, val_text)]
    cfg = TrainConfig(**S.train, seed=SEED_05)
    model = GPT(GPTConfig(**S.model), generator=make_generator(cfg.seed)).to(device)
    t0 = time.perf_counter()
    train(model, streams, cfg, device=device, progress=progress)
    keep("05_shakespeare_gpt", model, tokenizer=tok.to_dict())
    return model.eval(), tok, (f"notebook 05 has not run in this profile, so its GPT was trained again here "
                               f"({cfg.max_iters} steps, {time.perf_counter() - t0:.0f} s) and kept for next time")
