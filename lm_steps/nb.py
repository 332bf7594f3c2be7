"""Notebook helpers: show the package's own source instead of pasting copies of it, and show
figures with alternative text."""
from __future__ import annotations

import base64
import html
import inspect
import io
import re

__all__ = ["show", "Source", "show_figure"]


class Source:
    """Source code for display: a fenced Python block in notebooks, plain text elsewhere.

    Jupyter and nbconvert render the Markdown block with their own syntax highlighting, so an
    exported notebook or HTML page holds the code and nothing else (``IPython.display.Code``
    writes a block of CSS into every output). ``str()`` and ``.data`` are the plain source.
    """

    def __init__(self, source: str):
        self.data = source

    def __str__(self) -> str:
        return self.data

    def __repr__(self) -> str:
        return self.data

    def _repr_markdown_(self) -> str:
        longest = max((len(run) for run in re.findall(r"`+", self.data)), default=0)
        fence = "`" * max(3, longest + 1)  # longer than any run of backticks inside
        return f"{fence}python\n{self.data.rstrip()}\n{fence}"


def show(obj) -> Source:
    """Return the source of a package object (class, function, method or module) for display.

    In a notebook the returned :class:`Source` renders as a highlighted code block; ``str()`` of
    it is the plain source. The source comes from ``inspect.getsource``, so what a learner reads
    is always what runs.
    """
    try:
        source = inspect.getsource(obj)
    except (TypeError, OSError) as err:
        raise TypeError(f"show() needs a class, function, method or module with source, got {obj!r}") from err
    return Source(source)


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
