"""Checks for notebook 07 (the GPT grows up): each runs the learner's function and the package's on fresh inputs."""
from __future__ import annotations

import torch

from ..gpt import GPT, GPTConfig
from ..inference import attention_maps, written_out_attention
from . import Passed, check_function

__all__ = ["check_repeat_kv", "check_padding_mask", "WRONG_ANSWERS"]

#: Plausible mistakes each check must catch (tests/test_exercises.py applies each to the worked solution):
#: exercise name -> [(text of the solution, what a learner might write instead), ...].
WRONG_ANSWERS = {
    "repeat_kv": [
        ("k.repeat_interleave(n_rep, dim=1)", "k.repeat(1, n_rep, 1, 1)"),  # heads paired in the wrong order
        ("k.repeat_interleave(n_rep, dim=1)", "k.repeat_interleave(n_rep, dim=2)"),  # repeats positions, not heads
    ],
    "padding_mask": [
        ("causal & real[:, None, :]", "causal & real[:, :, None]"),  # masks the queries, not the keys
        ("((causal & real[:, None, :]) | itself)", "(causal & real[:, None, :])"),  # a padding query sees nothing
        (".tril()  # (T, T): key <= query", ".triu()  # (T, T): key <= query"),  # sees the future instead of the past
    ],
}


def check_repeat_kv(repeat_kv) -> Passed:
    """``repeat_kv(k, n_rep)``: (B, n_kv, T, hs) -> (B, n_kv * n_rep, T, hs), kv head j serving query heads
    j * n_rep ... (j + 1) * n_rep - 1. Checked through attention: the package's grouped-query
    ``CausalSelfAttention`` against the written-out attention with the learner's repeat."""

    def make_case(i):
        g = torch.Generator().manual_seed(7000 + i)
        n_kv, n_rep, hs = (2, 2, 4), (2, 3, 8), (3, 2, 8)
        n_kv, n_rep, hs = n_kv[i % 3], n_rep[i % 3], hs[i % 3]
        cfg = GPTConfig(vocab_size=11, block_size=16, n_layer=1, n_head=n_kv * n_rep, n_kv_head=n_kv,
                        n_embd=n_kv * n_rep * hs)
        attn = GPT(cfg, generator=g).transformer.h[0].attn.eval()  # a CausalSelfAttention, seeded
        x = torch.randn(2, 5 + i, cfg.n_embd, generator=g)  # (B, T, C)
        return attn, x, n_kv, n_rep

    def learners(attn, x, n_kv, n_rep):
        B, T, C = x.shape
        hs = C // (n_kv * n_rep)
        q, k, v = attn.c_attn(x).split([C, n_kv * hs, n_kv * hs], dim=-1)
        q = q.view(B, T, n_kv * n_rep, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, n_kv, hs).transpose(1, 2)  # (B, n_kv, T, hs)
        v = v.view(B, T, n_kv, hs).transpose(1, 2)  # (B, n_kv, T, hs)
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
        shape = tuple(k.shape) if isinstance(k, torch.Tensor) else None
        if shape != (B, n_kv * n_rep, T, hs):
            return shape, None
        y, _ = written_out_attention(q, k, v)  # (B, nh, T, hs)
        return shape, attn.c_proj(y.transpose(1, 2).reshape(B, T, C)).detach()

    def package(attn, x, n_kv, n_rep):
        B, T, C = x.shape
        return (B, n_kv * n_rep, T, C // (n_kv * n_rep)), attn(x).detach()  # the package repeats inside

    return check_function(learners, package, make_case, name="repeat_kv", atol=1e-5, rtol=1e-5,
                          hint="the first value compared is the shape of repeat_kv(k, n_rep), the second the "
                               "attention output it gives; query head h must read key/value head h // n_rep, so "
                               "each head is copied n_rep times next to itself (repeat_interleave on dim 1), "
                               "not the whole stack of heads n_rep times")


def check_padding_mask(padding_mask) -> Passed:
    """``padding_mask(attention_mask)``: (B, T) 0/1, left-padded -> (B, 1, T, T) bool, where the package's GPT
    gives a key any attention weight. Checked against the weights of a small GPT called with that mask."""

    def make_case(i):
        g = torch.Generator().manual_seed(7100 + i)
        B, T = 3 + i, 4 + 2 * i
        n_real = torch.randint(1, T + 1, (B,), generator=g)
        n_real[0] = T  # one row without padding
        n_real[-1] = 1  # one row of a single token
        attention_mask = (torch.arange(T)[None, :] >= (T - n_real)[:, None]).long()  # (B, T): left padding
        return (attention_mask,)

    model = GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=1, n_head=2, n_embd=8),
                generator=torch.Generator().manual_seed(7199))

    def package(attention_mask):
        idx = torch.randint(11, attention_mask.shape, generator=torch.Generator().manual_seed(7198))
        with torch.no_grad():
            weights = attention_maps(model, idx, attention_mask=attention_mask)[0]  # (B, nh, T, T), layer 0
        return (weights > 0)[:, :1]  # (B, 1, T, T): every head has the same mask

    return check_function(padding_mask, package, make_case, name="padding_mask",
                          hint="return ((causal & real key) | itself)[:, None]: causal is tril of a (T, T) ones matrix "
                               "(key <= query), real is attention_mask.bool() indexed [:, None, :] so it removes "
                               "padded keys (columns), itself is the (T, T) identity, so a padding query still "
                               "sees one position")
