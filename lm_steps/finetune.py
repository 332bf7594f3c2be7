"""Stage 11: fine-tuning a pretrained GPT into one that follows instructions.

A task set made from the names data (:func:`make_tasks`: "capitalise: emma" -> "Emma", ...), whose
answers a rule checks; a chat template with special tokens (:func:`chat_prompt`) and the rows they
add to the model's token table (:func:`add_tokens`); supervised fine-tuning with the loss on the
answer only (:func:`sft_example`, :func:`sft_batch`, :func:`finetune`); LoRA written by hand
(:class:`LoRALinear`, :func:`add_lora`); and scoring by exact match (:func:`answer`, :func:`score`).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Sequence

import torch
import torch.nn as nn

from .checks import check_int, check_number
from .gpt import GPT
from .inference import generate, left_pad
from .losses import IGNORE_INDEX
from .tokenizers import CharTokenizer, ChatTokenizer
from .training import adamw

__all__ = ["USER", "ASSISTANT", "END", "SPECIALS", "TASKS", "make_tasks", "chat_tokenizer", "chat_prompt",
           "chat_ids", "conversation_ids", "add_tokens", "sft_example", "sft_batch", "finetune", "LoRALinear", "add_lora", "trainable",
           "answer", "score"]

USER, ASSISTANT, END = "<|user|>", "<|assistant|>", "<|end|>"  # the chat template's special tokens
SPECIALS = (USER, ASSISTANT, END)

#: The instructions: name -> the rule that gives the answer for a (lower-case) name.
TASKS: dict[str, Callable[[str], str]] = {
    "capitalise": lambda w: w.capitalize(),
    "shout": lambda w: w.upper(),
    "first letter": lambda w: w[0],
    "last letter": lambda w: w[-1],
}


def make_tasks(names: Sequence[str], kinds: Sequence[str] = tuple(TASKS), *, max_len: int | None = None,
               ) -> list[tuple[str, str, str]]:
    """Every (kind, instruction, answer) for each name and kind, e.g. ``("shout", "shout: emma", "EMMA")``;
    names longer than ``max_len`` characters are left out (so an example fits the model's block)."""
    unknown = [k for k in kinds if k not in TASKS]
    if unknown:
        raise ValueError(f"unknown task kinds {unknown}; choose from {', '.join(TASKS)}")
    return [(k, f"{k}: {w}", TASKS[k](w)) for w in names if max_len is None or len(w) <= max_len for k in kinds]


def chat_tokenizer(tok: CharTokenizer) -> ChatTokenizer:
    """``tok``'s characters (same ids) with the template's special tokens after them."""
    return ChatTokenizer(tok.chars, specials=SPECIALS)


def chat_prompt(instruction: str) -> str:
    """One user turn and the start of the assistant's: ``<|user|>instruction<|end|><|assistant|>``."""
    return f"{USER}{instruction}{END}{ASSISTANT}"


def chat_ids(tok: ChatTokenizer, text: str) -> list[int]:
    """The ids of :func:`chat_prompt` ``(text)``, the user's text read as plain characters (so a user
    cannot write a special token)."""
    return [tok.special_id(USER)] + tok.encode_ordinary(text) + [tok.special_id(END), tok.special_id(ASSISTANT)]


def conversation_ids(tok: ChatTokenizer, turns: Sequence[tuple[str, str]]) -> list[int]:
    """The ids of finished exchanges one after another: each user turn (:func:`chat_ids`) and its
    answer, closed by the end token, as ``lm-steps chat`` keeps them in the context."""
    end = tok.special_id(END)
    return [i for text, reply in turns for i in chat_ids(tok, text) + tok.encode_ordinary(reply) + [end]]


def add_tokens(model: GPT, n: int, *, generator: torch.Generator | None = None) -> GPT:
    """A copy of ``model`` that reads and writes ``n`` more tokens: new rows of the token table (and of the
    output layer, the same matrix when tied) start at the mean of the old rows plus a little noise."""
    check_int("n", n, minimum=1)
    cfg = dataclasses.replace(model.config, vocab_size=model.config.vocab_size + n)
    new = GPT(cfg).to(model.lm_head.weight.device)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for key in ("transformer.wte.weight", "lm_head.weight"):
        old = state[key]  # (V, C)
        noise = torch.randn(n, old.size(1), generator=generator).to(old) * old.std() * 0.1
        state[key] = torch.cat([old, old.mean(0, keepdim=True) + noise])  # (V + n, C)
    if cfg.tie_weights:
        state["lm_head.weight"] = state["transformer.wte.weight"]
    new.load_state_dict(state)
    return new


def sft_example(prompt_ids: list[int], answer_ids: list[int], end_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One example ``(x, y)``: the tokens are the prompt, the answer and the end token; ``y`` is ``x``
    shifted by one, with :data:`~lm_steps.losses.IGNORE_INDEX` wherever the next token is the prompt's."""
    ids = torch.tensor(prompt_ids + answer_ids + [end_id])
    x, y = ids[:-1], ids[1:].clone()
    y[: len(prompt_ids) - 1] = IGNORE_INDEX  # y[t] = ids[t + 1]: the answer starts at t = len(prompt) - 1
    return x, y


def sft_batch(examples: Sequence[tuple[torch.Tensor, torch.Tensor]], *, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Examples of different lengths as one batch (B, T), padded on the right (targets with IGNORE_INDEX)."""
    T = max(len(x) for x, _ in examples)
    X = torch.full((len(examples), T), pad_id, dtype=torch.long)
    Y = torch.full((len(examples), T), IGNORE_INDEX, dtype=torch.long)
    for b, (x, y) in enumerate(examples):
        X[b, : len(x)], Y[b, : len(y)] = x, y
    return X, Y


def finetune(model: nn.Module, examples: Sequence[tuple[torch.Tensor, torch.Tensor]], *, steps: int,
             batch_size: int, lr: float, pad_id: int, generator: torch.Generator) -> dict:
    """Train ``model``'s trainable parameters on random batches of ``examples`` with AdamW (no weight
    decay, a constant rate); returns ``{"loss": [...], "seconds": [...], "adam_bytes": int}``, per step."""
    check_int("steps", steps, minimum=1)
    check_number("lr", lr, low=0, low_open=True)
    opt = adamw(model, lr=lr, weight_decay=0.0)
    history = {"loss": [], "seconds": []}
    model.train()
    for _ in range(steps):
        t0 = time.perf_counter()
        pick = torch.randint(len(examples), (batch_size,), generator=generator).tolist()
        X, Y = sft_batch([examples[i] for i in pick], pad_id=pad_id)
        _, loss = model(X.to(model.lm_head.weight.device), Y.to(model.lm_head.weight.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history["loss"].append(loss.item())
        history["seconds"].append(time.perf_counter() - t0)
    history["adam_bytes"] = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values()
                                if torch.is_tensor(t) and t.dim() > 0)  # the moments, not the step counts
    return history


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update: ``base(x) + scale * x A^T B^T``, A (r, in)
    small random, B (out, r) zero (so training starts from the base model exactly), ``scale = alpha / r``."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, *, generator: torch.Generator | None = None):
        super().__init__()
        check_int("r", r, minimum=1)
        self.base, self.r, self.scale = base, r, alpha / r
        for p in base.parameters():
            p.requires_grad_(False)
        w = base.weight
        self.A = nn.Parameter(torch.randn(r, w.size(1), generator=generator).to(w) / w.size(1) ** 0.5)  # (r, in)
        self.B = nn.Parameter(torch.zeros(w.size(0), r, dtype=w.dtype, device=w.device))  # (out, r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., out)."""
        return self.base(x) + self.scale * (x @ self.A.t() @ self.B.t())

    def merged(self) -> nn.Linear:
        """The ``nn.Linear`` with weight ``W + scale * B @ A``: the same layer, with no extra cost."""
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.scale * self.B @ self.A)
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out.to(self.base.weight.device)


def add_lora(model: GPT, r: int, alpha: float, *, new_rows: int = 0, generator: torch.Generator | None = None) -> GPT:
    """Freeze every parameter of ``model`` and wrap each linear layer of its blocks in a :class:`LoRALinear`
    (in place; returns the model): the A and B matrices train, and the last ``new_rows`` rows of the
    token table (tokens added for fine-tuning, which the frozen model has never learnt), the others' gradient
    zeroed."""
    for p in model.parameters():
        p.requires_grad_(False)
    if new_rows:
        wte = model.transformer.wte.weight
        keep = torch.zeros(wte.size(0), 1, device=wte.device, dtype=wte.dtype)
        keep[-new_rows:] = 1
        wte.requires_grad_(True)
        wte.register_hook(lambda grad: grad * keep)  # (V, C): only the new rows move
    for block in model.transformer.h:
        for parent in (block.attn, block.mlp):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(parent, name, LoRALinear(child, r, alpha, generator=generator))
    return model


def trainable(model: nn.Module) -> int:
    """Number of parameters that train (each shared tensor once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())


@torch.no_grad()
def answer(model: GPT, tok: ChatTokenizer, instructions: Sequence[str], *, max_new_tokens: int = 20,
           batch_size: int = 256) -> list[str]:
    """The model's greedy answer to each instruction, through the chat template, up to its end token."""
    end = tok.special_id(END)
    out = []
    for i in range(0, len(instructions), batch_size):
        prompts = [chat_ids(tok, s) for s in instructions[i: i + batch_size]]
        idx, mask = left_pad(prompts, pad_id=end, device=model.lm_head.weight.device)
        new = generate(model, idx, max_new_tokens, attention_mask=mask)[:, idx.size(1):].tolist()
        out += [tok.decode(row[: row.index(end)] if end in row else row) for row in new]
    return out


def score(model: GPT, tok: ChatTokenizer, tasks: Sequence[tuple[str, str, str]], **kw) -> dict[str, float]:
    """Exact-match accuracy per task kind on ``tasks`` ((kind, instruction, answer) triples), and ``"all"``."""
    got = answer(model, tok, [t[1] for t in tasks], **kw)
    right: dict[str, list[bool]] = {}
    for (kind, _, want), g in zip(tasks, got):
        right.setdefault(kind, []).append(g == want)
    acc = {k: sum(v) / len(v) for k, v in right.items()}
    acc["all"] = sum(g == t[2] for t, g in zip(tasks, got)) / len(tasks)
    return acc
