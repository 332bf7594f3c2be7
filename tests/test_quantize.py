"""Quantisation: error bounds, the Q4_0 layout, quantised layers equal their dequantised weights, byte counts."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from conftest import gen, tiny_gpt
from lm_steps.quantize import (QuantizedLinear, absmax_int8, dequantize_int8, dequantize_q4, kv_bytes_per_token,
                               pack_nibbles, q4_codes, q4_groups, quantize_linears, torch_dynamic_int8, unpack_nibbles,
                               weight_bytes)


def weights(out_features=16, in_features=64, seed=0):
    return torch.randn(out_features, in_features, generator=gen(seed)) * 0.1


def test_absmax_int8_is_within_half_a_step_and_keeps_each_rows_largest_weight():
    w = weights()
    q, scale = absmax_int8(w)
    assert q.dtype == torch.int8 and scale.shape == (16, 1)
    err = (dequantize_int8(q, scale) - w).abs()
    assert bool((err <= scale / 2 + 1e-7).all())
    assert torch.equal(q.abs().amax(dim=1), torch.full((16,), 127, dtype=torch.int8))  # the largest maps to +-127


def test_q4_codes_map_each_groups_largest_weight_to_code_zero_exactly():
    w = weights()
    codes, d = q4_codes(w, 32)
    assert codes.dtype == torch.uint8 and codes.shape == w.shape and d.shape == (16, 2)
    assert int(codes.max()) <= 15
    g = w.view(16, 2, 32)
    biggest = g.gather(2, g.abs().argmax(dim=2, keepdim=True)).squeeze(2)
    torch.testing.assert_close(-8 * d, biggest, atol=0, rtol=0)
    step = d.abs().repeat_interleave(32, dim=1)
    back = ((codes.float() - 8).view(16, 2, 32) * d[:, :, None]).view(16, 64)
    assert bool(((back - w).abs() <= step + 1e-7).all())  # half a step, or one where code 16 was clipped to 15


def test_nibbles_round_trip_and_q4_bytes():
    codes = torch.randint(0, 16, (5, 64), generator=gen(1), dtype=torch.uint8)
    packed = pack_nibbles(codes)
    assert packed.shape == (5, 32) and torch.equal(unpack_nibbles(packed), codes)
    w = weights()
    p, s = q4_groups(w, 32)
    codes, d = q4_codes(w, 32)
    torch.testing.assert_close(dequantize_q4(p, s, 32), ((codes.float() - 8).view(16, 2, 32) * d.half().float()[:, :, None]
                                                         ).view(16, 64), atol=0, rtol=0)
    assert p.numel() * p.element_size() + s.numel() * s.element_size() == 16 * 64 * 4.5 / 8  # 4.5 bits a weight


@pytest.mark.parametrize("kind,group", [("int8", 32), ("q4", 32), ("q4", 16)])
def test_quantized_linear_equals_a_linear_with_its_dequantized_weight(kind, group):
    lin = nn.Linear(64, 16)
    layer = QuantizedLinear(lin, kind, group=group)
    x = torch.randn(3, 7, 64, generator=gen(2))
    ref = nn.functional.linear(x, layer.dequantized(), lin.bias)
    torch.testing.assert_close(layer(x), ref, atol=1e-5, rtol=1e-5)
    rel = ((layer(x) - lin(x)).norm() / lin(x).norm()).item()  # and close to the float layer: 8 bits closer than 4
    assert rel < (0.01 if kind == "int8" else 0.15)


def test_quantize_linears_leaves_the_model_alone_and_counts_bytes():
    model = tiny_gpt().eval()
    n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    q = quantize_linears(model, "int8")
    assert sum(isinstance(m, QuantizedLinear) for m in q.modules()) == n_linear
    assert not any(isinstance(m, QuantizedLinear) for m in model.modules())  # a copy
    idx = torch.randint(0, 65, (2, 16), generator=gen(3))
    with torch.no_grad():
        torch.testing.assert_close(q(idx)[0], model(idx)[0], atol=0.05, rtol=0)
    fp32 = weight_bytes(model)
    assert fp32 == 4 * model.num_params()  # float32, the tied matrix counted once
    assert weight_bytes(q) < 0.5 * fp32
    assert weight_bytes(quantize_linears(model, "q4", group=32)) < weight_bytes(q)
    assert weight_bytes(torch_dynamic_int8(model)) < 0.5 * fp32
    one = quantize_linears(model, "q4", group=32, only=["lm_head"])
    assert isinstance(one.lm_head, QuantizedLinear) and isinstance(one.transformer.h[0].attn.c_attn, nn.Linear)


@pytest.mark.parametrize("call,message", [
    (lambda m: quantize_linears(m, "int3"), "kind must be one of"),
    (lambda m: quantize_linears(m, "q4", only=["nope"]), "no linear layer named 'nope'"),
    (lambda m: quantize_linears(m, "q4", group=24), "even group that divides"),
])
def test_bad_arguments_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call(tiny_gpt())


def test_kv_bytes_per_token_matches_the_keys_and_values_the_model_computes():
    for kw in (dict(), dict(n_kv_head=1), dict(n_kv_head=2)):
        model = tiny_gpt(**kw)
        widths = []
        hooks = [b.attn.c_attn.register_forward_hook(lambda m, i, o: widths.append(o.size(-1) - model.config.n_embd))
                 for b in model.transformer.h]
        with torch.no_grad():
            model(torch.zeros(1, 4, dtype=torch.long))
        for h in hooks:
            h.remove()
        assert kv_bytes_per_token(model.config) == 4 * sum(widths)
