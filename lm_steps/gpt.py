"""Stage 5: the GPT (a decoder-only transformer), with GPT-2's parameter names.

``transformer.wte`` (token embedding), ``transformer.wpe`` (learned positions), blocks
``transformer.h[i]`` of ``ln_1 -> attn (c_attn, c_proj) -> ln_2 -> mlp (c_fc, c_proj)`` with
pre-LayerNorm residual connections, ``transformer.ln_f`` and ``lm_head``: GPT-2 weights map
over by name. Options: positions (learned / sinusoidal / rotary), feed-forward (GELU / ReLU /
SwiGLU), fewer key/value heads than query heads (multi-query and grouped-query attention), and
a key/value cache for generation (:class:`KVCache`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .losses import check_tokens, lm_loss
from .utils import eval_mode

__all__ = ["GPTConfig", "KVCache", "written_out_attention", "rope_tables", "apply_rope", "sinusoidal_positions",
           "CausalSelfAttention", "FeedForward", "Block", "GPT"]

POSITIONS = ("learned", "sinusoidal", "rope")
FEED_FORWARDS = ("gelu", "relu", "swiglu", "gelu_tanh")  # gelu_tanh: GPT-2's tanh approximation


def _is_int(x) -> bool:
    """An integer (Python or NumPy), not a bool or a float that happens to be whole."""
    return not isinstance(x, bool) and hasattr(x, "__index__")


@dataclass(frozen=True)
class GPTConfig:
    """Sizes and options of a :class:`GPT`. ``n_kv_head=None`` means ``n_head`` (plain multi-head)."""

    vocab_size: int = 65
    block_size: int = 256
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.0
    bias: bool = False
    tie_weights: bool = True
    pos_encoding: str = "learned"
    ffn: str = "gelu"
    n_kv_head: int | None = None

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}; "
                             f"change one of them (e.g. n_embd={self.n_head * max(1, self.n_embd // self.n_head)})")
        if self.n_kv_head is not None and (not _is_int(self.n_kv_head) or self.n_kv_head < 1
                                           or self.n_head % self.n_kv_head):
            raise ValueError(f"n_kv_head={self.n_kv_head!r} must divide n_head={self.n_head} (1 = multi-query, "
                             f"n_head or None = multi-head, a divisor in between = grouped-query)")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1) (0 = no dropout), got {self.dropout!r}")
        for name in ("bias", "tie_weights"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.pos_encoding not in POSITIONS:
            raise ValueError(f"pos_encoding must be one of {POSITIONS}, got {self.pos_encoding!r}")
        if self.ffn not in FEED_FORWARDS:
            raise ValueError(f"ffn must be one of {FEED_FORWARDS}, got {self.ffn!r}")
        if self.pos_encoding == "rope" and self.head_size % 2:
            raise ValueError(f"rope needs an even head size, got n_embd / n_head = {self.head_size}; "
                             f"change n_embd or n_head")
        if self.pos_encoding == "sinusoidal" and self.n_embd % 2:
            raise ValueError(f"sinusoidal positions need an even n_embd, got {self.n_embd}; change n_embd")

    @property
    def head_size(self) -> int:
        """Channels per attention head, ``n_embd // n_head``."""
        return self.n_embd // self.n_head

    @property
    def kv_heads(self) -> int:
        """Number of key/value heads (``n_kv_head``, or ``n_head`` when unset)."""
        return self.n_head if self.n_kv_head is None else int(self.n_kv_head)


