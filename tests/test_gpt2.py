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


@pytest.mark.parametrize("kw", [dict(), dict(bias=True, ffn="gelu_tanh"), dict(ffn="relu", dropout=0.1)])
def test_export_loads_back_into_transformers_with_the_same_logits(tmp_path, kw):
    pytest.importorskip("safetensors")
    from lm_steps.gpt import GPT, GPTConfig
    from lm_steps.gpt2 import export_hf

    model = GPT(GPTConfig(vocab_size=50, block_size=12, n_layer=2, n_head=2, n_embd=16, **kw),
                generator=torch.Generator().manual_seed(0)).eval()
    with torch.no_grad():  # random LayerNorm affines and biases, so every exported tensor matters
        for name, p in model.named_parameters():
            if ".ln_" in name or "ln_f" in name or name.endswith("bias"):
                p.normal_(0.0, 0.2, generator=torch.Generator().manual_seed(len(name)))
    export_hf(model, tmp_path / "hf")
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    idx = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, model(idx)[0], atol=1e-5, rtol=1e-5)
    back = gpt_from_hf(hf)  # and the round trip through the import
    with torch.no_grad():
        torch.testing.assert_close(back(idx)[0], model(idx)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kw, named", [(dict(pos_encoding="rope"), "pos_encoding"), (dict(n_kv_head=1), "n_kv_head"),
                                       (dict(ffn="swiglu"), "ffn"), (dict(tie_weights=False), "tie_weights")])
def test_export_refuses_what_gpt2_cannot_hold(tmp_path, kw, named):
    from lm_steps.gpt import GPT, GPTConfig
    from lm_steps.gpt2 import export_hf

    model = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=8, **kw))
    with pytest.raises(ValueError, match=named):
        export_hf(model, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
