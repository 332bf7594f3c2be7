"""Small helpers every stage uses: device choice, seeding, the run profile, atomic writes."""
from __future__ import annotations

import contextlib
import os
import random
import secrets
import sys
from pathlib import Path
from typing import IO, Iterator, TypeVar

import numpy as np
import torch

__all__ = ["PROFILES", "auto_device", "eval_mode", "unwrap", "atomic_write", "remove_stale_temps", "set_seed",
           "make_generator", "get_profile", "by_profile", "profile_table", "THREADS_ENV", "set_threads", "progress_bar"]

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


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model inside a DistributedDataParallel and/or ``torch.compile`` wrapper (else ``model``)."""
    model = getattr(model, "module", model)  # DistributedDataParallel
    return getattr(model, "_orig_mod", model)  # torch.compile


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Write ``path`` all at once or not at all: ``with atomic_write(path) as f: f.write(...)``.

    The block writes to a temporary file beside ``path`` (``.NAME.RANDOM.tmp``, ``f.name``); when it ends
    without an exception the file is flushed, fsynced and renamed over ``path``, otherwise it is
    deleted, so readers see the old file or the new one, never half of one. Raise inside the
    block (e.g. after checking ``f.name``'s checksum) to keep the old file. The new file gets the
    permissions the umask gives any new file. Before writing, temporary files that an earlier,
    killed write to the same ``path`` left behind are removed. It is the package's one way to write
    a file (checkpoints, ``run.json``, the results log, tokenizers, downloads); a test checks that
    no other exists.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, f".{path.name}.*.tmp")
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    try:
        with open(tmp, mode.replace("w", "x")) as f:  # a new file: mode 0o666 less the umask, as for any file
            _lock(f)  # held until closed: tells remove_stale_temps this write is alive
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):  # a clean-up that fails (a read-only folder) must not hide the error
            tmp.unlink(missing_ok=True)  # failed or interrupted: nothing half-written stays


def _lock(f) -> bool:
    """Take an exclusive, non-blocking advisory lock on open file ``f``; False if another process holds one."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks, so no temporary file counts as stale
        return False
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def remove_stale_temps(folder: str | os.PathLike, pattern: str) -> list[Path]:
    """Delete the files in ``folder`` matching ``pattern`` that no live write holds; return them.

    :func:`atomic_write` holds an advisory lock on its temporary file while it writes; a process
    killed mid-write loses its lock, so a temporary file nobody holds is a leftover.
    """
    removed = []
    for stale in Path(folder).glob(pattern):
        try:
            with open(stale, "rb") as f:
                if not _lock(f):
                    continue  # another process is writing it right now
                stale.unlink(missing_ok=True)
                removed.append(stale)
        except OSError:
            continue
    return removed


def progress_bar(**kw):
    """A text progress bar (``tqdm``) for the package's long loops.

    On a terminal it is tqdm's usual bar on standard error. In a Jupyter kernel it is one line of
    text that is redrawn in place (a display that updates), so a saved or exported notebook shows
    the bar's last state ("100% 150/150 ...") and never a widget's first ("0%"). It redraws at
    most once a second (``mininterval``).
    """
    import sys

    from tqdm import tqdm

    kw.setdefault("mininterval", 1.0)
    if "file" not in kw:
        kw["file"] = _NotebookLine() if _in_kernel() else sys.stderr
    return tqdm(**kw)


def _in_kernel() -> bool:
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return type(shell).__name__ == "ZMQInteractiveShell"


class _NotebookLine:
    """A file for tqdm that shows the latest line it wrote as one display, updated in place."""

    def __init__(self):
        self.text, self.handle = "", None
        self.encoding = "utf-8"  # tqdm then draws its unicode blocks

    def write(self, s: str) -> None:
        self.text = (self.text + s).split("\r")[-1].strip("\n") or self.text

    def flush(self) -> None:
        from IPython.display import Pretty, display

        if self.handle is None:
            self.handle = display(Pretty(self.text), display_id=True)
        else:
            self.handle.update(Pretty(self.text))


THREADS_ENV = "LM_STEPS_THREADS"


def set_threads(preferred: int | None = None) -> int:
    """Set torch's CPU threads and return the number: ``LM_STEPS_THREADS`` if it is set, else
    ``preferred`` (what suits the work at hand, e.g. 1 for small matrices), else the CPUs this
    process may use; never more than those CPUs unless the variable asks for more."""
    given = os.environ.get(THREADS_ENV, "").strip()
    if given:
        try:
            n = int(given)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"{THREADS_ENV}={given!r} must be a whole number of threads >= 1, e.g. "
                             f"{THREADS_ENV}=2; unset it for the default")
    else:
        try:
            usable = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            usable = os.cpu_count() or 1
        n = min(usable, torch.get_num_threads() if preferred is None else preferred)
    torch.set_num_threads(n)
    return n


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
