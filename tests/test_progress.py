"""Progress bars: in a Jupyter kernel one line redrawn in place, so a saved notebook keeps the bar's
last state, never a first-frame "0%"; elsewhere tqdm's bar on standard error."""
from __future__ import annotations

import io

import pytest

from lm_steps import utils


def test_in_a_kernel_the_saved_line_is_the_last_state(monkeypatch):
    display_mod = pytest.importorskip("IPython.display")
    shown = []

    class Handle:
        def update(self, obj):
            shown[-1] = obj.data

    def fake_display(obj, display_id=False):
        shown.append(obj.data)
        return Handle()

    monkeypatch.setattr(utils, "_in_kernel", lambda: True)
    monkeypatch.setattr(display_mod, "display", fake_display)
    with utils.progress_bar(total=10, desc="train", mininterval=0) as bar:
        for _ in range(10):
            bar.update(1)
    assert len(shown) == 1  # one display, updated in place
    assert shown[0].startswith("train: 100%") and "10/10" in shown[0] and "\r" not in shown[0]


def test_elsewhere_it_is_tqdms_bar_on_a_file(monkeypatch):
    monkeypatch.setattr(utils, "_in_kernel", lambda: False)
    out = io.StringIO()
    with utils.progress_bar(total=3, desc="evaluate", file=out, mininterval=0) as bar:
        bar.update(3)
    assert "evaluate: 100%" in out.getvalue()
