"""train(): schedule, history, non-finite loss, checkpoints (round trip, atomic, errors), exact resume."""
import math
from dataclasses import replace

import pytest
import torch

from lm_steps.checkpoint import CheckpointError, gpt_from_checkpoint, load_checkpoint, save_checkpoint
from lm_steps.gpt import GPT, GPTConfig
from lm_steps.tokenizers import CharTokenizer
from lm_steps.bigram import NeuralBigram
from lm_steps.evaluation import evaluate
from lm_steps.config import TrainConfig, lr_at
from lm_steps.runs import train
from lm_steps.training import adamw, fit

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
    # the weight decay groups train() optimizes with: matrices decay, LayerNorm gains (and biases) do not
    names = {id(p): n for n, p in m.named_parameters()}
    decay, no_decay = adamw(m, lr=CFG.lr, weight_decay=CFG.weight_decay).param_groups
    assert decay["weight_decay"] == CFG.weight_decay > 0 and no_decay["weight_decay"] == 0.0
    assert sorted(names[id(p)] for p in decay["params"]) == sorted(n for n, p in m.named_parameters() if p.dim() == 2)
    assert sorted(names[id(p)] for p in no_decay["params"]) == sorted(n for n, p in m.named_parameters() if p.dim() == 1)
    assert any(".ln_" in names[id(p)] for p in no_decay["params"]) and "lm_head.weight" not in names.values()  # tied
    # and train() applies them: one step with and without decay differs by exactly lr * wd * w, on matrices only
    one_step = replace(CFG, max_iters=1, warmup_iters=0, eval_iters=0)
    start = model(replace(MODEL, dropout=0.0)).state_dict()
    runs = {}
    for wd in (CFG.weight_decay, 0.0):
        runs[wd] = model(replace(MODEL, dropout=0.0))
        train(runs[wd], data, replace(one_step, weight_decay=wd))
    for n, p in runs[CFG.weight_decay].named_parameters():
        expected = runs[0.0].get_parameter(n) - (CFG.lr * CFG.weight_decay * start[n] if p.dim() == 2 else 0)
        torch.testing.assert_close(p.detach(), expected.detach(), atol=1e-7, rtol=1e-5, msg=n)


def test_grad_accumulation_equals_one_big_batch():
    """k micro-batches of B rows accumulate the same gradient as one batch of k*B rows: the same weights."""
    pool = torch.randint(V, (2 * 8 * 3, 9), generator=torch.Generator().manual_seed(3))  # 3 steps of 8 rows

    def batches():
        drawn = [0]

        def batch(split, n, g, device):
            rows = pool[drawn[0]:drawn[0] + n]
            drawn[0] += n
            return rows[:, :-1], rows[:, 1:]
        return batch

    cfg = replace(CFG, max_iters=3, eval_iters=0, warmup_iters=0)
    nets = [model(replace(MODEL, dropout=0.0)) for _ in range(2)]
    one = train(nets[0], batches(), replace(cfg, batch_size=8, grad_accum=1))
    four = train(nets[1], batches(), replace(cfg, batch_size=2, grad_accum=4))
    assert one["loss"] == pytest.approx(four["loss"], rel=1e-5)
    for (n, a), b in zip(nets[0].named_parameters(), nets[1].parameters()):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-5, msg=n)


def test_bf16_autocast_on_the_cpu(data):
    m = model(replace(MODEL, dropout=0.0))
    dtypes = set()
    m.lm_head.register_forward_hook(lambda mod, inp, out: dtypes.add(out.dtype))
    cfg = replace(CFG, max_iters=4, dtype="bfloat16")
    hist = train(m, data, cfg)
    assert torch.bfloat16 in dtypes  # the matmuls ran in bfloat16
    assert all(math.isfinite(x) for x in hist["loss"] + hist["val_loss"])
    assert all(p.dtype == torch.float32 for p in m.parameters())  # the weights stay float32
    ref = train(model(replace(MODEL, dropout=0.0)), data, replace(cfg, dtype="float32"))
    assert hist["loss"] == pytest.approx(ref["loss"], abs=0.05)  # bfloat16 rounding, the same run


