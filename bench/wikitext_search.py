"""A measured recipe search for the WikiText-2 GPT: each trial trained, scored and logged.

    python bench/wikitext_search.py                                   # every trial of the grid, on a GPU
    python bench/wikitext_search.py --trials base,drop40 --budget-s 1100
    python bench/wikitext_search.py --smoke                           # tiny sizes on the CPU: checks it runs

Trials come from a grid file (``bench/wikitext_grid.json`` by default): ``defaults`` (notebook 06's
gpu profile) and ``trials``, each a set of overrides of them. For each trial it trains the BPE on
WikiText-2 v1's training split (once per vocabulary size), trains a GPT on the training split
alone (bf16 autocast and ``torch.compile`` on a GPU), keeps the checkpoint with the best
validation estimate, and scores the whole validation and test splits as notebook 06 does:
articles joined by ``<|endoftext|>``, a sliding window of ``block_size`` tokens moved by
``stride``, word-level perplexity = exp(total NLL / the split's WikiText words). Trials are ranked
by validation perplexity (the test split only reports). Each trial's figures are printed and
appended to ``bench/results/wikitext_search.csv``; trials stop being started when the next one
would run past ``--budget-s``.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import torch

from lm_steps import wikitext as W
from lm_steps.checkpoint import gpt_from_checkpoint
from lm_steps.data import fetch
from lm_steps.evaluation import evaluate_stream
from lm_steps.gpt import GPT, GPTConfig
from lm_steps.tokenizers import WIKITEXT_SPECIALS, train_bpe
from lm_steps.config import TrainConfig
from lm_steps.runs import train

HERE = Path(__file__).resolve().parent
GRID = HERE / "wikitext_grid.json"
LOG = HERE / "results" / "wikitext_search.csv"
MODEL_KEYS = {f.name for f in fields(GPTConfig)} - {"vocab_size"}
TRAIN_KEYS = {f.name for f in fields(TrainConfig)}
OTHER_KEYS = {"vocab_size", "stride", "eval_batch", "min_lr_ratio"}
SMOKE = dict(vocab_size=300, n_layer=2, n_head=2, n_embd=64, block_size=64, batch_size=8, max_iters=30,
             warmup_iters=5, eval_interval=15, eval_iters=2, stride=32, eval_batch=16)


def settings(defaults: dict, overrides: dict) -> dict:
    s = {**defaults, **overrides}
    unknown = set(s) - MODEL_KEYS - TRAIN_KEYS - OTHER_KEYS
    if unknown:
        raise SystemExit(f"unknown settings {sorted(unknown)} in the grid; use GPTConfig or TrainConfig fields, "
                         f"or {sorted(OTHER_KEYS)}")
    return s


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=Path, default=GRID)
    parser.add_argument("--trials", default=None, help="comma-separated trial names (default: all)")
    parser.add_argument("--budget-s", type=float, default=1100.0, help="start no trial that would end past this")
    parser.add_argument("--smoke", action="store_true", help="tiny BPE, model and text on the CPU")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (compiles on GPUs otherwise)")
    args = parser.parse_args(argv)
    t_start = time.perf_counter()
    grid = json.loads(args.grid.read_text())
    names = args.trials.split(",") if args.trials else list(grid["trials"])
    missing = [n for n in names if n not in grid["trials"]]
    if missing:
        raise SystemExit(f"no trials {missing} in {args.grid}; it has {', '.join(grid['trials'])}")
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    compile_ = device.type == "cuda" and not args.no_compile
    torch.set_float32_matmul_precision("high")
    files = fetch("wikitext-2-v1", progress=False)
    text = {k: files[k].read_text(encoding="utf-8") for k in ("train", "validation", "test")}
    arts = {k: W.split_articles(v) for k, v in text.items()}
    if args.smoke:
        arts = {"train": arts["train"][:20], "validation": arts["validation"][:2], "test": arts["test"][:2]}
    scored = {k: "".join(arts[k]) for k in ("validation", "test")}
    stats = {k: dict(n_bytes=len(t.encode("utf-8")), n_words=W.count_words(t)) for k, t in scored.items()}
    encodings, streams = {}, {}
    durations = []
    device_name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"device {device_name}, torch {torch.__version__}, compile {compile_}; trials {names}", flush=True)
    for name in names:
        s = settings(grid["defaults"], {**grid["trials"][name], **(SMOKE if args.smoke else {})})
        elapsed = time.perf_counter() - t_start
        if durations and elapsed + max(durations) > args.budget_s:
            print(f"stopping before {name}: {elapsed:.0f} s used, the longest trial took {max(durations):.0f} s, "
                  f"budget {args.budget_s:.0f} s")
            break
        t_trial = time.perf_counter()
        V = s["vocab_size"]
        if V not in encodings:
            bpe_text = "".join(arts["train"])  # the training split only
            encodings[V] = enc = train_bpe(bpe_text, V, special_tokens=WIKITEXT_SPECIALS, name=f"wikitext2_bpe_{V}")
            streams[V] = {k: W.token_stream(enc, arts[k], allowed_special={"<unk>"}) for k in arts}
        enc, st = encodings[V], streams[V]
        cfg = GPTConfig(vocab_size=enc.n_vocab, **{k: v for k, v in s.items() if k in MODEL_KEYS})
        tkw = {k: v for k, v in s.items() if k in TRAIN_KEYS}
        tkw.setdefault("min_lr", tkw["lr"] * s.get("min_lr_ratio", 0.1))
        tcfg = TrainConfig(**tkw)
        torch.manual_seed(tcfg.seed)
        model = GPT(cfg, generator=torch.Generator().manual_seed(tcfg.seed)).to(device)
        net = torch.compile(model) if compile_ else model
        with tempfile.TemporaryDirectory() as tmp:
            best = Path(tmp) / "best.pt"
            t0 = time.perf_counter()
            hist = train(net, (st["train"], st["validation"]), tcfg, device=device, best_checkpoint_path=best)
            train_s = time.perf_counter() - t0
            model, ckpt = gpt_from_checkpoint(best, device=device)
        best_i = min(range(len(hist["val_loss"])), key=hist["val_loss"].__getitem__)
        res = {k: evaluate_stream(model, st[k], stride=s["stride"], batch_size=s["eval_batch"], device=device,
                                  **stats[k]) for k in ("validation", "test")}
        trial_s = time.perf_counter() - t_trial
        durations.append(trial_s)
        row = dict(when=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
                   device=device_name, trial=name, params=model.num_params(),
                   best_step=hist["val_step"][best_i], val_estimate=f"{hist['val_loss'][best_i]:.4f}",
                   val_word_ppl=f"{res['validation']['word_ppl']:.2f}", test_word_ppl=f"{res['test']['word_ppl']:.2f}",
                   test_bits_per_byte=f"{res['test']['bits_per_byte']:.4f}", train_s=f"{train_s:.0f}",
                   trial_s=f"{trial_s:.0f}", settings=json.dumps(s, sort_keys=True))
        print(f"{name}: val word ppl {row['val_word_ppl']}, test word ppl {row['test_word_ppl']} (sliding window "
              f"{cfg.block_size}, stride {s['stride']}), test {row['test_bits_per_byte']} bits/byte; "
              f"{row['params']:,} params, best step {row['best_step']} of {tcfg.max_iters}; "
              f"training {train_s:.0f} s, trial {trial_s:.0f} s", flush=True)
        if not args.smoke:
            LOG.parent.mkdir(parents=True, exist_ok=True)
            new = not LOG.exists()
            with LOG.open("a", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(row))
                if new:
                    w.writeheader()
                w.writerow(row)
        assert math.isfinite(res["test"]["word_ppl"])
    print(f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
