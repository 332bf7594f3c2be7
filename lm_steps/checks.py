"""The one small set of boundary checks (configs, public arguments, files, the command line).

Each helper returns the value it checked (converted where that is safe: a NumPy integer becomes an
``int``) or raises ``ValueError`` (``TypeError`` for the wrong kind of object) with a message that
names the argument, the value it got and what to give instead. Use them where values enter the
package; inside a hot loop use an ``assert`` or nothing.

    >>> check_int("n_layer", 4, minimum=1)
    4
    >>> check_int("n_layer", True, minimum=1)
    Traceback (most recent call last):
    ValueError: n_layer must be an integer >= 1, got True
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Collection

__all__ = ["is_int", "is_number", "check_int", "check_number", "check_choice", "check_bool", "check_fields"]


def is_int(x) -> bool:
    """True for an integer (Python or NumPy), False for a bool, a float that happens to be whole, or anything else."""
    return not isinstance(x, bool) and isinstance(x, numbers.Integral)


def is_number(x) -> bool:
    """True for a real number (Python, NumPy or a one-element tensor), False for a bool, a string or None."""
    if isinstance(x, (bool, str, bytes)) or x is None:
        return False
    try:
        float(x)
    except (TypeError, ValueError, RuntimeError):
        return False
    return True


def check_int(name: str, value, *, minimum: int | None = None, maximum: int | None = None, hint: str = "") -> int:
    """``value`` as an ``int`` if it is an integer in ``[minimum, maximum]``, else ValueError naming ``name``.

    ``hint`` is added to the message (e.g. ``" (0 turns it off)"``).
    """
    ok = is_int(value) and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        bounds = (f" in [{minimum}, {maximum}]" if minimum is not None and maximum is not None else
                  f" >= {minimum}" if minimum is not None else f" <= {maximum}" if maximum is not None else "")
        raise ValueError(f"{name} must be an integer{bounds}{hint}, got {value!r}")
    return int(value)


def check_number(name: str, value, *, low: float = -math.inf, high: float = math.inf, low_open: bool = False,
                 high_open: bool = False, hint: str = "") -> float:
    """``value`` as a ``float`` if it is a finite number in the interval, else ValueError naming ``name``.

    The interval is ``[low, high]``; ``low_open`` / ``high_open`` exclude an end. Infinite ends are always open.
    """
    v = float(value) if is_number(value) else math.nan
    ok = (math.isfinite(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high))
    if not ok:
        if math.isinf(low) and math.isinf(high):
            where = ""
        elif math.isinf(high):
            where = f" {'>' if low_open else '>='} {low:g}"
        elif math.isinf(low):
            where = f" {'<' if high_open else '<='} {high:g}"
        else:
            where = f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a finite number{where}{hint}, got {value!r}")
    return v


def check_choice(name: str, value, choices: Collection[Any]) -> Any:
    """``value`` if it is one of ``choices``, else ValueError listing them."""
    if isinstance(value, (list, dict, set)) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return value


def check_bool(name: str, value) -> bool:
    """``value`` if it is ``True`` or ``False`` (not 0, 1 or a string), else ValueError."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_fields(cfg, names: Collection[str], *, minimum: int, hint: str = "") -> None:
    """Check that each field of ``cfg`` in ``names`` is an integer >= ``minimum`` (a config's ``__post_init__``)."""
    for name in names:
        check_int(name, getattr(cfg, name), minimum=minimum, hint=hint)
