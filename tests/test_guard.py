"""After a restart, a cell that needs an earlier one says which (lm_steps.nb.guard), not a NameError."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lm_steps.nb import guard, where_defined

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def _nb(*cells):
    return {"cells": [{"cell_type": t, "source": s} for t, s in cells]}


def test_names_map_to_their_first_cell_and_section():
    nb = _nb(("markdown", "# Title"), ("code", "import torch\nx = 1"),
             ("markdown", "## 2. Data\ntext"), ("code", "for i in range(3):\n    pass\ndef f():\n    return y\n"),
             ("code", "with open('a') as fh:\n    pass\nx, (z, w) = 1, (2, 3)\n%time q = 1"))
    found = where_defined(nb)
    assert found["torch"] == (1, "Title", "import torch") and found["x"][:2] == (1, "Title")
    assert found["i"] == (2, "2. Data", "for i in range(3):") and found["f"][:2] == (2, "2. Data")
    assert found["fh"][:2] == (3, "2. Data") and found["z"][:2] == (3, "2. Data") and "y" not in found


def test_a_missing_name_gets_the_cell_to_run(tmp_path, capsys, monkeypatch):
    IPython = pytest.importorskip("IPython")
    from IPython.core.interactiveshell import InteractiveShell

    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(_nb(("markdown", "## 1. Data"), ("code", "data = [1, 2, 3]"),
                                   ("markdown", "## 2. Use"), ("code", "print(len(data))"))))
    shell = InteractiveShell.instance()
    try:
        monkeypatch.chdir(tmp_path)
        shell.run_cell("from lm_steps.nb import guard; guard('nb.ipynb')")
        result = shell.run_cell("print(len(data))")
        out = capsys.readouterr().out
        assert "`data` comes from an earlier cell: code cell 1, in section \"1. Data\", the one that starts " \
               "`data = [1, 2, 3]`" in out
        assert "Traceback" not in out and result.error_in_exec is not None
        shell.run_cell("print(undefined_elsewhere)")
        assert "undefined_elsewhere" in capsys.readouterr().out  # a name no cell defines: the usual traceback
    finally:
        shell.set_custom_exc((), None)
        InteractiveShell.clear_instance()


def test_guard_does_nothing_outside_ipython():
    assert guard("no-such-notebook.ipynb") is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_guards_its_names(path):
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    first = "".join(cells[1]["source"])  # cells[0] installs the package where it is missing (tests/test_colab.py)
    assert f'guard("{path.name}")' in first, f"{path.name}: its imports cell should call guard({path.name!r})"
