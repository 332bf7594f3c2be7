"""Datasets: a checksummed registry, offline-capable fetching, splits, examples and batches.

Where a file comes from, in order:

1. the cache folder (``LM_STEPS_CACHE``, else ``data/`` in the repository, else
   ``~/.cache/lm_steps``), checked against its SHA-256;
2. the folder named by ``LM_STEPS_DATA`` (pre-downloaded copies, same layout), copied into
   the cache after its checksum is checked (set to a file or a missing path, it is an error, not
   passed over);
3. the public URL, downloaded with a progress bar to a temporary file that is checked and
   only then renamed into place, so an interrupted download never leaves a file behind (a
   killed one's temporary file is removed by the next fetch of that file).
"""
from __future__ import annotations

import hashlib
import http.client
import numbers
import os
import random
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from .utils import atomic_write, progress_bar, remove_stale_temps

__all__ = [
    "DataFile", "DATASETS", "DataError", "ChecksumError", "DataUnavailableError",
    "default_cache_dir", "sha256_file", "fetch",
    "load_names", "names_splits", "load_shakespeare", "shakespeare_splits",
    "load_wikitext", "wikitext_splits", "boundary_id", "make_examples", "get_batch",
]


@dataclass(frozen=True)
class DataFile:
    """One published file: where it lives in the cache, its public URL, size and SHA-256."""

    path: str
    url: str
    size: int
    sha256: str


_HF = "https://huggingface.co/datasets/Salesforce/wikitext/resolve/main/wikitext-2-raw-v1/"
_PT = "https://raw.githubusercontent.com/pytorch/examples/main/word_language_model/data/wikitext-2/"

DATASETS: dict[str, dict[str, DataFile]] = {
    "names": {"all": DataFile(
        "names.txt", "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt",
        228_145, "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d")},
    "tinyshakespeare": {"all": DataFile(
        "tinyshakespeare/input.txt",
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        1_115_394, "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed")},
    "wikitext-2-v1": {
        "train": DataFile("wikitext-2/train.txt", _PT + "train.txt", 10_797_148,
                          "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f"),
        "validation": DataFile("wikitext-2/valid.txt", _PT + "valid.txt", 1_121_681,
                               "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8"),
        "test": DataFile("wikitext-2/test.txt", _PT + "test.txt", 1_256_449,
                         "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0"),
    },
    "wikitext-2-raw-v1": {
        "train": DataFile("wikitext-2-raw-v1/train-00000-of-00001.parquet",
                          _HF + "train-00000-of-00001.parquet", 6_357_543,
                          "e83889baabc497075506f91975be5fac0d45c5290b6b20582c8cd1e853d0c9f7"),
        "validation": DataFile("wikitext-2-raw-v1/validation-00000-of-00001.parquet",
                               _HF + "validation-00000-of-00001.parquet", 657_209,
                               "204929b7ff9d6184953f867dedb860e40aa69c078fc1e54b3baaa8fb28511c4c"),
        "test": DataFile("wikitext-2-raw-v1/test-00000-of-00001.parquet",
                         _HF + "test-00000-of-00001.parquet", 732_610,
                         "5f1bea067869d04849c0f975a2b29c4ff47d867f484f5010ea5e861eab246d91"),
    },
}


class DataError(RuntimeError):
    """A dataset could not be provided."""


class ChecksumError(DataError):
    """A file's SHA-256 is not the published one."""


class DataUnavailableError(DataError):
    """No cached copy, no local copy and no network."""


def default_cache_dir() -> Path:
    """``LM_STEPS_CACHE`` if set, else ``data/`` beside the package (a checkout), else ``~/.cache/lm_steps``."""
    return _default_cache(env=True)


def _default_cache(*, env: bool) -> Path:
    if env and os.environ.get("LM_STEPS_CACHE"):
        return Path(os.environ["LM_STEPS_CACHE"]).expanduser()
    repo_data = Path(__file__).resolve().parent.parent / "data"
    if repo_data.is_dir():
        return repo_data
    return Path.home() / ".cache" / "lm_steps"


