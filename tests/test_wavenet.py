"""The stage-4 WaveNet: sizes, the hierarchical/convolutional equivalence, training."""
from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from lm_steps.layers import BatchNorm1d
from lm_steps.config import Recipe
from lm_steps.fixed_context import LastPosition
from lm_steps.training import fit
from lm_steps.wavenet import WAVENET_CONFIGS, CausalConvWaveNet, WaveNet, WaveNetConfig



def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _small(**kw):
    return WaveNet(WaveNetConfig(n_embd=6, n_hidden=16, **kw), generator=_gen())


def test_parameter_counts():
    assert sum(p.numel() for p in WaveNet(WAVENET_CONFIGS["lecture"]).parameters()) == 76_579
    assert sum(p.numel() for p in WaveNet(WAVENET_CONFIGS["lecture_small"]).parameters()) == 22_397


def test_config_validation():
    with pytest.raises(ValueError, match="power of two"):
        WaveNetConfig(block_size=6)
    assert WaveNetConfig(block_size=16).n_levels == 4


def test_hierarchy_shapes():
    model = _small()
    x = model.wte(torch.zeros(5, 8, dtype=torch.long))
    shapes = []
    for layer in model.net:
        x = layer(x)
        shapes.append(tuple(x.shape))
    assert shapes[0] == (5, 4, 12) and shapes[4] == (5, 2, 32) and shapes[8] == (5, 32) and shapes[-1] == (5, 27)
    logits, _ = model(torch.zeros(3, 11, dtype=torch.long))
    assert logits.shape == (3, 11, 27)


def test_batchnorm_statistics_per_feature_after_training_step():
    model = _small()
    X = torch.randint(0, 27, (64, 8), generator=_gen(1))
    Y = torch.randint(0, 27, (64,), generator=_gen(2))
    fit(LastPosition(model), X, Y, Recipe(steps=2, batch_size=32, lr=0.1, final_lr=0.1), generator=_gen(3))
    for bn in (m for m in model.modules() if isinstance(m, BatchNorm1d)):
        assert bn.running_mean.shape == (16,)  # not (1, 4, 16): the 3-D fix


@pytest.mark.parametrize("T", [1, 5, 8, 13])
def test_convolution_equals_hierarchy(T):
    model = _small()
    X = torch.randint(0, 27, (64, 8), generator=_gen(1))
    Y = torch.randint(0, 27, (64,), generator=_gen(2))
    fit(LastPosition(model), X, Y, Recipe(steps=20, batch_size=32, lr=0.1, final_lr=0.1), generator=_gen(3))
    model.eval()
    conv = CausalConvWaveNet(model)
    assert sum(p.numel() for p in conv.parameters()) == sum(p.numel() for p in model.parameters())
    idx = torch.randint(0, 27, (4, T), generator=_gen(T))
    c, _ = conv(idx)
    h, _ = model(idx)
    assert c.shape == h.shape == (4, T, 27)
    assert_close(c, h, atol=1e-5, rtol=1e-5)  # every position, not only the last
    assert_close(c[:, -1], LastPosition(model)(idx)[0][:, 0], atol=1e-5, rtol=1e-5)


def test_causality_of_convolution():
    model = _small().eval()
    conv = CausalConvWaveNet(model)
    idx = torch.randint(1, 27, (2, 20), generator=_gen(5))
    changed = idx.clone()
    changed[:, 6] = 0
    a, b = conv(idx)[0], conv(changed)[0]
    assert_close(a[:, :6], b[:, :6], atol=0, rtol=0)
    assert_close(a[:, 14:], b[:, 14:], atol=0, rtol=0)  # receptive field of 8: positions 6..13 see it
    assert not torch.allclose(a[:, 13], b[:, 13])


def test_loss_at_init_and_one_batch_overfits():
    model = _small()
    X = torch.randint(0, 27, (32, 8), generator=_gen(1))
    Y = torch.randint(0, 27, (32,), generator=_gen(2))
    assert abs(LastPosition(model)(X, Y)[1].item() - math.log(27)) < 0.2
    recipe = Recipe(steps=200, batch_size=32, optimizer="adamw", lr=1e-2, final_lr=1e-3, schedule="cosine")
    fit(LastPosition(model), X, Y, recipe, generator=_gen(3))
    assert LastPosition(model)(X, Y)[1].item() < 0.1


