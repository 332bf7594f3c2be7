"""The README's picture of a notebook: one section of an executed notebook, rendered as Jupyter's HTML
and photographed by a headless Chromium.

    python docs/screenshot.py build/notebooks/08_masked_lm.ipynb "## Fine-tuning the encoder" docs/notebook.png

Needs nbconvert (the notebooks extra) and a Chromium (Debian: apt install chromium).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def section(notebook: dict, heading: str, n_cells: int) -> dict:
    """The notebook cut to the title cell and ``n_cells`` cells from the markdown cell starting with ``heading``."""
    cells = notebook["cells"]
    start = next((i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
                  and "".join(c["source"]).startswith(heading)), None)
    if start is None:
        raise SystemExit(f"no markdown cell starts with {heading!r}")
    return {**notebook, "cells": cells[start:start + n_cells]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebook", type=Path, help="an executed notebook (make run writes them to build/notebooks/)")
    p.add_argument("heading", help="the markdown cell the picture starts at")
    p.add_argument("png", type=Path)
    p.add_argument("--cells", type=int, default=7, help="how many cells from the heading on (default 7)")
    p.add_argument("--size", default="1000,1700", help="the browser window, width,height in pixels")
    args = p.parse_args(argv)
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise SystemExit("no Chromium found; install one (Debian: apt install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        cut = Path(tmp) / "section.ipynb"
        cut.write_text(json.dumps(section(json.loads(args.notebook.read_text()), args.heading, args.cells)))
        subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(cut), "--output-dir", tmp],
                       check=True, capture_output=True)
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--window-size={args.size}", f"--screenshot={args.png.resolve()}",
                        (Path(tmp) / "section.html").as_uri()], check=True, capture_output=True)
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
