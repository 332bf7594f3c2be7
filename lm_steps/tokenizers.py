"""Tokenizers: characters for the early stages, byte-level BPE (served by tiktoken) for WikiText.

:func:`train_bpe` learns byte-pair merges over regex-split chunks and returns a
``tiktoken.Encoding``, so encoding runs in tiktoken's Rust core; :func:`save_bpe` /
:func:`load_bpe` write and read it back bit for bit; :func:`pretrained_encoding` gives GPT-2's
``r50k_base`` and GPT-4's ``cl100k_base``. A pure-Python encoder that applies the merges lives in
:mod:`lm_steps.bpe_reference` (the tests check that tiktoken agrees with it).
"""
from __future__ import annotations

import base64
import heapq
import json
import numbers
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

__all__ = [
    "CharTokenizer", "GPT2_SPLIT_PATTERN", "GPT4_SPLIT_PATTERN", "ENDOFTEXT", "WIKITEXT_SPECIALS",
    "check_special_tokens", "split_chunks", "learn_merges", "encoding_from_merges", "train_bpe", "encoding_to_dict",
    "encoding_from_dict", "save_bpe", "load_bpe", "pretrained_encoding",
]


@dataclass(frozen=True)
class CharTokenizer:
    """A character vocabulary: ``chars[i]`` is the symbol with id ``i``.

    >>> tok = CharTokenizer.from_text("emma olivia", boundary=".")
    >>> tok.decode(tok.encode("emma"))
    'emma'
    """

    chars: tuple[str, ...]
    stoi: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        chars = tuple(self.chars)
        if any(len(c) != 1 for c in chars):
            raise ValueError("every vocabulary entry must be a single character")
        if len(set(chars)) != len(chars):
            raise ValueError("the vocabulary has repeated characters")
        object.__setattr__(self, "chars", chars)
        object.__setattr__(self, "stoi", {c: i for i, c in enumerate(chars)})

    @classmethod
    def from_text(cls, text: str | Iterable[str], *, boundary: str | None = None) -> "CharTokenizer":
        """Sorted distinct characters of ``text``; ``boundary`` (e.g. ``'.'``) first at id 0."""
        chars = sorted(set("".join(text)) - ({boundary} if boundary else set()))
        return cls(tuple(([boundary] if boundary else []) + chars))

    @property
    def vocab_size(self) -> int:
        """Number of symbols."""
        return len(self.chars)

    @property
    def itos(self) -> dict[int, str]:
        """Id to character."""
        return dict(enumerate(self.chars))

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of ``text``; raises ValueError listing any unknown characters."""
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            unknown = sorted({c for c in text if c not in self.stoi})
            raise ValueError(
                f"characters not in the vocabulary: {', '.join(repr(c) for c in unknown)}; "
                f"the vocabulary has {self.vocab_size} symbols: {''.join(self.chars)!r}"
            ) from None

    def decode(self, ids: Sequence[int]) -> str:
        """The text for a sequence of ids (ints or a 1-D tensor); raises ValueError naming any id
        outside ``0 .. vocab_size - 1`` (``-1``, the ignore index of padded targets, included)."""
        ids = ids.tolist() if hasattr(ids, "tolist") else ids  # a tensor or array: plain numbers
        out, n = [], self.vocab_size
        for i in ids:
            i = i.item() if hasattr(i, "item") and getattr(i, "ndim", 0) == 0 else i  # a 0-d tensor or NumPy number
            if isinstance(i, (list, tuple)) or hasattr(i, "ndim"):
                raise ValueError("decode takes one sequence of ids; decode a batch row by row")
            if isinstance(i, bool) or int(i) != i or not 0 <= i < n:
                hint = " (-1 marks an ignored target position: drop those before decoding)" if i == -1 else ""
                raise ValueError(f"token id {i!r} is not in the vocabulary of {n} symbols "
                                 f"(ids 0 to {n - 1}){hint}")
            out.append(self.chars[int(i)])
        return "".join(out)

    def to_dict(self) -> dict:
        """A plain dict (safe for ``torch.load(weights_only=True)`` checkpoints)."""
        return {"type": "char", "chars": list(self.chars)}

    @classmethod
    def from_dict(cls, d: dict) -> "CharTokenizer":
        """Inverse of :meth:`to_dict`."""
        if d.get("type") != "char":
            raise ValueError(f"not a character tokenizer dict: type={d.get('type')!r}")
        return cls(tuple(d["chars"]))


# ----------------------------------------------------------------------------- byte-level BPE
#: GPT-2's split pattern (tiktoken's ``r50k_base``): letters, numbers and punctuation runs, each
#: with at most one leading space; contractions split off.
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
#: GPT-4's split pattern (tiktoken's ``cl100k_base``): case-insensitive contractions, numbers in
#: groups of at most three digits, newlines kept apart from other whitespace.
GPT4_SPLIT_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|"""
                      r"""\s++$|\s*[\r\n]|\s+(?!\S)|\s""")
