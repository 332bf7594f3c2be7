"""Every notebook's sizes, per profile, in one table: ``sizes("05")`` gives notebook 05's for this run.

A profile says how big a run is: ``smoke`` (CI: seconds per notebook), ``cpu`` (a few minutes per
notebook on a laptop's CPU) and ``gpu`` (one GPU); :func:`lm_steps.utils.get_profile` picks it from
``LM_STEPS_PROFILE``, else ``gpu`` with CUDA, else ``cpu``. A value written ``Per(smoke, cpu, gpu)``
depends on the profile; any other value is the same in all three. The command line's presets read
the same table, so ``lm-steps train --config cpu`` trains what notebook 05 trains in the cpu profile.

    >>> S = sizes("01", profile="smoke")
    >>> S.n_samples
    5
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, NamedTuple

from .utils import PROFILES, get_profile

__all__ = ["Per", "TABLE", "sizes"]


class Per(NamedTuple):
    """A value per profile."""

    smoke: Any
    cpu: Any
    gpu: Any


TABLE: dict[str, dict[str, Any]] = {
    # ---- 01 counting bigram
    "01": dict(
        n_samples=Per(5, 20, 20),  # names printed from each sampler
    ),

    # ---- 02 gradient bigram
    "02": dict(),

    # ---- 03 MLP
    "03": dict(),

    # ---- 03b backprop by hand
    "03b": dict(),

    # ---- 04 WaveNet
    "04": dict(),

    # ---- 05 Shakespeare GPT
    "05": dict(
        cuda=Per(False, False, True),  # train on the GPU where there is one (else the CPU)
        # sections 2-9: the lecture's small model, built piece by piece; every version trains on the same budget
        small=Per(dict(block_size=8, n_embd=32, n_head=4, n_layer=2),
                  dict(block_size=8, n_embd=32, n_head=4, n_layer=3),
                  dict(block_size=8, n_embd=32, n_head=4, n_layer=3)),
        budget=Per(dict(max_iters=150, batch_size=16, lr=1e-2, min_lr=1e-2 / 10, warmup_iters=15, eval_interval=150,
                        eval_iters=20, dtype="float32"),  # TrainConfig fields
                   dict(max_iters=500, batch_size=32, lr=1e-2, min_lr=1e-2 / 10, warmup_iters=50, eval_interval=500,
                        eval_iters=20, dtype="float32"),
                   dict(max_iters=5000, batch_size=32, lr=1e-3, min_lr=1e-3 / 10, warmup_iters=500,
                        eval_interval=5000, eval_iters=20, dtype="float32")),
        # section 10 on: the scaled-up GPT trained with train(); gpu = nanoGPT's config/train_shakespeare_char.py
        model=Per(dict(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=64),  # GPTConfig fields
                  dict(vocab_size=65, block_size=128, n_layer=4, n_head=4, n_embd=128),
                  dict(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2)),
        train=Per(dict(max_iters=300, batch_size=16, lr=3e-3, min_lr=3e-3 / 10, warmup_iters=20, eval_interval=30,
                       eval_iters=10),  # TrainConfig fields
                  dict(max_iters=1500, batch_size=16, lr=2e-3, min_lr=2e-3 / 10, warmup_iters=100, eval_interval=250,
                       eval_iters=20),
                  dict(max_iters=5000, batch_size=64, lr=1e-3, min_lr=1e-3 / 10, warmup_iters=100, eval_interval=250,
                       eval_iters=200)),
        threads=Per(1, 2, 1),  # the most CPU threads the scaled-up GPT trains with (the small models use one)
        val_below=Per(2.6, 1.85, 1.47),  # its best validation estimate; nanoGPT reports 1.4697 for the gpu size
        n_sample=Per(80, 300, 500),  # characters sampled per setting in section 13
        past=Per(16, 64, 64),  # characters generated past the block in section 15
        timed=dict(vocab_size=65, block_size=128, n_layer=4, n_head=4, n_embd=128),  # the KV-cache timing (CPU)
    ),

    # ---- 06 WikiText BPE GPT
    "06": dict(),

    # ---- 07 GPT grows up
    "07": dict(),

    # ---- 08 masked LM
    "08": dict(),
}


def sizes(notebook: str, *, profile: str | None = None) -> SimpleNamespace:
    """Notebook ``notebook``'s sizes (e.g. ``"05"``) in ``profile`` (default: this run's), as attributes."""
    if notebook not in TABLE:
        raise ValueError(f"no sizes for notebook {notebook!r}; the table has {', '.join(TABLE)}")
    profile = get_profile() if profile is None else profile
    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r} is not one of {', '.join(PROFILES)}")
    return SimpleNamespace(**{name: getattr(v, profile) if isinstance(v, Per) else v
                              for name, v in TABLE[notebook].items()})
