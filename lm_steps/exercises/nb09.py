"""Checks for notebook 09 (quantisation): each runs the learner's function and the package's on fresh weights."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..quantize import QuantizedLinear, absmax_int8, dequantize_q4, pack_nibbles, q4_codes
from . import Passed, check_function

__all__ = ["check_absmax_int8", "check_int8_linear", "check_q4_codes", "check_dequantize_q4_codes", "WRONG_ANSWERS"]

#: Plausible mistakes each check must catch: exercise name -> [(text of the solution, a wrong replacement)].
WRONG_ANSWERS = {
    "absmax_int8": [
        ("w.abs().amax(dim=1, keepdim=True) / 127", "w.abs().amax() / 127"),  # one scale for the whole matrix
        ("w.abs().amax(dim=1, keepdim=True) / 127", "w.abs().amax(dim=1, keepdim=True) / 128"),  # 128 levels
        ("torch.round(w / scale)", "(w / scale)"),  # truncates towards zero instead of rounding
    ],
    "int8_linear": [
        ("(x @ q.float().t()) * scale.t()", "(x @ q.float().t()) * scale"),  # scales the inputs' axis
        ("y + bias", "y"),  # forgot the bias
    ],
    "q4_codes": [
        ("biggest / -8", "biggest.abs() / 8"),  # loses the sign trick: the largest weight no longer maps to -8
        ("torch.round(g / d) + 8", "torch.round(g / d) + 7"),  # off by one: codes centred on 7
    ],
    "dequantize_q4_codes": [
        ("(codes.float() - 8)", "codes.float()"),  # forgot to centre the codes
    ],
}


def _weights(i: int, out_features: int = 12, in_features: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(900 + i)
    w = torch.randn(out_features, in_features, generator=g) * (0.02 + 0.05 * i)
    w[0, 3] = 0.5 * (1 + i)  # one outlier, as real weights have
    return w


def check_absmax_int8(absmax_int8_fn) -> Passed:
    """``absmax_int8(w) -> (q, scale)``: int8 codes (out, in) and one scale per row (out, 1)."""
    return check_function(absmax_int8_fn, absmax_int8, lambda i: (_weights(i),), name="absmax_int8", atol=0, rtol=1e-6,
                          hint="scale = w.abs().amax(dim=1, keepdim=True) / 127 (one per row), then "
                               "q = round(w / scale) clamped to [-127, 127], as torch.int8")


def check_int8_linear(int8_linear) -> Passed:
    """``int8_linear(x, q, scale, bias) -> y``: a linear layer computed from int8 codes and row scales."""

    def make_case(i):
        lin = nn.Linear(64, 12)
        with torch.no_grad():
            lin.weight.copy_(_weights(i))
            lin.bias.copy_(torch.randn(12, generator=torch.Generator().manual_seed(i)))
        q, scale = absmax_int8(lin.weight.detach())
        return torch.randn(3, 5, 64, generator=torch.Generator().manual_seed(50 + i)), q, scale, lin.bias.detach()

    def package(x, q, scale, bias):
        layer = QuantizedLinear(nn.Linear(64, 12), "int8")
        layer.q.copy_(q), layer.scale.copy_(scale), layer.bias.copy_(bias)
        return layer(x)

    return check_function(int8_linear, package, make_case, name="int8_linear", atol=1e-5, rtol=1e-5,
                          hint="multiply by the codes as floats, x @ q.float().t(), then scale each output column by "
                               "its row's scale (scale.t(), shape (1, out)), then add the bias")


def check_q4_codes(q4_codes_fn) -> Passed:
    """``q4_codes(w, group) -> (codes, d)``: Q4_0 codes (out, in) in [0, 15] and group scales (out, in // group)."""
    return check_function(q4_codes_fn, q4_codes, lambda i: (_weights(i), (32, 16, 64)[i]), name="q4_codes", atol=0,
                          rtol=1e-6, hint="view w as (out, in // group, group); per group take the weight of largest "
                                          "magnitude m (with its sign), d = m / -8, codes = round(w / d) + 8 clamped "
                                          "to [0, 15] as torch.uint8; return codes as (out, in) and d as (out, n_groups)")


def check_dequantize_q4_codes(dequantize_q4_codes) -> Passed:
    """``dequantize_q4_codes(codes, d, group) -> w``: the float weights the codes stand for."""

    def make_case(i):
        codes, d = q4_codes(_weights(i), (32, 16, 64)[i])
        return codes, d, (32, 16, 64)[i]

    def package(codes, d, group):
        return dequantize_q4(pack_nibbles(codes), d, group)

    return check_function(dequantize_q4_codes, package, make_case, name="dequantize_q4_codes", atol=1e-7, rtol=1e-6,
                          hint="(codes - 8) times the scale of each weight's group: view the codes as "
                               "(out, in // group, group), multiply by d[:, :, None], view back as (out, in)")