def test_fit_scores_the_validation_set_every_eval_every_steps():
    X = torch.randint(6, (64, 1), generator=torch.Generator().manual_seed(0))
    Y = (X[:, 0] + 1) % 6  # learnable: the next symbol
    net = NeuralBigram(6, generator=torch.Generator().manual_seed(1))
    hist = fit(net, X[:48], Y[:48], steps=10, lr=0.5, optimizer="adam", val=(X[48:], Y[48:]), eval_every=3)
    assert hist["val_step"] == [2, 5, 8, 9]  # every 3 steps and at the end
    assert hist["val_loss"][-1] == pytest.approx(evaluate(net, X[48:], Y[48:])["loss"])
    assert hist["val_loss"][-1] < hist["val_loss"][0] < math.log(6) + 0.5


def test_label_smoothing_trains_on_the_smoothed_loss_and_evaluates_on_the_plain_one(data):
    # the first step's logged loss is the smoothed cross-entropy of the first batch; evaluations stay plain NLL
    from lm_steps.data import get_batch
    from lm_steps.losses import lm_loss

    cfg = replace(CFG, max_iters=1, warmup_iters=0)
    m0, m1 = model(replace(MODEL, dropout=0.0)), model(replace(MODEL, dropout=0.0))
    x, y = get_batch(data[0], cfg.batch_size, MODEL.block_size, generator=torch.Generator().manual_seed(cfg.seed))
    with torch.no_grad():
        logits, plain = m0(x, y)
        smooth = lm_loss(logits, y, label_smoothing=0.1)
    assert abs(smooth - plain) > 1e-4  # so the check below tells the two apart
    hist = train(m1, data, replace(cfg, label_smoothing=0.1))
    assert hist["loss"][0] == pytest.approx(smooth.item(), rel=1e-5)
    plain_run = train(model(replace(MODEL, dropout=0.0)), data, cfg)
    assert hist["val_loss"][0] == pytest.approx(plain_run["val_loss"][0], rel=1e-6)  # step-0 evaluation: same model, plain NLL


# ----------------------------------------------------------------------------- the loop and its host syncs
class TableLM(torch.nn.Module):
    """A bigram table speaking the model interface, without the models' token check (which reads a value)."""

    block_size = 8

    def __init__(self):
        super().__init__()
        self.table = torch.nn.Embedding(V, V)

    def forward(self, idx, targets=None):
        from lm_steps.losses import lm_loss

        logits = self.table(idx)  # (B, T, V)
        return logits, None if targets is None else lm_loss(logits, targets)


SYNCS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy")


def count_syncs(monkeypatch) -> list:
    """Record every call of a Tensor method that makes the host wait for the device's result."""
    calls = []
    for name in SYNCS:
        def spy(self, *a, _real=getattr(torch.Tensor, name), _name=name, **kw):
            calls.append(_name)
            return _real(self, *a, **kw)
        monkeypatch.setattr(torch.Tensor, name, spy)
    return calls


@pytest.mark.parametrize("eval_iters", [0, 2])
def test_the_loop_waits_for_the_device_once_per_logging_interval(data, monkeypatch, eval_iters):
    torch.manual_seed(0)
    cfg = replace(CFG, max_iters=20, eval_interval=5, eval_iters=eval_iters, grad_accum=2)
    model = TableLM()
    calls = count_syncs(monkeypatch)
    hist = train(model, data, cfg)
    monkeypatch.undo()
    assert len(calls) <= 20 // 5 + 1, calls  # one per evaluation (0, 5, 10, 15, 20), none per step
    assert len(hist["loss"]) == 20 and all(isinstance(x, float) for x in hist["loss"] + hist["val_loss"])
    assert len(hist["val_loss"]) == (5 if eval_iters else 0)
    X = torch.randint(V, (64, 1), generator=torch.Generator().manual_seed(0))
    calls = count_syncs(monkeypatch)
    hist = fit(TableLM(), X, (X[:, 0] + 1) % V, steps=30, lr=0.1, batch_size=8)  # no validation set: once at the end
    monkeypatch.undo()
    assert len(calls) == 1 and len(hist["loss"]) == 30


