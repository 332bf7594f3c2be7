"""TrainingHealth records what a hand-written training step computes, per layer and per weight."""
import copy
import math

import numpy as np
import pytest
import torch

from lm_steps.diagnostics import TrainingHealth, UpdateRatioTracker
from lm_steps.losses import lm_loss
from lm_steps.gpt import GPT, GPTConfig
from lm_steps.config import TrainConfig
from lm_steps.runs import train
from lm_steps.training import adamw

CFG = GPTConfig(vocab_size=16, block_size=8, n_layer=2, n_head=2, n_embd=16)
LAYERS = ["transformer.h.0", "transformer.h.1"]


def _model_and_batch():
    g = torch.Generator().manual_seed(0)
    model = GPT(CFG, generator=g)
    x = torch.randint(16, (4, 8), generator=g)
    y = torch.randint(16, (4, 8), generator=g)
    return model, x, y


def _by_hand(model, x, y):
    """Block outputs' std, their gradients' std and the weights' log10 grad/data ratios, spelled out."""
    ref = copy.deepcopy(model)
    h = ref.transformer.wte(x) + ref.transformer.wpe(torch.arange(x.size(1)))  # (B, T, C)
    outs = []
    for block in ref.transformer.h:
        h = block(h)
        h.retain_grad()
        outs.append(h)
    lm_loss(ref.lm_head(ref.transformer.ln_f(h)), y).backward()
    grads = {n: math.log10(p.grad.std().item() / p.std().item()) for n, p in ref.named_parameters() if p.dim() >= 2}
    return [o.std().item() for o in outs], [o.grad.std().item() for o in outs], grads


def test_one_step_matches_the_hand_written_statistics():
    model, x, y = _model_and_batch()
    act, act_grad, grads = _by_hand(model, x, y)
    health = TrainingHealth(model, LAYERS)
    opt = adamw(model, lr=1e-2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _, loss = model(x, y)
    loss.backward()
    opt.step()
    health(0, model)
    np.testing.assert_allclose(health.act_std[0], act, rtol=1e-5)
    np.testing.assert_allclose(health.act_grad_std[0], act_grad, rtol=1e-4)
    np.testing.assert_allclose(health.grad_ratios[0], [grads[n] for n in health.names], rtol=1e-4)
    updates = [math.log10((p - before[n]).std().item() / p.std().item())
               for n, p in model.named_parameters() if n in health.names]
    np.testing.assert_allclose(health.update_ratios[0], updates, rtol=1e-4)
    assert health.act_std.shape == (1, 2) and health.grad_ratios.shape == (1, len(health.names))
    health.remove()
    assert all(not m._forward_hooks for m in model.modules())


def test_train_callback_records_every_step_with_accumulation():
    model, _, _ = _model_and_batch()
    stream = torch.randint(16, (400,), generator=torch.Generator().manual_seed(1))
    health = TrainingHealth(model, LAYERS)
    tracker = UpdateRatioTracker(model)
    cfg = TrainConfig(max_iters=5, batch_size=4, grad_accum=2, lr=1e-2, warmup_iters=1, eval_interval=2,
                      eval_iters=2, dtype="float32", seed=0)
    train(model, (stream[:300], stream[300:]), cfg, callback=lambda step, m: (health(step, m), tracker(step, m)))
    health.remove()
    for arr in (health.act_std, health.act_grad_std):
        assert arr.shape == (5, 2) and np.isfinite(arr).all() and (arr > 0).all()
    assert health.grad_ratios.shape == (5, len(tracker.names)) and np.isfinite(health.grad_ratios).all()
    np.testing.assert_array_equal(health.update_ratios, tracker.ratios)  # the same updates, measured once


def test_grad_ratio_sees_the_accumulated_gradient():
    model, x, y = _model_and_batch()
    health = TrainingHealth(model, LAYERS)
    for half in (slice(0, 2), slice(2, 4)):
        model(x[half], y[half])[1].backward()
    w = model.transformer.h[0].attn.c_attn.weight
    expected = math.log10(w.grad.std().item() / w.std().item())
    health(0, model)
    col = health.names.index("transformer.h.0.attn.c_attn.weight")
    assert health.grad_ratios[0, col] == pytest.approx(expected, rel=1e-6)
    with torch.no_grad():
        model(x)  # an evaluation pass records nothing
    health(1, model)
    assert np.isnan(health.act_std[1]).all() and np.isfinite(health.act_std[0]).all()


def test_unknown_layer_name_is_a_clear_error():
    model, _, _ = _model_and_batch()
    with pytest.raises(ValueError, match="transformer.h.9"):
        TrainingHealth(model, ["transformer.h.9"])
