"""Checks for notebook 05b (tokenizers): each runs the learner's BPE piece and the package's (lm_steps.bpe) on fresh text."""
from __future__ import annotations

import random

from ..bpe import ReferenceBPE, get_stats, merge, train
from . import Passed, check_function

__all__ = ["check_pair_counts", "check_merge_pair", "check_train_merges", "check_encode", "check_decode",
           "WRONG_ANSWERS"]

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
    "train_merges": [
        ("(-stats[p], p)", "(stats[p], p)"),  # the least frequent pair
        ("chunks = [merge(", "_ = [merge("),  # never merges: counts the same pairs again
        ("merges.append((vocab[pair[0]], vocab[pair[1]]))", "merges.append((vocab[pair[1]], vocab[pair[0]]))"),
    ],
    "encode": [
        ('min(stats, key=lambda p: merges.get(p, float("inf")))', "max(stats, key=stats.get)"),  # most frequent
        ("ids.extend(part)", "ids.extend(part[:1])"),  # keeps only each chunk's first token
    ],
    "decode": [
        ('b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")',
         '"".join(vocab[i].decode("utf-8", errors="replace") for i in ids)'),  # decodes token by token
        ('errors="replace"', 'errors="ignore"'),  # drops invalid bytes without a trace
        ('errors="replace"', 'errors="strict"'),  # raises on invalid bytes
    ],
}


def _text(i: int) -> str:
    """Fresh text: random words from a small alphabet, so pairs repeat and merges exist."""
    rng = random.Random(500 + i)
    return " ".join("".join(rng.choice("abcde" if i % 2 else "xyzab") for _ in range(rng.randint(1, 7)))
                    for _ in range(60 + 40 * i))


def _unicode_text(i: int) -> str:
    """Fresh text with characters of 2, 3 and 4 UTF-8 bytes, rare enough that BPE leaves them as bytes."""
    return _text(20 + i) + " naïve 日本 🙂 end" + "." * i


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


def check_train_merges(train_merges) -> Passed:
    """``train_merges(text, vocab_size) -> [(left bytes, right bytes), ...]``: minbpe's training loop."""
    return check_function(train_merges, train, lambda i: (_text(10 + i), 256 + 10 + 8 * i), name="train_merges",
                          hint="take the most frequent pair, ties to the smaller ids (min with key (-stats[p], p)), "
                               "merge it in every chunk into the id len(vocab), then append (vocab[a], vocab[b]) to "
                               "merges and their joined bytes to vocab")


def check_encode(encode) -> Passed:
    """``encode(text, merges) -> ids``: the text split into chunks, each chunk's bytes merged by ``merges``
    ({(a, b): new id}), the pair learned earliest (the smallest new id) first, until no learned pair is left."""
    def make_case(i):
        return _unicode_text(30 + i), dict(ReferenceBPE(train(_unicode_text(i), 256 + 12 + 6 * i)).merges)

    def package(text, merges):
        ref = ReferenceBPE([])
        ref.merges = merges  # the same merge table, applied by the package's encoder
        return ref.encode(text)

    return check_function(encode, package, make_case, name="encode",
                          hint="for each chunk start from list(chunk.encode('utf-8')); while two or more ids are left, "
                               "count the pairs, take the one with the smallest merges id (min with key "
                               "merges.get(p, inf)), stop if it is not in merges, else merge it; extend ids by the chunk's")


def check_decode(decode) -> Passed:
    """``decode(ids, vocab) -> str``: the tokens' bytes joined, then decoded as UTF-8 with invalid bytes as U+FFFD."""

    def make_case(i):
        ref = ReferenceBPE(train(_unicode_text(i), 256 + 20))
        ids = ref.encode(_unicode_text(i))
        cut = ids.index(0xF0)  # the emoji's first byte: its four bytes are four tokens
        ids = [ids, ids[:cut + 2], ids[:cut + 1] + ids[cut + 2:]][i]  # whole; cut inside the emoji; a byte lost
        return ids, list(ref.vocab)

    def package(ids, vocab):
        ref = ReferenceBPE([])
        ref.vocab = vocab  # the same vocabulary, decoded by the package
        return ref.decode(ids)

    return check_function(decode, package, make_case, name="decode",
                          hint="join the tokens' bytes first (b''.join(vocab[i] for i in ids)), then decode once with "
                               "errors='replace': a character's bytes can sit in several tokens, and a cut one is not UTF-8")
