"""The shape of a lesson: the install cell, imports, then a few lines of sizes, and no code cell over 30 lines."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def code_cells(path):
    """The notebook's code cells after its first, which installs the package where it is missing
    (docs/colab.py writes it; tests/test_colab.py checks it)."""
    cells = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    assert cells[0].startswith("# Colab,"), f"{path.name}: the first code cell should be the install cell (make colab)"
    return cells[1:]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_imports_first_then_a_short_setup_and_short_cells(path):
    cells = code_cells(path)
    for line in cells[0].splitlines():
        s = line.strip()
        assert not s or s.startswith(("import ", "from ", "%", "#", "guard(")) or line.startswith(" ") or s == ")", \
            f"{path.name}: the first code cell is the imports only; move {s!r} to the cell after it"
    assert len(cells[1].splitlines()) <= 8, f"{path.name}: the setup cell after the imports has over 8 lines"
    for i, cell in enumerate(cells):
        assert len(cell.splitlines()) <= 30, f"{path.name}: code cell {i + 1} has {len(cell.splitlines())} lines (at most 30)"