def sha256_file(path: str | os.PathLike) -> str:
    """Return the hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check(path: Path, spec: DataFile, what: str) -> None:
    actual = sha256_file(path)
    if actual != spec.sha256:
        raise ChecksumError(
            f"{what} {path} has SHA-256 {actual}, expected {spec.sha256} ({spec.url}). "
            f"The file is corrupt or a different version: delete it and run again "
            f"(or replace the copy with the published file)."
        )


def _download(spec: DataFile, dest: Path, progress: bool) -> None:
    def unavailable(err: Exception) -> DataUnavailableError:
        return DataUnavailableError(
            f"cannot download {spec.url} ({type(err).__name__}: {err}). With no network, put a copy of the file at "
            f"$LM_STEPS_DATA/{spec.path} (set LM_STEPS_DATA to a folder of pre-downloaded copies; "
            f"`make data DATA_DIR=folder` builds one on a machine with network) or at {dest}."
        )

    try:
        response = urllib.request.urlopen(spec.url, timeout=60)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise unavailable(err) from err
    with response, atomic_write(dest) as out, progress_bar(
        total=spec.size, unit="B", unit_scale=True, desc=Path(spec.path).name, disable=not progress
    ) as bar:
        try:
            for chunk in iter(lambda: response.read(1 << 16), b""):
                out.write(chunk)
                bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as err:  # connection reset, timeout, truncated reply
            raise unavailable(err) from err
        out.flush()
        _check(Path(out.name), spec, "downloaded file")  # raising here keeps nothing


def _fetch_file(spec: DataFile, cache: Path, source: Path | None, progress: bool) -> Path:
    dest = cache / spec.path
    if dest.exists():
        _check(dest, spec, "cached file")
        return dest
    if source is not None and not source.is_dir():  # needed now: a wrong LM_STEPS_DATA is not passed over
        raise DataUnavailableError(
            f"LM_STEPS_DATA={source} is {'a file' if source.exists() else 'missing'}, not a folder of pre-downloaded "
            f"copies (it would hold {spec.path}); point it at such a folder (`make data DATA_DIR=folder` builds "
            f"one) or unset it to download from {spec.url}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(dest.parent, ".partial-*")  # left by killed downloads of earlier versions
    if source is not None and (source / spec.path).exists():
        src = source / spec.path
        _check(src, spec, "file in LM_STEPS_DATA:")
        with open(src, "rb") as f, atomic_write(dest) as out:
            shutil.copyfileobj(f, out)
            out.flush()
            _check(Path(out.name), spec, "copied file")
        return dest
    _download(spec, dest, progress)
    return dest


def fetch(name: str, *, cache_dir: str | os.PathLike | None = None,
          source_dir: str | os.PathLike | None = None, progress: bool = True) -> dict[str, Path]:
    """Make the files of dataset ``name`` available and verified; return ``{key: path}``.

    ``source_dir`` defaults to ``LM_STEPS_DATA``; ``cache_dir`` to :func:`default_cache_dir`.
    Keys: ``"all"`` for single-file datasets, ``"train"``/``"validation"``/``"test"`` for WikiText.
    """
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if source_dir is None and os.environ.get("LM_STEPS_DATA"):
        source_dir = os.environ["LM_STEPS_DATA"]
    source = Path(source_dir).expanduser() if source_dir is not None else None
    __tracebackhide__ = True  # noqa: F841  (IPython and pytest show the message, not the frames below)
    if cache.exists() and not cache.is_dir():
        raise DataError(f"the data cache {cache} is a file, not a folder; set LM_STEPS_CACHE to a folder "
                        f"(or unset it to use {_default_cache(env=False)})")
    try:
        return {key: _fetch_file(spec, cache, source, progress) for key, spec in DATASETS[name].items()}
    except DataError as err:  # its message names the file and the fix; the urllib chain below it would bury that
        raise err.with_traceback(None) from None
    except OSError as err:  # the cache cannot be made or written (read-only, not ours, a full disk)
        what = err.strerror or str(err)
        where = Path(err.filename) if err.filename else cache
        inside = cache.resolve() in (where.resolve(), *where.resolve().parents)
        fix = ("set LM_STEPS_CACHE to a writable folder with room for it" if inside else
               f"check that {where} can be read")
        raise DataError(f"cannot fetch {name}: {what}: {where}; {fix}") from None


# ----------------------------------------------------------------------------- names
def load_names(**fetch_kw) -> list[str]:
    """The 32,033 makemore names, one per line, in file order."""
    return fetch("names", **fetch_kw)["all"].read_text(encoding="utf-8").splitlines()


def names_splits(words: Sequence[str] | None = None, seed: int = 42, **fetch_kw):
    """The makemore lecture's split: shuffle with ``random.seed(42)``, then 80/10/10 by word.

    Returns ``(train, dev, test)`` lists of words (25,626 / 3,203 / 3,204 names).
    """
    words = list(load_names(**fetch_kw) if words is None else words)
    random.Random(seed).shuffle(words)  # same sequence as random.seed(seed); random.shuffle(words)
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    return words[:n1], words[n1:n2], words[n2:]


def boundary_id(tokenizer, boundary: str) -> int:
    """The id of ``boundary``, which must be one token of ``tokenizer`` (e.g. ``'.'``)."""
    ids = tokenizer.encode(boundary)
    if len(ids) != 1:
        raise ValueError(f"boundary must be one symbol of the tokenizer, got {boundary!r} ({len(ids)} tokens); "
                         f"pass the character that frames each word, e.g. boundary='.'")
    return ids[0]


def make_examples(words: Sequence[str], block_size: int, tokenizer, *, boundary: str = "."):
    """(context -> next character) examples, as in the makemore lecture.

    Each word is framed by the boundary token: the context starts as ``block_size`` boundaries
    and the last target is the boundary. Returns ``X`` of shape (N, block_size) and ``Y`` of
    shape (N,), both int64.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    if isinstance(words, str):
        raise TypeError(f"words must be a list of words, got one string {words[:20]!r}; pass [text] or text.split()")
    b = boundary_id(tokenizer, boundary)
    xs, ys = [], []
    for w in words:
        context = [b] * block_size
        for ix in tokenizer.encode(w) + [b]:
            xs.append(context)
            ys.append(ix)
            context = context[1:] + [ix]
    X = torch.tensor(xs, dtype=torch.long).view(-1, block_size)  # (N, block_size)
    return X, torch.tensor(ys, dtype=torch.long)


