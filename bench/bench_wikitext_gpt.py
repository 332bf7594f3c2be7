"""Benchmark: run notebook 06 (WikiText-2, BPE, GPT) in a profile, time it, print its figures.

The notebook is the single source of the settings (its parameters cell); this script executes
it with nbconvert and prints the wall time, the evaluation table and the recorded results entry.

    flock /tmp/lm_steps_cpu.lock env LM_STEPS_PROFILE=cpu .venv/bin/python bench/bench_wikitext_gpt.py
    LM_STEPS_PROFILE=gpu python bench/bench_wikitext_gpt.py        # on a CUDA machine
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from lm_steps import get_profile
from lm_steps.results import load_results

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "06_wikitext_bpe_gpt.ipynb"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=str(ROOT / "build" / "bench"))
    args = parser.parse_args()
    profile = get_profile()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    print(f"executing {NOTEBOOK.name} in the {profile} profile")
    t0 = time.perf_counter()
    (out / NOTEBOOK.name).unlink(missing_ok=True)
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--allow-errors",
                    "--ExecutePreprocessor.timeout=-1", "--output-dir", str(out), str(NOTEBOOK)],
                   check=True, env={**os.environ, "LM_STEPS_PROFILE": profile})
    wall = time.perf_counter() - t0
    nb = nbformat.read(out / NOTEBOOK.name, as_version=4)
    errors = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                errors.append(f"{o['ename']}: {o['evalue']} in the cell starting {cell.source.splitlines()[0]!r}")
            elif ("history = train(" in cell.source or "final = {}" in cell.source or "rows = evaluate_checkpoints" in cell.source) \
                    and o.get("output_type") == "stream" and o.get("name") == "stdout":
                print(o["text"].rstrip())
    entry = None if errors else load_results(profile).get("06 WikiText BPE GPT")
    print(f"notebook wall time: {wall:.0f} s ({wall / 60:.1f} min), profile {profile}")
    print(f"results entry: {entry}")
    if entry:
        print(f"word-level test perplexity: {entry['word_ppl']:.2f} (sliding window, stride {entry['stride']}, "
              f"block {entry['block_size']}); {entry['bits_per_byte']:.4f} bits/byte")
    if errors:
        print("the notebook raised:\n  " + "\n  ".join(errors))
        sys.exit(1)


if __name__ == "__main__":
    main()
