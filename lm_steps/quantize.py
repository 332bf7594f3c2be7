"""What a model costs to run: weights stored in 8 or 4 bits, dequantised when they are used.

Two schemes, each a pair of small functions:

* :func:`absmax_int8` / :func:`dequantize_int8`: one scale per output channel (row) of a weight
  matrix, ``scale = max |w_row| / 127``, weights rounded to integers in [-127, 127].
* :func:`q4_codes` (packed by :func:`q4_groups`) / :func:`dequantize_q4`: llama.cpp's Q4_0 layout. Each row is cut into groups
  of ``group`` weights; each group has one scale ``d = m / -8``, where ``m`` is the group's weight of
  largest magnitude (with its sign), and 4-bit codes ``q = round(w / d) + 8`` in [0, 15], two to a byte.
  The largest weight is then exactly ``-8 * d``, and a row costs 4 bits a weight plus 16 bits a group.

:class:`QuantizedLinear` holds a quantised weight and multiplies with it: int8 as
``(x @ q.T) * scale.T`` (the scale factors out of each output), 4-bit by dequantising first.
:func:`quantize_linears` swaps a model's ``nn.Linear`` layers for them; :func:`weight_bytes` counts
what a model keeps in memory. :func:`kv_bytes_per_token` is the key/value cache's cost per token.
"""
from __future__ import annotations

import copy
import warnings
from typing import Collection

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checks import check_choice, check_int

__all__ = ["absmax_int8", "dequantize_int8", "q4_codes", "pack_nibbles", "unpack_nibbles", "q4_groups", "dequantize_q4", "QuantizedLinear", "quantize_linears",
           "torch_dynamic_int8", "weight_bytes", "kv_bytes_per_token"]

KINDS = ("int8", "q4")


def absmax_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``w`` (out, in) as int8 codes (out, in) and one float scale per row (out, 1): ``w ≈ q * scale``."""
    scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127  # (out, 1): the row's largest weight -> 127
    q = torch.round(w / scale).clamp(-127, 127).to(torch.int8)  # (out, in)
    return q, scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The float weights (out, in) that int8 codes ``q`` and row scales ``scale`` stand for."""
    return q.float() * scale


