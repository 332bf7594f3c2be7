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

from .config import Recipe
from .utils import PROFILES, get_profile
from .wavenet import WAVENET_RECIPES

__all__ = ["Per", "TABLE", "sizes"]


class Per(NamedTuple):
    """A value per profile."""

    smoke: Any
    cpu: Any
    gpu: Any


# notebook 04's short recipe (seconds) and the recipe of its versions log (a few minutes on a CPU)
_WAVENET_QUICK = Recipe(steps=300, batch_size=64, optimizer="adamw", lr=1e-2, final_lr=1e-3, schedule="cosine")
_WAVENET_VERSIONS = Recipe(steps=4_000, batch_size=256, optimizer="adamw", lr=1e-2, final_lr=1e-4, schedule="cosine",
                           warmup=100)

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
    "03b": dict(
        steps=Per(300, 20_000, 100_000),  # SGD steps of the training without autograd, lr 0.1 then 0.01 from half way
        min_learned=Per(0.5, 1.0, 1.0),  # the hand-trained model's dev loss is at least this far below ln 27
    ),

    # ---- 04 WaveNet
    "04": dict(
        threads=Per(1, 2, 2),  # CPU threads: two make a step of batches of 512 about 1.5x faster; tiny steps gain nothing
        versions=Per(_WAVENET_QUICK, _WAVENET_VERSIONS, _WAVENET_VERSIONS),  # each version of the log
        recipe=Per(_WAVENET_QUICK, WAVENET_RECIPES["cpu"], WAVENET_RECIPES["lecture"]),  # the scaled-up WaveNet
        n_eval_train=Per(5_000, None, None),  # training examples scored (None: all)
        n_samples=Per(5, 20, 20),  # names sampled from the scaled-up WaveNet
        # the scaled-up WaveNet's highest dev loss, nats/char (the bigram: 2.4533; the lecture's recipe: its 1.9937 + 0.02)
        max_dev=Per(2.35, 1.99, 1.9937 + 0.02),
        # the small versions' dev losses, (low, high): the flat MLP minus the better hierarchy (after 300 steps of
        # 64 the flat MLP is still ahead; after 4,000 of 256 the hierarchy, by more than 0.02), and the bug's cost
        flat_minus_hierarchy=Per((-0.05, 0.0), (0.02, 0.05), (0.02, 0.05)),
        buggy_minus_fixed=Per((-0.05, 0.05), (0.0, 0.015), (0.0, 0.015)),
    ),

    # ---- 05 Shakespeare GPT
    "05": dict(),

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
