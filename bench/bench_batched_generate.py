"""Time one batched generate call over prompts of different lengths against one call per prompt.

    python bench/bench_batched_generate.py               # the baby GPT and nanoGPT's shakespeare_char size
    python bench/bench_batched_generate.py --prompts 16 --new 64

The prompts (lengths spread from 4 to ``--longest`` tokens) are left-padded into one batch with
``lm_steps.inference.left_pad`` and generated greedily in one ``generate(..., attention_mask=mask)``
call, then one prompt at a time; both with the KV cache, within the block. Untrained models:
weights do not change the work. Also checks that every row's new tokens equal its prompt's
alone. Each figure is the best of ``--repeats`` runs.
"""
from __future__ import annotations

import argparse
import time

import torch

from lm_steps.gpt import GPT, GPTConfig
from lm_steps.inference import left_pad
from lm_steps.sample import generate

SIZES = {
    "baby (4x128, block 64)": GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128),
    "shakespeare_char (6x384, block 256)": GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384),
}


def best_time(fn, repeats: int):
    """Best time of ``repeats`` calls of ``fn`` and its last result."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--longest", type=int, default=24)
    parser.add_argument("--new", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice; 1 on a loaded machine, where more threads stall)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"threads={torch.get_num_threads()} {args.prompts} prompts of 4 to {args.longest} tokens, "
          f"{args.new} new tokens each, greedy, KV cache; best of {args.repeats}")
    for name, cfg in SIZES.items():
        if args.longest + args.new > cfg.block_size:
            raise SystemExit(f"--longest + --new must fit in block_size={cfg.block_size} (timing within the block)")
        model = GPT(cfg, generator=torch.Generator().manual_seed(0)).eval()
        g = torch.Generator().manual_seed(1)
        lengths = torch.linspace(4, args.longest, args.prompts).round().long().tolist()
        prompts = [torch.randint(cfg.vocab_size, (n,), generator=g) for n in lengths]
        idx, mask = left_pad(prompts)
        t_batch, out = best_time(lambda: generate(model, idx, args.new, temperature=0, attention_mask=mask),
                                 args.repeats)
        t_each, alone = best_time(lambda: [generate(model, p[None], args.new, temperature=0) for p in prompts],
                                  args.repeats)
        same = all(torch.equal(out[b, -args.new:], a[0, -args.new:]) for b, a in enumerate(alone))
        print(f"{name}: one batched call {t_batch:.2f} s, one call per prompt {t_each:.2f} s: "
              f"{t_each / t_batch:.1f}x faster batched; every row equals its prompt alone: {same}")


if __name__ == "__main__":
    main()
