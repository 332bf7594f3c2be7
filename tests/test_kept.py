"""Kept models: a notebook keeps its GPT in the build folder and a later one loads it back, the same weights."""
from __future__ import annotations

import pytest
import torch

from conftest import tiny_gpt
from lm_steps.kept import keep, kept_path, load_kept
from lm_steps.tokenizers import CharTokenizer


def test_keep_and_load_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("LM_STEPS_RESULTS", str(tmp_path))
    assert load_kept("05_shakespeare_gpt", profile="smoke") is None
    model = tiny_gpt(vocab_size=5)
    tok = CharTokenizer(tuple("abcde"))
    path = keep("05_shakespeare_gpt", model, tokenizer=tok.to_dict(), profile="smoke")
    assert path == tmp_path / "models" / "05_shakespeare_gpt-smoke.pt" == kept_path("05_shakespeare_gpt", profile="smoke")
    back, tok_dict = load_kept("05_shakespeare_gpt", profile="smoke")
    assert CharTokenizer.from_dict(tok_dict) == tok and not back.training
    idx = torch.tensor([[0, 1, 2, 3]])
    with torch.no_grad():
        torch.testing.assert_close(back(idx)[0], model.eval()(idx)[0], atol=0, rtol=0)


@pytest.mark.parametrize("name", ["", "../escape", ".hidden", "a/b"])
def test_kept_names_stay_in_the_models_folder(name):
    with pytest.raises(ValueError, match="plain file name"):
        kept_path(name, profile="smoke")
