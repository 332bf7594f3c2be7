"""Small helpers every stage uses: device choice, seeding and the run profile."""
from __future__ import annotations

import contextlib
import os
import random
from typing import TypeVar

import numpy as np
import torch

__all__ = ["PROFILES", "auto_device", "eval_mode", "set_seed", "make_generator", "get_profile", "by_profile",
           "profile_table"]

PROFILES = ("smoke", "cpu", "gpu")
T = TypeVar("T")


def auto_device() -> torch.device:
    """Return the best available device: CUDA, then Apple MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module):
    """Run the ``with`` block with ``model`` in eval mode (dropout off, BatchNorm on running
    statistics), then restore the mode it had, even if the block raises."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (a convenience only).

    Library functions take an explicit ``torch.Generator``; use :func:`make_generator`
    for those so results do not depend on the order notebook cells ran.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """Return a ``torch.Generator`` on ``device`` seeded with ``seed``."""
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def get_profile() -> str:
    """Return the run profile: ``LM_STEPS_PROFILE`` if set, else ``gpu`` with CUDA, else ``cpu``.

    Raises ValueError for a value that is not one of :data:`PROFILES`.
    """
    value = os.environ.get("LM_STEPS_PROFILE", "").strip().lower()
    if not value:
        return "gpu" if torch.cuda.is_available() else "cpu"
    if value not in PROFILES:
        raise ValueError(
            f"LM_STEPS_PROFILE={os.environ['LM_STEPS_PROFILE']!r} is not a profile; "
            f"set it to one of {', '.join(PROFILES)} (or unset it to pick cpu/gpu automatically)"
        )
    return value


def by_profile(*, smoke: T, cpu: T, gpu: T, profile: str | None = None) -> T:
    """Return the value for the current profile (or ``profile`` if given).

    Notebooks keep every size in one parameters cell:
    ``P = by_profile(smoke=dict(steps=50), cpu=dict(steps=20_000), gpu=dict(steps=200_000))``.
    """
    profile = get_profile() if profile is None else profile
    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r} is not one of {', '.join(PROFILES)}")
    return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[profile]


def profile_table(profile: str | None = None, **rows: tuple) -> dict:
    """The current profile's column of a table of ``name=(smoke, cpu, gpu)`` rows, as a dict.

    A notebook's parameters cell reads as one table, a row per size and a column per profile::

        P = profile_table(
            #           smoke     cpu      gpu
            steps=    (    50,  20_000, 200_000),
            n_embd=   (    16,     192,     384),
        )
    """
    profile = get_profile() if profile is None else profile
    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r} is not one of {', '.join(PROFILES)}")
    out = {}
    for name, values in rows.items():
        if not isinstance(values, tuple) or len(values) != len(PROFILES):
            raise ValueError(f"{name} needs a tuple of {len(PROFILES)} values, one per profile "
                             f"({', '.join(PROFILES)}), got {values!r}")
        out[name] = values[PROFILES.index(profile)]
    return out
