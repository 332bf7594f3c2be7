"""Stage 5: the GPT (a decoder-only transformer), with GPT-2's parameter names.

``transformer.wte`` (token embedding), ``transformer.wpe`` (learned positions), blocks
``transformer.h[i]`` of ``ln_1 -> attn (c_attn, c_proj) -> ln_2 -> mlp (c_fc, c_proj)`` with
pre-LayerNorm residual connections, ``transformer.ln_f`` and ``lm_head``: GPT-2 weights map
over by name. Options: positions (learned / sinusoidal / rotary), feed-forward (GELU / ReLU /
SwiGLU), fewer key/value heads than query heads (grouped-query attention), and attention that is
not causal (``causal=False``: the encoder of :mod:`lm_steps.mlm`). Generation with a key/value
cache, padded batches of prompts, beam search and attention maps are :mod:`lm_steps.inference`.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checks import check_bool, check_choice, check_fields, check_number, is_int
from .losses import check_attention_mask, check_tokens, lm_loss

__all__ = ["GPTConfig", "rope_tables", "apply_rope", "sinusoidal_positions", "padded_positions",
           "CausalSelfAttention", "FeedForward", "Block", "GPT"]

POSITIONS = ("learned", "sinusoidal", "rope")
FEED_FORWARDS = ("gelu", "relu", "swiglu", "gelu_tanh")  # gelu_tanh: GPT-2's tanh approximation


@dataclass(frozen=True)
class GPTConfig:
    """Sizes and options of a :class:`GPT`."""

    vocab_size: int = 65
    block_size: int = 256
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.0
    bias: bool = False
    tie_weights: bool = True
    pos_encoding: str = "learned"  # or "sinusoidal", "rope"
    ffn: str = "gelu"  # or "relu", "swiglu", "gelu_tanh"
    n_kv_head: int | None = None  # None: n_head; fewer: grouped-query attention (1: multi-query)
    causal: bool = True  # False: every position sees the whole sequence (an encoder)

    def __post_init__(self):
        check_fields(self, ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"), minimum=1)
        check_number("dropout", self.dropout, low=0, high=1, high_open=True, hint=" (0 = no dropout)")
        for name in ("bias", "tie_weights", "causal"):
            check_bool(name, getattr(self, name))
        check_choice("pos_encoding", self.pos_encoding, POSITIONS)
        check_choice("ffn", self.ffn, FEED_FORWARDS)
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}; "
                             f"change one of them (e.g. n_embd={self.n_head * max(1, self.n_embd // self.n_head)})")
        kv = self.n_kv_head
        if kv is not None and not (is_int(kv) and kv >= 1 and self.n_head % kv == 0):
            raise ValueError(f"n_kv_head={kv!r} must divide n_head={self.n_head} (1 = multi-query, "
                             f"n_head or None = multi-head, a divisor in between = grouped-query)")
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


def rope_tables(n: int, head_size: int, *, base: float = 10000.0, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosines and sines (n, head_size // 2) of the rotary angles ``pos * base**(-2i / head_size)``."""
    inv_freq = base ** (-torch.arange(0, head_size, 2, device=device, dtype=torch.float32) / head_size)
    angles = torch.arange(n, device=device, dtype=torch.float32)[:, None] * inv_freq[None, :]  # (n, hs/2)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (first half, second half) of ``x`` (B, nh, T, hs) by the angles of its T
    positions: ``cos``, ``sin`` (T, hs/2), or (B, T, hs/2) when each row has its own positions."""
    if cos.dim() == 3:
        cos, sin = cos[:, None], sin[:, None]  # (B, 1, T, hs/2): the same for every head
    x1, x2 = x.float().chunk(2, dim=-1)  # (B, nh, T, hs/2) each
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).type_as(x)


def sinusoidal_positions(n: int, dim: int) -> torch.Tensor:
    """Vaswani et al.'s fixed positions (n, dim): sin on even channels, cos on odd ones."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]  # (n, 1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))  # (dim/2,)
    table = torch.zeros(n, dim)
    table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return table


