"""Colab: each notebook's first code cell (installs the package where the kernel's Python lacks it) and
the README's "Open in Colab" links, both written from the one repository URL in pyproject.toml
(``[project.urls] Repository``).

    python docs/colab.py           # rewrite the notebooks' install cells and the README's Colab section
    python docs/colab.py --check   # exit 1, naming what is out of date, instead of writing (a test runs this)

``make colab`` runs the first. Colab opens notebooks from GitHub only, so the URL must be
``https://github.com/OWNER/REPO``.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None

ROOT = Path(__file__).resolve().parent.parent
MARKER = "# Colab, or a Jupyter whose Python lacks the course's package"  # the install cell's first line
BEGIN, END = "<!-- colab: begin (written by docs/colab.py) -->", "<!-- colab: end -->"
BRANCH = "main"
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def repository(pyproject: Path) -> str | None:
    """The ``Repository`` URL of ``[project.urls]`` in ``pyproject`` without a trailing slash or
    ``.git``, or None when there is none. A URL Colab cannot open (not github.com/OWNER/REPO) is refused."""
    text = pyproject.read_text(encoding="utf-8")
    if tomllib is not None:
        url = tomllib.loads(text).get("project", {}).get("urls", {}).get("Repository")
    else:  # the one line this script reads, without a TOML parser
        table = re.search(r"^\[project\.urls\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
        found = table and re.search(r'^Repository\s*=\s*"([^"]*)"', table.group(1), re.M)
        url = found.group(1) if found else None
    if not url:
        return None
    url = url.rstrip("/").removesuffix(".git")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise SystemExit(f"{pyproject}: Repository = {url!r} is not https://github.com/OWNER/REPO; "
                         "Colab opens notebooks from GitHub only")
    return url


def install_cell(repo: str | None) -> str:
    """The first code cell of every notebook: in a kernel without ``lm_steps`` it pip-installs the package
    (with the notebooks' own imports, the ``colab`` extra) from ``LM_STEPS_INSTALL`` if set, else from
    ``repo``; with the package there it does nothing."""
    source = f'os.environ.get("LM_STEPS_INSTALL", "git+{repo}")' if repo else 'os.environ.get("LM_STEPS_INSTALL", "")'
    lines = [
        f"{MARKER}: install it first (a minute).",
        "# Anywhere else (after `make`, or `pip install -e .` in a clone) this cell does nothing.",
        "import importlib.util, os",
        'if importlib.util.find_spec("lm_steps") is None:',
        f"    LM_STEPS_SOURCE = {source}",
    ]
    if not repo:
        lines += [
            "    if not LM_STEPS_SOURCE:",
            '        raise SystemExit("lm_steps is not installed in this Python and this copy of the course names no "',
            '                         "repository to install it from: set LM_STEPS_INSTALL to a URL pip installs it from "',
            '                         "(file:///path/to/lm-steps), or run `make` in a clone and pick its .venv as the kernel")',
        ]
    lines += [
        '    %pip install -q "lm-steps[colab] @ {LM_STEPS_SOURCE}"',
        "    importlib.invalidate_caches()",
        '    if importlib.util.find_spec("lm_steps") is None:',
        '        raise SystemExit(f"installing lm_steps from {LM_STEPS_SOURCE} failed: pip says why above")',
    ]
    return "\n".join(lines)


def readme_section(repo: str | None, notebooks: list[str]) -> str:
    """The README's Colab section (between its markers): a badge per notebook, or, with no
    repository URL, how the install cell can be pointed somewhere else."""
    intro = ("**In Colab** (or any hosted Jupyter), each notebook's first code cell installs the package when "
             "the kernel's Python lacks it (about a minute; `LM_STEPS_INSTALL=URL` installs from another "
             "copy, e.g. `file:///path/to/lm-steps`), and the data cells download the datasets with a progress "
             "bar. Colab has a GPU to lend (*Runtime → Change runtime type*); with one the notebooks run at "
             "the `gpu` profile's sizes.")
    if not repo:
        return "\n".join([BEGIN, textwrap.fill(intro + " This copy of the course names no public repository yet "
                          "(`pyproject.toml`'s `[project.urls] Repository`), so there are no \"Open in Colab\" "
                          "links here: `make colab` writes them into this section, and the URL into each "
                          "notebook's first cell, once it is set.", 100), END])
    rows = [f"| `{name}` | [![Open In Colab]({BADGE})](https://colab.research.google.com/github/"
            f"{repo.removeprefix('https://github.com/')}/blob/{BRANCH}/notebooks/{name}) |" for name in notebooks]
    return "\n".join([BEGIN, textwrap.fill(intro, 100), "", "| notebook | |", "| --- | --- |", *rows, END])


def _with_install_cell(nb: dict, cell: str) -> dict:
    """``nb`` with ``cell`` as its first code cell (replacing an earlier install cell, else inserted
    before the first code cell)."""
    cells = list(nb["cells"])
    first = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
    new = {"cell_type": "code", "execution_count": None, "id": "colab-install", "metadata": {},
           "outputs": [], "source": cell.splitlines(keepends=True)}
    if "".join(cells[first]["source"]).startswith(MARKER):
        cells[first] = {**cells[first], "source": new["source"]}
    else:
        cells.insert(first, new)
    return {**nb, "cells": cells}


def update(root: Path = ROOT, *, check: bool = False) -> list[str]:
    """Bring the notebooks under ``root/notebooks`` and ``root/README.md`` in line with the repository URL
    of ``root/pyproject.toml``; return the files that were (``check``: would be) changed."""
    repo = repository(root / "pyproject.toml")
    cell = install_cell(repo)
    stale = []
    paths = sorted((root / "notebooks").glob("*.ipynb"))
    for path in paths:
        text = path.read_text(encoding="utf-8")
        new = json.dumps(_with_install_cell(json.loads(text), cell), indent=1, ensure_ascii=False) + "\n"
        if new != text:
            stale.append(str(path.relative_to(root)))
            if not check:
                path.write_text(new, encoding="utf-8")
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: no Colab section (the lines {BEGIN} and {END}) to write into")
    head, rest = text.split(BEGIN, 1)
    new = head + readme_section(repo, [p.name for p in paths]) + rest.split(END, 1)[1]
    if new != text:
        stale.append("README.md")
        if not check:
            readme.write_text(new, encoding="utf-8")
    return stale


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if anything is out of date")
    p.add_argument("--root", type=Path, default=ROOT, help="the checkout (default: this one)")
    args = p.parse_args(argv)
    stale = update(args.root, check=args.check)
    if args.check and stale:
        print(f"out of date with pyproject.toml's Repository URL: {', '.join(stale)}; run `make colab`")
        return 1
    print("up to date" if not stale else f"rewrote {', '.join(stale)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
