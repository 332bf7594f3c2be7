"""Notebook helpers: show the package's own source instead of pasting copies of it, show
figures with alternative text (after checking they can be read), and turn a name that an
earlier cell defines into a message naming that cell (:func:`guard`)."""
from __future__ import annotations

import base64
import html
import inspect
import io
import re

__all__ = ["show", "Source", "show_figure", "check_figure", "FigureError", "guard", "where_defined"]


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

    The figure must pass :func:`check_figure` first (labelled axes, colour bars, no hidden lines).

    In a notebook the returned ``IPython.display.HTML`` renders as the picture (``display()`` it,
    or make it a cell's last expression); screen readers and exported HTML get the description.
    Without IPython the ``<img>`` tag itself is returned.
    """
    if not isinstance(alt, str) or not alt.strip():
        raise ValueError("show_figure needs alt text: one or two sentences saying what the figure shows")
    import matplotlib.pyplot as plt

    check_figure(fig)

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


class FigureError(ValueError):
    """A figure a reader could not read at a glance; the message names the panel and the fix."""


def check_figure(fig) -> None:
    """Raise :class:`FigureError` unless ``fig`` can be read at a glance.

    Every panel that shows data has both axes labelled (its own label, the label of a panel it
    shares the axis with, or the figure's ``supxlabel``/``supylabel``), and a log axis says so in
    its label; no axis shows a bare offset or multiplier (``1e7`` in a corner); colour that carries
    a value has a colour bar (or its values are printed on the cells), and panels without their own
    bar share the scale of one that has one; no legend entry names a line hidden under another of
    the same style; a bar chart whose value axis does not start at zero prints the values on its
    bars (``ax.bar_label``), so the bars' lengths cannot mislead. Colour bars themselves and panels
    with their axes off are checked only for what applies to them.
    """
    fig.canvas.draw()  # tick labels and offsets exist only once drawn
    with_bar = [m for ax in fig.axes for m in _mappables(ax) if getattr(m, "colorbar", None) is not None]
    bars = {id(m.colorbar.ax) for m in with_bar}
    scales = [_scale(m) for m in with_bar]
    for i, ax in enumerate(fig.axes):
        if id(ax) in bars or not ax.get_visible():
            continue
        name = f"panel {i + 1}" + (f" ({ax.get_title()!r})" if ax.get_title() else "")
        if ax.axison and _has_data(ax):
            for axis, label, scale in (("x", _label(fig, ax, "x"), ax.get_xscale()),
                                       ("y", _label(fig, ax, "y"), ax.get_yscale())):
                if not label.strip():
                    raise FigureError(f"{name}: the {axis} axis has no label; say what it measures "
                                      f"(ax.set_{axis}label(...), with the unit if it has one)")
                if scale == "log" and "log" not in label.lower():
                    raise FigureError(f"{name}: the {axis} axis is logarithmic but its label {label!r} does not "
                                      f"say so; add '(log scale)'")
            for axis in (ax.xaxis, ax.yaxis):
                offset = axis.get_offset_text().get_text().strip()
                if offset and axis.get_offset_text().get_visible():
                    raise FigureError(f"{name}: an axis shows a bare offset {offset!r}; scale the values into "
                                      f"the unit of the label (e.g. millions) or use ax.ticklabel_format(useOffset=False, "
                                      f"style='plain')")
        annotated = len(ax.texts) >= 4  # the values are printed on the cells: the colour only repeats them
        for m in _mappables(ax):
            if getattr(m, "colorbar", None) is None and not annotated and not any(_scale(m) == s for s in scales):
                raise FigureError(f"{name}: colour carries a value but has no colour bar; add fig.colorbar(...) "
                                  f"or give it the scale (vmin, vmax, colour map) of a panel that has one")
        _check_legend(ax, name)
        _check_bars(ax, name)


def _label(fig, ax, axis: str) -> str:
    """The label of ``ax``'s ``axis``: its own, a panel's it shares that axis with, or the figure's
    (``fig.supxlabel``/``fig.supylabel``)."""
    own = getattr(ax, f"get_{axis}label")()
    if own.strip():
        return own
    shared = ax.get_shared_x_axes() if axis == "x" else ax.get_shared_y_axes()
    for other in shared.get_siblings(ax):
        if other is not ax and getattr(other, f"get_{axis}label")().strip():
            return getattr(other, f"get_{axis}label")()
    sup = getattr(fig, f"_sup{axis}label", None)
    return sup.get_text() if sup is not None else ""


def _mappables(ax) -> list:
    """The images, meshes and scatters in ``ax`` whose colour encodes a number."""
    out = []
    for m in list(ax.images) + list(ax.collections):
        array = m.get_array() if hasattr(m, "get_array") else None
        if array is None or getattr(array, "ndim", 0) == 3 or getattr(m, "get_cmap", None) is None:
            continue  # an RGB picture or colours given directly: no scale to read
        out.append(m)
    return out


def _scale(m) -> tuple:
    return (m.get_cmap().name, float(m.norm.vmin), float(m.norm.vmax), type(m.norm).__name__)


def _has_data(ax) -> bool:
    return bool(ax.lines or ax.collections or ax.images or ax.patches or ax.containers)


def _check_legend(ax, name: str) -> None:
    import numpy as np

    legend = ax.get_legend()
    if legend is None:
        return
    labelled = {t.get_text() for t in legend.get_texts()}
    lines = [line for line in ax.lines if line.get_label() in labelled and line.get_visible()]
    for k, a in enumerate(lines):
        xa, ya = (np.asarray(v, dtype=float) for v in a.get_data())
        for b in lines[k + 1:]:
            xb, yb = (np.asarray(v, dtype=float) for v in b.get_data())
            styled = (a.get_linestyle(), a.get_marker()) != (b.get_linestyle(), b.get_marker())
            if not styled and xa.shape == xb.shape and ya.shape == yb.shape \
                    and np.allclose(xa, xb, equal_nan=True) and np.allclose(ya, yb, equal_nan=True):
                raise FigureError(f"{name}: the legend names {a.get_label()!r} and {b.get_label()!r}, but one "
                                  f"line lies exactly on the other in the same style, so one is hidden; draw one "
                                  f"dashed or with markers (and say in its label that they coincide), or use "
                                  f"separate panels")


def _check_bars(ax, name: str) -> None:
    from matplotlib.container import BarContainer

    for bars in ax.containers:
        if not isinstance(bars, BarContainer) or not len(bars):
            continue
        low = ax.get_xlim()[0] if getattr(bars, "orientation", "vertical") == "horizontal" else ax.get_ylim()[0]
        scale = ax.get_xscale() if getattr(bars, "orientation", "vertical") == "horizontal" else ax.get_yscale()
        if scale == "linear" and low > 0 and not ax.texts:
            raise FigureError(f"{name}: the bars' axis starts at {low:g}, not 0, so their lengths mislead; "
                              f"start it at 0 or print each value on its bar (ax.bar_label(bars))")


def where_defined(notebook: dict) -> dict[str, tuple[int, str, str]]:
    """Each name a code cell of ``notebook`` (its JSON) binds at top level -> (the first such cell's
    number, counting code cells from 1; the heading of the section it is in; its first line)."""
    import ast

    found: dict[str, tuple[int, str, str]] = {}
    heading, number = "the start", 0
    for cell in notebook.get("cells", []):
        source = "".join(cell.get("source", []))
        if cell.get("cell_type") == "markdown":
            titles = re.findall(r"^#{1,3} (.+)$", source, re.M)
            heading = titles[-1].strip() if titles else heading
            continue
        if cell.get("cell_type") != "code":
            continue
        number += 1
        code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(code)
        except SyntaxError:  # a cell with a deliberate error, or IPython syntax
            continue
        first = next((line.strip() for line in code.splitlines() if line.strip() and not line.strip().startswith("#")),
                     "")
        for node in _statements(tree.body):
            for name in _bound(node):
                found.setdefault(name, (number, heading, first[:60] + ("..." if len(first) > 60 else "")))
    return found


def _statements(body):
    """The statements of ``body`` and of the blocks inside it (if, for, while, with, try), not of
    function or class bodies: what runs at a cell's top level."""
    import ast

    for node in body:
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for field in ("body", "orelse", "finalbody"):
            yield from _statements(getattr(node, field, []) or [])
        for handler in getattr(node, "handlers", []) or []:
            yield from _statements(handler.body)


def _bound(node) -> list[str]:
    import ast

    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For)):
        targets = [node.target]
    elif isinstance(node, ast.With):
        targets = [item.optional_vars for item in node.items if item.optional_vars is not None]
    else:
        targets = []
    names = []
    for target in targets:
        names += [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
    return names


def guard(notebook: str) -> None:
    """In IPython, answer a ``NameError`` for a name that an earlier cell of ``notebook`` (a file
    name in this folder, e.g. ``"05_shakespeare_gpt.ipynb"``) defines with one line naming that
    cell and its section, instead of a traceback: what a learner sees after a restart. Elsewhere
    (plain Python, or the file not found) it does nothing."""
    import json
    from pathlib import Path

    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    path = Path(notebook)
    if not path.exists():
        return
    found = where_defined(json.loads(path.read_text(encoding="utf-8")))

    def handler(shell, etype, value, tb, tb_offset=None):
        name = getattr(value, "name", None) or (re.findall(r"name '(\w+)' is not defined", str(value)) or [None])[0]
        if name in found:
            cell, section, first = found[name]
            print(f"NameError: `{name}` comes from an earlier cell: code cell {cell}, in section \"{section}\", "
                  f"the one that starts `{first}`. Run it first (or Run > Run All Above).")
            return None
        return shell.showtraceback((etype, value, tb), tb_offset=tb_offset)

    shell.set_custom_exc((NameError,), handler)
