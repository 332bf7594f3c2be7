"""The encoder's classifier: pooling over real positions, padding invariance, the loss, the question task."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lm_steps.classify import SequenceClassifier, encoder_states, mean_pool, question_task
from lm_steps.mlm import MaskedLM, MLMConfig, pad_batch

from conftest import gen

CFG = MLMConfig(vocab_size=12, pad_id=10, mask_id=11, block_size=16, n_layer=1, n_head=2, n_embd=8)


def classifier(seed=0):
    return SequenceClassifier(MaskedLM(CFG, generator=gen(seed)), 3, generator=gen(seed + 1)).eval()


def test_mean_pool_averages_the_real_positions_only():
    h = torch.randn(2, 5, 4, generator=gen(1))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    torch.testing.assert_close(mean_pool(h, mask), torch.stack([h[0, :3].mean(0), h[1].mean(0)]), rtol=1e-6, atol=1e-6)
    h2 = h.clone()
    h2[0, 3:] = 1e6  # whatever sits at padded positions
    torch.testing.assert_close(mean_pool(h2, mask), mean_pool(h, mask), rtol=0, atol=0)


def test_encoder_states_are_what_the_lm_head_reads():
    model = MaskedLM(CFG, generator=gen(2)).eval()
    idx = torch.randint(10, (2, 7), generator=gen(3))
    with torch.no_grad():
        states = encoder_states(model, idx)
        logits, _ = model(idx)
    torch.testing.assert_close(model.lm_head(states), logits, rtol=1e-5, atol=1e-6)
    assert not model.transformer.ln_f._forward_hooks  # the hook is gone afterwards


def test_a_line_gets_the_same_logits_alone_and_in_a_padded_batch():
    model = classifier()
    lines = [[1, 2, 3], [4, 5, 6, 7, 8, 9], [2]]
    idx, mask = pad_batch(lines, CFG.pad_id)
    with torch.no_grad():
        batched, _ = model(idx, attention_mask=mask)
        alone = torch.cat([model(torch.tensor([s]))[0] for s in lines])
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-6)
    assert batched.shape == (3, 3)


def test_the_loss_is_cross_entropy_and_trains_the_head_and_the_encoder():
    model = classifier().train()
    idx, mask = pad_batch([[1, 2, 3], [4, 5]], CFG.pad_id)
    targets = torch.tensor([2, 0])
    logits, loss = model(idx, targets, attention_mask=mask)
    torch.testing.assert_close(loss, F.cross_entropy(logits, targets), rtol=1e-6, atol=1e-7)
    loss.backward()
    assert model.head.weight.grad.abs().sum() > 0 and model.encoder.transformer.h[0].attn.c_attn.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("targets, message", [
    (torch.tensor([[1], [0]]), "one class id per sequence"),
    (torch.tensor([0, 3]), "class ids 0..2"),
    (torch.tensor([0.0, 1.0]), "class ids 0..2"),
])
def test_bad_targets_are_one_clear_error(targets, message):
    idx, mask = pad_batch([[1, 2, 3], [4, 5]], CFG.pad_id)
    with pytest.raises(ValueError, match=message):
        classifier()(idx, targets, attention_mask=mask)


def test_a_classifier_needs_two_classes():
    with pytest.raises(ValueError, match="at least 2 classes"):
        SequenceClassifier(MaskedLM(CFG, generator=gen(0)), 1)


def test_question_task_is_balanced_labelled_by_the_cut_character_and_seeded():
    lines = ["Who are you?", "I am here.", "Go!", "Stay, then,", "What?", "So be it.", "Come.", "x"]
    texts, labels = question_task(lines, generator=gen(4))
    assert sorted(t for t, y in zip(texts, labels) if y) == ["What", "Who are you"]
    assert set(t for t, y in zip(texts, labels) if not y) <= {"I am here", "Go", "So be it", "Come"}
    assert labels.count(1) == labels.count(0) == 2
    assert all(t + ("?" if y else "") in lines or t + "." in lines or t + "!" in lines for t, y in zip(texts, labels))
    assert question_task(lines, generator=gen(4)) == (texts, labels)
    with pytest.raises(ValueError, match="at least one question"):
        question_task(["No questions here.", "None."], generator=gen(0))
