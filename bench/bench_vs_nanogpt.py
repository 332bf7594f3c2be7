"""lm-steps against nanoGPT on this machine, in one run: time to quality and same-configuration step time.

    python bench/bench_vs_nanogpt.py                 # the full comparison (a few minutes on 2 cores)
    python bench/bench_vs_nanogpt.py --smoke         # 20 iterations each: checks that everything runs

1. Time to quality. nanoGPT's README CPU "baby GPT" (``train.py config/train_shakespeare_char.py``
   with ``--device=cpu --compile=False --eval_iters=20 --log_interval=1 --block_size=64
   --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000
   --dropout=0.0``) runs from a scratch copy of the anchor (``$LM_STEPS_DATA/../anchors/nanoGPT`` by
   default; it is never written to), its data prepared offline from ``$LM_STEPS_DATA``'s Tiny
   Shakespeare (not timed). Then ``bench_gpt_char.py --config fast``. Each is timed as a whole
   process (interpreter start, imports, data, model, training, evaluations), except lm-steps'
   extra evaluation over the whole validation split, which nanoGPT does not do and which is
   subtracted. Both validation losses are nanoGPT-style: the mean over 20 random validation
   batches (nanoGPT 20 x 12 x 64 tokens; the fast recipe 20 x its batch x its block, no fewer).
2. Same-configuration step time. One process alternates rounds of nanoGPT's training step
   (its ``model.py``, its ``configure_optimizers`` and the body of its ``train.py`` loop: memmap
   batches, forward, backward, clipping, AdamW, ``loss.item()``) and rounds of lm-steps'
   ``train()`` at the same baby configuration, so both see the same machine load. A ratio
   >= 1.0 means lm-steps is not slower.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bench_gpt_char import BABY  # this folder: the script's own, first on sys.path
from lm_steps.data import shakespeare_splits
from lm_steps.gpt import GPT
from lm_steps.tokenizers import CharTokenizer
from lm_steps.runs import train

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# the anchors sit next to the shared data ($LM_STEPS_DATA = ../shared/data): ../shared/anchors/nanoGPT
ANCHOR = Path(os.environ.get("LM_STEPS_DATA", ROOT.parent / "shared" / "data")).parent / "anchors" / "nanoGPT"
BABY_FLAGS = ["--device=cpu", "--compile=False", "--eval_iters=20", "--log_interval=1", "--block_size=64",
              "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128", "--max_iters=2000",
              "--lr_decay_iters=2000", "--dropout=0.0"]


def scratch_copy(anchor: Path, work: Path) -> Path:
    """A writable copy of nanoGPT with its Shakespeare data prepared, offline."""
    dest = work / "nanoGPT"
    shutil.copytree(anchor, dest, copy_function=shutil.copyfile)
    data_dir = dest / "data" / "shakespeare_char"
    data_root = Path(os.environ.get("LM_STEPS_DATA", ROOT / "data"))
    shutil.copyfile(data_root / "tinyshakespeare" / "input.txt", data_dir / "input.txt")
    subprocess.run([sys.executable, "prepare.py"], cwd=data_dir, check=True, stdout=subprocess.DEVNULL)
    return dest


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    """Run ``cmd``; return its wall time in seconds and its stdout (raise with its output on failure)."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def one(pattern: str, text: str, what: str) -> re.Match:
    m = re.findall(pattern, text)
    if not m:
        raise SystemExit(f"could not find {what} in the output:\n{text[-2000:]}")
    return m[-1]


