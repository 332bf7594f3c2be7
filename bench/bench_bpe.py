"""Benchmark: train the 8,192-token BPE on WikiText-2 train, then encode the split with tiktoken
and with the pure-Python reference encoder (MB/s). Run under the CPU lock:

    flock /tmp/lm_steps_cpu.lock .venv/bin/python bench/bench_bpe.py
"""
from __future__ import annotations

import argparse
import time

from lm_steps import data
from lm_steps.bpe import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, ReferenceBPE, learn_merges, split_chunks
from lm_steps.tokenizers import WIKITEXT_SPECIALS, train_bpe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--pattern", choices=["gpt4", "gpt2"], default="gpt4")
    args = parser.parse_args()
    pattern = {"gpt4": GPT4_SPLIT_PATTERN, "gpt2": GPT2_SPLIT_PATTERN}[args.pattern]
    text = data.wikitext_splits("wikitext-2-v1", progress=False)["train"]
    mb = len(text.encode("utf-8")) / 1e6
    print(f"WikiText-2 v1 train: {mb:.2f} MB, {len(text):,} characters")

    t0 = time.perf_counter()
    enc = train_bpe(text, args.vocab_size, pattern=pattern, special_tokens=WIKITEXT_SPECIALS)
    train_s = time.perf_counter() - t0
    print(f"train_bpe(vocab_size={args.vocab_size}, {args.pattern} pattern): {train_s:.1f} s "
          f"-> n_vocab {enc.n_vocab:,}")
    t0 = time.perf_counter()
    chunks = split_chunks(text, pattern, WIKITEXT_SPECIALS)
    split_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    merges = learn_merges(chunks, args.vocab_size - 256 - len(WIKITEXT_SPECIALS))
    merge_s = time.perf_counter() - t0
    print(f"  of which: regex split + count {split_s:.1f} s ({len(chunks):,} distinct chunks), "
          f"{len(merges):,} merges {merge_s:.1f} s")

    allowed = set(WIKITEXT_SPECIALS)
    t0 = time.perf_counter()
    ids = enc.encode(text, allowed_special=allowed)
    tk_s = time.perf_counter() - t0
    print(f"tiktoken encode: {tk_s:.2f} s = {mb / tk_s:.2f} MB/s; {len(ids):,} tokens, "
          f"{len(text.encode('utf-8')) / len(ids):.2f} bytes/token")
    ref = ReferenceBPE(merges, pattern, WIKITEXT_SPECIALS)
    t0 = time.perf_counter()
    ref_ids = ref.encode(text, allowed_special=allowed)
    ref_s = time.perf_counter() - t0
    print(f"pure-Python reference encode (chunk cache on): {ref_s:.2f} s = {mb / ref_s:.2f} MB/s")
    sample = text[:200_000]
    fresh = ReferenceBPE(merges, pattern, WIKITEXT_SPECIALS)
    t0 = time.perf_counter()
    for chunk in fresh.pattern.findall(sample.replace("<unk>", "")):
        fresh.encode_chunk(chunk.encode("utf-8"))
    nocache_s = time.perf_counter() - t0
    sample_mb = len(sample.replace("<unk>", "").encode("utf-8")) / 1e6
    print(f"pure-Python reference, no cache (first {sample_mb:.2f} MB): {sample_mb / nocache_s:.3f} MB/s")
    print(f"tiktoken ids == reference ids on the whole split: {ref_ids == ids}")


if __name__ == "__main__":
    main()
