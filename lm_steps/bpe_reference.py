"""A short pure-Python BPE encoder, the reference that tiktoken's Rust core is tested against.

It applies learned merges the way they were learned: in each chunk, repeatedly merge the
adjacent pair that was learned earliest, until no learned pair is left. tiktoken instead merges
the adjacent pair whose *concatenated bytes* have the lowest rank; the tests check that both
give the same ids. Slow (pure Python), but every step can be read.
"""
from __future__ import annotations

from typing import Collection, Sequence

__all__ = ["merges_from_encoding", "ReferenceBPE"]


def merges_from_encoding(enc) -> list[tuple[bytes, bytes]]:
    """Recover the merge list of a tiktoken Encoding from its ranks (as in minbpe).

    Token ``t`` of rank ``r`` was made by merging the two parts that BPE, restricted to the
    tokens of rank below ``r``, splits ``t``'s bytes into.
    """
    ranks = enc._mergeable_ranks  # tiktoken keeps these; there is no public accessor
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) == 1:
            continue
        parts = [bytes([b]) for b in token]
        while len(parts) > 2:
            best = min(((ranks.get(parts[i] + parts[i + 1]), i) for i in range(len(parts) - 1)
                        if ranks.get(parts[i] + parts[i + 1], rank) < rank), default=None)
            if best is None:
                break
            i = best[1]
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        if len(parts) != 2:
            raise ValueError(f"token {token!r} (rank {rank}) is not a merge of two earlier tokens")
        merges.append((parts[0], parts[1]))
    return merges


class ReferenceBPE:
    """Encode text with a merge list, in plain Python.

    ``merges[i] = (left, right)`` makes token ``256 + i``; special tokens follow, as in
    :func:`lm_steps.tokenizers.encoding_from_merges`.
    """

    def __init__(self, merges: Sequence[tuple[bytes, bytes]], pattern: str, special_tokens: Sequence[str] = ()):
        import regex

        self.vocab = [bytes([i]) for i in range(256)]
        ids = {b: i for i, b in enumerate(self.vocab)}
        self.ranks: dict[tuple[int, int], int] = {}  # (left id, right id) -> new id (= its rank)
        for left, right in merges:
            self.ranks[(ids[left], ids[right])] = len(self.vocab)
            ids[left + right] = len(self.vocab)
            self.vocab.append(left + right)
        self.special = {s: len(self.vocab) + i for i, s in enumerate(special_tokens)}
        self.pattern = regex.compile(pattern)
        self._cache: dict[str, list[int]] = {}

    def encode_chunk(self, chunk: bytes) -> list[int]:
        """Merge the bytes of one chunk, earliest learned pair first."""
        word = list(chunk)
        while len(word) > 1:
            pair = min(zip(word, word[1:]), key=lambda p: self.ranks.get(p, float("inf")))
            new = self.ranks.get(pair)
            if new is None:
                break
            out, i = [], 0
            while i < len(word):  # replace every occurrence, left to right
                if i < len(word) - 1 and (word[i], word[i + 1]) == pair:
                    out.append(new)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        return word

    def encode(self, text: str, allowed_special: Collection[str] = ()) -> list[int]:
        """Ids of ``text``: allowed special tokens become their single ids, the rest is split by
        the pattern and each chunk merged (chunks seen before come from a cache)."""
        import regex

        allowed = [s for s in self.special if s in allowed_special]
        pieces = regex.split("(" + "|".join(regex.escape(s) for s in allowed) + ")", text) if allowed else [text]
        ids: list[int] = []
        for k, piece in enumerate(pieces):
            if k % 2 == 1:  # a special token (the split keeps them at odd positions)
                ids.append(self.special[piece])
                continue
            for chunk in self.pattern.findall(piece):
                if chunk not in self._cache:
                    self._cache[chunk] = self.encode_chunk(chunk.encode("utf-8"))
                ids.extend(self._cache[chunk])
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` (invalid UTF-8 becomes U+FFFD, as in tiktoken)."""
        inverse = {i: s.encode("utf-8") for s, i in self.special.items()}
        return b"".join(inverse[i] if i in inverse else self.vocab[i] for i in ids).decode("utf-8", errors="replace")