class KVCache:
    """Keys and values of the tokens seen so far, for every layer, so each new token costs one
    position's work instead of a pass over the whole context.

    ``k`` and ``v`` are (n_layer, B, n_kv_head, block_size, head_size); ``length`` positions
    are filled. Keys are stored as attention uses them (after the rotary rotation, with rotary
    positions). The cache holds at most ``block_size`` positions, and its keys and values equal
    recomputation's while the whole sequence fits in the block. Past the block the window slides
    and every token in it gets a new position, so the stored keys and values no longer match the
    window's (with learned or sinusoidal positions all of them change; with rotary positions, every
    layer after the first read tokens that have left the window): there
    :func:`lm_steps.sample.generate` re-runs the window instead of reusing the cache.

    ``real`` is None while every cached position is a real token; after a call with padding
    (``attention_mask``) it is (B, block_size), True where the cached position is a real token.
    """

    def __init__(self, config: GPTConfig, batch_size: int, *, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32):
        shape = (config.n_layer, batch_size, config.kv_heads, config.block_size, config.head_size)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0
        self.real: torch.Tensor | None = None

    @property
    def capacity(self) -> int:
        """The most positions the cache holds (the model's block size)."""
        return self.k.size(3)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k``, ``v`` (B, n_kv_head, T, hs) after the filled positions of ``layer``;
        return all keys and values so far, (B, n_kv_head, length + T, hs)."""
        end = self.length + k.size(2)
        self.k[layer, :, :, self.length:end] = k
        self.v[layer, :, :, self.length:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


def written_out_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
                          dropout_p: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention spelled out: scores, causal mask, softmax, weighted sum of the values.

    ``q`` (B, nh, T, hs), ``k`` and ``v`` (B, nh, L, hs); ``mask`` (T, L), or any shape that
    broadcasts to (B, nh, T, L), is True where a query may look (default: causal, the queries
    being the last T of the L positions). Returns the output (B, nh, T, hs)
    and the attention weights (B, nh, T, L). Equal to ``F.scaled_dot_product_attention``.
    """
    T, L = q.size(-2), k.size(-2)
    if mask is None:
        mask = torch.ones(T, L, dtype=torch.bool, device=q.device).tril(diagonal=L - T)  # (T, L)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # (B, nh, T, L)
    att = att.masked_fill(~mask, float("-inf"))
    att = F.softmax(att, dim=-1)
    att = F.dropout(att, p=dropout_p, training=dropout_p > 0)
    return att @ v, att  # (B, nh, T, hs), (B, nh, T, L)


def rope_tables(n: int, head_size: int, *, base: float = 10000.0, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosines and sines (n, head_size // 2) of the rotary angles ``pos * base**(-2i / head_size)``."""
    inv_freq = base ** (-torch.arange(0, head_size, 2, device=device, dtype=torch.float32) / head_size)
    angles = torch.arange(n, device=device, dtype=torch.float32)[:, None] * inv_freq[None, :]  # (n, hs/2)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (first half, second half) of ``x`` (B, nh, T, hs) by the angles of its T positions."""
    x1, x2 = x.float().chunk(2, dim=-1)  # (B, nh, T, hs/2) each
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).type_as(x)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention on ``F.scaled_dot_product_attention``.

    ``c_attn`` projects to queries (n_head heads) and keys and values (n_kv_head heads each);
    key/value heads are shared by ``n_head // n_kv_head`` query heads. ``forward(...,
    need_weights=True)`` runs :func:`written_out_attention` instead (same result) and also returns
    the attention weights, for plotting.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_size = config.n_head, config.kv_heads, config.head_size
        kv_dim = self.n_kv_head * self.head_size
        self.c_attn = nn.Linear(config.n_embd, config.n_embd + 2 * kv_dim, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout, self.resid_dropout = config.dropout, nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, *, rope: tuple[torch.Tensor, torch.Tensor] | None = None,
                cache: KVCache | None = None, layer: int = 0, attn_mask: torch.Tensor | None = None,
                need_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``x`` (B, T, C) -> (B, T, C); with a ``cache``, ``x`` holds the new positions only.

        ``rope``: the rotary cosines and sines of the T positions of ``x``, (T, hs/2) or, with
        padding, (B, 1, T, hs/2). ``attn_mask`` (B, 1, T, L): True where a query may look (made by
        :meth:`GPT.forward` from the padding); None is plain causal attention. ``need_weights``:
        return ``(y, weights)``, the weights (B, nh, T, L) from the written-out attention.
        """
        B, T, C = x.shape
        kv_dim = self.n_kv_head * self.head_size
        q, k, v = self.c_attn(x).split([C, kv_dim, kv_dim], dim=2)
        q = q.view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_kv_head, self.head_size).transpose(1, 2)  # (B, nkv, T, hs)
        v = v.view(B, T, self.n_kv_head, self.head_size).transpose(1, 2)  # (B, nkv, T, hs)
        if rope is not None:  # the angles of these T positions
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, nkv, L, hs): everything so far
        L = k.size(2)
        if self.n_kv_head != self.n_head:
            k = k.repeat_interleave(self.n_head // self.n_kv_head, dim=1)  # (B, nh, L, hs)
            v = v.repeat_interleave(self.n_head // self.n_kv_head, dim=1)  # (B, nh, L, hs)
        p = self.attn_dropout if self.training else 0.0
        if attn_mask is None and 1 < T < L:  # new queries after cached keys: causal among the last T
            attn_mask = torch.ones(T, L, dtype=torch.bool, device=x.device).tril(diagonal=L - T)  # (T, L)
        if need_weights:
            y, att = written_out_attention(q, k, v, mask=attn_mask, dropout_p=p)
        else:  # no mask: causal when T == L; one new query (T == 1) sees every cached position
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p,
                                               is_causal=attn_mask is None and T == L)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C): heads side by side
        y = self.resid_dropout(self.c_proj(y))
        return (y, att) if need_weights else y


class FeedForward(nn.Module):
    """Position-wise feed-forward (GPT-2 calls it ``mlp``): ``c_fc`` up (4x wide), activation, ``c_proj`` down.

    SwiGLU: ``c_fc`` makes a gate and a value (2/3 of 4x wide each, rounded up to a multiple of
    8, so the parameter count stays close), combined as ``silu(gate) * value``.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.kind = config.ffn
        hidden = 4 * config.n_embd
        if self.kind == "swiglu":
            hidden = 8 * math.ceil(2 * hidden / 3 / 8)
        self.c_fc = nn.Linear(config.n_embd, 2 * hidden if self.kind == "swiglu" else hidden, bias=config.bias)
        self.c_proj = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C)."""
        h = self.c_fc(x)
        if self.kind == "swiglu":
            gate, value = h.chunk(2, dim=-1)
            h = F.silu(gate) * value
        else:
            h = F.gelu(h) if self.kind == "gelu" else F.relu(h) if self.kind == "relu" else F.gelu(h, approximate="tanh")
        return self.dropout(self.c_proj(h))


class Block(nn.Module):
    """A pre-LayerNorm transformer block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = FeedForward(config)

    def forward(self, x: torch.Tensor, *, need_weights: bool = False,
                **attn_kw) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """(B, T, C) -> (B, T, C); ``attn_kw`` (rope tables, cache, layer, mask) go to the attention.
        ``need_weights``: return ``(x, attention weights)`` (see :class:`CausalSelfAttention`)."""
        if need_weights:
            a, att = self.attn(self.ln_1(x), need_weights=True, **attn_kw)
        else:
            a = self.attn(self.ln_1(x), **attn_kw)
        x = x + a
        x = x + self.mlp(self.ln_2(x))
        return (x, att) if need_weights else x


