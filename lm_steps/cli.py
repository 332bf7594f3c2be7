"""The command line: ``lm-steps train | sample | chat | eval`` (also ``python -m lm_steps``).

    lm-steps train --data tinyshakespeare --out runs/shakespeare          # a character-level GPT
    lm-steps train --data wikitext-2-v1 --out runs/wikitext --config cpu  # BPE tokens, WikiText-2
    lm-steps train --data my_text.txt --out runs/mine --max-iters 500     # any UTF-8 text file
    lm-steps sample runs/shakespeare/ckpt.pt --prompt "ROMEO:" --seed 1
    lm-steps chat runs/shakespeare/ckpt.pt                                # one prompt per line
    lm-steps eval runs/wikitext/ckpt.pt --split test

A progress bar shows on a terminal. ``train`` writes ``DIR/ckpt.pt`` (weights, optimizer, configs, history and the tokenizer) every
``eval_interval`` steps and at the end, and ``DIR/run.json`` (which data and configuration), so
``--resume`` continues an interrupted run exactly and ``eval`` finds the data again. Everything
here is a thin layer over :func:`~lm_steps.train.train`, :func:`~lm_steps.sample.complete`,
:func:`~lm_steps.evaluate.evaluate_stream` and the checkpoint functions; this module is the one
that prints. Bad input ends with a one-line error and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import torch

from .checkpoint import CheckpointError, gpt_from_checkpoint, load_checkpoint
from .data import DataError, names_splits, shakespeare_splits, wikitext_splits
from .evaluate import evaluate_stream
from .gpt import GPT, GPTConfig
from .sample import complete
from .tokenizers import WIKITEXT_SPECIALS, CharTokenizer, encoding_from_dict, encoding_to_dict, train_bpe
from .train import TrainConfig, train
from .utils import auto_device, get_profile, make_generator
from .wikitext import count_words, split_articles, token_stream

__all__ = ["DATASETS", "CHAR_CONFIGS", "BPE_CONFIGS", "CLIError", "main"]

DATASETS = ("names", "tinyshakespeare", "wikitext-2-v1")
BPE_DATASETS = ("wikitext-2-v1",)

#: Character-level GPTs (text files, names, Tiny Shakespeare): (GPTConfig fields, TrainConfig).
#: smoke, cpu and gpu are notebook 05's profiles; baby is nanoGPT README's CPU "baby GPT".
CHAR_CONFIGS = {
    "smoke": (dict(block_size=32, n_layer=2, n_head=2, n_embd=32),
              TrainConfig(max_iters=40, batch_size=8, lr=3e-3, min_lr=3e-4, warmup_iters=5, eval_interval=20,
                          eval_iters=2)),
    "baby": (dict(block_size=64, n_layer=4, n_head=4, n_embd=128),
             TrainConfig(max_iters=2000, batch_size=12, lr=1e-3, min_lr=1e-4, warmup_iters=100, eval_interval=250,
                         eval_iters=20, dtype="float32")),
    "cpu": (dict(block_size=128, n_layer=4, n_head=4, n_embd=192),
            TrainConfig(max_iters=2000, batch_size=16, lr=2e-3, min_lr=2e-4, warmup_iters=100, eval_interval=250,
                        eval_iters=20)),
    "gpu": (dict(block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2),
            TrainConfig(max_iters=5000, batch_size=64, lr=1e-3, min_lr=1e-4, warmup_iters=100, eval_interval=250,
                        eval_iters=200)),
}
#: The WikiText GPT on its own BPE (notebook 06's profiles): GPTConfig fields (``vocab_size`` is
#: the BPE's), the number of training characters the BPE learns from (None: all), TrainConfig.
BPE_CONFIGS = {
    "smoke": (dict(vocab_size=512, block_size=64, n_layer=2, n_head=2, n_embd=64, pos_encoding="rope"), 400_000,
              TrainConfig(max_iters=40, batch_size=8, lr=3e-3, min_lr=3e-4, warmup_iters=5, eval_interval=20,
                          eval_iters=2)),
    "cpu": (dict(vocab_size=8192, block_size=128, n_layer=4, n_head=4, n_embd=192, pos_encoding="rope"), None,
            TrainConfig(max_iters=1100, batch_size=16, lr=2e-3, min_lr=2e-4, warmup_iters=100, eval_interval=275,
                        eval_iters=8)),
    "gpu": (dict(vocab_size=8192, block_size=512, n_layer=6, n_head=8, n_embd=512, dropout=0.3,
                 pos_encoding="rope"), None,
            TrainConfig(max_iters=2500, batch_size=32, lr=1e-3, min_lr=1e-4, warmup_iters=200, eval_interval=250,
                        eval_iters=20)),
}
CHECKPOINT, RUN = "ckpt.pt", "run.json"


class CLIError(Exception):
    """Bad input from the command line: reported as one line, exit status 2."""


# ----------------------------------------------------------------------------- data and tokenizers
def _check_data(name: str) -> str:
    """A dataset name, or the absolute path of an existing text file."""
    if name in DATASETS:
        return name
    path = Path(name).expanduser()
    if path.is_file():
        return str(path.resolve())
    if path.suffix or os.sep in name:
        raise CLIError(f"no such file: {name}")
    raise CLIError(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)} or the path of a UTF-8 text file")


def _splits(data: str) -> dict[str, str]:
    """The text of each split: names by the lecture's 80/10/10 split (one name per line),
    Tiny Shakespeare and text files by nanoGPT's 90/10, WikiText by its own three files."""
    if data == "names":
        return {k: "".join(w + "\n" for w in ws) for k, ws in zip(("train", "val", "test"), names_splits(progress=False))}
    if data == "wikitext-2-v1":
        s = wikitext_splits(data, progress=False)
        return {"train": s["train"], "val": s["validation"], "test": s["test"]}
    if data == "tinyshakespeare":
        train_text, val_text = shakespeare_splits(progress=False)
    else:
        try:
            text = Path(data).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CLIError(f"no such file: {data}") from None
        except UnicodeDecodeError as err:
            raise CLIError(f"{data} is not UTF-8 text ({err.reason} at byte {err.start})") from None
        train_text, val_text = shakespeare_splits(text)
    return {"train": train_text, "val": val_text}


