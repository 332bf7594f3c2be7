"""The hand-written layers against their torch.nn counterparts, forward and gradient."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from torch.testing import assert_close

from lm_steps.layers import BatchNorm1d, Embedding, FlattenConsecutive, Linear, Sequential, Tanh

TOL = dict(atol=1e-5, rtol=1e-5)



def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _linear_pair(fan_in=6, fan_out=4, bias=True):
    ours = Linear(fan_in, fan_out, bias=bias, generator=_gen())
    ref = nn.Linear(fan_in, fan_out, bias=bias)
    with torch.no_grad():
        ref.weight.copy_(ours.weight.T)  # torch stores (fan_out, fan_in)
        if bias:
            ours.bias.copy_(torch.randn(fan_out, generator=_gen(1)))
            ref.bias.copy_(ours.bias)
    return ours, ref


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 6), (3, 4, 6)])
def test_linear_matches_torch(bias, shape):
    ours, ref = _linear_pair(bias=bias)
    x = torch.randn(*shape, generator=_gen(2))
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), ref(xb)
    assert_close(ya, yb, **TOL)
    (ya ** 2).sum().backward()
    (yb ** 2).sum().backward()
    assert_close(xa.grad, xb.grad, **TOL)
    assert_close(ours.weight.grad, ref.weight.grad.T, **TOL)
    if bias:
        assert_close(ours.bias.grad, ref.bias.grad, **TOL)


def test_linear_init_scale_and_scale_():
    lin = Linear(400, 300, generator=_gen())
    assert abs(lin.weight.std().item() - 400 ** -0.5) < 0.002
    before = lin.weight.detach().clone()
    lin.scale_(5 / 3)
    assert_close(lin.weight.detach(), before * 5 / 3, atol=1e-6, rtol=1e-6)


def test_embedding_matches_torch():
    ours = Embedding(27, 5, generator=_gen())
    ref = nn.Embedding(27, 5)
    with torch.no_grad():
        ref.weight.copy_(ours.weight)
    idx = torch.randint(0, 27, (4, 3), generator=_gen(1))
    ya, yb = ours(idx), ref(idx)
    assert ya.shape == (4, 3, 5)
    assert_close(ya, yb, **TOL)
    (ya.sin().sum()).backward()
    (yb.sin().sum()).backward()
    assert_close(ours.weight.grad, ref.weight.grad, **TOL)


def _bn_pair(C=5):
    ours, ref = BatchNorm1d(C), nn.BatchNorm1d(C)
    with torch.no_grad():
        ours.gamma.copy_(torch.rand(C, generator=_gen(3)) + 0.5)
        ours.beta.copy_(torch.randn(C, generator=_gen(4)))
        ref.weight.copy_(ours.gamma)
        ref.bias.copy_(ours.beta)
    return ours, ref


@pytest.mark.parametrize("three_d", [False, True])
def test_batchnorm_matches_torch_train_and_eval(three_d):
    ours, ref = _bn_pair()
    # ours takes (B, T, C) and reduces over (0, 1); torch takes (B, C, T) and reduces over (0, 2)
    to_ref = (lambda t: t.transpose(1, 2)) if three_d else (lambda t: t)
    for step in range(3):  # a few updates of the running statistics
        x = torch.randn(*((8, 4, 5) if three_d else (8, 5)), generator=_gen(10 + step)) * 3 + 1
        xa, xb = x.clone().requires_grad_(), to_ref(x).clone().requires_grad_()
        ya, yb = ours(xa), ref(xb)
        assert_close(ya, to_ref(yb), **TOL)
        w = torch.randn(ya.shape, generator=_gen(20 + step))
        (ya * w).sum().backward()
        (yb * to_ref(w)).sum().backward()
        assert_close(xa.grad, to_ref(xb.grad), **TOL)
        assert_close(ours.gamma.grad, ref.weight.grad, **TOL)
        assert_close(ours.beta.grad, ref.bias.grad, **TOL)
        ours.zero_grad()
        ref.zero_grad()
    assert_close(ours.running_mean, ref.running_mean, **TOL)
    assert_close(ours.running_var, ref.running_var, **TOL)
    ours.eval()
    ref.eval()
    x = torch.randn(*((2, 4, 5) if three_d else (2, 5)), generator=_gen(99))
    assert_close(ours(x), to_ref(ref(to_ref(x))), **TOL)


def test_batchnorm_3d_reduces_over_batch_and_positions():
    bn = BatchNorm1d(6, momentum=1.0)  # momentum 1: the running stats are this batch's
    x = torch.randn(16, 4, 6, generator=_gen()) * torch.arange(1, 5).view(1, 4, 1) + torch.arange(4.).view(1, 4, 1)
    y = bn(x)
    assert bn.running_mean.shape == (6,) and bn.running_var.shape == (6,)
    assert_close(bn.running_mean, x.mean(dim=(0, 1)), **TOL)
    assert_close(bn.running_var, x.var(dim=(0, 1)), **TOL)  # unbiased, as torch
    assert_close(y.mean(dim=(0, 1)), torch.zeros(6), atol=1e-5, rtol=0)
    # per position the outputs are NOT standardised: statistics are shared across positions
    assert y.mean(dim=0).abs().max() > 0.3


def test_batchnorm_train_versus_eval():
    bn = BatchNorm1d(3)
    x = torch.randn(32, 3, generator=_gen()) * 2 + 5
    y_train = bn(x)
    assert_close(y_train.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    bn.eval()
    y_eval = bn(x)  # running stats after one step: 0.9 * (0, 1) + 0.1 * batch: far from the batch's
    assert (y_eval - y_train).abs().max() > 1.0
    one = bn(x[:1])  # eval mode handles a single example
    assert_close(one, y_eval[:1], **TOL)
    bn.train()
    with pytest.raises(ValueError, match="more than one value"):
        bn(x[:1])


def test_tanh_matches_torch():
    x = torch.linspace(-4, 4, 50, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    Tanh()(x).sum().backward()
    nn.Tanh()(x2).sum().backward()
    assert_close(x.grad, x2.grad, **TOL)


def test_flatten_consecutive():
    x = torch.arange(2 * 8 * 3.).view(2, 8, 3)
    y = FlattenConsecutive(2)(x)
    assert y.shape == (2, 4, 6)
    assert_close(y[:, 1], torch.cat([x[:, 2], x[:, 3]], dim=-1), atol=0, rtol=0)
    assert FlattenConsecutive(8)(x).shape == (2, 24)  # one position left: the axis is dropped
    assert FlattenConsecutive(2)(x.view(1, 2, 8, 3)).shape == (1, 2, 4, 6)  # extra leading dims
    ref = nn.Flatten(1)(x)  # flattening everything equals fusing all 8 at once
    assert_close(FlattenConsecutive(8)(x), ref, atol=0, rtol=0)
    with pytest.raises(ValueError, match="multiple"):
        FlattenConsecutive(3)(x)


def test_sequential_matches_torch():
    ours_lin, ref_lin = _linear_pair()
    ours_bn, ref_bn = _bn_pair(4)
    ours = Sequential(ours_lin, ours_bn, Tanh())
    ref = nn.Sequential(ref_lin, ref_bn, nn.Tanh())
    x = torch.randn(10, 6, generator=_gen(5))
    assert_close(ours(x), ref(x), **TOL)
    assert len(ours) == 3 and ours[0] is ours_lin
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
