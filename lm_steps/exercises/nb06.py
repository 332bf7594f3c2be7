"""Checks for notebook 06: none of its own. Its BPE exercises (pair counts, merge, encoding a chunk)
moved to notebook 05b, which builds BPE from the bytes up (:mod:`lm_steps.exercises.nb05b`); notebook
06 uses the package's BPE."""
from __future__ import annotations

__all__ = ["WRONG_ANSWERS"]

#: Plausible mistakes each check must catch: exercise name -> [(text of the solution, a wrong replacement)].
WRONG_ANSWERS: dict[str, list[tuple[str, str]]] = {}
