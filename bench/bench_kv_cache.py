"""Time generation with and without the KV cache, within the block and past it.

    python bench/bench_kv_cache.py                 # nanoGPT shakespeare_char size and the baby GPT size
    python bench/bench_kv_cache.py --checkpoint run.pt

Two runs per model, each timed with and without the cache:

- within the block: a ``--prompt``-token prompt extended until the sequence fills the block
  (every step can reuse the cached keys and values);
- past the block: a prompt of ``block_size`` tokens extended by ``--past`` tokens (every step's
  window has slid, so the cached keys cannot be reused and ``generate`` re-runs the window: the
  cache saves nothing there, by design).

Weights do not change the work, so untrained models are timed unless a checkpoint is given.
Each figure is the best of ``--repeats`` runs. Also checks that the cache changes nothing: the
largest gap between the logits each step sampled from, cached against recomputed, and whether
the sampled tokens are identical.
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


def timed_generate(model, prompt, n, use_cache, repeats):
    """Best time of ``repeats`` sampled runs, the last run's tokens and the logits (n, B, V) of its steps."""
    best, seen = float("inf"), []
    handle = model.register_forward_hook(lambda mod, args, out: seen.append(out[0][:, -1].clone()))
    try:
        for _ in range(repeats):
            seen.clear()
            t0 = time.perf_counter()
            out = generate(model, prompt, n, use_cache=use_cache, generator=torch.Generator().manual_seed(2))
            best = min(best, time.perf_counter() - t0)
    finally:
        handle.remove()
    return best, out, torch.stack(seen)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--prompt", type=int, default=16, help="prompt length of the within-the-block run")
    parser.add_argument("--past", type=int, default=40, help="new tokens past a full block")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice; 1 on a loaded machine, where more threads stall)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = {}
    if args.checkpoint:
        models[args.checkpoint] = gpt_from_checkpoint(args.checkpoint)[0]
    else:
        models = {name: GPT(cfg, generator=torch.Generator().manual_seed(0)) for name, cfg in SIZES.items()}
    print(f"threads={torch.get_num_threads()} best of {args.repeats}")
    for name, model in models.items():
        model.eval()
        V, bs = model.config.vocab_size, model.block_size
        tokens = torch.randint(V, (1, bs), generator=torch.Generator().manual_seed(1))
        print(f"{name}: {model.num_params():,} params")
        for label, prompt, n in (("within the block", tokens[:, :args.prompt], bs - args.prompt),
                                 ("past the block", tokens, args.past)):
            t_re, out_re, logits_re = timed_generate(model, prompt, n, False, args.repeats)
            t_kv, out_kv, logits_kv = timed_generate(model, prompt, n, True, args.repeats)
            gap = (logits_kv - logits_re).abs().max().item()
            print(f"  {label} ({prompt.size(1)}-token prompt + {n} new): recompute {t_re:.2f} s "
                  f"({1000 * t_re / n:.1f} ms/token), cached {t_kv:.2f} s ({1000 * t_kv / n:.1f} ms/token): "
                  f"{t_re / t_kv:.1f}x; largest logit gap {gap:.1e}, tokens identical: {torch.equal(out_re, out_kv)}")


if __name__ == "__main__":
    main()
