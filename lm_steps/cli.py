"""The command line: ``lm-steps train | sample | chat | eval`` (also ``python -m lm_steps``).

    lm-steps train --data tinyshakespeare --out runs/shakespeare          # a character-level GPT
    lm-steps train --data wikitext-2-v1 --out runs/wikitext --config cpu  # BPE tokens, WikiText-2
    lm-steps train --data my_text.txt --out runs/mine --max-iters 500     # any UTF-8 text file
    lm-steps sample runs/shakespeare/ckpt.pt --prompt "ROMEO:" --seed 1
    lm-steps chat runs/shakespeare/ckpt.pt                                # one prompt per line
    lm-steps chat build/models/11_finetuned_gpt-cpu.pt                    # a fine-tuned model: one turn per line
    lm-steps eval runs/wikitext/ckpt.pt --split test
    lm-steps sample gpt2 --prompt "Hello"                                 # OpenAI's GPT-2 (needs the network once)
    lm-steps export runs/shakespeare --out runs/shakespeare-hf            # Hugging Face's GPT-2 layout

Every field of the model and of the training recipe is an option (``--n_layer 4 --lr 3e-3``, or
``--n-layer``), over the preset ``--config`` names or a ``config.json`` that an earlier run wrote
(``--config runs/mine/config.json``). ``train`` prints the train and validation loss at each
evaluation (``--sample-tokens N`` adds a sample), and keeps in ``DIR`` beside the checkpoint the
resolved ``config.json``, ``best.pt`` (the lowest validation loss so far), ``log.jsonl`` (one line
per evaluation) and ``loss.png``. ``torchrun --nproc_per_node 2 -m lm_steps train ...`` trains
data-parallel (gloo on CPUs, nccl on GPUs) with the same global batch as one process.
``--threads N`` (or ``LM_STEPS_THREADS``) sets torch's CPU threads (default: the CPUs this
process may use, at most torch's own default). ``--compile`` trains through ``torch.compile``
(nanoGPT's ``--compile=True``; ``--compile eager`` only traces, to check a model compiles).

A progress bar shows on a terminal. ``train`` writes ``DIR/ckpt.pt`` (weights, optimizer, configs, history and the tokenizer) every
``eval_interval`` steps and at the end, and ``DIR/run.json`` (which data and configuration), so
``--resume`` continues an interrupted run exactly and ``eval`` finds the data again. While it runs it
holds a lock on ``DIR`` (the kernel drops it when the process ends, however it ends), so a second
``train`` on the same folder is refused, and it changes nothing in ``DIR`` until every check has
passed. ``sample`` and ``chat`` print each token as it comes (Ctrl-C keeps what was printed). ``chat``
continues each line, or, with a model fine-tuned through the chat template of :mod:`lm_steps.finetune`
(its tokenizer has the template's special tokens), answers each line as a user turn, stopping at the
end-of-turn token and keeping the conversation's turns in the context.

Everything here is a thin layer over :func:`~lm_steps.runs.train`, :func:`~lm_steps.sample.generate`,
:func:`~lm_steps.evaluation.evaluate_stream` and the checkpoint functions; this module is the one
that prints. A failure the user can fix (bad input, a file that cannot be read or written, a full
disk, missing data) ends with a one-line error and exit status 2; anything else is a bug, reported
in one line with exit status 1 (``--debug`` or ``LM_STEPS_DEBUG=1`` prints its traceback).
"""
from __future__ import annotations

import argparse
import codecs
import errno
import json
import math
import os
import re
import sys
import traceback
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Sequence

import torch

from .checkpoint import MODEL_FILE, CheckpointError, gpt_from_checkpoint, load_checkpoint, load_tokenizer
from .checks import check_int, check_number
from .config import TrainConfig
from .data import DataError, names_splits, shakespeare_splits, wikitext_splits
from .evaluation import evaluate_stream
from .gpt import GPT, GPTConfig
from .sample import generate
from .finetune import END, chat_ids
from .tokenizers import (WIKITEXT_SPECIALS, CharTokenizer, ChatTokenizer, pretrained_encoding, tokenizer_to_dict,
                         train_bpe)
from .runs import check_resumable, setup_distributed, train
from .sizes import sizes
from .utils import (PROFILES, THREADS_ENV, atomic_write, auto_device, eval_mode, get_profile, make_generator,
                    set_threads, unwrap)
from .wikitext import count_words, split_articles, token_stream

__all__ = ["DATASETS", "CHAR_CONFIGS", "BPE_CONFIGS", "CLIError", "DEBUG_ENV", "main"]

DATASETS = ("names", "tinyshakespeare", "wikitext-2-v1")
BPE_DATASETS = ("wikitext-2-v1",)

def _char_preset(profile: str) -> tuple[dict, TrainConfig]:
    """Notebook 05's scaled-up GPT and its recipe in ``profile`` (GPTConfig fields less the vocabulary)."""
    S = sizes("05", profile=profile)
    return {k: v for k, v in S.model.items() if k != "vocab_size"}, TrainConfig(**S.train)


def _bpe_preset(profile: str) -> tuple[dict, int | None, TrainConfig]:
    """Notebook 06's WikiText GPT in ``profile``: GPTConfig fields, the BPE's training characters, TrainConfig."""
    S = sizes("06", profile=profile)
    model = dict(vocab_size=S.vocab_size, block_size=S.block_size, n_layer=S.n_layer, n_head=S.n_head,
                 n_embd=S.n_embd, dropout=S.dropout, pos_encoding="rope")
    return model, S.bpe_chars, TrainConfig(max_iters=S.max_iters, batch_size=S.batch_size, lr=S.lr, min_lr=S.lr / 10,
                                           warmup_iters=S.warmup_iters, eval_interval=S.eval_interval,
                                           eval_iters=S.eval_iters)


