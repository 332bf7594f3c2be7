"""Every exercise's check passes on the worked solution and fails, with the learner's message, on the stub
and on plausible wrong answers; the learner's copies are built as the README says."""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import re
from pathlib import Path

import pytest
import torch

from lm_steps.exercises import ExerciseError, Passed, check_function, check_value, difference
from lm_steps.exercises.build import MarkerError, exercises, learner_notebook, learner_source, main

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def _wrong_answers(path: Path, name: str) -> list[tuple[str, str]]:
    """The plausible wrong answers that notebook ``path``'s exercise module lists for exercise ``name``."""
    module = importlib.import_module(f"lm_steps.exercises.nb{path.stem.split('_')[0]}")
    return getattr(module, "WRONG_ANSWERS", {}).get(name, [])


def _imports_cell(path: Path) -> str:
    """The notebook's imports (its second code cell: the first installs the package where it is missing)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    src = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"][1]
    return "\n".join(line for line in src.split("\n") if not line.lstrip().startswith("%"))  # no IPython magics


def _run(setup: str, cell: str, check: str):
    """Run a notebook's imports cell, an exercise cell and its check in a fresh namespace; return the check's value."""
    ns: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(setup, "imports cell", "exec"), ns)
        exec(compile(cell, "exercise cell", "exec"), ns)
        *body, last = check.strip().split("\n")
        exec(compile("\n".join(body), "check cell", "exec"), ns)
        return eval(compile(last, "check cell", "eval"), ns)


CASES = [(path, ex) for path in NOTEBOOKS for ex in exercises(path)]


@pytest.mark.parametrize("path,ex", CASES, ids=[f"{p.stem}:{e.name}" for p, e in CASES])
def test_solution_passes_and_wrong_answers_fail(path, ex):
    torch.manual_seed(0)
    setup = _imports_cell(path)
    assert isinstance(_run(setup, ex.solution, ex.check), Passed)
    with pytest.raises(ExerciseError) as err:  # the learner's starting point: the stub, or the broken lines
        _run(setup, ex.learner, ex.check)
    assert "Hint:" in str(err.value)
    if not ex.broken:
        assert "not written yet" in str(err.value)
    wrong = _wrong_answers(path, ex.name)
    assert wrong or ex.broken, f"{path.stem}:{ex.name} needs a plausible wrong answer in WRONG_ANSWERS"
    for old, new in wrong:
        assert old in ex.solution, f"{old!r} is not in the solution of {ex.name}"
        with pytest.raises(ExerciseError, match="Hint:"):
            _run(setup, ex.solution.replace(old, new), ex.check)


def test_every_notebook_has_exercises():
    counts = {p.stem: len(exercises(p)) for p in NOTEBOOKS}
    assert all(n >= 2 for n in counts.values()), {k: n for k, n in counts.items() if n < 2}


def test_learner_source_stubs_and_broken_lines():
    src = ("def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    ### HINT: add one\n    return x + y\n"
           "    ### END SOLUTION\n\nprint(f(2))")
    out = learner_source(src)
    assert "return x + y" not in out and "raise NotImplementedError('add one')" in out
    assert out.startswith("def f(x):\n    y = 1\n    raise") and out.endswith("print(f(2))")
    bug = ("def g(N):\n    ### BEGIN SOLUTION\n    ### HINT: keep the dimension\n    ### BROKEN: return N / N.sum(1)\n"
           "    ### BROKEN: #   (the broken line)\n    return N / N.sum(1, keepdim=True)\n    ### END SOLUTION")
    assert learner_source(bug) == "def g(N):\n    return N / N.sum(1)\n    #   (the broken line)"


@pytest.mark.parametrize("src,msg", [
    ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
    ("x = 1\n### END SOLUTION", "without"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another"),
    ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", "hint"),
])
def test_bad_markers_are_refused(src, msg):
    with pytest.raises(MarkerError, match=msg):
        learner_source(src)


def test_make_exercises_writes_stubbed_notebooks_without_outputs(tmp_path):
    assert main(["--out", str(tmp_path)] + [str(p) for p in NOTEBOOKS]) == 0
    for path in NOTEBOOKS:
        nb = json.loads((tmp_path / path.name).read_text(encoding="utf-8"))
        text = "\n".join("".join(c["source"]) for c in nb["cells"])
        assert "### BEGIN SOLUTION" not in text and "### HINT" not in text and "### BROKEN" not in text
        assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
        n_stubs = text.count("raise NotImplementedError(")
        assert n_stubs == sum(not e.broken for e in exercises(path)) + len(re.findall(r"raise NotImplementedError\(",
                                                                          path.read_text(encoding="utf-8")))


def test_make_exercises_reports_a_bad_notebook_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.ipynb"
    bad.write_text(json.dumps({"cells": [{"cell_type": "code", "source": ["### BEGIN SOLUTION\n", "x = 1"],
                                          "outputs": [], "metadata": {}, "execution_count": None}],
                               "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert main(["--out", str(tmp_path / "out"), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("make exercises: error:") and "bad.ipynb" in err and "\n" not in err


# ----------------------------------------------------------------------------- the comparison helpers
@pytest.mark.parametrize("got,expected,fragment", [
    (torch.zeros(3), torch.zeros(2, 3), "shape"),
    (torch.tensor([1.0, 2.0, 3.5]), torch.tensor([1.0, 2.0, 3.0]), "[2]"),
    (torch.tensor([1, 2]), torch.tensor([1, 3]), "[1]"),
    (2.5, 2.0, "off by 0.5"),
    ([1.0, 2.0], [1.0, 2.0, 3.0], "2 items"),
    ({"a": 1.0}, {"a": 1.0, "b": 2.0}, "missing"),
    ("ab", "abc", "'ab'"),
    ("x", 1.0, "number"),
])
def test_difference_says_where_and_how_much(got, expected, fragment):
    d = difference(got, expected)
    assert d is not None and fragment in d


def test_difference_accepts_equal_values_within_tolerance():
    assert difference(torch.tensor([1.0, float("inf")]), torch.tensor([1.0 + 1e-8, float("inf")])) is None
    assert difference((torch.ones(2), 3), (torch.ones(2), 3)) is None
    assert difference(float("nan"), float("nan")) is None


def test_check_function_reports_stub_error_and_difference():
    ref = lambda x: x * 2  # noqa: E731
    case = lambda i: (torch.arange(3.0) + i,)  # noqa: E731
    assert isinstance(check_function(ref, ref, case, name="double", hint="h"), Passed)

    def stub(x):
        raise NotImplementedError("h")

    with pytest.raises(ExerciseError, match="not written yet. Hint: h"):
        check_function(stub, ref, case, name="double", hint="h")
    with pytest.raises(ExerciseError, match="raised ZeroDivisionError"):
        check_function(lambda x: 1 / 0, ref, case, name="double", hint="h")
    with pytest.raises(ExerciseError, match=r"input 1 of 3 .*off by"):
        check_function(lambda x: x * 3, ref, case, name="double", hint="h")
    with pytest.raises(ExerciseError, match="expected the function"):
        check_function(None, ref, case, name="double", hint="h")
    with pytest.raises(ExerciseError, match="x: got 3"):
        check_value(3, 4, name="x", hint="h")
