"""train(): schedule, history, non-finite loss, checkpoints (round trip, atomic, errors), exact resume."""
import math
from dataclasses import replace

import pytest
import torch

from lm_steps.checkpoint import CheckpointError, gpt_from_checkpoint, load_checkpoint, save_checkpoint
from lm_steps.gpt import GPT, GPTConfig
from lm_steps.tokenizers import CharTokenizer
from lm_steps.train import TrainConfig, lr_at, train

V = 20
MODEL = GPTConfig(vocab_size=V, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.1)
CFG = TrainConfig(max_iters=12, batch_size=4, lr=3e-3, min_lr=3e-4, warmup_iters=3, eval_interval=4,
                  eval_iters=2, dtype="float32", seed=0)



@pytest.fixture
def data():
    stream = torch.arange(700) % V  # a learnable stream with some noise
    noise = torch.rand(700, generator=torch.Generator().manual_seed(0)) < 0.1
    stream[noise] = torch.randint(V, (int(noise.sum()),), generator=torch.Generator().manual_seed(1))
    return stream[:500], stream[500:]


def model(cfg=MODEL):
    return GPT(cfg, generator=torch.Generator().manual_seed(0))


def test_lr_schedules():
    cfg = TrainConfig(max_iters=1000, lr=1e-3, min_lr=1e-4, warmup_iters=100)
    assert lr_at(0, cfg) == pytest.approx(1e-3 / 101)
    assert lr_at(99, cfg) == pytest.approx(1e-3 * 100 / 101)
    assert lr_at(100, cfg) == pytest.approx(1e-3)
    assert lr_at(550, cfg) == pytest.approx(5.5e-4)
    assert lr_at(1000, cfg) == lr_at(5000, cfg) == pytest.approx(1e-4)
    lrs = [lr_at(s, cfg) for s in range(100, 1000)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    inv = replace(cfg, schedule="inverse_sqrt")
    assert lr_at(99, inv) == pytest.approx(1e-3 * 100 / 101)
    assert lr_at(399, inv) == pytest.approx(1e-3 * math.sqrt(100 / 400))
    assert lr_at(500, replace(cfg, schedule="constant")) == 1e-3
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="step")
    with pytest.raises(ValueError, match="min_lr"):
        TrainConfig(lr=1e-4, min_lr=1e-3)


def test_train_history_and_weight_decay_groups(data):
    m = model()
    hist = train(m, data, CFG)
    assert hist["step"] == list(range(12)) and len(hist["loss"]) == 12
    assert hist["val_step"] == [0, 4, 8, 12] and len(hist["val_loss"]) == 4
    assert hist["lr"][2] == pytest.approx(lr_at(2, CFG))
    assert hist["val_loss"][-1] < hist["val_loss"][0]
    # a custom batch function works the same way; each accumulation micro-step draws a batch
    calls = []

    def batch(split, n, g, device):
        calls.append((split, n))
        x = torch.randint(V, (n, 8), generator=g)
        return x, x

    train(model(), batch, replace(CFG, max_iters=2, warmup_iters=0, grad_accum=2, eval_iters=1, label_smoothing=0.1))
    assert calls.count(("train", 4)) == 2 * 2 + 2 and calls.count(("val", 4)) == 2  # + 2 evaluations


def test_non_finite_loss_names_the_step(data):
    m = model()

    def poison(step, net):
        if step == 2:
            with torch.no_grad():
                net.lm_head.weight.fill_(float("nan"))

    with pytest.raises(FloatingPointError, match="step 3"):
        train(m, data, CFG, callback=poison)


def test_checkpoint_round_trip(tmp_path, data):
    m = model()
    tok = CharTokenizer(tuple("abcdefghijklmnopqrst"))
    path = tmp_path / "ckpt.pt"
    hist = train(m, data, replace(CFG, max_iters=4), checkpoint_path=path, tokenizer=tok.to_dict())
    raw = torch.load(path, weights_only=True)
    assert raw["step"] == 4 and raw["history"]["loss"] == hist["loss"]
    assert raw["model_config"] == MODEL.__dict__ and raw["train_config"]["max_iters"] == 4
    assert set(raw["rng"]) >= {"batch", "torch"}
    loaded, ckpt = gpt_from_checkpoint(path)
    assert CharTokenizer.from_dict(ckpt["tokenizer"]) == tok
    x = torch.randint(V, (2, 8))
    torch.testing.assert_close(loaded.eval()(x)[0], m.eval()(x)[0], atol=0, rtol=0)


