"""Load Hugging Face GPT-2 weights into :class:`lm_steps.gpt.GPT`, and export a GPT to their layout.

Our GPT uses GPT-2's parameter names, so the import is a rename-free copy with one twist:
Hugging Face keeps GPT-2's original ``Conv1D`` layers, whose weights are stored (in, out), the
transpose of ``nn.Linear``'s (out, in). GPT-2 also has biases everywhere, LayerNorm eps 1e-5,
learned positions, tied embeddings and the tanh approximation of GELU (``gelu_new``).

With the network, evaluate the real 124M model on WikiText-2 (raw) with a sliding window::

    python -m lm_steps.gpt2 --model gpt2 --config wikitext-2-raw-v1 --split test --stride 512

The figure to expect is a word-level perplexity of about 29-30 with GPT-2's 1,024-token window
(the GPT-2 paper reports 29.41 zero-shot on WikiText-2); this was not measured here (no network).
"""
from __future__ import annotations

from pathlib import Path

import torch

from .gpt import GPT, GPTConfig

__all__ = ["CONV1D_WEIGHTS", "config_from_hf", "gpt_from_hf_state_dict", "gpt_from_hf", "from_pretrained",
           "export_hf"]

#: Parameters stored as Conv1D (in, out) in Hugging Face's GPT-2; nn.Linear wants (out, in).
CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
#: GPT-2 options whose non-default value this GPT cannot represent: (option, refused value, why).
_UNSUPPORTED = (
    ("scale_attn_by_inverse_layer_idx", True, "attention scores are not divided by the layer index here"),
    ("scale_attn_weights", False, "attention scores are always divided by sqrt(head size) here"),
    ("tie_word_embeddings", False, "the output layer is always the token embedding here (one matrix would be lost)"),
    ("add_cross_attention", True, "this GPT has no cross-attention layers"),
)
_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}


def config_from_hf(hf_config) -> GPTConfig:
    """The :class:`GPTConfig` of a ``transformers.GPT2Config`` (biases on, learned positions, tied).

    Raises ValueError naming any option this GPT cannot represent (``scale_attn_by_inverse_layer_idx=True``,
    ``scale_attn_weights=False``, ``tie_word_embeddings=False``, ``add_cross_attention=True``, an
    ``n_inner`` other than ``4 * n_embd``, another activation or LayerNorm epsilon) rather than
    converting it into a model that computes something else."""
    act = getattr(hf_config, "activation_function", "gelu_new")
    if act not in _ACTIVATIONS:
        raise ValueError(f"GPT-2 activation {act!r} has no counterpart here; supported: {', '.join(_ACTIVATIONS)}")
    if abs(getattr(hf_config, "layer_norm_epsilon", 1e-5) - 1e-5) > 1e-12:
        raise ValueError("only layer_norm_epsilon=1e-5 (nn.LayerNorm's default, GPT-2's value) is supported")
    for option, value, why in _UNSUPPORTED:
        if getattr(hf_config, option, not value if isinstance(value, bool) else None) == value:
            raise ValueError(f"GPT-2 config {option}={value!r} is not supported: {why}; lm_steps.gpt2 converts only "
                             f"GPT-2's own layout (leave {option} at its default)")
    n_inner = getattr(hf_config, "n_inner", None)
    if n_inner is not None and n_inner != 4 * hf_config.n_embd:
        raise ValueError(f"GPT-2 config n_inner={n_inner} is not supported: the MLP here is 4 * n_embd = "
                         f"{4 * hf_config.n_embd} wide; leave n_inner at None")
    return GPTConfig(vocab_size=hf_config.vocab_size, block_size=hf_config.n_positions, n_layer=hf_config.n_layer,
                     n_head=hf_config.n_head, n_embd=hf_config.n_embd, dropout=0.0, bias=True, tie_weights=True,
                     pos_encoding="learned", ffn=_ACTIVATIONS[act])


def gpt_from_hf_state_dict(state_dict: dict[str, torch.Tensor], config: GPTConfig) -> GPT:
    """A :class:`GPT` holding a Hugging Face GPT2LMHeadModel state dict (Conv1D weights transposed).

    Raises KeyError naming any parameter that is missing or left over.
    """
    model = GPT(config)
    ours = model.state_dict()
    theirs = {k: v for k, v in state_dict.items()
              if not k.endswith((".attn.bias", ".attn.masked_bias"))}  # old versions keep the causal mask as a buffer
    missing = sorted(set(ours) - set(theirs))
    extra = sorted(set(theirs) - set(ours))
    if missing or extra:
        raise KeyError(f"GPT-2 state dict does not match GPT({config}): missing {missing[:5]}, unexpected {extra[:5]}")
    if config.tie_weights and "lm_head.weight" in theirs and "transformer.wte.weight" in theirs and not torch.equal(
            theirs["lm_head.weight"], theirs["transformer.wte.weight"]):
        raise ValueError("the GPT-2 state dict has an output layer (lm_head.weight) that differs from its token "
                         "embedding (transformer.wte.weight): untied embeddings cannot be represented here, one "
                         "matrix would be lost")
    with torch.no_grad():
        for name, tensor in theirs.items():
            value = tensor.t() if name.endswith(CONV1D_WEIGHTS) else tensor  # Conv1D (in, out) -> Linear (out, in)
            if value.shape != ours[name].shape:
                raise ValueError(f"{name}: GPT-2 has shape {tuple(value.shape)}, ours {tuple(ours[name].shape)}")
            ours[name].copy_(value)
    return model


