"""Checks for notebook 08 (the masked-LM encoder): each runs the learner's function and the package's on fresh inputs."""
from __future__ import annotations

import torch

from ..classify import mean_pool
from ..gpt import GPT, GPTConfig
from ..mlm import MLMConfig, mask_tokens
from . import Passed, check_function

__all__ = ["check_bert_mask", "check_next_char_targets", "check_mean_pool", "WRONG_ANSWERS"]

#: Plausible mistakes each check must catch (tests/test_exercises.py applies each to the worked solution):
#: exercise name -> [(text of the solution, what a learner might write instead), ...].
WRONG_ANSWERS = {
    "bert_mask": [
        ("targets[chosen] = idx[chosen]", "targets[chosen] = inputs[chosen]"),  # the target is the masked input
        ("swap = chosen & (action >= 0.8) & (action < 0.9)", "swap = chosen & (action >= 0.8)"),  # no unchanged 10%
        ("real = attention_mask.bool() & (idx != cfg.pad_id) & (idx != cfg.mask_id)",
         "real = attention_mask.bool()"),  # a [MASK] already in the input can be chosen
    ],
    "next_char_targets": [
        ("mask[:, 1:] == 0", "mask[:, :-1] == 0"),  # off by one: scores the [PAD] right after each line
    ],
    "mean_pool": [
        ("(h * real).sum(dim=1) / real.sum(dim=1)", "h.mean(dim=1)"),  # padding counted in the mean
        ("(h * real).sum(dim=1) / real.sum(dim=1)", "(h * real).sum(dim=1)"),  # a sum: long lines get big vectors
        ("(h * real).sum(dim=1) / real.sum(dim=1)", "(h * real).mean(dim=1)"),  # divides by the padded length
    ],
}

V = 12  # the checks' vocabulary: ordinary tokens 0..9, [PAD] 10, [MASK] 11
CFG = MLMConfig(vocab_size=V, pad_id=V - 2, mask_id=V - 1, block_size=16, n_layer=1, n_head=2, n_embd=8)


def _lines(g: torch.Generator, n: int, longest: int) -> list[list[int]]:
    """``n`` random lines of ordinary tokens, of 2 to ``longest`` tokens."""
    lengths = torch.randint(2, longest + 1, (n,), generator=g).tolist()
    return [torch.randint(V - 2, (k,), generator=g).tolist() for k in lengths]


def _padded(g: torch.Generator, n: int, longest: int, *, short: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A right-padded batch (B, T) and its attention mask; ``short`` of its lines hold one or two tokens."""
    lines = _lines(g, n, longest)
    for b in range(short):
        lines[b] = lines[b][: 1 + b % 2]
    T = max(len(s) for s in lines)
    idx = torch.tensor([s + [CFG.pad_id] * (T - len(s)) for s in lines])  # (B, T)
    mask = torch.tensor([[1] * len(s) + [0] * (T - len(s)) for s in lines])  # (B, T)
    return idx, mask


def check_bert_mask(bert_mask) -> Passed:
    """``bert_mask(idx, attention_mask, cfg, generator) -> (inputs, targets)``: BERT's 15% / 80-10-10 masking,
    drawn in the same order as :func:`lm_steps.mlm.mask_tokens`, so the same generator gives the same masks."""

    def make_case(i):
        g = torch.Generator().manual_seed(8000 + i)
        idx, mask = _padded(g, 24 + 8 * i, 14, short=6)
        idx[0, 0] = CFG.mask_id  # a [MASK] already in the input is not a real token: never chosen
        return idx, mask, CFG, torch.Generator().manual_seed(8100 + i)

    def package(idx, attention_mask, cfg, generator):
        return mask_tokens(idx, attention_mask, cfg, generator=generator)

    return check_function(bert_mask, package, make_case, name="bert_mask",
                          hint="draw in this order from the generator: torch.rand (B, T) for chosen (< 0.15, real "
                               "tokens only: mask 1, not [PAD] or [MASK]); torch.rand (B, T) for the fallback (one "
                               "real position per row with none chosen: argmax after setting non-real to -1); "
                               "torch.rand (B, T) for the action (< 0.8 [MASK], 0.8 to 0.9 a random ordinary token, "
                               "else unchanged); torch.randint(len(ordinary), (B, T)) for the random tokens; "
                               "targets: the original token where chosen, IGNORE_INDEX elsewhere")


def check_next_char_targets(next_char_targets) -> Passed:
    """``next_char_targets(idx, attention_mask) -> targets`` (B, T - 1) for a right-padded batch: the GPT's loss
    on the batch with them must count the same characters, and give the same loss, as every line alone."""
    model = GPT(GPTConfig(vocab_size=V, block_size=16, n_layer=1, n_head=2, n_embd=8),
                generator=torch.Generator().manual_seed(8299)).eval()

    def make_case(i):
        return _padded(torch.Generator().manual_seed(8200 + i), 6 + 2 * i, 12)

    def learners(idx, attention_mask):
        targets = next_char_targets(idx, attention_mask)
        if not isinstance(targets, torch.Tensor) or targets.shape != (idx.size(0), idx.size(1) - 1):
            return getattr(targets, "shape", targets), None, None
        with torch.no_grad():
            _, loss = model(idx[:, :-1], targets)
        return tuple(targets.shape), int((targets >= 0).sum()), loss

    def package(idx, attention_mask):
        lines = [row[: int(n)] for row, n in zip(idx, attention_mask.sum(1))]
        with torch.no_grad():  # each line alone: no padding anywhere
            total = sum(model(s[None, :-1], s[None, 1:])[1] * (len(s) - 1) for s in lines)
        n = sum(len(s) - 1 for s in lines)
        return (idx.size(0), idx.size(1) - 1), n, total / n

    return check_function(learners, package, make_case, name="next_char_targets", atol=1e-5, rtol=1e-5,
                          hint="the values compared are the targets' shape, how many targets the loss counts, and "
                               "the loss; only a real next character is a target: fill the positions whose next "
                               "token is padding (mask[:, 1:] == 0) with IGNORE_INDEX")


def check_mean_pool(mean_pool_fn) -> Passed:
    """``mean_pool(h, attention_mask) -> (B, C)``: the mean of ``h`` (B, T, C) over each row's real positions."""

    def make_case(i):
        g = torch.Generator().manual_seed(8300 + i)
        _, mask = _padded(g, 5 + i, 10, short=2)
        return torch.randn(*mask.shape, 6, generator=g), mask

    return check_function(mean_pool_fn, mean_pool, make_case, name="mean_pool", atol=1e-6, rtol=1e-5,
                          hint="multiply h by the mask (as floats, shape (B, T, 1)) so padding adds nothing, sum over "
                               "the positions (dim=1), and divide by each row's number of real positions")
