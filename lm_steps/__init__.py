"""lm-steps: language models built from scratch, one tested step at a time.

Stages live in their own modules (``bigram``, ...); shared pieces are ``data``,
``tokenizers``, ``evaluate``, ``sample``, ``train`` and ``plots``. Every model speaks
``forward(idx, targets=None) -> (logits, loss)`` with logits of shape (B, T, V).
"""
from .nb import show
from .utils import PROFILES, auto_device, by_profile, get_profile, make_generator, set_seed

__version__ = "0.1.0"
__all__ = ["PROFILES", "auto_device", "by_profile", "get_profile", "make_generator", "set_seed", "show"]