def gpt_from_hf(hf_model) -> GPT:
    """A :class:`GPT` with the weights of a ``transformers.GPT2LMHeadModel`` (in eval mode)."""
    model = gpt_from_hf_state_dict(hf_model.state_dict(), config_from_hf(hf_model.config))
    return model.eval()


def from_pretrained(name: str = "gpt2", *, device: str | torch.device = "cpu") -> GPT:
    """Download (needs the network and ``transformers``) and load ``gpt2``, ``gpt2-medium``, ..."""
    try:
        from transformers import GPT2LMHeadModel
    except ImportError as err:
        raise ImportError("loading GPT-2 weights needs `pip install transformers`") from err
    return gpt_from_hf(GPT2LMHeadModel.from_pretrained(name)).to(device)


def export_hf(model: GPT, folder) -> Path:
    """Write ``model`` in Hugging Face's GPT-2 layout: ``folder/config.json`` and ``folder/model.safetensors``.

    ``transformers.GPT2LMHeadModel.from_pretrained(folder)`` then computes the same logits. Only a
    GPT that GPT-2 can represent is exported: learned positions, tied embeddings, causal
    multi-head attention, a GELU (exact or tanh) or ReLU feed-forward; a model without biases
    gets zero biases, which compute the same. Needs the ``safetensors`` package (which
    ``transformers`` installs). Returns the folder.
    """
    from .utils import atomic_write, unwrap

    try:
        from safetensors.torch import save as safetensors_bytes
    except ImportError as err:
        raise ImportError("exporting to Hugging Face's layout needs `pip install safetensors`") from err
    model = unwrap(model)
    c = model.config
    refused = [why for bad, why in (
        (c.pos_encoding != "learned", f"pos_encoding={c.pos_encoding!r} (GPT-2 has learned positions)"),
        (not c.tie_weights, "tie_weights=False (GPT-2's output layer is its token embedding)"),
        (c.kv_heads != c.n_head, f"n_kv_head={c.n_kv_head} (GPT-2 has one key/value head per query head)"),
        (not c.causal, "causal=False (GPT-2 is causal)"),
        (c.ffn not in ("gelu", "gelu_tanh", "relu"), f"ffn={c.ffn!r} (GPT-2's MLP is one activation)")) if bad]
    if refused:
        raise ValueError(f"this GPT cannot be written as GPT-2: {'; '.join(refused)}")
    tensors = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied: GPT-2 keeps one matrix, transformer.wte.weight
        value = tensor.detach().to("cpu", torch.float32)
        tensors[name] = (value.t() if name.endswith(CONV1D_WEIGHTS) else value).contiguous()  # Linear -> Conv1D
    for name, module in model.named_modules():  # GPT-2 has biases everywhere: zeros compute the same
        if isinstance(module, (torch.nn.Linear, torch.nn.LayerNorm)) and name != "lm_head" and module.bias is None:
            tensors[f"{name}.bias"] = torch.zeros(module.weight.shape[0])
    act = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}[c.ffn]
    config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": c.vocab_size,
              "n_positions": c.block_size, "n_embd": c.n_embd, "n_layer": c.n_layer, "n_head": c.n_head,
              "n_inner": None, "activation_function": act, "resid_pdrop": c.dropout, "embd_pdrop": c.dropout,
              "attn_pdrop": c.dropout, "layer_norm_epsilon": 1e-5, "initializer_range": 0.02,
              "scale_attn_weights": True, "tie_word_embeddings": True, "bos_token_id": c.vocab_size - 1,
              "eos_token_id": c.vocab_size - 1}
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder / "model.safetensors") as f:
        f.write(safetensors_bytes(tensors, metadata={"format": "pt"}))
    with atomic_write(folder / "config.json", "w") as f:
        f.write(json.dumps(config, indent=1) + "\n")
    return folder


def _main(argv=None) -> None:
    import argparse

    from . import data, wikitext
    from .evaluation import evaluate_stream
    from .tokenizers import pretrained_encoding
    from .utils import auto_device

    parser = argparse.ArgumentParser(prog="python -m lm_steps.gpt2", description="Evaluate GPT-2 on WikiText-2.")
    parser.add_argument("--model", default="gpt2")
    parser.add_argument("--config", default="wikitext-2-raw-v1", choices=["wikitext-2-raw-v1", "wikitext-2-v1"])
    parser.add_argument("--split", default="test", choices=["validation", "test"])
    parser.add_argument("--stride", type=int, default=512)
    parser.add_argument("--block-size", type=int, default=1024)
    args = parser.parse_args(argv)
    device = auto_device()
    model = from_pretrained(args.model, device=device)
    enc = pretrained_encoding("r50k_base")
    if args.config == "wikitext-2-raw-v1":
        rows = data.load_wikitext(args.config)[args.split]["text"]
        text = "".join(row or " \n" for row in rows)  # the files' layout: blank lines are " \n"
    else:
        text = data.wikitext_splits(args.config)[args.split]
    stream = wikitext.token_stream(enc, wikitext.split_articles(text))
    r = evaluate_stream(model, stream, block_size=args.block_size, stride=args.stride, progress=True,
                        n_bytes=len(text.encode("utf-8")), n_words=wikitext.count_words(text), device=device)
    print(f"{args.model} on {args.config} {args.split} (window {args.block_size}, stride {args.stride}): "
          f"{r['loss']:.4f} nats/token, token ppl {r['ppl']:.2f}, word ppl {r['word_ppl']:.2f}, "
          f"{r['bits_per_byte']:.4f} bits/byte over {r['n_words']:,} words")


if __name__ == "__main__":
    _main()
