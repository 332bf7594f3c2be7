"""Byte-pair encoding in minbpe's shape: count adjacent pairs, merge the most frequent, repeat.

:func:`get_stats` and :func:`merge` are the whole idea. :func:`train` learns merges with them and
:class:`ReferenceBPE` encodes with them. :func:`learn_merges` is the package's fast trainer: the same
merges as :func:`train` (the tests check it), found by updating pair counts instead of recounting.
:func:`save` / :func:`load` are the file format. The checks that guard all of this sit at the end
of the file. tiktoken serving (an Encoding from merges, pretrained encodings) is in
:mod:`lm_steps.tokenizers`.
"""
from __future__ import annotations

import base64
import heapq
import json
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Collection, Sequence

from .checks import check_int
from .utils import atomic_write

__all__ = [
    "get_stats", "merge", "GPT2_SPLIT_PATTERN", "GPT4_SPLIT_PATTERN", "train", "ReferenceBPE", "split_chunks",
    "learn_merges", "FORMAT", "to_dict", "save", "load", "from_dict", "check_split_pattern", "check_special_tokens",
]


def get_stats(ids, counts=None):
    """Count the adjacent pairs of ``ids`` into ``counts`` (a new dict if None): ``{(a, b): n}``.

    >>> get_stats([1, 2, 3, 1, 2])
    {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids, pair, idx):
    """Replace every occurrence of ``pair`` in ``ids``, left to right, by the token ``idx``.

    >>> merge([1, 2, 3, 1, 2], (1, 2), 4)
    [4, 3, 4]
    """
    newids = []
    i = 0
    while i < len(ids):
        if i < len(ids) - 1 and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            newids.append(idx)
            i += 2
        else:
            newids.append(ids[i])
            i += 1
    return newids


#: GPT-2's split pattern (tiktoken's ``r50k_base``): letters, numbers and punctuation runs, each
#: with at most one leading space; contractions split off.
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
#: GPT-4's split pattern (tiktoken's ``cl100k_base``): case-insensitive contractions, numbers in
#: groups of at most three digits, newlines kept apart from other whitespace.
GPT4_SPLIT_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|"""
                      r"""\s++$|\s*[\r\n]|\s+(?!\S)|\s""")


def train(text: str, vocab_size: int, pattern: str = GPT4_SPLIT_PATTERN) -> list[tuple[bytes, bytes]]:
    """Learn ``vocab_size - 256`` merges from ``text``, the plain way (minbpe's loop).

    Split the text into chunks with ``pattern`` (merges never cross a chunk), then again and again
    count every adjacent pair and merge the most frequent one everywhere; ties go to the pair of
    smaller ids. A pair whose bytes already are a token is skipped (tiktoken needs every token's
    bytes to be distinct). Returns the merges in order as ``(left bytes, right bytes)``: merge ``i``
    makes token ``256 + i``. It recounts everything per merge; :func:`learn_merges` is the fast way.
    """
    import regex

    chunks = [list(chunk.encode("utf-8")) for chunk in regex.findall(pattern, text)]
    vocab = [bytes([i]) for i in range(256)]  # token id -> its bytes
    known = set(vocab)
    merges = []
    while len(vocab) < vocab_size:
        stats = {}
        for ids in chunks:
            get_stats(ids, stats)
        candidates = [p for p in stats if vocab[p[0]] + vocab[p[1]] not in known]
        if not candidates:
            break  # the text ran out of pairs
        pair = min(candidates, key=lambda p: (-stats[p], p))  # the most frequent; ties: the smaller ids
        idx = len(vocab)
        chunks = [merge(ids, pair, idx) for ids in chunks]
        merges.append((vocab[pair[0]], vocab[pair[1]]))
        vocab.append(vocab[pair[0]] + vocab[pair[1]])
        known.add(vocab[idx])
    return merges


