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
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from lm_steps import data, results
from lm_steps.bigram import CountingBigram, NeuralBigram
from lm_steps.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lm_steps.config import Recipe, TrainConfig, lr_at
from lm_steps.data import DataFile
from lm_steps.fixed_context import LastPosition
from lm_steps.gpt import GPT, GPTConfig
from lm_steps.mlp import MLP, MLPConfig
from lm_steps.runs import train
from lm_steps.training import adamw, fit
from lm_steps.utils import atomic_write
from lm_steps.wavenet import CausalConvWaveNet, WaveNet, WaveNetConfig

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


# ----------------------------------------------------------------------------- §2 non-finite steps
def stream(n: int = 600, vocab: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    s = torch.randint(vocab, (n,), generator=torch.Generator().manual_seed(0))
    return s[: n * 5 // 6], s[n * 5 // 6:]


CFG = TrainConfig(max_iters=10, batch_size=4, lr=3e-3, min_lr=3e-4, warmup_iters=2, eval_interval=5, eval_iters=1,
                  dtype="float32", seed=0)


def poison_gradient_at(param: torch.nn.Parameter, at: int) -> None:
    """Make ``param``'s gradient NaN on its ``at``-th backward pass (0-based); the loss stays finite."""
    calls = {"n": 0}

    def hook(grad):
        calls["n"] += 1
        return grad * float("nan") if calls["n"] == at + 1 else grad

    param.register_hook(hook)


def test_nan_gradient_stops_train_before_the_update_and_the_checkpoint(tmp_path):
    m = tiny_gpt()
    poison_gradient_at(m.transformer.h[0].mlp.c_fc.weight, 5)
    path = tmp_path / "ckpt.pt"
    with pytest.raises(FloatingPointError) as err:
        train(m, stream(), replace(CFG, checkpoint_every=1), checkpoint_path=path)
    msg = str(err.value)
    assert "step 5" in msg and "gradient" in msg and "'transformer.h.0.mlp.c_fc.weight'" in msg
    assert all(torch.isfinite(p).all() for p in m.parameters())  # the bad step never reached the weights
    ckpt = load_checkpoint(path)
    assert ckpt["step"] == 5 and all(torch.isfinite(t).all() for t in ckpt["model"].values())
    for name, t in m.state_dict().items():  # the last good checkpoint holds exactly the weights in memory
        torch.testing.assert_close(ckpt["model"][name], t, atol=0, rtol=0)


def test_a_bad_step_between_two_checks_never_reaches_the_weights():
    # checked once per evaluation (every 5 steps) only, yet no update from step 2 on reaches the weights:
    # the model ends exactly where a run of two steps ends
    m = tiny_gpt()
    poison_gradient_at(m.transformer.h[0].attn.c_attn.weight, 2)
    with pytest.raises(FloatingPointError, match=r"step 2: .*gradient .*'transformer.h.0.attn.c_attn.weight'"):
        train(m, stream(), CFG)
    two = tiny_gpt()
    train(two, stream(), replace(CFG, max_iters=2))  # the same first two steps (warmup_iters=2)
    for name, t in two.state_dict().items():
        torch.testing.assert_close(m.state_dict()[name], t, atol=0, rtol=0, msg=name)


def test_an_optimizer_without_found_inf_is_checked_at_every_step():
    from lm_steps.training import StepLog

    m = tiny_gpt()
    opt = torch.optim.SGD(m.parameters(), lr=0.1, foreach=False)  # not fused: no found_inf to skip with
    log = StepLog(m, opt)
    x = torch.zeros(1, 8, dtype=torch.long)
    _, loss = m(x, x)
    loss.backward()
    log.step(0, 0.1, loss)  # finite: nothing happens
    with pytest.raises(FloatingPointError, match="step 1: the loss is nan"):
        log.step(1, 0.1, loss * float("nan"))


def test_nan_loss_stops_train_and_names_the_loss():
    m = tiny_gpt()
    calls = {"n": 0}

    def nan_logits(module, args, out):
        calls["n"] += 1
        return out * float("nan") if calls["n"] == 4 else out  # the 4th forward pass: step 3 (no evaluation)

    m.lm_head.register_forward_hook(nan_logits)
    with pytest.raises(FloatingPointError, match=r"step 3: the loss is nan; the weights were not updated"):
        train(m, stream(), replace(CFG, eval_iters=0))


def test_nan_gradient_stops_fit_before_the_update():
    X = torch.randint(0, 27, (64, 3), generator=torch.Generator().manual_seed(1))
    Y = torch.randint(0, 27, (64,), generator=torch.Generator().manual_seed(2))
    m = MLP(MLPConfig(), generator=torch.Generator().manual_seed(0))
    poison_gradient_at(m.net[0].weight, 3)
    with pytest.raises(FloatingPointError) as err:
        fit(LastPosition(m), X, Y, steps=10, lr=0.1, batch_size=16, generator=torch.Generator().manual_seed(3))
    assert "step 3" in str(err.value) and "gradient" in str(err.value) and "'model.net.layers.0.weight'" in str(err.value)
    assert all(torch.isfinite(p).all() for p in m.parameters())


def test_fit_names_a_bad_batch_size_not_the_learning_rate():
    X, Y = torch.zeros(8, 3, dtype=torch.long), torch.zeros(8, dtype=torch.long)
    m = LastPosition(MLP(MLPConfig(), generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        fit(m, X, Y, steps=3, lr=0.1, batch_size=0)
    with pytest.raises(ValueError, match="as many targets as examples"):
        fit(m, X[:0], Y[:0], steps=3, lr=0.1)


def test_fit_blames_the_data_not_the_learning_rate_for_a_bad_first_loss():
    X, Y = torch.zeros(8, 3, dtype=torch.long), torch.zeros(8, dtype=torch.long)
    m = MLP(MLPConfig(), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        m.wte.weight[0] = float("inf")
    with pytest.raises(FloatingPointError) as err:
        fit(LastPosition(m), X, Y, steps=3, lr=0.1)
    assert "step 0" in str(err.value) and "not the learning rate" in str(err.value)


# ----------------------------------------------------------------------------- §3 resume refuses what it cannot continue
def interrupted_run(tmp_path, at: int, **kw) -> Path:
    """Train with checkpoints every step, interrupted in step ``at`` (the checkpoint is at step ``at``)."""
    def interrupt(step, net):
        if step == at:
            raise KeyboardInterrupt

    path = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train(tiny_gpt(), stream(), replace(CFG, checkpoint_every=1), checkpoint_path=path, callback=interrupt, **kw)
    return path


def test_resume_refuses_max_iters_below_the_checkpoints_step(tmp_path):
    path = interrupted_run(tmp_path, 7)
    m = tiny_gpt()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"at step 7, past max_iters=6: set max_iters >= 7"):
        train(m, stream(), replace(CFG, checkpoint_every=1, max_iters=6), resume=path, accept_changes=("max_iters",))
    for k, v in m.state_dict().items():  # a refused resume loads nothing
        torch.testing.assert_close(v, before[k], atol=0, rtol=0)


def test_resume_refuses_a_different_config_unless_told(tmp_path):
    path = interrupted_run(tmp_path, 3)
    changed = replace(CFG, checkpoint_every=1, lr=1e-3, batch_size=8, eval_interval=2)  # eval_interval: harmless
    with pytest.raises(CheckpointError) as err:
        train(tiny_gpt(), stream(), changed, resume=path)
    msg = str(err.value)
    assert "batch_size (checkpoint 4, now 8)" in msg and "lr (checkpoint 0.003, now 0.001)" in msg
    assert "eval_interval" not in msg and "accept_changes=('batch_size', 'lr')" in msg
    hist = train(tiny_gpt(), stream(), changed, resume=path, accept_changes=("batch_size", "lr"))
    assert hist["step"] == list(range(10)) and hist["lr"][4] == pytest.approx(lr_at(4, changed))
    with pytest.raises(ValueError, match="no TrainConfig field: learning_rate"):
        train(tiny_gpt(), stream(), changed, resume=path, accept_changes=("learning_rate",))


def test_resume_keeps_the_checkpoints_tokenizer_and_refuses_another(tmp_path):
    chars = {"type": "char", "chars": list("abcdefghijklmnopqrst")}  # 20 characters for the 20-token model
    path = interrupted_run(tmp_path, 3, tokenizer=chars)
    train(tiny_gpt(), stream(), replace(CFG, checkpoint_every=1), checkpoint_path=path, resume=path)  # no tokenizer=
    assert load_checkpoint(path)["tokenizer"] == chars  # kept, not dropped
    other = {"type": "char", "chars": list("tsrqponmlkjihgfedcba")}
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"different tokenizer .*Leave tokenizer out .*without resume"):
        train(tiny_gpt(), stream(), replace(CFG, checkpoint_every=1), checkpoint_path=path, resume=path,
              tokenizer=other)
    assert path.read_bytes() == before  # refused before anything was written
    train(tiny_gpt(), stream(), replace(CFG, checkpoint_every=1), checkpoint_path=path, resume=path,
          tokenizer={"type": "char", "chars": tuple(chars["chars"])})  # the same one, as a tuple: fine


def test_resume_from_a_plain_save_checkpoint_file_is_a_clear_error(tmp_path):
    m = tiny_gpt()
    path = save_checkpoint(tmp_path / "plain.pt", model=m, optimizer=adamw(m, lr=1e-3), train_config=CFG, step=3)
    with pytest.raises(CheckpointError, match=r"written by save_checkpoint\(\), not by train\(checkpoint_path=...\)"):
        train(tiny_gpt(), stream(), CFG, resume=path)


def test_resume_from_the_best_checkpoint_records_no_evaluation_twice(tmp_path):
    full = train(tiny_gpt(), stream(), CFG)
    best = tmp_path / "best.pt"

    def interrupt(step, net):
        if step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_gpt(), stream(), CFG, best_checkpoint_path=best, callback=interrupt)
    assert load_checkpoint(best)["step"] == 5  # the evaluation at step 5 beat the one at step 0
    resumed = train(tiny_gpt(), stream(), CFG, resume=best)
    assert resumed["val_step"] == full["val_step"] == [0, 5, 10]
    torch.testing.assert_close(resumed["val_loss"], full["val_loss"], atol=0, rtol=0)
    torch.testing.assert_close(resumed["loss"], full["loss"], atol=0, rtol=0)


# ----------------------------------------------------------------------------- §4 every config field validated
@pytest.mark.parametrize("cls, kw, message", [
    (TrainConfig, dict(grad_clip=-1.0), "grad_clip must be >= 0"),
    (TrainConfig, dict(grad_clip=float("nan")), "grad_clip must be >= 0"),
    (TrainConfig, dict(weight_decay=-0.1), "weight_decay must be >= 0"),
    (TrainConfig, dict(lr_decay_iters=-5), "lr_decay_iters must be an integer >= 0"),
    (TrainConfig, dict(lr=0.0, min_lr=0.0), "lr must be a positive number"),
    (TrainConfig, dict(lr=float("nan")), "lr must be a positive number"),
    (TrainConfig, dict(beta2=1.0), "beta2 must be in"),
    (TrainConfig, dict(max_iters=1e4), "max_iters must be an integer >= 0, got 10000.0"),
    (TrainConfig, dict(batch_size=0), "batch_size must be an integer >= 1"),
    (TrainConfig, dict(seed=-1), "seed must be an integer >= 0"),
    (Recipe, dict(steps=10, batch_size=4, optimizer="lion"), "optimizer must be one of"),
    (Recipe, dict(steps=10, batch_size=4, lr=-0.1), "lr must be a positive number"),
    (Recipe, dict(steps=10, batch_size=4, warmup=-1), "warmup must be an integer >= 0"),
    (Recipe, dict(steps=10, batch_size=4, warmup=2), "applies to the cosine schedule only"),
    (Recipe, dict(steps=10.5, batch_size=4), "steps must be an integer"),
    (MLPConfig, dict(n_embd=2.5), "n_embd must be an integer >= 1"),
    (MLPConfig, dict(batchnorm="yes"), "batchnorm must be True or False"),
    (WaveNetConfig, dict(n_hidden=0), "n_hidden must be an integer >= 1"),
    (WaveNetConfig, dict(vocab_size=27.0), "vocab_size must be an integer >= 1"),
])
def test_config_values_that_make_no_sense_are_refused(cls, kw, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        cls(**kw)


def test_warmup_past_the_end_warns():
    with pytest.warns(UserWarning, match="warmup_iters=200 > max_iters=100: the learning rate never reaches"):
        TrainConfig(max_iters=100, warmup_iters=200)
    with pytest.warns(UserWarning, match="warmup=20 > steps=10"):
        Recipe(steps=10, batch_size=4, schedule="cosine", warmup=20)


def test_fit_refuses_negative_weight_decay():
    X, Y = torch.zeros(8, 3, dtype=torch.long), torch.zeros(8, dtype=torch.long)
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        fit(LastPosition(MLP(MLPConfig())), X, Y, steps=1, lr=0.1, weight_decay=-1.0)


# ----------------------------------------------------------------------------- §6 token ids a model cannot read
def every_model():
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    wavenet = WaveNet(WaveNetConfig(n_embd=4, n_hidden=8), generator=g())
    mlp = MLP(MLPConfig(n_embd=4, n_hidden=8), generator=g())
    return {
        "CountingBigram": CountingBigram(torch.ones(27, 27)),
        "NeuralBigram": NeuralBigram(27, generator=g()),
        "MLP": mlp,
        "LastPosition": LastPosition(mlp),
        "WaveNet": wavenet,
        "CausalConvWaveNet": CausalConvWaveNet(wavenet),
        "GPT": tiny_gpt(replace(TINY, vocab_size=27)),
    }


@pytest.mark.parametrize("name", list(every_model()))
@pytest.mark.parametrize("idx, message", [
    (torch.tensor([[1, 2, 27]]), r"token id 27 is outside the vocabulary: ids must be in \[0, 27\) \(vocab_size=27\)"),
    (torch.tensor([[3, -1, 2]]), r"token id -1 is outside the vocabulary: ids must be in \[0, 27\)"),
    (torch.tensor([[1.0, 2.0]]), r"idx must hold integer token ids \(torch.long\), got dtype torch.float32"),
    (torch.tensor([1, 2, 3]), r"idx must be \(B, T\).*got shape \(3,\); add a batch dimension with idx\[None\]"),
])
def test_every_model_names_a_bad_token_id(name, idx, message):
    model = every_model()[name]
    with pytest.raises(ValueError, match=message):
        model(idx)
    logits, _ = model(torch.tensor([[0, 5, 26]]))  # the edges of the vocabulary are fine
    assert logits.shape[-1] == 27 and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", list(every_model()))
@pytest.mark.parametrize("targets, message", [
    (torch.tensor([[1, 2, 27]]), r"target id 27 is outside the vocabulary: targets must be in \[0, 27\)"),
    (torch.tensor([[1, 2, -5]]), r"target id -5 is outside the vocabulary.* or -1 for a position to ignore"),
    (torch.tensor([[1.0, 2.0, 3.0]]), r"targets must hold integer token ids \(torch.long\), got dtype torch.float32"),
])
def test_every_model_names_a_bad_target(name, targets, message):
    model = every_model()[name]
    idx, good = torch.tensor([[0, 5, 26]]), torch.tensor([[-1, 0, 26]])  # the ignore index and the edges are fine
    if name == "LastPosition":  # predicts the last position only: (B,) targets
        targets, good = targets[:, -1], good[:, -1]
    with pytest.raises(ValueError, match=message):
        model(idx, targets)
    _, loss = model(idx, good)
    assert torch.isfinite(loss)


# ----------------------------------------------------------------------------- a second round of probes: data,
# training entry points, results. Each row: (what is tried, the call, the error type, a pattern of its message).
STREAM = torch.arange(40) % 20
X3, Y3 = torch.zeros(8, 3, dtype=torch.long), torch.ones(8, dtype=torch.long)


def _chars():
    from lm_steps.tokenizers import CharTokenizer

    return CharTokenizer.from_text("abc", boundary=".")


def _fit(**kw):
    return fit(MLP(MLPConfig(vocab_size=20, n_embd=4, n_hidden=8), generator=torch.Generator().manual_seed(0)),
               X3, Y3, steps=3, **kw)


SHORT = TrainConfig(max_iters=2, batch_size=2, eval_interval=1, eval_iters=1, warmup_iters=0, dtype="float32")
ENTRY = [
    ("get_batch batch_size 0", lambda: data.get_batch(STREAM, 0, 4), ValueError,
     "batch_size must be a positive integer, got 0"),
    ("get_batch block_size 0", lambda: data.get_batch(STREAM, 2, 0), ValueError,
     "block_size must be a positive integer, got 0"),
    ("get_batch block_size float", lambda: data.get_batch(STREAM, 2, 4.0), ValueError,
     "block_size must be a positive integer, got 4.0"),
    ("get_batch float data", lambda: data.get_batch(STREAM.float(), 2, 4), ValueError,
     r"data must hold integer token ids \(torch.long\), got dtype torch.float32"),
    ("get_batch from a list", lambda: data.get_batch(list(range(40)), 2, 4), TypeError,
     r"got list; convert it with torch.tensor"),
    ("make_examples of one string", lambda: data.make_examples("abc", 3, _chars()), TypeError,
     r"words must be a list of words, got one string 'abc'"),
    ("make_examples boundary of two symbols", lambda: data.make_examples(["ab"], 3, _chars(), boundary="ab"),
     ValueError,
     r"boundary must be one symbol of the tokenizer, got 'ab' \(2 tokens\)"),
    ("make_examples empty boundary", lambda: data.make_examples(["ab"], 3, _chars(), boundary=""), ValueError,
     r"got '' \(0 tokens\)"),
    ("fit lr nan", lambda: _fit(lr=float("nan")), ValueError, r"lr must be a finite number >= 0 .*got nan at step 0"),
    ("fit lr negative", lambda: _fit(lr=-0.1), ValueError, "got -0.1 at step 0"),
    ("fit lr a string", lambda: _fit(lr="0.1"), ValueError, "got '0.1' at step 0"),
    ("fit lr schedule turning nan", lambda: _fit(lr=lambda s: 0.1 if s < 2 else float("nan")), ValueError,
     "got nan at step 2"),
    ("fit target outside the vocabulary", lambda: fit(MLP(MLPConfig(vocab_size=20, n_embd=4, n_hidden=8)), X3,
                                                      torch.full((8,), 20), steps=1, lr=0.1), ValueError,
     r"target id 20 is outside the vocabulary: targets must be in \[0, 20\)"),
    ("train with a dict for cfg", lambda: train(tiny_gpt(), (STREAM, STREAM), {"max_iters": 2}), TypeError,
     r"cfg must be a TrainConfig, got dict"),
    ("train with a tokenizer object", lambda: train(tiny_gpt(), (STREAM, STREAM), SHORT, tokenizer=_chars()), TypeError,
     r"tokenizer must be a plain dict .* pass tokenizer.to_dict\(\)"),
    ("train with a tokenizer larger than the model",  # 21 characters for a 20-token model
     lambda: train(tiny_gpt(), (STREAM, STREAM), SHORT, tokenizer={"type": "char", "chars": list("abcdefghijklmnopqrstu")}),
     ValueError, r"the tokenizer has 21 tokens but the model reads only vocab_size=20"),
    ("MLP from a dict", lambda: MLP({"vocab_size": 20}), TypeError, "cfg must be an MLPConfig, got dict"),
]


@pytest.mark.parametrize("call, error, match", [c[1:] for c in ENTRY], ids=[c[0] for c in ENTRY])
def test_entry_points_refuse_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_fit_with_a_bad_lr_leaves_the_weights_alone():
    model = MLP(MLPConfig(vocab_size=20, n_embd=4, n_hidden=8), generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="got nan at step 1"):
        fit(model, X3, Y3, steps=3, lr=lambda s: 0.1 if s < 1 else float("nan"))
    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # step 0 ran
    assert all(torch.isfinite(v).all() for v in after.values())  # step 1 never reached the weights


def test_get_batch_at_the_shortest_stream():
    x, y = data.get_batch(torch.arange(9), 3, 8, generator=torch.Generator().manual_seed(0))
    assert x.tolist() == [list(range(8))] * 3 and y.tolist() == [list(range(1, 9))] * 3


@pytest.mark.parametrize("metrics, message", [
    (dict(loss=float("nan")), r"metric loss=nan cannot be recorded"),
    (dict(loss=torch.tensor(1.5)), r"metric loss=tensor\(1.5000\) cannot be recorded.*\.item\(\)"),
])
def test_results_refuse_what_json_cannot_hold_and_keep_the_log(tmp_path, monkeypatch, metrics, message):
    monkeypatch.setenv("LM_STEPS_RESULTS", str(tmp_path))
    results.record("kept", loss=1.0)
    before = results.results_path().read_text()
    with pytest.raises(ValueError, match=message):
        results.record("bad", **metrics)
    assert results.results_path().read_text() == before and results.load_results() == {"kept": {"loss": 1.0}}


def test_a_corrupt_results_log_is_named_and_left_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv("LM_STEPS_RESULTS", str(tmp_path))
    results.results_path().write_text('{"kept": {"loss": 1.0}')  # cut short
    for call in (results.load_results, lambda: results.record("new", loss=2.0)):
        with pytest.raises(ValueError, match=r"results-.*\.json is not valid JSON .*fix or delete it"):
            call()
    assert results.results_path().read_text() == '{"kept": {"loss": 1.0}'


def test_save_checkpoint_refuses_a_tokenizer_object_it_could_not_load_back(tmp_path):
    with pytest.raises(TypeError, match=r"tokenizer must be a plain dict .*got CharTokenizer"):
        save_checkpoint(tmp_path / "c.pt", model=tiny_gpt(), tokenizer=_chars())
    assert not list(tmp_path.iterdir())  # nothing written
    save_checkpoint(tmp_path / "c.pt", model=tiny_gpt(), tokenizer=_chars().to_dict())
    assert load_checkpoint(tmp_path / "c.pt")["tokenizer"] == _chars().to_dict()


def test_fit_takes_a_schedule_of_one_element_tensors():
    lrs = torch.logspace(-3, -1, 3)  # notebook 03's learning-rate range test steps through such a tensor
    history = _fit(lr=lambda s: lrs[s])
    assert history["lr"] == [lrs[0], lrs[1], lrs[2]]
    with pytest.raises(ValueError, match=r"got tensor\(nan\) at step 0"):
        _fit(lr=lambda s: torch.tensor(float("nan")))


@pytest.mark.parametrize("counts, message", [
    (-torch.ones(3, 3), "counts must be finite and >= 0 .*from -1.0 to -1.0"),
    (torch.full((3, 3), float("nan")), "counts must be finite and >= 0"),
])
def test_counting_bigram_refuses_counts_that_are_no_counts(counts, message):
    with pytest.raises(ValueError, match=message):
        CountingBigram(counts)


def test_train_by_hand_refuses_a_nan_learning_rate_before_touching_the_weights():
    from lm_steps.backprop import train_by_hand

    model = MLP(MLPConfig(vocab_size=20, n_embd=4, n_hidden=8), generator=torch.Generator().manual_seed(0))
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="lr must be a finite number >= 0 .*got nan at step 0"):
        train_by_hand(model, X3, Y3, steps=2, lr=float("nan"), batch_size=4)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
