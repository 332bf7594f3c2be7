"""Bad input gets a clear error naming the value and the fix, never a silent wrong result.

One table per area: each row is (what is tried, the call, the error type, a pattern its message
must match). Files for ``load_bpe`` are made by editing a good file the way a careless copy would.
"""
from __future__ import annotations

import base64
import math
from pathlib import Path

import pytest
import torch

from lm_steps import bpe as B, tokenizers as T
from lm_steps.evaluation import distinct_ngrams, evaluate, nll_metrics
from lm_steps.gpt import GPT, GPTConfig
from lm_steps.bigram import NeuralBigram
from lm_steps.inference import beam_search, left_pad
from lm_steps.sample import generate, sample_next

V = 17
BASE = dict(vocab_size=V, block_size=8, n_layer=1, n_head=2, n_embd=16)


def tiny_gpt() -> GPT:
    return GPT(GPTConfig(**BASE), generator=torch.Generator().manual_seed(0)).eval()


# ----------------------------------------------------------------------------- GPTConfig
GPT_CONFIGS = [
    ("vocab_size 0", dict(vocab_size=0), "vocab_size must be an integer >= 1"),
    ("block_size negative", dict(block_size=-4), "block_size must be an integer >= 1"),
    ("block_size float", dict(block_size=8.5), "block_size must be an integer >= 1"),
    ("n_layer bool", dict(n_layer=True), "n_layer must be an integer >= 1"),
    ("n_layer string", dict(n_layer="2"), "n_layer must be an integer >= 1"),
    ("n_head 0", dict(n_head=0), "n_head must be an integer >= 1"),
    ("n_embd float", dict(n_embd=16.0), "n_embd must be an integer >= 1"),
    ("n_embd indivisible", dict(n_embd=15), "n_embd=15 must be divisible by n_head=2; change one"),
    ("n_kv_head 0", dict(n_kv_head=0), "n_kv_head=0 must divide n_head=2"),
    ("n_kv_head float", dict(n_kv_head=1.0), "n_kv_head=1.0 must divide n_head=2"),
    ("n_kv_head not a divisor", dict(n_head=4, n_kv_head=3), "n_kv_head=3 must divide n_head=4"),
    ("dropout 1", dict(dropout=1.0), r"dropout must be a finite number in \[0, 1\)"),
    ("dropout negative", dict(dropout=-0.1), r"dropout must be a finite number in \[0, 1\)"),
    ("dropout nan", dict(dropout=float("nan")), r"dropout must be a finite number in \[0, 1\)"),
    ("dropout string", dict(dropout="0.1"), r"dropout must be a finite number in \[0, 1\)"),
    ("bias string", dict(bias="False"), "bias must be True or False, got 'False'"),
    ("tie_weights int", dict(tie_weights=0), "tie_weights must be True or False"),
    ("pos_encoding unknown", dict(pos_encoding="alibi"), "pos_encoding must be one of"),
    ("ffn unknown", dict(ffn="tanh"), "ffn must be one of"),
    ("rope odd head size", dict(n_head=2, n_embd=18, pos_encoding="rope"), "rope needs an even head size"),
    ("sinusoidal odd n_embd", dict(n_head=3, n_embd=15, pos_encoding="sinusoidal"), "even n_embd.*change n_embd"),
]


@pytest.mark.parametrize("bad, match", [c[1:] for c in GPT_CONFIGS], ids=[c[0] for c in GPT_CONFIGS])
def test_gpt_config(bad, match):
    with pytest.raises(ValueError, match=match):
        GPTConfig(**{**BASE, **bad})


def test_gpt_config_accepts_what_it_should():
    import numpy as np

    cfg = GPTConfig(**{**BASE, "n_embd": np.int64(16), "n_kv_head": 1, "dropout": 0, "bias": True})
    assert cfg.kv_heads == 1 and cfg.head_size == 8


