"""A small results log shared by the notebooks, so later notebooks can tabulate earlier stages.

Each notebook records its headline figures with :func:`record`; notebook 04 and 06 read them
back with :func:`load_results` for the cross-stage tables. The log is a JSON file per profile in
``LM_STEPS_RESULTS`` (default: ``build/`` in a checkout, else ``~/.cache/lm_steps``), written
atomically.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .checks import check_choice
from .utils import PROFILES, atomic_write, get_profile

__all__ = ["results_path", "record", "load_results"]


def results_path(profile: str | None = None) -> Path:
    """Where the results log of ``profile`` (default: the current one) lives.

    Raises ValueError for a profile that is not one of :data:`~lm_steps.utils.PROFILES` (a typo would
    start a new log; a path would leave the results folder)."""
    profile = get_profile() if profile is None else check_choice("profile", profile, PROFILES)
    if os.environ.get("LM_STEPS_RESULTS"):
        folder = Path(os.environ["LM_STEPS_RESULTS"]).expanduser()
    else:
        repo = Path(__file__).resolve().parent.parent
        folder = repo / "build" if (repo / "pyproject.toml").exists() else Path.home() / ".cache" / "lm_steps"
    return folder / f"results-{profile}.json"


def load_results(profile: str | None = None) -> dict[str, dict]:
    """All recorded entries of ``profile`` as ``{name: {metric: value, ...}}`` (empty if none)."""
    path = results_path(profile)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"the results log {path} is not valid JSON ({e}); fix or delete it "
                         f"(set LM_STEPS_RESULTS to keep the log elsewhere)") from None


def record(name: str, *, profile: str | None = None, **metrics) -> dict:
    """Record (or replace) the entry ``name`` with ``metrics`` (JSON-serialisable values).

    Returns the stored entry. Example: ``record("03 MLP", dataset="names", split="dev",
    nats_per_char=2.09, bits_per_char=3.02)``.
    """
    for key, value in metrics.items():  # checked before the log is touched: a bad value loses nothing
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise ValueError(f"metric {key}={value!r} cannot be recorded: values must be JSON numbers, strings, "
                             f"lists or dicts, and finite (convert a tensor with .item())") from None
    path = results_path(profile)
    data = load_results(profile)
    data[name] = dict(metrics)
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    return data[name]
