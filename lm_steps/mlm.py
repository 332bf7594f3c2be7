"""The other objective: a masked-language-model encoder (BERT; Devlin et al., 2019).

A GPT predicts each token from the tokens before it. An encoder sees the whole sequence at
once (bidirectional attention: no causal mask) and is trained to fill in blanks: about 15% of
the tokens are chosen, most of them replaced by a ``[MASK]`` token, and the model predicts the
originals at exactly those positions (:func:`mask_tokens`). Sentences have different lengths,
so a batch is padded to its longest (:func:`pad_batch`) and an ``attention_mask`` (B, T),
1 for real tokens and 0 for padding (Hugging Face's convention), keeps the padding out of
attention and out of the loss.

:class:`MaskedLM` is the GPT of :mod:`lm_steps.gpt` with the attention of every block swapped for
:class:`SelfAttention`, the same blocks, names (``transformer.wte``, ``wpe``, ``h``, ``ln_f``,
``lm_head``), positions (learned or rotary) and initialisation, and one more argument:
``forward(idx, targets=None, attention_mask=None) -> (logits, loss)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .losses import IGNORE_INDEX, check_tokens, lm_loss
from .gpt import GPT, Block, GPTConfig, apply_rope, rope_tables

__all__ = ["MLMConfig", "SelfAttention", "MaskedLM", "pad_batch", "mask_tokens", "text_lines"]


@dataclass(frozen=True)
class MLMConfig:
    """Sizes of a :class:`MaskedLM`. ``vocab_size`` counts every id, the two special ones included:
    ``pad_id`` (padding) and ``mask_id`` (the ``[MASK]`` token)."""

    vocab_size: int
    pad_id: int
    mask_id: int
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = False
    pos_encoding: str = "learned"

    def __post_init__(self):
        if self.pos_encoding not in ("learned", "rope"):
            raise ValueError(f"pos_encoding must be 'learned' or 'rope', got {self.pos_encoding!r}")
        for name in ("pad_id", "mask_id"):
            value = getattr(self, name)
            if not 0 <= value < self.vocab_size:
                raise ValueError(f"{name}={value} is not an id of the vocabulary [0, {self.vocab_size}); "
                                 f"make vocab_size count the special tokens too")
        if self.pad_id == self.mask_id:
            raise ValueError(f"pad_id and mask_id must differ, both are {self.pad_id}")
        if self.vocab_size < 3:
            raise ValueError(f"vocab_size={self.vocab_size} leaves no ordinary token beside [PAD] and [MASK]")
        self.gpt_config  # the shared sizes are validated by GPTConfig (e.g. n_embd divisible by n_head)

    @property
    def gpt_config(self) -> GPTConfig:
        """The GPT configuration with the same sizes and positions (GELU, tied embeddings)."""
        return GPTConfig(vocab_size=self.vocab_size, block_size=self.block_size, n_layer=self.n_layer,
                         n_head=self.n_head, n_embd=self.n_embd, dropout=self.dropout, bias=self.bias,
                         pos_encoding=self.pos_encoding)

    @property
    def special_ids(self) -> tuple[int, int]:
        """``(pad_id, mask_id)``: ids that are never chosen for masking or used as random replacements."""
        return self.pad_id, self.mask_id


class SelfAttention(nn.Module):
    """Multi-head self-attention with no causal mask: every position attends to every real
    position of its sequence, before and after it. Padding (``attention_mask`` 0) is never
    attended to; padded positions still get an output (from the real positions), which the
    loss ignores. Same parameters as :class:`lm_steps.gpt.CausalSelfAttention` (``c_attn``,
    ``c_proj``)."""

    def __init__(self, config: MLMConfig):
        super().__init__()
        self.n_head, self.head_size = config.n_head, config.n_embd // config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout, self.resid_dropout = config.dropout, nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, *, attention_mask: torch.Tensor | None = None,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``x`` (B, T, C) -> (B, T, C); ``attention_mask`` (B, T), 1 for real tokens, 0 for padding;
        ``rope``: rotary tables (cos, sin) of at least T positions, applied to queries and keys."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        if rope is not None:
            cos, sin = rope[0][:T], rope[1][:T]
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        mask = None if attention_mask is None else attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T): keys
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.attn_dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C): heads side by side
        return self.resid_dropout(self.c_proj(y))


class MaskedLM(nn.Module):
    """A masked-LM encoder: ``forward(idx, targets=None, attention_mask=None) -> (logits, loss)``.

    ``idx`` (B, T) with T <= block_size, logits (B, T, V) at every position. ``targets`` (B, T)
    holds the original token where the loss counts and ``IGNORE_INDEX`` elsewhere (as
    :func:`mask_tokens` makes them); positions where ``attention_mask`` is 0 never count.
    """

    def __init__(self, config: MLMConfig, *, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        gpt = config.gpt_config
        blocks = []
        for _ in range(config.n_layer):
            block = Block(gpt)  # the decoder's block (LayerNorms, feed-forward) ...
            block.attn = SelfAttention(config)  # ... with attention that looks both ways
            blocks.append(block)
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList(blocks),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        if config.pos_encoding == "learned":
            self.transformer["wpe"] = nn.Embedding(config.block_size, config.n_embd)
        else:
            cos, sin = rope_tables(config.block_size, gpt.head_size)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # tied, as in the GPT
        self.init_weights(generator=generator)

    @property
    def block_size(self) -> int:
        """The longest sequence the model reads."""
        return self.config.block_size

    @property
    def vocab_size(self) -> int:
        """Number of token ids, [PAD] and [MASK] included."""
        return self.config.vocab_size

    def init_weights(self, *, generator: torch.Generator | None = None) -> None:
        """The GPT's initialisation (:meth:`lm_steps.gpt.GPT.init_weights`): N(0, 0.02), residual
        projections N(0, 0.02 / sqrt(2 * n_layer)), LayerNorms 1 and 0."""
        GPT.init_weights(self, generator=generator)

    def num_params(self) -> int:
        """Number of parameters (the tied matrix counted once)."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None):
        """Logits (B, T, V) and, with ``targets``, the mean loss over the positions that count."""
        check_tokens(idx, self.config.vocab_size)
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"{T} positions exceed block_size={self.config.block_size}; "
                             f"drop or split sequences longer than that")
        if attention_mask is not None:
            if attention_mask.shape != idx.shape:
                raise ValueError(f"attention_mask of shape {tuple(attention_mask.shape)} must match idx {tuple(idx.shape)}")
            if ((attention_mask != 0) & (attention_mask != 1)).any():
                raise ValueError("attention_mask must hold 1 for real tokens and 0 for padding only")
            if not attention_mask.any(dim=1).all():
                raise ValueError("every row needs at least one real token (attention_mask 1); drop empty rows")
        x = self.transformer.wte(idx)  # (B, T, C)
        rope = None
        if self.config.pos_encoding == "learned":
            x = x + self.transformer.wpe(torch.arange(T, device=idx.device))  # (T, C) broadcast
        else:
            rope = (self.rope_cos, self.rope_sin)
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x, attention_mask=attention_mask, rope=rope)
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, V)
        if targets is None:
            return logits, None
        if attention_mask is not None:
            targets = targets.masked_fill(attention_mask == 0, IGNORE_INDEX)  # padding never counts
        if not (targets != IGNORE_INDEX).any():
            raise ValueError("no position to score: every target is IGNORE_INDEX or padding")
        return logits, lm_loss(logits, targets)