# ----------------------------------------------------------------------------- sampling
LOGITS = torch.randn(2, V, generator=torch.Generator().manual_seed(0))
ALL_MINUS_INF = LOGITS.clone().index_fill_(0, torch.tensor([1]), float("-inf"))
WITH_NAN = LOGITS.clone().index_fill_(1, torch.tensor([3]), float("nan"))
SAMPLING = [
    ("temperature nan", lambda: sample_next(LOGITS, temperature=float("nan")), "temperature must be a finite number"),
    ("temperature inf", lambda: sample_next(LOGITS, temperature=math.inf, top_k=1), "temperature must be a finite"),
    ("temperature negative", lambda: sample_next(LOGITS, temperature=-1.0), "temperature must be a finite number >= 0"),
    ("temperature string", lambda: sample_next(LOGITS, temperature="0.5"), "temperature must be a finite number"),
    ("all logits -inf", lambda: sample_next(ALL_MINUS_INF), "row 1 of the logits .* no finite value"),
    ("all logits -inf, greedy", lambda: sample_next(ALL_MINUS_INF, temperature=0), "row 1 of the logits"),
    ("a nan logit", lambda: sample_next(WITH_NAN), "row 0 of the logits has a NaN"),
    ("logits 1-D", lambda: sample_next(LOGITS[0]), r"logits must be \(B, V\)"),
    ("top_k 0", lambda: sample_next(LOGITS, top_k=0), "top_k must be an integer >= 1"),
    ("top_k float", lambda: sample_next(LOGITS, top_k=2.5), "top_k must be an integer >= 1"),
    ("top_p 0", lambda: sample_next(LOGITS, top_p=0.0), r"top_p must be in \(0, 1\]"),
    ("top_p nan", lambda: sample_next(LOGITS, top_p=float("nan")), r"top_p must be in \(0, 1\]"),
    ("generate max_new_tokens -1", lambda: generate(tiny_gpt(), torch.zeros(1, 2, dtype=torch.long), -1),
     "max_new_tokens must be >= 0"),
    ("beam_search max_new_tokens -1", lambda: beam_search(tiny_gpt(), torch.zeros(1, 2, dtype=torch.long), 2, -1),
     "max_new_tokens must be >= 0"),
    ("beam_search width 0", lambda: beam_search(tiny_gpt(), torch.zeros(1, 2, dtype=torch.long), 0, 3),
     "beam_width must be >= 1"),
]