#: Character-level GPTs (text files, names, Tiny Shakespeare): (GPTConfig fields, TrainConfig). smoke, cpu and
#: gpu are notebook 05's profiles, read from the one table of sizes; baby is nanoGPT README's CPU "baby GPT".
CHAR_CONFIGS = {
    **{profile: _char_preset(profile) for profile in PROFILES},
    "baby": (dict(block_size=64, n_layer=4, n_head=4, n_embd=128),
             TrainConfig(max_iters=2000, batch_size=12, lr=1e-3, min_lr=1e-4, warmup_iters=100, eval_interval=250,
                         eval_iters=20, dtype="float32")),
}
#: The WikiText GPT on its own BPE: notebook 06's profiles (``vocab_size`` is the BPE's).
BPE_CONFIGS = {profile: _bpe_preset(profile) for profile in PROFILES}
CHECKPOINT, RUN = MODEL_FILE, "run.json"
BEST, CONFIG, LOG, CURVE = "best.pt", "config.json", "log.jsonl", "loss.png"
DEBUG_ENV = "LM_STEPS_DEBUG"  # LM_STEPS_DEBUG=1 (or --debug) prints the traceback behind an error
#: The fields ``train`` takes as options (``--n_layer 4`` or ``--n-layer 4``, as nanoGPT's configurator):
#: every GPTConfig field but the vocabulary (the tokenizer's; for WikiText the BPE's size) and every TrainConfig field.
MODEL_FIELDS = tuple(f for f in fields(GPTConfig))
TRAIN_FIELDS = tuple(f for f in fields(TrainConfig))
SEED_MAX = 2 ** 64 - 1  # the largest seed a torch.Generator takes


class CLIError(Exception):
    """Bad input from the command line: reported as one line, exit status 2."""


#: What a user can cause and fix: bad input, unreadable or unwritable files, a full disk, missing data.
#: Reported in one line with exit status 2; any other exception is a bug (status 1).
ANTICIPATED = (CLIError, CheckpointError, DataError, OSError, ValueError)


# ----------------------------------------------------------------------------- data and tokenizers
def _check_data(name: str) -> str:
    """A dataset name, or the absolute path of an existing regular (text) file."""
    if name in DATASETS:
        return name
    if not name.strip():
        raise CLIError(f"--data is empty; use one of {', '.join(DATASETS)} or the path of a UTF-8 text file")
    path = Path(name).expanduser()
    if path.is_dir():
        raise CLIError(f"--data {name} is a folder; give the path of a UTF-8 text file "
                       f"(or one of {', '.join(DATASETS)})")
    if path.exists() and not path.is_file():
        raise CLIError(f"--data {name} is not a regular file (a FIFO, device or socket cannot be read twice); "
                       f"copy the text into a file and give its path")
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
        path = Path(data)
        if path.exists() and not path.is_file():  # a stored run.json may name what is now a folder or a FIFO
            raise CLIError(f"{data} is not a regular file; give the path of a UTF-8 text file with --data")
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CLIError(f"no such file: {data}") from None
        except UnicodeDecodeError as err:
            raise CLIError(f"{data} is not UTF-8 text ({err.reason} at byte {err.start})") from None
        if not text:
            raise CLIError(f"{data} is empty; give a text file with some text in it")
        train_text, val_text = shakespeare_splits(text)
    return {"train": train_text, "val": val_text}


def _tokens(tok, text: str) -> tuple[torch.Tensor, int, int | None]:
    """A split as one token stream, with the UTF-8 bytes and (WikiText) words its scored targets cover."""
    if isinstance(tok, CharTokenizer):
        ids = torch.tensor(tok.encode(text), dtype=torch.long)
        return ids, len(text[1:].encode("utf-8")), None  # every character but the first is a target
    ids = token_stream(tok, split_articles(text), allowed_special={"<unk>"})  # starts with <|endoftext|>
    return ids, len(text.encode("utf-8")), count_words(text)


def _exp(x: float) -> float:
    """``math.exp`` that gives inf where the float overflows (a perplexity too large to write)."""
    return math.exp(x) if x < 709.0 else math.inf


# ----------------------------------------------------------------------------- folders and files
def _device(name: str | None) -> torch.device:
    if name is None:
        return auto_device()
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CLIError(f"unknown device {name!r}; use cpu, cuda, cuda:N or mps") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise CLIError(f"--device {name}: the command line trains and samples on cpu, cuda, cuda:N or mps only")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: this torch sees no CUDA GPU; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise CLIError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s); "
                       f"use cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise CLIError(f"--device {name}: MPS is not available here; use --device cpu")
    return device


