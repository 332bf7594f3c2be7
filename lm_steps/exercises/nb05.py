"""Checks for notebook 05 (the character-level GPT): each runs the learner's function and the package's on fresh inputs.

The exercises: one head of causal self-attention, the training loop, the sampling step and the cached
attention step; the find-the-bug cells: attention weights without the ``1/sqrt(head_size)`` scale, and a
batching function whose targets are not shifted (the pipeline leak).
"""
from __future__ import annotations

import torch

from .. import train  # the function lm_steps.train (whichever module holds it)
from ..config import TrainConfig
from ..data import get_batch
from ..gpt import GPT, GPTConfig
from ..sample import sample_next
from . import Passed, check_function

try:  # its home from the inference split on; lm_steps.gpt keeps a deprecated alias
    from ..inference import written_out_attention
except ImportError:
    from ..gpt import written_out_attention

__all__ = ["check_attention_head", "check_attention_weights", "check_train_loop", "check_make_batch",
           "check_sample_step", "check_cached_attention", "WRONG_ANSWERS"]

#: Plausible mistakes each check must catch (tests/test_exercises.py applies each to the worked solution):
#: exercise name -> [(text of the solution, what a learner might write instead), ...].
WRONG_ANSWERS = {
    "attention_head": [
        (" * k.size(-1) ** -0.5", ""),  # no 1/sqrt(head_size) scale
        (".tril()", ".triu()"),  # the mask of the wrong side: each position sees its future
        ("softmax(dim=-1)", "softmax(dim=-2)"),  # normalised over the queries instead of the keys
    ],
    "train_loop": [
        ("opt.zero_grad(set_to_none=True)", "pass"),  # gradients pile up from step to step
        ('group["lr"] = lr_at(step, cfg)', 'group["lr"] = cfg.lr'),  # no warmup, no decay
    ],
    "sample_step": [
        ("logits / temperature", "logits * temperature"),  # temperature the wrong way round
        ("logits < kth", "logits <= kth"),  # top-k that also drops the k-th: keeps k - 1
    ],
    "cached_attention": [
        (" * K.size(-1) ** -0.5", ""),  # no scale
        ("softmax(dim=-1)", "softmax(dim=-2)"),  # over the single query instead of the cached keys
    ],
}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def check_attention_head(attention_head) -> Passed:
    """``attention_head(x, w_key, w_query, w_value) -> (B, T, hs)``: one causal head; weights (C, hs)."""

    def make_case(i):
        g = _gen(500 + i)
        B, T, C, hs = 2 + i, 3 + 3 * i, 8, 4 + 2 * i
        return (torch.randn(B, T, C, generator=g), *(torch.randn(C, hs, generator=g) for _ in range(3)))

    def package(x, w_key, w_query, w_value):
        q, k, v = ((x @ w)[:, None] for w in (w_query, w_key, w_value))  # (B, 1, T, hs): one head
        return written_out_attention(q, k, v)[0][:, 0]  # (B, T, hs)

    return check_function(attention_head, package, make_case, name="attention_head", atol=1e-5, rtol=1e-4,
                          hint="q, k, v = x @ w_query, x @ w_key, x @ w_value; scores q @ k.transpose(-2, -1) times "
                               "hs ** -0.5; -inf where a key comes after the query (above the diagonal); softmax "
                               "over the keys (the last dimension); then weights @ v")


def check_attention_weights(attention_weights) -> Passed:
    """``attention_weights(q, k) -> (N, T, T)``: causal softmax weights of the scaled scores."""

    def make_case(i):
        g = _gen(600 + i)
        N, T, hs = 4, 6 + 5 * i, 64  # unit-variance queries and keys of 64 channels, as in the notebook
        return torch.randn(N, T, hs, generator=g), torch.randn(N, T, hs, generator=g)

    def package(q, k):
        return written_out_attention(q, k, k)[1]  # its weights (N, T, T); the values do not matter

    return check_function(attention_weights, package, make_case, name="attention_weights", atol=1e-5, rtol=1e-4,
                          hint="the scores q @ k.transpose(-2, -1) have variance head_size; multiply them by "
                               "k.size(-1) ** -0.5 before the mask and the softmax")


def check_train_loop(train_loop) -> Passed:
    """``train_loop(model, train_ids, cfg, device) -> [loss per step]``: the package's ``train``, loss for loss."""

    def make_case(i):
        g = _gen(700 + i)
        model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.1 * (i == 2)),
                    generator=g)
        cfg = TrainConfig(max_iters=6 + 2 * i, batch_size=4, lr=1e-2, min_lr=1e-3, warmup_iters=2 + i, eval_iters=0,
                          dtype="float32", seed=70 + i)
        return model, torch.randint(11, (400,), generator=g), cfg, "cpu"

    def package(model, train_ids, cfg, device):
        return train(model, (train_ids, train_ids), cfg, device=device)["loss"]

    return check_function(train_loop, package, make_case, name="train_loop", atol=1e-4, rtol=0,
                          hint="per step: every group's lr = lr_at(step, cfg); x, y = get_batch(train_ids, "
                               "cfg.batch_size, model.block_size, generator=g, device=device); logits, loss = "
                               "model(x, y); opt.zero_grad(); loss.backward(); clip_grad_norm_(..., cfg.grad_clip); "
                               "opt.step(); append loss.item()")


def check_make_batch(make_batch) -> Passed:
    """``make_batch(ids, batch_size, block_size, generator) -> (x, y)``: the package's ``get_batch``."""

    def make_case(i):
        g = _gen(800 + i)
        return torch.randint(20, (50 + 30 * i,), generator=g), 3 + i, 4 + 2 * i, _gen(810 + i)

    def package(ids, batch_size, block_size, generator):
        return get_batch(ids, batch_size, block_size, generator=generator)

    return check_function(make_batch, package, make_case, name="make_batch",
                          hint="the target at position t is the character after x[:, t]: take y from the same "
                               "windows shifted one to the right (offsets + 1)")


def check_sample_step(sample_step) -> Passed:
    """``sample_step(logits, temperature, top_k, generator) -> (B, 1)``: the package's ``sample_next``."""

    def make_case(i):
        g = _gen(900 + i)
        temperature, top_k = [(1.0, None), (0.5, 5), (2.0, 3)][i]
        return torch.randn(400, 30, generator=g) * 2, temperature, top_k, _gen(910 + i)

    def package(logits, temperature, top_k, generator):
        return sample_next(logits, temperature=temperature, top_k=top_k, generator=generator)

    return check_function(sample_step, package, make_case, name="sample_step",
                          hint="set every logit below the k-th largest to -inf (top-k, if given), divide by the "
                               "temperature, softmax over the last dimension, then torch.multinomial(probs, "
                               "num_samples=1, generator=generator)")


def check_cached_attention(cached_attention) -> Passed:
    """``cached_attention(q, K, V) -> (B, nh, 1, hs)``: one new query against every cached key and value."""

    def make_case(i):
        g = _gen(1000 + i)
        B, nh, L, hs = 2, 3, [1, 5, 12][i], 8
        return (torch.randn(B, nh, 1, hs, generator=g), torch.randn(B, nh, L, hs, generator=g),
                torch.randn(B, nh, L, hs, generator=g))

    def package(q, K, V):
        return written_out_attention(q, K, V)[0]  # the one query is the last position: it sees all L keys

    return check_function(cached_attention, package, make_case, name="cached_attention", atol=1e-5, rtol=1e-4,
                          hint="scores q @ K.transpose(-2, -1) times hs ** -0.5 (B, nh, 1, L), softmax over the "
                               "L keys (no mask: the new query may see every cached position), then @ V")