def padded_positions(real: torch.Tensor, T: int, *, causal: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions (B, T) and attention mask (B, 1, T, L) of the last T of L tokens with padding.

    ``real`` (B, L) is True at real tokens. A token's position counts the real tokens before it, so
    a left-padded prompt sits where it would alone; a query looks at the real keys (those up to
    itself when ``causal``) and at itself, so a padding query is never left with nothing to see.
    """
    L = real.size(1)
    pos = (real.long().cumsum(1) - 1).clamp(min=0)[:, L - T:]  # (B, T)
    keys, queries = torch.arange(L, device=real.device), torch.arange(L - T, L, device=real.device)
    seen = keys[None, :] <= queries[:, None] if causal else torch.ones(T, L, dtype=torch.bool, device=real.device)
    itself = keys[None, :] == queries[:, None]  # (T, L)
    return pos, ((seen & real[:, None, :]) | itself)[:, None]  # (B, 1, T, L)


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kw) -> torch.Tensor:
    """``F.scaled_dot_product_attention(q, k, v, **kw)``, except on the CPU in bfloat16 (autocast
    included), where it attends in float32 and returns bfloat16: torch's CPU kernel is about 2.6x
    slower in bfloat16 than in float32 at a small GPT's sizes (64 positions, heads of 32), and the
    softmax is more precise. Elsewhere, and in float32, it is torch's function itself."""
    if q.device.type != "cpu" or q.dtype != torch.bfloat16:
        return F.scaled_dot_product_attention(q, k, v, **kw)
    with torch.autocast("cpu", enabled=False):
        return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), **kw).to(q.dtype)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention, causal unless ``config.causal`` is False.

    ``c_attn`` projects to queries (n_head heads) and keys and values (n_kv_head heads each, each
    key/value head shared by ``n_head // n_kv_head`` query heads); ``c_proj`` mixes the heads.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_size = config.n_head, config.kv_heads, config.head_size
        self.c_attn = nn.Linear(config.n_embd, config.n_embd + 2 * self.n_kv_head * self.head_size, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout, self.resid_dropout = config.dropout, nn.Dropout(config.dropout)
        self.causal = config.causal

    def qkv(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None):
        """Queries (B, nh, T, hs), keys and values (B, n_kv_head, T, hs) of ``x`` (B, T, C)."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split([C, self.n_kv_head * self.head_size, self.n_kv_head * self.head_size], dim=2)
        q = q.view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_kv_head, self.head_size).transpose(1, 2)  # (B, nkv, T, hs)
        v = v.view(B, T, self.n_kv_head, self.head_size).transpose(1, 2)  # (B, nkv, T, hs)
        if rope is not None:  # rotary positions: turn queries and keys by their positions' angles
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        return q, k, v

    def forward(self, x: torch.Tensor, rope=None, mask: torch.Tensor | None = None, cache=None) -> torch.Tensor:
        """``x`` (B, T, C) -> (B, T, C).

        ``rope``: rotary (cos, sin) of x's positions; ``mask`` (B, 1, T, L): True where a query may
        look, None for the plain causal (or full) mask; ``cache``: this layer's
        :class:`lm_steps.inference.KVCache`, which adds the keys and values of earlier positions.
        """
        B, T, C = x.shape
        q, k, v = self.qkv(x, rope)
        if cache is not None:
            k, v = cache.update(k, v)  # (B, nkv, L, hs): the cached positions, then these
        y = scaled_dot_product_attention(  # softmax(q k^T / sqrt(hs)) v over the allowed keys, every head
            q, k, v, attn_mask=mask, dropout_p=self.attn_dropout if self.training else 0.0,
            is_causal=self.causal and mask is None and T > 1,  # one new query (T == 1) sees every cached key
            enable_gqa=self.n_kv_head != self.n_head)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C): heads side by side
        return self.resid_dropout(self.c_proj(y))


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

    def forward(self, x: torch.Tensor, rope=None, mask=None, cache=None) -> torch.Tensor:
        """(B, T, C) -> (B, T, C); ``rope``, ``mask`` and ``cache`` go to the attention."""
        x = x + self.attn(self.ln_1(x), rope, mask, cache)
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    """A GPT language model: ``forward(idx, targets=None) -> (logits, loss)``, logits (B, T, V)."""

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

    @property
    def vocab_size(self) -> int:
        """Number of token ids."""
        return self.config.vocab_size

    @torch.no_grad()
    def init_weights(self, *, generator: torch.Generator | None = None) -> None:
        """GPT-2's initialisation, in one place.

        Linear and embedding weights normal with mean 0 and standard deviation 0.02; biases 0;
        LayerNorm weight 1, bias 0; the two projections that write into the residual stream
        (``attn.c_proj``, ``mlp.c_proj``) get standard deviation ``0.02 / sqrt(2 * n_layer)``, so
        the stream's variance does not grow with depth.
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

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *, cache=None,
                attention_mask: torch.Tensor | None = None):
        """Logits (B, T, V) at every position of ``idx`` (B, T) and, with ``targets`` (B, T), the mean loss.

        ``attention_mask`` (B, T; 1 real token, 0 padding) and ``cache`` (a KV cache) serve padded
        batches and generation: see :meth:`positions` and :mod:`lm_steps.inference`.
        """
        check_tokens(idx, self.config.vocab_size)
        pos, mask = self.positions(idx, cache=cache, attention_mask=attention_mask)  # (T,) 0..T-1, None: causal
        x = self.transformer.wte(idx)  # (B, T, C): token embeddings
        if self.config.pos_encoding == "learned":
            x = x + self.transformer.wpe(pos)  # + position embeddings, (T, C) broadcast over the batch
        elif self.config.pos_encoding == "sinusoidal":
            x = x + self.pos_table[pos]  # fixed positions instead of learned ones
        rope = (self.rope_cos[pos], self.rope_sin[pos]) if self.config.pos_encoding == "rope" else None
        x = self.transformer.drop(x)
        for i, block in enumerate(self.transformer.h):
            x = block(x, rope, mask, None if cache is None else cache.layer(i))
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, V)
        return logits, None if targets is None else lm_loss(logits, targets)

    def positions(self, idx: torch.Tensor, *, cache=None, attention_mask: torch.Tensor | None = None):
        """Positions (T,) or (B, T) of ``idx``'s tokens, and the attention mask (B, 1, T, L) or None.

        Plain: 0..T-1 and None (the attention's own causal mask). With padding (``attention_mask``)
        see :func:`padded_positions`. With a ``cache`` the tokens follow the cached ones; the cache
        remembers which of those were padding (:class:`lm_steps.inference.KVCache`).
        """
        B, T = idx.shape
        start = 0 if cache is None else cache.length
        if start + T > self.config.block_size:
            raise ValueError(f"{start + T} positions exceed block_size={self.config.block_size}; "
                             f"crop the input to its last {self.config.block_size} tokens")
        real = None if attention_mask is None else check_attention_mask(attention_mask, idx)  # (B, T) bool
        if cache is not None:
            real = cache.advance(T, real)  # (B, start + T): the cached tokens and these, or None: all real
        if real is None and (start == 0 or T == 1):
            return torch.arange(start, start + T, device=idx.device), None
        if real is None:  # several new tokens after cached ones: causal among them, all real
            real = torch.ones(B, start + T, dtype=torch.bool, device=idx.device)
        return padded_positions(real, T, causal=self.config.causal)

    def new_cache(self, batch_size: int, *, device=None, dtype=None):
        """Deprecated: :func:`lm_steps.inference.new_cache`."""
        warnings.warn("GPT.new_cache is deprecated; use lm_steps.inference.new_cache(model, batch_size)",
                      DeprecationWarning, stacklevel=2)
        from .inference import new_cache  # a deprecated shim only: inference stands on this module

        return new_cache(self, batch_size, device=device, dtype=dtype)

    def attention_maps(self, idx: torch.Tensor, *, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Deprecated: :func:`lm_steps.inference.attention_maps`."""
        warnings.warn("GPT.attention_maps is deprecated; use lm_steps.inference.attention_maps(model, idx)",
                      DeprecationWarning, stacklevel=2)
        from .inference import attention_maps  # a deprecated shim only: inference stands on this module

        return attention_maps(self, idx, attention_mask=attention_mask)


_MOVED = {"KVCache": "lm_steps.inference", "written_out_attention": "lm_steps.inference"}


def __getattr__(name: str):
    """Names that moved to :mod:`lm_steps.inference` keep working from here for one release."""
    if name in _MOVED:
        import importlib

        warnings.warn(f"lm_steps.gpt.{name} moved to {_MOVED[name]}.{name}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
