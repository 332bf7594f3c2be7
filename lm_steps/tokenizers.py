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
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

__all__ = [
    "CharTokenizer", "GPT2_SPLIT_PATTERN", "GPT4_SPLIT_PATTERN", "ENDOFTEXT", "WIKITEXT_SPECIALS",
    "split_chunks", "learn_merges", "encoding_from_merges", "train_bpe", "encoding_to_dict",
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
        """The text for a sequence of ids (ints or a 1-D tensor)."""
        return "".join(self.chars[int(i)] for i in ids)

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


def split_chunks(text: str, pattern: str = GPT4_SPLIT_PATTERN, special_tokens: Sequence[str] = ()) -> Counter:
    """Count the distinct chunks of ``text`` as UTF-8 bytes: ``Counter({chunk: occurrences})``.

    Special tokens are cut out first (they are never merged into ordinary tokens), then every
    piece is split by the regex ``pattern``; merges never cross a chunk boundary.
    """
    import regex

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

    ranks = {bytes([i]): i for i in range(256)}
    for left, right in merges:
        if left not in ranks or right not in ranks:
            raise ValueError(f"merge {left!r} + {right!r} uses a token that no earlier merge made")
        if left + right in ranks:
            raise ValueError(f"merge {left!r} + {right!r} repeats the token {left + right!r}")
        ranks[left + right] = len(ranks)
    specials = {s: len(ranks) + i for i, s in enumerate(special_tokens)}
    if len(specials) != len(special_tokens):
        raise ValueError(f"special tokens repeat: {list(special_tokens)}")
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
    n_merges = vocab_size - 256 - len(special_tokens)
    if n_merges < 0:
        raise ValueError(f"vocab_size={vocab_size} is below 256 bytes + {len(special_tokens)} special tokens; "
                         f"raise it to at least {256 + len(special_tokens)}")
    merges = learn_merges(split_chunks(text, pattern, special_tokens), n_merges)
    return encoding_from_merges(merges, pattern=pattern, special_tokens=special_tokens,
                                name=name or f"lm_steps_bpe_{vocab_size}")


def encoding_to_dict(enc) -> dict:
    """An Encoding as a plain dict (name, pattern, special tokens, tokens in rank order as base64),
    safe to store in a ``torch.load(weights_only=True)`` checkpoint."""
    ranks = enc._mergeable_ranks  # tiktoken keeps these; there is no public accessor
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise ValueError(f"encoding {enc.name!r} has gaps in its ranks; only dense ranks 0..n-1 are stored")
    return {"type": "tiktoken", "name": enc.name, "pat_str": enc._pat_str,
            "special_tokens": dict(sorted(enc._special_tokens.items(), key=lambda kv: kv[1])),
            "tokens": [base64.b64encode(tok).decode("ascii") for tok, _ in sorted(ranks.items(), key=lambda kv: kv[1])]}


def encoding_from_dict(d: dict):
    """Inverse of :func:`encoding_to_dict`."""
    import tiktoken

    if not isinstance(d, dict) or d.get("type") != "tiktoken":
        raise ValueError(f"not an encoding dict: type={d.get('type') if isinstance(d, dict) else type(d).__name__!r}")
    ranks = {base64.b64decode(tok): rank for rank, tok in enumerate(d["tokens"])}
    return tiktoken.Encoding(d["name"], pat_str=d["pat_str"], mergeable_ranks=ranks,
                             special_tokens=dict(d["special_tokens"]))


def save_bpe(enc, path: str | os.PathLike) -> Path:
    """Write an Encoding to a text file and return the path: a JSON header line (name, pattern,
    special tokens), then one base64 token per line in rank order. Saving what
    :func:`load_bpe` read gives the same bytes, and it encodes exactly as ``enc``."""
    d = encoding_to_dict(enc)
    tokens = d.pop("tokens")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([json.dumps({"format": "lm_steps-bpe-1", **d}, ensure_ascii=True)] + tokens) + "\n",
                    encoding="ascii")
    return path


def load_bpe(path: str | os.PathLike):
    """Read a file written by :func:`save_bpe` back into a ``tiktoken.Encoding``."""
    lines = Path(path).read_text(encoding="ascii").splitlines()
    try:
        header = json.loads(lines[0]) if lines else {}
    except json.JSONDecodeError:
        header = {}
    if not isinstance(header, dict) or header.pop("format", None) != "lm_steps-bpe-1":
        raise ValueError(f"{path} is not a file written by lm_steps.tokenizers.save_bpe")
    return encoding_from_dict({**header, "tokens": lines[1:]})


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
        raise RuntimeError(
            f"tiktoken could not load {name!r} ({type(err).__name__}: {err}). It downloads the rank file "
            f"once and caches it in TIKTOKEN_CACHE_DIR (now {cache or 'unset: a temporary folder'}). "
            f"Without a network, set TIKTOKEN_CACHE_DIR to a folder that holds the cached file "
            f"(this project's shared data has one: data/tiktoken)."
        ) from err
