"""Time generation with and without the KV cache: a 64-character prompt plus 500 new characters.

    python bench/bench_kv_cache.py                 # nanoGPT shakespeare_char size and the baby GPT size
    python bench/bench_kv_cache.py --checkpoint run.pt

Weights do not change the work, so untrained models are timed unless a checkpoint is given.
Each figure is the best of ``--repeats`` runs. Also checks that, within the block, cached and
recomputed greedy generation give the same characters.
"""
from __future__ import annotations

import argparse
import time

import torch

from lm_steps.checkpoint import gpt_from_checkpoint
from lm_steps.gpt import GPT, GPTConfig
from lm_steps.sample import generate

SIZES = {
    "shakespeare_char (6x384, block 256)": GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384),
    "baby (4x128, block 64)": GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128),
}


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--new", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    models = {}
    if args.checkpoint:
        models[args.checkpoint] = gpt_from_checkpoint(args.checkpoint)[0]
    else:
        models = {name: GPT(cfg, generator=torch.Generator().manual_seed(0)) for name, cfg in SIZES.items()}
    print(f"threads={torch.get_num_threads()} prompt={args.prompt} new={args.new} best of {args.repeats}")
    for name, model in models.items():
        model.eval()
        V = model.config.vocab_size
        prompt = torch.randint(V, (1, args.prompt), generator=torch.Generator().manual_seed(1))
        times = {}
        for use_cache in (False, True):
            times[use_cache] = best_time(lambda: generate(model, prompt, args.new, use_cache=use_cache,
                                                          generator=torch.Generator().manual_seed(2)), args.repeats)
        short = prompt[:, : model.block_size // 2]
        n = model.block_size - short.size(1)
        same = torch.equal(generate(model, short, n, temperature=0, use_cache=True),
                           generate(model, short, n, temperature=0, use_cache=False))
        print(f"{name}: {model.num_params():,} params; recompute {times[False]:.2f} s "
              f"({1000 * times[False] / args.new:.1f} ms/char), cached {times[True]:.2f} s "
              f"({1000 * times[True] / args.new:.1f} ms/char): {times[False] / times[True]:.1f}x faster; "
              f"greedy text within the block identical: {same}")


if __name__ == "__main__":
    main()
