"""Shared fixtures: the real datasets come from LM_STEPS_DATA (CI) or the cache; never the network."""
from __future__ import annotations

import pytest

from lm_steps import data
from lm_steps.tokenizers import CharTokenizer


@pytest.fixture(scope="session")
def names():
    """All 32,033 names (skips with a reason when neither LM_STEPS_DATA nor the cache holds them)."""
    try:
        return data.load_names(progress=False)
    except data.DataUnavailableError as err:
        pytest.skip(f"names.txt not available offline: {err}")


@pytest.fixture(scope="session")
def names_tok(names):
    """The 27-symbol names vocabulary with '.' at id 0."""
    return CharTokenizer.from_text(names, boundary=".")


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny test models run fastest on one torch thread, and do not stall when the other core is busy."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    """About 3,000 characters of pangrams, one per line (the last 10% is the validation split)."""
    path = tmp_path_factory.mktemp("text") / "pangrams.txt"
    path.write_text("".join(f"{PANGRAMS[i % 4]} {i}\n" for i in range(70)), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- helpers (import from conftest)
PANGRAMS = ["the quick brown fox jumps over the lazy dog", "pack my box with five dozen liquor jugs",
            "how vexingly quick daft zebras jump", "sphinx of black quartz, judge my vow"]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``lm_steps.cli.main(argv)`` (each argument made a string): ``(status, stdout, stderr)``. torch's
    thread count is restored afterwards (``main`` sets it for the whole process)."""
    import torch

    from lm_steps import cli

    threads = torch.get_num_threads()
    try:
        status = cli.main([str(a) for a in argv])
    finally:
        torch.set_num_threads(threads)
    out, err = capsys.readouterr()
    return status, out, err

def gen(seed: int = 0) -> "torch.Generator":
    """A CPU ``torch.Generator`` seeded with ``seed``: explicit randomness for every test."""
    import torch

    return torch.Generator().manual_seed(seed)


def tiny_gpt(vocab_size: int = 65, **kw):
    """A 2-layer, 4-head, 32-wide GPT with block size 16 (``kw`` overrides any field), initialised from seed 0."""
    from lm_steps.gpt import GPT, GPTConfig

    cfg = GPTConfig(**{**dict(vocab_size=vocab_size, block_size=16, n_layer=2, n_head=4, n_embd=32), **kw})
    return GPT(cfg, generator=gen(0))
