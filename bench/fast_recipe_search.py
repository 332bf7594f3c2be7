"""Search for ``bench_gpt_char.py --config fast``: loss per step and step time, both load-independent.

On a machine shared with other work, wall times drift by +-20%. Two things do not:

* the loss a configuration reaches after its last step (deterministic for a seed), and
* the ratio of its step time to a reference configuration's, timed in one process in
  interleaved rounds (every configuration sees the same load).

    python bench/fast_recipe_search.py loss  fast n_embd=192,lr=4e-3,max_iters=800 ...
    python bench/fast_recipe_search.py steps fast n_embd=192 dtype=bfloat16 ...

A configuration is ``fast`` (bench_gpt_char's recipe) or comma-separated ``field=value``
overrides of it (fields of GPTConfig or TrainConfig). ``loss`` trains each one and prints the
nanoGPT-style val estimate (the recipe's own eval_iters batches) at the end and the loss over the
whole validation split; ``steps`` prints each one's ms per training step relative to the first
one. Each result is also appended to ``bench/results/fast_recipe_search.csv``.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import time
from dataclasses import fields, replace
from pathlib import Path

import torch

from bench_gpt_char import FAST  # this folder: the script's own, first on sys.path
from lm_steps.data import shakespeare_splits
from lm_steps.evaluation import evaluate_stream
from lm_steps.gpt import GPT, GPTConfig
from lm_steps.tokenizers import CharTokenizer
from lm_steps.config import TrainConfig
from lm_steps.runs import train

LOG = Path(__file__).resolve().parent / "results" / "fast_recipe_search.csv"
MODEL_FIELDS = {f.name: f.type for f in fields(GPTConfig)}
TRAIN_FIELDS = {f.name: f.type for f in fields(TrainConfig)}


def parse(spec: str) -> tuple[GPTConfig, TrainConfig]:
    """``fast`` or ``field=value,...`` overrides of it; ``max_iters`` also sets ``lr_decay_iters``."""
    model_cfg, train_cfg = FAST
    if spec == "fast":
        return model_cfg, train_cfg
    m, t = {}, {}
    for item in spec.split(","):
        key, _, value = item.partition("=")
        if key in MODEL_FIELDS:
            target = m
        elif key in TRAIN_FIELDS:
            target = t
        else:
            raise SystemExit(f"unknown field {key!r}: use one of GPTConfig's or TrainConfig's fields")
        try:
            target[key] = int(value)
        except ValueError:
            try:
                target[key] = float(value)
            except ValueError:
                target[key] = value
    if "max_iters" in t and "lr_decay_iters" not in t:
        t["lr_decay_iters"] = t["max_iters"]
    if "lr" in t and "min_lr" not in t:
        t["min_lr"] = t["lr"] / 10
    return replace(model_cfg, **m), replace(train_cfg, **t)


def data():
    train_text, val_text = shakespeare_splits()
    tok = CharTokenizer.from_text(train_text + val_text)
    return (torch.tensor(tok.encode(train_text), dtype=torch.long),
            torch.tensor(tok.encode(val_text), dtype=torch.long))


def log(row: dict) -> None:
    LOG.parent.mkdir(parents=True, exist_ok=True)
    new = not LOG.exists()
    with LOG.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["kind", "spec", "iters", "val20", "val_full", "step_ratio", "note"])
        if new:
            w.writeheader()
        w.writerow(row)


def loss(specs, note):
    streams = data()
    for spec in specs:
        model_cfg, train_cfg = parse(spec)
        model = GPT(model_cfg, generator=torch.Generator().manual_seed(train_cfg.seed))
        t = time.perf_counter()
        hist = train(model, streams, train_cfg, device="cpu")
        s = time.perf_counter() - t
        full = evaluate_stream(model, streams[1], batch_size=64, device="cpu")["loss"]
        print(f"{spec:60s} iters {train_cfg.max_iters:5d}  val({train_cfg.eval_iters} batches) "
              f"{hist['val_loss'][-1]:.4f}  whole val {full:.4f}  ({s:.0f} s, loaded machine)", flush=True)
        log(dict(kind="loss", spec=spec, iters=train_cfg.max_iters, val20=f"{hist['val_loss'][-1]:.4f}",
                 val_full=f"{full:.4f}", step_ratio="", note=note))


def steps(specs, rounds, per_round, note):
    streams = data()
    runners = []
    for spec in specs:
        model_cfg, train_cfg = parse(spec)
        model = GPT(model_cfg, generator=torch.Generator().manual_seed(train_cfg.seed))
        cfg = replace(train_cfg, max_iters=per_round, eval_iters=0, warmup_iters=0)
        runners.append((spec, lambda model=model, cfg=cfg: train(model, streams, cfg, device="cpu")))
    for _, run in runners:
        run()  # warm up
    times = {spec: [] for spec, _ in runners}
    for _ in range(rounds):
        for spec, run in runners:
            t = time.perf_counter()
            run()
            times[spec].append(1000 * (time.perf_counter() - t) / per_round)
    ref = statistics.median(times[specs[0]])
    for spec in specs:
        med = statistics.median(times[spec])
        print(f"{spec:60s} median {med:6.1f} ms/step  best {min(times[spec]):6.1f}  "
              f"ratio to the first {med / ref:.3f}", flush=True)
        log(dict(kind="steps", spec=spec, iters="", val20="", val_full="", step_ratio=f"{med / ref:.3f}",
                 note=f"vs {specs[0]}; {note}"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["loss", "steps"])
    parser.add_argument("specs", nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=20)
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.kind == "loss":
        loss(args.specs, args.note)
    else:
        steps(args.specs, args.rounds, args.per_round, args.note)


if __name__ == "__main__":
    main()
