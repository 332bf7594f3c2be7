"""Time to Shakespeare val <= 1.47 on one GPU: nanoGPT's own config against lm-steps' recipes, in one run.

    python bench/bench_gpu_shakespeare.py                      # on a CUDA machine, at most 9 minutes
    python bench/bench_gpu_shakespeare.py --recipes fast-a     # nanoGPT and one recipe only
    python bench/bench_gpu_shakespeare.py --smoke              # tiny sizes on the CPU: checks that it all runs

First nanoGPT, from a scratch copy of the anchor (``$LM_STEPS_DATA/../anchors/nanoGPT`` unless
``--anchor``; never written to; data prepared offline, not timed):
``python train.py config/train_shakespeare_char.py`` with its own defaults on a GPU (bf16
autocast, ``torch.compile``, flash attention through SDPA, fused AdamW). Its output is read as
it runs; the time to target is the wall time from starting its process to the first evaluation
line with val <= target, and the process is stopped there.

Then each lm-steps recipe of ``RECIPES`` in its own process (``--worker NAME``), timed the same
way: interpreter start, imports, data, model, ``torch.compile``, training with bf16 autocast and
SDPA's flash attention, and evaluations every ``eval_every`` steps on as many validation tokens
as nanoGPT's (200 batches x 64 x 256 = 3,276,800 tokens, in larger batches), stopping at the
first evaluation at or below the target. Prints a table with each time and its ratio to
nanoGPT's, and appends every run to ``bench/results/gpu_shakespeare.csv``. Each run is capped
(``--cap-s``, ``--nanogpt-cap-s``): by default nanoGPT and three recipes take at most 9 minutes.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import torch

from bench_gpt_char import GPU  # this folder: the script's own, first on sys.path
from bench_vs_nanogpt import ANCHOR, scratch_copy

HERE = Path(__file__).resolve().parent
LOG = HERE / "results" / "gpu_shakespeare.csv"
TARGET = 1.47
EVAL_TOKENS = 200 * 64 * 256  # nanoGPT's eval_iters x batch_size x block_size

_M, _T = GPU  # nanoGPT's config/train_shakespeare_char.py: 6 x 384, block 256, dropout 0.2, batch 64, lr 1e-3
# name -> (model config, train config, evaluate every n steps). "nanogpt-config" is nanoGPT's recipe run by
# lm-steps (the parity check); the others are the candidates for a faster one: a shorter cosine (the loss
# falls faster as the rate anneals), higher rates, larger batches, less dropout.
RECIPES = {
    "nanogpt-config": (_M, replace(_T, dtype="bfloat16"), 250),
    "fast-a": (_M, replace(_T, max_iters=2000, lr=2e-3, min_lr=2e-4, dtype="bfloat16"), 100),
    "fast-b": (_M, replace(_T, max_iters=1500, lr=2e-3, min_lr=2e-4, batch_size=128, dtype="bfloat16"), 100),
    "fast-c": (replace(_M, dropout=0.1), replace(_T, max_iters=1500, lr=2e-3, min_lr=2e-4, dtype="bfloat16"), 100),
    "fast-d": (_M, replace(_T, max_iters=1200, lr=3e-3, min_lr=3e-4, batch_size=128, warmup_iters=50,
                           dtype="bfloat16"), 100),
}
SMOKE_MODEL = dict(n_layer=2, n_head=2, n_embd=64, block_size=64)
SMOKE_NANOGPT = ["--device=cpu", "--compile=False", "--dtype=float32", "--max_iters=60", "--eval_interval=20",
                 "--eval_iters=2", "--n_layer=2", "--n_head=2", "--n_embd=64", "--block_size=64", "--batch_size=8",
                 "--warmup_iters=5", "--dropout=0.0"]


class Reached(Exception):
    """Raised from the training callback at the first evaluation at or below the target."""


def worker(name: str, target: float, smoke: bool) -> None:
    """Train recipe ``name`` until the validation estimate reaches ``target``; print what happened."""
    from lm_steps.data import get_batch, shakespeare_splits
    from lm_steps.gpt import GPT
    from lm_steps.tokenizers import CharTokenizer
    from lm_steps.runs import train
    from lm_steps.training import estimate_loss

    t_start = time.perf_counter()
    model_cfg, train_cfg, eval_every = RECIPES[name]
    device = torch.device("cuda" if torch.cuda.is_available() and not smoke else "cpu")
    eval_batch = 256
    if smoke:
        model_cfg = replace(model_cfg, dropout=0.0, **SMOKE_MODEL)
        train_cfg = replace(train_cfg, max_iters=60, batch_size=8, warmup_iters=5, dtype="float32")
        eval_every, eval_batch = 20, 8
    torch.set_float32_matmul_precision("high")  # TF32 where fp32 remains, as nanoGPT allows
    train_text, val_text = shakespeare_splits()
    tok = CharTokenizer.from_text(train_text + val_text)
    streams = {"train": torch.tensor(tok.encode(train_text), dtype=torch.long, device=device),
               "val": torch.tensor(tok.encode(val_text), dtype=torch.long, device=device)}
    T = model_cfg.block_size
    eval_cfg = replace(train_cfg, eval_iters=2 if smoke else EVAL_TOKENS // (eval_batch * T))
    model = GPT(model_cfg, generator=torch.Generator().manual_seed(train_cfg.seed)).to(device)
    net = model if smoke else torch.compile(model)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if train_cfg.dtype == "bfloat16" else None

    def batch(split, g):  # (eval_batch, T) each; the generator draws on the CPU
        ix = torch.randint(len(streams[split]) - T, (eval_batch,), generator=g).to(device)
        offsets = torch.arange(T, device=device)
        return streams[split][ix[:, None] + offsets], streams[split][ix[:, None] + offsets + 1]

    def check(step, _model):
        if (step + 1) % eval_every and step + 1 != train_cfg.max_iters:
            return
        val = estimate_loss(model, batch, eval_cfg, autocast=autocast)["val"]  # the eager model: no recompiles
        print(f"eval step {step + 1} val {val:.4f} t {time.perf_counter() - t_start:.1f} s", flush=True)
        if val <= target:
            raise Reached(step + 1, val)

    cfg = replace(train_cfg, eval_iters=0)  # evaluations come from check()
    data = (lambda split, n, g, dev: get_batch(streams[split], n, T, generator=g, device=dev))
    try:
        train(net, data, cfg, device=device, callback=check)
        print(f"NOT REACHED after {cfg.max_iters} steps, {time.perf_counter() - t_start:.1f} s", flush=True)
    except Reached as r:
        step, val = r.args
        print(f"REACHED val {val:.4f} at step {step}, {time.perf_counter() - t_start:.1f} s", flush=True)


def run_until(cmd: list[str], cwd: Path, pattern: str, target: float, cap_s: float, env: dict) -> dict:
    """Run ``cmd``, reading its output; stop it at the first line whose ``pattern`` value is <= target.

    Returns ``{"seconds", "val", "step", "reached", "evals"}``; ``seconds`` counts from the start of
    the process to that line (or to its end, or to the cap).
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = {"seconds": None, "val": None, "step": None, "reached": False, "evals": []}
    tail = []
    watchdog = threading.Timer(cap_s, proc.kill)  # also when the process is silent (compiling)
    watchdog.start()
    try:
        for line in proc.stdout:
            tail = (tail + [line])[-40:]
            elapsed = time.perf_counter() - t0
            m = re.search(pattern, line)
            if m:
                step, val = int(m.group(1)), float(m.group(2))
                out["evals"].append((step, val, round(elapsed, 1)))
                if out["val"] is None or val < out["val"]:
                    out.update(val=val, step=step)
                if val <= target:
                    out.update(seconds=elapsed, reached=True)
                    break
            if elapsed > cap_s:
                break
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    if out["seconds"] is None:
        out["seconds"] = time.perf_counter() - t0
        if proc.returncode not in (0, -9) and not out["evals"]:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{''.join(tail)}")
    return out


