"""Inference plumbing around the GPT (nanochat's ``engine.py``): the key/value cache, padded
batches of prompts, cached generation, beam search and attention maps.

:func:`lm_steps.sample.generate` is the loop a learner reads (crop, forward, sample, append); it
hands the work here when a cache or a padding mask is involved, and the result is the same
(every step's logits equal the model run on the last ``block_size`` tokens, within float rounding).
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable

import torch

from .checks import is_int, is_number
from .gpt import GPT, GPTConfig
from .losses import check_attention_mask, check_tokens
from .utils import eval_mode, unwrap

__all__ = ["KVCache", "new_cache", "can_cache", "left_pad", "check_left_padding", "generate", "beam_search",
           "written_out_attention", "attention_maps", "prompt_or_start", "transposed_output_layer"]


class KVCache:
    """Keys and values of the tokens seen so far, for every layer, so each new token costs one
    position's work instead of a pass over the whole context.

    ``k`` and ``v`` are (n_layer, B, n_kv_head, block_size, head_size); ``length`` positions are
    filled. Keys are stored as attention uses them (after the rotary rotation, with rotary
    positions). The cache holds at most ``block_size`` positions, and its keys and values equal
    recomputation's while the whole sequence fits in the block. Past the block the window slides
    and every token in it gets a new position, so the stored keys and values no longer match the
    window's (with learned or sinusoidal positions all of them change; with rotary positions, every
    layer after the first read tokens that have left the window): there :func:`generate` re-runs
    the window instead of reusing the cache.

    ``real`` is None while every cached position is a real token; after a call with padding it is
    (B, block_size), True where the cached position is a real token. The model calls
    :meth:`advance` once per forward and each layer's attention calls ``layer(i).update``.
    """

    def __init__(self, config: GPTConfig, batch_size: int, *, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32):
        if not config.causal:
            raise ValueError("a KV cache needs causal attention (causal=True): with attention both ways every "
                             "new token changes the earlier positions' outputs")
        shape = (config.n_layer, batch_size, config.kv_heads, config.block_size, config.head_size)
        self.k = torch.empty(shape, device=device, dtype=dtype)  # positions past `length` are never read
        self.v = torch.empty(shape, device=device, dtype=dtype)
        self.length = 0
        self.real: torch.Tensor | None = None
        self._layers = [_LayerCache(self, i) for i in range(config.n_layer)]

    @property
    def capacity(self) -> int:
        """The most positions the cache holds (the model's block size)."""
        return self.k.size(3)

    def layer(self, i: int) -> "_LayerCache":
        """Layer ``i``'s part of the cache (what its attention receives)."""
        return self._layers[i]

    def advance(self, T: int, real: torch.Tensor | None = None) -> torch.Tensor | None:
        """Take ``T`` new tokens after the ``length`` cached ones; ``real`` (B, T) bool marks their real
        tokens (None: all real). Returns which of all ``length + T`` tokens are real, (B, length + T),
        or None while every one is."""
        start, end = self.length, self.length + T
        if end > self.capacity:
            raise ValueError(f"{end} positions exceed the cache's {self.capacity}; start a new cache")
        if real is not None or self.real is not None:
            if self.real is None:
                self.real = torch.ones(self.k.size(1), self.capacity, dtype=torch.bool, device=self.k.device)
            self.real[:, start:end] = True if real is None else real
        self.length = end
        return None if self.real is None else self.real[:, :end]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k``, ``v`` (B, n_kv_head, T, hs) of ``layer`` as the last T of the ``length`` positions
        (after :meth:`advance`); return all keys and values so far, (B, n_kv_head, length, hs)."""
        start = self.length - k.size(2)
        self.k[layer, :, :, start:self.length] = k
        self.v[layer, :, :, start:self.length] = v
        return self.k[layer, :, :, :self.length], self.v[layer, :, :, :self.length]


class _LayerCache:
    """One layer's view of a :class:`KVCache`: ``update(k, v)`` is ``cache.update(layer, k, v)``."""

    def __init__(self, cache: KVCache, layer: int):
        self.cache, self.index = cache, layer

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """See :meth:`KVCache.update`."""
        return self.cache.update(self.index, k, v)


def new_cache(model: GPT, batch_size: int, *, device=None, dtype=None) -> KVCache:
    """An empty :class:`KVCache` for ``batch_size`` sequences, on the model's device and dtype."""
    w = model.transformer.wte.weight  # the embedding: never swapped for a quantised layer (notebook 09)
    return KVCache(model.config, batch_size, device=device or w.device, dtype=dtype or w.dtype)


def can_cache(model: torch.nn.Module) -> bool:
    """True for a model that generates with a :class:`KVCache`: a causal :class:`~lm_steps.gpt.GPT`."""
    model = unwrap(model)
    return isinstance(model, GPT) and model.config.causal


@contextlib.contextmanager
def transposed_output_layer(model: torch.nn.Module):
    """While the block runs, a float32 CPU model's output layer multiplies by a transposed,
    contiguous copy of its weight: the same logits (within float rounding) about twice as fast
    for a few rows against a large vocabulary (GPT-2's 50,257 x 768: 6.6 against 11.8 ms a token
    on one core), because the CPU kernels read a (in, out) matrix faster than a (out, in) one.
    Costs the copy's memory for the block's duration; does nothing elsewhere (other devices and
    dtypes, or an output layer that is not ``nn.Linear``)."""
    head = getattr(unwrap(model), "lm_head", None)
    if type(head) is not torch.nn.Linear or head.weight.device.type != "cpu" or head.weight.dtype != torch.float32:
        yield
        return
    weight_t = head.weight.detach().t().contiguous()  # (in, out)

    def forward(x):
        flat = x.reshape(-1, x.size(-1))
        out = flat @ weight_t if head.bias is None else torch.addmm(head.bias, flat, weight_t)
        return out.view(*x.shape[:-1], weight_t.size(1))

    head.forward = forward  # this module only, for this block
    try:
        yield
    finally:
        del head.forward


def left_pad(prompts, *, pad_id: int = 0, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts of different lengths as one left-padded batch: ``(idx, attention_mask)``, both
    (B, T) with T the longest prompt; ``attention_mask`` is 1 at real tokens, 0 at padding.

    ``prompts`` is a sequence of token-id lists or 1-D tensors, each with at least one token.
    ``pad_id`` fills the padding (any valid id: the mask keeps the model from reading it).

    >>> left_pad([[5, 6, 7], [8]])
    (tensor([[5, 6, 7],
            [0, 0, 8]]), tensor([[1, 1, 1],
            [0, 0, 1]]))
    """
    rows = [p.tolist() if isinstance(p, torch.Tensor) else list(p) for p in prompts]
    if not rows:
        raise ValueError("left_pad needs at least one prompt")
    for b, row in enumerate(rows):
        if not row:
            raise ValueError(f"prompt {b} is empty; give every prompt at least one token (e.g. a start token)")
        if any(isinstance(t, list) for t in row):
            raise ValueError(f"prompt {b} is not a flat sequence of token ids")
    T = max(len(row) for row in rows)
    idx = torch.tensor([[pad_id] * (T - len(row)) + row for row in rows], dtype=torch.long, device=device)  # (B, T)
    mask = torch.tensor([[0] * (T - len(row)) + [1] * len(row) for row in rows], dtype=torch.long, device=device)
    return idx, mask


def check_left_padding(attention_mask: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``attention_mask`` as a bool (B, T) tensor after :func:`~lm_steps.losses.check_attention_mask`
    and the checks generation adds: padding on the left only, at least one real token per row."""
    real = check_attention_mask(attention_mask, idx)
    late = real[:, :-1] & ~real[:, 1:]  # a real token followed by padding
    if bool(late.any()):
        b = int(late.any(dim=1).nonzero()[0, 0])
        raise ValueError(f"row {b} of attention_mask has padding after a real token; generate needs prompts "
                         f"padded on the left (lm_steps.inference.left_pad does that)")
    if real.size(1) and not bool(real[:, -1].all()):
        b = int((~real[:, -1]).nonzero()[0, 0])
        raise ValueError(f"row {b} of attention_mask has no real token; give every prompt at least one token")
    return real


def prompt_or_start(idx: torch.Tensor, start_token: int) -> torch.Tensor:
    """``idx`` (B, T) after checking it is a 2-D tensor; an empty prompt (B, 0) becomes ``start_token`` (B, 1)."""
    if not isinstance(idx, torch.Tensor):
        raise TypeError(f"idx must be a (B, T) tensor of token ids, got {type(idx).__name__}; "
                        f"wrap it with torch.tensor([ids])")
    if idx.dim() != 2:
        raise ValueError(f"idx must be (B, T) token ids, got shape {tuple(idx.shape)}")
    if idx.size(1) == 0:
        return torch.full((idx.size(0), 1), start_token, dtype=torch.long, device=idx.device)
    return idx


@torch.no_grad()
def generate(model: torch.nn.Module, idx: torch.Tensor, max_new_tokens: int,
             next_token: Callable[[torch.Tensor], torch.Tensor] | None = None, *, use_cache: bool | None = None,
             attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Extend ``idx`` (B, T) by ``max_new_tokens`` tokens, ``next_token(logits (B, V)) -> (B, 1)``
    choosing each one (default: greedy); with a KV cache and left padding.

    ``use_cache`` (default: whenever :func:`can_cache`) changes the speed only, never the result:
    every step's logits equal recomputing the model over the last ``block_size`` tokens (fp32,
    within float rounding). While the sequence fits in the block the first step runs the whole
    prompt (prefill) and each later step runs the model on the one new token. Once the sequence is
    longer than the block, the window slides by one token per step and every token in it moves to
    a new position: with learned or sinusoidal positions every key and value changes, and with
    rotary positions the keys of every layer after the first depend on tokens that have left the
    window. So past the block each step re-runs the model on the last ``block_size`` tokens, as
    without the cache, and the cache no longer saves time.

    Prompts of different lengths go in one batch the Hugging Face way: padded on the left
    (:func:`left_pad`), with ``attention_mask`` (B, T) holding 1 for real tokens and 0 for padding.
    The model never attends to padding and counts positions from each row's first real token, so
    every step's logits for row ``b`` equal those of generating from prompt ``b`` alone. Row ``b`` of
    the result is its padding, its prompt and its new tokens. The padding takes room in the window:
    the batch is past the block once the padded width plus the new tokens is longer than ``block_size``.
    """
    next_token = next_token or (lambda logits: logits.argmax(dim=-1, keepdim=True))
    idx = prompt_or_start(idx, 0)
    if not is_int(max_new_tokens) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0 (an integer), got {max_new_tokens!r}")
    if attention_mask is not None and not isinstance(unwrap(model), GPT):
        raise ValueError(f"{type(model).__name__}.forward takes no attention_mask; generate from one prompt "
                         f"at a time, or from prompts of equal length without a mask")
    if use_cache and not can_cache(model):
        raise ValueError(f"{type(model).__name__} has no KV cache; call generate with use_cache=False")
    use_cache = can_cache(model) if use_cache is None else use_cache
    real = None if attention_mask is None else check_left_padding(attention_mask.to(idx.device), idx)
    if real is not None and bool(real.all()):
        real = None  # no padding after all: the plain path
    pad = 0 if real is None else int((~real).sum(dim=1).max())  # the widest padding, on the host once
    bs = model.block_size
    with eval_mode(model), transposed_output_layer(model):
        cache = new_cache(unwrap(model), idx.size(0)) if use_cache else None
        for _ in range(max_new_tokens):
            if cache is not None and cache.length == 0 and idx.size(1) <= bs:  # prefill: the whole prompt
                logits, _ = model(idx, cache=cache, attention_mask=real)
            elif cache is not None and idx.size(1) <= bs:  # the cache holds every earlier position
                logits, _ = model(idx[:, -1:], cache=cache)
            else:  # no cache, or past the block: recompute the window of the last block_size tokens
                window = real[:, -bs:] if real is not None and idx.size(1) - bs < pad else None
                logits, _ = model(idx[:, -bs:], attention_mask=window)
            nxt = next_token(logits[:, -1, :])  # (B, 1)
            idx = torch.cat([idx, nxt], dim=1)
            if real is not None:
                real = torch.cat([real, torch.ones_like(nxt, dtype=torch.bool)], dim=1)  # new tokens are real
    return idx


@torch.no_grad()
def beam_search(model: torch.nn.Module, idx: torch.Tensor, beam_width: int, max_new_tokens: int, *,
                length_penalty: float = 1.0, eos_token: int | None = None, start_token: int = 0) -> torch.Tensor:
    """The most likely continuation of one prompt ``idx`` (1, T) found by beam search: (1, T + n).

    Each step keeps the ``beam_width`` partial sequences with the highest total log-probability.
    A beam that emits ``eos_token`` is finished and leaves the search; sequences are ranked by
    ``log p / n_new ** length_penalty``, so ``length_penalty`` > 0 stops short ones from winning
    merely for being short (it only matters with an ``eos_token``: otherwise every sequence has
    ``max_new_tokens`` new tokens). ``beam_width=1`` is greedy decoding.
    """
    idx = prompt_or_start(idx, start_token)
    if idx.size(0) != 1:
        raise ValueError(f"beam_search takes one prompt, shape (1, T); got {tuple(idx.shape)}")
    if beam_width < 1:
        raise ValueError(f"beam_width must be >= 1, got {beam_width}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if not is_number(length_penalty) or not math.isfinite(length_penalty):
        raise ValueError(f"length_penalty must be a finite number (0 ranks by total log-probability), "
                         f"got {length_penalty!r}")
    beams, scores = idx, torch.zeros(1, device=idx.device)  # (nb, T), (nb,)
    finished: list[tuple[float, torch.Tensor]] = []
    with eval_mode(model):
        for n in range(1, max_new_tokens + 1):
            logits, _ = model(beams[:, -model.block_size:])
            logp = torch.log_softmax(logits[:, -1, :].float(), dim=-1)  # (nb, V)
            cand = (scores[:, None] + logp).view(-1)  # (nb * V,)
            top = cand.topk(min(beam_width, cand.numel()))
            V = logp.size(-1)
            beams = torch.cat([beams[top.indices // V], (top.indices % V)[:, None]], dim=1)  # (nb, T + n)
            scores = top.values
            if eos_token is not None:
                done = beams[:, -1] == eos_token
                finished += [(s.item() / n ** length_penalty, b) for s, b in zip(scores[done], beams[done])]
                beams, scores = beams[~done], scores[~done]
                if len(beams) == 0:
                    break
        n_new = beams.size(1) - idx.size(1)
        finished += [(s.item() / max(n_new, 1) ** length_penalty, b) for s, b in zip(scores, beams)]
    best = max(finished, key=lambda item: item[0])[1]
    return best[None, :]  # (1, T + n)


def written_out_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
                          dropout_p: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention spelled out: scores, mask, softmax, weighted sum of the values.

    ``q`` (B, nh, T, hs), ``k`` and ``v`` (B, nh, L, hs); ``mask`` (T, L), or any shape that
    broadcasts to (B, nh, T, L), is True where a query may look (default: causal, the queries
    being the last T of the L positions). Returns the output (B, nh, T, hs) and the attention
    weights (B, nh, T, L). Equal to ``F.scaled_dot_product_attention``.
    """
    T, L = q.size(-2), k.size(-2)
    if mask is None:
        mask = torch.ones(T, L, dtype=torch.bool, device=q.device).tril(diagonal=L - T)  # (T, L)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # (B, nh, T, L)
    att = att.masked_fill(~mask, float("-inf"))
    att = torch.softmax(att, dim=-1)
    att = torch.nn.functional.dropout(att, p=dropout_p, training=dropout_p > 0)
    return att @ v, att  # (B, nh, T, hs), (B, nh, T, L)


@torch.no_grad()
def attention_maps(model: GPT, idx: torch.Tensor, *, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Attention weights of every layer and head for ``idx`` (B, T): (n_layer, B, nh, T, T), in eval mode.

    One forward pass records each attention's inputs (with a forward pre-hook); the weights are
    then :func:`written_out_attention` of that attention's own queries and keys
    (:meth:`~lm_steps.gpt.CausalSelfAttention.qkv`). With an ``attention_mask`` (see
    :meth:`lm_steps.gpt.GPT.forward`), padding gets weight 0 from every real token.
    """
    inputs = []
    blocks = unwrap(model).transformer.h
    hooks = [b.attn.register_forward_pre_hook(lambda module, args: inputs.append(args)) for b in blocks]
    try:
        with eval_mode(model):
            model(idx, attention_mask=attention_mask)
    finally:
        for hook in hooks:
            hook.remove()
    maps = []
    for block, (x, rope, mask, _) in zip(blocks, inputs):
        attn = block.attn
        q, k, v = attn.qkv(x, rope)  # (B, nh, T, hs), (B, nkv, T, hs) x 2
        k = k.repeat_interleave(attn.n_head // attn.n_kv_head, dim=1)  # (B, nh, T, hs)
        v = v.repeat_interleave(attn.n_head // attn.n_kv_head, dim=1)
        if mask is None and not attn.causal:
            mask = torch.ones(q.size(2), k.size(2), dtype=torch.bool, device=q.device)  # (T, T): every key
        maps.append(written_out_attention(q, k, v, mask)[1])
    return torch.stack(maps)  # (n_layer, B, nh, T, T)
