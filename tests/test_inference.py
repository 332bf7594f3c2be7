"""lm_steps.inference: the KV cache's bookkeeping, the engine's generate, attention maps, moved names."""
import pytest
import torch

from conftest import gen, tiny_gpt
from lm_steps import inference, sample
from lm_steps.inference import KVCache, attention_maps, can_cache, left_pad, new_cache
from lm_steps.mlm import MaskedLM, MLMConfig

V = 65


def test_the_cache_keeps_every_layers_keys_and_which_tokens_are_real():
    m = tiny_gpt(V, n_kv_head=2).eval()
    cache = new_cache(m, 2)
    assert cache.k.shape == (2, 2, 2, 16, 8) and cache.length == 0 and cache.real is None
    idx = torch.randint(V, (2, 6), generator=gen(0))
    m(idx[:, :4], cache=cache)
    assert cache.length == 4 and cache.real is None  # no padding so far: nothing to remember
    m(idx[:, 4:5], cache=cache, attention_mask=torch.tensor([[1], [0]]))
    assert cache.length == 5 and cache.real[:, :5].tolist() == [[True] * 5, [True] * 4 + [False]]
    m(idx[:, 5:], cache=cache)  # new tokens without a mask are real
    assert cache.real[:, 5].all()
    with pytest.raises(ValueError, match="block_size=16"):
        m(torch.zeros(2, 11, dtype=torch.long), cache=cache)
    assert cache.length == 6  # the refused call left the cache as it was


def test_no_cache_for_an_encoder():
    cfg = MLMConfig(vocab_size=20, pad_id=18, mask_id=19, block_size=8, n_layer=1, n_head=2, n_embd=16)
    encoder = MaskedLM(cfg, generator=gen(0)).eval()
    assert not can_cache(encoder) and can_cache(tiny_gpt(V))
    with pytest.raises(ValueError, match="needs causal attention"):
        KVCache(cfg.encoder_config, 1)
    out = sample.generate(encoder, torch.tensor([[1, 2]]), 3, temperature=0)  # the plain loop, no cache
    assert out.shape == (1, 5)
    with pytest.raises(ValueError, match="has no KV cache"):
        sample.generate(encoder, torch.tensor([[1, 2]]), 3, use_cache=True)
    maps = attention_maps(encoder, torch.tensor([[1, 2, 3]]))  # attention both ways: weight above the diagonal
    assert maps.shape == (1, 1, 2, 3, 3) and (maps.triu(1) > 0).any()
    torch.testing.assert_close(maps.sum(-1), torch.ones(1, 1, 2, 3), atol=1e-6, rtol=0)


def test_the_engine_is_greedy_by_default_and_equals_sample_generate():
    m = tiny_gpt(V).eval()
    idx, mask = left_pad([[3, 4, 5], [6]])
    for use_cache in (True, False):
        ours = inference.generate(m, idx, 20, use_cache=use_cache, attention_mask=mask)  # past the block (16)
        assert torch.equal(ours, sample.generate(m, idx, 20, temperature=0, use_cache=use_cache, attention_mask=mask))
        assert torch.equal(ours[1, 2:], inference.generate(m, idx[1:, 2:], 20, use_cache=use_cache)[0])


def test_sampling_reads_the_logits_only_when_torch_refuses_them(monkeypatch):
    """No scan of the logits per sampled token: the rows are looked at only when multinomial fails."""
    calls = []
    monkeypatch.setattr(sample, "_check_rows", lambda logits: calls.append(1))
    sample.generate(tiny_gpt(V), torch.tensor([[1, 2]]), 5, generator=gen(0))
    assert calls == []


def test_moved_names_warn_from_their_old_module():
    with pytest.warns(DeprecationWarning, match="lm_steps.inference.left_pad"):
        assert sample.left_pad is left_pad
    with pytest.warns(DeprecationWarning, match="lm_steps.inference.beam_search"):
        from lm_steps.sample import beam_search
    assert beam_search is inference.beam_search
    with pytest.raises(AttributeError):
        sample.no_such_name  # noqa: B018


def test_the_transposed_output_layer_gives_the_same_logits_and_restores_the_model():
    from lm_steps.gpt import GPT, GPTConfig
    from lm_steps.inference import transposed_output_layer

    for bias in (False, True):
        model = GPT(GPTConfig(vocab_size=97, block_size=16, n_layer=1, n_head=2, n_embd=16, bias=bias),
                    generator=torch.Generator().manual_seed(0)).eval()
        if bias:  # an output layer with a bias (the GPT ties it to the embedding, without one)
            model.lm_head = torch.nn.Linear(16, 97, bias=True)
        idx = torch.randint(0, 97, (3, 16), generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            expected = model(idx)[0]
            with transposed_output_layer(model):
                assert "forward" in vars(model.lm_head)
                got = model(idx)[0]
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        assert "forward" not in vars(model.lm_head)  # the module is as it was
