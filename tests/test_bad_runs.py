"""Bad runs and the files they leave: nothing lost, nothing half-written, every error says what to do.

Killed writes, empty or foreign checkpoints, broken downloads and file modes (issue 9 §7);
non-finite steps (§2); resumes that cannot continue exactly (§3); config values that make no
sense (§4); token ids a model cannot read (§6).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from lm_steps import data, results
from lm_steps.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lm_steps.data import DataFile
from lm_steps.gpt import GPT, GPTConfig
from lm_steps.utils import atomic_write

REPO = Path(__file__).resolve().parent.parent
TINY = GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=16)


def tiny_gpt(cfg: GPTConfig = TINY) -> GPT:
    return GPT(cfg, generator=torch.Generator().manual_seed(0))


def run_killed(code: str) -> None:
    """Run ``code`` in a fresh Python that SIGKILLs itself where the code says ``die()``."""
    prelude = "import os, signal\ndef die():\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], env=env, capture_output=True,
                          timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()  # it really was killed mid-write


# ----------------------------------------------------------------------------- §7 files left behind
def test_empty_checkpoint_has_our_own_message(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty \(0 bytes\)"):
        load_checkpoint(tmp_path / "empty.pt")


def test_code_running_pickle_is_refused_without_torchs_advice(tmp_path):
    torch.save({"format": "lm_steps-checkpoint-1", "path": Path("/")}, tmp_path / "pickled.pt")  # a class: pickled
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "pickled.pt")
    msg = str(err.value)
    assert "pickled Python objects" in msg and "weights_only" not in msg and "will likely succeed" not in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__  # torch's hint is not chained either


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and advisory locks are POSIX")
def test_killed_save_leaves_a_temporary_file_the_next_save_removes(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, model=tiny_gpt(), step=1)
    run_killed(f"""
        import torch
        from lm_steps.checkpoint import save_checkpoint
        from lm_steps.gpt import GPT, GPTConfig
        def half_then_die(obj, f, *a, **k):
            f.write(b"half a checkpoint"); f.flush(); die()
        torch.save = half_then_die
        save_checkpoint({str(path)!r}, model=GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=16)), step=2)
    """)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "ckpt.pt"]
    assert len(leftovers) == 1 and leftovers[0].endswith(".tmp")  # what the kill left
    assert load_checkpoint(path)["step"] == 1  # the good checkpoint is untouched
    save_checkpoint(path, model=tiny_gpt(), step=3)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"] and load_checkpoint(path)["step"] == 3


def test_a_live_write_is_not_taken_for_a_stale_one(tmp_path):
    path = tmp_path / "x.json"
    with atomic_write(path, "w") as outer:
        outer.write("outer")
        with atomic_write(path, "w") as inner:  # a second writer of the same file, while the first is alive
            inner.write("inner")
        assert Path(outer.name).exists()
    assert path.read_text() == "outer" and [p.name for p in tmp_path.iterdir()] == ["x.json"]


@pytest.fixture
def fake_dataset(tmp_path, monkeypatch):
    content = b"hello world\n" * 1000
    upstream = tmp_path / "upstream" / "thing.txt"
    upstream.parent.mkdir(parents=True)
    upstream.write_bytes(content)
    spec = DataFile("sub/thing.txt", upstream.as_uri(), len(content), hashlib.sha256(content).hexdigest())
    monkeypatch.setitem(data.DATASETS, "fake", {"all": spec})
    monkeypatch.delenv("LM_STEPS_DATA", raising=False)
    return spec


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and advisory locks are POSIX")
def test_killed_download_leaves_a_file_the_next_fetch_removes(tmp_path, fake_dataset):
    cache = tmp_path / "cache"
    run_killed(f"""
        import urllib.request
        from lm_steps import data
        data.DATASETS["fake"] = {{"all": data.DataFile(*{tuple(vars(fake_dataset).values())!r})}}
        real_open = urllib.request.urlopen
        class Dying:
            def __init__(self, response):
                self.response, self.calls = response, 0
            def read(self, n):
                self.calls += 1
                if self.calls > 1:
                    die()
                return self.response.read(10)
            def __enter__(self):
                return self
            def __exit__(self, *exc):
                pass
        urllib.request.urlopen = lambda url, timeout: Dying(real_open(url))
        data.fetch("fake", cache_dir={str(cache)!r}, progress=False)
    """)
    assert len(list((cache / "sub").iterdir())) == 1  # the killed download's partial file
    path = data.fetch("fake", cache_dir=cache, progress=False)["all"]
    assert [p.name for p in (cache / "sub").iterdir()] == ["thing.txt"] and data.sha256_file(path) == fake_dataset.sha256


def test_connection_reset_mid_download_is_data_unavailable(tmp_path, fake_dataset, monkeypatch):
    class Reset:
        def read(self, n):
            raise ConnectionResetError(104, "Connection reset by peer")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: Reset())
    cache = tmp_path / "cache"
    with pytest.raises(data.DataUnavailableError) as err:
        data.fetch("fake", cache_dir=cache, progress=False)
    assert fake_dataset.url in str(err.value) and "LM_STEPS_DATA" in str(err.value)
    assert "Connection reset" in str(err.value)
    assert list((cache / "sub").iterdir()) == []


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_written_files_respect_the_umask(tmp_path, fake_dataset, monkeypatch, umask_022):
    ckpt = save_checkpoint(tmp_path / "c.pt", model=tiny_gpt())
    fetched = data.fetch("fake", cache_dir=tmp_path / "cache", progress=False)["all"]
    monkeypatch.setenv("LM_STEPS_RESULTS", str(tmp_path / "results"))
    results.record("x", profile="smoke", loss=1.0)
    for path in (ckpt, fetched, results.results_path("smoke")):
        assert path.stat().st_mode & 0o777 == 0o644, path
