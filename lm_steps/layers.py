"""Hand-written teaching layers (stages 3-4), each the few lines of arithmetic behind a ``torch.nn`` layer.

They are ``nn.Module`` subclasses only so that ``.parameters()``, ``.to(device)`` and
``train()``/``eval()`` work; every forward pass is written out here. The tests check each one
against its ``torch.nn`` counterpart, forward and gradient.

Shapes follow the makemore lectures: features are always the *last* dimension, so a
``Linear`` or ``BatchNorm1d`` applies to (B, C), (B, T, C) or (B, T, L, C) alike.
"""
from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["Linear", "Embedding", "BatchNorm1d", "Tanh", "FlattenConsecutive", "Sequential"]


def _randn(*shape, generator, device):
    return torch.randn(*shape, generator=generator).to(device)


class Linear(nn.Module):
    """``x @ weight + bias`` with ``weight`` of shape (fan_in, fan_out) drawn with mean 0 and standard
    deviation 1/sqrt(fan_in) (variance 1/fan_in).

    Dividing by sqrt(fan_in) keeps the output's variance equal to the input's; multiply by a
    gain (5/3 before a tanh, PyTorch's calculate_gain("tanh")) with :meth:`scale_`. ``torch.nn.Linear`` stores
    the transpose, (fan_out, fan_in).
    """

    def __init__(self, fan_in: int, fan_out: int, bias: bool = True, *, generator: torch.Generator | None = None,
                 device: str | torch.device = "cpu"):
        super().__init__()
        self.weight = nn.Parameter(_randn(fan_in, fan_out, generator=generator, device=device) / fan_in ** 0.5)
        self.bias = nn.Parameter(torch.zeros(fan_out, device=device)) if bias else None

    @torch.no_grad()
    def scale_(self, factor: float) -> "Linear":
        """Multiply the weights by ``factor`` in place (e.g. 5/3 for tanh, 0.1 for a last layer)."""
        self.weight.mul_(factor)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., fan_in) -> (..., fan_out)."""
        out = x @ self.weight
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"{self.weight.size(0)}, {self.weight.size(1)}, bias={self.bias is not None}"


class Embedding(nn.Module):
    """A lookup table: row ``i`` of ``weight`` (num_embeddings, dim) is the vector of token ``i``.

    Indexing a row is the same as multiplying a one-hot vector by the table, without the zeros.
    """

    def __init__(self, num_embeddings: int, dim: int, *, generator: torch.Generator | None = None,
                 device: str | torch.device = "cpu"):
        super().__init__()
        self.weight = nn.Parameter(_randn(num_embeddings, dim, generator=generator, device=device))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(...) int64 -> (..., dim)."""
        return self.weight[idx]

    def extra_repr(self) -> str:
        return f"{self.weight.size(0)}, {self.weight.size(1)}"


class BatchNorm1d(nn.Module):
    """Normalise each feature over the batch, then scale by ``gamma`` and shift by ``beta``.

    In training mode the mean and variance come from the batch: over dimension 0 for (B, C)
    input and over every dimension but the last for (B, T, C) or (B, T, L, C) input, so each of
    the C features has one mean and one variance (the lecture's 3-D fix; ``torch.nn.BatchNorm1d``
    wants (B, C, T) and reduces over 0 and 2). Running estimates are updated with ``momentum``
    and used in eval mode, so one example (or a one-token prompt) is normalised the same way as
    a training batch. As in torch, the normalisation uses the biased batch variance and the
    running estimate the unbiased one (the lecture used the unbiased one in both places; with a
    batch of 32 they differ by a factor 32/31).
    """

    def __init__(self, dim: int, eps: float = 1e-5, momentum: float = 0.1, *, device: str | torch.device = "cpu"):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.gamma = nn.Parameter(torch.ones(dim, device=device))
        self.beta = nn.Parameter(torch.zeros(dim, device=device))
        self.register_buffer("running_mean", torch.zeros(dim, device=device))
        self.register_buffer("running_var", torch.ones(dim, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., C) -> (..., C)."""
        if self.training:
            dims = tuple(range(x.dim() - 1))  # every dimension but the features
            n = x.numel() // x.size(-1)
            if n < 2:
                raise ValueError("BatchNorm1d in training mode needs more than one value per feature; "
                                 "use a batch of 2 or more, or call model.eval()")
            mean = x.mean(dims, keepdim=True)
            var = x.var(dims, keepdim=True, unbiased=False)
            with torch.no_grad():
                m = self.momentum
                self.running_mean.mul_(1 - m).add_(m * mean.reshape(-1))  # (C,)
                self.running_var.mul_(1 - m).add_(m * var.reshape(-1) * n / (n - 1))  # (C,)
        else:
            mean, var = self.running_mean, self.running_var
        xhat = (x - mean) / torch.sqrt(var + self.eps)
        return self.gamma * xhat + self.beta

    def extra_repr(self) -> str:
        return f"{self.gamma.numel()}, eps={self.eps}, momentum={self.momentum}"


class Tanh(nn.Module):
    """The elementwise tanh, squashing to (-1, 1); its gradient 1 - tanh^2 vanishes where it saturates."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same shape in and out."""
        return torch.tanh(x)


class FlattenConsecutive(nn.Module):
    """Concatenate each run of ``n`` consecutive positions: (..., L, C) -> (..., L // n, n * C).

    The WaveNet's fusing step: with n=2, positions (0, 1), (2, 3), ... become one vector each.
    When one position is left the length axis is dropped, as in the lecture: (..., 1, C) -> (..., C).
    """

    def __init__(self, n: int):
        super().__init__()
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., L, C) -> (..., L // n, n * C), or (..., n * C) when L == n."""
        *lead, L, C = x.shape
        if L % self.n:
            raise ValueError(f"length {L} is not a multiple of n={self.n}; pad the input to a multiple")
        x = x.reshape(*lead, L // self.n, C * self.n)  # (..., L // n, n * C)
        return x.squeeze(-2) if L == self.n else x

    def extra_repr(self) -> str:
        return f"n={self.n}"


class Sequential(nn.Module):
    """Apply layers in order; ``layers`` is indexable like a list."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Each layer's output is the next one's input."""
        for layer in self.layers:
            x = layer(x)
        return x
