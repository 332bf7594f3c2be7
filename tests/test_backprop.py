"""The hand-written backward passes of lm_steps.backprop against autograd, in float64."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from lm_steps.backprop import (batchnorm_backward, cross_entropy_backward, embedding_backward, linear_backward,
                               mlp_gradients, tanh_backward, train_by_hand)
from lm_steps.fixed_context import LastPosition
from lm_steps.layers import BatchNorm1d
from lm_steps.mlp import MLP, MLPConfig
from lm_steps.training import fit

TOL = dict(atol=1e-10, rtol=0)
f64 = torch.float64


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=f64)


def test_cross_entropy_backward():
    logits = randn(16, 7, seed=1).mul(3).requires_grad_()
    targets = torch.randint(0, 7, (16,), generator=torch.Generator().manual_seed(2))
    F.cross_entropy(logits, targets).backward()
    assert_close(cross_entropy_backward(logits.detach(), targets), logits.grad, **TOL)


def test_linear_backward_with_and_without_bias():
    x, w, b = randn(8, 5, seed=1).requires_grad_(), randn(5, 3, seed=2).requires_grad_(), randn(3, seed=3).requires_grad_()
    dout = randn(8, 3, seed=4)
    (x @ w + b).backward(dout)
    dx, dw, db = linear_backward(x.detach(), w.detach(), dout)
    assert_close(dx, x.grad, **TOL)
    assert_close(dw, w.grad, **TOL)
    assert_close(db, b.grad, **TOL)
    assert linear_backward(x.detach(), w.detach(), dout, bias=False)[2] is None


def test_tanh_backward():
    x = randn(6, 4, seed=1).mul(2).requires_grad_()
    out = torch.tanh(x)
    dout = randn(6, 4, seed=2)
    out.backward(dout)
    assert_close(tanh_backward(out.detach(), dout), x.grad, **TOL)


def test_batchnorm_backward_matches_the_package_layer():
    bn = BatchNorm1d(5).double()
    with torch.no_grad():
        bn.gamma.copy_(randn(5, seed=1) + 1)
        bn.beta.copy_(randn(5, seed=2))
    x = randn(10, 5, seed=3).mul(4).add(1).requires_grad_()
    dout = randn(10, 5, seed=4)
    bn(x).backward(dout)
    dx, dgamma, dbeta = batchnorm_backward(x.detach(), bn.gamma.detach(), dout, bn.eps)
    assert_close(dx, x.grad, **TOL)
    assert_close(dgamma, bn.gamma.grad, **TOL)
    assert_close(dbeta, bn.beta.grad, **TOL)


def test_embedding_backward_sums_repeated_rows():
    table = randn(6, 3, seed=1).requires_grad_()
    idx = torch.tensor([[0, 2, 2], [5, 2, 0]])  # row 2 looked up three times, row 0 twice, rows 1, 3, 4 never
    dout = randn(2, 3, 3, seed=2)
    table[idx].backward(dout)
    ours = embedding_backward(idx, dout, 6)
    assert_close(ours, table.grad, **TOL)
    assert torch.equal(ours[[1, 3, 4]], torch.zeros(3, 3, dtype=f64))


@pytest.mark.parametrize("cfg", [MLPConfig(n_embd=4, n_hidden=16), MLPConfig(n_embd=4, n_hidden=16, batchnorm=True),
                                 MLPConfig(n_embd=3, n_hidden=8, n_layers=3, batchnorm=True, block_size=4)])
def test_mlp_gradients_equal_autograd(cfg):
    model = MLP(cfg, generator=torch.Generator().manual_seed(0)).double()
    with torch.no_grad():  # move BatchNorm and biases off their initial 1 / 0 so their gradients are tested fully
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.3 * randn(*p.shape, seed=p.numel()))
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, cfg.vocab_size, (20, cfg.block_size), generator=g)
    y = torch.randint(0, cfg.vocab_size, (20,), generator=g)
    loss, grads = mlp_gradients(model, x, y)
    model.zero_grad()
    expected = F.cross_entropy(model.predict(x), y)
    expected.backward()
    assert_close(loss, expected.detach(), **TOL)
    assert set(grads) == {name for name, _ in model.named_parameters()}
    for name, p in model.named_parameters():
        assert_close(grads[name], p.grad, **TOL, msg=name)


def test_mlp_gradients_bad_input():
    model = MLP(MLPConfig(n_embd=2, n_hidden=4))
    x, y = torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="context"):
        mlp_gradients(model, x[:, :2], y)
    with pytest.raises(ValueError, match="token id 27 is outside"):
        mlp_gradients(model, x + 27, y)
    with pytest.raises(TypeError, match="MLP"):
        mlp_gradients(LastPosition(model), x, y)
    model.eval()
    with pytest.raises(ValueError, match="train"):
        mlp_gradients(model, x, y)


def test_training_by_hand_equals_autograd_training(names, names_tok):
    from lm_steps.data import make_examples

    X, Y = make_examples(names[:2000], 3, names_tok)
    cfg = MLPConfig(n_embd=6, n_hidden=32, batchnorm=True)
    lr = lambda step: 0.1 if step < 150 else 0.01  # noqa: E731
    hand = MLP(cfg, generator=torch.Generator().manual_seed(3))
    auto = MLP(cfg, generator=torch.Generator().manual_seed(3))
    h_hand = train_by_hand(hand, X, Y, steps=300, lr=lr, batch_size=32, generator=torch.Generator().manual_seed(4))
    h_auto = fit(LastPosition(auto), X, Y, steps=300, lr=lr, batch_size=32, optimizer="sgd",
                 generator=torch.Generator().manual_seed(4))
    assert h_hand["loss"][-1] < h_hand["loss"][0] - 0.3  # it trained
    assert_close(torch.tensor(h_hand["loss"]), torch.tensor(h_auto["loss"]), atol=1e-5, rtol=0)
    for (name, p), q in zip(hand.named_parameters(), auto.parameters()):
        assert_close(p, q, atol=1e-5, rtol=1e-4, msg=name)
    for name, buf in hand.named_buffers():  # BatchNorm's running statistics moved the same way
        assert_close(buf, dict(auto.named_buffers())[name], atol=1e-5, rtol=1e-4, msg=name)


def test_train_by_hand_bad_input():
    with pytest.raises(ValueError, match="batch_size"):
        train_by_hand(MLP(MLPConfig()), torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long),
                      steps=1, lr=0.1, batch_size=0)
