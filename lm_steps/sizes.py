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

    # ---- 05b tokenizers
    "05b": dict(
        bpe_chars=Per(200_000, 2_000_000, None),  # characters of WikiText-2's training split the BPEs learn from (None: all)
        vocab_size=Per(1024, 4096, 8192),  # ours with GPT-4's pattern, with GPT-2's, and SentencePiece: the same size
        vocab_sizes=Per((256, 512, 1024), (256, 512, 1024, 2048, 4096), (256, 512, 1024, 2048, 4096, 8192)),
        loop_chars=Per(5_000, 30_000, 60_000),  # the hand-written training loop's text (it recounts every pair per merge)
        loop_vocab=Per(256 + 30, 256 + 150, 256 + 300),
        eval_chars=Per(100_000, None, None),  # validation characters the compression is measured on (None: all)
        enc_chars=Per(20_000, 300_000, None),  # validation characters your encoder runs on (also with GPT-4's merges)
        n_numbers=10_000,  # the numbers 1 .. n_numbers, split by GPT-2's and GPT-4's tokenizers
        # the untrained-token experiment: a BPE of gpt_vocab tokens learned on WikiText, a GPT trained on Shakespeare
        gpt_vocab=Per(1024, 2048, 2048),
        gpt=Per(dict(block_size=32, n_layer=1, n_head=2, n_embd=32), dict(block_size=64, n_layer=2, n_head=2, n_embd=64),
                dict(block_size=64, n_layer=2, n_head=2, n_embd=64)),  # GPTConfig fields
        gpt_train=Per(dict(max_iters=100, batch_size=8, lr=3e-3, min_lr=3e-4, warmup_iters=10, eval_interval=100,
                           eval_iters=2, dtype="float32"),  # TrainConfig fields
                      dict(max_iters=600, batch_size=16, lr=3e-3, min_lr=3e-4, warmup_iters=30, eval_interval=600,
                           eval_iters=5, dtype="float32"),
                      dict(max_iters=600, batch_size=16, lr=3e-3, min_lr=3e-4, warmup_iters=30, eval_interval=600,
                           eval_iters=5, dtype="float32")),
        seeds=(1, 2, 3),  # the GPT is trained once per seed
        min_norm_ratio=Per(1.15, 2.0, 2.0),  # trained rows' mean norm over never-trained rows', at least (every seed)
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
        # the question classifier: steps and lines per step of each fine-tuning run, its learning rate (the
        # probes' is ten times it), seeds per way of training, and the least lead the pretrained encoder's
        # lowest seed must have over the highest seed trained from scratch (0: ahead on every seed; smoke's 300
        # pretraining steps are too few to be ahead, it may trail by a little)
        cls_steps=Per(80, 600, 600),
        cls_batch=32,
        cls_lr=1e-3,
        cls_seeds=3,
        cls_min_lead=Per(-0.1, 0.0, 0.0),
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

    # ---- 11 fine-tuning
    "11": dict(
        n_heldout=Per(60, 200, 500),  # held-out names (dev split; never fine-tuned on), each asked every task
        seeds=(1, 2, 3),  # every fine-tuning run once per seed (new rows, LoRA's A, the batches)
        # full fine-tuning and LoRA: the same steps and batches; LoRA's rate higher (at 1e-2 it diverged on the
        # cpu size's GPT, at 3e-3 it reached full fine-tuning's score in 500 steps)
        steps=Per(300, 500, 1500),
        batch_size=Per(16, 32, 64),
        full_lr=Per(2e-3, 1e-3, 3e-4),
        lora=dict(r=8, alpha=16),
        lora_lr=Per(3e-3, 3e-3, 1e-3),
        n_val=Per(20_000, 100_000, 111_540),  # Shakespeare validation characters scored for forgetting
        min_full=Per(0.1, 0.5, 0.8),  # the lowest held-out exact match full fine-tuning must reach in every seed
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
