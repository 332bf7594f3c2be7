"""The command line trains like nanoGPT's: every model and training field as an option, a config
file, a line per evaluation, a log, a loss curve, the best checkpoint, samples as it goes,
threads, and torchrun."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lm_steps import cli
from lm_steps.checkpoint import load_checkpoint

from conftest import run_cli as run

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--config", "smoke", "--n_layer", "1", "--n-embd", "16", "--n_head", "2", "--block_size", "16",
         "--batch_size", "4", "--eval_interval", "3", "--eval_iters", "2"]


@pytest.fixture(scope="module")
def small_run(text_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("opts") / "run"
    threads = torch.get_num_threads()
    import contextlib
    import io
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            status = cli.main(["train", "--data", str(text_file), "--out", str(out), *SMALL, "--max_iters", "7",
                               "--lr", "3e-3", "--sample-tokens", "12"])
    finally:
        torch.set_num_threads(threads)
    assert status == 0
    return out, buf.getvalue()


def test_options_reach_the_model_and_the_saved_config(small_run):
    out, _ = small_run
    resolved = json.loads((out / "config.json").read_text())
    assert resolved["model"]["n_layer"] == 1 and resolved["model"]["n_embd"] == 16 and resolved["model"]["n_head"] == 2
    assert resolved["train"]["lr"] == 3e-3 and resolved["train"]["min_lr"] == pytest.approx(3e-4)  # lr / 10
    assert resolved["train"]["max_iters"] == 7 and resolved["train"]["batch_size"] == 4
    ckpt = load_checkpoint(out / "ckpt.pt")
    assert ckpt["model_config"]["n_layer"] == 1 and ckpt["train_config"]["lr"] == 3e-3
    assert ckpt["model"]["transformer.wte.weight"].shape[1] == 16


def test_a_line_and_a_sample_per_evaluation_a_log_a_curve_and_the_best_checkpoint(small_run):
    out, printed = small_run
    ckpt = load_checkpoint(out / "ckpt.pt")
    steps = ckpt["history"]["val_step"]
    assert steps == [0, 3, 6, 7]
    for s, v in zip(steps, ckpt["history"]["val_loss"]):
        assert f"step {s}: train loss" in printed and f"val loss {v:.4f}" in printed
    assert printed.count("sample (12 tokens):") == len(steps)
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == steps
    assert [r["val_loss"] for r in rows] == pytest.approx(ckpt["history"]["val_loss"], abs=1e-6)
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = load_checkpoint(out / "best.pt")
    low = min(range(len(steps)), key=ckpt["history"]["val_loss"].__getitem__)
    assert best["step"] == steps[low]


def test_a_config_file_reproduces_the_run(small_run, text_file, tmp_path, capsys):
    out, _ = small_run
    again = tmp_path / "again"
    status, _, err = run(capsys, "train", "--data", text_file, "--out", again, "--config", out / "config.json")
    assert status == 0, err
    a, b = load_checkpoint(out / "ckpt.pt"), load_checkpoint(again / "ckpt.pt")
    assert a["train_config"] == b["train_config"] and a["model_config"] == b["model_config"]
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=0, atol=0)
    status, _, err = run(capsys, "train", "--data", text_file, "--out", tmp_path / "x", "--config", tmp_path / "no.json")
    assert status == 2 and "no such file" in err
    (tmp_path / "bad.json").write_text("[1]")
    status, _, err = run(capsys, "train", "--data", text_file, "--out", tmp_path / "x", "--config", tmp_path / "bad.json")
    assert status == 2 and "no \"model\" and \"train\" objects" in err


def test_resume_keeps_the_options_the_run_started_with(small_run, tmp_path, capsys):
    src, _ = small_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    status, _, err = run(capsys, "train", "--out", out, "--resume", "--max_iters", "9")
    assert status == 0, err
    ckpt = load_checkpoint(out / "ckpt.pt")
    assert ckpt["step"] == 9 and ckpt["model_config"]["n_layer"] == 1 and ckpt["train_config"]["lr"] == 3e-3
    status, _, err = run(capsys, "train", "--out", out, "--resume", "--max_iters", "12", "--n_layer", "2")
    assert status == 2 and "n_layer" in err and load_checkpoint(out / "ckpt.pt")["step"] == 9


@pytest.mark.parametrize("argv, message", [
    (["--n_layer", "x"], None),  # argparse: invalid int value
    (["--causal", "maybe"], None),
    (["--lr", "-1"], "lr must be a positive number"),
    (["--vocab_size", "80"], "--vocab_size is for WikiText's BPE"),
    (["--batch_size", "0"], "batch_size"),
    (["--threads", "0"], "--threads must be an integer >= 1"),
])
def test_bad_options_are_one_line(text_file, tmp_path, capsys, argv, message):
    if message is None:
        with pytest.raises(SystemExit) as exit_:
            cli.main(["train", "--data", str(text_file), "--out", str(tmp_path / "r"), *argv])
        assert exit_.value.code == 2 and "invalid" in capsys.readouterr().err
        return
    status, _, err = run(capsys, "train", "--data", text_file, "--out", tmp_path / "r", *argv)
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()  # nothing written before the checks pass


def test_compile_trains_the_same_model_and_saves_it_plain(text_file, tmp_path, capsys):
    """--compile wraps the model in torch.compile (here its eager backend: tracing only, the same arithmetic);
    the checkpoint holds the plain model's weights, equal to an uncompiled run's."""
    runs = {}
    for name, extra in (("plain", []), ("compiled", ["--compile", "eager"])):
        status, out, err = run(capsys, "train", "--data", text_file, "--out", tmp_path / name, *SMALL,
                               "--max_iters", "4", *extra)
        assert status == 0, err
        runs[name] = load_checkpoint(tmp_path / name / "ckpt.pt")["model"]
    assert runs["compiled"].keys() == runs["plain"].keys()  # no "_orig_mod." prefix
    for k in runs["plain"]:
        torch.testing.assert_close(runs["compiled"][k], runs["plain"][k], rtol=1e-5, atol=1e-6)
    status, _, err = run(capsys, "train", "--data", text_file, "--out", tmp_path / "bad", "--compile", "nope")
    assert status == 2 and "--compile nope: not a torch.compile backend" in err and "inductor" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()


def test_threads_option_and_environment(text_file, tmp_path, capsys, monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "cmd_train", None)
    monkeypatch.setattr(cli, "_check_args", lambda args: seen.append(None))
    before = torch.get_num_threads()
    try:
        args = cli._parser().parse_args(["train", "--out", str(tmp_path), "--threads", "1"])
        assert cli._threads(args) == 1
        monkeypatch.setenv(cli.THREADS_ENV, "1")
        assert cli._threads(cli._parser().parse_args(["train", "--out", str(tmp_path)])) == 1
        monkeypatch.setenv(cli.THREADS_ENV, "lots")
        with pytest.raises(ValueError, match="LM_STEPS_THREADS='lots'"):
            cli._threads(cli._parser().parse_args(["train", "--out", str(tmp_path)]))
        monkeypatch.delenv(cli.THREADS_ENV)
        default = cli._threads(cli._parser().parse_args(["train", "--out", str(tmp_path)]))
        assert 1 <= default <= max(before, 1) and default <= len(os.sched_getaffinity(0))
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="gloo over torchrun on Linux/macOS")
def test_torchrun_two_processes_match_one_process(text_file, tmp_path):
    """Two gloo processes each take half of the global batch: the same weights as one process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "LM_STEPS_THREADS": "1"}
    common = ["train", "--data", str(text_file), *SMALL, "--max_iters", "4", "--dropout", "0"]
    one = subprocess.run([sys.executable, "-m", "lm_steps", *common, "--out", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "lm_steps", *common, "--out", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=180)
    assert two.returncode == 0, two.stderr[-2000:]
    assert "x 2 processes" in two.stdout and two.stdout.count("step 4: train loss") == 1  # rank 0 alone prints
    a, b = load_checkpoint(tmp_path / "one" / "ckpt.pt"), load_checkpoint(tmp_path / "two" / "ckpt.pt")
    assert b["train_config"]["batch_size"] == 2  # each process's share of the global 4
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=1e-5, atol=1e-6)
    assert a["history"]["val_loss"] == pytest.approx(b["history"]["val_loss"], abs=1e-5)
    assert json.loads((tmp_path / "two" / "config.json").read_text())["train"]["batch_size"] == 4


