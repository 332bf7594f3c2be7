"""Write the learner's copy of the notebooks: every worked solution replaced by a stub.

    python -m lm_steps.exercises.build --out build/exercises notebooks/*.ipynb     (what `make exercises` runs)

In a source notebook an exercise is marked inside a code cell::

    def average_nll(P, words, stoi):
        ### BEGIN SOLUTION
        ### HINT: add up log P[prev, next] over every pair, then negate and divide by the number of pairs
        ...the worked solution...
        ### END SOLUTION

The learner's copy keeps everything but the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION``,
which become ``raise NotImplementedError("<hint>")`` at the same indentation. A find-the-bug cell puts
the broken lines the learner starts from after ``### BROKEN: `` inside the solution; the learner's copy
holds those lines instead of a stub. Outputs are dropped.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

__all__ = ["BEGIN", "END", "HINT", "BROKEN", "MarkerError", "learner_source", "learner_notebook", "Exercise",
           "exercises", "main"]

BEGIN, END, HINT, BROKEN = "### BEGIN SOLUTION", "### END SOLUTION", "### HINT:", "### BROKEN:"


class MarkerError(ValueError):
    """A solution block is not marked as the course expects (unclosed, nested, no hint)."""


def _blocks(source: str, where: str) -> list[tuple[int, int, str, str, list[str]]]:
    """(first line, last line, indent, hint, broken lines) of each solution block of ``source``."""
    lines, blocks, start = source.split("\n"), [], None
    for i, line in enumerate(lines):
        text = line.strip()
        if text == BEGIN:
            if start is not None:
                raise MarkerError(f"{where}, line {i + 1}: {BEGIN} inside another solution; close the first with {END}")
            start = i
        elif text == END:
            if start is None:
                raise MarkerError(f"{where}, line {i + 1}: {END} without {BEGIN}")
            inner = [l.strip() for l in lines[start + 1:i]]
            hints = [l[len(HINT):].strip() for l in inner if l.startswith(HINT)]
            if not hints or not hints[0]:
                raise MarkerError(f"{where}, line {start + 2}: a solution needs a one-line hint right after {BEGIN}: "
                                  f"'{HINT} what to do'")
            indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
            broken = [l for l in lines[start + 1:i] if l.strip().startswith(BROKEN)]
            blocks.append((start, i, indent, hints[0], broken))
            start = None
    if start is not None:
        raise MarkerError(f"{where}, line {start + 1}: {BEGIN} is never closed by {END}")
    return blocks


def learner_source(source: str, where: str = "cell") -> str:
    """``source`` with each solution block replaced by its stub (or its broken lines)."""
    lines = source.split("\n")
    for first, last, indent, hint, broken in reversed(_blocks(source, where)):
        if broken:
            stub = [_broken_text(l) for l in broken]
        else:
            stub = [f"{indent}raise NotImplementedError({hint!r})"]
        lines[first:last + 1] = stub
    return "\n".join(lines)


def _broken_text(line: str) -> str:
    """A ``### BROKEN: code`` line as ``code``, at the marker's indentation plus any after the marker's space."""
    indent = line[: len(line) - len(line.lstrip())]
    text = line.strip()[len(BROKEN):]
    return indent + (text[1:] if text.startswith(" ") else text)


def learner_notebook(nb: dict, name: str = "notebook") -> dict:
    """A copy of notebook ``nb`` (nbformat JSON) with every solution stubbed and no outputs."""
    out = copy.deepcopy(nb)
    for n, cell in enumerate(out["cells"]):
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cell["source"] = learner_source(source, f"{name}, code cell {n + 1}")
        cell["outputs"], cell["execution_count"] = [], None
    return out


@dataclass(frozen=True)
class Exercise:
    """One exercise of a notebook: the name its check gives, the cell's solution and learner sources, the check."""

    notebook: str
    name: str
    solution: str
    learner: str
    check: str
    broken: bool


def _source(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def exercises(path: str | Path) -> list[Exercise]:
    """Every exercise of the notebook at ``path``, paired with the first later code cell that calls a check."""
    nb, name = json.loads(Path(path).read_text(encoding="utf-8")), Path(path).name
    code = [_source(c) for c in nb["cells"] if c.get("cell_type") == "code"]
    found = []
    for i, src in enumerate(code):
        blocks = _blocks(src, f"{name}, code cell {i + 1}")
        if not blocks:
            continue
        check = next((c for c in code[i + 1:] if re.search(r"\bex\.check_\w+\(", c)), None)
        if check is None:
            raise MarkerError(f"{name}, code cell {i + 1}: an exercise with no check after it (ex.check_...)")
        check_name = re.search(r"\bex\.check_(\w+)\(", check).group(1)
        found.append(Exercise(name, check_name, src, learner_source(src, name), check, any(b[4] for b in blocks)))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Write the learner's copies; one line per notebook on stdout, a one-line error and status 2 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m lm_steps.exercises.build", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", help="source notebooks (.ipynb)")
    parser.add_argument("--out", default="build/exercises", help="folder for the learner's copies")
    args = parser.parse_args(argv)
    from ..utils import atomic_write

    out = Path(args.out)
    try:
        for path in map(Path, args.notebooks):
            nb = json.loads(path.read_text(encoding="utf-8"))
            learner = learner_notebook(nb, path.name)
            with atomic_write(out / path.name, "w") as f:
                json.dump(learner, f, indent=1, ensure_ascii=False)
                f.write("\n")
            n = sum(len(_blocks(_source(c), path.name)) for c in nb["cells"] if c.get("cell_type") == "code")
            print(f"{out / path.name}: {n} exercise{'s' if n != 1 else ''}")
    except (OSError, ValueError) as err:
        print(f"make exercises: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