ENDOFTEXT = "<|endoftext|>"
#: Special tokens for WikiText v1: the article separator and the dataset's own unknown-word mark.
WIKITEXT_SPECIALS = (ENDOFTEXT, "<unk>")


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


def split_chunks(text: str, pattern: str = GPT4_SPLIT_PATTERN, special_tokens: Sequence[str] = ()) -> Counter:
    """Count the distinct chunks of ``text`` as UTF-8 bytes: ``Counter({chunk: occurrences})``.

    Special tokens are cut out first (they are never merged into ordinary tokens), then every
    piece is split by the regex ``pattern``; merges never cross a chunk boundary.
    """
    import regex

    special_tokens = check_special_tokens(special_tokens)
    pieces = [text]
    if special_tokens:
        pieces = regex.split("|".join(regex.escape(s) for s in special_tokens), text)
    pat = regex.compile(pattern)
    counts: Counter = Counter()
    for piece in pieces:
        counts.update(pat.findall(piece))
    return Counter({chunk.encode("utf-8"): n for chunk, n in counts.items()})


def _merge(word: list[int], pair: tuple[int, int], new: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``word`` (left to right) by ``new``."""
    out, i, n = [], 0, len(word)
    while i < n:
        if i < n - 1 and word[i] == pair[0] and word[i + 1] == pair[1]:
            out.append(new)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def learn_merges(chunks: dict[bytes, int], n_merges: int) -> list[tuple[bytes, bytes]]:
    """Learn up to ``n_merges`` byte-pair merges from chunk counts (see :func:`split_chunks`).

    Each step merges the most frequent adjacent pair, counted over the distinct chunks weighted
    by how often each occurs (ties: the pair of smaller token ids). Pair counts are not recounted
    per merge: an index ``pair -> chunks that hold it`` names the few chunks a merge touches, only
    their pair counts change, and a max-heap with lazy deletion finds the next best pair.
    A pair whose bytes already form a token is never merged (every token's bytes are unique, as
    tiktoken's ranks require). Returns the merges in order as ``(left bytes, right bytes)``.
    """
    if isinstance(n_merges, bool) or not isinstance(n_merges, numbers.Integral) or n_merges < 0:
        raise ValueError(f"n_merges must be an integer >= 0, got {n_merges!r}")
    vocab = [bytes([i]) for i in range(256)]  # token id -> bytes
    known = set(vocab)
    words = [list(chunk) for chunk in chunks]  # each distinct chunk as token ids (initially bytes)
    freqs = list(chunks.values())
    stats: dict[tuple[int, int], int] = defaultdict(int)  # pair -> weighted count
    where: dict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> chunks that (may) hold it
    for i, w in enumerate(words):
        for pair in zip(w, w[1:]):
            stats[pair] += freqs[i]
            where[pair].add(i)
    heap = [(-count, pair) for pair, count in stats.items()]
    heapq.heapify(heap)
    merges: list[tuple[bytes, bytes]] = []
    while len(merges) < n_merges and heap:
        negcount, pair = heapq.heappop(heap)
        if stats.get(pair, 0) != -negcount or negcount >= 0:
            continue  # stale heap entry: this pair's count changed since it was pushed
        left, right = vocab[pair[0]], vocab[pair[1]]
        if left + right in known:
            del stats[pair]  # its bytes are already a token: never merge it
            continue
        new = len(vocab)
        vocab.append(left + right)
        known.add(left + right)
        merges.append((left, right))
        changed = set()
        for i in where.pop(pair):
            w, f = words[i], freqs[i]
            merged = _merge(w, pair, new)
            if len(merged) == len(w):
                continue  # the index is lazy: this chunk no longer holds the pair
            before, after = Counter(zip(w, w[1:])), Counter(zip(merged, merged[1:]))
            for q, n in before.items():
                if after[q] != n:
                    stats[q] += (after[q] - n) * f
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


def encoding_from_merges(merges: Sequence[tuple[bytes, bytes]], *, pattern: str = GPT4_SPLIT_PATTERN,
                         special_tokens: Sequence[str] = (ENDOFTEXT,), name: str = "lm_steps_bpe"):
    """A ``tiktoken.Encoding``: the 256 bytes are ranks 0..255, merge ``i`` is rank ``256 + i``,
    and the special tokens take the ids after the last merge, in order."""
    import tiktoken

    special_tokens = check_special_tokens(special_tokens)
    ranks = {bytes([i]): i for i in range(256)}
    for left, right in merges:
        if left not in ranks or right not in ranks:
            raise ValueError(f"merge {left!r} + {right!r} uses a token that no earlier merge made")
        if left + right in ranks:
            raise ValueError(f"merge {left!r} + {right!r} repeats the token {left + right!r}")
        ranks[left + right] = len(ranks)
    specials = {s: len(ranks) + i for i, s in enumerate(special_tokens)}
    return tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials,
                             explicit_n_vocab=len(ranks) + len(specials))


def train_bpe(text: str, vocab_size: int, *, pattern: str = GPT4_SPLIT_PATTERN,
              special_tokens: Sequence[str] = (ENDOFTEXT,), name: str | None = None):
    """Train a byte-level BPE of ``vocab_size`` tokens (256 bytes + merges + special tokens).

    ``pattern`` splits the text into chunks (GPT-4's by default, :data:`GPT2_SPLIT_PATTERN` as an
    option); special tokens (e.g. :data:`WIKITEXT_SPECIALS`) are cut out of the training text and
    get the last ids. Returns a ``tiktoken.Encoding``; encode with
    ``enc.encode(text, allowed_special=...)``. Fewer tokens result if the text runs out of pairs.
    """
    special_tokens = check_special_tokens(special_tokens)
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}; decode bytes with .decode('utf-8')")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, numbers.Integral):
        raise ValueError(f"vocab_size must be an integer, got {vocab_size!r}")
    n_merges = vocab_size - 256 - len(special_tokens)
    if n_merges < 0:
        raise ValueError(f"vocab_size={vocab_size} is below 256 bytes + {len(special_tokens)} special tokens; "
                         f"raise it to at least {256 + len(special_tokens)}")
    merges = learn_merges(split_chunks(text, pattern, special_tokens), n_merges)
    return encoding_from_merges(merges, pattern=pattern, special_tokens=special_tokens,
                                name=name or f"lm_steps_bpe_{vocab_size}")


def encoding_to_dict(enc) -> dict:
    """An Encoding as a plain dict (name, pattern, special tokens, the token count and the tokens in
    rank order as base64), safe to store in a ``torch.load(weights_only=True)`` checkpoint."""
    ranks = enc._mergeable_ranks  # tiktoken keeps these; there is no public accessor
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise ValueError(f"encoding {enc.name!r} has gaps in its ranks; only dense ranks 0..n-1 are stored")
    return {"type": "tiktoken", "name": enc.name, "pat_str": enc._pat_str,
            "special_tokens": dict(sorted(enc._special_tokens.items(), key=lambda kv: kv[1])),
            "n_tokens": len(ranks),
            "tokens": [base64.b64encode(tok).decode("ascii") for tok, _ in sorted(ranks.items(), key=lambda kv: kv[1])]}


def _verified_encoding(d: dict, where: str, line_of=lambda rank: None):
    """A ``tiktoken.Encoding`` from a dict of :func:`encoding_to_dict`'s form, after checking it:
    a pattern that compiles, special tokens as ``{non-empty string: id}`` with ids after the
    ranks, ``n_tokens`` tokens (when stored), each valid base64 of a non-empty byte string, none
    repeated. ``where`` names the source in errors; ``line_of(rank)`` the file line of a token."""
    import binascii

    import regex
    import tiktoken

    def bad(msg, rank=None):
        line = line_of(rank) if rank is not None else None
        return ValueError(f"{where}{f', line {line}' if line else ''}: {msg}")

    for key, kind in (("name", str), ("pat_str", str), ("special_tokens", dict), ("tokens", list)):
        if not isinstance(d.get(key), kind):
            raise bad(f"{key!r} must be a {kind.__name__}, got {type(d.get(key)).__name__}")
    try:
        regex.compile(d["pat_str"])
    except regex.error as err:
        raise bad(f"the split pattern does not compile ({err})") from None
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
    return tiktoken.Encoding(d["name"], pat_str=d["pat_str"], mergeable_ranks=ranks, special_tokens=dict(specials))


def encoding_from_dict(d: dict):
    """Inverse of :func:`encoding_to_dict`; raises ValueError on a dict that does not verify
    (see :func:`load_bpe`)."""
    if not isinstance(d, dict) or d.get("type") != "tiktoken":
        raise ValueError(f"not an encoding dict: type={d.get('type') if isinstance(d, dict) else type(d).__name__!r}")
    return _verified_encoding(d, "encoding dict")


BPE_FORMAT = "lm_steps-bpe-2"


def save_bpe(enc, path: str | os.PathLike) -> Path:
    """Write an Encoding to a text file and return the path: a JSON header line (format, name,
    pattern, special tokens, token count), then one line per token in rank order, ``base64 rank``
    (tiktoken's own rank-file layout). Saving what :func:`load_bpe` read gives the same bytes,
    and it encodes exactly as ``enc``."""
    d = encoding_to_dict(enc)
    tokens = d.pop("tokens")
    d.pop("type")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = json.dumps({"format": BPE_FORMAT, **d}, ensure_ascii=True)
    path.write_text("\n".join([header] + [f"{tok} {rank}" for rank, tok in enumerate(tokens)]) + "\n",
                    encoding="ascii")
    return path


def load_bpe(path: str | os.PathLike):
    """Read a file written by :func:`save_bpe` back into a ``tiktoken.Encoding``, verifying it.

    Refused with a ValueError naming the file and line: anything but ASCII text, a header that is
    not save_bpe's, a token count that differs from the header's (a truncated file, lines added
    or deleted), a blank or malformed line, ranks that are not 0, 1, 2, ... in order, bad base64,
    a repeated token, a split pattern that does not compile.
    """
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise ValueError(f"{path}, line {line}: not ASCII text (byte {raw[err.start]:#04x}); "
                         f"this is not a file written by lm_steps.tokenizers.save_bpe") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    try:
        header = json.loads(lines[0]) if lines else {}
    except json.JSONDecodeError:
        header = {}
    fmt = header.pop("format", None) if isinstance(header, dict) else None
    if fmt != BPE_FORMAT:
        raise ValueError(f"{path} is not a file written by lm_steps.tokenizers.save_bpe "
                         f"(line 1 should be a JSON header with format {BPE_FORMAT!r}, got format {fmt!r}); "
                         f"an older lm_steps-bpe-1 file cannot be verified: train and save the tokenizer again")
    if isinstance(header.get("n_tokens"), bool) or not isinstance(header.get("n_tokens"), int):
        raise ValueError(f"{path}, line 1: the header has no token count (n_tokens); "
                         f"this is not a file written by lm_steps.tokenizers.save_bpe")
    tokens = []
    for number, line in enumerate(lines[1:], start=2):
        parts = line.split(" ")
        if not line.strip():
            raise ValueError(f"{path}, line {number}: blank line; each line after the header is 'base64 rank'")
        if len(parts) != 2 or not parts[1].isdigit():
            raise ValueError(f"{path}, line {number}: expected 'base64 rank', got {line[:60]!r}")
        if int(parts[1]) != number - 2:
            raise ValueError(f"{path}, line {number}: rank {parts[1]} where rank {number - 2} belongs; "
                             f"ranks must run 0, 1, 2, ... in order (a line was deleted, repeated or moved)")
        tokens.append(parts[0])
    if len(lines) - 1 != header["n_tokens"]:
        raise ValueError(f"{path}: {len(lines) - 1} token lines (the file ends at line {len(lines)}) but the header says "
                         f"n_tokens={header['n_tokens']}: the file was truncated or lines were added or deleted")
    return _verified_encoding({**header, "tokens": tokens}, str(path), line_of=lambda rank: rank + 2)


def pretrained_encoding(name: str):
    """tiktoken's ``r50k_base`` (GPT-2, 50,257 tokens) or ``cl100k_base`` (GPT-4, 100,277).

    tiktoken downloads the rank file once and caches it in ``TIKTOKEN_CACHE_DIR``; offline, that
    folder must already hold it. Raises RuntimeError saying so when the file cannot be had.
    """
    import tiktoken

    if name not in ("r50k_base", "cl100k_base"):
        raise ValueError(f"unknown encoding {name!r}; use 'r50k_base' (GPT-2) or 'cl100k_base' (GPT-4)")
    try:
        return tiktoken.get_encoding(name)
    except Exception as err:  # tiktoken raises requests/OS errors from deep inside
        cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
        reason = " ".join(str(err).split())[:160]
        raise RuntimeError(
            f"tiktoken could not load {name!r} ({type(err).__name__}: {reason}). It downloads its file once into "
            f"TIKTOKEN_CACHE_DIR ({'now ' + cache if cache else 'unset: a temporary folder'}). Without a network: "
            f"on a machine with one, run `python -m lm_steps.data fetch tiktoken --to DIR` (or `make data "
            f"DATA_DIR=DIR`), copy DIR here and set TIKTOKEN_CACHE_DIR=DIR/tiktoken."
        ) from None