def test_a_model_folder_round_trips_through_python_and_the_command_line(small_run, tmp_path, capsys):
    from lm_steps.checkpoint import gpt_from_checkpoint, load_model, save_model
    from lm_steps.tokenizers import CharTokenizer

    run_folder, _ = small_run
    model, tok = load_model(run_folder)  # a run folder is a model folder too
    assert isinstance(tok, CharTokenizer)
    kept = save_model(tmp_path / "kept", model, tokenizer=tok)
    assert json.loads((kept / "config.json").read_text())["model"]["n_layer"] == 1
    again, tok2 = load_model(kept)
    assert tok2.to_dict() == tok.to_dict()
    idx = torch.tensor([tok.encode("the quick")])
    with torch.no_grad():
        torch.testing.assert_close(again(idx)[0], model(idx)[0], rtol=0, atol=0)
    assert gpt_from_checkpoint(kept)[0].config == model.config  # a folder where a file was wanted
    status, out, err = run(capsys, "sample", kept, "--prompt", "the", "--max-new-tokens", 5, "--seed", 1)
    assert status == 0 and out.startswith("the"), err
    with pytest.raises(FileNotFoundError, match="folder without ckpt.pt"):
        load_model(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        save_model(tmp_path / "file", model, tokenizer=tok)


def test_export_to_hugging_face_from_the_command_line(small_run, tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("safetensors")
    from lm_steps.checkpoint import load_model

    run_folder, _ = small_run
    status, out, err = run(capsys, "export", run_folder, "--out", tmp_path / "hf")
    assert status == 0 and "model.safetensors" in out, err
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    model, tok = load_model(run_folder)
    idx = torch.tensor([tok.encode("the quick brown")])
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, model(idx)[0], atol=1e-5, rtol=1e-5)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    status, _, err = run(capsys, "export", run_folder, "--out", tmp_path / "busy")
    assert status == 2 and "other files" in err


def test_pretrained_gpt2_offline_says_so_in_one_line(capsys, tmp_path):
    pytest.importorskip("transformers")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home"), "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "lm_steps", "sample", "gpt2", "--prompt", "Hello",
                        "--max-new-tokens", "3"], env=env, capture_output=True, text=True, timeout=120)
    err = [line for line in p.stderr.splitlines() if line.startswith("lm-steps:")]
    assert p.returncode == 2 and p.stdout == "" and len(err) == 1, p.stderr[-1000:]
    assert "could not get gpt2 from the Hugging Face hub (HF_HUB_OFFLINE is set)" in err[0]
    status, _, err = run(capsys, "sample", "gpt3")
    assert status == 2 and "pretrained models: gpt2" in err