def log(rows: list[dict]) -> None:
    LOG.parent.mkdir(parents=True, exist_ok=True)
    new = not LOG.exists()
    with LOG.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["when", "device", "run", "target", "reached", "seconds", "ratio",
                                          "step", "val", "recipe"])
        if new:
            w.writeheader()
        w.writerows(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchor", type=Path, default=ANCHOR, help="nanoGPT folder (only read)")
    parser.add_argument("--recipes", default="fast-a,fast-b,fast-d",
                        help=f"comma-separated names from {', '.join(RECIPES)}")
    parser.add_argument("--target", type=float, default=None, help=f"val target (default {TARGET}; smoke 3.0)")
    parser.add_argument("--cap-s", type=float, default=100.0, help="stop any lm-steps run after this many seconds")
    parser.add_argument("--nanogpt-cap-s", type=float, default=240.0, help="stop nanoGPT after this many seconds")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU, to check the script")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    target = args.target if args.target is not None else (3.0 if args.smoke else TARGET)
    if args.worker:
        return worker(args.worker, target, args.smoke)
    names = args.recipes.split(",")
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise SystemExit(f"unknown recipes {unknown}; choose from {', '.join(RECIPES)}")
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark is for a GPU (use --smoke to check it on a CPU)")
    device = "cpu (smoke)" if args.smoke else torch.cuda.get_device_name()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE.parent), env.get("PYTHONPATH")) if p)
    results = {}
    with tempfile.TemporaryDirectory(prefix="nanogpt-") as work:
        dest = scratch_copy(args.anchor, Path(work))
        cmd = [sys.executable, "train.py", "config/train_shakespeare_char.py"] + (SMOKE_NANOGPT if args.smoke else [])
        results["nanoGPT"] = run_until(cmd, dest, r"step (\d+): train loss [\d.]+, val loss ([\d.]+)", target,
                                       args.nanogpt_cap_s, env)
    for name in names:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--target", str(target)]
        results[name] = run_until(cmd + (["--smoke"] if args.smoke else []), HERE.parent,
                                  r"eval step (\d+) val ([\d.]+)", target, args.cap_s, env)
    base = results["nanoGPT"]
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    rows = []
    print(f"device: {device}; torch {torch.__version__}; target val <= {target} (mean over {EVAL_TOKENS:,} "
          f"validation tokens{' in the full runs' if args.smoke else ''})")
    print(f"{'run':16s} {'reached':>7s} {'seconds':>8s} {'x nanoGPT':>9s} {'step':>6s} {'val':>7s}")
    for name, r in results.items():
        ratio = r["seconds"] / base["seconds"] if r["reached"] and base["reached"] else float("nan")
        print(f"{name:16s} {str(r['reached']):>7s} {r['seconds']:8.1f} {ratio:9.2f} {r['step'] or 0:6d} "
              f"{r['val'] if r['val'] is not None else float('nan'):7.4f}")
        recipe = "nanoGPT config/train_shakespeare_char.py" if name == "nanoGPT" else repr(RECIPES[name])
        rows.append(dict(when=when, device=device, run=name, target=target, reached=r["reached"],
                         seconds=f"{r['seconds']:.1f}", ratio=f"{ratio:.3f}", step=r["step"],
                         val=r["val"], recipe=recipe))
    for name, r in results.items():
        print(f"  {name}: evaluations (step, val, seconds) {r['evals']}")
    if not args.smoke:
        log(rows)


if __name__ == "__main__":
    main()