class ReferenceBPE:
    """Encode and decode text with a merge list, in plain Python: the reference tiktoken is tested against.

    ``merges[i] = (left, right)`` makes token ``256 + i``; the special tokens take the ids after
    the last merge, as in :func:`lm_steps.tokenizers.encoding_from_merges`. tiktoken merges the pair
    whose joined bytes have the lowest rank, this merges the pair learned earliest; the tests check
    that both give the same ids.
    """

    def __init__(self, merges: Sequence[tuple[bytes, bytes]], pattern: str = GPT4_SPLIT_PATTERN,
                 special_tokens: Sequence[str] = ()):
        import regex

        self.vocab = [bytes([i]) for i in range(256)]  # token id -> its bytes
        ids = {b: i for i, b in enumerate(self.vocab)}
        self.merges: dict[tuple[int, int], int] = {}  # (left id, right id) -> the id it makes
        for left, right in merges:
            self.merges[(ids[left], ids[right])] = len(self.vocab)
            ids[left + right] = len(self.vocab)
            self.vocab.append(left + right)
        self.special = {s: len(self.vocab) + i for i, s in enumerate(check_special_tokens(special_tokens))}
        self.pattern = regex.compile(check_split_pattern(pattern))
        self._cache: dict[str, list[int]] = {}

    def encode_chunk(self, chunk: bytes) -> list[int]:
        """The ids of one chunk: merge its bytes, the pair learned earliest first, until none is left."""
        ids = list(chunk)
        while len(ids) >= 2:
            stats = get_stats(ids)
            pair = min(stats, key=lambda p: self.merges.get(p, float("inf")))
            if pair not in self.merges:
                break  # no learned pair is left
            ids = merge(ids, pair, self.merges[pair])
        return ids

    def encode(self, text: str, allowed_special: str | Collection[str] = ()) -> list[int]:
        """The ids of ``text``. The special tokens in ``allowed_special`` (``"all"``: every one, as in
        tiktoken) become their single ids; the rest is split by the pattern and each chunk merged."""
        import regex

        allowed = list(self.special) if allowed_special == "all" else _allowed(allowed_special, self.special)
        pieces = regex.split("(" + "|".join(regex.escape(s) for s in allowed) + ")", text) if allowed else [text]
        ids: list[int] = []
        for k, piece in enumerate(pieces):
            if k % 2 == 1:  # a special token (the split keeps them at odd positions)
                ids.append(self.special[piece])
                continue
            for chunk in self.pattern.findall(piece):
                if chunk not in self._cache:  # chunks repeat: merge each distinct one once
                    self._cache[chunk] = self.encode_chunk(chunk.encode("utf-8"))
                ids.extend(self._cache[chunk])
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` (invalid UTF-8 becomes U+FFFD, as in tiktoken)."""
        inverse = {i: s.encode("utf-8") for s, i in self.special.items()}
        return b"".join(inverse[i] if i in inverse else self.vocab[i] for i in ids).decode("utf-8", errors="replace")


# ----------------------------------------------------------------------------- the fast trainer
def split_chunks(text: str, pattern: str = GPT4_SPLIT_PATTERN, special_tokens: Sequence[str] = ()) -> Counter:
    """Count the distinct chunks of ``text`` as UTF-8 bytes: ``Counter({chunk: occurrences})``.

    Special tokens are cut out first (they are never merged into ordinary tokens), then every
    piece is split by the regex ``pattern``; merges never cross a chunk boundary.
    """
    import regex

    special_tokens = check_special_tokens(special_tokens)
    pat = regex.compile(check_split_pattern(pattern))
    pieces = regex.split("|".join(regex.escape(s) for s in special_tokens), text) if special_tokens else [text]
    counts: Counter = Counter()
    for piece in pieces:
        counts.update(pat.findall(piece))
    return Counter({chunk.encode("utf-8"): n for chunk, n in counts.items()})


def learn_merges(chunks: dict[bytes, int], n_merges: int) -> list[tuple[bytes, bytes]]:
    """The merges of :func:`train` (the same pairs in the same order), learned fast from chunk counts
    (see :func:`split_chunks`).

    Pairs are counted once, over the distinct chunks weighted by how often each occurs. After a
    merge only the chunks that held the pair change, so only their pair counts are updated: an
    index ``pair -> chunks that hold it`` names them, and a max-heap with lazy deletion finds the
    next best pair. Returns the merges in order as ``(left bytes, right bytes)``.
    """
    n_merges = check_int("n_merges", n_merges, minimum=0)
    vocab = [bytes([i]) for i in range(256)]  # token id -> its bytes
    known = set(vocab)
    words = [list(chunk) for chunk in chunks]  # each distinct chunk as token ids (bytes at first)
    freqs = list(chunks.values())
    stats: dict[tuple[int, int], int] = defaultdict(int)  # pair -> count weighted by chunk frequency
    where: dict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> chunks that (may) hold it
    for i, w in enumerate(words):
        for pair, n in get_stats(w).items():
            stats[pair] += n * freqs[i]
            where[pair].add(i)
    heap = [(-count, pair) for pair, count in stats.items()]  # the most frequent first; ties: smaller ids
    heapq.heapify(heap)
    merges: list[tuple[bytes, bytes]] = []
    while len(merges) < n_merges and heap:
        negcount, pair = heapq.heappop(heap)
        if stats.get(pair, 0) != -negcount or negcount >= 0:
            continue  # a stale heap entry: this pair's count changed since it was pushed
        left, right = vocab[pair[0]], vocab[pair[1]]
        if left + right in known:
            del stats[pair]  # its bytes are already a token: never merge it (as train skips it)
            continue
        new = len(vocab)
        vocab.append(left + right)
        known.add(left + right)
        merges.append((left, right))
        changed = set()
        for i in where.pop(pair):
            w, f = words[i], freqs[i]
            merged = merge(w, pair, new)
            if len(merged) == len(w):
                continue  # the index is lazy: this chunk no longer holds the pair
            before, after = get_stats(w), get_stats(merged)
            for q, n in before.items():
                if after.get(q, 0) != n:
                    stats[q] += (after.get(q, 0) - n) * f
                    changed.add(q)
            for q, n in after.items():
                if q not in before:
                    stats[q] += n * f
                    where[q].add(i)
                    changed.add(q)
            words[i] = merged
        stats.pop(pair, None)
        for q in changed:
            if stats.get(q, 0) > 0:
                heapq.heappush(heap, (-stats[q], q))
            else:
                stats.pop(q, None)
    return merges


# ----------------------------------------------------------------------------- the file format
FORMAT = "lm_steps-bpe-2"


def to_dict(*, name: str, pat_str: str, mergeable_ranks: dict[bytes, int], special_tokens: dict[str, int]) -> dict:
    """A tokenizer (``tiktoken.Encoding``'s arguments) as a plain dict, safe in a
    ``torch.load(weights_only=True)`` checkpoint: the tokens in rank order as base64."""
    check_split_pattern(pat_str)  # never write what load would refuse
    tokens = sorted(mergeable_ranks, key=mergeable_ranks.get)
    if [mergeable_ranks[t] for t in tokens] != list(range(len(tokens))):
        raise ValueError(f"encoding {name!r} has gaps in its ranks; only dense ranks 0..n-1 are stored")
    return {"type": "tiktoken", "name": name, "pat_str": pat_str,
            "special_tokens": dict(sorted(special_tokens.items(), key=lambda kv: kv[1])),
            "n_tokens": len(tokens), "tokens": [base64.b64encode(t).decode("ascii") for t in tokens]}


def save(path: str | os.PathLike, **encoding) -> Path:
    """Write a tokenizer (:func:`to_dict`'s arguments) to a text file, all at once or not at all, and
    return the path: a JSON header line (format, name, pattern, special tokens, token count), then
    one line per token in rank order, ``base64 rank`` (tiktoken's rank-file layout)."""
    d = to_dict(**encoding)
    header = {"format": FORMAT, **{k: d[k] for k in ("name", "pat_str", "special_tokens", "n_tokens")}}
    lines = [json.dumps(header, ensure_ascii=True)] + [f"{tok} {rank}" for rank, tok in enumerate(d["tokens"])]
    with atomic_write(path) as f:  # a full disk leaves the old file as it was
        f.write(("\n".join(lines) + "\n").encode("ascii"))
    return Path(path)


def load(path: str | os.PathLike) -> dict:
    """Read a file written by :func:`save`: the tokenizer as ``tiktoken.Encoding``'s arguments.

    Every line is checked (see the section below): a ValueError names the file, the line and the fix.
    """
    first, *lines = _ascii_lines(path)
    header = _header(first, path)
    tokens = [_token_line(line, number, path) for number, line in enumerate(lines, start=2)]
    _check_count(len(tokens), header["n_tokens"], path)
    return from_dict({**header, "tokens": tokens}, where=str(path), line_of=lambda rank: rank + 2)


# ----------------------------------------------------------------------------- checks (the armour)
# A probe that every split pattern must cover: letters, digits, punctuation, whitespace runs,
# newlines of both kinds, accents, CJK, emoji with joiners, a contraction, a trailing space.
_PROBE = ("Hello, World! It's 2024; we'll see 1234567 things.\n\n\tnaïve café ÅNGSTRÖM — déjà vu\r\n"
          "日本語のテキスト，中文 한국어 🙂👩‍👩‍👧 x=3.14 (a|b) @-@ _under_score   \n end ")


def check_split_pattern(pattern: str) -> str:
    """``pattern`` if it is a split pattern tiktoken can use, else a ValueError saying why and what to do.

    The pattern must compile, have no capturing group, never match the empty string (tiktoken's
    Rust code panics on one) and cover the text: the concatenation of its matches on a probe of
    letters, digits, punctuation, whitespace, newlines and non-ASCII text must be the probe, or
    encoding would silently drop what it does not match.
    """
    import regex

    use = "; or use GPT4_SPLIT_PATTERN (or GPT2_SPLIT_PATTERN) from lm_steps.bpe"
    if not isinstance(pattern, str):
        raise ValueError(f"the split pattern must be a str, got {type(pattern).__name__}{use}")
    try:
        pat = regex.compile(pattern)
    except regex.error as err:
        raise ValueError(f"the split pattern does not compile ({err}): {pattern!r}{use}") from None
    if pat.groups:
        raise ValueError(f"the split pattern {pattern!r} has a capturing group; write (?:...) instead of (...)")
    matches = [m.group() for m in pat.finditer(_PROBE)]
    if pat.search("") is not None or not all(matches):
        raise ValueError(f"the split pattern {pattern!r} can match the empty string, which tiktoken cannot encode "
                         f"(it panics); make every alternative match at least one character (+ rather than *){use}")
    if "".join(matches) != _PROBE:
        missed = pat.sub("", _PROBE)[:20]  # what the matches leave out
        raise ValueError(f"the split pattern {pattern!r} does not cover the text, so encoding would silently drop "
                         f"what it does not match (here {missed!r}); end it with |\\s+|. so that every character "
                         f"is matched{use}")
    return pattern


def check_special_tokens(special_tokens) -> tuple[str, ...]:
    """``special_tokens`` as a tuple, after checking it is a sequence of distinct non-empty strings.

    A bare string is refused (``"EOS"`` would otherwise make E, O and S special), and so is an
    empty string (it would match everywhere).
    """
    if isinstance(special_tokens, (str, bytes)):
        raise ValueError(f"special_tokens must be a sequence of strings, got the single string {special_tokens!r}; "
                         f"write ({special_tokens!r},)")
    try:
        specials = tuple(special_tokens)
    except TypeError:
        raise ValueError(f"special_tokens must be a sequence of strings, got {special_tokens!r}") from None
    for s in specials:
        if not isinstance(s, str) or not s:
            raise ValueError(f"every special token must be a non-empty string, got {s!r} in {list(specials)}")
    if len(set(specials)) != len(specials):
        raise ValueError(f"special tokens repeat: {list(specials)}; list each once")
    return specials


def _allowed(allowed_special, specials) -> list[str]:
    """The special tokens of ``specials`` that ``allowed_special`` (a collection, not a string) names."""
    if isinstance(allowed_special, str):
        raise ValueError(f"allowed_special must be 'all' or a set of special tokens, got the string "
                         f"{allowed_special!r}; write {{{allowed_special!r}}}")
    return [s for s in specials if s in allowed_special]


def from_dict(d: dict, *, where: str = "tokenizer dict", line_of=lambda rank: None) -> dict:
    """Inverse of :func:`to_dict`: ``tiktoken.Encoding``'s arguments, after checking the dict.

    Checked: the keys and their kinds, a split pattern that passes :func:`check_split_pattern`,
    ``n_tokens`` tokens (when stored), each valid base64 of a non-empty byte string, none repeated,
    special tokens as ``{non-empty string: id}`` with distinct ids after the ranks. ``where`` names
    the source in errors; ``line_of(rank)`` the file line of a token.
    """
    import binascii

    def bad(msg, rank=None):
        line = line_of(rank) if rank is not None else None
        return ValueError(f"{where}{f', line {line}' if line else ''}: {msg}")

    for key, kind in (("name", str), ("pat_str", str), ("special_tokens", dict), ("tokens", list)):
        if not isinstance(d.get(key), kind):
            raise bad(f"{key!r} must be a {kind.__name__}, got {type(d.get(key)).__name__}")
    try:
        check_split_pattern(d["pat_str"])
    except ValueError as err:
        raise bad(str(err)) from None
    tokens = d["tokens"]
    if "n_tokens" in d and d["n_tokens"] != len(tokens):
        raise bad(f"holds {len(tokens)} tokens but n_tokens={d['n_tokens']!r}: it was truncated or "
                  f"tokens were added or removed")
    ranks: dict[bytes, int] = {}
    for rank, tok in enumerate(tokens):
        try:
            raw = base64.b64decode(tok, validate=True) if isinstance(tok, str) and tok else b""
        except (binascii.Error, ValueError):
            raise bad(f"token {rank} is not valid base64: {repr(tok)[:40]}", rank) from None
        if not raw:
            raise bad(f"token {rank} is empty", rank)
        if raw in ranks:
            raise bad(f"token {rank} repeats token {ranks[raw]} ({raw!r}); every token must be distinct", rank)
        ranks[raw] = rank
    specials = d["special_tokens"]
    for name, i in specials.items():
        if not isinstance(name, str) or not name or isinstance(i, bool) or not isinstance(i, int) or i < len(ranks):
            raise bad(f"special token {name!r}: {i!r} must be a non-empty string with an id >= {len(ranks)}")
    if len(set(specials.values())) != len(specials):
        raise bad(f"special tokens share ids: {specials}")
    return {"name": d["name"], "pat_str": d["pat_str"], "mergeable_ranks": ranks, "special_tokens": dict(specials)}


_NOT_OURS = "this is not a file written by lm_steps.tokenizers.save_bpe"


def _ascii_lines(path) -> list[str]:
    """The lines of the file at ``path`` (at least one; the final newline dropped); refuses non-ASCII."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise ValueError(f"{path}, line {line}: not ASCII text (byte {raw[err.start]:#04x}); {_NOT_OURS}") from None
    lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()  # the final newline
    return lines


def _header(line: str, path) -> dict:
    """The JSON header of line 1, less its format, after checking the format and the token count."""
    try:
        header = json.loads(line)
    except json.JSONDecodeError:
        header = {}
    fmt = header.pop("format", None) if isinstance(header, dict) else None
    if fmt != FORMAT:
        raise ValueError(f"{path} is not a file written by lm_steps.tokenizers.save_bpe "
                         f"(line 1 should be a JSON header with format {FORMAT!r}, got format {fmt!r}); "
                         f"an older lm_steps-bpe-1 file cannot be verified: train and save the tokenizer again")
    if isinstance(header.get("n_tokens"), bool) or not isinstance(header.get("n_tokens"), int):
        raise ValueError(f"{path}, line 1: the header has no token count (n_tokens); {_NOT_OURS}")
    return header


def _token_line(line: str, number: int, path) -> str:
    """The base64 token of file line ``number``, which must read ``base64 rank`` with rank ``number - 2``."""
    parts = line.split(" ")
    if not line.strip():
        raise ValueError(f"{path}, line {number}: blank line; each line after the header is 'base64 rank'")
    if len(parts) != 2 or not parts[1].isdigit():
        raise ValueError(f"{path}, line {number}: expected 'base64 rank', got {line[:60]!r}")
    if int(parts[1]) != number - 2:
        raise ValueError(f"{path}, line {number}: rank {parts[1]} where rank {number - 2} belongs; "
                         f"ranks must run 0, 1, 2, ... in order (a line was deleted, repeated or moved)")
    return parts[0]


def _check_count(n_lines: int, n_tokens: int, path) -> None:
    """Refuse a file whose token lines are not the header's count (truncated, or lines added or deleted)."""
    if n_lines != n_tokens:
        raise ValueError(f"{path}: {n_lines} token lines (the file ends at line {n_lines + 1}) but the header says "
                         f"n_tokens={n_tokens}: the file was truncated or lines were added or deleted")
