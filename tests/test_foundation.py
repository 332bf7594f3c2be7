"""Helpers, character vocabularies, notebooks committed clean."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import lm_steps
import lm_steps.utils
import lm_steps.nb
from lm_steps import results
from lm_steps.tokenizers import CharTokenizer

ROOT = Path(__file__).resolve().parent.parent


def test_profile_lookup(monkeypatch):
    monkeypatch.setenv("LM_STEPS_PROFILE", "smoke")
    assert lm_steps.get_profile() == "smoke"
    assert lm_steps.by_profile(smoke=1, cpu=2, gpu=3) == 1
    monkeypatch.setenv("LM_STEPS_PROFILE", "GPU")
    assert lm_steps.get_profile() == "gpu"
    monkeypatch.delenv("LM_STEPS_PROFILE")
    assert lm_steps.get_profile() == ("gpu" if torch.cuda.is_available() else "cpu")


def test_profile_table_takes_the_profile_column(monkeypatch):
    monkeypatch.setenv("LM_STEPS_PROFILE", "cpu")
    assert lm_steps.utils.profile_table(steps=(5, 500, 5000), lr=(1e-2, 3e-3, 1e-3)) == {"steps": 500, "lr": 3e-3}
    assert lm_steps.utils.profile_table("gpu", steps=(5, 500, 5000)) == {"steps": 5000}
    with pytest.raises(ValueError, match="steps needs a tuple of 3 values"):
        lm_steps.utils.profile_table(steps=(5, 500))


def test_unknown_profile_lists_the_valid_ones(monkeypatch):
    monkeypatch.setenv("LM_STEPS_PROFILE", "laptop")
    with pytest.raises(ValueError) as err:
        lm_steps.get_profile()
    assert "'laptop'" in str(err.value) and all(p in str(err.value) for p in lm_steps.PROFILES)


def test_auto_device_and_generator():
    assert lm_steps.auto_device().type in {"cuda", "mps", "cpu"}
    a = torch.rand(3, generator=lm_steps.make_generator(7))
    b = torch.rand(3, generator=lm_steps.make_generator(7))
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_show_returns_the_source():
    shown = lm_steps.show(CharTokenizer.encode)
    text = str(shown)
    assert "def encode" in text and "stoi" in text
    # rendered as a fenced Markdown block (the front end highlights it), with no CSS in the output
    md = shown._repr_markdown_()
    assert md.startswith("```python\n") and md.endswith("\n```") and text.strip() in md and "<style" not in md
    assert lm_steps.nb.Source("x = '```'\n")._repr_markdown_().startswith("````python")
    with pytest.raises(TypeError, match="show"):
        lm_steps.show(42)


def test_show_figure_carries_alt_text_and_closes_the_figure():
    import matplotlib.pyplot as plt

    from lm_steps.nb import show_figure

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    ax.set(xlabel="x", ylabel="y")
    html = getattr(show_figure(fig, 'a line "falling" from 1 to 0'), "data", None) or ""
    assert html.startswith('<img alt="a line &quot;falling&quot; from 1 to 0" src="data:image/png;base64,')
    assert not plt.fignum_exists(fig.number)
    with pytest.raises(ValueError, match="alt text"):
        show_figure(plt.figure(), " ")


def test_names_vocabulary(names, names_tok):
    assert names_tok.vocab_size == 27 and names_tok.chars[0] == "." and names_tok.chars[1:] == tuple("abcdefghijklmnopqrstuvwxyz")
    assert names_tok.decode(names_tok.encode("zzyzx")) == "zzyzx"


def test_encode_lists_unknown_characters(names_tok):
    with pytest.raises(ValueError) as err:
        names_tok.encode("Émile-3")
    msg = str(err.value)
    assert "'É'" in msg and "'-'" in msg and "'3'" in msg and "27 symbols" in msg


def test_tokenizer_round_trip_dict():
    tok = CharTokenizer.from_text("hello world")
    assert CharTokenizer.from_dict(tok.to_dict()) == tok
    with pytest.raises(ValueError, match="repeated"):
        CharTokenizer(("a", "a"))


def test_results_log(tmp_path, monkeypatch):
    monkeypatch.setenv("LM_STEPS_RESULTS", str(tmp_path))
    results.record("x", profile="smoke", loss=1.5)
    results.record("y", profile="smoke", loss=2.5)
    results.record("x", profile="smoke", loss=1.0)
    assert results.load_results("smoke") == {"x": {"loss": 1.0}, "y": {"loss": 2.5}}
    assert results.load_results("cpu") == {}


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path.name} cell {i} has outputs: clear them before committing"
            assert cell.get("execution_count") is None, f"{path.name} cell {i} has an execution count"


def test_eval_mode_restores_the_mode_even_on_error():
    net = torch.nn.Dropout(0.5)
    with lm_steps.utils.eval_mode(net):
        assert not net.training
    assert net.training
    net.eval()
    with pytest.raises(RuntimeError):
        with lm_steps.utils.eval_mode(net):
            net.train()
            raise RuntimeError("boom")
    assert not net.training
