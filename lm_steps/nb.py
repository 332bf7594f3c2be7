"""Notebook helpers: show the package's own source instead of pasting copies of it, and show
figures with alternative text."""
from __future__ import annotations

import base64
import html
import inspect
import io

__all__ = ["show", "show_figure"]


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


def show_figure(fig, alt: str):
    """Return a matplotlib figure as a PNG image carrying ``alt`` as its alternative text, and close it.

    In a notebook the returned ``IPython.display.HTML`` renders as the picture (``display()`` it,
    or make it a cell's last expression); screen readers and exported HTML get the description.
    Without IPython the ``<img>`` tag itself is returned.
    """
    if not isinstance(alt, str) or not alt.strip():
        raise ValueError("show_figure needs alt text: one or two sentences saying what the figure shows")
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    tag = f'<img alt="{html.escape(alt.strip(), quote=True)}" src="data:image/png;base64,{data}"/>'
    try:
        from IPython.display import HTML
    except ImportError:
        return tag
    return HTML(tag)
