"""The README's examples, taken from README.md itself so the two cannot drift apart."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import lm_steps
from lm_steps import cli, data

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert match, f"README.md has no section '## {title}'"
    return match.group(1)


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def test_use_the_package_example_runs_and_learns(capsys):
    try:
        data.fetch("tinyshakespeare", progress=False)
    except data.DataUnavailableError as err:
        pytest.skip(f"tinyshakespeare not available offline: {err}")
    (code,) = blocks(section("Use the package"), "python")
    assert len(code.splitlines()) <= 12  # "in ten lines" (plus imports' blank line)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    history, out = namespace["history"], capsys.readouterr().out
    assert history["val_loss"][-1] < history["val_loss"][0] - 0.5  # it learned something
    assert f"-> {history['val_loss'][-1]:.2f}\nROMEO:" in out


def test_the_names_the_readme_imports_are_the_public_api():
    (code,) = blocks(section("Use the package"), "python")
    imported = re.search(r"from lm_steps import (.*)", code).group(1).split(", ")
    assert set(imported) <= set(lm_steps.__all__)
    assert {"GPT", "GPTConfig", "TrainConfig", "train", "generate", "CharTokenizer", "evaluate", "train_bpe",
            "load_checkpoint", "CountingBigram", "NeuralBigram", "MLP", "WaveNet"} <= set(lm_steps.__all__)
    assert all(hasattr(lm_steps, name) for name in lm_steps.__all__)
    assert callable(lm_steps.train) and callable(lm_steps.evaluate)  # the functions, not their modules


def test_import_is_light():
    """``import lm_steps`` loads torch and the model code, not the plotting, tokenizer or notebook stacks."""
    heavy = ("matplotlib", "tiktoken", "datasets", "IPython", "jupyter_client", "transformers")
    code = f"import sys, lm_steps; print([m for m in {heavy!r} if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": ""}, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_command_line_examples_parse():
    lines = [line.split("#")[0].strip() for line in blocks(section("Command line"), "bash")[0].splitlines()]
    commands = [shlex.split(line) for line in lines if line]
    for command in commands:  # torchrun ... -m lm_steps ARGS: the same arguments
        if command[0] == "torchrun":
            command[:] = ["lm-steps"] + command[command.index("lm_steps") + 1:]
    assert {c[1] for c in commands} == {"train", "sample", "chat", "eval", "export"}
    for command in commands:
        assert command[0] == "lm-steps"
        cli._parser().parse_args(command[1:])  # argparse exits (status 2) on an unknown option
