"""Tokenizers: characters for the early stages."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

__all__ = ["CharTokenizer"]


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
