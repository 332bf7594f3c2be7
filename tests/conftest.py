"""Shared fixtures: the real datasets come from LM_STEPS_DATA (CI) or the cache; never the network."""
from __future__ import annotations

import pytest

from lm_steps import data
from lm_steps.tokenizers import CharTokenizer


@pytest.fixture(scope="session")
def names():
    """All 32,033 names (skips with a reason when neither LM_STEPS_DATA nor the cache holds them)."""
    try:
        return data.load_names(progress=False)
    except data.DataUnavailableError as err:
        pytest.skip(f"names.txt not available offline: {err}")


@pytest.fixture(scope="session")
def names_tok(names):
    """The 27-symbol names vocabulary with '.' at id 0."""
    return CharTokenizer.from_text(names, boundary=".")


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny test models run fastest on one torch thread, and do not stall when the other core is busy."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
