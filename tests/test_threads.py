"""Threads: LM_STEPS_THREADS wins over what a notebook or the command line prefers, and no notebook
forces a thread count of its own."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

from lm_steps.utils import THREADS_ENV, set_threads

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.fixture(autouse=True)
def keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_the_environment_wins(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "1")
    assert set_threads(2) == 1 and torch.get_num_threads() == 1


def test_preferred_is_capped_at_the_usable_cpus(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert set_threads(1) == 1
    assert set_threads(10_000) == usable


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_value_is_named(monkeypatch, value):
    monkeypatch.setenv(THREADS_ENV, value)
    with pytest.raises(ValueError, match=f"{THREADS_ENV}='{re.escape(value)}'"):
        set_threads(1)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_notebook_forces_a_thread_count(path):
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        code = re.sub(r"'''.*?'''|\"\"\".*?\"\"\"", "", "".join(cell["source"]), flags=re.S)  # scripts for subprocesses
        assert "set_num_threads(" not in code, f"{path.name}: use lm_steps.set_threads, which LM_STEPS_THREADS overrides"
