"""Moved: the pure-Python BPE encoder is :class:`lm_steps.bpe.ReferenceBPE`, and
:func:`merges_from_encoding` is in :mod:`lm_steps.tokenizers`. The old names still work for one
release, with a DeprecationWarning."""
from __future__ import annotations

import importlib
import warnings

__all__: list[str] = []
_MOVED = {"ReferenceBPE": "lm_steps.bpe", "merges_from_encoding": "lm_steps.tokenizers"}  # name: its new module


def __getattr__(name: str):
    """The moved names, served from their new modules with a DeprecationWarning."""
    if name in _MOVED:
        warnings.warn(f"lm_steps.bpe_reference.{name} moved to {_MOVED[name]}.{name}; import it from there "
                      f"(lm_steps.bpe_reference goes in the next release)", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
