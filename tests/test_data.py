"""lm_steps.data: registry, checksums, resolution order, errors, splits and batches."""
from __future__ import annotations

import hashlib
import urllib.error
from pathlib import Path

import pytest
import torch

from lm_steps import data
from lm_steps.data import DataFile


def _spec(tmp_path: Path, content: bytes, *, sha: str | None = None) -> DataFile:
    upstream = tmp_path / "upstream" / "thing.txt"
    upstream.parent.mkdir(parents=True)
    upstream.write_bytes(content)
    return DataFile("sub/thing.txt", upstream.as_uri(), len(content), sha or hashlib.sha256(content).hexdigest())


@pytest.fixture
def fake_dataset(tmp_path, monkeypatch):
    """Register a one-file dataset 'fake' whose URL is a file:// URL (no network involved)."""
    spec = _spec(tmp_path, b"hello world\n" * 1000)
    monkeypatch.setitem(data.DATASETS, "fake", {"all": spec})
    monkeypatch.delenv("LM_STEPS_DATA", raising=False)
    return spec


def _no_network(monkeypatch):
    def refuse(*a, **k):
        raise urllib.error.URLError("network is unreachable")
    monkeypatch.setattr(data.urllib.request, "urlopen", refuse)


def test_registry_matches_sources():
    assert set(data.DATASETS) == {"names", "tinyshakespeare", "wikitext-2-v1", "wikitext-2-raw-v1"}
    for files in data.DATASETS.values():
        for spec in files.values():
            assert spec.url.startswith("https://") and len(spec.sha256) == 64 and spec.size > 0


def test_shared_copies_hash_as_registered():
    for name in ("names", "tinyshakespeare", "wikitext-2-v1"):
        try:
            paths = data.fetch(name, progress=False)
        except data.DataUnavailableError:
            pytest.skip("datasets not available offline")
        for key, path in paths.items():
            spec = data.DATASETS[name][key]
            assert path.stat().st_size == spec.size
            assert data.sha256_file(path) == spec.sha256


def test_download_to_cache_then_cache_hit(tmp_path, fake_dataset, monkeypatch):
    cache = tmp_path / "cache"
    path = data.fetch("fake", cache_dir=cache, progress=False)["all"]
    assert path == cache / "sub" / "thing.txt" and path.read_bytes() == b"hello world\n" * 1000
    _no_network(monkeypatch)  # the second call must not need the network
    assert data.fetch("fake", cache_dir=cache, progress=False)["all"] == path
    assert [p.name for p in path.parent.iterdir()] == ["thing.txt"]


def test_copy_from_lm_steps_data(tmp_path, fake_dataset, monkeypatch):
    src = tmp_path / "shared"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "thing.txt").write_bytes(b"hello world\n" * 1000)
    monkeypatch.setenv("LM_STEPS_DATA", str(src))
    _no_network(monkeypatch)
    path = data.fetch("fake", cache_dir=tmp_path / "cache", progress=False)["all"]
    assert path.read_bytes() == b"hello world\n" * 1000


def test_corrupt_local_copy_is_named(tmp_path, fake_dataset, monkeypatch):
    src = tmp_path / "shared"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "thing.txt").write_bytes(b"tampered")
    monkeypatch.setenv("LM_STEPS_DATA", str(src))
    with pytest.raises(data.ChecksumError) as err:
        data.fetch("fake", cache_dir=tmp_path / "cache", progress=False)
    msg = str(err.value)
    assert "thing.txt" in msg and fake_dataset.sha256 in msg and hashlib.sha256(b"tampered").hexdigest() in msg
    assert "delete" in msg
    assert not (tmp_path / "cache" / "sub" / "thing.txt").exists()


def test_corrupt_cache_file_is_an_error(tmp_path, fake_dataset):
    cache = tmp_path / "cache"
    (cache / "sub").mkdir(parents=True)
    (cache / "sub" / "thing.txt").write_bytes(b"half a fi")
    with pytest.raises(data.ChecksumError, match="cached file"):
        data.fetch("fake", cache_dir=cache, progress=False)


