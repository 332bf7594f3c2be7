"""lm-steps: language models built from scratch, one tested step at a time.

The names most programs need are importable from the package itself::

    from lm_steps import GPT, GPTConfig, TrainConfig, train, generate, CharTokenizer

Stages live in their own modules (``bigram``, ``mlp``, ``wavenet``, ``gpt``); shared pieces are
``data``, ``tokenizers``, ``evaluate``, ``sample`` (and ``inference``: the KV cache, padded prompts,
beam search), ``train``, ``checkpoint`` and ``plots``. Every
model speaks ``forward(idx, targets=None) -> (logits, loss)`` with logits of shape (B, T, V).

``lm_steps.train`` and ``lm_steps.evaluate`` are the functions of those names; the rest of their
modules is at ``from lm_steps.train import fit`` and the like. Importing the package loads torch
and the model code, not matplotlib, tiktoken or the notebook tools.
"""
import warnings

# `python -m lm_steps.data` runs a module this package has already imported; runpy warns about it, but the
# script part only calls that module's own functions, so the two copies never meet.
warnings.filterwarnings("ignore", message=r"'lm_steps\.\w+' found in sys\.modules", category=RuntimeWarning)

from .bigram import CountingBigram, NeuralBigram
from .checkpoint import gpt_from_checkpoint, load_checkpoint, save_checkpoint
from .evaluate import evaluate, evaluate_stream
from .gpt import GPT, GPTConfig
from .mlp import MLP, MLPConfig
from .nb import show
from .inference import beam_search
from .sample import complete, generate, sample_words
from .tokenizers import CharTokenizer, load_bpe, pretrained_encoding, save_bpe, train_bpe
from .train import TrainConfig, fit, train
from .utils import PROFILES, auto_device, by_profile, get_profile, make_generator, set_seed
from .wavenet import WaveNet, WaveNetConfig

__version__ = "0.1.0"
__all__ = [
    # models and their configurations, stage by stage
    "CountingBigram", "NeuralBigram", "MLP", "MLPConfig", "WaveNet", "WaveNetConfig", "GPT", "GPTConfig",
    # tokenizers
    "CharTokenizer", "train_bpe", "save_bpe", "load_bpe", "pretrained_encoding",
    # training, sampling, evaluation, checkpoints
    "TrainConfig", "train", "fit", "generate", "complete", "beam_search", "sample_words",
    "evaluate", "evaluate_stream", "save_checkpoint", "load_checkpoint", "gpt_from_checkpoint",
    # devices, seeds, profiles, notebooks
    "PROFILES", "auto_device", "by_profile", "get_profile", "make_generator", "set_seed", "show",
]
