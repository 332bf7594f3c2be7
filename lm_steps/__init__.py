"""lm-steps: language models built from scratch, one tested step at a time.

The names most programs need are importable from the package itself::

    from lm_steps import GPT, GPTConfig, TrainConfig, train, generate, CharTokenizer

Stages live in their own modules (``bigram``, ``mlp``, ``wavenet``, ``gpt``); shared pieces are
``data``, ``tokenizers``, ``evaluation``, ``sample`` (and ``inference``: the KV cache, padded
prompts, beam search), ``training`` (the loop), ``runs`` (checkpoints, resume, DDP), ``checkpoint``
and ``plots``. Every model speaks ``forward(idx, targets=None) -> (logits, loss)`` with logits of
shape (B, T, V).

``lm_steps.train`` and ``lm_steps.evaluate`` are functions; no module shares their names. The old
module paths ``lm_steps.train`` and ``lm_steps.evaluate`` still import for one release, with a
DeprecationWarning (``from lm_steps.train import fit`` gives ``lm_steps.training.fit``). Importing the
package loads torch and the model code, not matplotlib, tiktoken or the notebook tools.
"""
import importlib
import sys
import types
import warnings

# `python -m lm_steps.data` runs a module this package has already imported; runpy warns about it, but the
# script part only calls that module's own functions, so the two copies never meet.
warnings.filterwarnings("ignore", message=r"'lm_steps\.\w+' found in sys\.modules", category=RuntimeWarning)


class _MovedModule(types.ModuleType):
    """A module path kept for one release: its names come from the modules it moved to, each with a
    DeprecationWarning that points at the line importing it."""

    def __init__(self, name: str, *targets: str):
        super().__init__(name, f"Deprecated: moved to {' and '.join(targets)}.")
        self._targets = targets

    def __getattr__(self, attr: str):
        for target in self._targets:
            module = importlib.import_module(target)
            if hasattr(module, attr):
                break
        else:
            raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")
        if not attr.startswith("__"):
            level, frame = 2, sys._getframe(1)
            while frame is not None and frame.f_code.co_filename.startswith("<frozen importlib"):
                level, frame = level + 1, frame.f_back  # blame the import statement, not importlib
            warnings.warn(f"the module {self.__name__} is now {module.__name__}: import {attr} from "
                          f"{module.__name__} ({self.__name__} goes in the next release)", DeprecationWarning,
                          stacklevel=level)
        return getattr(module, attr)


# the module paths train.py and evaluate.py had, until the next release
sys.modules.setdefault(__name__ + ".train", _MovedModule(__name__ + ".train", __name__ + ".training",
                                                         __name__ + ".runs"))
sys.modules.setdefault(__name__ + ".evaluate", _MovedModule(__name__ + ".evaluate", __name__ + ".evaluation"))

from .bigram import CountingBigram, NeuralBigram
from .checkpoint import gpt_from_checkpoint, load_checkpoint, load_model, save_checkpoint, save_model
from .config import TrainConfig
from .evaluation import evaluate, evaluate_stream
from .gpt import GPT, GPTConfig
from .mlp import MLP, MLPConfig
from .nb import show
from .inference import beam_search
from .sample import complete, generate, sample_words
from .tokenizers import CharTokenizer, load_bpe, pretrained_encoding, save_bpe, train_bpe
from .runs import train
from .training import fit
from .utils import PROFILES, auto_device, by_profile, get_profile, make_generator, set_seed, set_threads
from .wavenet import WaveNet, WaveNetConfig

__version__ = "0.1.0"
__all__ = [
    # models and their configurations, stage by stage
    "CountingBigram", "NeuralBigram", "MLP", "MLPConfig", "WaveNet", "WaveNetConfig", "GPT", "GPTConfig",
    # tokenizers
    "CharTokenizer", "train_bpe", "save_bpe", "load_bpe", "pretrained_encoding",
    # training, sampling, evaluation, checkpoints
    "TrainConfig", "train", "fit", "generate", "complete", "beam_search", "sample_words",
    "evaluate", "evaluate_stream", "save_checkpoint", "load_checkpoint", "gpt_from_checkpoint", "save_model", "load_model",
    # devices, seeds, profiles, notebooks
    "PROFILES", "auto_device", "by_profile", "get_profile", "make_generator", "set_seed", "set_threads", "show",
]

