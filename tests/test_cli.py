"""The command line end to end on tiny models: train, resume, sample, chat, eval, and its errors."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lm_steps import cli, data
from lm_steps.checkpoint import gpt_from_checkpoint, load_checkpoint
from lm_steps.evaluation import evaluate_stream
from lm_steps.tokenizers import CharTokenizer

from conftest import run_cli as run

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def trained(text_file, tmp_path_factory) -> Path:
    """A smoke-sized character GPT trained for 6 steps on the text file; returns its folder."""
    out = tmp_path_factory.mktemp("run")
    assert cli.main(["train", "--data", str(text_file), "--out", str(out), "--config", "smoke", "--max-iters", "6"]) == 0
    return out


def test_train_writes_a_checkpoint_with_its_tokenizer(trained, text_file):
    ckpt = load_checkpoint(trained / "ckpt.pt")
    assert ckpt["step"] == 6 and ckpt["history"]["step"] == list(range(6))
    assert ckpt["tokenizer"] == CharTokenizer.from_text(text_file.read_text()).to_dict()
    assert ckpt["model_config"]["block_size"] == cli.CHAR_CONFIGS["smoke"][0]["block_size"]
    assert json.loads((trained / "run.json").read_text())["data"] == str(text_file.resolve())


def test_sample_same_seed_same_text(trained, capsys):
    args = ("sample", trained / "ckpt.pt", "--prompt", "the quick", "--max-new-tokens", 30)
    _, a, _ = run(capsys, *args, "--seed", 1)
    _, b, _ = run(capsys, *args, "--seed", 1)
    _, c, _ = run(capsys, *args, "--seed", 2)
    assert a == b != c
    assert a.startswith("the quick") and len(a.rstrip("\n")) >= len("the quick") + 30 - a.count("\n")
    status, two, _ = run(capsys, *args, "--seed", 1, "--num-samples", 2, "--top-k", 5, "--top-p", 0.9)
    assert status == 0 and two.count("---\n") == 1 and two.count("the quick") == 2


def test_chat_continues_each_line_until_eof(trained, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("the lazy\npack my é box\nsphinx\n"))
    status, out, err = run(capsys, "chat", trained, "--max-new-tokens", 12, "--seed", 0)
    assert status == 0
    assert len(out.splitlines()) >= 2 and "é" in err and err.count("\n") == 1  # the bad line is reported, then skipped

    def interrupt():
        raise KeyboardInterrupt

    monkeypatch.setattr(sys, "stdin", io.StringIO())
    monkeypatch.setattr(sys.stdin, "readline", interrupt)
    status, out, err = run(capsys, "chat", trained)
    assert status == 0 and "Traceback" not in err


def test_eval_prints_the_figures_of_evaluate_stream(trained, text_file, capsys):
    status, out, _ = run(capsys, "eval", trained / "ckpt.pt", "--stride", 8)
    assert status == 0
    loss, bits = (float(x) for x in re.search(r"loss ([\d.]+) nats/char, ([\d.]+) bits/char", out).groups())
    ppl = float(re.search(r"perplexity ([\d.]+) per character", out).group(1))
    model, ckpt = gpt_from_checkpoint(trained / "ckpt.pt")
    val = data.shakespeare_splits(text_file.read_text())[1]  # the 90/10 split the command used
    tokens = torch.tensor(CharTokenizer.from_dict(ckpt["tokenizer"]).encode(val))
    m = evaluate_stream(model, tokens, stride=8)
    assert (loss, bits, ppl) == (round(m["loss"], 4), round(m["bits_per_token"], 4), round(m["ppl"], 2))
    status, _, err = run(capsys, "eval", trained, "--split", "test")
    assert status == 2 and "no test split" in err


def test_interrupted_training_resumes_exactly(text_file, tmp_path, capsys, monkeypatch):
    args = ["train", "--data", text_file, "--config", "smoke", "--max-iters", 45]  # a checkpoint every 30 steps
    assert run(capsys, *args, "--out", tmp_path / "straight")[0] == 0
    real = cli.train

    def ctrl_c_at_step_35(*a, **kw):
        def stop(step, model):
            if step == 35:
                raise KeyboardInterrupt
        return real(*a, callback=stop, **kw)

    monkeypatch.setattr(cli, "train", ctrl_c_at_step_35)
    status, _, err = run(capsys, *args, "--out", tmp_path / "cut")
    assert status == 130 and "step 30" in err and "--resume" in err and "Traceback" not in err
    monkeypatch.setattr(cli, "train", real)
    status, _, err = run(capsys, *args, "--out", tmp_path / "cut")
    assert status == 2 and "--resume" in err  # it will not overwrite a run by accident
    status, out, _ = run(capsys, "train", "--out", tmp_path / "cut", "--resume")
    assert status == 0 and "resuming at step 30" in out
    a, b = load_checkpoint(tmp_path / "straight" / "ckpt.pt"), load_checkpoint(tmp_path / "cut" / "ckpt.pt")
    assert a["step"] == b["step"] == 45 and a["history"]["loss"] == b["history"]["loss"]
    for name, w in a["model"].items():
        torch.testing.assert_close(b["model"][name], w, atol=0, rtol=0)
    status, out, _ = run(capsys, "train", "--out", tmp_path / "cut", "--resume", "--max-iters", 47)
    assert status == 0 and load_checkpoint(tmp_path / "cut" / "ckpt.pt")["history"]["step"] == list(range(47))


def test_tinyshakespeare_trains_and_samples(tmp_path, capsys):
    try:
        data.fetch("tinyshakespeare", progress=False)
    except data.DataUnavailableError as err:
        pytest.skip(f"tinyshakespeare not available offline: {err}")
    status, out, _ = run(capsys, "train", "--data", "tinyshakespeare", "--out", tmp_path, "--config", "smoke",
                         "--max-iters", 2)
    assert status == 0 and "1,003,854 training tokens, 65-token vocabulary" in out
    status, out, _ = run(capsys, "sample", tmp_path, "--prompt", "ROMEO:", "--max-new-tokens", 10, "--seed", 0)
    assert status == 0 and out.startswith("ROMEO:")


@pytest.mark.parametrize("argv, message", [
    (["sample", "missing.pt", "--prompt", "a"], "no checkpoint at missing.pt"),
    (["eval", "missing/ckpt.pt"], "no checkpoint at missing/ckpt.pt"),
    (["train", "--data", "imagenet", "--out", "x"], "unknown dataset 'imagenet'"),
    (["train", "--data", "missing.txt", "--out", "x"], "no such file: missing.txt"),
])
def test_bad_input_is_one_line_and_status_2(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = run(capsys, *argv)
    assert status == 2 and err.startswith("lm-steps: error: ") and message in err and err.count("\n") == 1


def test_unknown_characters_from_the_command_line(trained):
    """Through ``python -m lm_steps`` as a user runs it: one line on stderr, status 2, no traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "lm_steps", "sample", str(trained), "--prompt", "über"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "'ü'" in proc.stderr and "Traceback" not in proc.stderr


