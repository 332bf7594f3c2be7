"""Tokenizers: characters for the early stages, byte-level BPE (served by tiktoken) for WikiText.

:func:`train_bpe` learns byte-pair merges with :mod:`lm_steps.bpe` (where BPE itself is taught) and
returns a ``tiktoken.Encoding``, so encoding runs in tiktoken's Rust core; :func:`save_bpe` /
:func:`load_bpe` write and read it back bit for bit; :func:`pretrained_encoding` gives GPT-2's
``r50k_base`` and GPT-4's ``cl100k_base``; :func:`train_sentencepiece` trains SentencePiece (Llama 2's
settings) for comparison.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from . import bpe
from .bpe import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, check_special_tokens, check_split_pattern
from .checks import check_int

__all__ = [
    "CharTokenizer", "ChatTokenizer", "GPT2_SPLIT_PATTERN", "GPT4_SPLIT_PATTERN", "ENDOFTEXT", "WIKITEXT_SPECIALS",
    "check_special_tokens", "check_split_pattern", "encoding_from_merges", "merges_from_encoding", "train_bpe",
    "encoding_to_dict", "encoding_from_dict", "tokenizer_to_dict", "tokenizer_from_dict", "save_bpe", "load_bpe",
    "pretrained_encoding", "train_sentencepiece",
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


@dataclass(frozen=True)
class ChatTokenizer(CharTokenizer):
    """A character vocabulary with special tokens after it: ``chars[i]`` is id ``i``, ``specials[j]``
    is id ``len(chars) + j``. :meth:`encode` reads the special tokens written out in the text (a chat
    template's ``<|user|>``, ...); :meth:`encode_ordinary` reads every character as itself.

    >>> tok = ChatTokenizer(("a", "b"), specials=("<|end|>",))
    >>> tok.encode("ab<|end|>"), tok.decode([1, 0, 2])
    ([0, 1, 2], 'ba<|end|>')
    """

    specials: tuple[str, ...] = ()

    def __post_init__(self):
        super().__post_init__()
        specials = tuple(self.specials)
        if not specials or any(not isinstance(s, str) or len(s) < 2 for s in specials):
            raise ValueError("specials must be one or more strings of at least two characters, e.g. '<|end|>'")
        if len(set(specials)) != len(specials):
            raise ValueError("the special tokens repeat")
        object.__setattr__(self, "specials", specials)

    @property
    def vocab_size(self) -> int:
        """Characters plus special tokens."""
        return len(self.chars) + len(self.specials)

    def special_id(self, token: str) -> int:
        """The id of the special token ``token``."""
        if token not in self.specials:
            raise ValueError(f"{token!r} is not a special token; this tokenizer has {', '.join(self.specials)}")
        return len(self.chars) + self.specials.index(token)

    def encode_ordinary(self, text: str) -> list[int]:
        """Ids of the characters of ``text``, special tokens not recognised (as CharTokenizer.encode)."""
        return super().encode(text)

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``, each special token written out in it read as its one id."""
        ids = []
        for part in re.split("(" + "|".join(map(re.escape, self.specials)) + ")", text):
            ids += [self.special_id(part)] if part in self.specials else super().encode(part)
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``, special tokens written out."""
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        n = len(self.chars)
        out = []
        for i in ids:
            if not isinstance(i, bool) and isinstance(i, int) and n <= i < self.vocab_size:
                out.append(self.specials[i - n])
            else:
                out.append(super().decode([i]))
        return "".join(out)

    def to_dict(self) -> dict:
        """A plain dict (safe for ``torch.load(weights_only=True)`` checkpoints)."""
        return {"type": "chat", "chars": list(self.chars), "specials": list(self.specials)}

    @classmethod
    def from_dict(cls, d: dict) -> "ChatTokenizer":
        """Inverse of :meth:`to_dict`."""
        if d.get("type") != "chat":
            raise ValueError(f"not a chat tokenizer dict: type={d.get('type')!r}")
        return cls(tuple(d["chars"]), specials=tuple(d["specials"]))


# ----------------------------------------------------------------------------- byte-level BPE, served by tiktoken
ENDOFTEXT = "<|endoftext|>"
#: Special tokens for WikiText v1: the article separator and the dataset's own unknown-word mark.
WIKITEXT_SPECIALS = (ENDOFTEXT, "<unk>")


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
    return tiktoken.Encoding(name, pat_str=check_split_pattern(pattern), mergeable_ranks=ranks,
                             special_tokens=specials, explicit_n_vocab=len(ranks) + len(specials))


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
    n_merges = check_int("vocab_size", vocab_size) - 256 - len(special_tokens)
    if n_merges < 0:
        raise ValueError(f"vocab_size={vocab_size} is below 256 bytes + {len(special_tokens)} special tokens; "
                         f"raise it to at least {256 + len(special_tokens)}")
    merges = bpe.learn_merges(bpe.split_chunks(text, pattern, special_tokens), n_merges)
    return encoding_from_merges(merges, pattern=pattern, special_tokens=special_tokens,
                                name=name or f"lm_steps_bpe_{vocab_size}")


def _parts(enc) -> dict:
    """An Encoding's constructor arguments (tiktoken keeps them; there is no public accessor)."""
    return {"name": enc.name, "pat_str": enc._pat_str, "mergeable_ranks": enc._mergeable_ranks,
            "special_tokens": enc._special_tokens}


def encoding_to_dict(enc) -> dict:
    """An Encoding as a plain dict (name, pattern, special tokens, the token count and the tokens in
    rank order as base64), safe to store in a ``torch.load(weights_only=True)`` checkpoint."""
    return bpe.to_dict(**_parts(enc))


def encoding_from_dict(d: dict):
    """Inverse of :func:`encoding_to_dict`; raises ValueError on a dict that does not verify
    (see :func:`lm_steps.bpe.from_dict`)."""
    import tiktoken

    if not isinstance(d, dict) or d.get("type") != "tiktoken":
        raise ValueError(f"not an encoding dict: type={d.get('type') if isinstance(d, dict) else type(d).__name__!r}")
    return tiktoken.Encoding(**bpe.from_dict(d, where="encoding dict"))


def tokenizer_to_dict(tok) -> dict:
    """A :class:`CharTokenizer` or a tiktoken Encoding as the plain dict a checkpoint stores."""
    return tok.to_dict() if isinstance(tok, CharTokenizer) else encoding_to_dict(tok)


def tokenizer_from_dict(d: dict):
    """Inverse of :func:`tokenizer_to_dict`: a :class:`CharTokenizer` or a tiktoken Encoding."""
    kind = d.get("type")
    return (CharTokenizer.from_dict(d) if kind == "char" else ChatTokenizer.from_dict(d) if kind == "chat"
            else encoding_from_dict(d))


def save_bpe(enc, path: str | os.PathLike) -> Path:
    """Write an Encoding to a text file (:func:`lm_steps.bpe.save`: a JSON header, then one token per
    line), all at once or not at all, and return the path. Saving what :func:`load_bpe` read gives
    the same bytes, and it encodes exactly as ``enc``."""
    return bpe.save(path, **_parts(enc))


def load_bpe(path: str | os.PathLike):
    """Read a file written by :func:`save_bpe` back into a ``tiktoken.Encoding``, verifying it.

    Refused with a ValueError naming the file and line: anything but ASCII text, a header that is
    not save_bpe's, a token count that differs from the header's (a truncated file, lines added
    or deleted), a blank or malformed line, ranks that are not 0, 1, 2, ... in order, bad base64,
    a repeated token, a split pattern that does not compile, can match the empty string or does
    not cover all text.
    """
    import tiktoken

    return tiktoken.Encoding(**bpe.load(path))


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


# ----------------------------------------------------------------------------- SentencePiece
def train_sentencepiece(text: str, vocab_size: int, *, model_type: str = "bpe", byte_fallback: bool = True,
                        character_coverage: float = 0.99995):
    """Train a SentencePiece model of ``vocab_size`` pieces on ``text`` (one sentence per line), in memory.

    The settings are Llama 2's: BPE over code points, a space written as ``▁`` and added before
    the first word, digits split one by one, no normalisation (so decoding gives the text back
    exactly), and with ``byte_fallback`` a character outside the vocabulary (rarer than
    ``character_coverage`` of the training characters, or never seen) becomes its UTF-8 bytes,
    pieces ``<0x00>`` .. ``<0xFF>``, instead of ``<unk>``. One thread, so the same text gives the
    same model. Returns a ``sentencepiece.SentencePieceProcessor``.
    """
    import io

    try:
        import sentencepiece as spm
    except ImportError:
        raise ImportError("train_sentencepiece needs the sentencepiece package: pip install sentencepiece "
                          "(or install lm-steps with its notebooks extra)") from None
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}; decode bytes with .decode('utf-8')")
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("text has no line with anything but whitespace: nothing to train SentencePiece on")
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=model, vocab_size=check_int("vocab_size", vocab_size, minimum=1),
            model_type=model_type, byte_fallback=byte_fallback, character_coverage=character_coverage,
            normalization_rule_name="identity", add_dummy_prefix=True, remove_extra_whitespaces=False,
            split_digits=True, allow_whitespace_only_pieces=True, max_sentence_length=1 << 20, num_threads=1,
            unk_surface=" \u2047 ", minloglevel=2)
    except RuntimeError as err:  # SentencePiece says why in C++ terms: too small or too large for the text
        reason = str(err).split("] ")[-1]
        raise ValueError(f"SentencePiece cannot train vocab_size={vocab_size} on this text: {reason}") from None
    return spm.SentencePieceProcessor(model_proto=model.getvalue())


# ----------------------------------------------------------------------------- names that moved
_MOVED = {"split_chunks": "split_chunks", "learn_merges": "learn_merges", "BPE_FORMAT": "FORMAT"}  # old: new


def __getattr__(name: str):
    """Names that moved to :mod:`lm_steps.bpe` in 0.2, still served here for one release with a DeprecationWarning."""
    if name in _MOVED:
        warnings.warn(f"lm_steps.tokenizers.{name} moved to lm_steps.bpe.{_MOVED[name]}; import it from there "
                      f"(the old name goes in the next release)", DeprecationWarning, stacklevel=2)
        return getattr(bpe, _MOVED[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
