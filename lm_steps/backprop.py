"""Backpropagation by hand for the stage-3 MLP (makemore part 4, "Backprop Ninja").

Each function is the backward pass of one piece of :class:`lm_steps.mlp.MLP`, in its compact
form: given what the forward pass computed and the gradient of the loss with respect to the
piece's output (``dout``), return the gradients with respect to its inputs and parameters.
:func:`mlp_gradients` chains them through a whole model, and :func:`train_by_hand` trains with
them alone, drawing its minibatches exactly as :func:`lm_steps.training.fit` does, so the two can
be compared step for step. The tests check every gradient against autograd in float64.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .layers import BatchNorm1d, Linear, Tanh
from .losses import check_tokens
from .mlp import MLP
from .training import check_lr

__all__ = ["cross_entropy_backward", "linear_backward", "tanh_backward", "batchnorm_backward",
           "embedding_backward", "mlp_gradients", "train_by_hand"]


def cross_entropy_backward(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Gradient of the mean cross-entropy with respect to ``logits`` (N, V): ``(softmax - onehot) / N``."""
    n = logits.size(0)
    dlogits = F.softmax(logits, dim=1)
    dlogits[torch.arange(n, device=logits.device), targets] -= 1  # softmax - onehot
    return dlogits / n


def linear_backward(x: torch.Tensor, weight: torch.Tensor, dout: torch.Tensor, bias: bool = True):
    """Backward of ``out = x @ weight + bias`` for ``x`` (N, fan_in): returns ``(dx, dweight, dbias)``.

    ``dbias`` is None when the layer has no bias.
    """
    dx = dout @ weight.T  # (N, fan_in)
    dweight = x.T @ dout  # (fan_in, fan_out)
    return dx, dweight, dout.sum(0) if bias else None


def tanh_backward(out: torch.Tensor, dout: torch.Tensor) -> torch.Tensor:
    """Backward of ``out = tanh(x)``, from the output: ``(1 - out**2) * dout``."""
    return (1 - out ** 2) * dout


def batchnorm_backward(x: torch.Tensor, gamma: torch.Tensor, dout: torch.Tensor, eps: float = 1e-5):
    """Backward of training-mode BatchNorm on ``x`` (N, C), biased batch variance as in
    :class:`lm_steps.layers.BatchNorm1d`: returns ``(dx, dgamma, dbeta)``.

    ``dx`` is the one-line form ``gamma / (N * std) * (N * dout - sum(dout) - xhat * sum(dout * xhat))``,
    the sums taken over the batch.
    """
    n = x.size(0)
    mean = x.mean(0, keepdim=True)  # (1, C)
    inv_std = (x.var(0, keepdim=True, unbiased=False) + eps) ** -0.5  # (1, C)
    xhat = (x - mean) * inv_std  # (N, C)
    dgamma = (xhat * dout).sum(0)
    dbeta = dout.sum(0)
    dx = gamma * inv_std / n * (n * dout - dout.sum(0) - xhat * (dout * xhat).sum(0))
    return dx, dgamma, dbeta


def embedding_backward(idx: torch.Tensor, dout: torch.Tensor, num_embeddings: int) -> torch.Tensor:
    """Backward of the lookup ``out = weight[idx]``: each row's gradient is the sum of ``dout``
    over every place that row was looked up. ``idx`` (...), ``dout`` (..., dim) -> (num_embeddings, dim)."""
    dim = dout.size(-1)
    dweight = torch.zeros(num_embeddings, dim, dtype=dout.dtype, device=dout.device)
    dweight.index_add_(0, idx.reshape(-1), dout.reshape(-1, dim))  # (N * block_size,), (N * block_size, dim)
    return dweight


@torch.no_grad()
def mlp_gradients(model: MLP, context: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """The mean cross-entropy of ``model`` on examples ``context`` (N, block_size) -> ``targets`` (N,),
    and its gradient for every parameter, computed without autograd.

    Returns ``(loss, grads)`` with ``grads`` keyed like ``model.named_parameters()``. The forward
    pass runs the model's own layers (so a BatchNorm updates its running statistics, as in an
    autograd step); the backward pass chains the functions of this module through them in reverse.
    """
    if not isinstance(model, MLP):
        raise TypeError(f"mlp_gradients needs an lm_steps.mlp.MLP, got {type(model).__name__}")
    if not model.training:
        raise ValueError("mlp_gradients computes training-mode gradients; call model.train() first")
    check_tokens(context, model.config.vocab_size)
    if context.size(1) != model.block_size or targets.shape != context.shape[:1]:
        raise ValueError(f"need context (N, {model.block_size}) and targets (N,), got {tuple(context.shape)} "
                         f"and {tuple(targets.shape)}")
    emb = model.wte(context)  # (N, block_size, n_embd)
    x = emb.view(emb.size(0), -1)  # (N, block_size * n_embd)
    inputs, outputs = [], []
    for layer in model.net:
        inputs.append(x)
        x = layer(x)
        outputs.append(x)
    logits = x  # (N, V)
    loss = F.cross_entropy(logits, targets)

    names = {id(p): name for name, p in model.named_parameters()}
    grads = {}
    d = cross_entropy_backward(logits, targets)
    for layer, x_in, out in zip(reversed(model.net), reversed(inputs), reversed(outputs)):
        if isinstance(layer, Linear):
            d, grads[names[id(layer.weight)]], dbias = linear_backward(x_in, layer.weight, d, layer.bias is not None)
            if dbias is not None:
                grads[names[id(layer.bias)]] = dbias
        elif isinstance(layer, BatchNorm1d):
            d, grads[names[id(layer.gamma)]], grads[names[id(layer.beta)]] = batchnorm_backward(
                x_in, layer.gamma, d, layer.eps)
        elif isinstance(layer, Tanh):
            d = tanh_backward(out, d)
        else:
            raise TypeError(f"no hand-written backward for {type(layer).__name__}")
    demb = d.view(emb.shape)  # (N, block_size, n_embd): undo the concatenation
    grads[names[id(model.wte.weight)]] = embedding_backward(context, demb, model.wte.weight.size(0))
    return loss, grads


@torch.no_grad()
def train_by_hand(model: MLP, X: torch.Tensor, Y: torch.Tensor, *, steps: int, lr: float | Callable[[int], float],
                  batch_size: int, generator: torch.Generator | None = None) -> dict:
    """Plain SGD on examples ``X`` (N, block_size), ``Y`` (N,) with the hand-written gradients only.

    Minibatches are drawn as :func:`lm_steps.training.fit` draws them (``torch.randint`` from
    ``generator``), so with the same generator and ``optimizer="sgd"`` both see the same batches.
    Returns ``{"step", "loss", "lr"}`` lists.
    """
    if steps < 0 or batch_size < 1:
        raise ValueError(f"need steps >= 0 and batch_size >= 1, got {steps} and {batch_size}")
    lr_at = (lambda step: check_lr(lr(step), step)) if callable(lr) else (lambda step: check_lr(lr, step))
    params = dict(model.named_parameters())
    history = {"step": [], "loss": [], "lr": []}
    model.train()
    for step in range(steps):
        ix = torch.randint(0, len(X), (batch_size,), generator=generator).to(X.device)
        loss, grads = mlp_gradients(model, X[ix], Y[ix])
        step_lr = lr_at(step)
        for name, p in params.items():
            p -= step_lr * grads[name]
        history["step"].append(step)
        history["loss"].append(loss.item())
        history["lr"].append(step_lr)
    return history
