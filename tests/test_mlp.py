"""The stage-3 MLP: sizes, the shared interface, the initialisation lessons, training."""
from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from lm_steps.data import make_examples
from lm_steps.diagnostics import layer_stats
from lm_steps.config import Recipe, TrainConfig, lr_at
from lm_steps.fixed_context import LastPosition, context_windows
from lm_steps.mlp import MLP, MLP_CONFIGS, MLP_RECIPES, MLPConfig
from lm_steps.training import fit
from lm_steps.sample import sample_words



def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_named_configs_parameter_counts():
    assert _n_params(MLP(MLP_CONFIGS["writeup"])) == 8_762
    assert _n_params(MLP(MLP_CONFIGS["lecture"])) == 11_897
    assert _n_params(MLP(MLP_CONFIGS["lecture_bn"])) == 12_097  # hidden bias dropped, gamma and beta added


def test_config_validation():
    with pytest.raises(ValueError, match="n_hidden"):
        MLPConfig(n_hidden=0)
    with pytest.raises(ValueError, match="init"):
        MLPConfig(init="xavier")
    with pytest.raises(ValueError, match="final_lr"):
        Recipe(steps=10, batch_size=4, lr=0.1, final_lr=0.2)


def test_context_windows_left_pad():
    idx = torch.tensor([[5, 6, 7]])
    w = context_windows(idx, 3)
    assert w.shape == (1, 3, 3)
    assert w.tolist() == [[[0, 0, 5], [0, 5, 6], [5, 6, 7]]]


@pytest.mark.parametrize("batchnorm", [False, True])
def test_shapes_last_position_and_causality(batchnorm):
    model = MLP(MLPConfig(n_embd=4, n_hidden=16, batchnorm=batchnorm), generator=_gen())
    model.eval()
    for T in (1, 2, 3, 7):
        idx = torch.randint(0, 27, (4, T), generator=_gen(T))
        logits, loss = model(idx)
        assert logits.shape == (4, T, 27) and loss is None
        last, _ = LastPosition(model)(idx)
        assert last.shape == (4, 1, 27)
        assert_close(last[:, 0], logits[:, -1], atol=1e-6, rtol=1e-6)
    idx = torch.randint(1, 27, (2, 8), generator=_gen(9))
    changed = idx.clone()
    changed[:, 3] = 0
    a, b = model(idx)[0], model(changed)[0]
    assert_close(a[:, :3], b[:, :3], atol=0, rtol=0)  # positions before 3 do not see token 3
    assert_close(a[:, 6:], b[:, 6:], atol=0, rtol=0)  # nor do positions whose window has moved past it
    assert all(not torch.allclose(a[:, t], b[:, t]) for t in (3, 4, 5))
    # a window's prediction depends on the last block_size tokens only
    assert_close(model(idx)[0][:, -1], model(idx[:, -3:])[0][:, -1], atol=1e-6, rtol=1e-6)


def test_loss_at_init_and_saturation(names, names_tok):
    X, Y = make_examples(names[:500], 3, names_tok)
    losses, sat = {}, {}
    for init in ("naive", "scaled_output", "kaiming"):
        model = MLP(MLPConfig(init=init), generator=_gen(42))
        stats = layer_stats(LastPosition(model), X, Y, backward=False)
        losses[init] = LastPosition(model)(X, Y)[1].item()
        sat[init] = stats[0].saturated
    assert losses["naive"] > 10  # confidently wrong
    assert abs(losses["scaled_output"] - math.log(27)) < 0.05
    assert abs(losses["kaiming"] - math.log(27)) < 0.05
    assert sat["scaled_output"] > 0.5 and sat["kaiming"] < sat["scaled_output"] / 4


def test_one_batch_overfits():
    X = torch.randint(0, 27, (32, 3), generator=_gen(1))
    Y = torch.randint(0, 27, (32,), generator=_gen(2))
    model = MLP(MLPConfig(n_embd=8, n_hidden=64), generator=_gen())
    recipe = Recipe(steps=300, batch_size=32, optimizer="adamw", lr=1e-2, final_lr=1e-3, schedule="cosine")
    hist = fit(LastPosition(model), X, Y, recipe, generator=_gen(3))
    assert hist["loss"][0] > 3.0 and LastPosition(model)(X, Y)[1].item() < 0.1


