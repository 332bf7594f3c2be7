"""Train the cpu-profile recipes of stages 3-4 on the names split; print dev losses, sizes and times.

Run from the repository root, alone on the machine (the figures are wall times):

    flock /tmp/lm_steps_cpu.lock python bench/bench_names.py            # cpu recipes
    python bench/bench_names.py --recipe lecture                        # the lectures' SGD recipes (GPU)
    python bench/bench_names.py --only wavenet --steps 20000            # one model, other length

Targets (issue 3): MLP dev <= 2.10 nats/char, WaveNet dev <= 1.99.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from lm_steps import auto_device, make_generator
from lm_steps.bigram import CountingBigram, count_bigrams
from lm_steps.data import make_examples, names_splits
from lm_steps.evaluation import evaluate
from lm_steps.fixed_context import LastPosition
from lm_steps.mlp import MLP, MLP_CONFIGS, MLP_RECIPES
from lm_steps.training import fit
from lm_steps.tokenizers import CharTokenizer
from lm_steps.wavenet import WAVENET_CONFIGS, WAVENET_RECIPES, WaveNet

MODELS = {
    "mlp": (MLP, MLP_CONFIGS["lecture"], MLP_RECIPES, 2.10),
    "mlp_bn": (MLP, MLP_CONFIGS["lecture_bn"], MLP_RECIPES, None),  # no target of its own
    "wavenet": (WaveNet, WAVENET_CONFIGS["lecture"], WAVENET_RECIPES, 1.99),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="cpu", choices=["cpu", "lecture"])
    parser.add_argument("--only", nargs="*", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--steps", type=int, default=None, help="override the recipe's steps")
    parser.add_argument("--batch-size", type=int, default=None, help="override the recipe's batch size")
    parser.add_argument("--lr", type=float, default=None, help="override the recipe's peak learning rate")
    parser.add_argument("--weight-decay", type=float, default=None, help="override the recipe's weight decay")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: these layers are too small to gain from more)")
    args = parser.parse_args()
    device = torch.device(args.device) if args.device else auto_device()
    torch.set_num_threads(args.threads)

    train_w, dev_w, _ = names_splits()
    tok = CharTokenizer.from_text(train_w, boundary=".")
    bigram = CountingBigram(count_bigrams(train_w, tok), smoothing=1)
    print(f"device {device}, torch threads {torch.get_num_threads()}, recipe {args.recipe}")
    print(f"bigram (smoothing 1)  dev {evaluate(bigram, *make_examples(dev_w, 1, tok))['loss']:.4f}")
    for name in args.only:
        cls, cfg, recipes, target = MODELS[name]
        recipe = recipes[args.recipe]
        changes = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size), ("lr", args.lr),
                                                          ("weight_decay", args.weight_decay))
                   if v is not None}
        recipe = dataclasses.replace(recipe, **changes)
        Xtr, Ytr = make_examples(train_w, cfg.block_size, tok)
        Xdev, Ydev = make_examples(dev_w, cfg.block_size, tok)
        model = cls(cfg, generator=make_generator(args.seed), device=device)
        n_params = sum(p.numel() for p in model.parameters())
        t0 = time.perf_counter()
        hist = fit(LastPosition(model), Xtr, Ytr, recipe, generator=make_generator(args.seed + 1), device=device)
        seconds = time.perf_counter() - t0
        tr = evaluate(LastPosition(model), Xtr, Ytr)["loss"]  # score the last position only
        dev = evaluate(LastPosition(model), Xdev, Ydev)["loss"]
        ok = "no target" if target is None else ("meets" if dev <= target else "MISSES") + f" <= {target}"
        print(f"{name:8s} params {n_params:6,d}  {recipe.optimizer} {recipe.steps} steps x {recipe.batch_size}  "
              f"lr {recipe.lr:g} wd {recipe.weight_decay:g}  train {tr:.4f}  dev {dev:.4f} ({ok})  "
              f"train time {seconds:.1f} s ({seconds / max(recipe.steps, 1) * 1e3:.2f} ms/step)  "
              f"last loss {hist['loss'][-1]:.3f}")


if __name__ == "__main__":
    main()