# ----------------------------------------------------------------------------- shakespeare
def load_shakespeare(**fetch_kw) -> str:
    """Tiny Shakespeare (char-rnn's input.txt): 1,115,394 characters."""
    return fetch("tinyshakespeare", **fetch_kw)["all"].read_text(encoding="utf-8")


def shakespeare_splits(text: str | None = None, **fetch_kw) -> tuple[str, str]:
    """nanoGPT's split: the first 90% of characters for training, the rest for validation."""
    text = load_shakespeare(**fetch_kw) if text is None else text
    n = int(0.9 * len(text))
    return text[:n], text[n:]


def get_batch(data: torch.Tensor, batch_size: int, block_size: int, *,
              generator: torch.Generator | None = None, device: str | torch.device = "cpu"):
    """Random windows of a 1-D token stream: ``x`` (B, T) and ``y`` = ``x`` shifted by one."""
    if not isinstance(data, torch.Tensor):
        raise TypeError(f"data must be a 1-D LongTensor of token ids, got {type(data).__name__}; "
                        f"convert it with torch.tensor(ids, dtype=torch.long)")
    if data.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"data must hold integer token ids (torch.long), got dtype {data.dtype}; "
                         f"convert it with data.long()")
    for name, value in (("batch_size", batch_size), ("block_size", block_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if data.dim() != 1 or len(data) <= block_size:
        raise ValueError(f"need a 1-D stream longer than block_size={block_size}, got shape {tuple(data.shape)}")
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size)
    x = data[ix[:, None] + offsets]  # (B, T)
    y = data[ix[:, None] + offsets + 1]  # (B, T)
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


# ----------------------------------------------------------------------------- wikitext
def load_wikitext(config: str = "wikitext-2-v1", *, source: str = "auto", hub_rows: bool = True, **fetch_kw):
    """WikiText-2 as a Hugging Face ``DatasetDict`` (train / validation / test rows, one per line).

    ``source="auto"`` takes the checksummed files through :func:`fetch` and loads them with the
    ``text`` (v1) or ``parquet`` (raw) builder; ``source="hub"`` calls
    ``load_dataset("Salesforce/wikitext", config)``. Either way blank lines are ``""`` and other
    rows keep their trailing newline, so the rows equal the hub's (36,718 / 3,760 / 4,358).
    With ``hub_rows=False`` the local rows are left as read (blank lines stay ``" \\n"``), so
    joining them gives back each file's exact text.
    """
    if config not in ("wikitext-2-v1", "wikitext-2-raw-v1"):
        raise ValueError(f"unknown WikiText config {config!r}; use 'wikitext-2-v1' or 'wikitext-2-raw-v1'")
    from datasets import load_dataset

    if source == "hub":
        return load_dataset("Salesforce/wikitext", config)
    if source != "auto":
        raise ValueError(f"source must be 'auto' or 'hub', got {source!r}")
    files = {k: str(p) for k, p in fetch(config, **fetch_kw).items()}
    if config == "wikitext-2-raw-v1":
        return load_dataset("parquet", data_files=files)
    ds = load_dataset("text", data_files=files, keep_linebreaks=True)
    if not hub_rows:
        return ds
    return ds.map(lambda ex: {"text": ex["text"] if ex["text"].strip() else ""})


def wikitext_splits(config: str = "wikitext-2-v1", **kw) -> dict[str, str]:
    """Each WikiText split as one string: for local files, each file's exact text.

    ``wikitext-2-v1`` is read straight from its checksummed files (no ``datasets`` needed);
    the raw variant and ``source="hub"`` go through :func:`load_wikitext`.
    """
    if config == "wikitext-2-v1" and kw.get("source", "auto") == "auto":
        kw.pop("source", None)
        return {split: path.read_text(encoding="utf-8") for split, path in fetch(config, **kw).items()}
    ds = load_wikitext(config, hub_rows=False, **kw)
    return {split: "".join(ds[split]["text"]) for split in ("train", "validation", "test")}


def _main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lm_steps.data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("fetch", help="fetch and verify datasets (and tiktoken's GPT-2/GPT-4 files)")
    p.add_argument("names", nargs="+", choices=list(DATASETS) + ["tiktoken"])
    p.add_argument("--to", metavar="DIR", help="fetch into DIR (an LM_STEPS_DATA folder for offline machines, "
                   "with tiktoken's files in DIR/tiktoken) instead of the cache")
    args = parser.parse_args(argv)
    if args.to and "tiktoken" in args.names:
        os.environ["TIKTOKEN_CACHE_DIR"] = str(Path(args.to, "tiktoken").expanduser().resolve())
    try:
        for name in args.names:
            if name == "tiktoken":
                from .tokenizers import pretrained_encoding

                for enc in ("r50k_base", "cl100k_base"):
                    pretrained_encoding(enc)
                    where = os.environ.get("TIKTOKEN_CACHE_DIR") or "a temporary folder (set TIKTOKEN_CACHE_DIR to keep it)"
                    print(f"tiktoken:{enc} -> {where}")
                continue
            for key, path in fetch(name, cache_dir=args.to).items():
                print(f"{name}:{key} -> {path}")
    except (DataError, RuntimeError) as err:
        raise SystemExit(f"python -m lm_steps.data: error: {err}") from None
    if args.to:
        print(f"offline, use it with LM_STEPS_DATA={Path(args.to).expanduser().resolve()}"
              + (f" TIKTOKEN_CACHE_DIR={os.environ['TIKTOKEN_CACHE_DIR']}" if "tiktoken" in args.names else ""))


if __name__ == "__main__":
    _main()
