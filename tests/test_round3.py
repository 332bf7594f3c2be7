"""Issue 19 (round 3 of hostile probes): run folders survive every misstep, files are never
half-written, and every command-line failure is one line (status 2), a bug one line (status 1)."""
from __future__ import annotations

import ast
import errno
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lm_steps import checkpoint, cli, results, utils
from lm_steps.checkpoint import CheckpointError, gpt_from_checkpoint, load_checkpoint, save_checkpoint
from lm_steps.gpt import GPT, GPTConfig
from lm_steps.tokenizers import WIKITEXT_SPECIALS, encoding_to_dict, train_bpe

from conftest import PANGRAMS, run_cli as run

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "lm_steps"
TINY = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)


def one_line_error(status: int, err: str, *, code: int = 2) -> bool:
    return status == code and err.startswith("lm-steps: ") and err.count("\n") == 1 and "Traceback" not in err


def train_args(text_file, out, *more):
    return ["train", "--data", text_file, "--out", out, "--config", "smoke", *more]


@pytest.fixture(scope="module")
def trained(text_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    assert cli.main([str(a) for a in train_args(text_file, out, "--max-iters", 6)]) == 0
    return out


@pytest.fixture(scope="module")
def bpe_ckpt(tmp_path_factory) -> Path:
    """An untrained GPT on a small BPE (with WikiText's specials), saved as a checkpoint."""
    enc = train_bpe(" ".join(PANGRAMS) * 20, 300, special_tokens=WIKITEXT_SPECIALS, name="tiny_bpe")
    model = GPT(GPTConfig(vocab_size=enc.n_vocab, block_size=16, n_layer=1, n_head=2, n_embd=16),
                generator=torch.Generator().manual_seed(0))
    path = tmp_path_factory.mktemp("bpe") / "ckpt.pt"
    save_checkpoint(path, model=model, tokenizer=encoding_to_dict(enc))
    return path


# ----------------------------------------------------------------------------- 1. a run folder in use is refused
def test_a_run_folder_in_use_is_refused_and_a_killed_run_leaves_no_lock(text_file, tmp_path, capsys):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen([sys.executable, "-m", "lm_steps", *map(str, train_args(text_file, out, "--max-iters",
                                                                                      100_000))],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = first.stdout.readline()  # printed once the folder is locked and run.json written
        assert "training to step 100000" in line, line
        status, _, err = run(capsys, *train_args(text_file, out, "--max-iters", 6))
        assert one_line_error(status, err) and "in use by another" in err
        status, _, err = run(capsys, "train", "--out", out, "--resume")  # a resume of the same folder too
        assert one_line_error(status, err) and ("in use by another" in err or "nothing to resume" in err)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
        first.stdout.close()
    assert json.loads((out / "run.json").read_text())["max_iters"] == 100_000  # the refused run changed nothing
    status, out_text, _ = run(capsys, *train_args(text_file, out, "--max-iters", 6))  # kill -9 left no lock
    assert status == 0 and "training to step 6" in out_text


def test_a_lock_held_in_this_process_refuses_a_second_train(text_file, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    lock = cli._RunLock(tmp_path / "run")
    try:
        status, _, err = run(capsys, *train_args(text_file, tmp_path / "run", "--max-iters", 6))
        assert one_line_error(status, err) and "in use" in err
        assert list((tmp_path / "run").iterdir()) == []
    finally:
        lock.release()
    assert run(capsys, *train_args(text_file, tmp_path / "run", "--max-iters", 6))[0] == 0


# ----------------------------------------------------------------------------- 2. nothing changes before the checks
def folder_state(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("how", ["plain checkpoint", "already there"])
def test_a_refused_resume_changes_nothing_in_the_folder(how, text_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, *train_args(text_file, out, "--max-iters", 6))[0] == 0
    if how == "plain checkpoint":  # weights only: cannot be resumed
        model, ckpt = gpt_from_checkpoint(out / "ckpt.pt")
        save_checkpoint(out / "ckpt.pt", model=model, step=6, tokenizer=ckpt["tokenizer"])
    before = folder_state(out)
    status, stdout, err = run(capsys, "train", "--out", out, "--resume",
                              "--max-iters", 8 if how == "plain checkpoint" else 3)
    if how == "plain checkpoint":
        assert one_line_error(status, err)
        assert "--out" in err and "train()" not in err and "restore_model" not in err  # advice for the command line
    else:
        assert status == 0 and "already at step 6" in stdout
    assert folder_state(out) == before


# ----------------------------------------------------------------------------- 3. one write path
def _write_calls(tree: ast.AST):
    """(function, line, what) for every call that writes a file, and the atomic_write targets."""
    found = []

    class Visitor(ast.NodeVisitor):
        def __init__(self):
            self.func, self.atomic_names = "<module>", set()

        def visit_FunctionDef(self, node):
            outer, self.func = self.func, node.name
            self.generic_visit(node)
            self.func = outer

        visit_AsyncFunctionDef = visit_FunctionDef

        def visit_With(self, node):
            for item in node.items:
                call = item.context_expr
                if (isinstance(call, ast.Call) and getattr(call.func, "id", getattr(call.func, "attr", None))
                        == "atomic_write" and isinstance(item.optional_vars, ast.Name)):
                    self.atomic_names.add(item.optional_vars.id)
            self.generic_visit(node)

        def visit_Call(self, node):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else None
            if name == "open" and owner in (None, "io", "builtins", "os", "codecs", "gzip"):
                mode = node.args[1] if len(node.args) > 1 else next(
                    (k.value for k in node.keywords if k.arg in ("mode", "flags")), None)
                text = "r" if mode is None else mode.value if isinstance(mode, ast.Constant) else None
                writes = (any(flag in ast.unparse(mode) for flag in ("O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND"))
                          if owner == "os" else text is None or set(str(text)) & set("wax+"))
                if writes:
                    found.append((self.func, node.lineno, ast.unparse(node)))
            elif name in ("write_text", "write_bytes", "touch", "symlink_to", "hardlink_to"):
                found.append((self.func, node.lineno, ast.unparse(node)))
            elif (name in ("copy", "copy2", "copyfile", "move", "copytree") and owner == "shutil") or \
                    (name in ("save", "savez", "savetxt") and owner in ("np", "numpy")) or name == "savefig":
                target = node.args[0] if node.args else None
                if not (name == "savefig" and isinstance(target, ast.Name) and target.id == "buf"):
                    found.append((self.func, node.lineno, ast.unparse(node)))
            elif name == "save" and owner == "torch":
                target = node.args[1] if len(node.args) > 1 else None
                if not (isinstance(target, ast.Name) and target.id in self.atomic_names):
                    found.append((self.func, node.lineno, ast.unparse(node)))
            elif name in ("dump",) and owner in ("json", "pickle"):
                target = node.args[1] if len(node.args) > 1 else None
                if not (isinstance(target, ast.Name) and target.id in self.atomic_names):
                    found.append((self.func, node.lineno, ast.unparse(node)))
            self.generic_visit(node)

    Visitor().visit(tree)
    return found


#: Where a file may be opened for writing: atomic_write itself.
ALLOWED = {("utils.py", "atomic_write")}


def test_every_file_the_package_writes_goes_through_atomic_write():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):  # the exercises subpackage too
        for func, line, what in _write_calls(ast.parse(path.read_text(encoding="utf-8"))):
            if (path.name, func) not in ALLOWED:
                offenders.append(f"{path.name}:{line} in {func}(): {what}")
    assert not offenders, "write through lm_steps.utils.atomic_write instead:\n" + "\n".join(offenders)


def test_the_write_scan_finds_what_it_looks_for():
    code = ("def f(p, x):\n    open(p, 'w').write(x)\n    p.write_text(x)\n    torch.save(x, p)\n"
            "    json.dump(x, open(p, 'a'))\n    with atomic_write(p) as f:\n        torch.save(x, f)\n"
            "    os.open(p, os.O_RDONLY)\n    os.open(p, os.O_WRONLY | os.O_CREAT)\n    open(p).read()\n")
    assert [line for _, line, _ in _write_calls(ast.parse(code))] == [2, 3, 4, 5, 5, 9]


def test_a_failing_clean_up_does_not_hide_the_first_error(tmp_path, monkeypatch):
    def refuse(path, mode="r", *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    def unlink(self, missing_ok=False):
        raise PermissionError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(utils, "open", refuse, raising=False)
    monkeypatch.setattr(Path, "unlink", unlink)
    with pytest.raises(PermissionError) as info:
        with utils.atomic_write(tmp_path / "x.json", "w") as f:
            f.write("{}")
    assert info.value.errno == errno.EACCES and info.value.__context__ is None


# ----------------------------------------------------------------------------- 5. save_checkpoint: only what loads back
def test_numpy_numbers_are_stored_as_python_numbers(tmp_path):
    model = GPT(TINY)
    path = save_checkpoint(tmp_path / "ckpt.pt", model=model, history={"loss": [np.float32(1.5), np.float64(2.0)],
                                                                        "step": [np.int64(0), np.int64(1)]})
    history = torch.load(path, weights_only=True)["history"]
    assert history == {"loss": [1.5, 2.0], "step": [0, 1]} and type(history["step"][0]) is int


@pytest.mark.parametrize("kw, where", [
    (dict(tokenizer={"type": "char", "chars": np.array(list("abc"))}), "tokenizer['chars']"),
    (dict(tokenizer={"type": "char", "path": Path("vocab.txt")}), "tokenizer['path']"),
    (dict(history={"loss": [1.0, object()]}), "history['loss'][1]"),
    (dict(rng={"batch": slice(0, 3)}), "rng['batch']"),
])
def test_save_checkpoint_refuses_what_it_could_not_load_and_keeps_the_old_file(kw, where, tmp_path):
    model = GPT(TINY)
    path = save_checkpoint(tmp_path / "ckpt.pt", model=model, step=3)
    before = path.read_bytes()
    with pytest.raises(TypeError, match=r"cannot load back") as info:
        save_checkpoint(path, model=model, step=4, **kw)
    assert where in str(info.value)
    assert path.read_bytes() == before and load_checkpoint(path)["step"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


# ----------------------------------------------------------------------------- 8a. GPT-2 options it cannot represent
@pytest.mark.parametrize("option, value", [("scale_attn_by_inverse_layer_idx", True), ("scale_attn_weights", False),
                                           ("tie_word_embeddings", False), ("add_cross_attention", True),
                                           ("n_inner", 40)])
def test_gpt2_configs_it_cannot_represent_are_refused(option, value):
    transformers = pytest.importorskip("transformers")
    from lm_steps.gpt2 import config_from_hf

    base = dict(vocab_size=50, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    config_from_hf(transformers.GPT2Config(**base))  # the defaults convert
    with pytest.raises(ValueError, match=option):
        config_from_hf(transformers.GPT2Config(**base, **{option: value}))


def test_an_untied_gpt2_state_dict_is_refused():
    from lm_steps.gpt2 import gpt_from_hf_state_dict

    cfg = GPTConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=16, bias=True, tie_weights=True)
    sd = {k: v.clone() for k, v in GPT(cfg).state_dict().items()}
    for name in sd:
        if name.endswith(("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")):
            sd[name] = sd[name].t()  # as Conv1D stores them
    gpt_from_hf_state_dict(sd, cfg)  # tied: fine
    sd["lm_head.weight"] = sd["lm_head.weight"] + 1
    with pytest.raises(ValueError, match="untied"):
        gpt_from_hf_state_dict(sd, cfg)


# ----------------------------------------------------------------------------- Poor: one line, status 2
def _empty_file(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    return {"data": tmp_path / "empty.txt"}


def _fifo(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    return {"data": tmp_path / "fifo"}


def _a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    return {"file": tmp_path / "file"}


TRAIN_PROBES = [  # (name, setup(tmp_path) -> substitutions, argv with {placeholders}, env, message)
    ("empty data file", _empty_file, ["--data", "{data}", "--out", "{tmp}/o"], {}, "is empty"),
    ("data is a folder", lambda t: {}, ["--data", "{tmp}", "--out", "{tmp}/o"], {}, "is a folder"),
    ("data is a FIFO", _fifo, ["--data", "{data}", "--out", "{tmp}/o"], {}, "not a regular file"),
    ("out is a file", _a_file, ["--data", "{text}", "--out", "{file}"], {}, "is a file"),
    ("out under a file", _a_file, ["--data", "{text}", "--out", "{file}/run"], {}, "is a file"),
    ("out is empty", lambda t: {}, ["--data", "{text}", "--out", ""], {}, "--out is empty"),
    ("device meta", lambda t: {}, ["--data", "{text}", "--out", "{tmp}/o", "--device", "meta"], {}, "--device meta"),
    ("bogus profile", lambda t: {}, ["--data", "{text}", "--out", "{tmp}/o"], {"LM_STEPS_PROFILE": "bogus"},
     "LM_STEPS_PROFILE='bogus'"),
    ("cache is a file", _a_file, ["--data", "names", "--out", "{tmp}/o"], {"LM_STEPS_CACHE": "{file}"}, "is a file"),
    ("LM_STEPS_DATA is a file", _a_file, ["--data", "names", "--out", "{tmp}/o"],
     {"LM_STEPS_CACHE": "{tmp}/cache", "LM_STEPS_DATA": "{file}"}, "LM_STEPS_DATA="),
    ("LM_STEPS_DATA is missing", lambda t: {}, ["--data", "names", "--out", "{tmp}/o"],
     {"LM_STEPS_CACHE": "{tmp}/cache", "LM_STEPS_DATA": "{tmp}/nowhere"}, "is missing, not a folder"),
    ("max-iters 0", lambda t: {}, ["--data", "{text}", "--out", "{tmp}/o", "--max-iters", "0"], {}, "--max-iters"),
]


@pytest.mark.parametrize("name, setup, argv, env, message", TRAIN_PROBES, ids=[p[0] for p in TRAIN_PROBES])
def test_train_probes_are_one_line_with_status_2(name, setup, argv, env, message, text_file, tmp_path, capsys,
                                                 monkeypatch):
    subs = {"tmp": tmp_path, "text": text_file, **setup(tmp_path)}
    for key, value in env.items():
        monkeypatch.setenv(key, value.format(**subs))
    monkeypatch.chdir(tmp_path)
    status, _, err = run(capsys, "train", "--config", "smoke", *(a.format(**subs) for a in argv)) \
        if name != "bogus profile" else run(capsys, "train", *(a.format(**subs) for a in argv))
    assert one_line_error(status, err), err
    assert message in err
    assert not (tmp_path / "o").exists()  # a refused run makes no folder


def test_a_read_only_cache_is_one_line(tmp_path, capsys, monkeypatch):
    def refuse(path, mode="r", *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setenv("LM_STEPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(utils, "open", refuse, raising=False)  # as a read-only folder does to atomic_write
    status, _, err = run(capsys, "train", "--data", "names", "--out", tmp_path / "o", "--config", "smoke")
    assert one_line_error(status, err) and "Permission denied" in err and "LM_STEPS_CACHE" in err


def _run_json_list(run_dir):
    (run_dir / "run.json").write_text("[1, 2]")


def _broken_tokenizer(run_dir):
    ckpt = load_checkpoint(run_dir / "ckpt.pt")
    model, _ = gpt_from_checkpoint(run_dir / "ckpt.pt")
    save_checkpoint(run_dir / "ckpt.pt", model=model, tokenizer={"type": "char", "chars": 5})
    assert ckpt["tokenizer"] != {"type": "char", "chars": 5}


def _edited_config(block_size, pos):
    def edit(run_dir):
        cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8, pos_encoding=pos)
        save_checkpoint(run_dir / "ckpt.pt", model=GPT(cfg), model_config={**cfg.__dict__, "block_size": block_size})
    return edit


def _alien_text(run_dir):
    (run_dir / "alien.txt").write_text("ÆØÅ " * 100, encoding="utf-8")


CKPT_PROBES = [  # (name, edit(run folder copy), argv after the verb (CKPT = the checkpoint), message)
    ("seed 10**23", None, ["sample", "CKPT", "--seed", str(10 ** 23)], "--seed must be an integer"),
    ("negative max-new-tokens", None, ["sample", "CKPT", "--max-new-tokens", "-1"], "--max-new-tokens"),
    ("top-p 2", None, ["sample", "CKPT", "--top-p", "2"], "--top-p"),
    ("temperature nan", None, ["sample", "CKPT", "--temperature", "nan"], "--temperature"),
    ("stride 0", None, ["eval", "CKPT", "--stride", "0"], "--stride must be"),
    ("run.json is a list", _run_json_list, ["eval", "CKPT"], "holds a JSON list"),
    ("run.json is a list, resumed", _run_json_list, ["train", "--out", "DIR", "--resume"], "holds a JSON list"),
    ("broken tokenizer", _broken_tokenizer, ["sample", "CKPT"], "tokenizer is broken"),
    ("10**11 rotary rows", _edited_config(10 ** 11, "rope"), ["sample", "CKPT"], "position tables"),
    ("10**11 learned rows", _edited_config(10 ** 11, "learned"), ["sample", "CKPT"], "does not fit its weights"),
    ("eval text the model lacks", _alien_text, ["eval", "CKPT", "--data", "DIR/alien.txt"], "'Æ'"),
    ("prompt the model lacks", None, ["sample", "CKPT", "--prompt", "ÆØ"], "'Æ'"),
]


@pytest.mark.parametrize("name, edit, argv, message", CKPT_PROBES, ids=[p[0] for p in CKPT_PROBES])
def test_checkpoint_probes_are_one_line_with_status_2(name, edit, argv, message, trained, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for p in trained.iterdir():
        (run_dir / p.name).write_bytes(p.read_bytes())
    if edit:
        edit(run_dir)
    argv = [a.replace("CKPT", str(run_dir / "ckpt.pt")).replace("DIR", str(run_dir)) for a in argv]
    status, out, err = run(capsys, *argv)
    assert one_line_error(status, err), err
    assert message in err and out == ""


def test_a_tiny_temperature_is_greedy_not_nan(trained, capsys):
    args = ("sample", trained, "--prompt", "the", "--max-new-tokens", 20, "--seed", 0)
    status, tiny, err = run(capsys, *args, "--temperature", 1e-46)
    assert status == 0 and err == ""
    assert tiny == run(capsys, *args, "--temperature", 0)[1]


def test_word_perplexity_past_the_float_range_is_inf(bpe_ckpt, tmp_path, capsys):
    (tmp_path / "words.txt").write_text("qzqxjvk" * 400, encoding="utf-8")  # one word, hundreds of tokens
    status, out, err = run(capsys, "eval", bpe_ckpt, "--data", tmp_path / "words.txt")
    assert status == 0, err
    assert "inf per word" in out


def test_a_special_token_in_a_prompt_gets_command_line_advice(bpe_ckpt, capsys):
    status, out, err = run(capsys, "sample", bpe_ckpt, "--prompt", "a <|endoftext|> b")
    assert one_line_error(status, err) and "<|endoftext|>" in err and "allowed_special" not in err and out == ""


def test_a_full_disk_during_a_checkpoint_save_is_one_line_and_keeps_the_old_one(text_file, tmp_path, capsys,
                                                                               monkeypatch):
    out = tmp_path / "run"
    assert run(capsys, *train_args(text_file, out, "--max-iters", 6))[0] == 0
    real = torch.save

    def half_then_full(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", half_then_full)
    status, _, err = run(capsys, "train", "--out", out, "--resume", "--max-iters", 8)
    monkeypatch.setattr(checkpoint.torch, "save", real)
    assert one_line_error(status, err) and "No space left on device" in err and "step 6" in err
    assert load_checkpoint(out / "ckpt.pt")["step"] == 6
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "ckpt.pt", "config.json", "log.jsonl", "loss.png",
                                                    "run.json"]  # no half-written file left behind


# ----------------------------------------------------------------------------- streaming and Ctrl-C
def test_sample_prints_tokens_as_they_come_and_ctrl_c_keeps_them(trained, capsys, monkeypatch):
    real, printed = cli.generate, []

    def interrupt_at_the_sixth_token(*a, **kw):
        printed.append(capsys.readouterr().out)  # what was on stdout before this token was drawn
        if len(printed) == 6:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(cli, "generate", interrupt_at_the_sixth_token)
    status = cli.main(["sample", str(trained), "--prompt", "the", "--max-new-tokens", "10000", "--seed", "0"])
    rest = capsys.readouterr().out
    assert status == 130 and printed[0] == "the"  # the prompt shows before the first token is drawn
    assert all(len(chunk) == 1 for chunk in printed[1:])  # each token shows before the next is drawn
    assert rest == "\n"  # Ctrl-C ends the line; the five tokens stay printed


def test_streamed_text_equals_generate(trained, capsys):
    from lm_steps.sample import complete
    from lm_steps.tokenizers import CharTokenizer

    status, out, _ = run(capsys, "sample", trained, "--prompt", "pack", "--max-new-tokens", 25, "--seed", 3)
    model, ckpt = gpt_from_checkpoint(trained / "ckpt.pt")
    expected = complete(model, CharTokenizer.from_dict(ckpt["tokenizer"]), "pack", 25,
                        generator=torch.Generator().manual_seed(3))
    assert status == 0 and out == expected + "\n"


# ----------------------------------------------------------------------------- bugs: one line, status 1
@pytest.mark.parametrize("debug", ["", "flag", "env"])
def test_an_unexpected_error_is_a_bug_in_one_line_with_the_traceback_on_request(debug, trained, capsys,
                                                                                 monkeypatch):
    def broken(*a, **kw):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(cli, "evaluate_stream", broken)
    if debug == "env":
        monkeypatch.setenv(cli.DEBUG_ENV, "1")
    else:
        monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    status, _, err = run(capsys, "eval", trained, *(["--debug"] if debug == "flag" else []))
    last = err.splitlines()[-1]
    assert status == 1 and "bug" in last and "TypeError: unsupported operand" in last and "--debug" in last
    assert ("Traceback" in err) == bool(debug)
    if not debug:
        assert err.count("\n") == 1


# ----------------------------------------------------------------------------- results.record(profile=...)
@pytest.mark.parametrize("profile", ["smoek", "../escape", "cpu/../../x", ""])
def test_results_record_checks_the_profile(profile, tmp_path, monkeypatch):
    monkeypatch.setenv("LM_STEPS_RESULTS", str(tmp_path / "results"))
    with pytest.raises(ValueError, match="profile must be one of"):
        results.record("x", profile=profile, loss=1.0)
    assert not (tmp_path / "results").exists() and list(tmp_path.iterdir()) == []
    results.record("x", profile="smoke", loss=1.0)
    assert results.load_results("smoke") == {"x": {"loss": 1.0}}


def test_a_read_only_out_folder_is_one_line(text_file, tmp_path, capsys, monkeypatch):
    def refuse(path, mode="r", *a, **k):
        raise PermissionError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(utils, "open", refuse, raising=False)  # what atomic_write meets on a read-only disk
    status, _, err = run(capsys, *train_args(text_file, tmp_path / "o", "--max-iters", 6))
    assert one_line_error(status, err) and "Read-only file system" in err and "writable" in err


def test_a_broken_bpe_tokenizer_is_one_line(bpe_ckpt, tmp_path, capsys):
    ckpt = load_checkpoint(bpe_ckpt)
    model, _ = gpt_from_checkpoint(bpe_ckpt)
    broken = {**ckpt["tokenizer"], "tokens": 5}
    save_checkpoint(tmp_path / "ckpt.pt", model=model, tokenizer=broken)
    status, out, err = run(capsys, "sample", tmp_path / "ckpt.pt")
    assert one_line_error(status, err) and "tokenizer is broken" in err and out == ""


def test_debug_goes_before_or_after_the_verb(trained, capsys, monkeypatch):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    for argv in (["--debug", "eval", trained, "--stride", 0], ["eval", trained, "--stride", 0, "--debug"]):
        status, _, err = run(capsys, *argv)
        assert status == 2 and "Traceback" in err and err.splitlines()[-1].startswith("lm-steps: error: --stride")