def _out_folder(given: str) -> Path:
    """``--out`` as a folder path: refuses an empty value, a file, and a place that cannot be written."""
    if not given.strip():
        raise CLIError("--out is empty; give the folder for the run, e.g. --out runs/mine")
    out = Path(given).expanduser()
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {given} is a file, not a folder; choose a folder (it is made if missing)")
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise CLIError(f"--out {given}: {existing} is a file, so no folder can be made there; choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CLIError(f"--out {given}: {existing} cannot be written (read-only or not yours); choose another --out")
    return out


class _RunLock:
    """An exclusive lock on a run folder, held until :meth:`release` or the end of the process.

    It is ``flock`` on the folder itself, so it adds no file to the folder, and the kernel drops it
    when the process ends, even by ``kill -9``: a killed run never leaves its folder locked.
    """

    def __init__(self, folder: Path):
        self.fd = None
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks
            return
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise CLIError(f"{folder} is in use by another `lm-steps train` (it holds the folder's lock); "
                               f"wait for it to end, or choose another --out") from None
            return  # a file system without locks: run unlocked, as before
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _read_run(folder: Path) -> dict:
    """The run.json of ``folder`` ({} if there is none); a CLIError if it is not what train writes."""
    path = folder / RUN
    if not path.exists():
        return {}
    fix = f"rewrite it as train writes it ({{\"data\": ..., \"config\": ..., \"max_iters\": ...}}) or delete it"
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise CLIError(f"{path} is not valid JSON ({err}); {fix}") from None
    if not isinstance(run, dict):
        raise CLIError(f"{path} holds a JSON {type(run).__name__}, not the object train writes; {fix}")
    for key in ("data", "config"):
        if not isinstance(run.get(key, ""), str):
            raise CLIError(f"{path}: {key} must be a string, got {run[key]!r}; {fix}")
    if run.get("max_iters") is not None:
        try:
            check_int(f"{path}: max_iters", run["max_iters"], minimum=1)
        except ValueError as err:
            raise CLIError(f"{err}; {fix}") from None
    return run


def _write_run(folder: Path, run: dict) -> None:
    with atomic_write(folder / RUN, "w") as f:
        f.write(json.dumps(run, indent=1) + "\n")


def _os_message(err: OSError) -> str:
    """An OSError in words: what failed, where, and what to do about it."""
    what = err.strerror or str(err) or type(err).__name__
    where = f": {err.filename}" if err.filename else ""
    hint = {errno.ENOSPC: "; free some space", errno.EDQUOT: "; free some space",
            errno.EROFS: "; choose a writable folder", errno.EACCES: "; choose a folder you can write",
            errno.EPERM: "; choose a folder you can write"}.get(err.errno, "")
    return f"{what}{where}{hint}"


#: Advice the library words for Python callers, as a command-line user can act on it.
CLI_ADVICE = (
    (r"load them with restore_model\(ckpt, model\) and call train\(\) without resume\.?",
     "train a new run into another --out (only a checkpoint written by `lm-steps train` can be resumed)."),
    (r"it was written by save_checkpoint\(\), not by train\(checkpoint_path=\.\.\.\)",
     "it was not written by `lm-steps train`"),
    (r"Use the stored values, or pass accept_changes=.*? to train\(\) to continue with the new ones knowingly\.?",
     "Resume it with the version of lm-steps that started it, or train a new run into another --out."),
    (r"set max_iters >= (\d+)", r"pass --max-iters \1 or more"),
    (r"[Ii]f you want this text to be encoded as a special token, pass it to `allowed_special`.*",
     "remove it from the text: the command line reads text as plain text."),
)


def _for_the_command_line(message: str) -> str:
    message = " ".join(message.split())
    for pattern, replacement in CLI_ADVICE:
        message = re.sub(pattern, replacement, message)
    return message


# ----------------------------------------------------------------------------- train
def cmd_train(args) -> int:
    out = _out_folder(args.out)
    leader = int(os.environ.get("RANK", "0")) == 0  # under torchrun, rank 0 owns the folder
    lock = _RunLock(out) if leader and out.is_dir() else None  # taken at once, before any long work
    try:
        return _train(args, out, lock, leader)  # under torchrun, train() returns on every rank together
    finally:
        if lock is not None:
            lock.release()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()  # joined under torchrun by setup_distributed


def _config_file(given: str | None) -> dict | None:
    """``--config`` as a config file (the ``config.json`` a run writes), or None for a preset name."""
    if given is None or given in CHAR_CONFIGS or given in BPE_CONFIGS:
        return None
    path = Path(given).expanduser()
    if path.is_dir():
        path = path / CONFIG
    if not path.is_file():
        if given.endswith(".json") or os.sep in given:
            raise CLIError(f"--config {given}: no such file; give a preset ({', '.join(CHAR_CONFIGS)}) or the "
                           f"{CONFIG} of an earlier run")
        return None  # an unknown preset name: refused with the list of presets
    fix = f"give the {CONFIG} that `lm-steps train` wrote"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise CLIError(f"--config {given} is not valid JSON ({err}); {fix}") from None
    if not (isinstance(cfg, dict) and isinstance(cfg.get("model"), dict) and isinstance(cfg.get("train"), dict)):
        raise CLIError(f"--config {given} has no \"model\" and \"train\" objects; {fix}")
    return cfg


def _overrides(args) -> tuple[dict, dict]:
    """The model and training fields given as options: ({GPTConfig field: value}, {TrainConfig field: value})."""
    given = vars(args)
    model = {f.name: given[f.name] for f in MODEL_FIELDS if f.name in given}
    train_kw = {f.name: given[f.name] for f in TRAIN_FIELDS if f.name in given}
    if "lr" in train_kw and "min_lr" not in train_kw:
        train_kw["min_lr"] = train_kw["lr"] / 10  # nanoGPT's rule of thumb (Chinchilla)
    return model, train_kw


def _train(args, out: Path, lock: _RunLock | None, leader: bool = True) -> int:
    ckpt_path = out / CHECKPOINT
    run = _read_run(out) if args.resume else {}
    stored = None
    file_cfg = _config_file(args.config)
    preset = None if file_cfg is not None else args.config
    model_over, train_over = _overrides(args)
    if args.resume:
        if not ckpt_path.exists():
            raise CLIError(f"nothing to resume: no checkpoint at {ckpt_path}")
        for key, given in (("data", args.data and _check_data(args.data)), ("config", preset)):
            if given and run.get(key) and given != run[key]:
                raise CLIError(f"--{key} {given} differs from the run in {out} ({run[key]}); leave it out to resume")
        if not run.get("data") and not args.data:
            raise CLIError(f"{out / RUN} does not say which data the run used; pass --data")
        data, config = run.get("data") or _check_data(args.data), preset or run.get("config")
        max_iters = train_over.pop("max_iters", None) or run.get("max_iters")
        stored = load_checkpoint(ckpt_path)
    else:
        data_name = args.data or (file_cfg or {}).get("data")
        if not data_name:
            raise CLIError("train needs --data (names, tinyshakespeare, wikitext-2-v1 or a text file)")
        if ckpt_path.exists():
            raise CLIError(f"{ckpt_path} exists; add --resume to continue that run, or choose another --out")
        data, config = _check_data(data_name), preset
        max_iters = train_over.pop("max_iters", None)
    bpe = data in BPE_DATASETS
    if file_cfg is not None:
        model_kw, bpe_chars = dict(file_cfg["model"]), file_cfg.get("bpe_chars")
        tcfg, config = TrainConfig(**file_cfg["train"]), file_cfg.get("preset") or args.config
    else:
        configs = BPE_CONFIGS if bpe else CHAR_CONFIGS
        config = config or get_profile()
        if config not in configs:
            raise CLIError(f"unknown --config {config!r} for {'BPE' if bpe else 'character'} models; "
                           f"use one of {', '.join(configs)}, or the {CONFIG} of an earlier run")
        if bpe:
            model_kw, bpe_chars, tcfg = BPE_CONFIGS[config]
        else:
            (model_kw, tcfg), bpe_chars = CHAR_CONFIGS[config], None
        model_kw = dict(model_kw)
    if stored is not None and isinstance(stored.get("model_config"), dict) and stored.get("train_config"):
        # the run's own configs (its options included); the options given now must not change them
        model_kw = {k: v for k, v in stored["model_config"].items() if k != "vocab_size"}
        tcfg = TrainConfig(**{k: v for k, v in stored["train_config"].items()
                              if k in {f.name for f in TRAIN_FIELDS}})
    if not bpe and "vocab_size" in model_over:
        raise CLIError("--vocab_size is for WikiText's BPE; a character model's vocabulary is its text's characters")
    model_kw.update(model_over)
    if not bpe:
        model_kw.pop("vocab_size", None)
    tcfg = replace(tcfg, **train_over)
    max_iters = max_iters or tcfg.max_iters
    if stored is not None and stored["step"] >= max_iters:
        if leader:
            print(f"{ckpt_path} is already at step {stored['step']}; pass a larger --max-iters to train further")
        return 0
    tcfg = replace(tcfg, max_iters=max_iters, warmup_iters=min(tcfg.warmup_iters, max_iters),
                   checkpoint_every=tcfg.checkpoint_every or tcfg.eval_interval)  # a short run warms up for all of it
    rank, world, dist_device = setup_distributed()
    if world > 1:  # the configuration's batch is the global one: each process takes its share
        if tcfg.batch_size % world:
            raise CLIError(f"batch_size {tcfg.batch_size} does not split over {world} processes; "
                           f"pass --batch_size with a multiple of {world}")
    device = dist_device or _device(args.device)

    splits = _splits(data)
    if stored is not None:
        tok = load_tokenizer(stored, ckpt_path)
    elif bpe:
        if leader:
            print(f"training a {model_kw['vocab_size']:,}-token BPE on the training split", file=sys.stderr)
        text = splits["train"] if bpe_chars is None else splits["train"][:bpe_chars]
        tok = train_bpe(text, model_kw["vocab_size"], special_tokens=WIKITEXT_SPECIALS, name=f"{config}_bpe")
    else:
        tok = CharTokenizer.from_text("".join(splits.values()))
    tok_dict = tokenizer_to_dict(tok)
    vocab_size = tok.vocab_size if isinstance(tok, CharTokenizer) else tok.n_vocab
    cfg = GPTConfig(**{**model_kw, "vocab_size": vocab_size})
    try:
        streams = [_tokens(tok, splits[s])[0] for s in ("train", "val")]
    except ValueError as err:  # a resumed run's text holds characters its tokenizer lacks
        raise CLIError(f"{data} does not fit the run's tokenizer: {err}") from None
    short = min(len(s) for s in streams)
    if short <= cfg.block_size:
        raise CLIError(f"a split of {data} has only {short} tokens, not more than block_size={cfg.block_size}; "
                       f"use a longer text, a smaller --block_size or a smaller --config")
    model = GPT(cfg, generator=make_generator(tcfg.seed)).to(device)

    accept = ()
    if stored is not None:
        if (stored.get("train_config") or {}).get("max_iters") not in (None, max_iters):
            accept = ("max_iters",)  # training on further: the learning-rate schedule now ends at the new step
        check_resumable(stored, model, tcfg, accept_changes=accept, path=ckpt_path)  # before anything is written
    resolved = {"data": data, "preset": config, "model": asdict(cfg), "train": asdict(tcfg), "bpe_chars": bpe_chars}
    if world > 1:
        tcfg = replace(tcfg, batch_size=tcfg.batch_size // world)
    job = (args, out, data, config, max_iters, stored, accept, model, streams, tcfg, tok, tok_dict, cfg, device,
           resolved, leader)

    # every check has passed: only now does the run folder change
    if lock is None and leader:
        out.mkdir(parents=True, exist_ok=True)
        lock = _RunLock(out)  # released with the process (cmd_train releases the first one)
        try:
            if not args.resume and ckpt_path.exists():  # another run took the folder meanwhile and finished
                raise CLIError(f"{ckpt_path} exists; add --resume to continue that run, or choose another --out")
            return _run_training(*job)
        finally:
            lock.release()
    return _run_training(*job)


def _run_training(args, out, data, config, max_iters, stored, accept, model, streams, tcfg, tok, tok_dict, cfg,
                  device, resolved, leader) -> int:
    ckpt_path = out / CHECKPOINT
    start = stored["step"] if stored else 0
    say = print if leader else (lambda *a, **k: None)
    if leader:
        _write_run(out, {"data": data, "config": config, "max_iters": max_iters})
        with atomic_write(out / CONFIG, "w") as f:
            f.write(json.dumps(resolved, indent=1) + "\n")
    if accept:
        say(f"the run was to end at step {stored['train_config']['max_iters']}; it now goes on to {max_iters}, "
            f"with the learning-rate schedule stretched to end there")
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    say(f"{data}: {len(streams[0]):,} training tokens, {cfg.vocab_size:,}-token vocabulary; "
        f"GPT {config}: {model.num_params():,} parameters on {device}"
        f"{f' x {world} processes' if world > 1 else ''}; "
        f"{'resuming at step ' + str(start) if start else 'training'} to step {max_iters}")

    def saved() -> str:
        if not ckpt_path.exists():
            return "nothing was saved"
        try:
            return f"the last checkpoint (step {load_checkpoint(ckpt_path)['step']}) is {ckpt_path}"
        except (CheckpointError, OSError):
            return f"{ckpt_path} cannot be read back"

    def on_evaluate(step, history, net) -> None:  # rank 0: one line, the log and the curve
        say(f"step {step}: train loss {history['train_eval_loss'][-1]:.4f}, val loss {history['val_loss'][-1]:.4f} "
            f"({history['elapsed'][-1]:.1f} s)", flush=True)
        _write_log(out, history)
        if args.sample_tokens:
            g = torch.Generator().manual_seed(tcfg.seed)
            plain = unwrap(net)  # a compiled model would recompile for every length it generates at
            with eval_mode(plain):
                idx = generate(plain, torch.zeros((1, 0), dtype=torch.long, device=device), args.sample_tokens,
                               start_token=0 if isinstance(tok, CharTokenizer) else tok.eot_token, generator=g)
            text = tok.decode(idx[0].tolist()).strip("\n")
            say(f"  sample ({args.sample_tokens} tokens):\n    " + text.replace("\n", "\n    "), flush=True)

    net = _compiled(model, args.compile)
    try:
        history = train(net, streams, tcfg, device=device, progress=leader and sys.stderr.isatty(),
                        checkpoint_path=ckpt_path, best_checkpoint_path=out / BEST,
                        resume=ckpt_path if stored is not None else None, tokenizer=tok_dict, accept_changes=accept,
                        on_evaluate=on_evaluate)
    except KeyboardInterrupt:
        if not leader:
            return 130
        if ckpt_path.exists():
            print(f"\ninterrupted: {saved()}; add --resume to continue from it", file=sys.stderr)
        else:
            print("\ninterrupted before the first checkpoint; nothing was saved", file=sys.stderr)
        return 130
    except OSError as err:  # a full disk or a folder gone read-only while saving: the old checkpoint stays
        more = "; add --resume to continue from it" if ckpt_path.exists() else ""
        raise CLIError(f"training stopped: {_os_message(err)}; {saved()}{more}") from None
    if leader:
        best = min(range(len(history["val_loss"])), key=history["val_loss"].__getitem__)
        say(f"done (losses are means over {tcfg.eval_iters} batches): checkpoint {ckpt_path}; best {out / BEST} "
            f"(val loss {history['val_loss'][best]:.4f} at step {history['val_step'][best]}); log {out / LOG}, "
            f"curve {out / CURVE}")
    return 0


def _compiled(model: torch.nn.Module, backend: str | None) -> torch.nn.Module:
    """``model`` through ``torch.compile`` with ``backend`` (None: ``model`` itself)."""
    return model if backend is None else torch.compile(model, backend=backend)


def _check_compile(backend: str | None) -> None:
    """``--compile BACKEND``: refused in one line unless this torch has that backend."""
    if backend is None:
        return
    if not hasattr(torch, "compile"):
        raise CLIError(f"--compile needs torch 2.0 or newer (this is {torch.__version__}); leave it out")
    from torch import _dynamo  # torch.compile's tracer, which keeps the list of backends

    if backend not in _dynamo.list_backends(exclude_tags=()):  # the debugging ones (eager, aot_eager) too
        raise CLIError(f"--compile {backend}: not a torch.compile backend; use one of "
                       f"{', '.join(sorted(_dynamo.list_backends()))}, or eager to check the tracing")


def _write_log(out: Path, history: dict) -> None:
    """``log.jsonl`` (one line per evaluation so far) and ``loss.png`` in ``out``, each written whole."""
    rows = zip(history["val_step"], history["train_eval_loss"], history["val_loss"], history["elapsed"])
    lines = [json.dumps({"step": s, "train_loss": round(t, 6), "val_loss": round(v, 6), "elapsed_s": round(e, 3)})
             for s, t, v, e in rows]
    with atomic_write(out / LOG, "w") as f:
        f.write("\n".join(lines) + "\n")
    import io

    from matplotlib.figure import Figure  # no pyplot: no window, whatever the backend

    from .plots import loss_curve

    fig = Figure(figsize=(6, 3.5))
    loss_curve(history, ax=fig.subplots(), title=f"{out.name}: loss")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    with atomic_write(out / CURVE) as f:
        f.write(buf.getvalue())


# ----------------------------------------------------------------------------- sample, chat, eval
GPT2_NAMES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")  # OpenAI's GPT-2, from the Hugging Face hub


def _load(path: str, device: torch.device):
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / CHECKPOINT
    if not p.is_file() and path in GPT2_NAMES:
        return p, _pretrained(path, device), {}, pretrained_encoding("r50k_base")
    if not p.is_file():
        raise CLIError(f"no checkpoint at {path}" + (f" (pretrained models: {', '.join(GPT2_NAMES)})"
                                                     if "/" not in path else ""))
    model, ckpt = gpt_from_checkpoint(p, device=device)
    return p, model, ckpt, load_tokenizer(ckpt, p)


def _pretrained(name: str, device: torch.device):
    """OpenAI's GPT-2 ``name`` through Hugging Face (needs transformers and, the first time, the network)."""
    from . import gpt2

    try:
        return gpt2.from_pretrained(name, device=device)
    except ImportError:
        raise CLIError(f"{name} needs the transformers package: pip install transformers") from None
    except OSError as err:  # no network, HF_HUB_OFFLINE=1 without a cached copy, a proxy refusing
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") else ""
        raise CLIError(f"could not get {name} from the Hugging Face hub{offline}: it is downloaded once (about "
                       f"500 MB for gpt2) and needs the network that time; {' '.join(str(err).split())[:160]}") from None


def _encode_prompt(tok, prompt: str) -> list[int]:
    try:
        return tok.encode(prompt)
    except ValueError as err:  # characters the model does not know, or a special token written as text
        special = re.search(r"disallowed special token '(.+?)'", str(err))
        if special:
            raise CLIError(f"the prompt holds {special.group(1)!r}, a special token of the model's tokenizer; "
                           f"remove it from the prompt") from None
        raise CLIError(f"the prompt has {err}") from None


def _stream(model, tok, prompt: str, args, generator, device, *, echo: bool = True,
            ids: list[int] | None = None, stop: int | None = None) -> list[int]:
    """Print ``prompt`` (if ``echo``) and its continuation to stdout, each token as it is drawn; return
    the ids of the prompt and its continuation.

    One :func:`~lm_steps.sample.generate` step per token, so the text is the one generate gives for the
    same generator; a BPE token that ends inside a UTF-8 character is printed once the character is whole.
    ``ids`` given replaces the prompt's own; ``stop`` given ends the continuation at that token (kept in
    the returned ids, not printed).
    """
    ids = _encode_prompt(tok, prompt) if ids is None else ids
    char = isinstance(tok, CharTokenizer)
    start = 0 if char else tok.eot_token  # where an empty prompt starts
    temperature = args.temperature
    if 0 < temperature < torch.finfo(torch.float32).tiny:
        temperature = 0.0  # underflows to 0 in float32 (0/0 = NaN); its limit is greedy decoding
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def write(new: list[int]) -> None:
        text = tok.decode(new) if char else utf8.decode(b"".join(tok.decode_single_token_bytes(i) for i in new))
        sys.stdout.write(text)
        sys.stdout.flush()

    idx = torch.tensor([ids], dtype=torch.long, device=device).view(1, len(ids))  # (1, T)
    if echo:
        write(ids)
    try:
        for _ in range(args.max_new_tokens):
            nxt = generate(model, idx, 1, start_token=start, temperature=temperature, top_k=args.top_k,
                           top_p=args.top_p, generator=generator)  # (1, T + 1); an empty prompt: start, new
            new, idx = nxt[0, idx.size(1):].tolist(), nxt
            if stop is not None and new[-1:] == [stop]:
                break
            write(new)
    finally:
        sys.stdout.write(("" if char else utf8.decode(b"", final=True)) + "\n")
        sys.stdout.flush()
    return idx[0].tolist()


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
    _encode_prompt(tok, args.prompt)  # a bad prompt fails before anything is printed
    g = _generator(args.seed)
    try:
        for i in range(args.num_samples):
            if i:
                print("---", flush=True)
            _stream(model, tok, args.prompt, args, g, device)
    except KeyboardInterrupt:  # what was printed stays printed
        return 130
    return 0


def _chat_turn(model, tok, history: list[int], line: str, args, generator, device) -> list[int]:
    """Print the model's answer to ``line`` as the next assistant turn after ``history`` (ids), each token as
    it is drawn, up to the end-of-turn token; return the conversation's ids with both turns added."""
    end = tok.special_id(END)
    ids = (history + chat_ids(tok, line))[-model.block_size:]  # the last block of the conversation
    new = _stream(model, tok, line, args, generator, device, echo=False, ids=ids, stop=end)
    return new if new[-1] == end else new + [end]


def cmd_chat(args) -> int:
    device = _device(args.device)
    _, model, _, tok = _load(args.ckpt, device)
    g = _generator(args.seed)
    template = isinstance(tok, ChatTokenizer)  # a fine-tuned model: each line is a user turn
    interactive = sys.stdin.isatty()
    if interactive:
        print("one message per line, answered in turn; Ctrl-D or Ctrl-C ends" if template else
              "one prompt per line; Ctrl-D or Ctrl-C ends", file=sys.stderr)
    history: list[int] = []
    try:
        while True:
            if interactive:
                print("> ", end="", flush=True)
            line = sys.stdin.readline()
            if not line:
                break
            prompt = line.rstrip("\r\n")
            try:
                _encode_prompt(tok, prompt) if not template else tok.encode_ordinary(prompt)
            except (CLIError, ValueError) as err:
                print(f"lm-steps: error: {err if isinstance(err, CLIError) else f'the prompt has {err}'}",
                      file=sys.stderr)
                continue
            if template:
                history = _chat_turn(model, tok, history, prompt, args, g, device)
            else:
                _stream(model, tok, prompt, args, g, device, echo=False)
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
    try:
        tokens, n_bytes, n_words = _tokens(tok, splits[args.split])
    except ValueError as err:
        raise CLIError(f"{data} {args.split} does not fit the model's tokenizer: {err}; evaluate on text of the "
                       f"kind it was trained on") from None
    T = model.block_size
    stride = args.stride or max(T // 2, 1)
    if not 1 <= stride <= T:
        raise CLIError(f"--stride must be between 1 and the block size {T}, got {stride}")
    if len(tokens) < 2:
        raise CLIError(f"{data} {args.split} has {len(tokens)} token(s); scoring needs at least two")
    m = evaluate_stream(model, tokens, stride=stride, n_bytes=n_bytes, batch_size=32, device=device,
                        progress=sys.stderr.isatty())
    name = Path(data).name
    if n_words is None:
        print(f"{name} {args.split}: {m['n_tokens']:,} characters scored (window {T}, stride {stride})")
        print(f"loss {m['loss']:.4f} nats/char, {m['bits_per_token']:.4f} bits/char, "
              f"{m['bits_per_byte']:.4f} bits/byte, perplexity {m['ppl']:.2f} per character")
    else:
        word_ppl = _exp(m["total_nll"] / n_words) if n_words else math.nan
        print(f"{name} {args.split}: {m['n_tokens']:,} tokens, {n_bytes:,} bytes, {n_words:,} words scored "
              f"(window {T}, stride {stride})")
        print(f"loss {m['loss']:.4f} nats/token, {m['bits_per_byte']:.4f} bits/byte, "
              f"perplexity {m['ppl']:.2f} per token, {word_ppl:.2f} per word")
    return 0


def cmd_export(args) -> int:
    from .gpt2 import export_hf

    device = torch.device("cpu")
    _, model, _, _ = _load(args.ckpt, device)
    out = _out_folder(args.out)
    if out.is_dir() and any(out.iterdir()) and not (out / "model.safetensors").exists():
        raise CLIError(f"--out {args.out} is a folder with other files in it; choose an empty or new folder")
    try:
        export_hf(model, out)
    except ImportError as err:
        raise CLIError(str(err)) from None
    print(f"wrote {out / 'config.json'} and {out / 'model.safetensors'} (Hugging Face's GPT-2 layout: "
          f"transformers.GPT2LMHeadModel.from_pretrained({str(out)!r}))")
    return 0


# ----------------------------------------------------------------------------- parser
def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help=f"on an error, print its traceback (also: {DEBUG_ENV}=1)")
    common.add_argument("--threads", type=int, default=argparse.SUPPRESS,
                        help=f"torch's CPU threads (also: {THREADS_ENV}; default: the CPUs this process may use, "
                             f"at most torch's default)")
    parser = argparse.ArgumentParser(prog="lm-steps", description="Train, sample from, chat with and evaluate "
                                     "the GPTs of lm-steps.", parents=[common])
    sub = parser.add_subparsers(dest="verb", required=True, metavar="{train,sample,chat,eval,export}")

    p = sub.add_parser("train", help="train a GPT; checkpoints go to --out", parents=[common],
                       epilog="Every model and training field is an option too (nanoGPT's names): "
                              + " ".join(f"--{f.name}" for f in MODEL_FIELDS + TRAIN_FIELDS)
                              + ". --lr without --min_lr sets min_lr = lr / 10.")
    p.add_argument("--data", help=f"{', '.join(DATASETS)} or PATH.txt (character-level; WikiText uses a BPE)")
    p.add_argument("--out", required=True, help=f"folder for {CHECKPOINT}, {BEST}, {RUN}, {CONFIG}, {LOG}, {CURVE}")
    p.add_argument("--config", help=f"a preset: smoke, baby (text only), cpu or gpu (default: the profile, "
                                    f"LM_STEPS_PROFILE); or the {CONFIG} of an earlier run (or its folder)")
    p.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--resume", action="store_true", help=f"continue the run in --out from its {CHECKPOINT}")
    p.add_argument("--sample-tokens", type=int, default=0, help="print a sample of this many tokens at each "
                                                                  "evaluation (default 0: none)")
    p.add_argument("--compile", nargs="?", const="inductor", default=None, metavar="BACKEND",
                   help="train through torch.compile (default backend: inductor; its first steps compile, later "
                        "ones run faster); checkpoints hold the plain model either way")
    config_options = p.add_argument_group("model and training fields (default: the --config's)")
    for f in MODEL_FIELDS + TRAIN_FIELDS:
        names = [f"--{f.name}"] + ([f"--{f.name.replace('_', '-')}"] if "_" in f.name else [])
        config_options.add_argument(*names, dest=f.name, type=_field_type(f), default=argparse.SUPPRESS,
                                    metavar=_metavar(f), help=argparse.SUPPRESS if f.name != "max_iters" else
                                    "optimizer steps (default: the configuration's)")
    p.set_defaults(run=cmd_train)

    def generation(p):
        p.add_argument("ckpt", help="a checkpoint written by train (or its folder)")
        p.add_argument("--max-new-tokens", type=int, default=200)
        p.add_argument("--temperature", type=float, default=1.0, help="0: greedy")
        p.add_argument("--top-k", type=int)
        p.add_argument("--top-p", type=float)
        p.add_argument("--seed", type=int, help="the same seed gives the same text (default: random)")
        p.add_argument("--device")

    p = sub.add_parser("sample", help="print a prompt and its continuation", parents=[common])
    generation(p)
    p.add_argument("--prompt", default="", help="text to continue (default: empty)")
    p.add_argument("--num-samples", type=int, default=1)
    p.set_defaults(run=cmd_sample)

    p = sub.add_parser("chat", help="continue each line read from standard input (a fine-tuned model: answer it)", parents=[common])
    generation(p)
    p.set_defaults(run=cmd_chat, max_new_tokens=100)

    p = sub.add_parser("eval", help="loss, bits per character/byte and perplexity on a split", parents=[common])
    p.add_argument("ckpt", help="a checkpoint written by train (or its folder)")
    p.add_argument("--split", choices=("val", "test"), default="val")
    p.add_argument("--data", help=f"the data to score (default: the run's, from {RUN})")
    p.add_argument("--stride", type=int, help="sliding-window stride (default: half the block size)")
    p.add_argument("--device")
    p.set_defaults(run=cmd_eval)

    p = sub.add_parser("export", help="write a GPT in Hugging Face's GPT-2 layout (config.json, model.safetensors)",
                       parents=[common])
    p.add_argument("ckpt", help="a checkpoint written by train (or its folder, or a save_model folder)")
    p.add_argument("--out", required=True, help="the folder to write")
    p.set_defaults(run=cmd_export)
    return parser


def _field_type(f):
    """How the command line reads a config field: by the type its annotation names."""
    kind = str(f.type).replace(" ", "")

    def parse(text: str):
        low = text.strip().lower()
        if "None" in kind and low in ("none", "null", ""):
            return None
        if kind.startswith("bool"):
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind.startswith("int"):
            return int(text)
        if kind.startswith("float"):
            return float(text)
        return text

    parse.__name__ = kind.split("|")[0]  # argparse names it in "invalid int value: 'x'"
    return parse


def _metavar(f) -> str:
    return {"int": "N", "float": "X", "bool": "BOOL"}.get(str(f.type).split("|")[0].strip(), "VALUE")


def _threads(args) -> int:
    """Set torch's CPU threads: --threads, else LM_STEPS_THREADS, else the default of
    :func:`~lm_steps.utils.set_threads`; return the number."""
    given = getattr(args, "threads", None)
    if given is None:
        return set_threads()  # a bad LM_STEPS_THREADS is a ValueError: one line, status 2
    check_int("--threads", given, minimum=1)
    torch.set_num_threads(given)
    return given


def _check_args(args) -> None:
    """The numbers of the command line, checked before anything runs."""
    for name, minimum, maximum in (("max_iters", 1, None), ("max_new_tokens", 0, None), ("num_samples", 1, None),
                                   ("sample_tokens", 0, None),
                                   ("stride", 1, None), ("top_k", 1, None), ("seed", 0, SEED_MAX)):
        if getattr(args, name, None) is not None:
            check_int(f"--{name.replace('_', '-')}", getattr(args, name), minimum=minimum, maximum=maximum)
    if getattr(args, "temperature", None) is not None:
        check_number("--temperature", args.temperature, low=0, hint=" (0: greedy)")
    if getattr(args, "top_p", None) is not None:
        check_number("--top-p", args.top_p, low=0, high=1, low_open=True)
    _check_compile(getattr(args, "compile", None))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    0: done; 2: a failure the user can fix, in one line on stderr; 1: a bug, in one line (with the
    traceback under ``--debug`` or ``LM_STEPS_DEBUG=1``); 130: interrupted (Ctrl-C).
    """
    args = _parser().parse_args(argv)
    debug = getattr(args, "debug", False) or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false")
    try:
        _check_args(args)
        _threads(args)
        return args.run(args)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except ANTICIPATED as err:
        if debug:
            traceback.print_exc()
        return _fail(_os_message(err) if isinstance(err, OSError) else str(err))
    except (SystemExit, GeneratorExit):
        raise
    except BaseException as err:  # noqa: B036  (tiktoken's Rust panics are BaseExceptions too)
        if debug:
            traceback.print_exc()
        detail = " ".join(str(err).split())[:300]
        print(f"lm-steps: internal error (a bug in lm-steps, please report it): {type(err).__name__}"
              f"{': ' + detail if detail else ''}; run again with --debug or {DEBUG_ENV}=1 to see the traceback",
              file=sys.stderr)
        return 1


def _fail(message: str) -> int:
    print(f"lm-steps: error: {_for_the_command_line(message)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
