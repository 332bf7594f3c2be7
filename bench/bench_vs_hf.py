"""lm-steps against Hugging Face transformers on the same GPT-2-shaped weights, on the CPU, one thread.

    python bench/bench_vs_hf.py            # GPT-2 small's shape (124M parameters): a couple of minutes
    python bench/bench_vs_hf.py --quick    # a tiny model: seconds, checks that everything runs

One randomly initialised ``transformers.GPT2LMHeadModel`` (built from a ``GPT2Config``: no download)
is loaded into lm-steps' GPT through :mod:`lm_steps.gpt2`, so both hold exactly the same weights.
Measured, each in one process and interleaved round by round so both see the same machine load:

1. cached greedy generation, tokens per second (new tokens x batch / seconds), batch 1 and batch 8:
   ``transformers``' ``generate(do_sample=False, use_cache=True)`` against ``lm_steps.generate``
   (``temperature=0``, the KV cache);
2. sliding-window evaluation throughput on one token stream (scored tokens per second): the same
   window schedule (:func:`lm_steps.evaluate.token_nlls`) run on each model's forward.

Printed: both figures, the ratio (lm-steps / transformers: above 1.0 means lm-steps is faster), the
largest logit difference on one batch, whether the greedy tokens agree and the two streams' NLL.
Time it on a quiet machine: the figures mean nothing while other work shares the CPU.
"""
from __future__ import annotations

import argparse
import time

import torch

from lm_steps.evaluation import token_nlls
from lm_steps.gpt2 import gpt_from_hf
from lm_steps.sample import generate

SIZES = {  # name: (n_layer, n_head, n_embd, vocab_size, n_positions, prompt, new tokens, stream, window, stride)
    "gpt2": (12, 12, 768, 50257, 1024, 16, 256, 3072, 1024, 512),
    "quick": (2, 2, 64, 1000, 128, 8, 16, 512, 128, 64),
}


class HFAsLM(torch.nn.Module):
    """A transformers causal LM behind lm-steps' interface: ``forward(idx) -> (logits, None)``."""

    def __init__(self, hf, block_size: int):
        super().__init__()
        self.hf, self.block_size = hf, block_size

    def forward(self, idx, targets=None):
        return self.hf(idx).logits, None


def best_of(fn, rounds: int) -> tuple[float, object]:
    """The fastest of ``rounds`` calls (seconds) and the last result."""
    best, out = float("inf"), None
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model: a check that everything runs")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds of each (default 2; --quick 1)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import transformers

    torch.set_num_threads(args.threads)
    n_layer, n_head, n_embd, V, n_pos, prompt_len, n_new, n_stream, window, stride = SIZES["quick" if args.quick else "gpt2"]
    rounds = args.rounds or (1 if args.quick else 2)
    torch.manual_seed(0)  # transformers initialises from the global generator
    cfg = transformers.GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=V, n_positions=n_pos,
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=V - 1, eos_token_id=V - 1)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    ours = gpt_from_hf(hf).eval()
    g = torch.Generator().manual_seed(1)
    print(f"GPT-2 shape: {n_layer} layers, {n_head} heads, width {n_embd}, vocab {V}, context {n_pos}; "
          f"{ours.num_params():,} parameters; torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{torch.get_num_threads()} thread(s)")

    with torch.no_grad():
        idx = torch.randint(V, (2, min(64, n_pos)), generator=g)
        gap = (ours(idx)[0] - hf(idx).logits).abs().max().item()
    print(f"largest logit difference on a (2, {idx.size(1)}) batch: {gap:.2e}")

    for batch in (1, 8):
        prompt = torch.randint(V, (batch, prompt_len), generator=g)
        hf_gen = lambda: hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n_new,  # noqa: E731
                                     min_new_tokens=n_new, do_sample=False, use_cache=True, pad_token_id=0)
        our_gen = lambda: generate(ours, prompt, n_new, temperature=0)  # noqa: E731
        hf_s = ours_s = float("inf")
        with torch.no_grad():
            for _ in range(rounds):  # interleaved: the machine's noise hits both alike
                s, hf_out = best_of(hf_gen, 1)
                hf_s = min(hf_s, s)
                s, our_out = best_of(our_gen, 1)
                ours_s = min(ours_s, s)
        same = torch.equal(hf_out[:, -n_new:], our_out[:, -n_new:])
        hf_tps, our_tps = batch * n_new / hf_s, batch * n_new / ours_s
        print(f"cached greedy generation, batch {batch}, {n_new} new tokens after {prompt_len}: "
              f"transformers {hf_tps:,.1f} tokens/s, lm-steps {our_tps:,.1f} tokens/s, ratio {our_tps / hf_tps:.2f}x; "
              f"same tokens: {same}")

    stream = torch.randint(V, (n_stream,), generator=g)
    wrapped = HFAsLM(hf, window).eval()
    hf_s = ours_s = float("inf")
    for _ in range(rounds):
        s, (hf_nll, _) = best_of(lambda: token_nlls(wrapped, stream, block_size=window, stride=stride), 1)
        hf_s = min(hf_s, s)
        s, (our_nll, _) = best_of(lambda: token_nlls(ours, stream, block_size=window, stride=stride), 1)
        ours_s = min(ours_s, s)
    n = len(our_nll)
    print(f"sliding-window evaluation of {n_stream:,} tokens (window {window}, stride {stride}): "
          f"transformers {n / hf_s:,.1f} tokens/s, lm-steps {n / ours_s:,.1f} tokens/s, "
          f"ratio {hf_s / ours_s:.2f}x; mean NLL {hf_nll.mean():.5f} vs {our_nll.mean():.5f} "
          f"(largest per-token gap {(hf_nll - our_nll).abs().max():.1e})")


if __name__ == "__main__":
    main()
