"""The Colab path: every notebook's first code cell installs the package where the kernel's Python lacks
it, from the repository URL in pyproject.toml (docs/colab.py writes the cells and the README's links).
The slow test executes a notebook in a fresh virtual environment without the package, as a hosted
kernel would, with the install cell pointed at this checkout."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("colab", ROOT / "docs" / "colab.py")
colab = importlib.util.module_from_spec(spec)
spec.loader.exec_module(colab)
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _copy_checkout(dest: Path) -> Path:
    """What docs/colab.py and pip read: pyproject.toml, README.md, the package and the notebooks."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dest / name)
    for name in ("lm_steps", "notebooks"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return dest


def test_the_notebooks_and_readme_agree_with_pyproject():
    assert colab.update(ROOT, check=True) == [], "run `make colab` (python docs/colab.py)"
    cell = colab.install_cell(colab.repository(ROOT / "pyproject.toml"))
    for path in NOTEBOOKS:
        first = next(c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        assert "".join(first["source"]) == cell, path.name


def test_a_repository_url_gives_install_cells_and_a_badge_per_notebook(tmp_path):
    root = _copy_checkout(tmp_path / "copy")
    text = (root / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(text.replace("[project.scripts]", "[project.urls]\n"
                                         'Repository = "https://github.com/someone/lm-steps.git"\n\n[project.scripts]', 1))
    changed = colab.update(root)
    assert "README.md" in changed and len(changed) == len(NOTEBOOKS) + 1
    assert colab.update(root, check=True) == []  # written once, nothing left to change
    readme = (root / "README.md").read_text()
    for path in NOTEBOOKS:
        before, after = (json.loads(p.read_text())["cells"] for p in (path, root / "notebooks" / path.name))
        assert 'os.environ.get("LM_STEPS_INSTALL", "git+https://github.com/someone/lm-steps")' in "".join(
            next(c for c in after if c["cell_type"] == "code")["source"])
        assert [c["source"] for c in after if not "".join(c["source"]).startswith(colab.MARKER)] == [  # the lesson's
            c["source"] for c in before if not "".join(c["source"]).startswith(colab.MARKER)]  # own cells untouched, none added
        assert (f"(https://colab.research.google.com/github/someone/lm-steps/blob/main/notebooks/{path.name})"
                in readme), path.name
    assert "names no public repository" not in readme


@pytest.mark.parametrize("url", ["https://gitlab.com/someone/lm-steps", "github.com/someone/lm-steps",
                                 "https://github.com/someone"])
def test_a_url_colab_cannot_open_is_refused_in_one_line(tmp_path, url):
    path = tmp_path / "pyproject.toml"
    path.write_text(f'[project]\nname = "x"\n\n[project.urls]\nRepository = "{url}"\n')
    with pytest.raises(SystemExit, match="Colab opens notebooks from GitHub only"):
        colab.repository(path)


def test_without_a_url_the_repository_is_none(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\n')
    assert colab.repository(path) is None


def _fresh_venv(tmp_path: Path) -> Path:
    """A new virtual environment that sees this one's packages (torch, Jupyter, ...: what a hosted kernel
    comes with) but not lm_steps, through a .pth file naming a folder of links to them."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    deps = tmp_path / "deps"
    deps.mkdir()
    parent = next(Path(p) for p in site.getsitepackages() if (Path(p) / "torch").exists())
    for entry in parent.iterdir():
        name = entry.name.lower()
        if name.startswith(("lm_steps", "lm-steps", "__editable__", "pip", "__pycache__")) or name.endswith(".pth"):
            continue
        (deps / entry.name).symlink_to(entry)
    python = venv / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "course-deps.pth").write_text(f"{deps}\n")
    return python


def _execute(python: Path, notebook: Path, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """Execute ``notebook`` in place with a kernel running ``python`` (nbclient, started by that Python)."""
    script = ("import sys, nbformat, nbclient\n"
              "nb = nbformat.read(sys.argv[1], as_version=4)\n"
              "try:\n"
              "    nbclient.NotebookClient(nb, timeout=600, kernel_name='python3', resources={'metadata': {'path': sys.argv[2]}}).execute()\n"
              "finally:\n"
              "    nbformat.write(nb, sys.argv[1])\n")
    return subprocess.run([python, "-c", script, notebook, cwd], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="the virtual environment's layout is POSIX's")
def test_a_notebook_runs_in_a_fresh_environment_without_the_package(tmp_path):
    python = _fresh_venv(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "LM_STEPS_INSTALL")}
    env.update(JUPYTER_PATH=str(tmp_path / "jupyter"), JUPYTER_DATA_DIR=str(tmp_path / "jupyter"),
               LM_STEPS_PROFILE="smoke", PYTHONNOUSERSITE="1")
    missing = subprocess.run([python, "-c", "import importlib.util as u; print(u.find_spec('lm_steps'))"],
                             env=env, cwd=tmp_path, capture_output=True, text=True)
    assert missing.stdout.strip() == "None", missing.stdout + missing.stderr
    run = tmp_path / "run"
    run.mkdir()

    # no package, no repository URL in this copy, no LM_STEPS_INSTALL: the cell says what to do
    nb = json.loads(NOTEBOOKS[0].read_text())
    first = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
    only = run / "install_only.ipynb"
    only.write_text(json.dumps({**nb, "cells": nb["cells"][first:first + 1]}))
    if colab.repository(ROOT / "pyproject.toml") is None:
        result = _execute(python, only, run, env)
        assert result.returncode != 0
        out = json.loads(only.read_text())["cells"][0]["outputs"]
        assert out and out[0]["ename"] == "SystemExit" and "set LM_STEPS_INSTALL" in out[0]["evalue"], out

    # pointed at (a copy of) this checkout, the first cell installs the package and the notebook runs
    source = _copy_checkout(tmp_path / "source")
    notebook = run / NOTEBOOKS[0].name
    shutil.copy(NOTEBOOKS[0], notebook)
    result = _execute(python, notebook, run, {**env, "LM_STEPS_INSTALL": source.as_uri()})
    assert result.returncode == 0, result.stderr[-3000:]
    installed = subprocess.run([python, "-c", "import lm_steps; print(lm_steps.__file__)"], env=env, cwd=tmp_path,
                               capture_output=True, text=True, check=True).stdout.strip()
    assert installed.startswith(str(tmp_path / "venv")), installed  # installed into the fresh environment
    cells = json.loads(notebook.read_text())["cells"]
    assert all(c.get("outputs") is not None for c in cells if c["cell_type"] == "code")
    assert not any(o.get("output_type") == "error" for c in cells if c["cell_type"] == "code" for o in c["outputs"])
