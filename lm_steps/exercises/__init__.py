"""Exercises: the learner writes the lines that matter, and a check says what is wrong.

A notebook's exercise cell holds its worked solution between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` (nbgrader's markers), with a ``### HINT: ...`` line right after the first marker.
``make exercises`` (:mod:`lm_steps.exercises.build`) writes the learner's copy of every notebook, in
which each solution becomes ``raise NotImplementedError("<hint>")``; a find-the-bug cell instead gives
the learner the broken lines, written after ``### BROKEN:`` inside the solution.

The cell after an exercise calls one check from the notebook's module (``lm_steps.exercises.nb01`` for
notebook 01 ...), which runs the learner's function and the package's on fresh inputs and, where they
differ, raises :class:`ExerciseError` saying what differed, where, by how much, and what to try::

    from lm_steps.exercises import nb01 as ex
    ex.check_average_nll(average_nll)      # -> ✓ average_nll matches the package on 3 fresh inputs

The checks use the helpers below (:func:`check_function`, :func:`check_value`, :func:`difference`).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Sequence

import torch

__all__ = ["ExerciseError", "Passed", "difference", "describe", "check_function", "check_value"]


class ExerciseError(AssertionError):
    """An exercise's answer differs from the package's; the message says where and what to try."""


class Passed:
    """A check that passed; shows as one line in a notebook."""

    def __init__(self, message: str):
        self.message = message

    def __repr__(self) -> str:
        return f"✓ {self.message}"


def describe(x: Any) -> str:
    """A few words for a value: ``a (27, 27) float tensor``, ``a list of 12 strings``, ``3.5``."""
    if isinstance(x, torch.Tensor):
        return f"a {tuple(x.shape)} {str(x.dtype).replace('torch.', '')} tensor"
    if isinstance(x, (list, tuple)):
        kinds = {type(v).__name__ for v in x}
        what = f" {kinds.pop()}s" if len(kinds) == 1 else " values"
        return f"a {type(x).__name__} of {len(x)}{what if x else ''}"
    if isinstance(x, dict):
        return f"a dict of {len(x)} entries"
    if isinstance(x, torch.nn.Module):
        return f"a {type(x).__name__}"
    text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."


def _index(i: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(j) for j in i) + "]"


def difference(got: Any, expected: Any, *, atol: float = 1e-6, rtol: float = 1e-5, where: str = "") -> str | None:
    """None if ``got`` equals ``expected`` (numbers and tensors within ``atol + rtol * |expected|``), else
    a sentence saying what differs, where and by how much. Handles tensors, numbers, strings, and
    lists, tuples and dicts of them."""
    at = f" at {where}" if where else ""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"got {describe(got)}{at} where a {tuple(expected.shape)} tensor was expected"
        if tuple(got.shape) != tuple(expected.shape):
            return f"the shape{at} is {tuple(got.shape)}, expected {tuple(expected.shape)}"
        if expected.dtype == torch.bool or not (expected.is_floating_point() or got.is_floating_point()):
            wrong = got.to(expected.dtype) != expected
            if not bool(wrong.any()):
                return None
            first = tuple(int(j) for j in wrong.nonzero()[0])
            return (f"{int(wrong.sum())} of {wrong.numel()} entries{at} differ; the first, {_index(first)}, is "
                    f"{got[first].item()!r}, expected {expected[first].item()!r}")
        g, e = got.detach().double().cpu(), expected.detach().double().cpu()
        both_nan = torch.isnan(g) & torch.isnan(e)
        same_inf = torch.isinf(e) & (g == e)
        wrong = ~(((g - e).abs() <= atol + rtol * e.abs()) | both_nan | same_inf)
        if not bool(wrong.any()):
            return None
        gap = (g - e).abs().masked_fill(~wrong, 0).nan_to_num(nan=math.inf)
        worst = tuple(int(j) for j in (gap == gap.max()).nonzero()[0]) if g.dim() else ()
        spot = f", the largest at {_index(worst)}" if g.dim() else ""
        return (f"{int(wrong.sum())} of {wrong.numel()} entries{at} differ{spot}: {g[worst].item():.6g} where the "
                f"package has {e[worst].item():.6g} (off by {abs(g[worst].item() - e[worst].item()):.3g})")
    if isinstance(expected, bool) or isinstance(expected, str) or expected is None:
        return None if got == expected and type(got) is type(expected) else f"got {got!r}{at}, expected {expected!r}"
    if isinstance(expected, numbers.Number):
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, numbers.Number):
            return f"got {describe(got)}{at} where a number was expected"
        if math.isnan(expected) and math.isnan(got):
            return None
        if got == expected or abs(got - expected) <= atol + rtol * abs(expected):
            return None
        return f"got {got:.6g}{at}, the package has {expected:.6g} (off by {abs(got - expected):.3g})"
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"got {describe(got)}{at} where a dict was expected"
        if set(got) != set(expected):
            missing, extra = sorted(map(str, set(expected) - set(got))), sorted(map(str, set(got) - set(expected)))
            return f"the keys{at} differ: missing {missing or 'none'}, unexpected {extra or 'none'}"
        for k in expected:
            d = difference(got[k], expected[k], atol=atol, rtol=rtol, where=f"{where}[{k!r}]")
            if d:
                return d
        return None
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)):
            return f"got {describe(got)}{at} where {describe(expected)} was expected"
        if len(got) != len(expected):
            return f"got {len(got)} items{at}, expected {len(expected)}"
        for i, (a, b) in enumerate(zip(got, expected)):
            d = difference(a, b, atol=atol, rtol=rtol, where=f"{where}[{i}]")
            if d:
                return d
        return None
    return None if got == expected else f"got {got!r}{at}, expected {expected!r}"


def check_function(fn: Callable, reference: Callable, make_case: Callable[[int], Sequence], *, name: str, hint: str,
                   n_cases: int = 3, atol: float = 1e-6, rtol: float = 1e-5) -> Passed:
    """Run ``fn`` and ``reference`` on ``n_cases`` fresh inputs and compare what they return.

    ``make_case(i)`` returns the arguments of case ``i`` as a tuple; it is called once for each side,
    so a function that changes its inputs cannot change the other side's. Raises
    :class:`ExerciseError` when ``fn`` is not written yet, raises, or returns something else.
    """
    if not callable(fn):
        raise ExerciseError(f"{name}: expected the function you wrote, got {describe(fn)}. Hint: {hint}")
    for i in range(n_cases):
        expected = reference(*make_case(i))
        args = make_case(i)
        try:
            got = fn(*args)
        except NotImplementedError:
            raise ExerciseError(f"{name} is not written yet. Hint: {hint}") from None
        except Exception as err:  # the learner's code failed: say on what, and how
            raise ExerciseError(f"{name} raised {type(err).__name__}: {err} (on {', '.join(map(describe, args))}). "
                                f"Hint: {hint}") from None
        d = difference(got, expected, atol=atol, rtol=rtol)
        if d:
            raise ExerciseError(f"{name} differs from the package on input {i + 1} of {n_cases} "
                                f"({', '.join(map(describe, args))}): {d}. Hint: {hint}")
    return Passed(f"{name} matches the package on {n_cases} fresh inputs")


def check_value(got: Any, expected: Any, *, name: str, hint: str, atol: float = 1e-6, rtol: float = 1e-5) -> Passed:
    """Compare a value the learner computed with the package's; :class:`ExerciseError` says how they differ."""
    d = difference(got, expected, atol=atol, rtol=rtol)
    if d:
        raise ExerciseError(f"{name}: {d}. Hint: {hint}")
    return Passed(f"{name} matches the package")
