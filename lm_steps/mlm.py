"""The other objective: a masked-language-model encoder (BERT; Devlin et al., 2019).

A GPT predicts each token from the tokens before it. An encoder sees the whole sequence at
once (bidirectional attention: no causal mask) and is trained to fill in blanks: about 15% of
the tokens are chosen, most of them replaced by a ``[MASK]`` token, and the model predicts the
originals at exactly those positions (:func:`mask_tokens`). Sentences have different lengths,
so a batch is padded to its longest (:func:`pad_batch`) and an ``attention_mask`` (B, T),
1 for real tokens and 0 for padding (Hugging Face's convention), keeps the padding out of
attention and out of the loss.

:class:`MaskedLM` is the GPT of :mod:`lm_steps.gpt` configured with ``causal=False``: the same
blocks, names (``transformer.wte``, ``wpe``, ``h``, ``ln_f``, ``lm_head``), positions (learned or
rotary) and initialisation, and one more argument:
``forward(idx, targets=None, attention_mask=None) -> (logits, loss)``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Sequence

import torch

from .checks import is_int
from .gpt import GPT, CausalSelfAttention, GPTConfig
from .losses import IGNORE_INDEX, check_attention_mask, lm_loss

__all__ = ["MLMConfig", "MaskedLM", "pad_batch", "mask_tokens", "text_lines"]


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
            if not is_int(value) or not 0 <= value < self.vocab_size:
                raise ValueError(f"{name}={value!r} is not an id of the vocabulary [0, {self.vocab_size}); "
                                 f"make vocab_size count the special tokens too")
        if self.pad_id == self.mask_id:
            raise ValueError(f"pad_id and mask_id must differ, both are {self.pad_id}")
        if self.vocab_size < 3:
            raise ValueError(f"vocab_size={self.vocab_size} leaves no ordinary token beside [PAD] and [MASK]")
        self.gpt_config  # the shared sizes are validated by GPTConfig (e.g. n_embd divisible by n_head)

    @property
    def gpt_config(self) -> GPTConfig:
        """The (causal) GPT configuration with the same sizes and positions (GELU, tied embeddings)."""
        return GPTConfig(vocab_size=self.vocab_size, block_size=self.block_size, n_layer=self.n_layer,
                         n_head=self.n_head, n_embd=self.n_embd, dropout=self.dropout, bias=self.bias,
                         pos_encoding=self.pos_encoding)

    @property
    def encoder_config(self) -> GPTConfig:
        """:attr:`gpt_config` with attention that is not causal: what :class:`MaskedLM` is built from."""
        return replace(self.gpt_config, causal=False)

    @property
    def special_ids(self) -> tuple[int, int]:
        """``(pad_id, mask_id)``: ids that are never chosen for masking or used as random replacements."""
        return self.pad_id, self.mask_id


class MaskedLM(GPT):
    """A masked-LM encoder: the :class:`~lm_steps.gpt.GPT` built from ``config.encoder_config``, so every
    position attends to every real position of its sequence, before and after it.

    ``forward(idx, targets=None, attention_mask=None) -> (logits, loss)``: ``idx`` (B, T) with
    T <= block_size, logits (B, T, V) at every position. ``targets`` (B, T) holds the original token
    where the loss counts and ``IGNORE_INDEX`` elsewhere (as :func:`mask_tokens` makes them);
    positions where ``attention_mask`` is 0 never count. ``mlm_config`` keeps the MLM's own config.
    """

    def __init__(self, config: MLMConfig, *, generator: torch.Generator | None = None):
        super().__init__(config.encoder_config, generator=generator)
        self.mlm_config = config

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None):
        """Logits (B, T, V) and, with ``targets``, the mean loss over the real positions that have a target."""
        real = None if attention_mask is None else check_attention_mask(attention_mask, idx)  # (B, T) bool
        if real is not None and not bool(real.any(dim=1).all()):
            raise ValueError("every row needs at least one real token (attention_mask 1); drop empty rows")
        logits, _ = super().forward(idx, attention_mask=real)  # (B, T, V)
        if targets is None:
            return logits, None
        if real is not None:
            targets = targets.masked_fill(~real, IGNORE_INDEX)  # padding never counts
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


class _SelfAttention(CausalSelfAttention):
    """Deprecated: the encoder's attention is :class:`~lm_steps.gpt.CausalSelfAttention` built from
    ``MLMConfig.encoder_config`` (``causal=False``); this keeps the old call for one release."""

    def __init__(self, config: MLMConfig):
        super().__init__(config.encoder_config)

    def forward(self, x: torch.Tensor, *, attention_mask: torch.Tensor | None = None, rope=None) -> torch.Tensor:
        """``x`` (B, T, C); ``attention_mask`` (B, T), 1 for real tokens; ``rope`` tables of at least T positions."""
        T = x.size(1)
        mask = None if attention_mask is None else attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T): keys
        rope = None if rope is None else (rope[0][:T], rope[1][:T])
        return super().forward(x, rope, mask)


def __getattr__(name: str):
    """``SelfAttention`` keeps working from here for one release."""
    if name == "SelfAttention":
        warnings.warn("lm_steps.mlm.SelfAttention is deprecated: MaskedLM's attention is "
                      "lm_steps.gpt.CausalSelfAttention(config.encoder_config)", DeprecationWarning, stacklevel=2)
        return _SelfAttention
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