@pytest.mark.parametrize("call, match", [c[1:] for c in SAMPLING], ids=[c[0] for c in SAMPLING])
def test_sampling(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_top_k_and_top_p_cut_before_the_temperature():
    """The kept set comes from the model's own distribution; the temperature only reshapes it."""
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    g = torch.Generator().manual_seed(0)
    # a huge temperature makes the kept tokens equally likely, but keeps the cut: top_k=1 stays greedy
    assert {sample_next(logits, temperature=1e6, top_k=1, generator=g).item() for _ in range(50)} == {0}
    # p = 0.8 keeps tokens 0 and 1 of softmax([2, 1, 0, -1]) = [.64, .24, .09, .03]; at temperature 100 the
    # four are nearly uniform, so a cut after dividing would keep all four
    draws = {sample_next(logits, temperature=100.0, top_p=0.8, generator=g).item() for _ in range(300)}
    assert draws == {0, 1}
    # a tiny temperature is greedy among the kept tokens, without overflowing to NaN
    assert sample_next(logits * 1e3, temperature=1e-40, generator=g).item() == 0


# ----------------------------------------------------------------------------- padding masks
IDX = torch.tensor([[0, 3, 4], [0, 0, 5]])
MASK = torch.tensor([[0, 1, 1], [0, 0, 1]])
PADDING = [
    ("mask of another shape", lambda: generate(tiny_gpt(), IDX, 2, attention_mask=MASK[:, 1:]),
     r"attention_mask must have the shape of idx, \(B, T\) = \(2, 3\); got \(2, 2\)"),
    ("mask with a 2", lambda: generate(tiny_gpt(), IDX, 2, attention_mask=MASK * 2), "1 for real tokens and 0 for"),
    ("padding on the right", lambda: generate(tiny_gpt(), IDX, 2, attention_mask=torch.tensor([[1, 1, 0], [0, 0, 1]])),
     "row 0 of attention_mask has padding after a real token.*left_pad"),
    ("a row of padding only", lambda: generate(tiny_gpt(), IDX, 2, attention_mask=torch.tensor([[0, 1, 1], [0, 0, 0]])),
     "row 1 of attention_mask has no real token"),
    ("a model without masks", lambda: generate(NeuralBigram(V), IDX, 2, attention_mask=MASK, use_cache=False),
     "NeuralBigram.forward takes no attention_mask"),
    ("GPT.forward mask of another shape", lambda: tiny_gpt()(IDX, attention_mask=MASK[:1]),
     r"attention_mask must have the shape of idx, \(B, T\) = \(2, 3\); got \(1, 3\)"),
    ("GPT.forward mask with a -1", lambda: tiny_gpt()(IDX, attention_mask=-MASK), "1 for real tokens and 0 for"),
    ("left_pad of nothing", lambda: left_pad([]), "at least one prompt"),
    ("left_pad with an empty prompt", lambda: left_pad([[1, 2], []]), "prompt 1 is empty"),
    ("left_pad of a batch tensor", lambda: left_pad([torch.zeros(2, 2, dtype=torch.long)]), "prompt 0 is not a flat"),
]


@pytest.mark.parametrize("call, match", [c[1:] for c in PADDING], ids=[c[0] for c in PADDING])
def test_padding(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------------------------------- evaluation
class Uniform(torch.nn.Module):
    block_size = 4

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(V))

    def forward(self, idx, targets=None):
        return self.w.expand(*idx.shape, V), None


X = torch.zeros(3, 4, dtype=torch.long)
EVALUATION = [
    ("empty set", lambda: evaluate(Uniform(), X[:0], X[:0, 0]), "at least one; got 0 and 0"),
    ("X and Y differ in length", lambda: evaluate(Uniform(), X, X[:2, 0]), "got 3 and 2"),
    ("every target ignored", lambda: evaluate(Uniform(), X, torch.full((3,), -1)), "every target in Y is the ignore"),
    ("every target ignored (B, T)", lambda: evaluate(Uniform(), X, torch.full((3, 4), -1)), "nothing to score"),
    ("batch_size 0", lambda: evaluate(Uniform(), X, X[:, 0], batch_size=0), "batch_size must be >= 1"),
    ("nll_metrics of no tokens", lambda: nll_metrics(0.0, 0), "n_tokens must be >= 1"),
]


@pytest.mark.parametrize("call, match", [c[1:] for c in EVALUATION], ids=[c[0] for c in EVALUATION])
def test_evaluation(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_evaluate_still_scores_partly_ignored_targets():
    Y = torch.tensor([[-1, -1, 3, 4]] * 3)
    out = evaluate(Uniform(), X, Y)
    assert out["n_tokens"] == 6 and out["loss"] == pytest.approx(math.log(V))


# ----------------------------------------------------------------------------- tokenizers
CHARS = T.CharTokenizer(tuple("abc"))
TOKENIZERS = [
    ("special_tokens a bare string", lambda: T.train_bpe("abc abc", 300, special_tokens="EOS"),
     r"single string 'EOS'; write \('EOS',\)"),
    ("special_tokens with an empty string", lambda: T.train_bpe("abc abc", 300, special_tokens=("",)),
     "non-empty string, got ''"),
    ("special_tokens not strings", lambda: T.train_bpe("abc abc", 300, special_tokens=(1,)), "non-empty string, got 1"),
    ("special_tokens repeated", lambda: T.train_bpe("abc abc", 300, special_tokens=("<a>", "<a>")), "repeat"),
    ("special_tokens not a sequence", lambda: T.train_bpe("abc abc", 300, special_tokens=3), "sequence of strings"),
    ("split_chunks with an empty special", lambda: B.split_chunks("abc", special_tokens=("",)), "non-empty"),
    ("decode -1", lambda: CHARS.decode([0, -1]), r"token id -1 is not in the vocabulary of 3 symbols \(ids 0 to 2\)"),
    ("decode 99", lambda: CHARS.decode([99]), "token id 99 is not in the vocabulary of 3 symbols"),
    ("decode a tensor with 3", lambda: CHARS.decode(torch.tensor([1, 3])), "token id 3 is not"),
    ("decode 1.5", lambda: CHARS.decode([1.5]), "token id 1.5 is not"),
    ("decode a batch", lambda: CHARS.decode(torch.zeros(2, 2, dtype=torch.long)), "one sequence of ids"),
]


@pytest.mark.parametrize("call, match", [c[1:] for c in TOKENIZERS], ids=[c[0] for c in TOKENIZERS])
def test_tokenizers(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_train_bpe_with_specials_still_encodes():
    enc = T.train_bpe("the cat <eos> the hat <eos>", 270, special_tokens=["<eos>"])
    assert enc.encode("<eos>", allowed_special="all") == [enc.n_vocab - 1]
    assert T.CharTokenizer(tuple("abc")).decode(torch.tensor([2, 0])) == "ca"


@pytest.fixture(scope="module")
def bpe_file(tmp_path_factory) -> Path:
    text = " ".join(a + b + c + b for a in "bcdfghklmnprst" for b in "aeiou" for c in "rstlnm") * 3
    enc = T.train_bpe(text, 290, special_tokens=T.WIKITEXT_SPECIALS)
    return T.save_bpe(enc, tmp_path_factory.mktemp("bpe") / "good.tiktoken")


def edited(path: Path, edit) -> Path:
    """A copy of the file at ``path`` with its lines changed by ``edit(lines) -> lines``."""
    lines = path.read_text().split("\n")[:-1]
    out = path.with_name(f"edited-{abs(hash(edit))}.tiktoken")
    out.write_text("\n".join(edit(lines)) + "\n")
    return out


def swap_token(lines, i, raw: bytes):
    lines[i] = f"{base64.b64encode(raw).decode()} {lines[i].split()[1]}"
    return lines


BPE_FILES = [
    ("truncated at a line end", lambda ls: ls[:200], "199 token lines .* n_tokens=288.*truncated"),
    ("truncated mid-line", lambda ls: ls[:200] + [ls[200][:3]], "line 201: expected 'base64 rank'"),
    ("a line deleted", lambda ls: ls[:100] + ls[101:], "line 101: rank 100 where rank 99 belongs"),
    ("a line duplicated", lambda ls: ls[:100] + [ls[99]] + ls[100:], "line 101: rank 98 where rank 99 belongs"),
    ("a blank line", lambda ls: ls[:100] + [""] + ls[101:], "line 101: blank line"),
    ("a line added at the end", lambda ls: ls + [ls[-1]], "line 290: rank 287 where rank 288 belongs"),
    ("a token repeated", lambda ls: swap_token(ls, 280, base64.b64decode(ls[270].split()[0])),
     "line 281: token 279 repeats token 269"),
    ("bad base64", lambda ls: [*ls[:50], "!!!! 49", *ls[51:]], "line 51: token 49 is not valid base64"),
    ("a count that lies", lambda ls: [ls[0].replace('"n_tokens": 288', '"n_tokens": 287')] + ls[1:],
     "288 token lines .* n_tokens=287"),
    ("a pattern that does not compile", lambda ls: [ls[0].replace('"pat_str": "', '"pat_str": "(')] + ls[1:],
     "split pattern does not compile"),
    ("no header", lambda ls: ls[1:], "not a file written by lm_steps.tokenizers.save_bpe"),
    ("no token count", lambda ls: [ls[0].replace('"n_tokens"', '"count"')] + ls[1:], "line 1: the header has no token"),
    ("an old format", lambda ls: [ls[0].replace("lm_steps-bpe-2", "lm_steps-bpe-1")] + ls[1:], "bpe-1.*save"),
    ("special token inside the ranks", lambda ls: [ls[0].replace(': 288', ': 5', 1)] + ls[1:], "id >= 288"),
]


@pytest.mark.parametrize("edit, match", [c[1:] for c in BPE_FILES], ids=[c[0] for c in BPE_FILES])
def test_load_bpe_refuses_a_file_that_does_not_verify(bpe_file, edit, match):
    assert T.load_bpe(bpe_file).n_vocab == 290  # the unedited file loads
    with pytest.raises(ValueError, match=match):
        T.load_bpe(edited(bpe_file, edit))


def test_load_bpe_refuses_binary_content(bpe_file, tmp_path):
    raw = bpe_file.read_bytes()
    cut = raw.index(b"\n", raw.index(b"\n", raw.index(b"\n") + 1) + 1) + 1  # after line 3
    (tmp_path / "binary.tiktoken").write_bytes(raw[:cut] + b"\x89PNG\x00\xff" + raw[cut:])
    with pytest.raises(ValueError, match=r"line 4: not ASCII text \(byte 0x89\)"):
        T.load_bpe(tmp_path / "binary.tiktoken")


def test_encoding_dict_with_a_repeated_token(bpe_file):
    d = T.encoding_to_dict(T.load_bpe(bpe_file))
    assert d["n_tokens"] == 288
    d["tokens"][200] = d["tokens"][100]
    with pytest.raises(ValueError, match="token 200 repeats token 100"):
        T.encoding_from_dict(d)
    with pytest.raises(ValueError, match="holds 287 tokens but n_tokens=288"):
        T.encoding_from_dict({**d, "tokens": d["tokens"][:-1]})


# ----------------------------------------------------------------------------- more bad inputs (a second round of probes)
def _words(**kw):
    from lm_steps.sample import sample_words

    tok = T.CharTokenizer.from_text("abcdefghijklmnop", boundary=".")  # 17 symbols, as the tiny GPT
    return sample_words(tiny_gpt(), tok, 2, generator=torch.Generator().manual_seed(0), **kw)


PROMPT = torch.zeros(1, 2, dtype=torch.long)
MORE = [  # (what is tried, the call, the error type, a pattern its message must match)
    ("generate from a list", lambda: generate(tiny_gpt(), [[1, 2]], 2), TypeError, r"wrap it with torch.tensor\(\[ids\]\)"),
    ("generator an int seed", lambda: generate(tiny_gpt(), PROMPT, 2, generator=0), TypeError,
     r"generator must be a torch.Generator.*torch.Generator\(\).manual_seed\(0\)"),
    ("sample_next generator a string", lambda: sample_next(LOGITS, generator="cpu"), TypeError, "torch.Generator"),
    ("beam_search length_penalty nan", lambda: beam_search(tiny_gpt(), PROMPT, 2, 3, eos_token=1,
                                                           length_penalty=float("nan")), ValueError,
     r"length_penalty must be a finite number .*got nan"),
    ("sample_words max_len 0", lambda: _words(max_len=0), ValueError, "max_len must be a positive integer.*got 0"),
    ("sample_words boundary of two symbols", lambda: _words(boundary="ab"), ValueError,
     r"boundary must be one symbol of the tokenizer, got 'ab' \(2 tokens\)"),
    ("uint8 token ids (a mask to torch)", lambda: tiny_gpt()(torch.zeros(1, 3, dtype=torch.uint8)), ValueError,
     r"got dtype torch.uint8; convert it with idx.long\(\)"),
    ("train_bpe on bytes", lambda: T.train_bpe(b"abc abc", 300), TypeError, r"text must be a str, got bytes"),
    ("train_bpe vocab_size float", lambda: T.train_bpe("abc abc", 260.5), ValueError,
     "vocab_size must be an integer, got 260.5"),
    ("GPT from a dict", lambda: GPT({"vocab_size": V}), TypeError, r"config must be a GPTConfig, got dict"),
]


@pytest.mark.parametrize("call, error, match", [c[1:] for c in MORE], ids=[c[0] for c in MORE])
def test_more_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_int32_token_ids_still_work():
    model = tiny_gpt()
    idx = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(model(idx.int())[0], model(idx)[0], rtol=0, atol=0)


def _chars_per_token(value):
    return evaluate(Uniform(), X, X[:, 0], chars_per_token=value)


MORE_EVALUATION = [
    ("chars_per_token 0", lambda: _chars_per_token(0), "chars_per_token must be a positive number .*got 0"),
    ("chars_per_token negative", lambda: _chars_per_token(-2.0), "got -2.0"),
    ("chars_per_token nan", lambda: _chars_per_token(float("nan")), "got nan"),
    ("nll_metrics with negative bytes", lambda: nll_metrics(3.0, 2, n_bytes=-4), "n_bytes must be >= 1 .*got -4"),
    ("nll_metrics with no words", lambda: nll_metrics(3.0, 2, n_words=0), "n_words must be >= 1 .*got 0"),
    ("learn_merges negative", lambda: B.learn_merges({b"ab": 1}, -1), "n_merges must be an integer >= 0, got -1"),
    ("distinct_ngrams n 0", lambda: distinct_ngrams([1, 2, 3], 0),
     "n must be a positive integer .*got 0"),
]


@pytest.mark.parametrize("call, match", [c[1:] for c in MORE_EVALUATION], ids=[c[0] for c in MORE_EVALUATION])
def test_more_evaluation(call, match):
    with pytest.raises(ValueError, match=match):
        call()
