"""Fine-tuning an encoder to classify whole sequences (BERT's sentence tasks; Devlin et al., 2019).

A masked-LM encoder (:class:`lm_steps.mlm.MaskedLM`) gives a vector per position that has seen the
whole sequence. For one label per sequence, :class:`SequenceClassifier` averages those vectors over
the real (not padded) positions (:func:`mean_pool`) and maps the average to one logit per class with
a linear head. Fine-tuning trains the head and the encoder together on labelled sequences.

:func:`question_task` makes a labelled task out of plain text, with no annotation: lines that end a
sentence, their last character removed, labelled by whether it was a question mark.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checks import is_int
from .gpt import GPT

__all__ = ["mean_pool", "encoder_states", "SequenceClassifier", "check_class_ids", "question_task"]

#: what a line must end with to count as a sentence in :func:`question_task`
SENTENCE_ENDS = ".!?"


def mean_pool(h: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of ``h`` (B, T, C) over each row's real positions (``attention_mask`` (B, T) 1): (B, C)."""
    real = attention_mask.to(h.dtype).unsqueeze(-1)  # (B, T, 1): 1 real, 0 padding
    return (h * real).sum(dim=1) / real.sum(dim=1)  # (B, C)


def encoder_states(encoder: GPT, idx: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The encoder's last hidden states (B, T, C), after its final LayerNorm: what its ``lm_head`` reads."""
    states = []
    hook = encoder.transformer.ln_f.register_forward_hook(lambda module, inputs, output: states.append(output))
    try:
        encoder(idx, attention_mask=attention_mask)
    finally:
        hook.remove()
    return states[0]


class SequenceClassifier(nn.Module):
    """An encoder with a classification head: ``forward(idx, targets=None, attention_mask=None) ->
    (logits (B, n_classes), loss)``, the loss the cross-entropy against ``targets`` (B,) of class ids.

    The head reads the mean of the encoder's last hidden states over the real positions. Freeze the
    encoder's parameters (``requires_grad_(False)``) to train the head alone (a linear probe).
    """

    def __init__(self, encoder: GPT, n_classes: int, *, generator: torch.Generator | None = None):
        super().__init__()
        if not is_int(n_classes) or n_classes < 2:
            raise ValueError(f"n_classes={n_classes!r}: a classifier needs at least 2 classes")
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.n_embd, n_classes)
        with torch.no_grad():
            self.head.weight.normal_(0.0, 0.02, generator=generator)
            self.head.bias.zero_()

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None):
        """Class logits (B, n_classes) and, with ``targets`` (B,), their mean cross-entropy."""
        mask = torch.ones_like(idx) if attention_mask is None else attention_mask  # the encoder checks it
        pooled = mean_pool(encoder_states(self.encoder, idx, mask), mask)  # (B, C): one vector per sequence
        logits = self.head(pooled)  # (B, n_classes)
        return logits, None if targets is None else F.cross_entropy(logits, check_class_ids(targets, logits))


def check_class_ids(targets: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``targets``, if it holds one class id per row of ``logits`` (B, n_classes); else a one-line ValueError."""
    if not isinstance(targets, torch.Tensor) or targets.shape != logits.shape[:1]:
        raise ValueError(f"targets has shape {tuple(getattr(targets, 'shape', ()))}; give one class id per "
                         f"sequence, a tensor of shape ({logits.shape[0]},)")
    if targets.dtype.is_floating_point or bool(((targets < 0) | (targets >= logits.shape[1])).any()):
        raise ValueError(f"targets must be class ids 0..{logits.shape[1] - 1} (integers), got {targets.tolist()[:8]}")
    return targets


def question_task(lines: Sequence[str], *, generator: torch.Generator) -> tuple[list[str], list[int]]:
    """Sentences of ``lines`` without their last character, labelled 1 where it was ``?`` and 0 where it
    was ``.`` or ``!``: as many statements (drawn with ``generator``) as there are questions, shuffled.

    The text carries its own labels, so any text makes the task; chance is one half.
    """
    questions = [line[:-1] for line in lines if len(line) > 1 and line.endswith("?")]
    statements = [line[:-1] for line in lines if len(line) > 1 and line[-1] in SENTENCE_ENDS and line[-1] != "?"]
    if not questions or len(statements) < len(questions):
        raise ValueError(f"{len(questions)} questions and {len(statements)} statements among {len(lines)} lines: "
                         f"the task needs at least one question and as many statements")
    pick = torch.randperm(len(statements), generator=generator)[: len(questions)].tolist()
    texts = questions + [statements[i] for i in pick]
    labels = [1] * len(questions) + [0] * len(questions)
    order = torch.randperm(len(texts), generator=generator).tolist()
    return [texts[i] for i in order], [labels[i] for i in order]
