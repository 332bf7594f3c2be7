"""Checks for notebook 06 (BPE): each runs the learner's function and the package's (lm_steps.bpe) on fresh text."""
from __future__ import annotations

import random

from ..bpe import ReferenceBPE, get_stats, merge, train
from . import Passed, check_function

__all__ = ["check_pair_counts", "check_merge_pair", "check_encode_chunk", "WRONG_ANSWERS"]

#: Plausible mistakes each check must catch: exercise name -> [(text of the solution, a wrong replacement)].
WRONG_ANSWERS = {
    "pair_counts": [
        ("zip(ids, ids[1:])", "zip(ids, ids[2:])"),  # pairs two apart
        ("counts.get(pair, 0) + 1", "1"),  # records which pairs occur, not how often
    ],
    "merge_pair": [
        ("            i += 2", "            i += 1"),  # steps onto the second half of the merged pair
        ("i + 1 < len(ids) and ", ""),  # reads past the end (an IndexError) ...
    ],
    "encode_chunk": [
        ("min(stats, key=lambda p: merges.get(p, float(\"inf\")))", "max(stats, key=stats.get)"),  # most frequent
    ],
}


def _text(i: int) -> str:
    """Fresh text: random words from a small alphabet, so pairs repeat and merges exist."""
    rng = random.Random(600 + i)
    return " ".join("".join(rng.choice("abcde" if i % 2 else "xyzab") for _ in range(rng.randint(1, 7)))
                    for _ in range(60 + 40 * i))


def check_pair_counts(pair_counts) -> Passed:
    """``pair_counts(ids) -> {(a, b): n}``: how often each adjacent pair occurs."""
    return check_function(pair_counts, get_stats, lambda i: (list(_text(i).encode()),), name="pair_counts",
                          hint="for each adjacent pair in zip(ids, ids[1:]), add one to counts[pair] "
                               "(counts.get(pair, 0) + 1)")


def check_merge_pair(merge_pair) -> Passed:
    """``merge_pair(ids, pair, new) -> list``: every occurrence of ``pair``, left to right, replaced by ``new``."""

    def make_case(i):
        ids = list(_text(i).encode()) + [97, 97, 97]  # ends in 'aaa': an overlapping pair at the end
        stats = get_stats(ids)
        return ids, max(stats, key=stats.get) if i else (97, 97), 256 + i

    return check_function(merge_pair, merge, make_case, name="merge_pair",
                          hint="walk with an index i: where ids[i], ids[i + 1] is the pair (and i + 1 is still "
                               "inside the list) append new and skip 2, else append ids[i] and move on by 1")


def check_encode_chunk(encode_chunk) -> Passed:
    """``encode_chunk(chunk, merges) -> ids``: a chunk's bytes merged by ``merges`` ({(a, b): new id}), the
    pair learned earliest (the smallest new id) first, until no learned pair is left."""

    def make_case(i):
        ref = ReferenceBPE(train(_text(i), 256 + 12 + 6 * i))
        words = _text(10 + i).split()
        return " ".join(words[:8]).encode(), dict(ref.merges)

    def package(chunk, merges):
        ref = ReferenceBPE([])
        ref.merges = merges  # the same merge table, applied by the package's loop
        return ref.encode_chunk(chunk)

    return check_function(encode_chunk, package, make_case, name="encode_chunk",
                          hint="start from list(chunk); while two or more ids are left, count the pairs, take the "
                               "one with the smallest merges id (min with key merges.get(p, inf)), stop if it is "
                               "not in merges, else merge it everywhere")
