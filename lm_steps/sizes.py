"""Every notebook's sizes, per profile, in one table: ``sizes("05")`` gives notebook 05's for this run.

A profile says how big a run is: ``smoke`` (CI: seconds per notebook), ``cpu`` (a few minutes per
notebook on a laptop's CPU) and ``gpu`` (one GPU); :func:`lm_steps.utils.get_profile` picks it from
``LM_STEPS_PROFILE``, else ``gpu`` with CUDA, else ``cpu``. A value written ``Per(smoke, cpu, gpu)``
depends on the profile; any other value is the same in all three. The command line's presets read
the same table, so ``lm-steps train --config cpu`` trains what notebook 05 trains in the cpu profile.

    >>> S = sizes("01", profile="smoke")
    >>> S.n_samples
    5
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, NamedTuple

from .config import Recipe
from .mlp import MLP_RECIPES
from .utils import PROFILES, get_profile
from .wavenet import WAVENET_RECIPES

__all__ = ["Per", "TABLE", "sizes"]


class Per(NamedTuple):
    """A value per profile."""

    smoke: Any
    cpu: Any
    gpu: Any


# notebook 04's short recipe (seconds) and the recipe of its versions log (a few minutes on a CPU)
_WAVENET_QUICK = Recipe(steps=300, batch_size=64, optimizer="adamw", lr=1e-2, final_lr=1e-3, schedule="cosine")
_WAVENET_VERSIONS = Recipe(steps=4_000, batch_size=256, optimizer="adamw", lr=1e-2, final_lr=1e-4, schedule="cosine",
                           warmup=100)

TABLE: dict[str, dict[str, Any]] = {
    # ---- 01 counting bigram
    "01": dict(
        n_samples=Per(5, 20, 20),  # names printed from each sampler
    ),

    # ---- 02 gradient bigram
    "02": dict(
        manual_steps=Per(5, 100, 200),  # gradient descent by hand
        steps=Per(100, 150, 300),  # Adam, to the counting solution
        l2_steps=Per(3, 150, 300),  # each run of the L2 sweep
        n_samples=Per(5, 20, 20),  # names printed from each model
        bug_steps=30,  # the Adam loop without zero_grad, and fixed
        n_compare=1_000,  # names sampled from both models to count how many agree
    ),

    # ---- 03 MLP
    "03": dict(
        range_steps=Per(100, 1_000, 1_000),  # learning-rate range test
        loop_steps=200,  # the minibatch loop written by hand, against fit
        bug_steps=500,  # SGD at the range test's rate, and at ten times it
        recipe=Per(  # the MLP, with and without BatchNorm
            Recipe(steps=300, batch_size=64, optimizer="adamw", lr=1e-2, final_lr=1e-3, schedule="cosine"),
            MLP_RECIPES["cpu"], MLP_RECIPES["lecture"]),
        deep_steps=Per(30, 1_000, 1_000),  # the 5-layer network's update ratios
        emb2=Per(  # the 2-D embedding model
            Recipe(steps=300, batch_size=64, optimizer="adamw", lr=1e-2, final_lr=1e-3, schedule="cosine"),
            Recipe(steps=6_000, batch_size=256, optimizer="adamw", lr=1e-2, final_lr=1e-4, schedule="cosine",
                   warmup=100),
            Recipe(steps=6_000, batch_size=256, optimizer="adamw", lr=1e-2, final_lr=1e-4, schedule="cosine",
                   warmup=100)),
        n_samples=Per(5, 20, 20),
        # what training must reach: each MLP's highest dev loss (nats/char; smoke: below the counting bigram's
        # 2.4533; gpu runs the lecture's recipe: its figures + 0.02) and the lowest vowel-vs-consonant margin
        # of the main model's embeddings (mean cosine among vowels minus vowel with consonant)
        max_dev=Per(2.40, 2.10, 2.1070 + 0.02),
        max_dev_bn=Per(2.45, 2.15, 2.1048 + 0.02),
        min_vowel_cos=Per(0.03, 0.1, 0.1),
    ),

    # ---- 03b backprop by hand
    "03b": dict(
        steps=Per(300, 20_000, 100_000),  # SGD steps of the training without autograd, lr 0.1 then 0.01 from half way
        min_learned=Per(0.5, 1.0, 1.0),  # the hand-trained model's dev loss is at least this far below ln 27
    ),

    # ---- 04 WaveNet
    "04": dict(
        threads=Per(1, 2, 2),  # CPU threads: two make a step of batches of 512 about 1.5x faster; tiny steps gain nothing
        versions=Per(_WAVENET_QUICK, _WAVENET_VERSIONS, _WAVENET_VERSIONS),  # each version of the log
        recipe=Per(_WAVENET_QUICK, WAVENET_RECIPES["cpu"], WAVENET_RECIPES["lecture"]),  # the scaled-up WaveNet
        n_eval_train=Per(5_000, None, None),  # training examples scored (None: all)
        n_samples=Per(5, 20, 20),  # names sampled from the scaled-up WaveNet
        # the scaled-up WaveNet's highest dev loss, nats/char (the bigram: 2.4533; the lecture's recipe: its 1.9937 + 0.02)
        max_dev=Per(2.35, 1.99, 1.9937 + 0.02),
    ),

    # ---- 05 Shakespeare GPT
    "05": dict(
        cuda=Per(False, False, True),  # train on the GPU where there is one (else the CPU)
        # sections 2-9: the lecture's small model, built piece by piece; every version trains on the same budget
        small=Per(dict(block_size=8, n_embd=32, n_head=4, n_layer=2),
                  dict(block_size=8, n_embd=32, n_head=4, n_layer=3),
                  dict(block_size=8, n_embd=32, n_head=4, n_layer=3)),
        budget=Per(dict(max_iters=150, batch_size=16, lr=1e-2, min_lr=1e-2 / 10, warmup_iters=15, eval_interval=150,
                        eval_iters=20, dtype="float32"),  # TrainConfig fields
                   dict(max_iters=500, batch_size=32, lr=1e-2, min_lr=1e-2 / 10, warmup_iters=50, eval_interval=500,
                        eval_iters=20, dtype="float32"),
                   dict(max_iters=5000, batch_size=32, lr=1e-3, min_lr=1e-3 / 10, warmup_iters=500,
                        eval_interval=5000, eval_iters=20, dtype="float32")),
        # section 10 on: the scaled-up GPT trained with train(); gpu = nanoGPT's config/train_shakespeare_char.py
        model=Per(dict(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=64),  # GPTConfig fields
                  dict(vocab_size=65, block_size=128, n_layer=4, n_head=4, n_embd=128),
                  dict(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2)),
        train=Per(dict(max_iters=300, batch_size=16, lr=3e-3, min_lr=3e-3 / 10, warmup_iters=20, eval_interval=30,
                       eval_iters=10),  # TrainConfig fields
                  dict(max_iters=1500, batch_size=16, lr=2e-3, min_lr=2e-3 / 10, warmup_iters=100, eval_interval=250,
                       eval_iters=20),
                  dict(max_iters=5000, batch_size=64, lr=1e-3, min_lr=1e-3 / 10, warmup_iters=100, eval_interval=250,
                       eval_iters=200)),
        threads=Per(1, 2, 1),  # the most CPU threads the scaled-up GPT trains with (the small models use one)
        val_below=Per(2.6, 1.85, 1.47),  # its best validation estimate; nanoGPT reports 1.4697 for the gpu size
        n_sample=Per(80, 300, 500),  # characters sampled per setting in section 13
        past=Per(16, 64, 64),  # characters generated past the block in section 15
        timed=dict(vocab_size=65, block_size=128, n_layer=4, n_head=4, n_embd=128),  # the KV-cache timing (CPU)
    ),

    # ---- 06 WikiText BPE GPT
    "06": dict(
        vocab_size=Per(512, 8192, 8192),  # BPE tokens
        bpe_chars=Per(400_000, None, None),  # training characters the BPE learns from (None: all)
        n_layer=Per(2, 4, 6),
        n_head=Per(2, 4, 8),
        n_embd=Per(64, 192, 512),
        block_size=Per(64, 128, 512),
        dropout=Per(0.0, 0.0, 0.3),
        batch_size=Per(8, 16, 32),
        max_iters=Per(300, 700, 2500),
        lr=Per(3e-3, 2e-3, 1e-3),
        warmup_iters=Per(20, 100, 200),
        eval_interval=Per(100, 175, 250),  # also where checkpoints are saved
        eval_iters=Per(2, 8, 20),
        ckpt_eval_tokens=Per(4_000, 40_000, None),  # validation tokens each checkpoint is scored on (None: all)
        eval_articles=Per(2, None, None),  # validation/test articles scored (None: all 60)
        stride=Per(32, 64, 128),  # sliding-window step
        eval_batch=Per(16, 32, 32),
        gen_tokens=Per(24, 60, 80),
        # the schedule / label smoothing / positions comparison: a smaller GPT, the same steps for each variant and
        # seed (the steps at least three times the warmup); three seeds: narrower, shorter batches than one run each
        cmp_layers=Per(2, 2, 4),
        cmp_heads=Per(2, 4, 8),
        cmp_embd=Per(64, 64, 256),
        cmp_batch=Per(8, 8, 32),
        cmp_iters=Per(100, 160, 1000),
        cmp_warmup=Per(20, 50, 200),
        cmp_seeds=3,
        # what the measurements must show: the largest ratio of a pretrained tokenizer's bytes per token to ours,
        # and the highest test word-level perplexity (sliding window) of the trained model
        compression_gap=Per(2.5, 1.15, 1.15),
        max_word_ppl=Per(12_000, 430, 100),  # cpu: 401.8 measured (700 steps)
    ),

    # ---- 07 GPT grows up
    "07": dict(
        # notebook 05's GPT (smaller in cpu and smoke, so that the five variants train in a few minutes)
        base=Per(dict(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=32),
                 dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128),
                 dict(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384)),
        # every variant's training budget per seed, in float32 unless it is the bf16 variant (TrainConfig fields)
        train=Per(dict(max_iters=30, batch_size=8, lr=3e-3, min_lr=3e-4, warmup_iters=5, eval_interval=30,
                       eval_iters=2, dtype="float32"),
                  dict(max_iters=250, batch_size=16, lr=2e-3, min_lr=2e-4, warmup_iters=25, eval_interval=250,
                       eval_iters=10, dtype="float32"),
                  dict(max_iters=2000, batch_size=64, lr=1e-3, min_lr=1e-4, warmup_iters=100, eval_interval=2000,
                       eval_iters=50, dtype="float32")),
        gqa_kv=2,  # key/value heads of the grouped-query variant
        n_seeds=3,  # every variant trains once per seed (initialisation and batches): the spread of a run
        gen=Per(dict(batch=8, prompt=8, new=16), dict(batch=32, prompt=16, new=48),
                dict(batch=64, prompt=64, new=192)),  # the generation timing
        attn_shape=Per((8, 4, 128, 32), (16, 4, 128, 32), (64, 6, 256, 64)),  # (B, nh, T, hs) timed
        attn_rounds=40,  # attention timings: fastest of this many calls
        repeats=Per(10, 5, 10),  # generation timings: best of this many rounds
        ddp_steps=Per(3, 20, 5),  # steps of the two-process run (on the CPU)
        device=Per("cpu", "cpu", "cuda"),  # cuda only where there is one
        threads=Per(1, 2, 2),  # CPU threads, at most what the machine has
    ),

    # ---- 08 masked LM
    "08": dict(
        n_layer=Per(2, 2, 6),  # both models: layers and width
        n_embd=Per(64, 64, 384),
        steps=Per(300, 1_500, 5_000),  # training steps of each model
        batch=Per(64, 64, 128),  # lines per step
        lr=Per(1e-2, 1e-2, 1e-3),
        blanks=Per(600, 3_000, 3_000),  # held-out blanks in the final test
        ahead_se=Per(-2, 2, 2),  # encoder minus GPT accuracy on them, in (paired) standard errors, at least
        #                          (300 steps end about where the encoder catches up)
        bug_steps=60,  # steps of the find-the-bug run (padding left in the targets)
        threads=Per(1, 2, 2),  # two threads make a step (64 lines) about 1.5x faster; at most what the machine has
    ),

    # ---- 09 quantisation
    "09": dict(
        n_val=Per(20_000, 100_000, 111_540),  # validation characters scored (111,540: all of them)
        n_new=Per(32, 128, 256),  # tokens generated per timing round
        rounds=Per(3, 5, 5),  # interleaved timing rounds; the table shows the median and the spread
    ),

    # ---- 10 scaling laws
    "10": dict(
        widths=Per((8, 16, 24, 32), (16, 32, 48, 64), (32, 64, 128, 192)),  # n_embd of the grid's GPTs
        steps=Per((40, 80, 160), (250, 500, 1000), (1000, 2000, 4000)),  # token budgets, in steps
        model=dict(n_layer=2, n_head=2, block_size=64),
        train=dict(batch_size=16, lr=3e-3, min_lr=3e-4, eval_iters=0, dtype="float32"),
        n_val=Per(20_000, 100_000, 111_540),  # validation characters scored
        seeds=(1, 2, 3),  # the compute-optimal model is trained once per seed
    ),
}


def sizes(notebook: str, *, profile: str | None = None) -> SimpleNamespace:
    """Notebook ``notebook``'s sizes (e.g. ``"05"``) in ``profile`` (default: this run's), as attributes."""
    if notebook not in TABLE:
        raise ValueError(f"no sizes for notebook {notebook!r}; the table has {', '.join(TABLE)}")
    profile = get_profile() if profile is None else profile
    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r} is not one of {', '.join(PROFILES)}")
    return SimpleNamespace(**{name: getattr(v, profile) if isinstance(v, Per) else v
                              for name, v in TABLE[notebook].items()})