def sinusoidal_positions(n: int, dim: int) -> torch.Tensor:
    """Vaswani et al.'s fixed positions (n, dim): sin on even channels, cos on odd ones."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]  # (n, 1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))  # (dim/2,)
    table = torch.zeros(n, dim)
    table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return table


class GPT(nn.Module):
    """A GPT language model: ``forward(idx, targets=None, *, cache=None) -> (logits, loss)``.

    ``idx`` (B, T) with T <= block_size; logits are (B, T, V). With a :class:`KVCache`, ``idx``
    holds only the new tokens, placed after the ``cache.length`` cached ones.
    """

    def __init__(self, config: GPTConfig, *, generator: torch.Generator | None = None):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}; "
                            f"build one with GPTConfig(**fields)")
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList(Block(config) for _ in range(config.n_layer)),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        if config.pos_encoding == "learned":
            self.transformer["wpe"] = nn.Embedding(config.block_size, config.n_embd)
        elif config.pos_encoding == "sinusoidal":
            self.register_buffer("pos_table", sinusoidal_positions(config.block_size, config.n_embd), persistent=False)
        else:
            cos, sin = rope_tables(config.block_size, config.head_size)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.transformer.wte.weight = self.lm_head.weight  # weight tying: one matrix embeds and un-embeds
        self.init_weights(generator=generator)

    @property
    def block_size(self) -> int:
        """The longest context the model reads."""
        return self.config.block_size

    @torch.no_grad()
    def init_weights(self, *, generator: torch.Generator | None = None) -> None:
        """GPT-2's initialisation, in one place.

        Linear and embedding weights ~ N(0, 0.02); biases 0; LayerNorm weight 1, bias 0; the two
        projections that write into the residual stream (``attn.c_proj``, ``mlp.c_proj``) get
        std ``0.02 / sqrt(2 * n_layer)`` so the stream's variance does not grow with depth.
        """
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                std = 0.02 / math.sqrt(2 * self.config.n_layer) if name.endswith("c_proj") else 0.02
                nn.init.normal_(module.weight, mean=0.0, std=std, generator=generator)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def num_params(self, *, exclude_positions: bool = False) -> int:
        """Number of parameters (a tied matrix counted once); optionally without ``wpe``."""
        n = sum(p.numel() for p in self.parameters())
        if exclude_positions and "wpe" in self.transformer:
            n -= self.transformer.wpe.weight.numel()
        return n

    def new_cache(self, batch_size: int, *, device=None, dtype=None) -> KVCache:
        """An empty :class:`KVCache` for ``batch_size`` sequences, on the model's device."""
        w = self.transformer.wte.weight  # the embedding: never swapped for a quantised layer
        return KVCache(self.config, batch_size, device=device or w.device, dtype=dtype or w.dtype)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *, cache: KVCache | None = None,
                attention_mask: torch.Tensor | None = None):
        """Logits (B, T, V) for every position and, with ``targets`` (B, T), the mean loss.

        ``attention_mask`` (B, T), the Hugging Face convention: 1 for a real token of ``idx``, 0
        for padding. Padding is masked out of attention (no real token looks at it) and positions
        count from each row's first real token, so a left-padded row gives the logits of its
        prompt alone. Logits at padded positions mean nothing; give their targets ``-1``. With a
        cache, the mask covers the new tokens of ``idx`` only (the cache remembers the earlier
        ones; new tokens without a mask are real).
        """
        x, _ = self._hidden(idx, cache=cache, attention_mask=attention_mask)
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, V)
        return logits, None if targets is None else lm_loss(logits, targets)

    def _hidden(self, idx: torch.Tensor, *, cache: KVCache | None, attention_mask: torch.Tensor | None,
                need_weights: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The last block's output (B, T, C) and, with ``need_weights``, every layer's attention weights."""
        check_tokens(idx, self.config.vocab_size)
        B, T = idx.shape
        start = cache.length if cache is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(f"{start + T} positions exceed block_size={self.config.block_size}; "
                             f"crop the input to its last {self.config.block_size} tokens")
        real = self._real_tokens(attention_mask, cache, B, T, start)  # (B, start + T) bool, or None: all real
        if real is None:
            pos, attn_mask = torch.arange(start, start + T, device=idx.device), None  # (T,)
        else:
            pos = (real.long().cumsum(1) - 1).clamp(min=0)[:, start:]  # (B, T): counted from the first real token
            L = start + T
            cols, rows = torch.arange(L, device=idx.device), torch.arange(start, L, device=idx.device)
            causal = cols[None, :] <= rows[:, None]  # (T, L)
            itself = cols[None, :] == rows[:, None]  # (T, L): a padding query looks at itself, never at nothing
            attn_mask = ((causal & real[:, None, :]) | itself)[:, None]  # (B, 1, T, L)
        x = self.transformer.wte(idx)  # (B, T, C)
        kind = self.config.pos_encoding
        if kind == "learned":
            x = x + self.transformer.wpe(pos)  # (T, C) broadcast, or (B, T, C)
        elif kind == "sinusoidal":
            x = x + self.pos_table[pos]  # (T, C) broadcast, or (B, T, C)
        rope = None
        if kind == "rope":
            rope = (self.rope_cos[pos], self.rope_sin[pos])  # (T, hs/2) or (B, T, hs/2)
            if real is not None:
                rope = (rope[0][:, None], rope[1][:, None])  # (B, 1, T, hs/2): broadcast over heads
        x = self.transformer.drop(x)
        weights = []
        for i, block in enumerate(self.transformer.h):
            if need_weights:
                x, att = block(x, rope=rope, cache=cache, layer=i, attn_mask=attn_mask, need_weights=True)
                weights.append(att)
            else:
                x = block(x, rope=rope, cache=cache, layer=i, attn_mask=attn_mask)
        if cache is not None:
            cache.length += T
        return x, weights

    @staticmethod
    def _real_tokens(attention_mask, cache, B: int, T: int, start: int) -> torch.Tensor | None:
        """(B, start + T) True at real tokens (cached and new), or None when every one is real;
        records the new tokens' mask in the cache."""
        if attention_mask is not None:
            if tuple(attention_mask.shape) != (B, T):
                raise ValueError(f"attention_mask must have the shape of idx, (B, T) = {(B, T)}; "
                                 f"got {tuple(attention_mask.shape)}")
            if attention_mask.dtype != torch.bool and not ((attention_mask == 0) | (attention_mask == 1)).all():
                raise ValueError("attention_mask must hold 1 for real tokens and 0 for padding, nothing else")
            new = attention_mask.to(torch.bool)
            if cache is None:
                return None if bool(new.all()) else new
        elif cache is None or cache.real is None:
            return None
        else:
            new = torch.ones(B, T, dtype=torch.bool, device=cache.real.device)
        if cache.real is None:
            if bool(new.all()):
                return None
            cache.real = torch.ones(B, cache.capacity, dtype=torch.bool, device=new.device)
        cache.real[:, start:start + T] = new
        return cache.real[:, :start + T]

    @torch.no_grad()
    def attention_maps(self, idx: torch.Tensor, *, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attention weights of every layer and head for ``idx`` (B, T): (n_layer, B, nh, T, T), in eval mode.

        With an ``attention_mask`` (see :meth:`forward`), padding gets weight 0 from every real token.
        """
        with eval_mode(self):
            _, weights = self._hidden(idx, cache=None, attention_mask=attention_mask, need_weights=True)
        return torch.stack(weights)  # (n_layer, B, nh, T, T)