def test_console_script_points_at_main():
    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, func = scripts["lm-steps"].split(":")
    assert module == "lm_steps.cli" and func == "main"


def test_data_fetch_to_builds_an_offline_folder(tmp_path, capsys):
    """``python -m lm_steps.data fetch NAME --to DIR``: DIR has the LM_STEPS_DATA layout, checked."""
    try:
        data.fetch("names", progress=False)
    except data.DataUnavailableError as err:
        pytest.skip(f"names.txt not available offline: {err}")
    data._main(["fetch", "names", "--to", str(tmp_path / "offline")])
    out = capsys.readouterr().out
    copied = tmp_path / "offline" / data.DATASETS["names"]["all"].path
    assert data.sha256_file(copied) == data.DATASETS["names"]["all"].sha256
    assert f"LM_STEPS_DATA={(tmp_path / 'offline').resolve()}" in out
    assert data.fetch("names", cache_dir=tmp_path / "elsewhere", source_dir=tmp_path / "offline", progress=False)


def test_offline_error_is_one_short_paragraph(tmp_path, monkeypatch):
    """No copy and no network: the message names the fix, and no urllib traceback is chained under it."""
    import traceback

    def refuse(*a, **kw):
        raise data.urllib.error.URLError("no network")

    monkeypatch.setattr(data.urllib.request, "urlopen", refuse)
    monkeypatch.delenv("LM_STEPS_DATA", raising=False)
    with pytest.raises(data.DataUnavailableError) as info:
        data.load_names(cache_dir=tmp_path, progress=False)
    err = info.value
    assert err.__cause__ is None and err.__suppress_context__
    assert "LM_STEPS_DATA" in str(err) and "make data DATA_DIR=" in str(err) and "\n" not in str(err)
    assert len(traceback.format_exception(err)) <= 5  # header, this test, load_names, fetch, the message
