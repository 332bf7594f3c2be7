"""Fine-tuning (lm_steps.finetune): the chat tokenizer, the task set, the loss mask, new token rows, LoRA, and
``lm-steps chat`` through the template, end to end on a tiny model."""
from __future__ import annotations

import io
import sys

import pytest
import torch

from conftest import run_cli
from lm_steps import cli
from lm_steps.checkpoint import load_model, save_model
from lm_steps.finetune import (ASSISTANT, END, USER, LoRALinear, add_lora, add_tokens, answer, chat_ids, chat_prompt,
                               conversation_ids,
                               chat_tokenizer, finetune, make_tasks, sft_example, trainable)
from lm_steps.gpt import GPT, GPTConfig
from lm_steps.losses import IGNORE_INDEX
from lm_steps.tokenizers import CharTokenizer, ChatTokenizer, tokenizer_from_dict, tokenizer_to_dict

CHARS = CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ :")


def tiny(vocab_size: int, seed: int = 0) -> GPT:
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=48, n_layer=1, n_head=2, n_embd=32),
               generator=torch.Generator().manual_seed(seed))


def test_chat_tokenizer_reads_special_tokens_and_round_trips():
    tok = chat_tokenizer(CHARS)
    n = CHARS.vocab_size
    assert tok.vocab_size == n + 3 and tok.encode("ab") == CHARS.encode("ab")  # the old ids stay
    ids = tok.encode(chat_prompt("shout: ab") + "AB" + END)
    assert ids[0] == tok.special_id(USER) and ids[-1] == tok.special_id(END)
    assert tok.decode(ids) == f"{USER}shout: ab{END}{ASSISTANT}AB{END}"
    assert chat_ids(tok, "shout: ab") == tok.encode(chat_prompt("shout: ab"))
    back = tokenizer_from_dict(tokenizer_to_dict(tok))
    assert isinstance(back, ChatTokenizer) and back == tok and back.specials == tok.specials
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode_ordinary(END)  # a user's text cannot hold a special token
    with pytest.raises(ValueError, match="specials"):
        ChatTokenizer(("a",), specials=("x",))


def test_tasks_follow_their_rules():
    tasks = make_tasks(["emma", "bo", "alexandra"], max_len=4)
    assert ("capitalise", "capitalise: emma", "Emma") in tasks and ("shout", "shout: bo", "BO") in tasks
    assert ("first letter", "first letter: emma", "e") in tasks and ("last letter", "last letter: bo", "o") in tasks
    assert not any("alexandra" in t[1] for t in tasks) and len(tasks) == 8
    with pytest.raises(ValueError, match="unknown task"):
        make_tasks(["emma"], ["spell"])


def test_sft_example_scores_the_answer_and_the_end_token_only():
    x, y = sft_example([7, 8, 9], [1, 2], 5)
    assert x.tolist() == [7, 8, 9, 1, 2] and y.tolist() == [IGNORE_INDEX, IGNORE_INDEX, 1, 2, 5]


def test_add_tokens_keeps_the_old_logits_and_the_tying():
    model = tiny(CHARS.vocab_size)
    new = add_tokens(model, 3, generator=torch.Generator().manual_seed(1))
    assert new.config.vocab_size == model.config.vocab_size + 3
    assert new.transformer.wte.weight is new.lm_head.weight
    idx = torch.randint(CHARS.vocab_size, (2, 10), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(new(idx)[0][..., :CHARS.vocab_size], model(idx)[0], atol=1e-5, rtol=1e-5)


def test_lora_starts_at_the_base_and_equals_its_merged_weights():
    base = torch.nn.Linear(16, 8)
    lora = LoRALinear(base, r=4, alpha=8, generator=torch.Generator().manual_seed(0))
    x = torch.randn(3, 16, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(lora(x), base(x), atol=0, rtol=0)  # B = 0
    with torch.no_grad():
        lora.B.normal_(generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(lora(x), lora.merged()(x), atol=1e-5, rtol=1e-5)
    assert [n for n, p in lora.named_parameters() if p.requires_grad] == ["A", "B"]


def test_lora_trains_only_its_matrices_and_the_new_rows():
    tok = chat_tokenizer(CHARS)
    model = add_lora(add_tokens(tiny(CHARS.vocab_size), 3), r=2, alpha=4, new_rows=3,
                     generator=torch.Generator().manual_seed(0))
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()}
    examples = [sft_example(chat_ids(tok, i), tok.encode(a), tok.special_id(END))
                for _, i, a in make_tasks(["emma", "ava"])]
    hist = finetune(model, examples, steps=3, batch_size=4, lr=1e-2, pad_id=0, generator=torch.Generator().manual_seed(0))
    assert len(hist["loss"]) == 3 and hist["adam_bytes"] == 2 * 4 * trainable(model)
    for n, p in model.named_parameters():
        if n.endswith(".A") or n.endswith(".B"):
            continue
        moved = (p.detach() != frozen[n]).any(dim=-1) if p.dim() == 2 else (p.detach() != frozen[n]).any()
        if n == "transformer.wte.weight":
            assert not moved[:-3].any() and moved[-3:].all(), n  # only the new rows
        else:
            assert not moved.any(), n


def _chat_model(tmp_path):
    """A tiny model fine-tuned until it answers 'hi' with 'ok' and then the end token, in a first turn and a second."""
    tok = chat_tokenizer(CHARS)
    model = add_tokens(tiny(CHARS.vocab_size), 3)
    end = tok.special_id(END)
    first = conversation_ids(tok, [("hi", "ok")])
    assert first == chat_ids(tok, "hi") + tok.encode("ok") + [end]
    examples = [sft_example(chat_ids(tok, "hi"), tok.encode("ok"), end),
                sft_example(first + chat_ids(tok, "hi"), tok.encode("ok"), end)]
    finetune(model, examples, steps=60, batch_size=2, lr=1e-2, pad_id=0, generator=torch.Generator().manual_seed(0))
    assert answer(model.eval(), tok, ["hi"]) == ["ok"]
    return save_model(tmp_path / "chat", model, tokenizer=tok), tok


def test_chat_answers_each_line_as_a_turn_and_stops_at_the_end_token(tmp_path, capsys, monkeypatch):
    folder, tok = _chat_model(tmp_path)
    model, loaded = load_model(folder)
    assert isinstance(loaded, ChatTokenizer)
    contexts = []
    real = cli.generate

    def spy(model, idx, *a, **kw):
        contexts.append(idx[0].tolist())
        return real(model, idx, *a, **kw)

    monkeypatch.setattr(cli, "generate", spy)
    monkeypatch.setattr(sys, "stdin", io.StringIO("hi\nhi\n"))
    status, out, err = run_cli(capsys, "chat", folder, "--temperature", 0, "--max-new-tokens", 20)
    assert status == 0 and out == "ok\nok\n", (out, err)
    assert len(contexts) == 6  # 'o', 'k', the end token: two turns
    second = contexts[3]
    first_turn = chat_ids(tok, "hi") + tok.encode("ok") + [tok.special_id(END)]
    assert second == first_turn + chat_ids(tok, "hi")  # the second turn sees the first
