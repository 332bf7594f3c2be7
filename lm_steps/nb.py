"""Notebook helpers: show the package's own source instead of pasting copies of it."""
from __future__ import annotations

import inspect

__all__ = ["show"]


def show(obj):
    """Return the source of a package object (class, function, method or module) for display.

    In a notebook the returned ``IPython.display.Code`` renders with syntax highlighting;
    ``str()`` of it is the plain source. The source comes from ``inspect.getsource``, so what
    a learner reads is always what runs.
    """
    try:
        source = inspect.getsource(obj)
    except (TypeError, OSError) as err:
        raise TypeError(f"show() needs a class, function, method or module with source, got {obj!r}") from err
    try:
        from IPython.display import Code
    except ImportError:  # plain Python without IPython: the text itself
        return source
    return Code(source, language="python")
