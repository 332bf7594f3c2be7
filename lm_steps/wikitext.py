"""WikiText helpers: articles, the standard word count, and token streams for a GPT.

WikiText files are one paragraph per line; an article starts at a title line `` = Title = ``
(sections are `` = = Section = = ``). Word-level perplexity divides the total NLL by the number
of words counted the standard way (``line.split()`` plus one end-of-line per line, as in
PyTorch's word_language_model): 245,569 on the test split, 217,646 on validation.
"""
from __future__ import annotations

import re
from typing import Sequence

import torch

__all__ = ["TITLE_RE", "split_articles", "article_title", "count_words", "find_article", "token_stream", "decode_stream"]

#: A title line: one ``=`` on each side (section headings have two or more).
TITLE_RE = re.compile(r"^ = [^=].* = $")


def _is_title(lines: Sequence[str], i: int) -> bool:
    """A title line with a blank line (or the file's edge) on each side; a few paragraph lines of
    formulas and tables also look like `` = ... = ``, but never sit between blank lines."""
    def blank(j):
        return j < 0 or j >= len(lines) or not lines[j].strip()
    return bool(TITLE_RE.match(lines[i].rstrip("\r\n"))) and blank(i - 1) and blank(i + 1)


def split_articles(text: str) -> list[str]:
    """Cut a WikiText split into articles (600 / 60 / 60 in WikiText-2), each at its title line.

    Lines before the first title (a blank line in the files) join the first article and the blank
    line before each title ends the previous one, so ``"".join(split_articles(text)) == text``.
    """
    lines = text.splitlines(keepends=True)
    starts = [i for i in range(len(lines)) if _is_title(lines, i)]
    if not starts:
        return [text] if text else []
    starts[0] = 0
    return ["".join(lines[a:b]) for a, b in zip(starts, starts[1:] + [len(lines)])]


def article_title(article: str) -> str | None:
    """The title of an article (its first `` = Title = `` line), or None."""
    lines = article.splitlines()
    for i in range(len(lines)):
        if _is_title(lines, i):
            return lines[i].strip()[2:-2]
    return None


def count_words(text: str) -> int:
    """WikiText words: whitespace-separated tokens plus one end-of-line per line (blank lines too)."""
    return sum(len(line.split()) + 1 for line in text.splitlines())


def find_article(text: str, title: str) -> str:
    """The article of ``text`` titled ``title``; KeyError if there is none."""
    for article in split_articles(text):
        if article_title(article) == title:
            return article
    raise KeyError(f"no article titled {title!r}")


def token_stream(enc, articles: Sequence[str], *, allowed_special: set[str] | str = frozenset(),
                 eot: int | None = None) -> torch.Tensor:
    """One long int64 stream: ``<|endoftext|>`` then each article followed by ``<|endoftext|>``.

    The leading separator gives the first real token a context, so every token of the text is
    scored. ``allowed_special`` is passed to ``enc.encode`` (``{"<unk>"}`` for an encoding that has
    WikiText's ``<unk>`` token; left empty, ``<unk>`` is encoded as plain text). ``eot`` defaults
    to the encoding's ``<|endoftext|>`` id.
    """
    eot = enc.eot_token if eot is None else eot
    encoded = enc.encode_batch(list(articles), allowed_special=allowed_special, disallowed_special=())
    ids = [eot]
    for piece in encoded:
        ids.extend(piece)
        ids.append(eot)
    return torch.tensor(ids, dtype=torch.long)


def decode_stream(enc, stream: torch.Tensor | Sequence[int], *, eot: int | None = None) -> str:
    """The text of a :func:`token_stream` with the separators left out (the split's own text)."""
    eot = enc.eot_token if eot is None else eot
    ids = stream.tolist() if isinstance(stream, torch.Tensor) else [int(i) for i in stream]
    out, piece = [], []
    for i in ids + [eot]:
        if i == eot:
            if piece:
                out.append(enc.decode_bytes(piece))
            piece = []
        else:
            piece.append(i)
    return b"".join(out).decode("utf-8")