def test_bad_download_never_lands(tmp_path, monkeypatch):
    spec = _spec(tmp_path, b"the real bytes", sha="0" * 64)
    monkeypatch.setitem(data.DATASETS, "fake", {"all": spec})
    monkeypatch.delenv("LM_STEPS_DATA", raising=False)
    cache = tmp_path / "cache"
    with pytest.raises(data.ChecksumError, match="downloaded file"):
        data.fetch("fake", cache_dir=cache, progress=False)
    assert list((cache / "sub").iterdir()) == []


def test_no_network_no_copy_names_url_and_variable(tmp_path, fake_dataset, monkeypatch):
    _no_network(monkeypatch)
    with pytest.raises(data.DataUnavailableError) as err:
        data.fetch("fake", cache_dir=tmp_path / "cache", progress=False)
    assert fake_dataset.url in str(err.value) and "LM_STEPS_DATA" in str(err.value)
    assert list((tmp_path / "cache" / "sub").iterdir()) == []


def test_interrupted_download_leaves_nothing(tmp_path, fake_dataset, monkeypatch):
    real_open = data.urllib.request.urlopen

    class Dying:
        def __init__(self, response):
            self.response, self.calls = response, 0

        def read(self, n):
            self.calls += 1
            if self.calls > 1:
                raise KeyboardInterrupt
            return self.response.read(10)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.response.close()

    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: Dying(real_open(url)))
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        data.fetch("fake", cache_dir=cache, progress=False)
    assert list((cache / "sub").iterdir()) == []


def test_unknown_dataset():
    with pytest.raises(KeyError, match="choose one of"):
        data.fetch("wikitext-103")


def test_names_split_sizes(names, names_tok):
    assert len(names) == 32_033
    train, dev, test = data.names_splits(names)
    assert (len(train), len(dev), len(test)) == (25_626, 3_203, 3_204)
    assert sorted(train + dev + test) == sorted(names)
    sizes = [len(data.make_examples(s, 3, names_tok)[1]) for s in (train, dev, test)]
    assert sizes == [182_625, 22_655, 22_866]


def test_make_examples_frames_words(names_tok):
    X, Y = data.make_examples(["emma"], 3, names_tok)
    assert X.shape == (5, 3) and Y.shape == (5,)
    assert [names_tok.decode(x) for x in X] == ["...", "..e", ".em", "emm", "mma"]
    assert names_tok.decode(Y) == "emma."


def test_shakespeare_split():
    try:
        train, val = data.shakespeare_splits(progress=False)
    except data.DataUnavailableError:
        pytest.skip("tinyshakespeare not available offline")
    assert (len(train), len(val)) == (1_003_854, 111_540)


def test_get_batch_shift_and_determinism():
    stream = torch.arange(100)
    x1, y1 = data.get_batch(stream, 4, 8, generator=torch.Generator().manual_seed(0))
    x2, y2 = data.get_batch(stream, 4, 8, generator=torch.Generator().manual_seed(0))
    assert x1.shape == y1.shape == (4, 8)
    assert torch.equal(x1, x2) and torch.equal(y1, x1 + 1)
    with pytest.raises(ValueError, match="longer than block_size"):
        data.get_batch(torch.arange(5), 2, 8)


def test_wikitext_rows_equal_the_hub_layout():
    pytest.importorskip("datasets", reason="load_wikitext needs the hub extra: pip install -e '.[hub]'")
    try:
        ds = data.load_wikitext("wikitext-2-v1", progress=False)
    except data.DataUnavailableError:
        pytest.skip("wikitext-2-v1 not available offline")
    assert [len(ds[s]) for s in ("train", "validation", "test")] == [36_718, 3_760, 4_358]
    rows = ds["test"]["text"]
    assert rows[0] == "" and rows[1].endswith("\n") and all(r == "" or r.strip() for r in rows)
    text = data.wikitext_splits("wikitext-2-v1", progress=False)["test"]
    assert text.encode("utf-8") == data.fetch("wikitext-2-v1", progress=False)["test"].read_bytes()


def test_wikitext_bad_config():
    with pytest.raises(ValueError, match="wikitext-2-v1"):
        data.load_wikitext("wikitext-3")