def q4_codes(w: torch.Tensor, group: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """``w`` (out, in) as Q4_0 codes (out, in), uint8 in [0, 15], and one scale per group of ``group``
    weights (out, in // group): ``w ≈ (code - 8) * d``. ``in`` must be a multiple of ``group``."""
    out_features, in_features = w.shape
    g = w.reshape(out_features, in_features // group, group)  # (out, n_groups, group)
    biggest = g.gather(2, g.abs().argmax(dim=2, keepdim=True))  # (out, n_groups, 1): largest magnitude, signed
    d = biggest / -8  # the group's scale: its biggest weight becomes code 0, i.e. -8 * d
    d = torch.where(d == 0, torch.ones_like(d), d)  # an all-zero group: any scale will do
    codes = (torch.round(g / d) + 8).clamp(0, 15).to(torch.uint8)  # (out, n_groups, group)
    return codes.reshape(out_features, in_features), d.squeeze(2)


def pack_nibbles(codes: torch.Tensor) -> torch.Tensor:
    """4-bit codes (out, in) as bytes (out, in // 2): code 2i in the low half of byte i, code 2i + 1 in the high half."""
    return codes[:, 0::2] | (codes[:, 1::2] << 4)


def unpack_nibbles(packed: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`pack_nibbles`: bytes (out, in // 2) -> codes (out, in)."""
    return torch.stack([packed & 0x0F, packed >> 4], dim=2).reshape(packed.size(0), -1)


def q4_groups(w: torch.Tensor, group: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """``w`` (out, in) stored as Q4_0 stores it: packed codes (out, in // 2) and float16 group scales."""
    codes, d = q4_codes(w, group)
    return pack_nibbles(codes), d.to(torch.float16)


def dequantize_q4(packed: torch.Tensor, scales: torch.Tensor, group: int = 32) -> torch.Tensor:
    """The float weights (out, in) of packed Q4_0 codes (out, in // 2) and group scales (out, in // group)."""
    codes = unpack_nibbles(packed).float()  # (out, in)
    w = (codes - 8).reshape(scales.size(0), scales.size(1), group) * scales.float()[:, :, None]  # (out, n_groups, group)
    return w.reshape(packed.size(0), -1)


class QuantizedLinear(nn.Module):
    """An ``nn.Linear`` whose weight is kept as int8 (per-row scales) or Q4_0 (per-group scales)."""

    def __init__(self, linear: nn.Linear, kind: str = "int8", *, group: int = 32):
        super().__init__()
        self.kind, self.group = check_choice("kind", kind, KINDS), group
        self.in_features, self.out_features = linear.in_features, linear.out_features
        w = linear.weight.detach().float()
        if kind == "int8":
            q, scale = absmax_int8(w)
        else:
            if w.size(1) % check_int("group", group, minimum=2) or group % 2:
                raise ValueError(f"q4 needs an even group that divides in_features={w.size(1)}, got group={group}")
            q, scale = q4_groups(w, group)
        self.register_buffer("q", q)
        self.register_buffer("scale", scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def dequantized(self) -> torch.Tensor:
        """The weight (out, in) this layer multiplies by, back in float."""
        if self.kind == "int8":
            return dequantize_int8(self.q, self.scale)
        return dequantize_q4(self.q, self.scale, self.group)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., out)."""
        if self.kind == "int8":  # the row scale factors out of each output: y_j = scale_j * sum_i x_i q_ji
            y = (x @ self.q.to(x.dtype).t()) * self.scale.t().to(x.dtype)
        else:
            y = x @ self.dequantized().to(x.dtype).t()
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, kind={self.kind}" + (
            f", group={self.group}" if self.kind == "q4" else "")


def quantize_linears(model: nn.Module, kind: str = "int8", *, group: int = 32,
                     only: Collection[str] | None = None) -> nn.Module:
    """A copy of ``model`` with its ``nn.Linear`` layers (those named in ``only``, default all) quantised.

    A tied output layer (``lm_head`` sharing the token embedding) is quantised too; the embedding
    keeps its float copy, since a lookup reads one row and gains nothing from smaller storage.
    """
    check_choice("kind", kind, KINDS)
    model = copy.deepcopy(model)
    names = {name for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    if only is not None:
        unknown = set(only) - names
        if unknown:
            raise ValueError(f"no linear layer named {sorted(unknown)[0]!r}; the model has {', '.join(sorted(names))}")
        names = set(only)
    for name in names:
        parent, _, child = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, child, QuantizedLinear(getattr(owner, child), kind, group=group))
    return model


def torch_dynamic_int8(model: nn.Module) -> nn.Module:
    """PyTorch's own dynamic int8 quantisation of every ``nn.Linear`` (weights int8, activations
    quantised on the fly, fbgemm/onednn kernels on the CPU): the reference to measure ours against."""
    with warnings.catch_warnings():  # torch deprecates this API in favour of torchao; it still works
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).cpu(), {nn.Linear}, dtype=torch.qint8)


def weight_bytes(model: nn.Module) -> int:
    """Bytes of everything a model keeps for inference: parameters and buffers (a shared tensor once),
    and the packed weights of PyTorch's dynamically quantised linear layers."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    dynamic = torch.ao.nn.quantized.dynamic.Linear
    for m in model.modules():
        if isinstance(m, dynamic):  # packed int8 weights, not parameters: one byte each, a scale and zero point
            w, b = m.weight(), m.bias()
            total += w.numel() + 8 + (0 if b is None else b.numel() * b.element_size())
    return total


def kv_bytes_per_token(config, *, element_size: int = 4) -> int:
    """Bytes the key/value cache adds per token of context: keys and values (2) for every layer and
    key/value head, ``head_size`` numbers each."""
    return 2 * config.n_layer * config.kv_heads * config.head_size * element_size
