"""WikiText-2 v1: word counts, articles, token streams, and no training text in the evaluation streams."""
from __future__ import annotations

import pytest
import torch

from lm_steps import data, wikitext as W
from lm_steps.tokenizers import ENDOFTEXT, WIKITEXT_SPECIALS, train_bpe


@pytest.fixture(scope="module")
def splits():
    try:
        return data.wikitext_splits("wikitext-2-v1", progress=False)
    except data.DataUnavailableError as err:
        pytest.skip(f"WikiText-2 v1 not available offline: {err}")


def test_standard_word_counts(splits):
    assert W.count_words(splits["test"]) == 245_569
    assert W.count_words(splits["validation"]) == 217_646
    # the same count as PyTorch's word_language_model: line.split() + ['<eos>'] per line
    assert W.count_words(" a b \n \n c\n") == 3 + 1 + 2


def test_articles_rebuild_the_split(splits):
    for split, text in splits.items():
        articles = W.split_articles(text)
        assert "".join(articles) == text
        assert all(W.article_title(a) for a in articles)
    assert [len(W.split_articles(splits[k])) for k in ("train", "validation", "test")] == [600, 60, 60]
    brad = W.find_article(splits["test"], "Brad Stevens")
    assert text_line(splits["test"], 2442) == " = Brad Stevens = "
    assert " Bradley Kent \" Brad \" Stevens" in brad
    assert W.article_title(" \n = = Section = = \n \n") is None
    assert W.article_title(" \n = Title = \n \n") == "Title"


def text_line(text, number):
    return text.splitlines()[number - 1]


def test_stream_round_trip_and_no_training_text_in_evaluation(splits):
    enc = train_bpe(splits["train"][:200_000], 400, special_tokens=WIKITEXT_SPECIALS)
    eot = enc.encode(ENDOFTEXT, allowed_special="all")[0]
    train_lines = set(splits["train"].splitlines())
    for split in ("validation", "test"):
        articles = W.split_articles(splits[split])
        stream = W.token_stream(enc, articles, allowed_special={"<unk>"})
        assert stream.dtype == torch.long and int(stream[0]) == eot and int(stream[-1]) == eot
        assert int((stream == eot).sum()) == len(articles) + 1
        # the stream is exactly this split's text, nothing else
        assert W.decode_stream(enc, stream) == splits[split]
        # and none of its paragraphs is in the training split
        paragraphs = [line for line in splits[split].splitlines() if len(line) > 200]
        assert len(paragraphs) > 1000 and not any(line in train_lines for line in paragraphs)
    # <unk> is one token here; an encoding without it spells it out
    unk = enc.encode("<unk>", allowed_special="all")
    assert len(unk) == 1 and int((W.token_stream(enc, ["a <unk> b"], allowed_special={"<unk>"}) == unk[0]).sum()) == 1