def test_batchnorm_model_eval_scores_one_token_prompts(names_tok):
    model = MLP(MLP_CONFIGS["lecture_bn"], generator=_gen())
    X = torch.randint(0, 27, (64, 3), generator=_gen(1))
    Y = torch.randint(0, 27, (64,), generator=_gen(2))
    fit(LastPosition(model), X, Y, Recipe(steps=5, batch_size=16, lr=0.1, final_lr=0.1), generator=_gen(3))
    words = sample_words(model, names_tok, 5, generator=_gen(4), max_len=10)  # eval mode, prompts of 1..3 tokens
    assert len(words) == 5 and model.training
    model.eval()
    full, _ = model(X)
    assert_close(model(X[:, -1:])[0][:, 0], model(torch.cat([torch.zeros(64, 2, dtype=torch.long), X[:, -1:]], 1))[0][:, -1],
                 atol=1e-6, rtol=1e-6)  # a short prompt is the same as one padded with '.'
    assert full.shape == (64, 3, 27)


def test_recipes():
    lecture = MLP_RECIPES["lecture"]
    assert (lecture.steps, lecture.batch_size, lecture.optimizer) == (200_000, 32, "sgd")
    assert lecture.lr_at(0) == 0.1 and lecture.lr_at(99_999) == 0.1 and lecture.lr_at(100_000) == 0.01
    cos = Recipe(steps=100, batch_size=8, optimizer="adamw", lr=1e-2, final_lr=1e-4, schedule="cosine", warmup=10)
    # the one warmup + cosine schedule, lm_steps.config.lr_at: warmup lr * (s + 1) / (warmup + 1), peak after it
    same = TrainConfig(max_iters=100, lr=1e-2, min_lr=1e-4, warmup_iters=10, schedule="cosine")
    assert [cos.lr_at(s) for s in range(120)] == [lr_at(s, same) for s in range(120)]
    assert cos.lr_at(0) == pytest.approx(1e-2 / 11) and cos.lr_at(9) == pytest.approx(1e-2 * 10 / 11)
    assert cos.lr_at(10) == pytest.approx(1e-2)
    assert cos.lr_at(99) == pytest.approx(1e-4, rel=0.05)
    assert all(cos.lr_at(s) >= cos.lr_at(s + 1) for s in range(10, 99))


def test_every_fixed_context_model_keeps_its_config_at_config_and_its_checkpoint_stores_it(tmp_path):
    from dataclasses import asdict

    from lm_steps.bigram import CountingBigram, NeuralBigram
    from lm_steps.checkpoint import CheckpointError, load_checkpoint, restore_model, save_checkpoint
    from lm_steps.wavenet import GatedWaveNet, GatedWaveNetConfig, WaveNet, WaveNetConfig

    model = MLP(MLPConfig(n_embd=4, n_hidden=8), generator=_gen(0))
    path = save_checkpoint(tmp_path / "mlp.pt", model=model)
    ckpt = load_checkpoint(path)
    assert ckpt["model_config"] == asdict(model.config) == asdict(MLPConfig(n_embd=4, n_hidden=8))
    again = MLP(MLPConfig(n_embd=4, n_hidden=8), generator=_gen(1))
    restore_model(ckpt, again)
    for name, t in model.state_dict().items():
        assert_close(again.state_dict()[name], t, atol=0, rtol=0)
    with pytest.raises(CheckpointError, match="n_hidden: checkpoint 8 vs model 16"):
        restore_model(ckpt, MLP(MLPConfig(n_embd=4, n_hidden=16)))
    with pytest.warns(DeprecationWarning, match=r"MLP.cfg is deprecated .*use .config"):
        assert model.cfg is model.config
    for other in (WaveNet(WaveNetConfig(n_embd=4, n_hidden=8)), GatedWaveNet(GatedWaveNetConfig(n_embd=4)),
                  NeuralBigram(5), CountingBigram(torch.ones(5, 5)), LastPosition(model)):
        stored = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model=other))["model_config"]
        assert stored == asdict(other.config) and stored["vocab_size"] == other.vocab_size