def test_one_schedule_serves_both_configs():
    from lm_steps.config import Recipe, Schedule

    cfg = TrainConfig(max_iters=100, lr=1e-2, min_lr=1e-3, warmup_iters=10)
    recipe = Recipe(steps=100, batch_size=4, optimizer="adamw", lr=1e-2, final_lr=1e-3, schedule="cosine", warmup=10)
    assert cfg.lr_schedule == recipe.lr_schedule == Schedule(1e-2, 1e-3, 10, 100, "cosine")
    assert [lr_at(s, cfg) for s in range(120)] == [recipe.lr_at(s) for s in range(120)]
    for decay_at in (0.3, 0.5, 0.75, 1.0):  # "step": lr before decay_at * steps, final_lr from there
        r = Recipe(steps=10, batch_size=4, lr=0.1, final_lr=0.01, decay_at=decay_at)
        assert [r.lr_at(s) for s in range(12)] == [0.1 if s < decay_at * 10 else 0.01 for s in range(12)]
    with pytest.warns(DeprecationWarning, match="lr_schedule"):
        assert lr_at(37, recipe.schedule_config) == recipe.lr_at(37)


def test_fit_takes_a_recipe_and_train_recipe_is_that_call():
    from lm_steps.config import Recipe
    from lm_steps.fixed_context import LastPosition
    from lm_steps.mlp import MLP, MLPConfig
    from lm_steps.training import train_recipe

    X = torch.randint(27, (64, 3), generator=torch.Generator().manual_seed(0))
    Y = X[:, -1]
    recipe = Recipe(steps=6, batch_size=8, optimizer="adamw", lr=1e-2, final_lr=1e-3, schedule="cosine", warmup=2)
    nets = [MLP(MLPConfig(n_embd=4, n_hidden=8), generator=torch.Generator().manual_seed(1)) for _ in range(2)]
    a = fit(LastPosition(nets[0]), X, Y, recipe, generator=torch.Generator().manual_seed(2))
    with pytest.warns(DeprecationWarning, match=r"fit\(LastPosition\(model\), X, Y, recipe\)"):
        b = train_recipe(nets[1], X, Y, recipe, generator=torch.Generator().manual_seed(2))
    assert a == b and a["lr"] == [recipe.lr_at(s) for s in range(6)]
    with pytest.raises(TypeError, match="a recipe or steps="):
        fit(LastPosition(nets[0]), X, Y, recipe, steps=3)


def test_the_taught_loop_stays_small():
    import inspect

    from lm_steps.training import train_loop

    assert len(inspect.getsource(train_loop).splitlines()) <= 45  # nanoGPT's training step is about 20 lines


def test_old_module_paths_import_with_a_deprecation_warning():
    import pkgutil

    import lm_steps
    import lm_steps.evaluation
    import lm_steps.runs
    import lm_steps.training

    with pytest.warns(DeprecationWarning, match="lm_steps.train is now lm_steps.training: import fit from"):
        from lm_steps.train import fit as old_fit
    with pytest.warns(DeprecationWarning, match="lm_steps.train is now lm_steps.runs"):
        from lm_steps.train import check_resumable
    with pytest.warns(DeprecationWarning, match="lm_steps.evaluate is now lm_steps.evaluation"):
        from lm_steps.evaluate import evaluate_stream
    assert (old_fit, check_resumable, evaluate_stream) == (
        lm_steps.training.fit, lm_steps.runs.check_resumable, lm_steps.evaluation.evaluate_stream)
    assert lm_steps.train is lm_steps.runs.train and lm_steps.evaluate is lm_steps.evaluation.evaluate
    modules = {m.name for m in pkgutil.iter_modules(lm_steps.__path__)}
    assert {"training", "runs", "evaluation"} <= modules and not modules & set(lm_steps.__all__)
    with pytest.raises(ImportError):
        from lm_steps.train import no_such_name  # noqa: F401
