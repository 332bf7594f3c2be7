"""GPT-2 weight import: a randomly initialised Hugging Face GPT2LMHeadModel gives identical logits."""
from __future__ import annotations

import pytest
import torch

from lm_steps.gpt2 import CONV1D_WEIGHTS, config_from_hf, gpt_from_hf, gpt_from_hf_state_dict

transformers = pytest.importorskip("transformers", reason="the GPT-2 parity test needs `pip install transformers`")


@pytest.mark.parametrize("activation", ["gelu_new", "gelu"])
def test_logits_match_hugging_face(activation):
    torch.manual_seed(0)  # transformers initialises from the global generator
    cfg = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=97, n_positions=16,
                                  activation_function=activation, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # random biases and LayerNorm affines too, so every mapped tensor matters
        for name, p in hf.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(len(name)))
    ours = gpt_from_hf(hf)
    idx = torch.randint(0, 97, (3, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(idx).logits
        logits, _ = ours(idx)
    assert logits.shape == (3, 16, 97)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    assert ours.lm_head.weight.data_ptr() == ours.transformer.wte.weight.data_ptr()  # still tied


def test_conv1d_weights_are_transposed_and_mismatches_are_named():
    cfg = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=11, n_positions=4)
    hf = transformers.GPT2LMHeadModel(cfg)
    sd = hf.state_dict()
    model = gpt_from_hf_state_dict(sd, config_from_hf(cfg))
    for suffix in CONV1D_WEIGHTS:
        name = f"transformer.h.0.{suffix}"
        torch.testing.assert_close(model.state_dict()[name], sd[name].t(), atol=0, rtol=0)
    del sd["transformer.ln_f.bias"]
    with pytest.raises(KeyError, match="ln_f.bias"):
        gpt_from_hf_state_dict(sd, config_from_hf(cfg))
