"""Where the time of one baby-GPT training step goes, and the floor its matrix multiplies set.

    python bench/bench_step_floor.py             # eager steps and their parts
    python bench/bench_step_floor.py --compile   # also a torch.compile'd model (compiles first)

The throughput goal for nanoGPT's CPU "baby GPT" (4 layers, 4 heads, 128 wide, block 64, batch 12,
fp32) is 1.5x nanoGPT's ~37 ms per iteration, i.e. <= 24.7 ms. This script times, in one process
and in interleaved rounds (this machine's timings drift with its neighbours, so every variant
sees the same conditions), the whole step as ``train()`` runs it, the same step with torch's
for-loop AdamW (nanoGPT's optimizer on a CPU), forward + backward alone, clipping + the optimizer
alone, the step's 51 matrix multiplies alone (3 per linear layer: forward, input gradient,
weight gradient) at their shapes, and the attention core and the GELU with their backward passes
alone: work no fp32 implementation of this model can skip. Prints the best and the median round
of each, in ms per step. The configuration is ``bench_gpt_char.py``'s ``baby``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench_gpt_char import BABY as BABY_CONFIGS  # this folder: the script's own, first on sys.path
from lm_steps.data import get_batch
from lm_steps.gpt import GPT, GPTConfig
from lm_steps.training import adamw

BABY, TRAIN = BABY_CONFIGS
BATCH = TRAIN.batch_size
NANOGPT_MS = 37.0  # nanoGPT's train.py, baby flags, on a 2-core machine of this kind (the anchor)


def matmul_shapes(cfg: GPTConfig, tokens: int) -> list[tuple[int, int, int]]:
    """(M, K, N) of every matrix multiply in one training step: x W^T, dY W and dY^T x per linear."""
    C = cfg.n_embd
    linears = [(C, 3 * C), (C, C), (C, 4 * C), (4 * C, C)] * cfg.n_layer + [(C, cfg.vocab_size)]
    shapes = []
    for fan_in, fan_out in linears:
        shapes += [(tokens, fan_in, fan_out), (tokens, fan_out, fan_in), (fan_out, tokens, fan_in)]
    return shapes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=25, help="steps per round")
    parser.add_argument("--compile", action="store_true", help="also time a torch.compile'd model")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    stream = torch.randint(0, BABY.vocab_size, (100_000,), generator=torch.Generator().manual_seed(0))

    def trainer(optimizer: str, compiled: bool = False):
        model = GPT(BABY, generator=torch.Generator().manual_seed(TRAIN.seed))
        opt = adamw(model, lr=TRAIN.lr, betas=(TRAIN.beta1, TRAIN.beta2), weight_decay=TRAIN.weight_decay,
                    fused=optimizer == "fused")
        net = torch.compile(model) if compiled else model
        g = torch.Generator().manual_seed(1)

        def fwd_bwd():
            x, y = get_batch(stream, BATCH, BABY.block_size, generator=g)
            _, loss = net(x, y)
            loss.backward()
            return loss.item()

        def update():
            torch.nn.utils.clip_grad_norm_(model.parameters(), TRAIN.grad_clip)
            opt.step()

        def step():
            fwd_bwd()
            update()
            opt.zero_grad(set_to_none=True)

        return step, fwd_bwd, update

    shapes = matmul_shapes(BABY, BATCH * BABY.block_size)
    mats = [(torch.randn(m, k), torch.randn(k, n)) for m, k, n in shapes]
    gflop = sum(2 * m * k * n for m, k, n in shapes) / 1e9

    def matmuls():
        for a, b in mats:
            torch.mm(a, b)

    B, T, C, nh = BATCH, BABY.block_size, BABY.n_embd, BABY.n_head
    qkv = [torch.randn(B, nh, T, C // nh, requires_grad=True) for _ in range(3)]  # (B, nh, T, hs) each
    hidden = torch.randn(B, T, 4 * C, requires_grad=True)  # (B, T, 4C): the feed-forward's inside

    def attention_core():  # softmax(q k^T / sqrt(hs), causal) v and its backward, every layer
        for _ in range(BABY.n_layer):
            y = torch.nn.functional.scaled_dot_product_attention(*qkv, is_causal=True)
            y.backward(torch.ones_like(y))

    def gelu():  # the feed-forward's GELU and its backward, every layer
        for _ in range(BABY.n_layer):
            h = torch.nn.functional.gelu(hidden)
            h.backward(torch.ones_like(h))

    step, fwd_bwd, _ = trainer("fused")
    step_loop = trainer("for-loop")[0]
    updates = {}
    for optimizer in ("fused", "for-loop"):
        _, backward_once, update = trainer(optimizer)
        backward_once()  # gradients for the update to use (kept: these variants never zero them)
        updates[optimizer] = update
    variants = {
        "step as train() runs it (fused AdamW)": step,
        "step with for-loop AdamW (as nanoGPT)": step_loop,
        "forward + backward only": fwd_bwd,
        "clip + fused AdamW only": updates["fused"],
        "clip + for-loop AdamW only": updates["for-loop"],
        f"the {len(shapes)} matmuls only ({gflop:.2f} GFLOP)": matmuls,
        "attention core (SDPA) fwd + bwd only": attention_core,
        "GELU fwd + bwd only": gelu,
    }
    compile_s = None
    if args.compile:
        cstep = trainer("fused", compiled=True)[0]
        t0 = time.perf_counter()
        cstep()
        compile_s = time.perf_counter() - t0
        variants["step, torch.compile'd model, fused AdamW"] = cstep
    for fn in variants.values():
        for _ in range(3):
            fn()
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                fn()
            times[name].append(1000 * (time.perf_counter() - t0) / args.steps)
    target = NANOGPT_MS / 1.5
    print(f"baby GPT, batch {BATCH} x block {BABY.block_size}, threads={torch.get_num_threads()}, "
          f"{args.rounds} interleaved rounds of {args.steps} steps")
    for name, ts in times.items():
        print(f"  {name:44s} best {min(ts):6.1f}  median {statistics.median(ts):6.1f} ms")
    if compile_s is not None:
        print(f"  (torch.compile's first step took {compile_s:.1f} s)")
    best = {name: min(ts) for name, ts in times.items()}
    mm = best[next(n for n in best if "matmuls only" in n)]
    parts = mm + best["attention core (SDPA) fwd + bwd only"] + best["GELU fwd + bwd only"] + best["clip + fused AdamW only"]
    print(f"target: 1.5x nanoGPT's {NANOGPT_MS:.0f} ms/iter = {target:.1f} ms/iter; the matmuls alone take "
          f"{mm:.1f} ms ({100 * mm / target:.0f}% of it, {gflop / mm * 1000:.0f} GFLOP/s); matmuls + attention core "
          f"+ GELU + optimizer, each at its best, {parts:.1f} ms, before LayerNorm, the loss, the embeddings, "
          f"the residual adds and the Python that drives them")


if __name__ == "__main__":
    main()
