"""Stage 1-2 figures: counting-bigram NLLs and the neural bigram's convergence, with wall times.

Run: python bench/bench_bigram.py   (uses LM_STEPS_DATA / the data cache; CPU)
"""
from __future__ import annotations

import argparse
import time

import torch

from lm_steps import data
from lm_steps.bigram import CountingBigram, NeuralBigram, count_bigrams
from lm_steps.evaluation import evaluate
from lm_steps.tokenizers import CharTokenizer
from lm_steps.training import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150, help="Adam steps for the neural bigram")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    words = data.load_names(progress=False)
    tok = CharTokenizer.from_text(words, boundary=".")
    X, Y = data.make_examples(words, 1, tok)

    t = time.perf_counter()
    N = count_bigrams(words, tok)
    t_count = time.perf_counter() - t
    raw = evaluate(CountingBigram(N), X, Y)["loss"]
    smooth = evaluate(CountingBigram(N, 1.0), X, Y)["loss"]
    print(f"counting bigram, all {len(words)} names ({len(Y)} bigrams): raw {raw:.4f}  add-one {smooth:.4f} nats/char"
          f"  (counted in {t_count:.2f} s)")

    train_w, dev_w, test_w = data.names_splits(words)
    model = CountingBigram(count_bigrams(train_w, tok), 1.0)
    figs = {n: evaluate(model, *data.make_examples(w, 1, tok))["loss"]
            for n, w in (("train", train_w), ("dev", dev_w), ("test", test_w))}
    print("counting bigram (add-one, counted on train): " + "  ".join(f"{k} {v:.4f}" for k, v in figs.items()))

    net = NeuralBigram(27, generator=torch.Generator().manual_seed(2147483647))
    t = time.perf_counter()
    fit(net, X, Y, steps=args.steps, lr=1.0, optimizer="adam")
    t_fit = time.perf_counter() - t
    nll = evaluate(net, X, Y)["loss"]
    gap = (net.W.detach().softmax(1) - CountingBigram(N).probs).abs().max().item()
    print(f"neural bigram, Adam lr 1.0, {args.steps} full-batch steps: NLL {nll:.4f} (gap {nll - raw:+.4f}),"
          f" max |P_neural - P_count| {gap:.5f}, {t_fit:.1f} s ({1000 * t_fit / args.steps:.1f} ms/step)")


if __name__ == "__main__":
    main()
