"""lm_steps.bpe: the two taught functions, the plain training loop, the fast trainer that must make the
same merges, the reference encoder, and the split-pattern checks."""
from __future__ import annotations

import functools
import random
from collections import Counter

import pytest

from lm_steps import bpe

SYLLABLES = ["ab", "c", "abc", "th", "e", "the", "ing", "é", "çà", "日本", "語", "🙂", "x", "12", "345", "'s", "'ll",
             "Q", "ü"]
GAPS = [" ", " ", " ", ", ", ".\n", "  ", "\t", "! ", "\r\n", " (", ") ", " @-@ "]


def fresh_text(seed: int, n_words: int = 600) -> str:
    """Random text of words made of a few syllables (ASCII, accents, CJK, emoji, digits), never seen before."""
    rng = random.Random(seed)
    return "".join("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))) + rng.choice(GAPS)
                   for _ in range(n_words))


def test_get_stats_and_merge_by_hand():
    assert bpe.get_stats([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    counts = bpe.get_stats([1, 2])
    assert bpe.get_stats([1, 2, 1], counts) is counts and counts == {(1, 2): 2, (2, 1): 1}  # counts add up
    assert bpe.get_stats([7]) == {} and bpe.get_stats([]) == {}
    assert bpe.merge([1, 2, 3, 1, 2], (1, 2), 4) == [4, 3, 4]
    assert bpe.merge([1, 1, 1], (1, 1), 9) == [9, 1]  # left to right, never overlapping
    assert bpe.merge([1, 2], (2, 1), 9) == [1, 2] and bpe.merge([], (1, 2), 9) == []


def test_toy_merges_by_hand():
    # "aaabdaaabac": pairs aa:4, ab:2, ... -> (a, a); then (aa, a) and (a, b) tie at 2: the smaller ids win,
    # (a, b) = (97, 98) against (256, 97); then (aa, ab) -> "aaab"
    expected = [(b"a", b"a"), (b"a", b"b"), (b"aa", b"ab")]
    assert bpe.train("aaabdaaabac", 256 + 3) == expected
    assert bpe.learn_merges(Counter({b"aaabdaaabac": 1}), 3) == expected
    # chunk weights count like repeats: two copies of "ab" beat one "cdcd" twice over
    assert bpe.learn_merges(Counter({b"ab": 2, b"cdcd": 1}), 1) == [(b"a", b"b")]
    assert bpe.learn_merges(Counter({b"ab": 1, b"cdcd": 1}), 1) == [(b"c", b"d")]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("pattern", [bpe.GPT4_SPLIT_PATTERN, bpe.GPT2_SPLIT_PATTERN], ids=["gpt4", "gpt2"])
def test_fast_trainer_makes_the_plain_loops_merges_on_fresh_text(seed, pattern):
    text = fresh_text(seed)
    plain = bpe.train(text, 256 + 150, pattern)
    assert len(plain) == 150
    assert bpe.learn_merges(bpe.split_chunks(text, pattern), 150) == plain


def test_both_trainers_stop_when_the_text_runs_out_of_pairs():
    merges = bpe.train("ab ab", 1000)
    assert merges == bpe.learn_merges(bpe.split_chunks("ab ab"), 744) == [(b"a", b"b"), (b" ", b"ab")]


def test_reference_encoder_applies_the_merges_in_order():
    text = fresh_text(10)
    merges = bpe.train(text, 256 + 120)
    ref = bpe.ReferenceBPE(merges, bpe.GPT4_SPLIT_PATTERN)
    # earliest learned pair first is the same as applying every merge in learned order with merge()
    ids_of = {left + right: 256 + i for i, (left, right) in enumerate(merges)}
    ids_of.update({bytes([i]): i for i in range(256)})
    in_order = [((ids_of[left], ids_of[right]), 256 + i) for i, (left, right) in enumerate(merges)]
    for chunk in bpe.split_chunks(fresh_text(11)):
        step_by_step = functools.reduce(lambda ids, m: bpe.merge(ids, *m), in_order, list(chunk))
        assert ref.encode_chunk(chunk) == step_by_step
    other = fresh_text(12)
    assert ref.decode(ref.encode(other)) == other
    assert len(ref.encode(text)) < len(text.encode()) / 2  # it compresses the text it learned from


def test_reference_allowed_special_all_means_every_special_token():
    merges = bpe.train(fresh_text(3), 256 + 40)
    ref = bpe.ReferenceBPE(merges, bpe.GPT4_SPLIT_PATTERN, ("<|endoftext|>", "<unk>"))
    eot, unk = ref.special["<|endoftext|>"], ref.special["<unk>"]
    text = "a <unk> b<|endoftext|>c <unk>"
    assert ref.encode(text, allowed_special="all").count(unk) == 2  # not `s in "all"`, as a substring
    assert ref.encode(text, allowed_special="all").count(eot) == 1
    assert ref.encode(text, allowed_special="all") == ref.encode(text, allowed_special={"<|endoftext|>", "<unk>"})
    assert eot not in ref.encode(text, allowed_special={"<unk>"}) and unk not in ref.encode(text)
    assert ref.decode(ref.encode(text, allowed_special="all")) == text
    with pytest.raises(ValueError, match=r"allowed_special must be 'all' or a set .*write \{'<unk>'\}"):
        ref.encode(text, allowed_special="<unk>")  # a bare string would test substrings


BAD_PATTERNS = [  # (what, the pattern, what the message must say)
    ("words only", r"\w+", "does not cover the text"),
    ("letters and spaces only", r" ?\p{L}+|\s+", "does not cover the text"),
    ("ASCII only", r"[\x00-\x7f]+", "does not cover the text"),
    ("empty matches", r"x*", "can match the empty string"),
    ("a lookahead alone", r"(?=a)|\w+|\s+|.", "can match the empty string"),
    ("a capturing group", r"(\w+)|\s+|.", "capturing group"),
    ("does not compile", r"(\w+", "does not compile"),
]


@pytest.mark.parametrize("pattern, match", [c[1:] for c in BAD_PATTERNS], ids=[c[0] for c in BAD_PATTERNS])
def test_split_patterns_that_lose_text_or_panic_are_refused(pattern, match):
    with pytest.raises(ValueError, match=match) as err:
        bpe.check_split_pattern(pattern)
    msg = str(err.value)
    assert repr(pattern) in msg and ("GPT4_SPLIT_PATTERN" in msg or "(?:...)" in msg)  # names it and a fix
    with pytest.raises(ValueError, match=match):
        bpe.split_chunks("some text, 123!", pattern)
    with pytest.raises(ValueError, match=match):
        bpe.ReferenceBPE([], pattern)


def test_the_standard_patterns_and_a_covering_one_pass():
    covering = (bpe.GPT2_SPLIT_PATTERN, bpe.GPT4_SPLIT_PATTERN, r"\w+|\s+|.", r"\p{L}+|\p{N}+|\s+|[^\p{L}\p{N}\s]+")
    for pattern in covering:
        assert bpe.check_split_pattern(pattern) == pattern