def _tokenizer(d: dict):
    """The tokenizer a checkpoint holds: a CharTokenizer or a tiktoken Encoding."""
    if not isinstance(d, dict):
        raise CLIError("the checkpoint holds no tokenizer (was it written by `lm-steps train`?)")
    return CharTokenizer.from_dict(d) if d.get("type") == "char" else encoding_from_dict(d)


def _tokens(tok, text: str) -> tuple[torch.Tensor, int, int | None]:
    """A split as one token stream, with the UTF-8 bytes and (WikiText) words its scored targets cover."""
    if isinstance(tok, CharTokenizer):
        ids = torch.tensor(tok.encode(text), dtype=torch.long)
        return ids, len(text[1:].encode("utf-8")), None  # every character but the first is a target
    ids = token_stream(tok, split_articles(text), allowed_special={"<unk>"})  # starts with <|endoftext|>
    return ids, len(text.encode("utf-8")), count_words(text)


# ----------------------------------------------------------------------------- verbs
def _device(name: str | None) -> torch.device:
    if name is None:
        return auto_device()
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CLIError(f"unknown device {name!r}; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: this torch sees no CUDA GPU; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise CLIError(f"--device {name}: MPS is not available here; use --device cpu")
    return device


def _read_run(folder: Path) -> dict:
    try:
        return json.loads((folder / RUN).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def cmd_train(args) -> int:
    out = Path(args.out).expanduser()
    ckpt_path, run = out / CHECKPOINT, _read_run(out)
    if args.resume:
        if not ckpt_path.exists():
            raise CLIError(f"nothing to resume: no checkpoint at {ckpt_path}")
        for key, given in (("data", args.data and _check_data(args.data)), ("config", args.config)):
            if given and run.get(key) and given != run[key]:
                raise CLIError(f"--{key} {given} differs from the run in {out} ({run[key]}); leave it out to resume")
        data, config = run.get("data") or _check_data(args.data or ""), args.config or run.get("config")
        max_iters = args.max_iters or run.get("max_iters")
    else:
        if not args.data:
            raise CLIError("train needs --data (names, tinyshakespeare, wikitext-2-v1 or a text file)")
        if ckpt_path.exists():
            raise CLIError(f"{ckpt_path} exists; add --resume to continue that run, or choose another --out")
        data, config, max_iters = _check_data(args.data), args.config, args.max_iters
    bpe = data in BPE_DATASETS
    configs = BPE_CONFIGS if bpe else CHAR_CONFIGS
    config = config or get_profile()
    if config not in configs:
        raise CLIError(f"unknown --config {config!r} for {'BPE' if bpe else 'character'} models; "
                       f"use one of {', '.join(configs)}")
    if bpe:
        model_kw, bpe_chars, tcfg = BPE_CONFIGS[config]
    else:
        (model_kw, tcfg), bpe_chars = CHAR_CONFIGS[config], None
    max_iters = max_iters or tcfg.max_iters
    tcfg = replace(tcfg, max_iters=max_iters, warmup_iters=min(tcfg.warmup_iters, max_iters),
                   checkpoint_every=tcfg.eval_interval)  # a short run warms up for all of it at most
    if args.resume:  # keep the warmup the run started with (a short first run shortened it)
        stored_cfg = load_checkpoint(ckpt_path).get("train_config") or {}
        tcfg = replace(tcfg, warmup_iters=stored_cfg.get("warmup_iters", tcfg.warmup_iters))
    device = _device(args.device)

    splits = _splits(data)
    if args.resume:
        tok = _tokenizer(load_checkpoint(ckpt_path).get("tokenizer"))
    elif bpe:
        print(f"training a {model_kw['vocab_size']:,}-token BPE on the training split", file=sys.stderr)
        text = splits["train"] if bpe_chars is None else splits["train"][:bpe_chars]
        tok = train_bpe(text, model_kw["vocab_size"], special_tokens=WIKITEXT_SPECIALS, name=f"{config}_bpe")
    else:
        tok = CharTokenizer.from_text("".join(splits.values()))
    tok_dict = tok.to_dict() if isinstance(tok, CharTokenizer) else encoding_to_dict(tok)
    vocab_size = tok.vocab_size if isinstance(tok, CharTokenizer) else tok.n_vocab
    cfg = GPTConfig(**{**model_kw, "vocab_size": vocab_size})
    streams = [_tokens(tok, splits[s])[0] for s in ("train", "val")]
    short = min(len(s) for s in streams)
    if short <= cfg.block_size:
        raise CLIError(f"a split of {data} has only {short} tokens, not more than block_size={cfg.block_size}; "
                       f"use a longer text or a smaller --config")
    model = GPT(cfg, generator=make_generator(tcfg.seed)).to(device)

    out.mkdir(parents=True, exist_ok=True)
    (out / RUN).write_text(json.dumps({"data": data, "config": config, "max_iters": max_iters}, indent=1) + "\n",
                           encoding="utf-8")
    stored = load_checkpoint(ckpt_path) if args.resume else {"step": 0, "train_config": {}}
    start, accept = stored["step"], ()
    if start >= max_iters:
        print(f"{ckpt_path} is already at step {start}; pass a larger --max-iters to train further")
        return 0
    if args.resume and (stored["train_config"] or {}).get("max_iters") not in (None, max_iters):
        accept = ("max_iters",)  # training on further: the learning-rate schedule now ends at the new step
        print(f"the run was to end at step {stored['train_config']['max_iters']}; it now goes on to {max_iters}, "
              f"with the learning-rate schedule stretched to end there")
    print(f"{data}: {len(streams[0]):,} training tokens, {cfg.vocab_size:,}-token vocabulary; "
          f"GPT {config}: {model.num_params():,} parameters on {device}; "
          f"{'resuming at step ' + str(start) if start else 'training'} to step {max_iters}")
    try:
        history = train(model, streams, tcfg, device=device, progress=sys.stderr.isatty(), checkpoint_path=ckpt_path,
                        resume=ckpt_path if args.resume else None, tokenizer=tok_dict, accept_changes=accept)
    except KeyboardInterrupt:
        if ckpt_path.exists():
            print(f"\ninterrupted: the last checkpoint (step {load_checkpoint(ckpt_path)['step']}) is {ckpt_path}; "
                  f"add --resume to continue from it", file=sys.stderr)
        else:
            print("\ninterrupted before the first checkpoint; nothing was saved", file=sys.stderr)
        return 130
    print(f"step {max_iters}: train loss {history['train_eval_loss'][-1]:.4f}, val loss {history['val_loss'][-1]:.4f} "
          f"(means over {tcfg.eval_iters} batches); checkpoint {ckpt_path}")
    return 0


def _load(path: str, device: torch.device):
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / CHECKPOINT
    if not p.is_file():
        raise CLIError(f"no checkpoint at {path}")
    model, ckpt = gpt_from_checkpoint(p, device=device)
    return p, model, ckpt, _tokenizer(ckpt.get("tokenizer"))


def _complete(model, tok, prompt: str, args, generator, device) -> str:
    start = 0 if isinstance(tok, CharTokenizer) else tok.eot_token  # where an empty prompt starts
    try:
        return complete(model, tok, prompt, args.max_new_tokens, device=device, start_token=start,
                        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, generator=generator)
    except ValueError as err:  # characters the model does not know, a bad temperature/top-k/top-p
        raise CLIError(f"{err}") from None


def _generator(seed: int | None) -> torch.Generator:
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g


def cmd_sample(args) -> int:
    device = _device(args.device)
    _, model, _, tok = _load(args.ckpt, device)
    g = _generator(args.seed)
    for i in range(args.num_samples):
        if i:
            print("---")
        print(_complete(model, tok, args.prompt, args, g, device))
    return 0


def cmd_chat(args) -> int:
    device = _device(args.device)
    _, model, _, tok = _load(args.ckpt, device)
    g = _generator(args.seed)
    interactive = sys.stdin.isatty()
    if interactive:
        print("one prompt per line; Ctrl-D or Ctrl-C ends", file=sys.stderr)
    try:
        while True:
            if interactive:
                print("> ", end="", flush=True)
            line = sys.stdin.readline()
            if not line:
                break
            prompt = line.rstrip("\r\n")
            try:
                text = _complete(model, tok, prompt, args, g, device)
            except CLIError as err:
                print(f"lm-steps: error: {err}", file=sys.stderr)
                continue
            print(text[len(prompt):] if text.startswith(prompt) else text, flush=True)
    except KeyboardInterrupt:
        print(file=sys.stderr)
    return 0


def cmd_eval(args) -> int:
    device = _device(args.device)
    path, model, _, tok = _load(args.ckpt, device)
    data = _check_data(args.data) if args.data else _read_run(path.parent).get("data")
    if not data:
        raise CLIError(f"no {RUN} beside {path} says which data it was trained on; pass --data")
    splits = _splits(data)
    if args.split not in splits:
        raise CLIError(f"{data} has no {args.split} split (it has {', '.join(s for s in splits if s != 'train')})")
    tokens, n_bytes, n_words = _tokens(tok, splits[args.split])
    T = model.block_size
    stride = args.stride or max(T // 2, 1)
    if not 1 <= stride <= T:
        raise CLIError(f"--stride must be between 1 and the block size {T}, got {stride}")
    m = evaluate_stream(model, tokens, stride=stride, n_bytes=n_bytes, n_words=n_words, batch_size=32, device=device,
                        progress=sys.stderr.isatty())
    name = Path(data).name
    if n_words is None:
        print(f"{name} {args.split}: {m['n_tokens']:,} characters scored (window {T}, stride {stride})")
        print(f"loss {m['loss']:.4f} nats/char, {m['bits_per_token']:.4f} bits/char, "
              f"{m['bits_per_byte']:.4f} bits/byte, perplexity {m['ppl']:.2f} per character")
    else:
        print(f"{name} {args.split}: {m['n_tokens']:,} tokens, {n_bytes:,} bytes, {n_words:,} words scored "
              f"(window {T}, stride {stride})")
        print(f"loss {m['loss']:.4f} nats/token, {m['bits_per_byte']:.4f} bits/byte, "
              f"perplexity {m['ppl']:.2f} per token, {m['word_ppl']:.2f} per word")
    return 0


# ----------------------------------------------------------------------------- parser
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lm-steps", description="Train, sample from, chat with and evaluate "
                                     "the GPTs of lm-steps.")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="{train,sample,chat,eval}")

    p = sub.add_parser("train", help="train a GPT; checkpoints go to --out")
    p.add_argument("--data", help=f"{', '.join(DATASETS)} or PATH.txt (character-level; WikiText uses a BPE)")
    p.add_argument("--out", required=True, help=f"folder for {CHECKPOINT} and {RUN}")
    p.add_argument("--config", help="smoke, baby (text only), cpu or gpu (default: the profile, LM_STEPS_PROFILE)")
    p.add_argument("--max-iters", type=int, help="optimizer steps (default: the configuration's)")
    p.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--resume", action="store_true", help=f"continue the run in --out from its {CHECKPOINT}")
    p.set_defaults(run=cmd_train)

    def generation(p):
        p.add_argument("ckpt", help="a checkpoint written by train (or its folder)")
        p.add_argument("--max-new-tokens", type=int, default=200)
        p.add_argument("--temperature", type=float, default=1.0, help="0: greedy")
        p.add_argument("--top-k", type=int)
        p.add_argument("--top-p", type=float)
        p.add_argument("--seed", type=int, help="the same seed gives the same text (default: random)")
        p.add_argument("--device")

    p = sub.add_parser("sample", help="print a prompt and its continuation")
    generation(p)
    p.add_argument("--prompt", default="", help="text to continue (default: empty)")
    p.add_argument("--num-samples", type=int, default=1)
    p.set_defaults(run=cmd_sample)

    p = sub.add_parser("chat", help="continue each line read from standard input")
    generation(p)
    p.set_defaults(run=cmd_chat, max_new_tokens=100)

    p = sub.add_parser("eval", help="loss, bits per character/byte and perplexity on a split")
    p.add_argument("ckpt", help="a checkpoint written by train (or its folder)")
    p.add_argument("--split", choices=("val", "test"), default="val")
    p.add_argument("--data", help=f"the data to score (default: the run's, from {RUN})")
    p.add_argument("--stride", type=int, help="sliding-window stride (default: half the block size)")
    p.add_argument("--device")
    p.set_defaults(run=cmd_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = _parser().parse_args(argv)
    for name in ("max_iters", "max_new_tokens", "num_samples"):
        if getattr(args, name, None) is not None and getattr(args, name) < (0 if name == "max_new_tokens" else 1):
            return _fail(f"--{name.replace('_', '-')} must be at least {0 if name == 'max_new_tokens' else 1}")
    try:
        return args.run(args)
    except (CLIError, CheckpointError, DataError, FileNotFoundError) as err:
        return _fail(str(err))
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


def _fail(message: str) -> int:
    print(f"lm-steps: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