def pad_batch(sequences: Sequence[Sequence[int] | torch.Tensor], pad_id: int, *,
              device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad sequences of token ids to the longest: ``(idx, attention_mask)``, both (B, T) int64,
    the mask 1 on real tokens and 0 on padding. Real tokens keep their positions 0, 1, ..."""
    if len(sequences) == 0:
        raise ValueError("pad_batch needs at least one sequence")
    lengths = [len(s) for s in sequences]
    if min(lengths) == 0:
        raise ValueError(f"sequence {lengths.index(0)} is empty; drop empty sequences first")
    idx = torch.full((len(sequences), max(lengths)), pad_id, dtype=torch.long)
    mask = torch.zeros(len(sequences), max(lengths), dtype=torch.long)
    for b, seq in enumerate(sequences):
        idx[b, :lengths[b]] = torch.as_tensor(seq, dtype=torch.long)
        mask[b, :lengths[b]] = 1
    return idx.to(device), mask.to(device)


def mask_tokens(idx: torch.Tensor, attention_mask: torch.Tensor | None, config: MLMConfig, *,
                generator: torch.Generator | None = None, mask_prob: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: ``(inputs, targets)`` for a batch ``idx`` (B, T).

    Each real token (attention_mask 1, not a special id) is chosen with probability
    ``mask_prob``; a row with real tokens but none chosen gets one chosen at random, so every
    sequence is scored. Of the chosen tokens, 80% become ``[MASK]``, 10% a random ordinary token
    and 10% stay as they are (the model cannot tell which tokens to trust). ``targets`` holds
    the original token at the chosen positions and ``IGNORE_INDEX`` everywhere else. All draws
    come from ``generator``, a fixed number of them, so a seed gives the same masks.
    """
    if not 0 < mask_prob < 1:
        raise ValueError(f"mask_prob must be in (0, 1), got {mask_prob}")
    if idx.dim() != 2:
        raise ValueError(f"idx must be (B, T) token ids, got shape {tuple(idx.shape)}")
    if attention_mask is not None and attention_mask.shape != idx.shape:
        raise ValueError(f"attention_mask of shape {tuple(attention_mask.shape)} must match idx {tuple(idx.shape)}")
    gen_device = generator.device if generator is not None else torch.device("cpu")

    def rand():
        return torch.rand(idx.shape, generator=generator, device=gen_device).to(idx.device)

    real = torch.ones_like(idx, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    real = real & (idx != config.pad_id) & (idx != config.mask_id)
    chosen = (rand() < mask_prob) & real
    fallback = rand().masked_fill(~real, -1.0).argmax(dim=1)  # (B,): one random real position per row
    empty = ~chosen.any(dim=1) & real.any(dim=1)
    chosen[empty, fallback[empty]] = True
    action = rand()
    ordinary = torch.tensor([i for i in range(config.vocab_size) if i not in config.special_ids], device=idx.device)
    random_tokens = ordinary[torch.randint(len(ordinary), idx.shape, generator=generator, device=gen_device).to(idx.device)]
    inputs = idx.clone()
    inputs[chosen & (action < 0.8)] = config.mask_id
    swap = chosen & (action >= 0.8) & (action < 0.9)
    inputs[swap] = random_tokens[swap]
    targets = torch.full_like(idx, IGNORE_INDEX)
    targets[chosen] = idx[chosen]
    return inputs, targets


def text_lines(text: str, *, min_len: int = 1, max_len: int | None = None) -> list[str]:
    """The lines of ``text``, stripped of surrounding spaces, with ``min_len <= len <= max_len``."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if len(line) >= min_len and (max_len is None or len(line) <= max_len)]
