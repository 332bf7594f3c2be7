"""Train the character-level Shakespeare GPT in one of its named configurations and print figures.

    python bench/bench_gpt_char.py --config baby    # nanoGPT README's CPU "baby GPT" (the anchor)
    python bench/bench_gpt_char.py --config fast    # best recipe found to reach val 1.886 quickly on 2 cores
    python bench/bench_gpt_char.py --config cpu     # the notebook's cpu profile (<= 10 min, val <= 1.70)
    python bench/bench_gpt_char.py --config gpu     # nanoGPT's shakespeare_char (run on a GPU)

Prints ms per iteration, the validation loss nanoGPT-style (mean of eval_iters random batches)
and over the whole validation split, the wall time, and the lines to quote. Runs under
``torchrun --nproc_per_node=N`` too (rank 0 prints); the configuration's batch size is then the
global batch, split evenly over the processes, so the run does the same arithmetic as one process.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from lm_steps.data import shakespeare_splits
from lm_steps.evaluation import evaluate_stream
from lm_steps.gpt import GPT, GPTConfig
from lm_steps.tokenizers import CharTokenizer
from lm_steps.config import TrainConfig
from lm_steps.runs import setup_distributed, train

# nanoGPT's config/train_shakespeare_char.py (bias=False, tied weights, beta2=0.99, wd=0.1, clip=1)
GPU = (GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2),
       TrainConfig(max_iters=5000, batch_size=64, lr=1e-3, min_lr=1e-4, warmup_iters=100,
                   eval_interval=250, eval_iters=200))
# its README's CPU flags: --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128
# --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0 --eval_iters=20 (fp32)
BABY = (GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0),
        TrainConfig(max_iters=2000, batch_size=12, lr=1e-3, min_lr=1e-4, warmup_iters=100,
                    eval_interval=250, eval_iters=20, dtype="float32"))
# the notebook's cpu profile: about 5 minutes on 2 cores
CPU = (GPTConfig(vocab_size=65, block_size=128, n_layer=4, n_head=4, n_embd=192, dropout=0.0),
       TrainConfig(max_iters=2000, batch_size=16, lr=2e-3, min_lr=2e-4, warmup_iters=100,
                   eval_interval=250, eval_iters=20, dtype="float32"))
# the quickest recipe found to reach the anchor's val 1.886 (search log: bench/results/fast_recipe_search.md):
# two layers of width 128 with a ReLU feed-forward, batch 16, a 6x higher learning rate than nanoGPT's,
# bf16 autocast (this CPU's matrix units), evaluation only at the start and the end
FAST = (GPTConfig(vocab_size=65, block_size=64, n_layer=2, n_head=4, n_embd=128, dropout=0.0, ffn="relu"),
        TrainConfig(max_iters=1000, batch_size=16, lr=6e-3, min_lr=6e-4, warmup_iters=50,
                    eval_interval=1000, eval_iters=20, dtype="bfloat16"))
CONFIGS = {"gpu": GPU, "baby": BABY, "fast": FAST, "cpu": CPU}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="baby")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    parser.add_argument("--max-iters", type=int, default=None, help="override the configuration's max_iters")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model first")
    parser.add_argument("--checkpoint", default=None, help="write a checkpoint here at the end")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rank, world, dist_device = setup_distributed()
    device = torch.device(dist_device or args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model_cfg, train_cfg = CONFIGS[args.config]
    if args.max_iters is not None:
        train_cfg = replace(train_cfg, max_iters=args.max_iters, lr_decay_iters=args.max_iters)
    if world > 1:  # the configuration's batch is the global one: each rank takes its share
        if train_cfg.batch_size % world:
            raise SystemExit(f"batch_size {train_cfg.batch_size} does not split over {world} processes")
        train_cfg = replace(train_cfg, batch_size=train_cfg.batch_size // world)
    t_start = time.perf_counter()
    train_text, val_text = shakespeare_splits()
    tok = CharTokenizer.from_text(train_text + val_text)
    train_ids = torch.tensor(tok.encode(train_text), dtype=torch.long)
    val_ids = torch.tensor(tok.encode(val_text), dtype=torch.long)
    model = GPT(model_cfg, generator=torch.Generator().manual_seed(train_cfg.seed)).to(device)
    net = torch.compile(model) if args.compile else model
    hist = train(net, (train_ids, val_ids), train_cfg, device=device, checkpoint_path=args.checkpoint,
                 tokenizer=tok.to_dict())
    wall = time.perf_counter() - t_start
    if world > 1:
        torch.distributed.destroy_process_group()
    if rank != 0:
        return
    steps = train_cfg.max_iters
    train_s = hist["elapsed"][-1]
    t = time.perf_counter()
    full = evaluate_stream(model, val_ids, batch_size=64, device=device)
    full_s = time.perf_counter() - t
    print(f"config={args.config} device={device} threads={torch.get_num_threads()} world={world} "
          f"compile={args.compile} params={model.num_params():,}")
    print(f"model: {model_cfg}")
    print(f"train: {train_cfg}")
    for s, tl, vl, el in zip(hist["val_step"], hist["train_eval_loss"], hist["val_loss"], hist["elapsed"]):
        print(f"  step {s:5d}  train {tl:.4f}  val {vl:.4f}  ({el:6.1f} s)")
    print(f"iterations: {steps}, training loop incl. evals: {train_s:.1f} s "
          f"({1000 * train_s / max(steps, 1):.1f} ms/iter incl. evals)")
    print(f"val loss (mean of {train_cfg.eval_iters} random batches, nanoGPT-style) at step {hist['val_step'][-1]}: "
          f"{hist['val_loss'][-1]:.4f}")
    best = min(range(len(hist["val_loss"])), key=hist["val_loss"].__getitem__)
    print(f"best val loss (nanoGPT keeps this checkpoint): {hist['val_loss'][best]:.4f} at step {hist['val_step'][best]}")
    print(f"val loss over the whole split ({full['n_tokens']:,} tokens, windows of {model_cfg.block_size}): "
          f"{full['loss']:.4f} nats/char = {full['bits_per_token']:.4f} bits/char ({full_s:.1f} s)")
    print(f"wall time (data + model + training + evals, excluding the full-split eval): {wall:.1f} s")


if __name__ == "__main__":
    main()