# ----------------------------------------------------------------------------- the gated WaveNet
def _gated(**kw):
    from lm_steps.wavenet import GatedWaveNet, GatedWaveNetConfig

    return GatedWaveNet(GatedWaveNetConfig(n_embd=6, n_residual=8, n_skip=12, **kw), generator=_gen())


def test_gated_wavenet_shapes_size_and_loss_at_init():
    from lm_steps.wavenet import GatedWaveNet, GatedWaveNetConfig

    assert sum(p.numel() for p in GatedWaveNet(GatedWaveNetConfig()).parameters()) == 73_349
    model = GatedWaveNet(GatedWaveNetConfig(), generator=_gen())
    idx = torch.randint(0, 27, (64, 11), generator=_gen(1))
    logits, loss = model(idx, idx)
    assert logits.shape == (64, 11, 27)
    assert abs(loss.item() - math.log(27)) < 0.2
    with pytest.raises(ValueError, match="power of two"):
        GatedWaveNetConfig(block_size=6)


def test_gated_wavenet_sees_exactly_its_window():
    # the prediction after a context depends on every one of its block_size tokens and on nothing before them
    model = _gated()
    emb = model.wte.weight
    idx = torch.randint(1, 27, (1, 12), generator=_gen(2))
    logits, _ = model(idx)
    grads = torch.autograd.grad(logits[0, -1].sum(), emb)[0]  # (V, d): which token rows the last prediction read
    window = set(idx[0, -8:].tolist())
    before = set(idx[0, :-8].tolist()) - window
    assert all(grads[t].abs().sum() > 0 for t in window)
    assert all(grads[t].abs().sum() == 0 for t in before)


def test_gated_wavenet_equals_its_dilated_convolution_at_the_last_position():
    # predict() computes only the tree of positions the last prediction reads; the convolution over every
    # position (kernel 2, dilations 1, 2, 4, ...) must give the same logits there
    model = _gated(block_size=16)
    ctx = torch.randint(0, 27, (7, 16), generator=_gen(7))
    x = model.inp(model.wte(ctx))  # (N, L, R)
    skips = 0
    for k in range(model.config.n_levels):
        d = 2 ** k
        pairs = torch.cat([x[:, :-d], x[:, d:]], dim=-1)  # (N, L - d, 2R): (t - d, t) for every t
        z = torch.tanh(model.filters[k](pairs)) * torch.sigmoid(model.gates[k](pairs))
        skips = skips + model.skip[k](z[:, -1])
        if k < model.config.n_levels - 1:
            x = x[:, d:] + model.residual[k](z)
    assert_close(model.predict(ctx), model.out(torch.relu(skips)), atol=1e-5, rtol=1e-5)


def test_gated_unit_is_tanh_times_sigmoid_with_residual_and_skip():
    # one layer by hand: a gate shut by a large negative bias silences the filter, so the skip sum and the logits
    # no longer depend on that layer's input
    model = _gated(block_size=2)  # one level: pairs (t - 1, t)
    ctx = torch.randint(0, 27, (5, 2), generator=_gen(3))
    x = model.inp(model.wte(ctx))  # (5, 2, R)
    pairs = torch.cat([x[:, :-1], x[:, 1:]], dim=-1)
    z = torch.tanh(model.filters[0](pairs)) * torch.sigmoid(model.gates[0](pairs))
    assert_close(model.predict(ctx), model.out(torch.relu(model.skip[0](z[:, -1]))), atol=1e-6, rtol=1e-6)
    with torch.no_grad():
        model.gates[0].bias.fill_(-50.0)
    other = torch.randint(0, 27, (5, 2), generator=_gen(4))
    assert_close(model.predict(ctx), model.predict(other), atol=1e-6, rtol=0)


def test_gated_wavenet_learns():
    from lm_steps.wavenet import GatedWaveNet, GatedWaveNetConfig

    g = _gen(5)
    X = torch.randint(0, 27, (256, 8), generator=g)
    Y = X[:, -5]  # the token 5 back: only the third layer reaches it
    model = GatedWaveNet(GatedWaveNetConfig(n_residual=32, n_skip=64), generator=_gen())
    recipe = Recipe(steps=300, batch_size=64, optimizer="adamw", lr=1e-2, final_lr=1e-3, schedule="cosine")
    history = fit(LastPosition(model), X, Y, recipe, generator=_gen(6))
    assert sum(history["loss"][-20:]) / 20 < 0.5
