"""Checks for notebook 11 (fine-tuning): the loss mask of an example and LoRA's forward, on fresh inputs."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..finetune import LoRALinear, sft_example
from . import Passed, check_function

__all__ = ["check_sft_example", "check_lora_forward", "WRONG_ANSWERS"]

#: Plausible mistakes each check must catch: exercise name -> [(text of the solution, a wrong replacement)].
WRONG_ANSWERS = {
    "sft_example": [
        ("y[: len(prompt_ids) - 1] = -1", "y[len(prompt_ids) - 1:] = -1"),  # the loss on the prompt, not the answer
        ("y[: len(prompt_ids) - 1] = -1", "y[: len(prompt_ids)] = -1"),  # off by one: the answer's first token lost
        ("prompt_ids + answer_ids + [end_id]", "prompt_ids + answer_ids"),  # the end token not included
        ("y[: len(prompt_ids) - 1] = -1", "pass"),  # no mask: the loss on every token
    ],
    "lora_forward": [
        ("layer.scale * ", ""),  # forgot alpha / r
        ("layer.base(x) + ", ""),  # the update alone, without the frozen layer
        ("x @ layer.A.t() @ layer.B.t()", "x @ (layer.B @ layer.A)"),  # the merged update, not transposed
    ],
}


def _ids(g: torch.Generator, n: int) -> list[int]:
    return torch.randint(0, 60, (n,), generator=g).tolist()


def check_sft_example(sft_example_fn) -> Passed:
    """``sft_example(prompt_ids, answer_ids, end_id) -> (x, y)``: the inputs, and the targets with -1 off the answer."""

    def make_case(i):
        g = torch.Generator().manual_seed(1100 + i)
        return _ids(g, 4 + 3 * i), _ids(g, 1 + 2 * i), 63

    return check_function(sft_example_fn, sft_example, make_case, name="sft_example", atol=0, rtol=0,
                          hint="ids = prompt + answer + [end]; x = ids[:-1], y = ids[1:] (the next token); y[t] "
                               "is the answer's from t = len(prompt_ids) - 1 on (the last prompt token predicts "
                               "the answer's first), so set y[: len(prompt_ids) - 1] = -1")


def check_lora_forward(lora_forward) -> Passed:
    """``lora_forward(layer, x) -> y``: a LoRALinear's output, the frozen layer's plus the scaled low-rank update."""

    def make_case(i):
        torch.manual_seed(1110 + i)  # nn.Linear's own initialisation
        layer = LoRALinear(nn.Linear(16 + 8 * i, 12), r=2 + i, alpha=4.0 + i,
                           generator=torch.Generator().manual_seed(i))
        with torch.no_grad():
            layer.B.normal_(generator=torch.Generator().manual_seed(20 + i))  # B trained away from zero
        return layer, torch.randn(3, 5, 16 + 8 * i, generator=torch.Generator().manual_seed(30 + i))

    return check_function(lora_forward, lambda layer, x: layer(x), make_case, name="lora_forward", atol=1e-5,
                          rtol=1e-5, hint="the frozen layer's output layer.base(x), plus layer.scale times x "
                                          "through A then B: x @ layer.A.t() @ layer.B.t()")