def import_nanogpt_model(dest: Path):
    spec = importlib.util.spec_from_file_location("nanogpt_model", dest / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def step_time_ratio(dest: Path, rounds: int, per_round: int, threads: int) -> tuple[float, float, float]:
    """Median ms per step of nanoGPT's and lm-steps' baby-GPT training step, alternating rounds in this process.

    Returns ``(nanogpt_ms, lm_steps_ms, nanogpt_ms / lm_steps_ms)``.
    """
    model_cfg, train_cfg = BABY
    B, T = train_cfg.batch_size, model_cfg.block_size
    nano = import_nanogpt_model(dest)
    with open(os.devnull, "w") as devnull:  # its configure_optimizers prints
        stdout, sys.stdout = sys.stdout, devnull
        try:
            torch.manual_seed(1337)
            nmodel = nano.GPT(nano.GPTConfig(n_layer=model_cfg.n_layer, n_head=model_cfg.n_head,
                                             n_embd=model_cfg.n_embd, block_size=T, bias=False,
                                             vocab_size=model_cfg.vocab_size, dropout=0.0))
            nopt = nmodel.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")
        finally:
            sys.stdout = stdout
    train_bin = dest / "data" / "shakespeare_char" / "train.bin"

    def get_batch():  # nanoGPT train.py's get_batch('train') on a CPU
        data = np.memmap(train_bin, dtype=np.uint16, mode="r")
        ix = torch.randint(len(data) - T, (B,))
        x = torch.stack([torch.from_numpy((data[i:i + T]).astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy((data[i + 1:i + 1 + T]).astype(np.int64)) for i in ix])
        return x.to("cpu"), y.to("cpu")

    X, Y = get_batch()

    def nanogpt_round():  # the body of train.py's loop, gradient_accumulation_steps=1, fp32, log_interval=1
        nonlocal X, Y
        for _ in range(per_round):
            for group in nopt.param_groups:
                group["lr"] = 1e-3
            _, loss = nmodel(X, Y)
            X, Y = get_batch()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(nmodel.parameters(), 1.0)
            nopt.step()
            nopt.zero_grad(set_to_none=True)
            loss.item()

    train_text, val_text = shakespeare_splits()
    tok = CharTokenizer.from_text(train_text + val_text)
    streams = (torch.tensor(tok.encode(train_text), dtype=torch.long),
               torch.tensor(tok.encode(val_text), dtype=torch.long))
    lmodel = GPT(model_cfg, generator=torch.Generator().manual_seed(train_cfg.seed))
    round_cfg = replace(train_cfg, max_iters=per_round, eval_iters=0)

    def lm_steps_round():  # train() itself: batches, forward, backward, clipping, fused AdamW, losses per evaluation
        train(lmodel, streams, round_cfg, device="cpu")

    if threads:
        torch.set_num_threads(threads)
    nanogpt_round(), lm_steps_round()  # warm up
    times = {"nanoGPT": [], "lm-steps": []}
    for _ in range(rounds):
        for name, fn in (("nanoGPT", nanogpt_round), ("lm-steps", lm_steps_round)):
            t = time.perf_counter()
            fn()
            times[name].append(1000 * (time.perf_counter() - t) / per_round)
    n, l = statistics.median(times["nanoGPT"]), statistics.median(times["lm-steps"])
    return n, l, n / l


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchor", type=Path, default=ANCHOR, help="nanoGPT folder (only read)")
    parser.add_argument("--smoke", action="store_true", help="20 iterations each and 2 short timing rounds")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads for every part (0: torch's default); passed to both runs")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds of the step-time comparison")
    args = parser.parse_args(argv)
    if not (args.anchor / "train.py").exists():
        raise SystemExit(f"no nanoGPT at {args.anchor}; pass --anchor DIR (a folder holding its train.py)")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)  # nanoGPT's train.py leaves torch's default
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    iters = 20 if args.smoke else None
    with tempfile.TemporaryDirectory(prefix="nanogpt-") as work:
        dest = scratch_copy(args.anchor, Path(work))
        flags = BABY_FLAGS + ([f"--max_iters={iters}", f"--lr_decay_iters={iters}", f"--eval_interval={iters}",
                               "--warmup_iters=5"] if iters else [])
        nano_wall, nano_out = timed([sys.executable, "train.py", "config/train_shakespeare_char.py", *flags], dest, env)
        nano_step, nano_val = one(r"step (\d+): train loss [\d.]+, val loss ([\d.]+)", nano_out, "nanoGPT's val loss")
        nano_ms = statistics.median(float(ms) for it, ms in re.findall(r"iter (\d+): loss [\d.]+, time ([\d.]+)ms", nano_out)
                                    if int(it) % 250)  # iterations without an evaluation in them

        cmd = [sys.executable, str(HERE / "bench_gpt_char.py"), "--config", "fast"]
        cmd += ["--max-iters", str(iters)] if iters else []
        cmd += ["--threads", str(args.threads)] if args.threads else []
        lm_wall, lm_out = timed(cmd, ROOT, env)
        lm_step, lm_val = one(r"val loss \(mean of (?:\d+) random batches, nanoGPT-style\) at step (\d+): ([\d.]+)",
                              lm_out, "lm-steps' val loss")
        full_val, full_s = one(r"val loss over the whole split .*: ([\d.]+) nats/char .*\(([\d.]+) s\)", lm_out,
                               "lm-steps' whole-split val loss")
        lm_ms = float(one(r"\(([\d.]+) ms/iter incl\. evals\)", lm_out, "lm-steps' ms/iter"))
        lm_time = lm_wall - float(full_s)
        n_ms, l_ms, ratio = step_time_ratio(dest, rounds=2 if args.smoke else args.rounds,
                                            per_round=5 if args.smoke else 25, threads=args.threads)
    cfg_line = next(line for line in lm_out.splitlines() if line.startswith("model:"))
    train_line = next(line for line in lm_out.splitlines() if line.startswith("train:"))
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, threads={torch.get_num_threads()}"
          f"{' (smoke: 20 iterations each)' if iters else ''}")
    print(f"nanoGPT baby GPT (README CPU flags): val {float(nano_val):.4f} at step {nano_step} "
          f"(mean of 20 batches of 12 x 64), {nano_wall:.1f} s wall, {nano_ms:.1f} ms/iter (median, iterations "
          f"without evaluation)")
    print(f"lm-steps fast recipe: val {float(lm_val):.4f} at step {lm_step} (nanoGPT-style, mean of 20 batches), "
          f"whole val split {float(full_val):.4f}; {lm_time:.1f} s wall ({lm_wall:.1f} s minus the {float(full_s):.1f} s "
          f"whole-split evaluation), {lm_ms:.1f} ms/iter incl. evals")
    print(f"  {cfg_line}\n  {train_line}")
    print(f"time to quality: lm-steps {lm_time:.1f} s / nanoGPT {nano_wall:.1f} s = {lm_time / nano_wall:.2f}x "
          f"nanoGPT's wall time; val {float(lm_val):.4f} vs {float(nano_val):.4f}")
    print(f"same configuration (baby GPT, fp32), alternating rounds in one process: nanoGPT {n_ms:.1f} ms/step, "
          f"lm-steps {l_ms:.1f} ms/step; ratio nanoGPT/lm-steps {ratio:.2f} (>= 1.0: lm-steps not slower)")
    if not math.isfinite(ratio):
        raise SystemExit("the step-time ratio is not finite")


if __name__ == "__main__":
    main()
