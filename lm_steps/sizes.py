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
    "05": dict(),

    # ---- 06 WikiText BPE GPT
    "06": dict(),

    # ---- 07 GPT grows up
    "07": dict(),

    # ---- 08 masked LM
    "08": dict(),

    # ---- 09 quantisation
    "09": dict(
        # notebook 05's scaled-up GPT and its recipe, trained again when notebook 05 has not run
        model=Per(dict(block_size=32, n_layer=2, n_head=4, n_embd=64),
                  dict(block_size=128, n_layer=4, n_head=4, n_embd=128),
                  dict(block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2)),
        retrain=Per(dict(max_iters=300, batch_size=16, lr=3e-3, min_lr=3e-4, warmup_iters=20, eval_interval=30,
                         eval_iters=10, seed=1337),
                    dict(max_iters=1500, batch_size=16, lr=2e-3, min_lr=2e-4, warmup_iters=100, eval_interval=250,
                         eval_iters=20, seed=1337),
                    dict(max_iters=5000, batch_size=64, lr=1e-3, min_lr=1e-4, warmup_iters=100, eval_interval=250,
                         eval_iters=200, seed=1337)),
        n_val=Per(20_000, 100_000, 111_540),  # validation characters scored (111,540: all of them)
        n_new=Per(32, 128, 256),  # tokens generated per timing round
        rounds=Per(3, 5, 5),  # interleaved timing rounds; the table shows the median and the spread
    ),

    # ---- 10 scaling laws
    "10": dict(
        widths=Per((8, 16, 24, 32), (16, 32, 48, 64), (32, 64, 128, 192)),  # n_embd of the grid's GPTs
        steps=Per((40, 80, 160), (250, 500, 1000), (1000, 2000, 4000)),  # token budgets, in steps
        model=dict(n_layer=2, n_head=2, block_size=64),
        train=dict(batch_size=16, lr=3e-3, min_lr=3e-4, eval_iters=0, dtype="float32"),
        n_val=Per(20_000, 100_000, 111_540),  # validation characters scored
        seeds=(1, 2, 3),  # the compute-optimal model is trained once per seed
    ),
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