def test_checkpoint_errors(tmp_path):
    m = model()
    path = save_checkpoint(tmp_path / "good.pt", model=m)
    blob = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(tmp_path / "cut.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
    bigger = model(replace(MODEL, n_embd=32))
    with pytest.raises(CheckpointError, match="n_embd: checkpoint 16 vs model 32"):
        train(bigger, lambda *a: None, CFG, resume=path)


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    m = model()
    path = save_checkpoint(tmp_path / "c.pt", model=m, step=1)
    before = path.read_bytes()

    def crash(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model=m, step=2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1


def test_resume_continues_exactly(tmp_path, data):
    """Interrupt a run after step 6 (checkpoints every 4), resume: the same losses, step for step."""
    cfg = replace(CFG, checkpoint_every=4)
    full = train(model(), data, cfg)

    def interrupt(step, net):
        if step == 6:
            raise KeyboardInterrupt

    path = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train(model(), data, cfg, checkpoint_path=path, callback=interrupt)
    assert load_checkpoint(path)["step"] == 4
    fresh = model(replace(MODEL))
    with torch.no_grad():  # make sure the weights really come from the checkpoint
        for p in fresh.parameters():
            p.zero_()
    resumed = train(fresh, data, cfg, checkpoint_path=path, resume=path)
    assert resumed["step"] == full["step"]
    torch.testing.assert_close(resumed["loss"], full["loss"], atol=0, rtol=0)
    torch.testing.assert_close(resumed["val_loss"], full["val_loss"], atol=0, rtol=0)


def test_best_checkpoint_holds_the_lowest_validation_estimate(data, tmp_path):
    m = model()
    best = tmp_path / "best.pt"
    weights = {0: {k: v.clone() for k, v in m.state_dict().items()}}  # weights seen by the evaluation at each step

    def snapshot(step, net):
        weights[step + 1] = {k: v.clone() for k, v in net.state_dict().items()}

    hist = train(m, data, replace(CFG, max_iters=16), best_checkpoint_path=best, callback=snapshot,
                 tokenizer={"type": "none"})
    i = min(range(len(hist["val_loss"])), key=hist["val_loss"].__getitem__)
    ckpt = load_checkpoint(best)
    assert ckpt["step"] == hist["val_step"][i] and ckpt["history"]["val_loss"][-1] == min(hist["val_loss"])
    restored, _ = gpt_from_checkpoint(best)
    for name, value in restored.state_dict().items():
        torch.testing.assert_close(value, weights[ckpt["step"]][name], atol=0, rtol=0)


def test_model_from_checkpoint_is_in_eval_mode(tmp_path):
    m = model(replace(MODEL, dropout=0.5))
    path = save_checkpoint(tmp_path / "m.pt", model=m)
    restored, _ = gpt_from_checkpoint(path)
    assert not restored.training
    x = torch.arange(8)[None] % V
    m.eval()
    torch.testing.assert_close(restored(x)[0], m(x)[0], atol=0, rtol=0)


def _layer_with_grads(seed):
    g = torch.Generator().manual_seed(seed)
    layer = torch.nn.Linear(4, 8)  # a matrix (decays) and a bias (does not)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return layer, g


def test_adamw_fused_where_available_gives_the_default_update():
    from lm_steps.train import adamw

    a, g = _layer_with_grads(0)
    b = [torch.nn.Parameter(p.detach().clone()) for p in a.parameters()]
    opt_a = adamw(a, lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1)
    opt_b = torch.optim.AdamW([{"params": b[:1], "weight_decay": 0.1}, {"params": b[1:], "weight_decay": 0.0}],
                              lr=1e-2, betas=(0.9, 0.99), foreach=False)
    torch_version = tuple(int(v) for v in torch.__version__.split(".")[:2])
    assert opt_a.defaults["fused"] is (True if torch_version >= (2, 4) else None)
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=g) for p in b]
        for pa, pb, gr in zip(a.parameters(), b, grads):
            pa.grad, pb.grad = gr.clone(), gr.clone()
        opt_a.step()
        opt_b.step()
    for pa, pb in zip(a.parameters(), b):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)
    assert not torch.equal(a.weight, _layer_with_grads(0)[0].weight)  # the steps moved the weights


def test_adamw_falls_back_where_torch_has_no_fused_kernel(monkeypatch):
    from lm_steps.train import adamw

    real = torch.optim.AdamW

    def no_fused(params, fused=None, **kw):
        if fused:
            raise RuntimeError("fused=True requires all the params to be on supported devices")
        return real(params, **kw)

    monkeypatch.setattr(torch.optim, "AdamW", no_fused)
    opt = adamw(_layer_with_grads(0)[0], lr=1e-3)
    assert isinstance(opt, real) and not opt.defaults["fused"]


def test_fit_adamw_decays_matrices_only():
    """fit(optimizer="adamw") builds its optimizer with adamw(): BatchNorm gains/shifts and biases never decay."""
    from lm_steps.fixed_context import LastPosition
    from lm_steps.mlp import MLP, MLPConfig
    from lm_steps.train import fit

    X = torch.randint(0, 27, (64, 3), generator=torch.Generator().manual_seed(1))
    Y = torch.randint(0, 27, (64,), generator=torch.Generator().manual_seed(2))
    after = {}
    for wd in (0.0, 0.5):
        m = MLP(MLPConfig(batchnorm=True), generator=torch.Generator().manual_seed(0))
        fit(LastPosition(m), X, Y, steps=1, lr=0.1, optimizer="adamw", weight_decay=wd)
        after[wd] = dict(m.named_parameters())
    for name, p in after[0.0].items():
        if p.dim() < 2:  # BatchNorm gamma/beta, the output bias: the same step with or without decay
            torch.testing.assert_close(after[0.5][name], p, atol=0, rtol=0, msg=name)
        else:  # matrices shrink by lr * weight_decay = 5%
            assert not torch.equal(after[0.5][name], p), name
