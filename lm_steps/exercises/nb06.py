"""Checks for notebook 06: label smoothing's loss and the sliding windows of honest perplexity.

(Its BPE exercises, pair counts, merge and encoding a chunk, are in notebook 05b, which builds BPE
from the bytes up: :mod:`lm_steps.exercises.nb05b`.)
"""
from __future__ import annotations

import torch

from ..evaluation import sliding_windows
from ..losses import lm_loss
from . import ExerciseError, Passed, check_function

__all__ = ["check_smoothed_loss", "check_sliding_windows", "WRONG_ANSWERS"]

#: Plausible mistakes each check must catch: exercise name -> [(text of the solution, a wrong replacement)].
WRONG_ANSWERS = {
    "smoothed_loss": [
        ("(1 - eps) * nll + eps * uniform", "nll + eps * uniform"),  # forgot to take eps from the target
        ("-logp.mean(dim=-1)", "-logp.sum(dim=-1)"),  # the sum over the vocabulary, not the mean
        ("(1 - eps) * nll + eps * uniform", "(1 - eps) * nll"),  # the smoothing term left out
    ],
    "sliding_windows": [
        ("start += stride", "start += length"),  # non-overlapping chunks whatever the stride
        ("scored_to - start", "0"),  # every window scores all its positions: tokens scored twice
        ("min(block_size, n_targets - start)", "block_size"),  # the last window runs past the stream
    ],
}


def check_smoothed_loss(smoothed_loss) -> Passed:
    """``smoothed_loss(logits, targets, eps)``: cross-entropy against targets smoothed by ``eps`` (mean over rows)."""

    def make_case(i):
        g = torch.Generator().manual_seed(600 + i)
        V = (5, 17, 50)[i]
        return torch.randn(4 + i, V, generator=g) * 3, torch.randint(V, (4 + i,), generator=g), (0.1, 0.0, 0.3)[i]

    def package(logits, targets, eps):  # the package's loss takes (B, T, V): here one sequence of N positions
        return lm_loss(logits[None], targets[None], label_smoothing=eps)

    return check_function(smoothed_loss, package, make_case, name="smoothed_loss", atol=1e-5, rtol=1e-5,
                          hint="logp = log_softmax(logits, dim=-1); nll = -logp at each row's target; uniform = "
                               "-logp averaged over the vocabulary; (1 - eps) * nll + eps * uniform, averaged over rows")


def check_sliding_windows(windows_fn) -> Passed:
    """``windows_fn(n_targets, block_size, stride) -> [(start, length, first), ...]``: every target scored once."""
    hint = ("start at 0; each window is min(block_size, n_targets - start) long, scores from scored_to - start on, "
            "then scored_to = start + length and start += stride")
    for n, block, stride in ((10, 4, 2), (7, 8, 8), (23, 6, 4)):  # first: is every target scored once?
        try:
            got = windows_fn(n, block, stride)
        except NotImplementedError:
            raise ExerciseError(f"sliding_windows is not written yet. Hint: {hint}") from None
        except Exception as err:  # the learner's code failed: say on what
            raise ExerciseError(f"sliding_windows({n}, {block}, {stride}) raised {type(err).__name__}: {err}. "
                                f"Hint: {hint}") from None
        scored = [t for s, length, first in (got or []) for t in range(s + first, s + length)]
        if sorted(scored) != list(range(n)):
            twice = sorted({t for t in scored if scored.count(t) > 1})
            missing = sorted(set(range(n)) - set(scored))
            raise ExerciseError(f"sliding_windows({n}, {block}, {stride}) scores "
                                f"{'targets ' + str(twice) + ' twice' if twice else ''}"
                                f"{' and ' if twice and missing else ''}"
                                f"{'never targets ' + str(missing) if missing else ''}"
                                f"{'targets past the stream' if not twice and not missing else ''}: each of the "
                                f"{n} targets must be scored exactly once. Hint: a window scores from the first "
                                f"target no earlier window reached (first = scored_to - start)")
    return check_function(windows_fn, sliding_windows, lambda i: ((10, 50, 23)[i], (4, 8, 6)[i], (2, 3, 6)[i]),
                          name="sliding_windows", atol=0, rtol=0, hint=hint)
